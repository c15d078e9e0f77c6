//! API tier, build side: the whole service with a fake upstream and the
//! in-process fake container runtime, from POST to download.

mod common;

use asu_builder::config::Config;
use common::fake_runtime::{self, FakeRuntime};
use common::fake_upstream::FakeUpstream;
use common::http;
use common::testapp::{self, TestApp};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Env {
    dir: tempfile::TempDir,
    _upstream: FakeUpstream,
    runtime: Arc<FakeRuntime>,
    app: TestApp,
}

fn config_for(dir: &Path, upstream: &FakeUpstream) -> Config {
    testapp::config(dir, upstream.url())
}

fn start(edit: impl FnOnce(&mut Config)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let upstream = FakeUpstream::start_fixtures();
    let mut c = config_for(dir.path(), &upstream);
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
        "client": "test/1",
    })
    .to_string()
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

#[test]
fn build_succeeds_and_the_image_downloads_with_matching_checksum() {
    let env = start(|_| {});
    let r = http::post_build(&env.app.base, &request(&["vim", "tmux"]));
    assert_eq!(r.status, 202, "{}", r.text());
    let hash = http::request_hash(&r);
    let done = http::wait_final(&env.app.base, &hash, Duration::from_secs(20));
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(done.header("X-Imagebuilder-Status"), Some("done"));
    assert_eq!(done.header("X-Queue-Position"), Some("0"));
    let body = done.json();
    assert_eq!(body["status"], 200);
    assert_eq!(body["detail"], "done");
    assert_eq!(body["imagebuilder_status"], "done");
    assert_eq!(body["request_hash"], hash.as_str());
    assert_eq!(body["id"], "testprofile");
    assert_eq!(body["request"]["profile"], "testprofile");
    assert_eq!(body["request"]["client"], "test/1");
    for key in [
        "manifest",
        "titles",
        "build_cmd",
        "build_at",
        "version_number",
        "target",
        "enqueued_at",
        "stdout",
        "stderr",
    ] {
        assert!(body.get(key).is_some(), "missing {key}: {body}");
    }
    assert!(body["manifest"]["vim"].is_string(), "{}", body["manifest"]);
    assert!(body.get("queue_position").is_none());
    let bin_dir = body["bin_dir"].as_str().unwrap();
    let images = body["images"].as_array().unwrap();
    let sysupgrade = images
        .iter()
        .find(|i| i["name"] == fake_runtime::SYSUPGRADE_IMAGE)
        .expect("sysupgrade image listed");

    let url = env.app.url(&format!(
        "/store/{bin_dir}/{}",
        fake_runtime::SYSUPGRADE_IMAGE
    ));
    let file = http::get(&url);
    assert_eq!(file.status, 200);
    // HEAD: the GET's headers, size included (auc compares it), no body.
    let head = http::head(&url);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("Content-Length"), file.header("Content-Length"));
    assert_eq!(head.header("Accept-Ranges"), Some("bytes"));
    let part = http::head_with(&url, &[("Range", "bytes=0-3")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.header("Content-Length"), Some("4"));
    assert!(part.body.is_empty());
    assert_eq!(
        file.header("Content-Type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        file.header("Content-Length").map(str::to_owned),
        Some(file.body.len().to_string())
    );
    let digest = asu_builder::hash::hex(&Sha256::digest(&file.body));
    assert_eq!(sysupgrade["sha256"], digest.as_str());
    assert!(env.dir.path().join("public/store").join(bin_dir).is_dir());

    // The same request again is a cache hit served without a new build.
    let again = http::post_build(&env.app.base, &request(&["tmux", "vim"]));
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["bin_dir"], bin_dir);
    assert_eq!(env.runtime.created().len(), 1);
    assert_eq!(stat_count(&env, "cache-hit"), 1);
    assert_eq!(stat_count(&env, "success"), 1);
    assert!(env.runtime.live_containers().is_empty());
}

