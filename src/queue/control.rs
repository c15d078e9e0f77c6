//! Operator control of one build, for the HTTP build-control endpoints and
//! the operator commands alike: cancel (killing a running build's
//! containers through Podman) or drop what is cached, and retry.
//! Statistics are the caller's: a handler records through its `Recorder`,
//! a command writes its one event itself.

use super::{Stop, stop_container};
use crate::container::{ContainerError, ContainerRuntime, job_label};
use crate::db::control::{self, Cancelled, Dropped, RetryOutcome};
use crate::db::{DbError, now_ms};
use rusqlite::Connection;

#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// The active job was cancelled (and its containers killed if it ran).
    Cancelled(Box<Cancelled>),
    /// Nothing was active; a cached result or failure was dropped.
    Dropped(Dropped),
    /// Nothing active and nothing cached.
    Unknown,
}

/// Mark the active job of `hash` cancelled, if any. A running one's
/// containers are the caller's to kill (`kill_containers`), off a handler
/// thread: handlers never wait on Podman.
pub fn cancel(
    conn: &mut Connection,
    hash: &str,
    failure_ttl_seconds: u64,
) -> Result<Option<Cancelled>, DbError> {
    let expires_at = now_ms().saturating_add((failure_ttl_seconds as i64).saturating_mul(1000));
    let Some(c) = control::cancel(conn, hash, expires_at)? else {
        return Ok(None);
    };
    log::info!("cancelled {hash} (was {})", c.job.status.as_str());
    Ok(Some(c))
}

/// SIGKILL the containers of a cancelled build: the running exec ends, the
/// worker's container guard removes the container (the janitor's sweep
/// whatever is left), and the worker's outcome is discarded because the
/// job is no longer running.
/// Returns how many containers were found; an error when Podman could not
/// list them (then the build runs to its end, and its outcome is discarded).
pub fn kill_containers(
    runtime: &dyn ContainerRuntime,
    hash: &str,
) -> Result<usize, ContainerError> {
    let containers = runtime.list_by_label(&job_label(hash))?;
    for c in &containers {
        stop_container(runtime, c, Stop::Kill, "cancelled by an operator");
    }
    Ok(containers.len())
}

/// `DELETE /api/v1/build/{hash}`: stop the active job if there is one,
/// else drop the cached answer.
pub fn cancel_or_drop(
    conn: &mut Connection,
    hash: &str,
    failure_ttl_seconds: u64,
) -> Result<CancelOutcome, DbError> {
    if let Some(c) = cancel(conn, hash, failure_ttl_seconds)? {
        return Ok(CancelOutcome::Cancelled(Box::new(c)));
    }
    let dropped = control::drop_cached(conn, hash)?;
    if dropped.any() {
        log::info!(
            "dropped the cached {} of {hash}",
            if dropped.result { "result" } else { "failure" }
        );
        return Ok(CancelOutcome::Dropped(dropped));
    }
    Ok(CancelOutcome::Unknown)
}

/// `POST /api/v1/build/{hash}/retry` and `asu-builder retry`.
pub fn retry(conn: &mut Connection, hash: &str) -> Result<RetryOutcome, DbError> {
    let outcome = control::retry(conn, hash, &super::iso_now(), super::MAX_ATTEMPTS)?;
    if let RetryOutcome::Queued(_) = &outcome {
        log::info!("queued {hash} again (operator retry)");
    }
    Ok(outcome)
}
