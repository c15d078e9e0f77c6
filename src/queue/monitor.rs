//! The runtime monitor thread: every Podman call the queue makes outside a
//! build happens here, so no other thread waits on Podman. It pings the
//! runtime (every `UP_EVERY` while it answers; `DOWN_FIRST` doubling to
//! `DOWN_MAX` while it does not, so a returning runtime is seen within
//! seconds) and keeps `RuntimeHealth` current. Each time the runtime comes
//! (back) up, it first removes the containers no running job owns (what a
//! crash or the outage left behind), then lets the workers claim. While up,
//! it kills builds past `job_timeout_seconds` and sweeps orphans every
//! `SWEEP_EVERY`.

use super::supervise::{Backoff, panic_message};
use super::{QueueShared, Stop, stop_container, stop_job_containers};
use crate::container::{LABEL_JOB, LABEL_SERVICE, LABEL_WORKER};
use crate::db::{self, jobs};
use crossbeam_channel::{Receiver, Sender, select};
use rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Health check interval while the runtime answers.
const UP_EVERY: Duration = Duration::from_secs(5);
/// First and longest pause between checks while it does not.
const DOWN_FIRST: Duration = Duration::from_millis(250);
const DOWN_MAX: Duration = Duration::from_secs(2);
/// How often orphaned containers are looked for while the runtime is up.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

pub struct Monitor {
    stop: Sender<()>,
    handle: JoinHandle<()>,
}

impl Monitor {
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.handle.join();
    }
}

pub fn spawn_monitor(shared: &Arc<QueueShared>) -> std::io::Result<Monitor> {
    let (stop, stop_rx) = crossbeam_channel::bounded(1);
    let shared = Arc::clone(shared);
    let handle = std::thread::Builder::new()
        .name("runtime".into())
        .spawn(move || monitor_loop(&shared, &stop_rx))?;
    Ok(Monitor { stop, handle })
}

/// What the loop carries from one check to the next.
struct Watch {
    /// Opened on first need: only containers of other processes need it.
    conn: Option<Connection>,
    last_sweep: Instant,
    down: Backoff,
}

fn monitor_loop(shared: &QueueShared, stop: &Receiver<()>) {
    let mut watch = Watch {
        conn: None,
        last_sweep: Instant::now(),
        down: Backoff::new(DOWN_FIRST, DOWN_MAX),
    };
    loop {
        // A panic costs one check, never the thread.
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(shared, &mut watch))) {
            log::error!(
                "runtime monitor panicked: {}; checking again",
                panic_message(panic.as_ref())
            );
            watch.conn = None;
            shared
                .runtime_health
                .set_down("the runtime monitor failed; checking again");
        }
        let pause = if shared.runtime_health.is_up() {
            watch.down.reset();
            UP_EVERY
        } else {
            watch.down.next_pause()
        };
        select! {
            recv(stop) -> _ => return,
            recv(shared.runtime_health.check_requests()) -> _ => {}
            default(pause) => {}
        }
    }
}

/// One health check and what follows from it.
fn check(shared: &QueueShared, watch: &mut Watch) {
    shared.faults.at_monitor();
    let health = &shared.runtime_health;
    let config = shared.config();
    let socket = config.container_socket_path.display();
    match shared.runtime.ping() {
        Ok(version) => {
            if !health.is_up() {
                // Before any worker claims: what a crash or the outage
                // left behind goes first, so a job never runs in two
                // containers at once.
                remove_orphan_containers(shared, &mut watch.conn);
                watch.last_sweep = Instant::now();
                health.set_up(&version);
                log::info!("container runtime answers at {socket} (version {version})");
                shared.wake();
            }
            kill_overdue(shared);
            if watch.last_sweep.elapsed() >= SWEEP_EVERY {
                remove_orphan_containers(shared, &mut watch.conn);
                watch.last_sweep = Instant::now();
            }
        }
        Err(e) => {
            let detail = e.to_string();
            if health.set_down(&detail) {
                log::warn!("container runtime not answering: {detail}; builds wait until it does");
            } else {
                log::debug!("container runtime still not answering: {detail}");
            }
        }
    }
}

/// The container's own `timeout` normally ends an overlong build; this is
/// the backstop for when it did not (a runtime that ignores it, a hung exec).
fn kill_overdue(shared: &QueueShared) {
    let limit = Duration::from_secs(shared.config().job_timeout_seconds);
    for job in shared.inflight.snapshot() {
        if job.aborted || job.started.elapsed() <= limit {
            continue;
        }
        stop_job_containers(
            shared.runtime.as_ref(),
            &job.request_hash,
            Stop::Kill,
            &format!("job {} is past job_timeout_seconds", job.request_hash),
        );
    }
}

/// Remove containers labelled as ours that no running job owns. `conn` is
/// opened when a container of another process needs judging.
pub fn remove_orphan_containers(shared: &QueueShared, conn: &mut Option<Connection>) {
    let containers = match shared.runtime.list_by_label(LABEL_SERVICE) {
        Ok(c) => c,
        Err(e) => {
            log::debug!("listing containers failed: {e}");
            return;
        }
    };
    let own_prefix = format!("{}/", shared.config().worker_id);
    for c in containers {
        let job = c.labels.get(LABEL_JOB).cloned().unwrap_or_default();
        let worker = c.labels.get(LABEL_WORKER).cloned().unwrap_or_default();
        // Ours: alive only while one of our workers holds the job. Another
        // process's: only judged when our database knows the job (several
        // services with separate databases may share one Podman).
        let orphan = if worker.starts_with(&own_prefix) {
            !shared.inflight.contains_hash(&job)
        } else {
            finished_here(shared, conn, &job)
        };
        if orphan {
            stop_container(
                shared.runtime.as_ref(),
                &c,
                Stop::KillAndRemove,
                &format!("orphaned build (job {job}, worker {worker})"),
            );
        }
    }
}

/// Whether our database knows job `hash` and it finished; any doubt spares
/// the container.
fn finished_here(shared: &QueueShared, conn: &mut Option<Connection>, hash: &str) -> bool {
    if conn.is_none() {
        match db::open(&shared.config().database_path) {
            Ok(c) => *conn = Some(c),
            Err(e) => {
                log::warn!("runtime monitor: {e}");
                return false;
            }
        }
    }
    let Some(c) = conn.as_ref() else {
        return false;
    };
    match jobs::job_activity(c, hash) {
        Ok(activity) => activity == jobs::JobActivity::Finished,
        Err(e) => {
            log::warn!("runtime monitor: reading job {hash} failed: {e}");
            *conn = None;
            false
        }
    }
}
