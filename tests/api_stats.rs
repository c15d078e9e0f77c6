//! API tier, statistics: the counting rule checked with real POSTs (fake
//! container runtime), every statistics endpoint with its defaults and its
//! parameter errors over seeded rollups, the pages and their assets, and
//! Prometheus /metrics.

mod common;

use asu_builder::config::Config;
use asu_builder::stats::writer::apply_batch;
use asu_builder::stats::{BuildInfo, Event, Kind};
use common::fake_runtime::FakeRuntime;
use common::fake_upstream::FakeUpstream;
use common::http;
use common::testapp::{self, TestApp};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Env {
    dir: tempfile::TempDir,
    upstream: FakeUpstream,
    runtime: Arc<FakeRuntime>,
    app: TestApp,
}

fn start(edit: impl FnOnce(&mut Config)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let upstream = FakeUpstream::start_fixtures();
    let mut c = testapp::config(dir.path(), upstream.url());
    edit(&mut c);
    let runtime = Arc::new(FakeRuntime::new());
    let app = TestApp::start(c, runtime.clone());
    Env {
        dir,
        upstream,
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
        "diff_packages": packages.contains(&"vim"),
        "client": "stats-test/1",
    })
    .to_string()
}

fn db(env: &Env) -> rusqlite::Connection {
    rusqlite::Connection::open(env.dir.path().join("data/builder.db")).unwrap()
}

/// Sums of the daily rollup (what every endpoint is built from).
fn rollup_totals(env: &Env) -> [i64; 5] {
    env.app.flush_stats();
    db(env)
        .query_row(
            "SELECT coalesce(sum(requests), 0), coalesce(sum(cache_hits), 0), \
                coalesce(sum(cache_misses), 0), coalesce(sum(successes), 0), \
                coalesce(sum(failures), 0) FROM stats_daily",
            [],
            |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?]),
        )
        .unwrap()
}

/// A sample's value from the Prometheus text, 0 when absent.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

