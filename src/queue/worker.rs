//! Worker threads: wait until the container runtime answers, then for a
//! wake token (or the poll timeout, which covers jobs enqueued by another
//! process on the same database), claim one job, run the pipeline, record
//! the outcome.
//!
//! Each pass runs under `catch_unwind`: a panic anywhere (claim, build,
//! record) is logged with the job, the job goes back to the queue through
//! the lease recovery (or fails when out of attempts), and the thread
//! carries on, so the pool stays at full size.

use super::disposition::{Attempt, Disposition, disposition};
use super::supervise::{Backoff, panic_message};
use super::{LEASE, QueueShared, result_ttl_seconds};
use crate::builder::{self, BuildFailure, BuildJob, BuildSuccess, FailureKind, Progress};
use crate::config::Config;
use crate::db::{self, DbError, jobs};
use crate::faults::WorkerPoint;
use crate::models::{BuildRequest, Phase};
use crate::stats::BuildInfo;
use crate::store;
use rusqlite::Connection;
use serde_json::Value;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Pauses after a failed pass (database unavailable, a panic).
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

pub fn spawn_workers(shared: &Arc<QueueShared>) -> std::io::Result<Vec<JoinHandle<()>>> {
    (0..shared.config().worker_concurrent)
        .map(|i| {
            let shared = Arc::clone(shared);
            let name = format!("{}/{}", shared.config().worker_id, i + 1);
            std::thread::Builder::new()
                .name(format!("worker-{}", i + 1))
                .spawn(move || worker_loop(&shared, &name))
        })
        .collect()
}

/// The job a worker holds between its claim and the recorded outcome.
struct Held {
    job_id: i64,
    request_hash: String,
}

/// What one pass did.
enum Pass {
    Built,
    Idle,
}

fn worker_loop(shared: &QueueShared, name: &str) {
    let poll = Duration::from_secs(shared.config().worker_poll_seconds.max(1));
    let mut conn: Option<Connection> = None;
    let mut retry = Backoff::new(RETRY_FIRST, RETRY_MAX);
    while !shared.is_stopping() {
        if !shared.runtime_health.is_up() {
            // Jobs stay queued while the runtime is away: no attempt is
            // spent on a runtime that does not answer.
            shared.runtime_health.wait_up(poll);
            continue;
        }
        let mut held: Option<Held> = None;
        let pass = catch_unwind(AssertUnwindSafe(|| {
            work_once(shared, &mut conn, name, &mut held)
        }));
        let pause = match pass {
            Ok(Ok(Pass::Built)) => {
                retry.reset();
                continue;
            }
            Ok(Ok(Pass::Idle)) => {
                retry.reset();
                poll
            }
            Ok(Err(e)) => {
                conn = None;
                let pause = retry.next_pause();
                log::warn!("{name}: {e}; trying again in {} s", pause.as_secs_f64());
                pause
            }
            Err(panic) => {
                // The connection may be mid-transaction: start afresh.
                conn = None;
                let message = panic_message(panic.as_ref()).to_string();
                match held {
                    Some(job) => {
                        log::error!(
                            "{name}: panicked while holding job {}: {message}; the job goes back to the queue",
                            job.request_hash
                        );
                        release_after_panic(shared, name, &job);
                    }
                    None => log::error!("{name}: panicked outside a job: {message}"),
                }
                retry.next_pause()
            }
        };
        // Any wake token (new work, shutdown) ends the pause early.
        let _ = shared.wake_receiver().recv_timeout(pause);
    }
    log::debug!("{name} stopped");
}

/// Claim one job and build it; `held` names the job from the claim on.
fn work_once(
    shared: &QueueShared,
    conn: &mut Option<Connection>,
    name: &str,
    held: &mut Option<Held>,
) -> Result<Pass, DbError> {
    let c = match conn {
        Some(c) => c,
        None => conn.insert(db::open(&shared.config().database_path)?),
    };
    shared.faults.at_worker(name, WorkerPoint::Claim);
    let Some(job) = jobs::claim(c, name, LEASE.as_millis() as i64)? else {
        return Ok(Pass::Idle);
    };
    *held = Some(Held {
        job_id: job.id,
        request_hash: job.request_hash.clone(),
    });
    shared.job_changed(&job.request_hash);
    shared
        .faults
        .at_worker(name, WorkerPoint::Claimed(&job.request_hash));
    run_job(shared, c, name, job);
    Ok(Pass::Built)
}

