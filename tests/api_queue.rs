//! API tier, queue side: the service with a fake upstream and no workers,
//! so jobs stay queued and every queued-state answer can be checked.

mod common;

use asu_builder::config::Config;
use asu_builder::container::podman::Podman;
use common::fake_upstream::FakeUpstream;
use common::http;
use common::testapp::{self, TestApp};
use serde_json::{Value, json};
use std::sync::Arc;

fn base_config(dir: &std::path::Path, upstream: &FakeUpstream) -> Config {
    let mut c = testapp::config(dir, upstream.url());
    c.worker_concurrent = 0;
    c
}

fn start_with(edit: impl FnOnce(&mut Config)) -> (tempfile::TempDir, FakeUpstream, TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let upstream = FakeUpstream::start_fixtures();
    let mut c = base_config(dir.path(), &upstream);
    edit(&mut c);
    let runtime = Arc::new(Podman::new(&dir.path().join("absent.sock")));
    let app = TestApp::start(c, runtime);
    (dir, upstream, app)
}

fn request(packages: &[&str]) -> String {
    json!({
        "version": "1.2.3",
        "target": "testtarget/testsubtarget",
        "profile": "testprofile",
        "packages": packages,
    })
    .to_string()
}

#[test]
fn new_request_is_queued_with_reference_shape() {
    let (_d, _u, app) = start_with(|_| {});
    let r = http::post_json(&app.url("/api/v1/build"), &request(&["vim"]));
    assert_eq!(r.status, 202, "{}", r.text());
    let body = r.json();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "status",
            "detail",
            "queue_position",
            "enqueued_at",
            "request_hash"
        ]
    );
    assert_eq!(body["status"], 202);
    assert_eq!(body["detail"], "queued");
    assert_eq!(body["queue_position"], 0);
    assert_eq!(r.header("X-Imagebuilder-Status"), Some("queued"));
    assert_eq!(r.header("X-Queue-Position"), Some("0"));
    let enqueued = body["enqueued_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(enqueued).is_ok(),
        "{enqueued}"
    );
    let hash = body["request_hash"].as_str().unwrap().to_string();
    assert_eq!(hash.len(), 64);

    // Polling: GET and HEAD see the same state; a re-POST does not duplicate.
    let g = http::get(&app.url(&format!("/api/v1/build/{hash}")));
    assert_eq!(g.status, 202);
    assert_eq!(g.json()["request_hash"], hash.as_str());
    let h = http::head(&app.url(&format!("/api/v1/build/{hash}")));
    assert_eq!(h.status, 202);
    assert!(h.body.is_empty());
    assert_eq!(h.header("X-Imagebuilder-Status"), Some("queued"));
    assert_eq!(h.header("X-Queue-Position"), Some("0"));
    let again = http::post_json(&app.url("/api/v1/build"), &request(&["vim"]));
    assert_eq!(again.json()["request_hash"], hash.as_str());
    assert_eq!(
        http::get(&app.url("/api/v1/stats")).json()["queue_length"],
        1
    );
}

#[test]
fn queue_positions_count_jobs_ahead() {
    let (_d, _u, app) = start_with(|_| {});
    let hashes: Vec<String> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let r = http::post_json(&app.url("/api/v1/build"), &request(&[p]));
            assert_eq!(r.json()["queue_position"], i);
            r.json()["request_hash"].as_str().unwrap().to_string()
        })
        .collect();
    let last = http::get(&app.url(&format!("/api/v1/build/{}", hashes[2])));
    assert_eq!(last.header("X-Queue-Position"), Some("2"));
}

#[test]
fn a_pending_limit_beyond_i64_does_not_wrap_into_overload() {
    // The loader refuses this; a Config built in code must not wrap either
    // (above 2^63 it became negative in SQLite and every POST got 529).
    let (_d, _u, app) = start_with(|c| c.max_pending_jobs = u64::MAX);
    let r = http::post_json(&app.url("/api/v1/build"), &request(&["a"]));
    assert_eq!(r.status, 202, "{}", r.text());
}

