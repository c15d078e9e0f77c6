//! The build endpoints: POST /api/v1/build, GET|HEAD /api/v1/build/{hash},
//! GET /api/v1/stats. Response shapes follow the reference's
//! `return_job_v1` exactly, key order and absent keys included: clients
//! switch on key presence (LuCI tells queued from started by
//! `queue_position`). Deliberate differences: docs/compatibility.md.

use super::AppState;
use super::request::Request;
use super::response::Response;
use crate::db::{self, DbError, jobs, stats};
use crate::hash::request_hash;
use crate::models::{
    BuildRequest, JobStatus, Limits, Phase, parse_build_request, sanitize_profile,
};
use crate::queue;
use crate::validate::{ValidationError, check_request};
use rusqlite::Connection;
use serde_json::{Map, Value, json};

/// A refused request as the reference answers it: `{"detail", "status"}`
/// (400; 502/504 when upstream metadata was unavailable).
impl From<&ValidationError> for Response {
    fn from(e: &ValidationError) -> Response {
        Response::error(e.status(), &e.detail())
    }
}

fn hash_not_found() -> Response {
    Response::error_titled(404, "Not Found", "could not find provided request hash")
}

fn db_unavailable(e: DbError) -> Response {
    log::error!("database error while answering a request: {e}");
    Response::error(503, "Database temporarily unavailable, try again shortly")
        .with_header("Retry-After", "2")
}

fn with_status_headers(r: Response, phase: Phase, position: i64) -> Response {
    r.with_header("X-Imagebuilder-Status", phase.as_str())
        .with_header("X-Queue-Position", &position.to_string())
}

/// `client` for statistics: the body's, else an `auc` User-Agent, else
/// `unknown/0`, also without any User-Agent (docs/compatibility.md,
/// "Missing User-Agent").
pub fn resolve_client(req: &BuildRequest, user_agent: Option<&str>) -> String {
    if let Some(c) = req.client.as_deref().filter(|c| !c.is_empty()) {
        return c.to_string();
    }
    match user_agent {
        Some(ua) if ua.starts_with("auc") => ua.replace(" (", "/").replace(')', ""),
        _ => "unknown/0".to_string(),
    }
}

/// Render a job row the way the reference's `return_job_v1` does.
fn render_job(conn: &Connection, job: &jobs::JobRow) -> Result<Response, DbError> {
    Ok(match job.status {
        JobStatus::Pending => {
            let position = jobs::queue_position(conn, job.id)?;
            with_status_headers(
                Response::json(202, &queued_body(job, position)),
                Phase::Queued,
                position,
            )
        }
        JobStatus::Running => with_status_headers(
            Response::json(202, &started_body(job)),
            job.imagebuilder_status,
            0,
        ),
        // Only failed jobs are visible among the finished ones.
        JobStatus::Failed | JobStatus::Completed => {
            with_status_headers(Response::json(500, &failed_body(job)), Phase::Failed, 0)
        }
    })
}

fn queued_body(job: &jobs::JobRow, position: i64) -> Value {
    json!({
        "status": 202,
        "detail": "queued",
        "queue_position": position,
        "enqueued_at": job.enqueued_at,
        "request_hash": job.request_hash,
    })
}

/// No `queue_position` here: LuCI tells queued from started by it.
fn started_body(job: &jobs::JobRow) -> Value {
    let mut body = Map::new();
    body.insert("detail".into(), "started".into());
    body.insert(
        "imagebuilder_status".into(),
        job.imagebuilder_status.as_str().into(),
    );
    body.insert("request".into(), request_echo(job));
    body.insert("status".into(), 202.into());
    body.insert("enqueued_at".into(), job.enqueued_at.clone().into());
    body.insert("request_hash".into(), job.request_hash.clone().into());
    Value::Object(body)
}

fn failed_body(job: &jobs::JobRow) -> Value {
    let mut body = Map::new();
    let detail = job
        .detail
        .clone()
        .filter(|d| d != "init")
        .unwrap_or_else(|| "failed".into());
    body.insert("detail".into(), detail.into());
    body.insert("imagebuilder_status".into(), Phase::Failed.as_str().into());
    body.insert("request".into(), request_echo(job));
    body.insert(
        "stdout".into(),
        job.stdout.clone().unwrap_or_default().into(),
    );
    body.insert(
        "stderr".into(),
        job.stderr.clone().unwrap_or_default().into(),
    );
    if let Some(cmd) = job
        .build_cmd
        .as_deref()
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
    {
        body.insert("build_cmd".into(), cmd);
    }
    body.insert("status".into(), 500.into());
    body.insert("enqueued_at".into(), job.enqueued_at.clone().into());
    body.insert("request_hash".into(), job.request_hash.clone().into());
    Value::Object(body)
}

/// The stored request as the bodies echo it (docs/compatibility.md, "The
/// `request` echo"): its stored JSON as it is, not re-encoded.
fn request_echo(job: &jobs::JobRow) -> Value {
    serde_json::from_str(&job.request_json).unwrap_or(Value::Null)
}

fn render_result(result_json: String) -> Response {
    let r = Response {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: super::response::Body::Bytes(result_json.into_bytes()),
    };
    with_status_headers(r, Phase::Done, 0)
}

