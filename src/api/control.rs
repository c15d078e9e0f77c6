//! Build control over HTTP for operators: `DELETE /api/v1/build/{hash}`
//! (cancel the active job, else drop the cached result or failure) and
//! `POST /api/v1/build/{hash}/retry`. Both need `Authorization: Bearer
//! <admin_token>`; without a configured token they answer 404, as if they
//! did not exist.

use super::AppState;
use super::auth::{self, Access};
use super::request::Request;
use super::response::Response;
use crate::db::control::{CANCELLED_DETAIL, RetryOutcome};
use crate::queue::control::{self as qc, CancelOutcome};
use crate::stats::BuildInfo;
use rusqlite::Connection;
use serde_json::json;

/// `None` when the request may go on; otherwise the answer.
fn refuse(state: &AppState, req: &Request) -> Option<Response> {
    let config = state.config();
    match auth::check(config.admin_token.as_deref(), req.header("Authorization")) {
        Access::Granted => None,
        Access::Disabled => Some(Response::error(404, "Not Found")),
        Access::Denied => Some(
            Response::error(
                401,
                "Unauthorized: send Authorization: Bearer <admin_token>",
            )
            .with_header("WWW-Authenticate", "Bearer realm=\"asu-builder\""),
        ),
    }
}

fn db_unavailable(e: crate::db::DbError) -> Response {
    log::error!("database error during build control: {e}");
    Response::error(503, "Database temporarily unavailable, try again shortly")
        .with_header("Retry-After", "2")
}

fn done(detail: &str, hash: &str) -> Response {
    Response::json(
        200,
        &json!({"status": 200, "detail": detail, "request_hash": hash}),
    )
}

pub fn cancel(state: &AppState, conn: &mut Connection, hash: &str, req: &Request) -> Response {
    if let Some(r) = refuse(state, req) {
        return r;
    }
    let ttl = state.config().failure_ttl_seconds;
    match qc::cancel_or_drop(conn, hash, ttl) {
        Ok(CancelOutcome::Cancelled(c)) => {
            if c.was_running {
                kill_off_thread(state, hash);
            }
            // A queued build ends exactly once in the statistics.
            state.stats.build_finished(
                BuildInfo::of_stored(hash, &c.job.request_json),
                false,
                0.0,
                Some(CANCELLED_DETAIL.into()),
            );
            state.queue.job_changed(hash);
            done("cancelled", hash)
        }
        Ok(CancelOutcome::Dropped(_)) => {
            state.queue.job_changed(hash);
            done("dropped", hash)
        }
        Ok(CancelOutcome::Unknown) => {
            Response::error_titled(404, "Not Found", "could not find provided request hash")
        }
        Err(e) => db_unavailable(e),
    }
}

/// Podman is asked on a thread of its own (each call has its deadline), so
/// the handler answers at once; only operators get here, one thread each.
fn kill_off_thread(state: &AppState, hash: &str) {
    let runtime = std::sync::Arc::clone(&state.queue.runtime);
    let owned = hash.to_string();
    let spawned = std::thread::Builder::new()
        .name("cancel-kill".into())
        .spawn(move || {
            if let Err(e) = qc::kill_containers(runtime.as_ref(), &owned) {
                log::warn!(
                    "cancel {owned}: cannot reach its containers ({e}); the build runs to its end and its outcome is discarded"
                );
            }
        });
    if let Err(e) = spawned {
        log::warn!(
            "cancel {hash}: cannot start a thread to kill its containers ({e}); the build runs to its end and its outcome is discarded"
        );
    }
}

pub fn retry(state: &AppState, conn: &mut Connection, hash: &str, req: &Request) -> Response {
    if let Some(r) = refuse(state, req) {
        return r;
    }
    match qc::retry(conn, hash) {
        Ok(RetryOutcome::Queued(job)) => {
            state.queue.wake();
            state.queue.job_changed(hash);
            // Counted like the POST that queues a build (README, "Statistics").
            state
                .stats
                .cache_miss(BuildInfo::of_stored(hash, &job.request_json));
            super::build::get_build(state, conn, hash)
        }
        Ok(RetryOutcome::Active(_)) => Response::error_titled(
            409,
            "Conflict",
            "a build of this request is already queued or running",
        ),
        Ok(RetryOutcome::Built) => Response::error_titled(
            409,
            "Conflict",
            "this request was built; DELETE it first to build it again",
        ),
        Ok(RetryOutcome::Unknown) => {
            Response::error_titled(404, "Not Found", "could not find provided request hash")
        }
        Err(e) => db_unavailable(e),
    }
}
