//! HTTP server behaviour independent of builds: routing errors, limits,
//! CORS, redirects, HEAD, and staying responsive with busy handlers.

mod common;

use asu_builder::container::podman::Podman;
use asu_builder::faults::Faults;
use common::http::{self, Reply};
use common::testapp::{TestApp, config};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

fn start(threads: usize) -> (tempfile::TempDir, TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), "http://127.0.0.1:9");
    cfg.server_threads = threads;
    cfg.cors_allow_origin = "https://luci.example".into();
    let runtime = Arc::new(Podman::new(&dir.path().join("absent.sock")));
    let app = TestApp::start(cfg, runtime);
    (dir, app)
}

fn assert_cors(r: &Reply) {
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("https://luci.example"),
        "CORS header missing on {}",
        r.status
    );
    assert!(r.header("Access-Control-Allow-Methods").is_some());
}

#[test]
fn stats_and_health_answer() {
    let (_d, app) = start(4);
    let r = http::get(&app.url("/api/v1/stats"));
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["queue_length"], 0);
    assert_eq!(body["running"], 0);
    assert_eq!(body["workers"], 2);
    assert_cors(&r);
    assert_eq!(http::get(&app.url("/health")).status, 200);
}

#[test]
fn unknown_paths_wrong_methods_and_preflight() {
    let (_d, app) = start(4);
    let r = http::get(&app.url("/nope"));
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["status"], 404);
    assert_eq!(r.json()["detail"], "Not Found");
    assert_cors(&r);

    let r = http::get(&app.url("/api/v1/build"));
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("POST"));
    assert_eq!(r.json()["status"], 405);
    assert_cors(&r);

    let r = http::post_json(&app.url("/api/v1/stats"), "{}");
    assert_eq!(r.status, 405);
    let r = http::post_json(&app.url("/api/v1/build/abc"), "{}");
    assert_eq!(r.status, 405);
    // The reference redirects `//x` for GET only.
    let r = http::post_json(&app.url("//api/v1/build"), "{}");
    assert_eq!(r.status, 405);

    let r = http::options(&app.url("/api/v1/build"));
    assert_eq!(r.status, 204);
    assert_cors(&r);
    assert!(r.header("Access-Control-Allow-Headers").is_some());
}

#[test]
fn redirects_keep_cors_and_are_relative() {
    let (_d, app) = start(4);
    for (from, to) in [
        ("//api/v1/stats", "/api/v1/stats"),
        ("///json/v1/overview.json?x=1", "/json/v1/overview.json?x=1"),
        ("/api/v1/overview", "/json/v1/overview.json"),
        ("/api/overview", "/json/v1/overview.json"),
        ("/overview", "/json/v1/overview.json"),
        ("/api/v1/latest", "/json/v1/latest.json"),
    ] {
        let r = http::get(&app.url(from));
        assert_eq!(r.status, 301, "{from}");
        assert_eq!(r.header("Location"), Some(to), "{from}");
        assert_cors(&r);
    }
}

#[test]
fn head_has_headers_and_no_body() {
    let (_d, app) = start(4);
    let get = http::get(&app.url("/api/v1/stats"));
    let head = http::head(&app.url("/api/v1/stats"));
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("Content-Length").map(str::to_owned),
        Some(get.body.len().to_string())
    );
}

/// Sends raw bytes, then reads until the server closes (or `limit`).
fn exchange(app: &TestApp, bytes: &[u8], limit: Duration) -> String {
    let mut s = TcpStream::connect(app.addr_str()).unwrap();
    s.set_read_timeout(Some(limit)).unwrap();
    // The server may refuse before everything is written; that is fine.
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn oversized_bodies_get_413_and_a_close() {
    let (_d, app) = start(4);
    // A declared length over the limit is refused without reading a byte.
    let head = "POST /api/v1/build HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\n\r\n";
    let answer = exchange(&app, head.as_bytes(), Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("Connection: close"), "{answer}");
    assert!(answer.contains("\"status\":413"), "{answer}");
    assert!(answer.contains("Access-Control-Allow-Origin: https://luci.example"));
    // Exactly one answer, then the server closed the connection.
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");

    // A chunked body that grows past the limit is cut off the same way.
    let limit = app.config.server_max_body_bytes;
    let mut chunked = format!(
        "POST /api/v1/build HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        limit + 1
    )
    .into_bytes();
    chunked.extend(std::iter::repeat_n(b'x', 1000));
    let answer = exchange(&app, &chunked, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(http::get(&app.url("/health")).status, 200);
}

/// Open a POST that announces a body and sends only its first byte.
fn stalled_upload(app: &TestApp) -> TcpStream {
    let mut s = TcpStream::connect(app.addr_str()).unwrap();
    write!(
        s,
        "POST /api/v1/build HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200000\r\n\r\n{{"
    )
    .unwrap();
    s.flush().unwrap();
    s
}

#[test]
fn stalled_uploads_never_reach_a_handler() {
    // One handler only: if a stalled upload held it, nothing would answer.
    let (_d, app) = start(1);
    let stalled: Vec<TcpStream> = (0..8).map(|_| stalled_upload(&app)).collect();
    for _ in 0..5 {
        let r = http::get(&app.url("/api/v1/stats"));
        assert_eq!(r.status, 200);
    }
    drop(stalled);
}

#[test]
fn a_slow_upload_gets_408_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), "http://127.0.0.1:9");
    cfg.server_request_timeout_seconds = 1;
    let runtime = Arc::new(Podman::new(&dir.path().join("absent.sock")));
    let app = TestApp::start(cfg, runtime);
    let mut s = stalled_upload(&app);
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(out.contains("Connection: close"), "{out}");
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), "http://127.0.0.1:9");
    cfg.server_keepalive_timeout_seconds = 1;
    let runtime = Arc::new(Podman::new(&dir.path().join("absent.sock")));
    let app = TestApp::start(cfg, runtime);
    let mut s = TcpStream::connect(app.addr_str()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // One answer, then silence until the server closes the idle connection.
    let mut out = Vec::new();
    let started = std::time::Instant::now();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1);
    assert!(started.elapsed() < Duration::from_secs(20), "never closed");
}

