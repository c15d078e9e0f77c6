//! A stand-in for downloads.openwrt.org: a real HTTP server on 127.0.0.1
//! serving a directory (normally `tests/fixtures/upstream`), with request
//! counters per path and switches for delays, failures and replaced files.
//! std + tiny_http only, so every test tier can use it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a held request waits for `release` at most: a safety net so a
/// broken test cannot hang the suite, never part of what a test asserts.
const HOLD_LIMIT: Duration = Duration::from_secs(60);

/// Requests for one path that wait until the test releases them.
#[derive(Debug, Default, Clone, Copy)]
struct Hold {
    arrived: u64,
    released: bool,
    /// A request gave up waiting (HOLD_LIMIT) and was answered anyway.
    expired: bool,
}

#[derive(Default)]
struct State {
    root: PathBuf,
    hits: Mutex<HashMap<String, u64>>,
    total: AtomicU64,
    not_modified: AtomicU64,
    delay_ms: AtomicU64,
    holds: Mutex<HashMap<String, Hold>>,
    hold_changed: Condvar,
    /// 0 = serve normally, else answer every request with this status.
    fail_status: AtomicU16,
    /// Replaced files: `Some(body)` served instead of the disk, `None` = 404.
    overrides: Mutex<HashMap<String, Option<Vec<u8>>>>,
}

pub struct FakeUpstream {
    url: String,
    state: Arc<State>,
    server: Arc<tiny_http::Server>,
    accept: Option<JoinHandle<()>>,
}

/// `/a/b?x` and `a/b` name the same file.
fn key(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    path.trim_start_matches('/').to_owned()
}

