//! HTTP server behaviour independent of builds: routing errors, limits,
//! CORS, redirects, HEAD, and staying responsive with busy handlers.

mod common;

use asu_builder::container::podman::Podman;
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

#[test]
fn oversized_bodies_get_413() {
    let (_d, app) = start(4);
    let big = "x".repeat(2 * 1024 * 1024);
    let r = http::post_json(&app.url("/api/v1/build"), &big);
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["status"], 413);

    // A declared length over the limit is refused without reading a byte.
    let mut s = TcpStream::connect(app.addr_str()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /api/v1/build HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\n\r\n"
    )
    .unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 413"));
}

/// Open a POST that announces a body and never sends it: the handler that
/// picks it up stays busy until the connection closes. (tiny_http reads
/// bodies of up to 1 KiB itself, so the announced body must be larger.)
fn slow_client(app: &TestApp) -> TcpStream {
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
fn stays_responsive_while_all_handlers_but_one_are_busy() {
    let (_d, app) = start(4);
    let slow: Vec<TcpStream> = (0..3).map(|_| slow_client(&app)).collect();
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        let r = http::get(&app.url("/api/v1/stats"));
        assert_eq!(r.status, 200);
    }
    drop(slow);
}

#[test]
fn full_queue_answers_503_at_once() {
    // One handler, room for four waiting requests.
    let (_d, app) = start(1);
    let mut slow = Vec::new();
    for _ in 0..5 {
        slow.push(slow_client(&app));
        std::thread::sleep(Duration::from_millis(150));
    }
    let r = http::get(&app.url("/api/v1/stats"));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["status"], 503);
    assert!(r.header("Retry-After").is_some());
    assert_cors(&r);
    // Once the slow clients go away the server recovers.
    drop(slow);
    let mut ok = false;
    for _ in 0..50 {
        if http::get(&app.url("/api/v1/stats")).status == 200 {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ok, "server did not recover after slow clients left");
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
