//! Load while building: 200 concurrent keep-alive clients poll builds, read
//! the statistics and repeat build requests against the real daemon while
//! builds run on a real Podman service, for `FAULT_LOAD_SECONDS` (60; the
//! soak, `make soak`, runs 600). Asserted: every request gets an expected
//! status (no 503, no socket error), every build ends done, no container is
//! left, and the daemon's RSS is flat (the last quarter's peak at most
//! 8 MiB above the second quarter's). Latencies and RSS are printed, not
//! asserted: the machine has two busy cores.

mod common;

use asu_builder::container::ContainerRuntime;
use asu_builder::container::podman::Podman;
use common::daemon::Daemon;
use common::fake_upstream::FakeUpstream;
use common::http;
use common::podman_service;
use common::rng::Rng;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

const CLIENTS: usize = 200;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    PollBuild,
    Stats,
    RepeatPost,
    Health,
}

#[derive(Default)]
struct Tally {
    latencies: BTreeMap<Kind, Vec<Duration>>,
    failed: usize,
    /// The first few failures.
    examples: Vec<String>,
}

fn body(packages: &[String]) -> String {
    json!({
        "version": "1.2.3",
        "target": "testtarget/testsubtarget",
        "profile": "testprofile",
        "packages": packages,
    })
    .to_string()
}

fn client(
    base: String,
    hashes: Arc<RwLock<Vec<(String, String)>>>,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> Tally {
    let mut rng = Rng::new(seed);
    let agent = http::agent();
    let mut tally = Tally::default();
    while !stop.load(Ordering::Relaxed) {
        let pick = {
            let h = hashes.read().unwrap();
            (!h.is_empty()).then(|| h[rng.below(h.len())].clone())
        };
        let roll = rng.below(100);
        let started = Instant::now();
        let (kind, request) = match (&pick, roll) {
            (Some((hash, _)), 0..70) => (
                Kind::PollBuild,
                agent.get(format!("{base}/api/v1/build/{hash}")).call(),
            ),
            (Some((_, post)), 70..80) => (
                Kind::RepeatPost,
                agent
                    .post(format!("{base}/api/v1/build"))
                    .header("Content-Type", "application/json")
                    .send(post.as_bytes()),
            ),
            (_, 80..95) | (None, _) => (
                Kind::Stats,
                agent.get(format!("{base}/api/v1/stats")).call(),
            ),
            _ => (Kind::Health, agent.get(format!("{base}/health")).call()),
        };
        let outcome = request.and_then(|mut r| {
            let status = r.status().as_u16();
            r.body_mut().read_to_vec().map(|_| status)
        });
        let took = started.elapsed();
        let ok = matches!(
            (kind, &outcome),
            (Kind::PollBuild | Kind::RepeatPost, Ok(200 | 202))
                | (Kind::Stats | Kind::Health, Ok(200))
        );
        if ok {
            tally.latencies.entry(kind).or_default().push(took);
        } else {
            tally.failed += 1;
            if tally.examples.len() < 10 {
                tally.examples.push(format!("{kind:?}: {outcome:?}"));
            }
        }
        // Clients poll; they do not spin.
        std::thread::sleep(Duration::from_millis(rng.below(100) as u64));
    }
    tally
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[test]
fn two_hundred_clients_poll_while_builds_run() {
    let seconds: u64 = std::env::var("FAULT_LOAD_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let service = podman_service::shared();
    let upstream = FakeUpstream::start_fixtures();
    let worker = format!("load{}", std::process::id());
    let d = Daemon::start(&format!(
        "container_socket_path: {}\nupstream_url: {}\nworker_id: {worker}\nworker_concurrent: 2\n\
         worker_poll_seconds: 1\ncontainer_network: asu-load\n\
         branches:\n  \"1.2\":\n    path: \"releases/{{version}}\"\n",
        service.socket.display(),
        upstream.url()
    ));
    let base = format!("http://{}", d.addr());
    let hashes: Arc<RwLock<Vec<(String, String)>>> = Arc::new(RwLock::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));

    // Builds all along: keep two or three queued or running.
    let submitted = Arc::new(AtomicUsize::new(0));
    let submitter = {
        let (base, hashes, stop, submitted) = (
            base.clone(),
            hashes.clone(),
            stop.clone(),
            submitted.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let stats = http::get(&format!("{base}/api/v1/stats")).json();
                let active =
                    stats["pending"].as_i64().unwrap() + stats["running"].as_i64().unwrap();
                if active < 3 {
                    let n = submitted.fetch_add(1, Ordering::SeqCst);
                    let post = body(&[format!("load-{n}"), "slow-1-pkg".into()]);
                    let hash = http::request_hash(&http::post_build(&base, &post));
                    hashes.write().unwrap().push((hash, post));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };

    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (base, hashes, stop) = (base.clone(), hashes.clone(), stop.clone());
            std::thread::spawn(move || client(base, hashes, stop, 1 + i as u64))
        })
        .collect();
    let rss = Arc::new(Mutex::new(Vec::new()));
    while started.elapsed() < Duration::from_secs(seconds) {
        rss.lock().unwrap().push(d.rss_mib());
        std::thread::sleep(Duration::from_secs(1));
    }
    let threads = d.status_value("Threads");
    stop.store(true, Ordering::SeqCst);
    let mut tally = Tally::default();
    for c in clients {
        let t = c.join().unwrap();
        for (k, mut v) in t.latencies {
            tally.latencies.entry(k).or_default().append(&mut v);
        }
        tally.failed += t.failed;
        tally.examples.extend(t.examples);
    }
    submitter.join().unwrap();
    let elapsed = started.elapsed();

    assert_eq!(
        tally.failed, 0,
        "requests failed, e.g. {:?}",
        tally.examples
    );
    // Every build ends done, and no container is left behind.
    let all = hashes.read().unwrap().clone();
    for (hash, _) in &all {
        let r = http::wait_final(&base, hash, Duration::from_secs(180));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let podman = Podman::new(&service.socket);
    let prefix = format!("{worker}/");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ours = podman
            .list_by_label("asu.builder")
            .unwrap()
            .into_iter()
            .filter(|c| {
                c.labels
                    .get("asu.worker")
                    .is_some_and(|w| w.starts_with(&prefix))
            })
            .count();
        if ours == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{ours} containers left");
        std::thread::sleep(Duration::from_millis(200));
    }

    let rss = rss.lock().unwrap().clone();
    let quarter = rss.len() / 4;
    let peak = |s: &[f64]| s.iter().cloned().fold(0.0, f64::max);
    let (second, last) = (peak(&rss[quarter..2 * quarter]), peak(&rss[3 * quarter..]));
    let total: usize = tally.latencies.values().map(Vec::len).sum();
    eprintln!(
        "load: {CLIENTS} clients, {:.0} s, {total} requests ({:.0}/s), 0 errors, {} builds done, \
         daemon threads {threads}",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        all.len()
    );
    for (kind, v) in tally.latencies.iter_mut() {
        v.sort();
        eprintln!(
            "load: {kind:?}: {} requests, p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            v.len(),
            percentile(v, 0.5),
            percentile(v, 0.9),
            percentile(v, 0.99),
            percentile(v, 1.0)
        );
    }
    eprintln!(
        "load: daemon RSS first {:.1} MiB, peak of the second quarter {second:.1} MiB, of the last \
         quarter {last:.1} MiB, at the end {:.1} MiB",
        rss[0],
        rss[rss.len() - 1]
    );
    assert!(
        last <= second + 8.0,
        "RSS grew from {second:.1} MiB to {last:.1} MiB: {rss:?}"
    );
}
