//! Build control over HTTP: DELETE /api/v1/build/{hash} and POST
//! /api/v1/build/{hash}/retry with the admin token; 404 without one
//! configured, 401 with a wrong one; a cancelled build's container is
//! killed and its worker's late outcome does not overwrite the cancel; the
//! statistics counting rule still holds; /metrics counts both routes.

mod common;

use asu_builder::config::Config;
use common::fake_runtime::{Call, FakeRuntime};
use common::fake_upstream::FakeUpstream;
use common::http;
use common::testapp::{self, TestApp};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
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
    edit(&mut c);
    let runtime = Arc::new(FakeRuntime::new());
    runtime.set_slow(Duration::from_secs(120));
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

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn delete(url: &str, auth: Option<&str>) -> http::Reply {
    let mut req = http::agent().delete(url);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    reply(req.call().expect("DELETE failed"))
}

fn retry(url: &str, auth: Option<&str>) -> http::Reply {
    let mut req = http::agent().post(url);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    reply(req.send_empty().expect("POST failed"))
}

fn reply(resp: ureq::http::Response<ureq::Body>) -> http::Reply {
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = resp.into_body().read_to_vec().unwrap_or_default();
    http::Reply {
        status,
        headers,
        body,
    }
}

fn job_status(db: &Path, hash: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT status FROM build_jobs WHERE request_hash = ?1 ORDER BY id")
        .unwrap();
    stmt.query_map([hash], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn stat_count(env: &Env, event: &str) -> i64 {
    env.app.flush_stats();
    let conn = rusqlite::Connection::open(env.dir.path().join("data/builder.db")).unwrap();
    conn.query_row(
        "SELECT count(*) FROM build_stats WHERE event = ?1",
        [event],
        |r| r.get(0),
    )
    .unwrap()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn without_a_token_configured_the_endpoints_do_not_exist() {
    let env = start(|c| {
        c.admin_token = None;
        c.worker_concurrent = 0;
    });
    let hash = http::request_hash(&http::post_build(&env.app.base, &request(&["vim"])));
    let url = env.app.url(&format!("/api/v1/build/{hash}"));
    for auth in [None, Some(bearer(TOKEN))] {
        let d = delete(&url, auth.as_deref());
        assert_eq!(d.status, 404, "{}", d.text());
        assert_eq!(d.json()["detail"], "Not Found");
        assert_eq!(retry(&format!("{url}/retry"), auth.as_deref()).status, 404);
    }
    assert_eq!(http::poll(&env.app.base, &hash).status, 202, "still queued");
}

#[test]
fn a_wrong_or_missing_token_is_refused() {
    let env = start(|c| c.worker_concurrent = 0);
    let hash = http::request_hash(&http::post_build(&env.app.base, &request(&["vim"])));
    let url = env.app.url(&format!("/api/v1/build/{hash}"));
    let wrong = bearer(&format!("{TOKEN}x"));
    let short = bearer(&TOKEN[..TOKEN.len() - 1]);
    for auth in [
        None,
        Some(wrong.as_str()),
        Some(short.as_str()),
        Some(TOKEN),
    ] {
        let d = delete(&url, auth);
        assert_eq!(d.status, 401, "{auth:?}: {}", d.text());
        assert!(d.header("WWW-Authenticate").unwrap().starts_with("Bearer"));
        assert_eq!(retry(&format!("{url}/retry"), auth).status, 401);
    }
    assert_eq!(
        job_status(&env.dir.path().join("data/builder.db"), &hash),
        ["pending"]
    );
}

#[test]
fn cancel_a_queued_build_then_retry_it() {
    let env = start(|c| c.worker_concurrent = 0);
    let db = env.dir.path().join("data/builder.db");
    let hash = http::request_hash(&http::post_build(&env.app.base, &request(&["vim"])));
    let url = env.app.url(&format!("/api/v1/build/{hash}"));
    let auth = bearer(TOKEN);

    let d = delete(&url, Some(&auth));
    assert_eq!(d.status, 200, "{}", d.text());
    assert_eq!(
        d.json(),
        json!({"status": 200, "detail": "cancelled", "request_hash": hash})
    );
    assert_eq!(job_status(&db, &hash), ["cancelled"]);
    // Clients see the hash as unknown: nothing to replay.
    assert_eq!(http::poll(&env.app.base, &hash).status, 404);
    // Nothing active or cached any more.
    assert_eq!(delete(&url, Some(&auth)).status, 404);

    // Retry queues the stored request again.
    let r = retry(&format!("{url}/retry"), Some(&auth));
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["detail"], "queued");
    assert_eq!(job_status(&db, &hash), ["cancelled", "pending"]);
    let again = retry(&format!("{url}/retry"), Some(&auth));
    assert_eq!(again.status, 409, "{}", again.text());

    // Counting rule: the POST was a miss, the cancel ended it (failure),
    // the retry queued it again (a miss); one build is still queued.
    assert_eq!(stat_count(&env, "cache-miss"), 2);
    assert_eq!(stat_count(&env, "failure"), 1);
    assert_eq!(stat_count(&env, "request"), 2);

    let unknown = "0".repeat(64);
    assert_eq!(
        retry(
            &env.app.url(&format!("/api/v1/build/{unknown}/retry")),
            Some(&auth)
        )
        .status,
        404
    );
    let metrics = http::get(&env.app.url("/metrics")).text();
    for line in [
        "asu_http_responses_total{route=\"build_cancel\",status=\"200\"} 1",
        "asu_http_responses_total{route=\"build_cancel\",status=\"404\"} 1",
        "asu_http_responses_total{route=\"build_retry\",status=\"202\"} 1",
        "asu_http_responses_total{route=\"build_retry\",status=\"409\"} 1",
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
}

#[test]
fn cancel_a_running_build_kills_its_container_and_keeps_the_cancel() {
    let env = start(|_| {});
    let db = env.dir.path().join("data/builder.db");
    let hash = http::request_hash(&http::post_build(&env.app.base, &request(&["slow-pkg"])));
    wait_for("the build to run make image", || {
        env.runtime.exec_starting_with(&["make", "image"]).is_some()
    });
    let d = delete(
        &env.app.url(&format!("/api/v1/build/{hash}")),
        Some(&bearer(TOKEN)),
    );
    assert_eq!(d.json()["detail"], "cancelled", "{}", d.text());
    // Killed off the handler thread, so the answer did not wait for Podman.
    wait_for("the container to be killed", || {
        env.runtime
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Kill(_)))
    });
    // The worker sees its make killed and ends; the job stays cancelled.
    wait_for("the worker to let go", || {
        http::get(&env.app.url("/api/v1/stats")).json()["workers_busy"] == 0
    });
    assert_eq!(job_status(&db, &hash), ["cancelled"]);
    assert_eq!(http::poll(&env.app.base, &hash).status, 404);
    assert_eq!(stat_count(&env, "failure"), 1, "ended once, by the cancel");
    assert_eq!(stat_count(&env, "success"), 0);
}

#[test]
fn delete_drops_a_cached_failure_so_the_next_post_builds_again() {
    let env = start(|_| {});
    env.runtime
        .image_missing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let body = request(&["vim"]);
    let hash = http::request_hash(&http::post_build(&env.app.base, &body));
    let failed = http::wait_final(&env.app.base, &hash, Duration::from_secs(30));
    assert_eq!(failed.status, 500, "{}", failed.text());
    // Replayed while inside failure_ttl_seconds…
    assert_eq!(http::post_build(&env.app.base, &body).status, 500);
    let d = delete(
        &env.app.url(&format!("/api/v1/build/{hash}")),
        Some(&bearer(TOKEN)),
    );
    assert_eq!(d.json()["detail"], "dropped", "{}", d.text());
    // …and no more once dropped.
    assert_eq!(http::poll(&env.app.base, &hash).status, 404);
    env.runtime
        .image_missing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let again = http::post_build(&env.app.base, &body);
    assert_eq!(again.status, 202, "{}", again.text());
    let done = http::wait_final(&env.app.base, &hash, Duration::from_secs(30));
    assert_eq!(done.status, 200, "{}", done.text());
}