#[test]
fn a_running_build_reports_started_without_queue_position() {
    let env = start(|_| {});
    env.runtime.set_slow(Duration::from_secs(3));
    let hash = http::request_hash(&http::post_build(&env.app.base, &request(&["slow-pkg"])));
    let deadline = Instant::now() + Duration::from_secs(10);
    let started = loop {
        let r = http::get(&env.app.url(&format!("/api/v1/build/{hash}")));
        assert_eq!(r.status, 202);
        if r.json()["detail"] == "started" {
            break r;
        }
        assert!(Instant::now() < deadline, "never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    let body = started.json();
    assert!(body.get("queue_position").is_none(), "{body}");
    assert!(body["imagebuilder_status"].is_string());
    assert_eq!(body["request"]["version"], "1.2.3");
    assert_ne!(started.header("X-Imagebuilder-Status"), Some("queued"));
    assert_eq!(started.header("X-Queue-Position"), Some("0"));
    let stats = http::get(&env.app.url("/api/v1/stats")).json();
    assert_eq!(stats["running"], 1);
    assert_eq!(
        http::wait_final(&env.app.base, &hash, Duration::from_secs(20)).status,
        200
    );
}

#[test]
fn a_failure_is_replayed_for_failure_ttl_then_rebuilt() {
    let env = start(|c| c.failure_ttl_seconds = 2);
    let r = http::post_build(&env.app.base, &request(&["missing-pkg"]));
    let hash = http::request_hash(&r);
    let failed = http::wait_final(&env.app.base, &hash, Duration::from_secs(20));
    assert_eq!(failed.status, 500, "{}", failed.text());
    assert_eq!(failed.header("X-Imagebuilder-Status"), Some("failed"));
    let body = failed.json();
    assert_eq!(body["status"], 500);
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("Error: Impossible package selection: missing ("),
        "{detail}"
    );
    assert!(body["stderr"].is_string() && body["stdout"].is_string());
    assert_eq!(body["request_hash"], hash.as_str());

    // Re-POST inside the TTL replays the failure without a new build.
    let replay = http::post_build(&env.app.base, &request(&["missing-pkg"]));
    assert_eq!(replay.status, 500);
    assert_eq!(replay.json()["detail"], detail);
    assert_eq!(env.runtime.created().len(), 1);
    assert_eq!(stat_count(&env, "failure"), 1);

    std::thread::sleep(Duration::from_millis(2100));
    let fresh = http::post_build(&env.app.base, &request(&["missing-pkg"]));
    assert_eq!(fresh.status, 202, "{}", fresh.text());
    assert_eq!(
        http::wait_final(&env.app.base, &hash, Duration::from_secs(20)).status,
        500
    );
    assert_eq!(env.runtime.created().len(), 2);
}

#[test]
fn user_error_texts_reach_the_client() {
    let env = start(|_| {});
    let cases: [(&[&str], &str); 2] = [
        (
            &["too-big-pkg"],
            "Error: Selected packages exceed device storage",
        ),
        (&["conflict-pkg"], "Error: Impossible package selection:"),
    ];
    for (packages, want) in cases {
        let hash = http::request_hash(&http::post_build(&env.app.base, &request(packages)));
        let r = http::wait_final(&env.app.base, &hash, Duration::from_secs(20));
        assert_eq!(r.status, 500);
        let detail = r.json()["detail"].as_str().unwrap().to_string();
        assert!(detail.starts_with(want), "{packages:?}: {detail}");
    }
    env.runtime
        .wrong_revision
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let body = json!({
        "version": "1.2.3", "target": "testtarget/testsubtarget", "profile": "testprofile",
        "version_code": fake_runtime::REVISION,
    });
    let hash = http::request_hash(&http::post_build(&env.app.base, &body.to_string()));
    let r = http::wait_final(&env.app.base, &hash, Duration::from_secs(20));
    assert_eq!(
        r.json()["detail"],
        format!(
            "Error: Received incorrect version {} (requested {})",
            fake_runtime::WRONG_REVISION,
            fake_runtime::REVISION
        )
    );
    assert!(env.runtime.live_containers().is_empty());
}

fn health(env: &Env) -> Value {
    let r = http::get(&env.app.url("/health"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[test]
fn jobs_stay_queued_while_the_runtime_does_not_answer() {
    let env = start(|_| {});
    env.runtime.set_unreachable(true);
    // Whatever the first check saw, the monitor reports the outage soon.
    let deadline = Instant::now() + Duration::from_secs(30);
    while health(&env)["container_runtime"] != "degraded" {
        assert!(
            Instant::now() < deadline,
            "never degraded: {}",
            health(&env)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let h = health(&env);
    assert_eq!(h["status"], "ok");
    assert!(
        h["container_runtime_detail"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{h}"
    );
    let stats = http::get(&env.app.url("/api/v1/stats")).json();
    assert_eq!(stats["container_runtime"], "degraded", "{stats}");

    let hash = http::request_hash(&http::post_build(&env.app.base, &request(&["vim"])));
    let db = env.dir.path().join("data/builder.db");
    // Three more health checks fail: the workers had every chance to claim.
    let pings = env.runtime.pings();
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.runtime.pings() < pings + 3 {
        assert!(Instant::now() < deadline, "the monitor stopped checking");
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = http::get(&env.app.url(&format!("/api/v1/build/{hash}")));
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["detail"], "queued");
    assert_eq!(testapp::attempts(&db, &hash), 0, "an attempt was spent");

    env.runtime.set_unreachable(false);
    let done = http::wait_final(&env.app.base, &hash, Duration::from_secs(30));
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(testapp::attempts(&db, &hash), 1);
    assert_eq!(health(&env)["container_runtime"], "up");
    assert!(health(&env).get("container_runtime_detail").is_none());
}

#[test]
fn a_runtime_lost_mid_build_is_retried_as_soon_as_it_answers() {
    let env = start(|_| {});
    env.runtime
        .lose_execs
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let hash = http::request_hash(&http::post_build(&env.app.base, &request(&["vim"])));
    // No backoff to wait out: the retry follows the runtime's next answer.
    let done = http::wait_final(&env.app.base, &hash, Duration::from_secs(30));
    assert_eq!(done.status, 200, "{}", done.text());
    let db = env.dir.path().join("data/builder.db");
    assert_eq!(testapp::attempts(&db, &hash), 2);
    assert!(env.runtime.live_containers().is_empty());
}

#[test]
fn a_runtime_lost_under_every_build_fails_the_job_after_max_attempts() {
    let env = start(|_| {});
    env.runtime
        .lose_execs
        .store(1000, std::sync::atomic::Ordering::SeqCst);
    let hash = http::request_hash(&http::post_build(&env.app.base, &request(&["vim"])));
    let r = http::wait_final(&env.app.base, &hash, Duration::from_secs(30));
    assert_eq!(r.status, 500, "{}", r.text());
    let detail = r.json()["detail"].as_str().unwrap().to_string();
    assert!(
        detail.starts_with("Error: Container runtime failed during make info:"),
        "{detail}"
    );
    assert!(detail.contains("unreachable"), "{detail}");
    assert!(detail.ends_with("(gave up after 4 attempts)"), "{detail}");
}

#[test]
fn retryable_errors_back_off_then_give_up_with_a_clear_detail() {
    let env = start(|_| {});
    env.runtime
        .kill_make_image
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let hash = http::request_hash(&http::post_build(&env.app.base, &request(&["vim"])));
    let db = env.dir.path().join("data/builder.db");
    // Skip the backoff waits: make the job claimable again right away.
    let deadline = Instant::now() + Duration::from_secs(30);
    let r = loop {
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute("UPDATE build_jobs SET not_before = 0", [])
            .unwrap();
        let r = http::get(&env.app.url(&format!("/api/v1/build/{hash}")));
        if r.status == 500 {
            break r;
        }
        assert!(Instant::now() < deadline, "never gave up: {}", r.text());
        std::thread::sleep(Duration::from_millis(100));
    };
    let detail = r.json()["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("killed during make image"), "{detail}");
    assert!(detail.contains("gave up after 4 attempts"), "{detail}");
}

#[test]
fn expired_results_disappear_with_their_store_directory() {
    let env = start(|c| c.build_ttl_seconds = 1);
    let hash = http::request_hash(&http::post_build(&env.app.base, &request(&["vim"])));
    let done = http::wait_final(&env.app.base, &hash, Duration::from_secs(20));
    assert_eq!(done.status, 200);
    let bin_dir = done.json()["bin_dir"].as_str().unwrap().to_string();
    let store = env.dir.path().join("public/store").join(&bin_dir);
    assert!(store.is_dir());
    std::thread::sleep(Duration::from_millis(1100));
    // Expired results are no longer served, even before the janitor runs.
    assert_eq!(
        http::get(&env.app.url(&format!("/api/v1/build/{hash}"))).status,
        404
    );
    env.app.app.as_ref().unwrap().sweep_now().unwrap();
    assert!(!store.exists(), "store directory kept after expiry");
    let conn = rusqlite::Connection::open(env.dir.path().join("data/builder.db")).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM build_results", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0);
}

#[test]
fn ttl_depends_on_the_kind_of_request() {
    let env = start(|c| {
        c.build_ttl_seconds = 1000;
        c.defaults_build_ttl_seconds = 10;
        c.versioned_build_ttl_seconds = 100_000;
    });
    let conn = rusqlite::Connection::open(env.dir.path().join("data/builder.db")).unwrap();
    let ttl_of = |body: Value| -> i64 {
        let hash = http::request_hash(&http::post_build(&env.app.base, &body.to_string()));
        assert_eq!(
            http::wait_final(&env.app.base, &hash, Duration::from_secs(20)).status,
            200
        );
        conn.query_row(
            "SELECT (expires_at - finished_at) / 1000 FROM build_results WHERE request_hash = ?1",
            [&hash],
            |r| r.get(0),
        )
        .unwrap()
    };
    let base =
        json!({"version": "1.2.3", "target": "testtarget/testsubtarget", "profile": "testprofile"});
    let mut with_defaults = base.clone();
    with_defaults["defaults"] = json!("echo hi");
    let mut versioned = base.clone();
    versioned["packages_versions"] = json!({"vim": "1.0-1"});
    let plain = ttl_of(base);
    assert!((999..=1000).contains(&plain), "{plain}");
    let d = ttl_of(with_defaults);
    assert!((9..=10).contains(&d), "{d}");
    let v = ttl_of(versioned);
    assert!((99_999..=100_000).contains(&v), "{v}");
}

#[test]
fn shutdown_requeues_a_running_build_and_a_restart_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = FakeUpstream::start_fixtures();
    let config = config_for(dir.path(), &upstream);
    let runtime = Arc::new(FakeRuntime::new());
    runtime.set_slow(Duration::from_secs(30));
    let mut app = TestApp::start(config.clone(), runtime.clone());
    let hash = http::request_hash(&http::post_build(&app.base, &request(&["slow-pkg"])));
    let deadline = Instant::now() + Duration::from_secs(10);
    while http::get(&app.url(&format!("/api/v1/build/{hash}"))).json()["detail"] != "started" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    // No grace: the build is aborted at once and goes back to the queue.
    app.app.take().unwrap().shutdown(Duration::ZERO);
    assert!(
        runtime.live_containers().is_empty(),
        "container left behind"
    );
    let conn = rusqlite::Connection::open(dir.path().join("data/builder.db")).unwrap();
    let (status, attempts): (String, i64) = conn
        .query_row(
            "SELECT status, attempts FROM build_jobs WHERE request_hash = ?1",
            [&hash],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(status, "pending");
    assert_eq!(attempts, 0, "an interrupted attempt is given back");

    runtime.set_slow(Duration::from_millis(10));
    let app = TestApp::start(config, runtime.clone());
    assert_eq!(
        http::wait_final(&app.base, &hash, Duration::from_secs(20)).status,
        200
    );
}

#[test]
fn the_watchdog_fails_a_build_past_job_timeout() {
    let env = start(|c| c.job_timeout_seconds = 1);
    env.runtime.set_slow(Duration::from_secs(60));
    let hash = http::request_hash(&http::post_build(&env.app.base, &request(&["slow-pkg"])));
    let r = http::wait_final(&env.app.base, &hash, Duration::from_secs(40));
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(
        r.json()["detail"],
        "Error: Build timed out after 1 seconds (job_timeout_seconds)"
    );
    assert!(env.runtime.live_containers().is_empty());
}
