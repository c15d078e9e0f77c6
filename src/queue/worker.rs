//! Worker threads: wait for a wake token (or the poll timeout, which covers
//! jobs enqueued by another process on the same database), claim one job,
//! run the pipeline, record the outcome.

use super::disposition::{Attempt, Disposition, disposition};
use super::{LEASE, QueueShared, result_ttl_seconds};
use crate::builder::{self, BuildFailure, BuildJob, BuildSuccess, FailureKind, Progress};
use crate::config::Config;
use crate::db::{self, DbError, jobs};
use crate::models::{BuildRequest, Phase};
use crate::stats::BuildInfo;
use crate::store;
use rusqlite::Connection;
use serde_json::Value;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

fn worker_loop(shared: &QueueShared, name: &str) {
    let mut conn = loop {
        match db::open(&shared.config().database_path) {
            Ok(c) => break c,
            Err(e) => {
                log::error!("{name}: {e}; retrying in 5 s");
                if shared.is_stopping() {
                    return;
                }
                std::thread::sleep(Duration::from_secs(5));
            }
        }
    };
    let poll = Duration::from_secs(shared.config().worker_poll_seconds.max(1));
    while !shared.is_stopping() {
        match jobs::claim(&mut conn, name, LEASE.as_millis() as i64) {
            Ok(Some(job)) => {
                shared.job_changed(&job.request_hash);
                run_job(shared, &mut conn, name, job)
            }
            Ok(None) => {
                let _ = shared.wake_receiver().recv_timeout(poll);
            }
            Err(e) => {
                log::warn!("{name}: claiming a job failed: {e}");
                let _ = shared.wake_receiver().recv_timeout(Duration::from_secs(1));
            }
        }
    }
    log::debug!("{name} stopped");
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
        if let Err(e) = jobs::set_phase(self.conn, self.job_id, phase) {
            log::warn!(
                "job {}: recording phase {} failed: {e}",
                self.job_id,
                phase.as_str()
            );
        }
        self.shared.job_changed(self.hash);
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