/// After a panic: forget the job, drop its staged files, and let the lease
/// recovery requeue it (or fail it when out of attempts) at once instead of
/// after its lease runs out. The container, if any, was removed by the
/// pipeline's guard while the panic unwound.
fn release_after_panic(shared: &QueueShared, name: &str, job: &Held) {
    shared.inflight.remove(job.job_id);
    store::discard(&store::staging_dir(&shared.config().store_path, name));
    let released = db::open(&shared.config().database_path).and_then(|mut c| {
        jobs::release_lease(&c, job.job_id, name)?;
        super::janitor::recover(shared, &mut c, None)
    });
    match released {
        Ok(()) => shared.wake(),
        Err(e) => log::error!(
            "{name}: could not release job {} ({e}); it is requeued when its lease runs out",
            job.request_hash
        ),
    }
}

struct DbProgress<'a> {
    conn: &'a Connection,
    job_id: i64,
    /// Long-polling clients of this hash hear of each phase.
    shared: &'a QueueShared,
    hash: &'a str,
}

impl Progress for DbProgress<'_> {
    fn phase(&self, phase: Phase) {
        self.shared.job_changed(self.hash);
        if let Err(e) = jobs::set_phase(self.conn, self.job_id, phase) {
            log::warn!(
                "job {}: recording phase {} failed: {e}",
                self.job_id,
                phase.as_str()
            );
        }
    }
}

fn run_job(shared: &QueueShared, conn: &mut Connection, name: &str, job: jobs::JobRow) {
    let config = &shared.config();
    let failure_expiry = db::now_ms() + (config.failure_ttl_seconds as i64) * 1000;
    let Some(build_job) = build_job(shared, conn, name, &job, failure_expiry) else {
        return;
    };
    let request = &build_job.request;
    shared.inflight.insert(job.id, &job.request_hash, name);
    let started = Instant::now();
    let outcome = build(shared, conn, name, &job, &build_job);
    let aborted = shared.inflight.remove(job.id);
    store::discard(&build_job.staging_dir);
    let elapsed = started.elapsed();
    if let Err(failure) = &outcome
        && failure.kind == FailureKind::RuntimeLost
    {
        shared.runtime_health.lost(&failure.detail);
    }
    shared
        .faults
        .at_worker(name, WorkerPoint::Record(&job.request_hash));
    let stat = BuildInfo::of_request(&job.request_hash, request);
    let attempt = Attempt {
        number: job.attempts,
        max: job.max_attempts,
        elapsed,
        job_timeout_seconds: config.job_timeout_seconds,
        interrupted: aborted || shared.is_stopping(),
    };
    let recorded = match disposition(&outcome, &attempt) {
        Disposition::Complete(success) => {
            log::info!(
                "{name}: built {} in {:.1} s",
                job.request_hash,
                elapsed.as_secs_f64()
            );
            let completed = complete(conn, config, &job, request, success, elapsed);
            // Counted once the outcome is stored: a failed write leaves the
            // job running, and lease recovery will end it instead.
            if completed.is_ok() {
                shared
                    .stats
                    .build_finished(stat, true, elapsed.as_secs_f64(), None);
            }
            completed
        }
        Disposition::Retry {
            after,
            refund,
            note,
        } => {
            log::warn!(
                "{name}: {} goes back to the queue (attempt {}/{}, again in {} s): {note}",
                job.request_hash,
                job.attempts,
                job.max_attempts,
                after.as_secs(),
            );
            // 0: claimable at once, whatever the clocks of other processes say.
            let not_before = match after.as_millis() {
                0 => 0,
                ms => db::now_ms() + ms as i64,
            };
            jobs::requeue(conn, job.id, not_before, refund, &note)
        }
        Disposition::Fail { detail, failure } => {
            log::warn!("{name}: {} failed: {detail}", job.request_hash);
            let failed = fail(conn, job.id, &detail, failure, failure_expiry);
            if failed.is_ok() {
                shared
                    .stats
                    .build_finished(stat, false, elapsed.as_secs_f64(), Some(detail));
            }
            failed
        }
    };
    match recorded {
        Ok(()) => shared.job_changed(&job.request_hash),
        // Cancelled by an operator while it ran: its end is theirs.
        Err(e @ DbError::NotRunning { .. }) => log::info!("{name}: {}: {e}", job.request_hash),
        Err(e) => log::error!(
            "{name}: recording the outcome of {} failed: {e}",
            job.request_hash
        ),
    }
}

