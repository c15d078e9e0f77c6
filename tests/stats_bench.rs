//! Statistics at scale (figures, not assertions of speed): a year of seeded
//! events (1 million by default, `STATS_BENCH_EVENTS` to change) written
//! through the writer's own batch code, pruned as the writer would, then
//! every statistics endpoint timed over HTTP on loopback.
//!
//! Run with `make bench-stats` (release build):
//! `cargo test --release --test stats_bench -- --ignored --nocapture`.

mod common;

use asu_builder::stats::writer::{apply_batch, prune};
use asu_builder::stats::{BuildInfo, Event, Kind};
use common::fake_runtime::FakeRuntime;
use common::fake_upstream::FakeUpstream;
use common::http;
use common::testapp::{self, TestApp};
use std::sync::Arc;
use std::time::Instant;

const DAY_MS: i64 = 86_400_000;

struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }

    /// Skewed towards small indexes, like package and target popularity.
    fn skewed(&mut self, n: u64) -> u64 {
        let a = self.next(n);
        let b = self.next(n);
        a.min(b).min(self.next(n))
    }
}

const VERSIONS: [&str; 15] = [
    "SNAPSHOT",
    "25.12-SNAPSHOT",
    "25.12.0",
    "25.12.1",
    "24.10-SNAPSHOT",
    "24.10.0",
    "24.10.1",
    "24.10.2",
    "24.10.3",
    "24.10.4",
    "23.05.3",
    "23.05.4",
    "23.05.5",
    "23.05.6",
    "22.03.7",
];

fn event(rng: &mut Lcg, ts_ms: i64) -> Vec<Event> {
    let version = VERSIONS[rng.skewed(VERSIONS.len() as u64) as usize];
    let target = format!("target{}/sub{}", rng.skewed(40), rng.next(2));
    let client = [
        "luci/git-24.1",
        "auc/0.3.2",
        "owut/2024",
        "ofs/4.2",
        "unknown/0",
    ][rng.skewed(5) as usize];
    let build = BuildInfo {
        request_hash: format!("{:016x}{:016x}", rng.next(u64::MAX), rng.next(u64::MAX)),
        version: version.into(),
        target,
        profile: format!("profile{}", rng.skewed(500)),
        client: client.into(),
        diff_packages: rng.next(10) < 7,
        packages: Vec::new(),
    };
    if rng.next(100) < 55 {
        return vec![Event {
            ts_ms,
            kind: Kind::CacheHit,
            build,
            duration_s: None,
            detail: None,
        }];
    }
    let packages = (0..rng.next(6))
        .map(|_| format!("pkg-{}", rng.skewed(2000)))
        .collect();
    let failed = rng.next(100) < 15;
    vec![
        Event {
            ts_ms,
            kind: Kind::CacheMiss,
            build: BuildInfo {
                packages,
                ..build.clone()
            },
            duration_s: None,
            detail: None,
        },
        Event {
            ts_ms: ts_ms + 60_000,
            kind: if failed { Kind::Failure } else { Kind::Success },
            build,
            duration_s: Some(40.0 + rng.next(300) as f64),
            detail: failed.then(|| "Error: Impossible package selection: missing (x)".into()),
        },
    ]
}

fn median_p95_max(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95), v[v.len() - 1])
}

#[test]
#[ignore = "a benchmark: make bench-stats"]
fn stats_endpoints_over_a_year_of_events() {
    let total: usize = std::env::var("STATS_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let upstream = FakeUpstream::start_fixtures();
    let mut config = testapp::config(dir.path(), upstream.url());
    config.worker_concurrent = 0;
    let db_path = config.database_path.clone();

    // Seed through the writer's own batch code, oldest first, 500 a batch.
    let mut conn = asu_builder::db::open_and_migrate(&db_path).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let start = now - 365 * DAY_MS;
    let mut rng = Lcg(42);
    let seeding = Instant::now();
    let mut batch = Vec::with_capacity(600);
    let mut written = 0;
    while written < total {
        // Spread evenly over the year.
        let ts = start + (written as i64 * 365 * DAY_MS) / total as i64;
        for e in event(&mut rng, ts.min(now)) {
            batch.push(e);
            written += 1;
        }
        if batch.len() >= 500 {
            apply_batch(&mut conn, &config.branches, &batch, now).unwrap();
            batch.clear();
        }
    }
    apply_batch(&mut conn, &config.branches, &batch, now).unwrap();
    let seeded_s = seeding.elapsed().as_secs_f64();
    let pruning = Instant::now();
    let pruned = prune(&mut conn, &config, now).unwrap();
    let pruned_s = pruning.elapsed().as_secs_f64();
    let count = |table: &str| -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    println!(
        "seeded {written} events over 365 days in {seeded_s:.1} s ({:.0} events/s); \
         pruning past 30 days of raw events took {pruned_s:.1} s ({pruned} rows)",
        written as f64 / seeded_s
    );
    for table in [
        "build_stats",
        "stats_daily",
        "stats_daily_version",
        "stats_packages_daily",
        "stats_packages_recent",
        "stats_errors",
    ] {
        println!("  {table}: {} rows", count(table));
    }
    let size = std::fs::metadata(&db_path).map(|m| m.len()).unwrap_or(0);
    println!("  database file: {:.1} MiB", size as f64 / 1048576.0);
    drop(conn);

    let app = TestApp::start(config, Arc::new(FakeRuntime::new()));
    let agent = http::agent();
    println!("endpoint (HTTP on loopback, 50 requests after 5 warm-ups): median / p95 / max ms");
    for path in [
        "/api/v1/stats",
        "/api/v1/stats/summary",
        "/api/v1/builds-per-day",
        "/api/v1/builds-per-day?days=365",
        "/api/v1/builds-by-version",
        "/api/v1/builds-by-version?branch=24.10",
        "/api/v1/builds-by-version?weeks=52",
        "/api/v1/diff-packages-stats",
        "/api/v1/diff-packages-stats?days=365",
        "/api/v1/diff-packages-by-version",
        "/api/v1/diff-packages-trend",
        "/api/v1/top-packages",
        "/api/v1/top-packages?n=100&branch=24.10",
        "/api/v1/build-errors",
        "/api/v1/build-errors?n=500",
        "/metrics",
    ] {
        let url = app.url(path);
        let mut times = Vec::new();
        for i in 0..55 {
            let t = Instant::now();
            let r = agent.get(&url).call().expect("GET");
            let status = r.status().as_u16();
            let _ = r.into_body().read_to_vec();
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(status, 200, "{path}");
            if i >= 5 {
                times.push(ms);
            }
        }
        let (median, p95, max) = median_p95_max(times);
        println!("  {path:<45} {median:7.2} {p95:7.2} {max:7.2}");
    }
    // Sanity: the windows saw the seeded data.
    let d = http::get(&app.url("/api/v1/diff-packages-stats?days=365")).json();
    assert!(
        d["total_builds"].as_i64().unwrap() > (total as i64) / 3,
        "{d}"
    );
}
