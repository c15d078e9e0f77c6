//! HTTP API: the server (accept thread + handler pool + long-poll thread),
//! the route table (`routes`), and the handlers. Handlers get plain
//! `Request`s and return plain `Response`s (or park a long-poll).

mod auth;
mod build;
mod control;
pub mod docs;
pub mod longpoll;
pub mod metadata;
pub mod pages;
pub mod request;
pub mod response;
pub mod routes;
pub mod server;
pub mod stats;
pub mod store;

use crate::config::{Config, LiveConfig};
use crate::db;
use crate::faults::Faults;
use crate::metrics::{Endpoint, Metrics};
use crate::queue::QueueShared;
use crate::upstream::Upstream;
use request::{Method, Request};
use response::Response;
use routes::{Kind, Matched, Verb};
use rusqlite::Connection;
use serde_json::json;
use std::sync::Arc;

/// What every handler thread shares.
pub struct AppState {
    /// The configuration in force; read a snapshot with `config()`.
    pub live: Arc<LiveConfig>,
    pub upstream: Arc<Upstream>,
    pub queue: Arc<QueueShared>,
    /// Test-only fault hooks; empty in production.
    pub faults: Faults,
    /// overview.json, branches.json, latest.json, rendered once per state.
    pub branch_docs: metadata::BranchDocs,
    /// Prometheus counters; the server also counts what it answers itself.
    pub metrics: Arc<Metrics>,
    /// Statistics events go to the writer thread through this.
    pub stats: crate::stats::Recorder,
    /// Complete builds found in the store are answered through this.
    pub adopter: crate::adopt::Adopter,
}

impl AppState {
    /// The configuration in force now (SIGHUP may replace it).
    pub fn config(&self) -> Arc<Config> {
        self.live.get()
    }
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
            conn: db::open(&state.config().database_path)?,
        })
    }

    /// Answer one request and count the response by route and status; a
    /// long-poll on a build that is not final is parked instead (counted
    /// when it is answered).
    pub fn handle(&mut self, req: &Request) -> Outcome {
        if let Some(hook) = &self.state.faults.handler {
            hook(&req.path);
        }
        let (endpoint, outcome) = self.dispatch(req);
        if let Outcome::Respond(response) = &outcome {
            self.state.metrics.http_response(endpoint, response.status);
        }
        outcome
    }

    /// SQLite's `data_version`: changes whenever another connection (of
    /// this process or another) committed. `None` when it cannot be read.
    pub fn data_version(&self) -> Option<i64> {
        self.conn
            .pragma_query_value(None, "data_version", |r| r.get(0))
            .ok()
    }

    /// The current state of a build, as `GET /api/v1/build/{hash}` answers
    /// it; the long-poll thread renders parked requests with this.
    pub fn build_status(&self, hash: &str) -> Response {
        build::get_build(self.state, &self.conn, hash)
    }

    fn dispatch(&mut self, req: &Request) -> (Endpoint, Outcome) {
        let respond = |(e, r): (Endpoint, Response)| (e, Outcome::Respond(r));
        if req.method == Method::Options {
            // CORS preflight; the server adds the Allow-* headers.
            let r = Response {
                status: 204,
                headers: vec![("Access-Control-Max-Age".into(), "86400".into())],
                body: response::Body::Empty,
            };
            return respond((Endpoint::Options, r));
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
                return respond((Endpoint::Redirect, Response::redirect(&location)));
            }
            return respond((Endpoint::NotFound, method_not_allowed("GET, HEAD")));
        }
        let matched = routes::matching(&req.path);
        let Some(first) = matched.first() else {
            return respond((Endpoint::NotFound, not_found()));
        };
        let verb = match req.method {
            Method::Get | Method::Head => Some(Verb::Get),
            Method::Post => Some(Verb::Post),
            Method::Delete => Some(Verb::Delete),
            _ => None,
        };
        let Some(m) = matched.iter().find(|m| Some(m.route.verb) == verb) else {
            let endpoint = first.route.kind.endpoint();
            return respond((endpoint, method_not_allowed(&allowed(&matched))));
        };
        let endpoint = m.route.kind.endpoint();
        (endpoint, self.route(m, req))
    }

    fn route(&mut self, m: &Matched<'_>, req: &Request) -> Outcome {
        let state = self.state;
        let config = state.config();
        let respond = Outcome::Respond;
        match m.route.kind {
            Kind::Build => respond(build::post_build(state, &mut self.conn, req)),
            Kind::BuildStatus => longpoll::poll(state, &self.conn, m.param(0), &req.query),
            Kind::BuildCancel => respond(control::cancel(state, &mut self.conn, m.param(0), req)),
            Kind::BuildRetry => respond(control::retry(state, &mut self.conn, m.param(0), req)),
            Kind::Health => respond(health(state)),
            Kind::Stats => respond(stats::queue_stats(state, &self.conn)),
            Kind::StatsApi(name) => respond(stats::route(state, &self.conn, name, &req.query)),
            Kind::Metrics => respond(stats::metrics(state, &self.conn)),
            Kind::Page("docs") => respond(docs::page(req)),
            Kind::Page(name) => respond(pages::page(name, req)),
            Kind::Static => respond(pages::asset(m.param(0), req)),
            Kind::OpenApi => respond(docs::openapi(req)),
            Kind::Revision => respond(metadata::revision(
                &config,
                &state.upstream,
                m.param(0),
                m.param(1),
                m.param(2),
            )),
            Kind::Redirect(location) => respond(Response::redirect(location)),
            Kind::Json => respond(
                metadata::route_json(&config, &state.upstream, &state.branch_docs, &req.path)
                    .unwrap_or_else(not_found),
            ),
            Kind::Store => {
                let rest = req.path.strip_prefix("/store/").unwrap_or("");
                respond(store::serve_store(
                    &config.store_path,
                    rest,
                    req.header("Range"),
                ))
            }
        }
    }
}

/// What a handler gives back: a response now, or a long-poll to park.
pub enum Outcome {
    Respond(Response),
    Park(longpoll::Park),
}

/// The `Allow` header for a path: the methods of every route it matched.
fn allowed(matched: &[Matched<'_>]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for m in matched {
        let names: &[&str] = match m.route.verb {
            Verb::Get => &["GET", "HEAD"],
            Verb::Post => &["POST"],
            Verb::Delete => &["DELETE"],
        };
        for n in names {
            if !out.contains(n) {
                out.push(n);
            }
        }
    }
    out.join(", ")
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