/// The pipeline's input for a claimed job; a stored request that does not
/// decode fails the job instead.
fn build_job(
    shared: &QueueShared,
    conn: &Connection,
    name: &str,
    job: &jobs::JobRow,
    failure_expiry: i64,
) -> Option<BuildJob> {
    let store_path = &shared.config().store_path;
    let request = match job.request() {
        Ok(r) => r,
        Err(e) => {
            log::error!(
                "job {}: stored request is unreadable ({e}); failing it",
                job.request_hash
            );
            let detail = "Error: stored request is unreadable";
            let failed = jobs::fail(
                conn,
                &jobs::Failure {
                    job_id: job.id,
                    detail,
                    stdout: "",
                    stderr: "",
                    build_cmd: None,
                    expires_at: failure_expiry,
                },
            );
            if failed.is_ok() {
                let stat = BuildInfo {
                    request_hash: job.request_hash.clone(),
                    ..BuildInfo::default()
                };
                shared
                    .stats
                    .build_finished(stat, false, 0.0, Some(detail.into()));
            }
            return None;
        }
    };
    log::info!(
        "{name}: building {} ({} {} {}, attempt {}/{})",
        job.request_hash,
        request.version,
        request.target,
        request.profile,
        job.attempts,
        job.max_attempts
    );
    Some(BuildJob {
        request_hash: job.request_hash.clone(),
        bin_dir: job.bin_dir.clone(),
        store_dir: store::build_dir(store_path, &job.bin_dir),
        staging_dir: store::staging_dir(store_path, name),
        request,
    })
}

/// Run the pipeline; a panic in it costs one job, not the worker thread.
fn build(
    shared: &QueueShared,
    conn: &Connection,
    name: &str,
    job: &jobs::JobRow,
    build_job: &BuildJob,
) -> Result<BuildSuccess, BuildFailure> {
    let progress = DbProgress {
        conn,
        job_id: job.id,
        shared,
        hash: &job.request_hash,
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        builder::run_build(
            &shared.config(),
            shared.runtime.as_ref(),
            name,
            build_job,
            &progress,
        )
    }))
    .unwrap_or_else(|_| {
        Err(BuildFailure {
            kind: FailureKind::Permanent,
            detail: "Error: internal error while building".into(),
            stdout: String::new(),
            stderr: String::new(),
            build_cmd: Vec::new(),
        })
    })
}

/// Mark the job failed, keeping the build's output for clients.
fn fail(
    conn: &Connection,
    job_id: i64,
    detail: &str,
    failure: &BuildFailure,
    expires_at: i64,
) -> Result<(), DbError> {
    let build_cmd = (!failure.build_cmd.is_empty())
        .then(|| serde_json::to_string(&failure.build_cmd).unwrap_or_default());
    jobs::fail(
        conn,
        &jobs::Failure {
            job_id,
            detail,
            stdout: &failure.stdout,
            stderr: &failure.stderr,
            build_cmd: build_cmd.as_deref(),
            expires_at,
        },
    )
}

/// Store the 200 body with its TTL and mark the job completed.
fn complete(
    conn: &mut Connection,
    config: &Config,
    job: &jobs::JobRow,
    request: &BuildRequest,
    success: &BuildSuccess,
    elapsed: Duration,
) -> Result<(), DbError> {
    let ttl = result_ttl_seconds(config, request) as i64;
    jobs::complete(
        conn,
        &jobs::Completion {
            job_id: job.id,
            request_hash: &job.request_hash,
            bin_dir: &job.bin_dir,
            result_json: &done_body(job, request, success, elapsed).to_string(),
            duration_s: elapsed.as_secs_f64(),
            expires_at: db::now_ms() + ttl * 1000,
        },
    )
}

/// The 200 body (`builder::result::done_body`), with this build's wall
/// time as `build_duration` and now as `finished_at`.
fn done_body(
    job: &jobs::JobRow,
    request: &BuildRequest,
    success: &BuildSuccess,
    elapsed: Duration,
) -> Value {
    builder::result::done_body(&builder::result::Done {
        request,
        stdout: &success.stdout,
        stderr: &success.stderr,
        build_cmd: &success.build_cmd,
        result: &success.result,
        enqueued_at: &job.enqueued_at,
        request_hash: &job.request_hash,
        duration: elapsed,
        finished_at: &builder::result::finished_at_now(),
    })
}