#[test]
fn overload_answers_529_with_reference_body() {
    let (_d, _u, app) = start_with(|c| c.max_pending_jobs = 1);
    assert_eq!(
        http::post_json(&app.url("/api/v1/build"), &request(&["a"])).status,
        202
    );
    assert_eq!(
        http::post_json(&app.url("/api/v1/build"), &request(&["b"])).status,
        202
    );
    let r = http::post_json(&app.url("/api/v1/build"), &request(&["c"]));
    assert_eq!(r.status, 529);
    assert_eq!(
        r.json(),
        json!({
            "status": 529,
            "title": "Server overloaded",
            "detail": "server overload, queue contains too many build requests: 2"
        })
    );
    // A request already queued is still answered while overloaded.
    assert_eq!(
        http::post_json(&app.url("/api/v1/build"), &request(&["a"])).status,
        202
    );
}

#[test]
fn concurrent_identical_posts_make_one_job_and_one_fetch_per_file() {
    let (_d, upstream, app) = start_with(|c| c.server_threads = 8);
    let url = app.url("/api/v1/build");
    let body = request(&["tmux", "vim"]);
    let hashes: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|_| {
                s.spawn(|| {
                    let r = http::post_json(&url, &body);
                    assert_eq!(r.status, 202, "{}", r.text());
                    r.json()["request_hash"].as_str().unwrap().to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(hashes.windows(2).all(|w| w[0] == w[1]));
    let stats = http::get(&app.url("/api/v1/stats")).json();
    assert_eq!(stats["queue_length"], 1, "{stats}");
    for path in [
        "/.versions.json",
        "/releases/1.2.3/.targets.json",
        "/releases/1.2.3/targets/testtarget/testsubtarget/profiles.json",
    ] {
        assert!(
            upstream.hits(path) <= 1,
            "{path} fetched {} times",
            upstream.hits(path)
        );
    }
}

#[test]
fn unknown_hash_is_404_with_reference_body() {
    let (_d, _u, app) = start_with(|_| {});
    let r = http::get(&app.url("/api/v1/build/0000"));
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"status": 404, "title": "Not Found", "detail": "could not find provided request hash"})
    );
    assert!(r.header("X-Imagebuilder-Status").is_none());
    let h = http::head(&app.url("/api/v1/build/0000"));
    assert_eq!(h.status, 404);
}

fn post_400(app: &TestApp, body: Value) -> String {
    let r = http::post_json(&app.url("/api/v1/build"), &body.to_string());
    assert_eq!(r.status, 400, "{}", r.text());
    let b = r.json();
    assert_eq!(b["status"], 400);
    assert!(r.header("X-Imagebuilder-Status").is_none());
    b["detail"].as_str().unwrap().to_string()
}

#[test]
fn validation_failures_use_the_reference_texts() {
    let (_d, _u, app) = start_with(|c| {
        c.allow_defaults = false;
        c.repository_allow_list = vec!["https://feed.example.org/packages".into()];
    });
    let ok =
        json!({"version": "1.2.3", "target": "testtarget/testsubtarget", "profile": "testprofile"});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    assert_eq!(
        post_400(&app, with("defaults", json!("echo hi"))),
        "Handling `defaults` not enabled on server"
    );
    assert_eq!(
        post_400(
            &app,
            with(
                "repositories",
                json!({"x": "https://feed.example.org.evil.com/packages"})
            )
        ),
        "Repository not allowed: https://feed.example.org.evil.com/packages"
    );
    assert_eq!(
        post_400(
            &app,
            with(
                "repositories",
                json!({"x": "https://user@feed.example.org/packages"})
            )
        ),
        "Repository not allowed: https://user@feed.example.org/packages"
    );
    assert_eq!(
        post_400(&app, with("distro", json!("Foobar"))),
        "Unsupported distro: Foobar"
    );
    assert_eq!(
        post_400(&app, with("version", json!("10.10.10"))),
        "Unsupported branch: 10.10.10"
    );
    assert_eq!(
        post_400(&app, with("version", json!("1.2.99"))),
        "Unsupported version: 1.2.99"
    );
    assert_eq!(
        post_400(&app, with("target", json!("nope/nope"))),
        "Unsupported target: nope/nope. The requested target was either dropped, is still being built or is not supported by the selected version. Please check the forums or try again later."
    );
    assert_eq!(
        post_400(&app, with("profile", json!("nope"))),
        "Unsupported profile: nope. The requested profile was either dropped or never existed. Please check the forums for more information."
    );
    // The allowed repository passes validation.
    let r = http::post_json(
        &app.url("/api/v1/build"),
        &with(
            "repositories",
            json!({"x": "https://feed.example.org/packages/base"}),
        )
        .to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.text());
}