/// FNV-1a: a stable ETag without extra crates.
fn etag(body: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

impl FakeUpstream {
    /// Serve `tests/fixtures/upstream` of this crate.
    pub fn start_fixtures() -> FakeUpstream {
        FakeUpstream::start(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upstream"))
    }

    pub fn start(root: impl Into<PathBuf>) -> FakeUpstream {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind 127.0.0.1:0"));
        let port = server.server_addr().to_ip().expect("an IP listener").port();
        let state = Arc::new(State {
            root: root.into(),
            ..State::default()
        });
        let accept = {
            let server = Arc::clone(&server);
            let state = Arc::clone(&state);
            thread::spawn(move || {
                for request in server.incoming_requests() {
                    let state = Arc::clone(&state);
                    // One thread per request: a delayed path must not hold
                    // up the others.
                    thread::spawn(move || serve(&state, request));
                }
            })
        };
        FakeUpstream {
            url: format!("http://127.0.0.1:{port}"),
            state,
            server,
            accept: Some(accept),
        }
    }

    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests received for one path (leading `/` optional).
    pub fn hits(&self, path: &str) -> u64 {
        let hits = self.state.hits.lock().unwrap();
        hits.get(&key(path)).copied().unwrap_or(0)
    }

    pub fn total_hits(&self) -> u64 {
        self.state.total.load(Ordering::SeqCst)
    }

    /// Requests answered with 304 Not Modified.
    pub fn not_modified_count(&self) -> u64 {
        self.state.not_modified.load(Ordering::SeqCst)
    }

    pub fn reset_hits(&self) {
        self.state.hits.lock().unwrap().clear();
        self.state.total.store(0, Ordering::SeqCst);
        self.state.not_modified.store(0, Ordering::SeqCst);
    }

    /// Delay every answer.
    pub fn set_delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// From now on, requests for `path` wait until `release(path)`.
    pub fn hold(&self, path: &str) {
        self.state
            .holds
            .lock()
            .unwrap()
            .insert(key(path), Hold::default());
    }

    /// Wait until `n` requests for the held `path` arrived; false when
    /// `limit` passed first.
    pub fn wait_held(&self, path: &str, n: u64, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut holds = self.state.holds.lock().unwrap();
        loop {
            if holds.get(&key(path)).is_some_and(|h| h.arrived >= n) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            holds = self.state.hold_changed.wait_timeout(holds, left).unwrap().0;
        }
    }

    /// Whether a request for the held `path` is still waiting for
    /// `release` (neither released nor given up).
    pub fn is_holding(&self, path: &str) -> bool {
        let holds = self.state.holds.lock().unwrap();
        holds
            .get(&key(path))
            .is_some_and(|h| h.arrived > 0 && !h.released && !h.expired)
    }

    /// Let the held requests for `path` (and later ones) through.
    pub fn release(&self, path: &str) {
        if let Some(h) = self.state.holds.lock().unwrap().get_mut(&key(path)) {
            h.released = true;
        }
        self.state.hold_changed.notify_all();
    }

    /// Answer everything with 503 (true) or serve normally (false).
    pub fn set_failing(&self, failing: bool) {
        self.set_fail_status(if failing { 503 } else { 0 });
    }

    /// Answer everything with this status; 0 serves normally.
    pub fn set_fail_status(&self, status: u16) {
        self.state.fail_status.store(status, Ordering::SeqCst);
    }

    /// Serve `body` for `path` instead of the file on disk.
    pub fn set_file(&self, path: &str, body: impl Into<Vec<u8>>) {
        self.state
            .overrides
            .lock()
            .unwrap()
            .insert(key(path), Some(body.into()));
    }

    /// Answer 404 for `path` even if the file exists.
    pub fn remove_file(&self, path: &str) {
        self.state.overrides.lock().unwrap().insert(key(path), None);
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        for h in self.state.holds.lock().unwrap().values_mut() {
            h.released = true;
        }
        self.state.hold_changed.notify_all();
        self.server.unblock();
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("valid header")
}

fn wait_if_held(state: &State, path: &str) {
    let deadline = Instant::now() + HOLD_LIMIT;
    let mut holds = state.holds.lock().unwrap();
    let Some(hold) = holds.get_mut(path) else {
        return;
    };
    hold.arrived += 1;
    state.hold_changed.notify_all();
    loop {
        let hold = holds.get_mut(path).expect("holds are never removed");
        if hold.released {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            hold.expired = true;
            return;
        }
        holds = state.hold_changed.wait_timeout(holds, left).unwrap().0;
    }
}

fn serve(state: &State, request: tiny_http::Request) {
    let path = key(request.url());
    *state.hits.lock().unwrap().entry(path.clone()).or_insert(0) += 1;
    state.total.fetch_add(1, Ordering::SeqCst);

    let delay = Duration::from_millis(state.delay_ms.load(Ordering::SeqCst));
    if !delay.is_zero() {
        thread::sleep(delay);
    }
    wait_if_held(state, &path);

    let fail = state.fail_status.load(Ordering::SeqCst);
    if fail != 0 {
        let _ = request.respond(tiny_http::Response::from_string("failing").with_status_code(fail));
        return;
    }

    let overridden = state.overrides.lock().unwrap().get(&path).cloned();
    let body = match overridden {
        Some(body) => body,
        None if path.split('/').any(|s| s == "..") => None,
        None => std::fs::read(state.root.join(&path))
            .ok()
            .filter(|_| state.root.join(&path).is_file()),
    };
    let Some(body) = body else {
        let _ =
            request.respond(tiny_http::Response::from_string("not found").with_status_code(404));
        return;
    };
    let tag = etag(&body);
    let unchanged = request
        .headers()
        .iter()
        .any(|h| h.field.equiv("If-None-Match") && h.value.as_str() == tag);
    if unchanged {
        state.not_modified.fetch_add(1, Ordering::SeqCst);
        let _ = request.respond(tiny_http::Response::empty(304).with_header(header("ETag", &tag)));
        return;
    }
    let _ = request.respond(
        tiny_http::Response::from_data(body)
            .with_header(header("ETag", &tag))
            .with_header(header("Content-Type", "application/octet-stream")),
    );
}
