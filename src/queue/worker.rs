//! Worker threads: wait for a wake token (or the poll timeout, which covers
//! jobs enqueued by another process on the same database), claim one job,
//! run the pipeline, record the outcome.

use super::{LEASE, QueueShared, result_ttl_seconds};
use crate::builder::{self, BuildFailure, BuildJob, BuildSuccess, FailureKind, Progress};
use crate::db::{self, jobs};
use crate::models::{BuildRequest, Limits, Phase, parse_build_request};
use crate::stats::BuildInfo;
use rusqlite::Connection;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub fn spawn_workers(shared: &Arc<QueueShared>) -> std::io::Result<Vec<JoinHandle<()>>> {
    (0..shared.config.worker_concurrent)
        .map(|i| {
            let shared = Arc::clone(shared);
            let name = format!("{}/{}", shared.config.worker_id, i + 1);
            std::thread::Builder::new()
                .name(format!("worker-{}", i + 1))
                .spawn(move || worker_loop(&shared, &name))
        })
        .collect()
}

fn worker_loop(shared: &QueueShared, name: &str) {
    let mut conn = loop {
        match db::open(&shared.config.database_path) {
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
    let poll = Duration::from_secs(shared.config.worker_poll_seconds.max(1));
    while !shared.is_stopping() {
        match jobs::claim(&mut conn, name, LEASE.as_millis() as i64) {
            Ok(Some(job)) => run_job(shared, &mut conn, name, job),
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
}

impl Progress for DbProgress<'_> {
    fn phase(&self, phase: Phase) {
        if let Err(e) = jobs::set_phase(self.conn, self.job_id, phase.as_str()) {
            log::warn!(
                "job {}: recording phase {} failed: {e}",
                self.job_id,
                phase.as_str()
            );
        }
    }
}

/// The stored request, read back with the same rules it was written with.
fn stored_request(json: &str) -> Option<BuildRequest> {
    let limits = Limits {
        max_defaults_length: usize::MAX,
        max_custom_rootfs_size_mb: u64::MAX,
    };
    parse_build_request(json.as_bytes(), limits).ok()
}

fn run_job(shared: &QueueShared, conn: &mut Connection, name: &str, job: jobs::JobRow) {
    let config = &shared.config;
    let now = db::now_ms();
    let failure_expiry = now + (config.failure_ttl_seconds as i64) * 1000;
    let Some(request) = stored_request(&job.request_json) else {
        log::error!(
            "job {}: stored request is unreadable; failing it",
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
        return;
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
    let build_job = BuildJob {
        request_hash: job.request_hash.clone(),
        bin_dir: job.bin_dir.clone(),
        store_dir: config.store_path.join(&job.bin_dir),
        staging_dir: builder::publish::staging_dir(&config.store_path, name),
        request,
    };
    let request = &build_job.request;
    shared.inflight.insert(job.id, &job.request_hash, name);
    let started = Instant::now();
    let outcome = {
        let progress = DbProgress {
            conn,
            job_id: job.id,
        };
        // A panic in the pipeline must cost one job, not the worker thread.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            builder::run_build(config, shared.runtime.as_ref(), name, &build_job, &progress)
        }))
        .unwrap_or_else(|_| {
            Err(BuildFailure {
                kind: FailureKind::User,
                detail: "Error: internal error while building".into(),
                stdout: String::new(),
                stderr: String::new(),
                build_cmd: Vec::new(),
            })
        })
    };
    let aborted = shared.inflight.remove(job.id);
    builder::publish::discard(&build_job.staging_dir);
    let elapsed = started.elapsed();
    let stat = BuildInfo::of_request(&job.request_hash, request);
    let recorded = match outcome {
        Ok(success) => {
            let body = done_body(&job, request, &success);
            let ttl = result_ttl_seconds(config, request) as i64;
            log::info!(
                "{name}: built {} in {:.1} s",
                job.request_hash,
                elapsed.as_secs_f64()
            );
            let completed = jobs::complete(
                conn,
                &jobs::Completion {
                    job_id: job.id,
                    request_hash: &job.request_hash,
                    bin_dir: &job.bin_dir,
                    result_json: &body.to_string(),
                    duration_s: elapsed.as_secs_f64(),
                    expires_at: db::now_ms() + ttl * 1000,
                },
            );
            // Counted once the outcome is stored: a failed write leaves the
            // job running, and lease recovery will end it instead.
            if completed.is_ok() {
                shared
                    .stats
                    .build_finished(stat, true, elapsed.as_secs_f64(), None);
            }
            completed
        }
        Err(_) if aborted || shared.is_stopping() => {
            log::info!(
                "{name}: {} interrupted by shutdown; back in the queue",
                job.request_hash
            );
            jobs::requeue(conn, job.id, 0, true, "requeued at shutdown")
        }
        Err(failure) => {
            let timed_out = elapsed.as_secs() >= config.job_timeout_seconds;
            if failure.kind == FailureKind::Infrastructure
                && !timed_out
                && job.attempts < job.max_attempts
            {
                let backoff = retry_backoff(job.attempts);
                log::warn!(
                    "{name}: {} hit an infrastructure error (attempt {}/{}), retrying in {} s: {}",
                    job.request_hash,
                    job.attempts,
                    job.max_attempts,
                    backoff.as_secs(),
                    failure.detail
                );
                jobs::requeue(
                    conn,
                    job.id,
                    db::now_ms() + backoff.as_millis() as i64,
                    false,
                    &failure.detail,
                )
            } else {
                let detail = if timed_out {
                    format!(
                        "Error: Build timed out after {} seconds (job_timeout_seconds)",
                        config.job_timeout_seconds
                    )
                } else if failure.kind == FailureKind::Infrastructure {
                    format!(
                        "{} (gave up after {} attempts)",
                        failure.detail, job.attempts
                    )
                } else {
                    failure.detail.clone()
                };
                log::warn!("{name}: {} failed: {detail}", job.request_hash);
                let build_cmd = (!failure.build_cmd.is_empty())
                    .then(|| serde_json::to_string(&failure.build_cmd).unwrap_or_default());
                let failed = jobs::fail(
                    conn,
                    &jobs::Failure {
                        job_id: job.id,
                        detail: &detail,
                        stdout: &failure.stdout,
                        stderr: &failure.stderr,
                        build_cmd: build_cmd.as_deref(),
                        expires_at: failure_expiry,
                    },
                );
                if failed.is_ok() {
                    shared
                        .stats
                        .build_finished(stat, false, elapsed.as_secs_f64(), Some(detail));
                }
                failed
            }
        }
    };
    if let Err(e) = recorded {
        log::error!(
            "{name}: recording the outcome of {} failed: {e}",
            job.request_hash
        );
    }
}

/// 5 s, 20 s, 80 s, … capped at 5 minutes.
fn retry_backoff(attempt: i64) -> Duration {
    let exp = attempt.clamp(1, 8) as u32 - 1;
    Duration::from_secs((5u64 * 4u64.pow(exp)).min(300))
}

/// The 200 body, keyed in the order the reference builds it: job meta,
/// status, the build's return value, then `enqueued_at` and `request_hash`.
fn done_body(job: &jobs::JobRow, request: &BuildRequest, success: &BuildSuccess) -> Value {
    let mut body = Map::new();
    body.insert("detail".into(), "done".into());
    body.insert("imagebuilder_status".into(), "done".into());
    body.insert(
        "request".into(),
        serde_json::to_value(request).unwrap_or(Value::Null),
    );
    body.insert("stdout".into(), success.stdout.clone().into());
    body.insert("stderr".into(), success.stderr.clone().into());
    body.insert("build_cmd".into(), Value::from(success.build_cmd.clone()));
    body.insert("status".into(), 200.into());
    for (k, v) in &success.result {
        body.insert(k.clone(), v.clone());
    }
    body.insert("enqueued_at".into(), job.enqueued_at.clone().into());
    body.insert("request_hash".into(), job.request_hash.clone().into());
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(retry_backoff(1), Duration::from_secs(5));
        assert_eq!(retry_backoff(2), Duration::from_secs(20));
        assert_eq!(retry_backoff(3), Duration::from_secs(80));
        assert_eq!(retry_backoff(7), Duration::from_secs(300));
    }

    #[test]
    fn stored_request_round_trips() {
        let req = BuildRequest {
            version: "1.2.3".into(),
            target: "a/b".into(),
            profile: "p".into(),
            defaults: Some("x".repeat(30000)),
            rootfs_size_mb: Some(4096),
            ..Default::default()
        };
        let json = serde_json::to_string(&req).unwrap();
        assert_eq!(stored_request(&json), Some(req));
    }
}