#[test]
fn malformed_bodies_get_a_readable_422() {
    let (_d, _u, app) = start_with(|_| {});
    for body in [
        "",
        "{",
        "[]",
        r#"{"version":"1.2.3","target":"testtarget/testsubtarget"}"#,
        r#"{"version":"1.2.3","target":"bad","profile":"p"}"#,
        r#"{"version":"1.2.3","target":"a/b","profile":"p","rootfs_size_mb":0}"#,
        r#"{"version":"1.2.3","target":"a/b","profile":"p","packages":"vim"}"#,
    ] {
        let r = http::post_json(&app.url("/api/v1/build"), body);
        assert_eq!(r.status, 422, "{body}");
        let b = r.json();
        assert_eq!(b["status"], 422);
        assert_eq!(b["title"], "Unprocessable Entity");
        assert!(b["detail"].is_string(), "{b}");
        assert!(b["errors"].as_array().is_some_and(|e| !e.is_empty()), "{b}");
    }
}

#[test]
fn missing_user_agent_and_client_is_not_an_error() {
    let (dir, _u, app) = start_with(|_| {});
    // ureq sends its own User-Agent unless told otherwise; a raw request has none.
    use std::io::{Read, Write};
    let body = request(&["x"]);
    let mut s = std::net::TcpStream::connect(app.base.trim_start_matches("http://")).unwrap();
    write!(
        s,
        "POST /api/v1/build HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 202"), "{out}");

    http::post_with(
        &app.url("/api/v1/build"),
        &request(&["y"]),
        &[
            ("User-Agent", "auc (0.3.2)"),
            ("Content-Type", "application/json"),
        ],
    );
    app.flush_stats();
    let conn = rusqlite::Connection::open(dir.path().join("data/builder.db")).unwrap();
    let clients: Vec<String> = conn
        .prepare("SELECT client FROM build_stats WHERE event = 'request' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(clients, ["unknown/0", "auc/0.3.2"]);
    let misses: i64 = conn
        .query_row(
            "SELECT count(*) FROM build_stats WHERE event = 'cache-miss'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(misses, 2);
}

#[test]
fn aliases_resolve_for_bin_dir_but_not_for_the_job_id() {
    let (dir, _u, app) = start_with(|_| {});
    // x86/64 in the 23.05.5 fixtures has one profile, `generic`.
    let r = http::post_json(
        &app.url("/api/v1/build"),
        &json!({"version": "23.05.5", "target": "x86/64", "profile": "some,board"}).to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let hash = r.json()["request_hash"].as_str().unwrap().to_string();
    let conn = rusqlite::Connection::open(dir.path().join("data/builder.db")).unwrap();
    let (bin_dir, request): (String, String) = conn
        .query_row(
            "SELECT bin_dir, request_json FROM build_requests WHERE request_hash = ?1",
            [&hash],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_ne!(bin_dir, hash);
    let request: Value = serde_json::from_str(&request).unwrap();
    assert_eq!(request["profile"], "generic");
}

#[test]
fn injection_attempts_in_repositories_are_422() {
    let (_d, _u, app) =
        start_with(|c| c.repository_allow_list = vec!["https://feed.example.org/".into()]);
    for repositories in [
        json!({"evil\nsrc/gz x http://attacker": "https://feed.example.org/p"}),
        json!({"with space": "https://feed.example.org/p"}),
        json!({"a/b": "https://feed.example.org/p"}),
        json!({"": "https://feed.example.org/p"}),
        json!({"ok": "https://feed.example.org/p\nsrc/gz evil http://attacker"}),
        json!({"ok": "file:///etc/passwd"}),
    ] {
        let body = json!({
            "version": "1.2.3", "target": "testtarget/testsubtarget", "profile": "testprofile",
            "repositories": repositories,
        });
        let r = http::post_json(&app.url("/api/v1/build"), &body.to_string());
        assert_eq!(r.status, 422, "{repositories}: {}", r.text());
        assert_eq!(
            r.json()["errors"][0]["loc"][1],
            "repositories",
            "{}",
            r.text()
        );
    }
    let body = json!({
        "version": "1.2.3", "target": "testtarget/testsubtarget", "profile": "testprofile",
        "repositories_mode": "merge",
    });
    let r = http::post_json(&app.url("/api/v1/build"), &body.to_string());
    assert_eq!(r.status, 422);
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .contains("repositories_mode")
    );
}
