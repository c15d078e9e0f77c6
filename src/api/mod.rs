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
        let get = matches!(req.method, Method::Get | Method::Head);
        let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
        match segments.as_slice() {
            ["api", "v1", "build"] => match req.method {
                Method::Post => build::post_build(state, &mut self.conn, req),
                _ => method_not_allowed("POST"),
            },
            ["api", "v1", "build", hash] if !hash.is_empty() => {
                if get {
                    build::get_build(state, &self.conn, hash)
                } else {
                    method_not_allowed("GET, HEAD")
                }
            }
            _ if !get => {
                if self.known_get_path(&segments) {
                    method_not_allowed("GET, HEAD")
                } else {
                    not_found()
                }
            }
            ["health"] => Response::json(200, &json!({"status": "ok"})),
            ["api", "v1", "stats"] => build::queue_stats(state, &self.conn),
            ["api", "v1", "revision", version, target, subtarget] => {
                metadata::revision(config, &state.upstream, version, target, subtarget)
            }
            ["api", "v1", "overview"] | ["api", "overview"] | ["overview"] => {
                Response::redirect("/json/v1/overview.json")
            }
            ["api", "v1", "latest"] => Response::redirect("/json/v1/latest.json"),
            ["json", "v1", ..] => {
                metadata::route_json(config, &state.upstream, &req.path).unwrap_or_else(not_found)
            }
            ["store", ..] => {
                let rest = req.path.strip_prefix("/store/").unwrap_or("");
                let head = req.method == Method::Head;
                store::serve_store(&config.store_path, rest, req.header("Range"), head)
            }
            _ => not_found(),
        }
    }

    fn known_get_path(&self, segments: &[&str]) -> bool {
        matches!(
            segments,
            ["health"]
                | ["api", "v1", "stats"]
                | ["api", "v1", "revision", _, _, _]
                | ["api", "v1", "overview"]
                | ["api", "overview"]
                | ["overview"]
                | ["api", "v1", "latest"]
                | ["json", "v1", ..]
                | ["store", ..]
        )
    }
}

fn not_found() -> Response {
    Response::error(404, "Not Found")
}

fn method_not_allowed(allow: &str) -> Response {
    Response::error(405, "Method Not Allowed").with_header("Allow", allow)
}
