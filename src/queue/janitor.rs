//! The janitor thread: renews leases of running builds, expires results and
//! failures (rows, and the store directories this service published, unless
//! `store_gc` is off), requeues jobs whose worker died,
//! and removes containers labelled as ours that no running job owns.

use super::{LEASE, LEASE_RENEW, QueueShared, Stop, stop_container, stop_job_containers};
use crate::container::{LABEL_JOB, LABEL_SERVICE, LABEL_WORKER};
use crate::db::{self, jobs};
use crate::store;
use crossbeam_channel::{Receiver, Sender};
use rusqlite::Connection;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often expiry, lease recovery and orphan cleanup run.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

pub struct Janitor {
    stop: Sender<()>,
    handle: JoinHandle<()>,
}

impl Janitor {
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.handle.join();
    }
}

pub fn spawn_janitor(shared: &Arc<QueueShared>) -> std::io::Result<Janitor> {
    let (stop, stop_rx) = crossbeam_channel::bounded(1);
    let shared = Arc::clone(shared);
    let handle = std::thread::Builder::new()
        .name("janitor".into())
        .spawn(move || janitor_loop(&shared, &stop_rx))?;
    Ok(Janitor { stop, handle })
}

fn janitor_loop(shared: &QueueShared, stop: &Receiver<()>) {
    let mut conn = match db::open(&shared.config().database_path) {
        Ok(c) => c,
        Err(e) => {
            log::error!("janitor: {e}; leases, expiry and cleanup are not running");
            return;
        }
    };
    let mut last_sweep = Instant::now();
    loop {
        match stop.recv_timeout(LEASE_RENEW) {
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        renew_leases(shared, &conn);
        kill_overdue(shared);
        if last_sweep.elapsed() >= SWEEP_EVERY {
            sweep(shared, &mut conn, None);
            last_sweep = Instant::now();
        }
    }
}

fn renew_leases(shared: &QueueShared, conn: &Connection) {
    let running: Vec<(i64, String)> = shared
        .inflight
        .snapshot()
        .into_iter()
        .map(|j| (j.job_id, j.worker))
        .collect();
    if running.is_empty() {
        return;
    }
    let until = db::now_ms() + LEASE.as_millis() as i64;
    if let Err(e) = jobs::renew_leases(conn, &running, until) {
        log::warn!("janitor: renewing {} leases failed: {e}", running.len());
    }
}

/// The container's own `timeout` normally ends an overlong build; this is
/// the backstop for when it did not (a runtime that ignores it, a hung exec).
fn kill_overdue(shared: &QueueShared) {
    let limit = std::time::Duration::from_secs(shared.config().job_timeout_seconds);
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

/// One pass of recovery and expiry. At start-up `own_prefix` is this
/// process's worker id: anything still marked running under it is left over
/// from a previous life (kill -9, power loss) and goes back to the queue.
pub fn sweep(shared: &QueueShared, conn: &mut Connection, own_prefix: Option<&str>) {
    let config = &shared.config();
    let failure_expiry = db::now_ms() + config.failure_ttl_seconds as i64 * 1000;
    match jobs::recover_abandoned(conn, own_prefix, failure_expiry) {
        Ok((0, failed)) if failed.is_empty() => {}
        Ok((requeued, failed)) => {
            log::warn!(
                "recovered abandoned jobs: {requeued} back in the queue, {} failed after too many attempts",
                failed.len()
            );
            record_failures(shared, conn, &failed);
            if requeued > 0 {
                shared.wake();
            }
        }
        Err(e) => log::warn!("janitor: recovering abandoned jobs failed: {e}"),
    }
    // Only directories this service published come back; with store_gc
    // off they stay for the operator (a store shared with another server).
    match jobs::delete_expired(conn, db::now_ms()) {
        Ok(dirs) if config.store_gc => {
            for dir in dirs {
                store::remove_build(&config.store_path, &dir);
            }
        }
        Ok(dirs) => {
            for dir in dirs {
                log::debug!("store_gc is off: keeping expired store directory {dir}");
            }
        }
        Err(e) => log::warn!("janitor: expiring results failed: {e}"),
    }
    remove_orphan_containers(shared, conn);
}

/// Jobs failed by recovery end their build like a worker's failure would,
/// so every queued build is counted as ended exactly once.
fn record_failures(shared: &QueueShared, conn: &Connection, job_ids: &[i64]) {
    for id in job_ids {
        let Ok(Some(job)) = jobs::job_by_id(conn, *id) else {
            continue;
        };
        shared.stats.build_finished(
            crate::stats::BuildInfo::of_stored(&job.request_hash, &job.request_json),
            false,
            0.0,
            job.detail,
        );
    }
}

fn remove_orphan_containers(shared: &QueueShared, conn: &Connection) {
    let containers = match shared.runtime.list_by_label(LABEL_SERVICE) {
        Ok(c) => c,
        Err(e) => {
            log::debug!("janitor: listing containers failed: {e}");
            return;
        }
    };
    if containers.is_empty() {
        return;
    }
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
            match jobs::job_activity(conn, &job) {
                Ok(activity) => activity == jobs::JobActivity::Finished,
                Err(e) => {
                    log::warn!("janitor: reading job {job} failed: {e}");
                    false
                }
            }
        };
        if !orphan {
            continue;
        }
        stop_container(
            shared.runtime.as_ref(),
            &c,
            Stop::KillAndRemove,
            &format!("orphaned build (job {job}, worker {worker})"),
        );
    }
}
