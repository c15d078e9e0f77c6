//! The janitor thread: renews leases of running builds, expires results and
//! failures (rows, and the store directories this service published, unless
//! `store_gc` is off) and requeues jobs whose worker died. It only touches SQLite and the store, never Podman (the runtime
//! monitor does), so leases keep renewing whatever Podman does. Each pass
//! runs under `catch_unwind`; a panic or a database it cannot reach costs
//! that pass, and it tries again after a pause growing from 1 s to 30 s.

use super::supervise::{Backoff, panic_message};
use super::{LEASE, LEASE_RENEW, QueueShared};
use crate::db::{self, DbError, jobs};
use crate::faults::JanitorPoint;
use crate::store;
use crossbeam_channel::{Receiver, Sender};
use rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often expiry and lease recovery run.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Pauses after a failed pass.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

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
    let mut conn: Option<Connection> = None;
    let mut retry = Backoff::new(RETRY_FIRST, RETRY_MAX);
    let mut pause = LEASE_RENEW;
    let mut last_sweep = Instant::now();
    loop {
        match stop.recv_timeout(pause) {
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let pass = catch_unwind(AssertUnwindSafe(|| {
            janitor_pass(shared, &mut conn, &mut last_sweep)
        }));
        let failure = match pass {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(panic) => Some(format!("panicked: {}", panic_message(panic.as_ref()))),
        };
        pause = match failure {
            None => {
                retry.reset();
                LEASE_RENEW
            }
            Some(why) => {
                // The connection may be broken or mid-transaction.
                conn = None;
                let next = retry.next_pause();
                log::error!(
                    "janitor: {why}; leases, recovery and expiry try again in {} s",
                    next.as_secs_f64()
                );
                next
            }
        };
    }
}

/// One pass: (re)open the connection if needed, renew leases, and sweep
/// when one is due.
fn janitor_pass(
    shared: &QueueShared,
    conn: &mut Option<Connection>,
    last_sweep: &mut Instant,
) -> Result<(), DbError> {
    let c = match conn {
        Some(c) => c,
        None => {
            shared.faults.at_janitor(JanitorPoint::Open);
            conn.insert(db::open(&shared.config().database_path)?)
        }
    };
    shared.faults.at_janitor(JanitorPoint::Renew);
    renew_leases(shared, c)?;
    if last_sweep.elapsed() >= SWEEP_EVERY {
        shared.faults.at_janitor(JanitorPoint::Sweep);
        sweep(shared, c, None);
        *last_sweep = Instant::now();
    }
    // After a burst (a flood of rejected requests, many uploads at once)
    // the freed memory goes back to the OS within one tick.
    crate::allocator::release_free_memory();
    Ok(())
}

fn renew_leases(shared: &QueueShared, conn: &Connection) -> Result<(), DbError> {
    let running: Vec<(i64, String)> = shared
        .inflight
        .snapshot()
        .into_iter()
        .map(|j| (j.job_id, j.worker))
        .collect();
    if running.is_empty() {
        return Ok(());
    }
    let until = db::now_ms() + LEASE.as_millis() as i64;
    jobs::renew_leases(conn, &running, until)
}

/// One pass of recovery and expiry. At start-up `own_prefix` is this
/// process's worker id: anything still marked running under it is left over
/// from a previous life (kill -9, power loss) and goes back to the queue.
pub fn sweep(shared: &QueueShared, conn: &mut Connection, own_prefix: Option<&str>) {
    if let Err(e) = recover(shared, conn, own_prefix) {
        log::warn!("janitor: recovering abandoned jobs failed: {e}");
    }
    // Only directories this service published come back; with store_gc
    // off they stay for the operator (a store shared with another server).
    let config = shared.config();
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
}

/// Requeue the jobs whose lease expired (or that `own_prefix`'s previous
/// life left running), or fail them when out of attempts. Also what a
/// worker calls after a panic, once it has ended its own lease.
pub(crate) fn recover(
    shared: &QueueShared,
    conn: &mut Connection,
    own_prefix: Option<&str>,
) -> Result<(), DbError> {
    let failure_expiry = db::now_ms() + shared.config().failure_ttl_seconds as i64 * 1000;
    match jobs::recover_abandoned(conn, own_prefix, failure_expiry)? {
        (0, failed) if failed.is_empty() => {}
        (requeued, failed) => {
            log::warn!(
                "recovered abandoned jobs: {requeued} back in the queue, {} failed after too many attempts",
                failed.len()
            );
            record_failures(shared, conn, &failed);
            if requeued > 0 {
                shared.wake();
            }
        }
    }
    Ok(())
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
