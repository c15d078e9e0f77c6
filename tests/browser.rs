//! Real browser: Debian's chromium, headless (installed through
//! tests/browser/chromium.sh when missing), loads `/`, `/stats` and `/docs`
//! from the service with a year of seeded statistics, on a desktop in light
//! mode and on a phone in dark mode. Every chart must have drawn its data, every
//! request of the page must have succeeded on our own origin, and no
//! JavaScript exception or console error may occur. Screenshots are kept
//! under target/browser-artifacts/.

#[path = "browser/cdp.rs"]
mod cdp;
mod common;

use asu_builder::stats::writer::apply_batch;
use asu_builder::stats::{BuildInfo, Event, Kind};
use cdp::{Browser, Page};
use common::fake_runtime::FakeRuntime;
use common::fake_upstream::FakeUpstream;
use common::testapp::{self, TestApp};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;

const DAY_MS: i64 = 86_400_000;

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("browser-artifacts")
}

/// A small deterministic generator, so the seeded year is the same each run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// About 8,000 events over the last 365 days: three branches, a few
/// versions each, hits and misses, outcomes, failures with details.
fn seed_year(db: &std::path::Path, app: &TestApp) {
    const VERSIONS: [&str; 6] = [
        "24.10.0",
        "24.10.1",
        "23.05.5",
        "23.05.4",
        "SNAPSHOT",
        "24.10-SNAPSHOT",
    ];
    const PACKAGES: [&str; 12] = [
        "luci",
        "vim",
        "tmux",
        "htop",
        "wireguard-tools",
        "luci-app-sqm",
        "curl",
        "tcpdump",
        "iperf3",
        "nano",
        "adblock",
        "luci-app-attendedsysupgrade",
    ];
    let now = chrono::Utc::now().timestamp_millis();
    let today = now.div_euclid(DAY_MS);
    let mut rng = Lcg(7);
    let mut events = Vec::new();
    for back in 0..365 {
        let day = today - back;
        // More traffic lately, a weekly rhythm.
        let n = 4 + (365 - back) / 20 + if day % 7 < 2 { 0 } else { 6 };
        for _ in 0..n {
            let version = VERSIONS[rng.next(VERSIONS.len() as u64) as usize];
            let ts_ms = day * DAY_MS + rng.next(DAY_MS as u64) as i64;
            let ts_ms = ts_ms.min(now);
            let packages: Vec<String> = (0..rng.next(4))
                .map(|_| PACKAGES[rng.next(PACKAGES.len() as u64) as usize].to_string())
                .collect();
            let build = BuildInfo {
                request_hash: format!("{:064x}", rng.next(u64::MAX)),
                version: version.into(),
                target: ["ath79/generic", "x86/64", "mediatek/filogic"][rng.next(3) as usize]
                    .into(),
                profile: "some_profile".into(),
                client: ["luci/git-24.1", "auc/0.3.2", "owut/2024"][rng.next(3) as usize].into(),
                diff_packages: rng.next(10) < 7,
                packages,
            };
            let hit = rng.next(10) < 6;
            let mut e = Event {
                ts_ms,
                kind: if hit { Kind::CacheHit } else { Kind::CacheMiss },
                build: build.clone(),
                duration_s: None,
                detail: None,
            };
            if hit {
                e.build.packages.clear();
            }
            events.push(e);
            if !hit {
                let failed = rng.next(10) < 2;
                events.push(Event {
                    ts_ms: ts_ms.min(now),
                    kind: if failed { Kind::Failure } else { Kind::Success },
                    build: BuildInfo {
                        packages: Vec::new(),
                        ..build
                    },
                    duration_s: Some(30.0 + rng.next(200) as f64),
                    detail: failed.then(|| {
                        format!(
                            "Error: Impossible package selection: missing ({}) in {}",
                            PACKAGES[rng.next(PACKAGES.len() as u64) as usize],
                            "ab12".repeat(16)
                        )
                    }),
                });
            }
        }
    }
    let mut conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    for chunk in events.chunks(500) {
        apply_batch(&mut conn, &app.config.branches, chunk, now).unwrap();
    }
}

