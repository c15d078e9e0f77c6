//! The build endpoints: POST /api/v1/build and GET|HEAD /api/v1/build/{hash}.
//! Response shapes follow the reference exactly: clients switch on key
//! presence.

use super::AppState;
use super::request::Request;
use super::response::Response;
use crate::db::{self, DbError, jobs};
use crate::hash::request_hash;
use crate::models::{BuildRequest, Limits, parse_build_request};
use crate::queue;
use crate::stats::{self, BuildInfo};
use crate::upstream::versions;
use crate::validate::check_request;
use rusqlite::Connection;
use serde_json::{Map, Value, json};

fn hash_not_found() -> Response {
    Response::error_titled(404, "Not Found", "could not find provided request hash")
}

fn db_unavailable(e: DbError) -> Response {
    log::error!("database error while answering a request: {e}");
    Response::error(503, "Database temporarily unavailable, try again shortly")
        .with_header("Retry-After", "2")
}

fn with_status_headers(r: Response, phase: &str, position: i64) -> Response {
    r.with_header("X-Imagebuilder-Status", phase)
        .with_header("X-Queue-Position", &position.to_string())
}

/// `client` for statistics: the body's, else an `auc` User-Agent, else
/// `unknown/0` (never an error without a User-Agent, decision 3).
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
    let request: Value = serde_json::from_str(&job.request_json).unwrap_or(Value::Null);
    match job.status.as_str() {
        "pending" => {
            let position = jobs::queue_position(conn, job.id)?;
            let body = json!({
                "status": 202,
                "detail": "queued",
                "queue_position": position,
                "enqueued_at": job.enqueued_at,
                "request_hash": job.request_hash,
            });
            Ok(with_status_headers(
                Response::json(202, &body),
                "queued",
                position,
            ))
        }
        "running" => {
            // No `queue_position` here: LuCI tells queued from started by it.
            let mut body = Map::new();
            body.insert("detail".into(), "started".into());
            body.insert(
                "imagebuilder_status".into(),
                job.imagebuilder_status.clone().into(),
            );
            body.insert("request".into(), request);
            body.insert("status".into(), 202.into());
            body.insert("enqueued_at".into(), job.enqueued_at.clone().into());
            body.insert("request_hash".into(), job.request_hash.clone().into());
            Ok(with_status_headers(
                Response::json(202, &Value::Object(body)),
                &job.imagebuilder_status,
                0,
            ))
        }
        _ => {
            let mut body = Map::new();
            let detail = job
                .detail
                .clone()
                .filter(|d| d != "init")
                .unwrap_or_else(|| "failed".into());
            body.insert("detail".into(), detail.into());
            body.insert("imagebuilder_status".into(), "failed".into());
            body.insert("request".into(), request);
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
            Ok(with_status_headers(
                Response::json(500, &Value::Object(body)),
                "failed",
                0,
            ))
        }
    }
}

fn render_result(result_json: String) -> Response {
    let r = Response {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: super::response::Body::Bytes(result_json.into_bytes()),
    };
    with_status_headers(r, "done", 0)
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
        Err(e) => {
            state.stats.rejected(422);
            return Response::json(422, &e.body());
        }
    };
    // Older LuCI sends the raw board name.
    build.profile = build.profile.replace(',', "_");
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

    let mut validated = build.clone();
    if let Err(e) = check_request(config, &state.upstream, &mut validated) {
        log::info!("validation failure for {hash}: {}", e.detail());
        state.stats.rejected(e.status());
        return e.to_response();
    }
    let bin_dir = request_hash(&validated);
    let request_json = serde_json::to_string(&validated).unwrap_or_default();
    let enqueued_at = queue::iso_now();
    let new_job = jobs::NewJob {
        request_hash: &hash,
        request_json: &request_json,
        bin_dir: &bin_dir,
        version: &validated.version,
        target: &validated.target,
        profile: &validated.profile,
        diff_packages: validated.diff_packages,
        client: &client,
        enqueued_at: &enqueued_at,
        max_pending: config.max_pending_jobs,
        max_attempts: queue::MAX_ATTEMPTS,
    };
    let outcome = match jobs::enqueue(conn, &new_job) {
        Ok(o) => o,
        Err(e) => {
            state.stats.rejected(503);
            return db_unavailable(e);
        }
    };
    let job = match outcome {
        jobs::EnqueueOutcome::Created(job) => {
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
        jobs::EnqueueOutcome::Existing(job) => {
            state.stats.cache_hit(stat);
            job
        }
        // Finished while we validated: answer with the result.
        jobs::EnqueueOutcome::AlreadyBuilt => {
            state.stats.cache_hit(stat);
            return match lookup(conn, &hash) {
                Ok(Some(r)) => r,
                Ok(None) => hash_not_found(),
                Err(e) => db_unavailable(e),
            };
        }
        jobs::EnqueueOutcome::Overloaded(n) => {
            log::warn!("refusing {hash}: {n} jobs pending");
            state.stats.rejected(529);
            return Response::error_titled(
                529,
                "Server overloaded",
                &format!("server overload, queue contains too many build requests: {n}"),
            );
        }
    };
    render_job(conn, &job).unwrap_or_else(db_unavailable)
}

/// The requested packages that are neither default nor profile packages,
/// from the target's profiles.json that validation just loaded (so this is
/// a memory read); empty when it is not available.
fn extra_packages(state: &AppState, validated: &BuildRequest) -> Vec<String> {
    let Some(path) = versions::version_path(&state.config.branches, &validated.version) else {
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