fn wait_started(env: &Env, hash: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http::poll(&env.app.base, hash);
        if r.status == 202 && r.json()["detail"] == "started" {
            return;
        }
        assert!(Instant::now() < deadline, "{hash} never started");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn every_post_is_counted_by_the_rule_and_the_invariants_hold() {
    let env = start(|c| {
        c.worker_concurrent = 1;
        c.max_pending_jobs = 1;
    });
    let base = env.app.base.clone();
    // A: a miss that succeeds, then a hit on its result.
    let a = http::request_hash(&http::post_build(&base, &request(&["vim", "dropbear"])));
    assert_eq!(
        http::wait_final(&base, &a, Duration::from_secs(30)).status,
        200
    );
    assert_eq!(
        http::post_build(&base, &request(&["vim", "dropbear"])).status,
        200
    );
    // B: a miss that fails, then a replayed failure (a hit).
    let b = http::request_hash(&http::post_build(&base, &request(&["missing-pkg"])));
    assert_eq!(
        http::wait_final(&base, &b, Duration::from_secs(30)).status,
        500
    );
    assert_eq!(
        http::post_build(&base, &request(&["missing-pkg"])).status,
        500
    );
    // C runs for a minute (the only worker); D and E wait; a second POST of
    // a running and of a queued job joins it (hits).
    env.runtime.set_slow(Duration::from_secs(60));
    let c = http::request_hash(&http::post_build(&base, &request(&["slow-pkg"])));
    wait_started(&env, &c);
    assert_eq!(http::post_build(&base, &request(&["slow-pkg"])).status, 202);
    assert_eq!(http::post_build(&base, &request(&["d-pkg"])).status, 202);
    assert_eq!(http::post_build(&base, &request(&["d-pkg"])).status, 202);
    assert_eq!(http::post_build(&base, &request(&["e-pkg"])).status, 202);
    // Two pending > max_pending_jobs = 1: overloaded, not a build request.
    assert_eq!(http::post_build(&base, &request(&["f-pkg"])).status, 529);
    // Invalid (400) and malformed (422) POSTs are not build requests either.
    let invalid =
        json!({"version": "9.9.9", "target": "testtarget/testsubtarget", "profile": "testprofile"});
    assert_eq!(http::post_build(&base, &invalid.to_string()).status, 400);
    assert_eq!(http::post_build(&base, "{not json").status, 422);
    assert_eq!(http::post_build(&base, r#"{"version": 1}"#).status, 422);

    let [requests, hits, misses, successes, failures] = rollup_totals(&env);
    let queue = http::get(&format!("{base}/api/v1/stats")).json();
    let in_flight = queue["pending"].as_i64().unwrap() + queue["running"].as_i64().unwrap();
    assert_eq!(
        (queue["pending"].as_i64(), queue["running"].as_i64()),
        (Some(2), Some(1))
    );
    // The invariants, over the rollups every endpoint reads.
    assert_eq!(requests, hits + misses);
    assert_eq!(misses, successes + failures + in_flight);
    // And the rule itself: A, B, C, D, E missed; A, B, C, D hit once each.
    assert_eq!(
        [requests, hits, misses, successes, failures],
        [9, 4, 5, 1, 1]
    );
    assert_eq!(queue["completed_24h"], 1);
    assert_eq!(queue["failed_24h"], 1);
    assert_eq!(queue["workers_busy"], 1);

    // Raw events: one request row per hit or miss; rejected POSTs none.
    let conn = db(&env);
    let raw = |event: &str| -> i64 {
        conn.query_row(
            "SELECT count(*) FROM build_stats WHERE event = ?1",
            [event],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(
        (raw("request"), raw("cache-hit"), raw("cache-miss")),
        (9, 4, 5)
    );
    let rejected: Vec<(i64, i64)> = conn
        .prepare("SELECT status, count FROM stats_daily_rejected ORDER BY status")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rejected, [(400, 1), (422, 2), (529, 1)]);
    // Extra packages of A: `dropbear` is a default package of the profile.
    let a_packages: String = conn
        .query_row(
            "SELECT packages FROM build_stats WHERE event = 'cache-miss' AND request_hash = ?1",
            [&a],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(a_packages, r#"["vim"]"#);
    let top = http::get(&format!("{base}/api/v1/top-packages")).json();
    let names: Vec<&str> = top["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for expected in ["vim", "missing-pkg", "slow-pkg", "d-pkg", "e-pkg"] {
        assert!(names.contains(&expected), "{expected} missing: {top}");
    }
    assert!(
        !names.contains(&"dropbear") && !names.contains(&"f-pkg"),
        "{top}"
    );
    // The failure is in the error log, ids hidden, one short line.
    let errors = http::get(&format!("{base}/api/v1/build-errors")).text();
    let entry = errors
        .lines()
        .find(|l| l.contains("1.2.3:testtarget/testsubtarget:testprofile"))
        .unwrap_or_else(|| panic!("{errors}"));
    assert!(entry.contains("Impossible package selection"), "{entry}");
    assert!(!entry.contains(&b), "{entry}");

    // Prometheus counts the same things, exactly.
    let m = http::get(&format!("{base}/metrics"));
    assert_eq!(m.status, 200);
    assert!(
        m.header("Content-Type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        m.header("Content-Type")
    );
    let text = m.text();
    assert_eq!(metric(&text, "asu_cache_hits_total"), 4.0);
    assert_eq!(metric(&text, "asu_cache_misses_total"), 5.0);
    assert_eq!(metric(&text, "asu_builds_total{outcome=\"success\"}"), 1.0);
    assert_eq!(metric(&text, "asu_builds_total{outcome=\"failure\"}"), 1.0);
    assert_eq!(metric(&text, "asu_build_duration_seconds_count"), 2.0);
    assert_eq!(
        metric(&text, "asu_build_duration_seconds_bucket{le=\"+Inf\"}"),
        2.0
    );
    for (status, n) in [("400", 1.0), ("422", 2.0), ("529", 1.0)] {
        let series = format!("asu_build_requests_rejected_total{{status=\"{status}\"}}");
        assert_eq!(metric(&text, &series), n, "{series}");
    }
    let route = |status: &str| {
        metric(
            &text,
            &format!("asu_http_responses_total{{route=\"build_post\",status=\"{status}\"}}"),
        )
    };
    // 202: A, B, C (+1 joined), D (+1 joined), E; 200: A again; 500: B again.
    assert_eq!(
        (
            route("202"),
            route("200"),
            route("500"),
            route("529"),
            route("400"),
            route("422")
        ),
        (7.0, 1.0, 1.0, 1.0, 1.0, 2.0)
    );
    assert!(
        metric(
            &text,
            "asu_http_responses_total{route=\"stats\",status=\"200\"}"
        ) >= 1.0
    );
    assert_eq!(metric(&text, "asu_queue_length"), 2.0);
    assert_eq!(metric(&text, "asu_workers_busy"), 1.0);
    assert_eq!(metric(&text, "asu_workers"), 1.0);
    assert_eq!(metric(&text, "asu_stat_events_dropped_total"), 0.0);
    assert!(metric(&text, "asu_stat_events_written_total") >= 18.0 + 2.0);
}

#[test]
fn upstream_fetch_errors_are_counted() {
    let env = start(|_| {});
    let before = metric(
        &http::get(&env.app.url("/metrics")).text(),
        "asu_upstream_fetch_errors_total",
    );
    env.upstream.set_failing(true);
    let r = http::get(
        &env.app
            .url("/json/v1/releases/1.2.3/targets/testtarget/testsubtarget/index.json"),
    );
    assert!(r.status >= 500, "{} {}", r.status, r.text());
    let after = metric(
        &http::get(&env.app.url("/metrics")).text(),
        "asu_upstream_fetch_errors_total",
    );
    assert!(after > before, "{before} → {after}");
    let text = http::get(&env.app.url("/metrics")).text();
    assert!(metric(&text, "asu_upstream_fetches_total") >= after);
    assert!(
        metric(
            &text,
            "asu_http_responses_total{route=\"metrics\",status=\"200\"}"
        ) >= 2.0
    );
}

// ------------------------------------------------------------ seeded data

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn today() -> i64 {
    now_ms().div_euclid(DAY_MS)
}

fn ev(day: i64, kind: Kind, version: &str, diff: bool, packages: &[&str]) -> Event {
    Event {
        // Noon UTC: far from both day boundaries whatever the test's timing.
        ts_ms: day * DAY_MS + DAY_MS / 2,
        kind,
        build: BuildInfo {
            request_hash: "f".repeat(64),
            version: version.into(),
            target: "ath79/generic".into(),
            profile: "tplink_archer-c7-v5".into(),
            client: "luci/git-24.1".into(),
            diff_packages: diff,
            packages: packages.iter().map(|p| p.to_string()).collect(),
        },
        duration_s: matches!(kind, Kind::Success | Kind::Failure).then_some(42.0),
        detail: (kind == Kind::Failure)
            .then(|| format!("Error: build {} failed", "0123abcd".repeat(8))),
    }
}

/// Events the endpoints below are checked against (today = day 0):
/// - day 0: 24.10.0 miss (diff, vim+luci), 24.10.0 hit (diff), 23.05.5 miss
///   (vim), a 24.10.0 failure;
/// - day -3: SNAPSHOT miss (luci);
/// - day -40: 23.05.5 miss (old-pkg), outside 30 days, inside 26 weeks.
fn seed(env: &Env) {
    let t = today();
    let events = [
        ev(t, Kind::CacheMiss, "24.10.0", true, &["vim", "luci"]),
        ev(t, Kind::CacheHit, "24.10.0", true, &[]),
        ev(t, Kind::CacheMiss, "23.05.5", false, &["vim"]),
        ev(t, Kind::Failure, "24.10.0", true, &[]),
        ev(t - 3, Kind::CacheMiss, "SNAPSHOT", false, &["luci"]),
        ev(t - 40, Kind::CacheMiss, "23.05.5", false, &["old-pkg"]),
    ];
    let mut conn = db(env);
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    apply_batch(&mut conn, &env.app.config.branches, &events, now_ms()).unwrap();
}

fn get_json(env: &Env, path: &str) -> Value {
    let r = http::get(&env.app.url(path));
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    assert_eq!(r.header("Content-Type"), Some("application/json"), "{path}");
    r.json()
}

fn label(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * 86_400, 0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string()
}

#[test]
fn stats_endpoints_answer_with_their_shapes_and_defaults() {
    let env = start(|c| c.worker_concurrent = 0);
    seed(&env);
    let t = today();

    let s = get_json(&env, "/api/v1/stats");
    for key in [
        "queue_length",
        "pending",
        "running",
        "workers",
        "workers_busy",
        "completed_24h",
        "failed_24h",
        "adopted_24h",
    ] {
        assert!(s.get(key).is_some(), "{key}: {s}");
    }
    let summary = get_json(&env, "/api/v1/stats/summary");
    assert_eq!(summary["queue_length"], 0);
    assert_eq!(summary["builds_24h"], 3, "{summary}");

    // builds-per-day: 30 days by default, oldest first, today last.
    let d = get_json(&env, "/api/v1/builds-per-day");
    let labels = d["labels"].as_array().unwrap();
    assert_eq!(labels.len(), 30);
    assert_eq!(labels[29], format!("{}Z", label(t)));
    assert_eq!(labels[0], format!("{}Z", label(t - 29)));
    let sets: Vec<(&str, &str)> = d["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["label"].as_str().unwrap(), s["color"].as_str().unwrap()))
        .collect();
    assert_eq!(
        sets,
        [
            ("Requests", "green"),
            ("Cache-Hits", "orange"),
            ("Failures", "red")
        ]
    );
    let data = |i: usize| -> Vec<i64> {
        d["datasets"][i]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect()
    };
    assert_eq!(data(0)[29], 3);
    assert_eq!(data(0)[26], 1, "three days ago");
    assert_eq!(data(0).iter().sum::<i64>(), 4, "day -40 is outside");
    assert_eq!(data(1)[29], 1);
    assert_eq!(data(2)[29], 1);
    let d7 = get_json(&env, "/api/v1/builds-per-day?days=7");
    assert_eq!(d7["labels"].as_array().unwrap().len(), 7);
    let d60 = get_json(&env, "/api/v1/builds-per-day?days=60");
    let sum60: i64 = d60["datasets"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(sum60, 5);

    // builds-by-version: 26 weekly buckets; one series per branch.
    let v = get_json(&env, "/api/v1/builds-by-version");
    assert_eq!(v["labels"].as_array().unwrap().len(), 26);
    assert_eq!(v["labels"][25], format!("{}Z", label(t - 6)));
    let series: Vec<(&str, i64)> = v["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["label"].as_str().unwrap(),
                s["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_i64().unwrap())
                    .sum(),
            )
        })
        .collect();
    assert_eq!(series, [("23.05", 2), ("24.10", 2), ("SNAPSHOT", 1)]);
    let one = get_json(&env, "/api/v1/builds-by-version?branch=24.10&weeks=2");
    assert_eq!(one["labels"].as_array().unwrap().len(), 2);
    assert_eq!(one["datasets"][0]["label"], "24.10.0");
    assert_eq!(one["datasets"][0]["data"], json!([0, 2]));
    assert_eq!(one["datasets"].as_array().unwrap().len(), 1);

    // diff-packages-*: requests with and without diff_packages.
    let ds = get_json(&env, "/api/v1/diff-packages-stats");
    assert_eq!(
        ds,
        json!({"total_builds": 4, "diff_packages_true": 2, "diff_packages_false": 2,
               "percentage_true": 50.0, "percentage_false": 50.0})
    );
    let ds1 = get_json(&env, "/api/v1/diff-packages-stats?days=1");
    assert_eq!(ds1["total_builds"], 3);
    assert_eq!(ds1["percentage_true"], 66.67);
    let by = get_json(&env, "/api/v1/diff-packages-by-version");
    let versions: Vec<&str> = by
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["SNAPSHOT", "24.10.0", "23.05.5"], "newest first");
    assert_eq!(
        by[1],
        json!({"version": "24.10.0", "total_builds": 2, "diff_packages_true": 2,
               "diff_packages_false": 0, "percentage_true": 100.0})
    );
    assert_eq!(by[2]["total_builds"], 2, "day -40 is inside 26 weeks");
    let by1 = get_json(&env, "/api/v1/diff-packages-by-version?weeks=1");
    assert_eq!(by1.as_array().unwrap().len(), 3);
    assert_eq!(by1[2]["total_builds"], 1);
    let trend = get_json(&env, "/api/v1/diff-packages-trend");
    let rows = trend.as_array().unwrap();
    assert_eq!(rows.len(), 30);
    assert_eq!(rows[29]["date"], label(t));
    assert_eq!(
        rows[29],
        json!({"date": label(t), "diff_packages_true": 2, "diff_packages_false": 1, "total": 3})
    );
    assert_eq!(
        rows[0],
        json!({"date": label(t - 29), "diff_packages_true": 0, "diff_packages_false": 0, "total": 0})
    );

    // top-packages: misses of the last 30 days.
    let top = get_json(&env, "/api/v1/top-packages");
    assert_eq!(
        top,
        json!({"packages": [{"name": "luci", "count": 2}, {"name": "vim", "count": 2}],
               "branch": null, "days": 30})
    );
    let top1 = get_json(&env, "/api/v1/top-packages?n=1&branch=24.10");
    assert_eq!(top1["packages"], json!([{"name": "luci", "count": 1}]));
    assert_eq!(top1["branch"], "24.10");

    // build-errors: plain text, ids hidden.
    let e = http::get(&env.app.url("/api/v1/build-errors"));
    assert_eq!(e.status, 200);
    assert!(e.header("Content-Type").unwrap().starts_with("text/plain"));
    let text = e.text();
    assert!(text.starts_with("Build Errors: 1 entries\n"), "{text}");
    let line = text.lines().last().unwrap();
    assert!(
        line.ends_with("24.10.0:ath79/generic:tplink_archer-c7-v5 Error: build [job-id] failed"),
        "{line}"
    );
    assert!(line.chars().count() <= 200);
}

#[test]
fn bad_query_values_are_400_naming_the_parameter_and_range() {
    let env = start(|c| {
        c.worker_concurrent = 0;
        c.stats_rollup_retention_days = 365;
    });
    let cases = [
        (
            "/api/v1/builds-per-day?days=-1",
            "days must be an integer from 1 to 365",
        ),
        (
            "/api/v1/builds-per-day?days=0",
            "days must be an integer from 1 to 365",
        ),
        (
            "/api/v1/builds-per-day?days=100000",
            "days must be an integer from 1 to 365",
        ),
        (
            "/api/v1/builds-per-day?days=abc",
            "days must be an integer from 1 to 365",
        ),
        (
            "/api/v1/builds-per-day?days=",
            "days must be an integer from 1 to 365",
        ),
        (
            "/api/v1/diff-packages-stats?days=366",
            "days must be an integer from 1 to 365",
        ),
        (
            "/api/v1/diff-packages-trend?days=1.5",
            "days must be an integer from 1 to 365",
        ),
        (
            "/api/v1/builds-by-version?weeks=0",
            "weeks must be an integer from 1 to 52",
        ),
        (
            "/api/v1/builds-by-version?weeks=53",
            "weeks must be an integer from 1 to 52",
        ),
        (
            "/api/v1/diff-packages-by-version?weeks=x",
            "weeks must be an integer from 1 to 52",
        ),
        (
            "/api/v1/top-packages?n=abc",
            "n must be an integer from 1 to 100",
        ),
        (
            "/api/v1/top-packages?n=101",
            "n must be an integer from 1 to 100",
        ),
        (
            "/api/v1/build-errors?n=501",
            "n must be an integer from 1 to 500",
        ),
        (
            "/api/v1/build-errors?n=0",
            "n must be an integer from 1 to 500",
        ),
    ];
    for (path, detail) in cases {
        let r = http::get(&env.app.url(path));
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert_eq!(r.json(), json!({"detail": detail, "status": 400}), "{path}");
    }
    let r = http::get(&env.app.url("/api/v1/top-packages?branch=%3Cscript%3E"));
    assert_eq!(r.status, 400);
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .starts_with("branch must be")
    );
    // At the edges of the ranges, and unknown parameters ignored.
    for ok in [
        "/api/v1/builds-per-day?days=1",
        "/api/v1/builds-per-day?days=365",
        "/api/v1/builds-by-version?weeks=52&branch=SNAPSHOT",
        "/api/v1/top-packages?n=100&other=x",
        "/api/v1/build-errors?n=500",
    ] {
        assert_eq!(http::get(&env.app.url(ok)).status, 200, "{ok}");
    }
    // Only GET and HEAD.
    let r = http::post_json(&env.app.url("/api/v1/builds-per-day"), "{}");
    assert_eq!(r.status, 405);
    assert_eq!(http::head(&env.app.url("/api/v1/top-packages")).status, 200);
    let none = http::get(&env.app.url("/api/v1/build-errors")).text();
    assert_eq!(none, "No build errors recorded.");
}

#[test]
fn pages_and_assets_are_served_from_the_binary_with_validators() {
    let env = start(|c| c.worker_concurrent = 0);
    let mut assets = Vec::new();
    for page in ["/", "/stats"] {
        let r = http::get(&env.app.url(page));
        assert_eq!(r.status, 200, "{page}");
        assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.header("Cache-Control"), Some("no-cache"));
        let csp = r.header("Content-Security-Policy").unwrap();
        assert!(csp.starts_with("default-src 'self'"), "{csp}");
        let html = r.text();
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{page} links out"
        );
        for part in html.split("\"/static/").skip(1) {
            assets.push(format!("/static/{}", &part[..part.find('"').unwrap()]));
        }
        let etag = r.header("ETag").unwrap().to_string();
        let again = http::get_with(&env.app.url(page), &[("If-None-Match", &etag)]);
        assert_eq!(again.status, 304);
        assert!(again.body.is_empty());
    }
    assert!(
        assets.iter().any(|a| a.starts_with("/static/stats.js?v=")),
        "{assets:?}"
    );
    for asset in &assets {
        let r = http::get(&env.app.url(asset));
        assert_eq!(r.status, 200, "{asset}");
        assert!(!r.body.is_empty());
        assert_eq!(
            r.header("Cache-Control"),
            Some("public, max-age=31536000, immutable")
        );
        let etag = r.header("ETag").unwrap().to_string();
        // The version in the URL is the ETag: new content, new URL.
        assert!(
            asset.ends_with(&format!("?v={}", etag.trim_matches('"'))),
            "{asset} {etag}"
        );
        let again = http::get_with(&env.app.url(asset), &[("If-None-Match", &etag)]);
        assert_eq!(again.status, 304, "{asset}");
        assert_eq!(again.header("ETag"), Some(etag.as_str()));
        let head = http::head(&env.app.url(asset));
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
    }
    assert_eq!(http::get(&env.app.url("/static/nope.js")).status, 404);
    assert_eq!(http::get(&env.app.url("/static/../Cargo.toml")).status, 404);
    assert_eq!(http::post_json(&env.app.url("/stats"), "{}").status, 405);
}