/// What the page did wrong, from the DevTools events since navigation.
fn problems(page: &Page, origin: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (method, p) in &page.events {
        match method.as_str() {
            "Runtime.exceptionThrown" => out.push(format!("exception: {p}")),
            "Runtime.consoleAPICalled" if p["type"] == "error" || p["type"] == "assert" => {
                out.push(format!("console error: {}", p["args"]))
            }
            "Log.entryAdded" if p["entry"]["level"] == "error" => {
                out.push(format!("log error: {}", p["entry"]))
            }
            "Network.loadingFailed" if p["canceled"] != true => {
                out.push(format!("request failed: {p}"))
            }
            "Network.responseReceived" => {
                let status = p["response"]["status"].as_i64().unwrap_or(0);
                if status >= 400 {
                    out.push(format!(
                        "HTTP {status} for {}",
                        p["response"]["url"].as_str().unwrap_or("?")
                    ));
                }
            }
            "Network.requestWillBeSent" => {
                let url = p["request"]["url"].as_str().unwrap_or("");
                if !url.starts_with(origin) && !url.starts_with("data:") {
                    out.push(format!("request off our origin: {url}"));
                }
            }
            _ => {}
        }
    }
    out
}

fn requests_made(page: &Page) -> Vec<String> {
    page.events
        .iter()
        .filter(|(m, _)| m == "Network.responseReceived")
        .map(|(_, p)| {
            format!(
                "{} {}",
                p["response"]["status"],
                p["response"]["url"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// Body background as (r, g, b).
fn background(v: &Value) -> (u8, u8, u8) {
    let s = v["bg"].as_str().unwrap_or("");
    let nums: Vec<u8> = s
        .trim_start_matches("rgba(")
        .trim_start_matches("rgb(")
        .trim_end_matches(')')
        .split(',')
        .filter_map(|x| x.trim().parse().ok())
        .collect();
    assert!(nums.len() >= 3, "background {s:?}");
    (nums[0], nums[1], nums[2])
}

const STATS_PROBE: &str = r#"(() => {
  const out = { charts: {}, ready: document.body.dataset.ready || null };
  for (const el of document.querySelectorAll('[data-chart]')) {
    const canvas = el.querySelector('canvas');
    let painted = 0, colored = 0;
    if (canvas && canvas.width && canvas.height) {
      const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      for (let i = 0; i < d.length; i += 4) {
        if (d[i + 3] > 0) painted++;
        const hi = Math.max(d[i], d[i + 1], d[i + 2]), lo = Math.min(d[i], d[i + 1], d[i + 2]);
        if (d[i + 3] > 128 && hi - lo > 60) colored++;
      }
    }
    const u = window.asuCharts && window.asuCharts[el.id];
    out.charts[el.id] = {
      canvas: !!canvas, painted, colored,
      uplot: !!u, points: u ? u.data[0].length : 0, series: u ? u.series.length - 1 : 0,
      width: canvas ? canvas.getBoundingClientRect().width : 0,
    };
  }
  out.errorRows = document.querySelectorAll('#errors tbody tr').length;
  out.errorTimes = [...document.querySelectorAll('#errors tbody tr td:first-child')].map(e => e.textContent);
  out.tiles = [...document.querySelectorAll('.tile .v')].map(e => e.textContent);
  out.overflow = document.documentElement.scrollWidth - window.innerWidth;
  out.bg = getComputedStyle(document.body).backgroundColor;
  return out;
})()"#;

const OVERVIEW_PROBE: &str = r#"(() => ({
  ready: document.body.dataset.ready || null,
  version: document.getElementById('server-version').textContent,
  branchRows: document.querySelectorAll('#branches tbody tr').length,
  versions: document.querySelectorAll('#branches .chip').length,
  queue: document.getElementById('queue-length').textContent,
  workers: document.getElementById('workers').textContent,
  rootfs: document.getElementById('rootfs').textContent,
  errors: document.querySelectorAll('.error').length,
  overflow: document.documentElement.scrollWidth - window.innerWidth,
  bg: getComputedStyle(document.body).backgroundColor,
}))()"#;

