//! The build endpoints: POST /api/v1/build and GET|HEAD /api/v1/build/{hash}.
//! Response shapes follow the reference's `return_job_v1` exactly, key
//! order and absent keys included: clients switch on key presence (LuCI
//! tells queued from started by `queue_position`). Deliberate differences:
//! docs/compatibility.md.

use super::AppState;
use super::request::Request;
use super::response::Response;
use crate::adopt;
use crate::db::{self, DbError, jobs};
use crate::hash::request_hash;
use crate::models::{
    BuildRequest, JobStatus, Limits, Phase, parse_build_request, sanitize_profile,
};
use crate::queue;
use crate::stats::{self, BuildInfo};
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
        JobStatus::Failed | JobStatus::Completed | JobStatus::Cancelled => {
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
    db::read_snapshot(conn, |tx| {
        if let Some(result) = jobs::find_result(tx, hash, now)? {
            return Ok(Some(render_result(result)));
        }
        match jobs::find_visible_job(tx, hash, now)? {
            Some(job) => render_job(tx, &job).map(Some),
            None => Ok(None),
        }
    })
}

pub fn get_build(_state: &AppState, conn: &Connection, hash: &str) -> Response {
    match lookup(conn, hash) {
        Ok(Some(r)) => r,
        Ok(None) => hash_not_found(),
        Err(e) => db_unavailable(e),
    }
}

pub fn post_build(state: &AppState, conn: &mut Connection, req: &Request) -> Response {
    let config = state.config();
    let limits = Limits {
        max_defaults_length: config.max_defaults_length,
        max_custom_rootfs_size_mb: config.max_custom_rootfs_size_mb,
    };
    let mut build = match parse_build_request(&req.body, limits) {
        Ok(b) => b,
        Err(e) => {
            state.stats.rejected(422);
            return Response::json(422, &e.body());
        }
    };
    // Older LuCI sends the raw board name.
    build.profile = sanitize_profile(&build.profile);
    let hash = request_hash(&build);
    let client = resolve_client(&build, req.header("User-Agent"));
    let stat = BuildInfo {
        request_hash: hash.clone(),
        version: build.version.clone(),
        target: build.target.clone(),
        profile: build.profile.clone(),
        client: client.clone(),
        diff_packages: build.diff_packages,
        packages: Vec::new(),
    };
    // Statistics (README, "Statistics"): a known result, job or replayed
    // failure is a cache hit; only a newly queued build is a miss.
    match lookup(conn, &hash) {
        Ok(Some(r)) => {
            state.stats.cache_hit(stat);
            return r;
        }
        Ok(None) => {}
        Err(e) => {
            state.stats.rejected(503);
            return db_unavailable(e);
        }
    }

    enqueue(state, conn, &build, stat)
}

/// A request nothing is known about: validate it (400), answer it from a
/// complete build already in the store, else queue it (529 when the queue
/// is full) and answer like a poll would.
fn enqueue(
    state: &AppState,
    conn: &mut Connection,
    build: &BuildRequest,
    stat: BuildInfo,
) -> Response {
    let config = state.config();
    let hash = stat.request_hash.as_str();
    let mut validated = build.clone();
    if let Err(e) = check_request(&config, &state.upstream, &mut validated) {
        log::info!("validation failure for {hash}: {}", e.detail());
        state.stats.rejected(e.status());
        return Response::from(&e);
    }
    let bin_dir = request_hash(&validated);
    if let Some(r) = adopt_from_store(state, conn, &validated, &bin_dir, &stat) {
        return r;
    }
    let enqueued_at = queue::iso_now();
    let new_job = jobs::NewJob {
        request_hash: hash,
        request: &validated,
        bin_dir: &bin_dir,
        client: &stat.client,
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
            let packages = extra_packages(state, &validated);
            state.stats.cache_miss(BuildInfo { packages, ..stat });
            job
        }
        Ok(jobs::EnqueueOutcome::Existing(job)) => {
            state.stats.cache_hit(stat);
            job
        }
        // Finished while we validated: answer with the result.
        Ok(jobs::EnqueueOutcome::AlreadyBuilt) => {
            let hash = stat.request_hash.clone();
            state.stats.cache_hit(stat);
            return get_build(state, conn, &hash);
        }
        Ok(jobs::EnqueueOutcome::Overloaded(n)) => {
            log::warn!("refusing {hash}: {n} jobs pending");
            state.stats.rejected(529);
            return Response::error_titled(
                529,
                "Server overloaded",
                &format!("server overload, queue contains too many build requests: {n}"),
            );
        }
        Err(e) => {
            state.stats.rejected(503);
            return db_unavailable(e);
        }
    };
    render_job(conn, &job).unwrap_or_else(db_unavailable)
}

/// A complete build of the request already in `store/<bin_dir>/` (the
/// reference server's, or ours from before the database was reset) is
/// answered at once instead of rebuilt (`adopt`).
fn adopt_from_store(
    state: &AppState,
    conn: &mut Connection,
    validated: &BuildRequest,
    bin_dir: &str,
    stat: &BuildInfo,
) -> Option<Response> {
    let candidate = adopt::Candidate {
        request_hash: &stat.request_hash,
        request: validated,
        bin_dir,
        client: &stat.client,
    };
    match state
        .adopter
        .adopt(&state.config(), &state.metrics, conn, &candidate)
    {
        adopt::Outcome::Adopted(body) => {
            state.stats.adopted(stat.clone());
            Some(render_result(body))
        }
        adopt::Outcome::AlreadyBuilt => {
            state.stats.cache_hit(stat.clone());
            Some(get_build(state, conn, &stat.request_hash))
        }
        adopt::Outcome::NotAdopted => None,
    }
}

/// The requested packages that are neither default nor profile packages,
/// from the target's profiles.json that validation just loaded (so this is
/// a memory read); empty when it is not available.
fn extra_packages(state: &AppState, validated: &BuildRequest) -> Vec<String> {
    let Some(path) = crate::config::version_path(&state.config().branches, &validated.version)
    else {
        return Vec::new();
    };
    match state.upstream.profiles(&path, &validated.target) {
        Ok(Some(profiles)) => {
            stats::extras_from_profiles(&validated.packages, profiles.raw(), &validated.profile)
        }
        _ => Vec::new(),
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
