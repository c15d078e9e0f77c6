//! Long-poll: `GET /api/v1/build/{hash}?wait=N` holds no handler thread.
//! More waiters than handler threads are parked at once and all answered
//! when the build changes (a cancel, a worker's phase, another process's
//! write to the database); beyond `long_poll_max_waiters` a poll is
//! answered at once. No timing assertions: each test waits on the event
//! (the parked-waiters gauge, the answers), with the HTTP client's 30 s
//! timeout as the only deadline, half the `wait` the requests ask for.

mod common;

use asu_builder::config::Config;
use common::fake_runtime::FakeRuntime;
use common::fake_upstream::FakeUpstream;
use common::http;
use common::testapp::{self, TestApp};
use serde_json::json;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const TOKEN: &str = "test-admin-token-0123456789";

struct Env {
    dir: tempfile::TempDir,
    _upstream: FakeUpstream,
    runtime: Arc<FakeRuntime>,
    app: TestApp,
}

fn start(edit: impl FnOnce(&mut Config)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let upstream = FakeUpstream::start_fixtures();
    let mut c = testapp::config(dir.path(), upstream.url());
    c.admin_token = Some(TOKEN.into());
    c.server_threads = 2;
    c.worker_concurrent = 0;
    edit(&mut c);
    let runtime = Arc::new(FakeRuntime::new());
    let app = TestApp::start(c, runtime.clone());
    Env {
        dir,
        _upstream: upstream,
        runtime,
        app,
    }
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

fn parked(env: &Env) -> u64 {
    let text = http::get(&env.app.url("/metrics")).text();
    text.lines()
        .find_map(|l| l.strip_prefix("asu_long_poll_waiters "))
        .and_then(|v| v.trim().parse().ok())
        .expect("asu_long_poll_waiters in /metrics")
}

fn wait_parked(env: &Env, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while parked(env) != n {
        assert!(Instant::now() < deadline, "never {n} parked waiters");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `n` clients long-polling `hash` with wait=60, each on its own thread.
fn waiters(env: &Env, hash: &str, n: usize) -> Vec<JoinHandle<http::Reply>> {
    (0..n)
        .map(|_| {
            let url = env.app.url(&format!("/api/v1/build/{hash}?wait=60"));
            std::thread::spawn(move || http::get(&url))
        })
        .collect()
}

fn cancel(env: &Env, hash: &str) {
    let r = http::agent()
        .delete(env.app.url(&format!("/api/v1/build/{hash}")))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[test]
fn more_waiters_than_handlers_are_all_answered_when_the_build_changes() {
    let env = start(|_| {});
    let hash = http::request_hash(&http::post_build(&env.app.base, &request(&["vim"])));
    let clients = waiters(&env, &hash, 8);
    // Eight parked with two handler threads, and the handlers still serve.
    wait_parked(&env, 8);
    assert_eq!(http::get(&env.app.url("/health")).status, 200);
    assert_eq!(http::poll(&env.app.base, &hash).status, 202);
    cancel(&env, &hash);
    for c in clients {
        let r = c.join().unwrap();
        // The new state (unknown: cancelled), not the deadline's answer.
        assert_eq!(r.status, 404, "{}", r.text());
    }
    assert_eq!(parked(&env), 0);
}

#[test]
fn a_change_made_by_another_process_is_noticed() {
    let env = start(|_| {});
    let hash = http::request_hash(&http::post_build(&env.app.base, &request(&["vim"])));
    let clients = waiters(&env, &hash, 3);
    wait_parked(&env, 3);
    // Another worker process claims the job: only the database knows.
    let conn = rusqlite::Connection::open(env.dir.path().join("data/builder.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let lease = chrono::Utc::now().timestamp_millis() + 60_000;
    conn.execute(
        "UPDATE build_jobs SET status = 'running', imagebuilder_status = 'building_image', \
         worker_id = 'elsewhere/1', lease_expires_at = ?2, attempts = 1 WHERE request_hash = ?1",
        rusqlite::params![hash, lease],
    )
    .unwrap();
    for c in clients {
        let r = c.join().unwrap();
        assert_eq!(r.status, 202, "{}", r.text());
        assert_eq!(r.json()["detail"], "started");
        assert_eq!(r.header("X-Imagebuilder-Status"), Some("building_image"));
    }
}

#[test]
fn a_worker_s_progress_answers_the_waiters() {
    let env = start(|c| c.worker_concurrent = 1);
    env.runtime.set_slow(Duration::from_secs(2));
    let hash = http::request_hash(&http::post_build(&env.app.base, &request(&["slow-pkg"])));
    // Wait until the build is in its long step, then ask for the next change.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http::poll(&env.app.base, &hash);
        if r.header("X-Imagebuilder-Status") == Some("building_image") {
            break;
        }
        assert!(Instant::now() < deadline, "never building: {}", r.text());
        std::thread::sleep(Duration::from_millis(10));
    }
    let clients = waiters(&env, &hash, 4);
    for c in clients {
        let r = c.join().unwrap();
        let phase = r.header("X-Imagebuilder-Status").unwrap_or("").to_string();
        assert_ne!(
            phase,
            "building_image",
            "answered without a change: {}",
            r.text()
        );
    }
}

#[test]
fn beyond_the_bound_a_poll_is_answered_at_once() {
    let env = start(|c| c.long_poll_max_waiters = 2);
    let hash = http::request_hash(&http::post_build(&env.app.base, &request(&["vim"])));
    let clients = waiters(&env, &hash, 2);
    wait_parked(&env, 2);
    let third = http::get(&env.app.url(&format!("/api/v1/build/{hash}?wait=60")));
    assert_eq!(third.status, 202);
    assert_eq!(third.json()["detail"], "queued");
    assert_eq!(parked(&env), 2, "the first two still wait");
    cancel(&env, &hash);
    for c in clients {
        assert_eq!(c.join().unwrap().status, 404);
    }
}

#[test]
fn wait_is_checked_and_final_states_answer_at_once() {
    let env = start(|c| c.long_poll_max_waiters = 0);
    let hash = http::request_hash(&http::post_build(&env.app.base, &request(&["vim"])));
    for bad in ["61", "-1", "abc", "1.5", "99999999999999999999999"] {
        let r = http::get(&env.app.url(&format!("/api/v1/build/{hash}?wait={bad}")));
        assert_eq!(r.status, 400, "wait={bad}: {}", r.text());
        assert!(r.json()["detail"].as_str().unwrap().contains("wait"));
    }
    // Long-polling off: answered at once with the state.
    let r = http::get(&env.app.url(&format!("/api/v1/build/{hash}?wait=60")));
    assert_eq!(r.status, 202);
    // Unknown hashes are final.
    let unknown = "f".repeat(64);
    let r = http::get(&env.app.url(&format!("/api/v1/build/{unknown}?wait=60")));
    assert_eq!(r.status, 404);
}