const DOCS_PROBE: &str = r#"(() => {
  const ops = [...document.querySelectorAll('details.op')];
  ops.forEach(d => d.open = true);
  return {
    ops: ops.length,
    schemas: document.querySelectorAll('h3[id^="schema-"]').length,
    verbs: [...new Set(ops.map(d => d.querySelector('.verb').textContent))].sort(),
    styled: getComputedStyle(document.querySelector('.verb')).color,
    overflow: document.documentElement.scrollWidth - window.innerWidth,
    bg: getComputedStyle(document.body).backgroundColor,
  };
})()"#;

struct Mode {
    name: &'static str,
    width: u32,
    height: u32,
    mobile: bool,
    dark: bool,
}

const MODES: [Mode; 2] = [
    Mode {
        name: "desktop-light",
        width: 1280,
        height: 900,
        mobile: false,
        dark: false,
    },
    Mode {
        name: "phone-dark",
        width: 390,
        height: 844,
        mobile: true,
        dark: true,
    },
];

fn check_theme(mode: &Mode, v: &Value) {
    let (r, g, b) = background(v);
    if mode.dark {
        assert!(
            r < 60 && g < 60 && b < 60,
            "{}: background {:?}",
            mode.name,
            v["bg"]
        );
    } else {
        assert!(
            r > 200 && g > 200 && b > 200,
            "{}: background {:?}",
            mode.name,
            v["bg"]
        );
    }
}