/// The current state of a request hash, or `None` when nothing is known.
fn lookup(conn: &Connection, hash: &str) -> Result<Option<Response>, DbError> {
    let now = db::now_ms();
    // One read transaction, so a job completing between the two queries
    // cannot make a finished build look unknown.
    let tx = conn.unchecked_transaction()?;
    if let Some(result) = jobs::find_result(&tx, hash, now)? {
        return Ok(Some(render_result(result)));
    }
    match jobs::find_visible_job(&tx, hash, now)? {
        Some(job) => render_job(&tx, &job).map(Some),
        None => Ok(None),
    }
}

pub fn get_build(_state: &AppState, conn: &Connection, hash: &str) -> Response {
    match lookup(conn, hash) {
        Ok(Some(r)) => r,
        Ok(None) => hash_not_found(),
        Err(e) => db_unavailable(e),
    }
}

pub fn post_build(state: &AppState, conn: &mut Connection, req: &Request) -> Response {
    let config = &state.config;
    let limits = Limits {
        max_defaults_length: config.max_defaults_length,
        max_custom_rootfs_size_mb: config.max_custom_rootfs_size_mb,
    };
    let mut build = match parse_build_request(&req.body, limits) {
        Ok(b) => b,
        Err(e) => return Response::json(422, &e.body()),
    };
    // Older LuCI sends the raw board name.
    build.profile = sanitize_profile(&build.profile);
    let hash = request_hash(&build);
    let client = resolve_client(&build, req.header("User-Agent"));
    let event = stats::StatEvent {
        request_hash: Some(&hash),
        version: &build.version,
        target: &build.target,
        profile: &build.profile,
        client: &client,
        diff_packages: build.diff_packages,
        packages: &build.packages,
        duration_s: None,
    };
    let looked_up = lookup(conn, &hash);
    // Both events in one commit: this is the hot path of every poll-less
    // client re-POSTing, and each SQLite commit costs more than the lookup.
    let events: &[&str] = match &looked_up {
        Ok(Some(r)) if r.status == 200 => &[stats::REQUEST, stats::CACHE_HIT],
        Ok(None) => &[stats::REQUEST, stats::CACHE_MISS],
        _ => &[stats::REQUEST],
    };
    record(conn, events, &event);
    match looked_up {
        Ok(Some(r)) => return r,
        Ok(None) => {}
        Err(e) => return db_unavailable(e),
    }

    enqueue(state, conn, &hash, &build, &client)
}

/// A request nothing is known about: validate it (400), then queue it
/// (529 when the queue is full) and answer like a poll would.
fn enqueue(
    state: &AppState,
    conn: &mut Connection,
    hash: &str,
    build: &BuildRequest,
    client: &str,
) -> Response {
    let config = &state.config;
    let mut validated = build.clone();
    if let Err(e) = check_request(config, &state.upstream, &mut validated) {
        log::info!("validation failure for {hash}: {}", e.detail());
        return Response::from(&e);
    }
    let bin_dir = request_hash(&validated);
    let enqueued_at = queue::iso_now();
    let new_job = jobs::NewJob {
        request_hash: hash,
        request: &validated,
        bin_dir: &bin_dir,
        client,
        enqueued_at: &enqueued_at,
        max_pending: config.max_pending_jobs,
        max_attempts: queue::MAX_ATTEMPTS,
    };
    let job = match jobs::enqueue(conn, &new_job) {
        Ok(jobs::EnqueueOutcome::Created(job)) => {
            log::info!(
                "queued {hash} ({} {} {})",
                validated.version,
                validated.target,
                validated.profile
            );
            state.queue.wake();
            job
        }
        Ok(jobs::EnqueueOutcome::Existing(job)) => job,
        // Finished while we validated: answer with the result.
        Ok(jobs::EnqueueOutcome::AlreadyBuilt) => return get_build(state, conn, hash),
        Ok(jobs::EnqueueOutcome::Overloaded(n)) => {
            log::warn!("refusing {hash}: {n} jobs pending");
            return Response::error_titled(
                529,
                "Server overloaded",
                &format!("server overload, queue contains too many build requests: {n}"),
            );
        }
        Err(e) => return db_unavailable(e),
    };
    render_job(conn, &job).unwrap_or_else(db_unavailable)
}

fn record(conn: &Connection, events: &[&str], e: &stats::StatEvent<'_>) {
    if let Err(err) = stats::record_all(conn, events, e) {
        log::warn!("recording {events:?} statistics failed: {err}");
    }
}

pub fn queue_stats(state: &AppState, conn: &Connection) -> Response {
    match jobs::queue_counts(conn) {
        Ok(c) => Response::json(
            200,
            &json!({
                "queue_length": c.pending,
                "pending": c.pending,
                "running": c.running,
                "workers": state.config.worker_concurrent,
                "workers_busy": state.queue.inflight.len(),
                // `degraded` while Podman does not answer: jobs stay queued.
                "container_runtime": state.queue.runtime_health.state(),
            }),
        ),
        Err(e) => db_unavailable(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_resolution() {
        let mut r = BuildRequest::default();
        assert_eq!(resolve_client(&r, None), "unknown/0");
        assert_eq!(resolve_client(&r, Some("Mozilla/5.0")), "unknown/0");
        assert_eq!(resolve_client(&r, Some("auc/0.3.2-1")), "auc/0.3.2-1");
        assert_eq!(resolve_client(&r, Some("auc (0.3.2)")), "auc/0.3.2");
        r.client = Some("luci/1.0".into());
        assert_eq!(resolve_client(&r, Some("auc/1")), "luci/1.0");
    }
}