#[test]
fn requests_that_waited_too_long_are_shed_with_503() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), "http://127.0.0.1:9");
    cfg.server_threads = 1;
    cfg.server_queue_timeout_ms = 50;
    cfg.cors_allow_origin = "https://luci.example".into();
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
    let (held_tx, held_rx) = crossbeam_channel::bounded::<()>(1);
    let release_rx = std::sync::Mutex::new(release_rx);
    let faults = Faults {
        handler: Some(Arc::new(move |path: &str| {
            if path == "/hold" {
                let _ = held_tx.send(());
                let _ = release_rx.lock().unwrap().recv();
            }
        })),
        ..Faults::none()
    };
    let runtime = Arc::new(Podman::new(&dir.path().join("absent.sock")));
    let app = TestApp::start_with_faults(cfg, runtime, faults);
    let hold_url = app.url("/hold");
    let holder = std::thread::spawn(move || http::get(&hold_url));
    held_rx.recv().unwrap();
    // The only handler is busy: this request waits in the queue…
    let stats_url = app.url("/api/v1/stats");
    let waiter = std::thread::spawn(move || http::get(&stats_url));
    // …for longer than the queue timeout (the sleep only needs to exceed it).
    std::thread::sleep(Duration::from_millis(300));
    release_tx.send(()).unwrap();
    let r = waiter.join().unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["status"], 503);
    assert!(r.header("Retry-After").is_some());
    assert_cors(&r);
    assert_eq!(holder.join().unwrap().status, 404);
    assert_eq!(http::get(&app.url("/api/v1/stats")).status, 200);
    assert!(app.app.as_ref().unwrap().shed_count() >= 1);
}

#[test]
fn a_panicking_handler_answers_500_and_the_pool_stays_whole() {
    let dir = tempfile::tempdir().unwrap();
    let threads = 3;
    let mut cfg = config(dir.path(), "http://127.0.0.1:9");
    cfg.server_threads = threads;
    cfg.cors_allow_origin = "https://luci.example".into();
    // `/hold` returns only once `threads` handlers hold it at the same time:
    // it proves the pool is at full size.
    let barrier = Arc::new(std::sync::Barrier::new(threads));
    let faults = Faults {
        handler: Some(Arc::new(move |path: &str| match path {
            "/boom" => panic!("injected fault"),
            "/hold" => {
                barrier.wait();
            }
            _ => {}
        })),
        ..Faults::none()
    };
    let runtime = Arc::new(Podman::new(&dir.path().join("absent.sock")));
    let app = TestApp::start_with_faults(cfg, runtime, faults);
    for _ in 0..threads * 3 {
        let r = http::get(&app.url("/boom"));
        assert_eq!(r.status, 500);
        assert_eq!(r.json()["status"], 500);
        assert_cors(&r);
    }
    let holders: Vec<_> = (0..threads)
        .map(|_| {
            let url = app.url("/hold");
            std::thread::spawn(move || http::get(&url).status)
        })
        .collect();
    for h in holders {
        assert_eq!(h.join().unwrap(), 404);
    }
}

trait AddrStr {
    fn addr_str(&self) -> String;
}

impl AddrStr for TestApp {
    fn addr_str(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }
}

#[test]
fn listens_on_an_ipv6_literal() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), "http://127.0.0.1:9");
    cfg.server_host = "::1".into();
    let runtime = Arc::new(Podman::new(&dir.path().join("absent.sock")));
    let app = TestApp::start(cfg, runtime);
    assert!(app.base.starts_with("http://[::1]:"), "{}", app.base);
    assert_eq!(http::get(&app.url("/health")).status, 200);
}