#[test]
fn overview_stats_and_docs_pages_render_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = FakeUpstream::start_fixtures();
    let mut config = testapp::config(dir.path(), upstream.url());
    config.worker_concurrent = 0;
    let app = TestApp::start(config, Arc::new(FakeRuntime::new()));
    seed_year(&dir.path().join("data/builder.db"), &app);
    let origin = app.base.clone();
    let out = artifacts();

    let mut browser = Browser::start();
    let page = &mut browser.page;
    for mode in &MODES {
        page.emulate(mode.width, mode.height, mode.mobile, mode.dark);

        // --- /stats
        page.navigate(&format!("{origin}/stats"));
        page.wait_for("document.body && document.body.dataset.ready !== undefined");
        let v = page.eval(STATS_PROBE);
        let charts = v["charts"].as_object().expect("charts");
        assert_eq!(
            charts.keys().map(String::as_str).collect::<Vec<_>>(),
            ["c-daily", "c-weekly", "c-diff", "c-packages"],
            "{v}"
        );
        for (id, c) in charts {
            assert_eq!(c["canvas"], true, "{}: {id} has no canvas: {v}", mode.name);
            assert_eq!(
                c["uplot"], true,
                "{}: {id} has no chart object: {v}",
                mode.name
            );
            assert!(
                c["colored"].as_u64().unwrap() > 200,
                "{}: {id} drew no data: {c}",
                mode.name
            );
            assert!(
                c["width"].as_f64().unwrap() <= mode.width as f64,
                "{}: {id} wider than the screen: {c}",
                mode.name
            );
        }
        assert_eq!(charts["c-daily"]["points"], 30, "{v}");
        assert_eq!(charts["c-daily"]["series"], 3, "{v}");
        assert_eq!(charts["c-weekly"]["points"], 26, "{v}");
        assert!(charts["c-weekly"]["series"].as_u64().unwrap() >= 3, "{v}");
        assert_eq!(charts["c-diff"]["points"], 30, "{v}");
        assert!(
            charts["c-packages"]["points"].as_u64().unwrap() >= 10,
            "{v}"
        );
        assert_eq!(v["ready"], "4", "{v}");
        assert_eq!(v["errorRows"], 20, "{v}");
        let times: Vec<&str> = v["errorTimes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] >= w[1]),
            "errors not newest first: {times:?}"
        );
        assert!(
            v["tiles"].as_array().unwrap().iter().all(|t| t != "…"),
            "a tile was never filled: {v}"
        );
        assert!(
            v["overflow"].as_i64().unwrap() <= 0,
            "{}: scrolls sideways: {v}",
            mode.name
        );
        check_theme(mode, &v);
        page.screenshot(&out.join(format!("stats-{}.png", mode.name)));
        page.screenshot_viewport(&out.join(format!("stats-{}-top.png", mode.name)));
        page.drain_events(std::time::Duration::from_millis(300));
        let bad = problems(page, &origin);
        assert!(bad.is_empty(), "{}: /stats: {bad:#?}", mode.name);
        let seen = requests_made(page);
        for path in [
            "/api/v1/builds-per-day?days=30",
            "/api/v1/builds-by-version?weeks=26",
            "/api/v1/diff-packages-trend?days=30",
            "/api/v1/top-packages?n=20",
            "/api/v1/build-errors?n=20",
            "/static/stats.js",
            "/static/asu.css",
        ] {
            assert!(
                seen.iter().any(|s| s.contains(&format!("{origin}{path}"))),
                "{path} not loaded: {seen:#?}"
            );
        }

        // --- /
        page.navigate(&format!("{origin}/"));
        page.wait_for("document.body && document.body.dataset.ready !== undefined");
        let v = page.eval(OVERVIEW_PROBE);
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"), "{v}");
        assert!(v["branchRows"].as_u64().unwrap() >= 3, "{v}");
        assert!(v["versions"].as_u64().unwrap() >= 2, "{v}");
        assert_eq!(v["queue"], "0", "{v}");
        assert_eq!(v["workers"], "0 / 0", "{v}");
        assert_eq!(v["rootfs"], "1024 MB", "{v}");
        assert_eq!(v["errors"], 0, "{v}");
        assert!(
            v["overflow"].as_i64().unwrap() <= 0,
            "{}: scrolls sideways: {v}",
            mode.name
        );
        check_theme(mode, &v);
        page.screenshot(&out.join(format!("overview-{}.png", mode.name)));
        page.drain_events(std::time::Duration::from_millis(300));
        let bad = problems(page, &origin);
        assert!(bad.is_empty(), "{}: /: {bad:#?}", mode.name);

        // --- /docs: the OpenAPI document as a page, every operation open.
        page.navigate(&format!("{origin}/docs"));
        page.wait_for("document.readyState === 'complete'");
        let v = page.eval(DOCS_PROBE);
        let ops = asu_builder::api::routes::ROUTES.len() as u64;
        assert_eq!(v["ops"], ops, "one entry per route: {v}");
        assert!(v["schemas"].as_u64().unwrap() >= 10, "{v}");
        assert_eq!(
            v["verbs"],
            serde_json::json!(["DELETE", "GET", "POST"]),
            "{v}"
        );
        assert_eq!(v["styled"], "rgb(255, 255, 255)", "stylesheet applied: {v}");
        assert!(
            v["overflow"].as_i64().unwrap() <= 0,
            "{}: /docs scrolls sideways: {v}",
            mode.name
        );
        check_theme(mode, &v);
        page.screenshot_viewport(&out.join(format!("docs-{}-top.png", mode.name)));
        page.drain_events(std::time::Duration::from_millis(300));
        let bad = problems(page, &origin);
        assert!(bad.is_empty(), "{}: /docs: {bad:#?}", mode.name);
    }
    drop(browser);
    for name in [
        "stats-desktop-light",
        "stats-phone-dark",
        "overview-desktop-light",
    ] {
        let png = out.join(format!("{name}.png"));
        assert!(
            std::fs::metadata(&png).unwrap().len() > 10_000,
            "{}",
            png.display()
        );
    }
}
