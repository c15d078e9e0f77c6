//! HTTP API: the server (accept thread + handler pool), the router, and the
//! handlers. Handlers get plain `Request`s and return plain `Response`s.

mod build;
pub mod metadata;
pub mod request;
pub mod response;
pub mod server;
pub mod store;

use crate::config::Config;
use crate::db;
use crate::faults::Faults;
use crate::queue::QueueShared;
use crate::upstream::Upstream;
use request::{Method, Request};
use response::Response;
use rusqlite::Connection;
use serde_json::json;
use std::sync::Arc;

/// What every handler thread shares.
pub struct AppState {
    pub config: Arc<Config>,
    pub upstream: Arc<Upstream>,
    pub queue: Arc<QueueShared>,
    /// Test-only fault hooks; empty in production.
    pub faults: Faults,
}

/// One per handler thread: the shared state plus its own connection.
pub struct Handler<'a> {
    state: &'a AppState,
    conn: Connection,
}

impl<'a> Handler<'a> {
    pub fn new(state: &'a AppState) -> Result<Handler<'a>, db::DbError> {
        Ok(Handler {
            state,
            conn: db::open(&state.config.database_path)?,
        })
    }

    pub fn handle(&mut self, req: &Request) -> Response {
        if let Some(hook) = &self.state.faults.handler {
            hook(&req.path);
        }
        if req.method == Method::Options {
            // CORS preflight; the server adds the Allow-* headers.
            return Response {
                status: 204,
                headers: vec![("Access-Control-Max-Age".into(), "86400".into())],
                body: response::Body::Empty,
            };
        }
        // `//x` → `/x`, for GET and HEAD only, as the reference does.
        if req.path.starts_with("//") {
            if matches!(req.method, Method::Get | Method::Head) {
                let trimmed = format!("/{}", req.path.trim_start_matches('/'));
                let location = if req.query.is_empty() {
                    trimmed
                } else {
                    format!("{trimmed}?{}", req.query)
                };
                return Response::redirect(&location);
            }
            return method_not_allowed("GET, HEAD");
        }
        self.route(req)
    }

    fn route(&mut self, req: &Request) -> Response {
        let state = self.state;
        let config = &state.config;
        let Some(route) = Route::of(&req.path) else {
            return not_found();
        };
        if !route.allows(&req.method) {
            return method_not_allowed(route.allowed());
        }
        match route {
            Route::Build => build::post_build(state, &mut self.conn, req),
            Route::BuildStatus(hash) => build::get_build(state, &self.conn, hash),
            Route::Health => health(state),
            Route::Stats => build::queue_stats(state, &self.conn),
            Route::Revision(version, target, subtarget) => {
                metadata::revision(config, &state.upstream, version, target, subtarget)
            }
            Route::Redirect(location) => Response::redirect(location),
            Route::Json => {
                metadata::route_json(config, &state.upstream, &req.path).unwrap_or_else(not_found)
            }
            Route::Store(rest) => store::serve_store(&config.store_path, rest, req.header("Range")),
        }
    }
}

/// The route table, written once: which handler a path goes to and which
/// methods it takes (everything but the build POST is GET/HEAD).
enum Route<'p> {
    Build,
    BuildStatus(&'p str),
    Health,
    Stats,
    Revision(&'p str, &'p str, &'p str),
    Redirect(&'static str),
    Json,
    Store(&'p str),
}

impl<'p> Route<'p> {
    fn of(path: &'p str) -> Option<Route<'p>> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        Some(match segments.as_slice() {
            ["api", "v1", "build"] => Route::Build,
            ["api", "v1", "build", hash] if !hash.is_empty() => Route::BuildStatus(hash),
            ["health"] => Route::Health,
            ["api", "v1", "stats"] => Route::Stats,
            ["api", "v1", "revision", version, target, subtarget] => {
                Route::Revision(version, target, subtarget)
            }
            // `/api/overview` is ours (docs/compatibility.md).
            ["api", "v1", "overview"] | ["api", "overview"] | ["overview"] => {
                Route::Redirect("/json/v1/overview.json")
            }
            ["api", "v1", "latest"] => Route::Redirect("/json/v1/latest.json"),
            ["json", "v1", ..] => Route::Json,
            ["store", ..] => Route::Store(path.strip_prefix("/store/").unwrap_or("")),
            _ => return None,
        })
    }

    fn allowed(&self) -> &'static str {
        match self {
            Route::Build => "POST",
            _ => "GET, HEAD",
        }
    }

    fn allows(&self, method: &Method) -> bool {
        match self {
            Route::Build => *method == Method::Post,
            _ => matches!(method, Method::Get | Method::Head),
        }
    }
}

/// Liveness: 200 whenever the process answers, so a supervisor does not
/// restart it in a loop while Podman is away. The container runtime's state
/// is a field: `up`, or `degraded` with the reason.
fn health(state: &AppState) -> Response {
    let runtime = state.queue.runtime_health.report();
    let mut body = json!({"status": "ok", "container_runtime": runtime.state()});
    if !runtime.up {
        body["container_runtime_detail"] = runtime.detail.into();
    }
    Response::json(200, &body)
}

fn not_found() -> Response {
    Response::error(404, "Not Found")
}

fn method_not_allowed(allow: &str) -> Response {
    Response::error(405, "Method Not Allowed").with_header("Allow", allow)
}
