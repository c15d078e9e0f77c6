//! Podman tier, migration: the real binary builds with the fake ImageBuilder
//! image; a second one on a fresh database and the same store (a server
//! taking over a store, or one whose database was lost) answers from the
//! store at once. Prints the time to 200 of both, and what adopting a
//! 256 MiB image costs. Never skipped: without Podman every test fails with
//! the harness's message.

mod common;

use common::daemon::Daemon;
use common::fake_upstream::FakeUpstream;
use common::http;
use common::podman_service::{self, Service};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::{Duration, Instant};

/// YAML for a daemon on `service` whose store is under `public`.
fn config(public: &Path, upstream: &FakeUpstream, service: &Service, worker: &str) -> String {
    format!(
        "public_path: {}\ncontainer_socket_path: {}\nupstream_url: {}\nworker_id: {worker}\n\
         worker_concurrent: 1\nworker_poll_seconds: 1\ncontainer_network: asu-e2e\n\
         log_level: info\nstore_adopt_settle_seconds: 0\n\
         branches:\n  \"1.2\":\n    path: \"releases/{{version}}\"\n    enabled: true\n    snapshot: false\n",
        public.display(),
        service.socket.display(),
        upstream.url(),
    )
}

fn worker(n: usize) -> String {
    format!("migrate{}-{n}", std::process::id())
}

fn body(packages: &[&str]) -> String {
    json!({
        "version": "1.2.3",
        "target": "testtarget/testsubtarget",
        "profile": "testprofile",
        "packages": packages,
    })
    .to_string()
}

fn sysupgrade(result: &Value) -> &Value {
    result["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "sysupgrade")
        .unwrap_or_else(|| panic!("no sysupgrade image in {result}"))
}

/// POST and poll until done: the answer and the time to it.
fn build(base: &str, body: &str) -> (Value, Duration) {
    let started = Instant::now();
    let hash = http::request_hash(&http::post_build(base, body));
    let done = http::wait_final(base, &hash, Duration::from_secs(300));
    let took = started.elapsed();
    assert_eq!(done.status, 200, "{}", done.text());
    (done.json(), took)
}

#[test]
fn a_second_daemon_on_the_same_store_answers_at_once_instead_of_rebuilding() {
    let service = podman_service::shared();
    let upstream = FakeUpstream::start_fixtures();
    let store = tempfile::tempdir().unwrap();
    let request = body(&["vim", "tmux"]);
    let first = Daemon::start(&config(store.path(), &upstream, service, &worker(1)));
    let base = format!("http://{}", first.addr());
    let (built, fresh) = build(&base, &request);
    drop(first);

    let second = Daemon::start(&config(store.path(), &upstream, service, &worker(2)));
    let base = format!("http://{}", second.addr());
    // Its upstream metadata cache warmed by a request it refuses (400), as
    // on a server that has been answering for a while.
    let mut unknown: Value = serde_json::from_str(&request).unwrap();
    unknown["profile"] = json!("no-such-profile");
    assert_eq!(http::post_build(&base, &unknown.to_string()).status, 400);
    let started = Instant::now();
    let r = http::post_build(&base, &request);
    let adopted = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json();
    let hash = answer["request_hash"].as_str().unwrap().to_owned();
    assert_eq!(hash, built["request_hash"].as_str().unwrap());
    for key in ["images", "manifest", "build_cmd", "bin_dir", "titles", "id"] {
        assert_eq!(answer[key], built[key], "{key}");
    }
    let image = sysupgrade(&answer);
    let file = http::get(&format!(
        "{base}/store/{}/{}",
        answer["bin_dir"].as_str().unwrap(),
        image["name"].as_str().unwrap()
    ));
    let digest = asu_builder::hash::hex(&Sha256::digest(&file.body));
    assert_eq!(image["sha256"], digest.as_str());

    // What the operator sees: one log line, the adopted count.
    let log = second.log();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("for {hash}")) && l.contains("adopted store/"))
        .unwrap_or_else(|| panic!("no adoption line in\n{log}"));
    assert!(!log.contains(&format!("building {hash}")), "{log}");
    // Statistics are committed by their writer within ~50 ms.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stats = http::get(&format!("{base}/api/v1/stats")).json();
        if stats["adopted_24h"] == 1 {
            assert_eq!(stats["completed_24h"], 0, "{stats}");
            break;
        }
        assert!(Instant::now() < deadline, "{stats}");
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("{line}");
    eprintln!(
        "time to 200: fresh build {:.0} ms (POST, then polls every 50 ms), adopted {:.1} ms \
         (the POST's own answer; metadata cached)",
        fresh.as_secs_f64() * 1000.0,
        adopted.as_secs_f64() * 1000.0
    );
}

/// Adopting hashes every listed image once, streamed: the daemon's memory
/// does not grow with the image.
#[test]
fn adopting_a_big_image_hashes_it_streamed() {
    let service = podman_service::shared();
    let upstream = FakeUpstream::start_fixtures();
    let store = tempfile::tempdir().unwrap();
    let request = body(&["big-image-pkg"]);
    let first = Daemon::start(&config(store.path(), &upstream, service, &worker(3)));
    let (built, fresh) = build(&format!("http://{}", first.addr()), &request);
    drop(first);
    let size = sysupgrade_size(store.path(), &built);
    assert!(size >= 256 << 20, "the big image was built: {size} bytes");

    let second = Daemon::start(&config(store.path(), &upstream, service, &worker(4)));
    let before = second.peak_rss_mib();
    let started = Instant::now();
    let r = http::post_build(&format!("http://{}", second.addr()), &request);
    let adopted = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["images"], built["images"]);
    let after = second.peak_rss_mib();
    assert!(
        after - before < 64.0,
        "peak RSS grew by {:.1} MiB while hashing {size} bytes",
        after - before
    );
    eprintln!(
        "256 MiB image: fresh build {:.1} s, adopted in {:.0} ms (peak RSS {before:.1} -> {after:.1} MiB)",
        fresh.as_secs_f64(),
        adopted.as_secs_f64() * 1000.0
    );
}

fn sysupgrade_size(public: &Path, result: &Value) -> u64 {
    let path = public
        .join("store")
        .join(result["bin_dir"].as_str().unwrap())
        .join(sysupgrade(result)["name"].as_str().unwrap());
    std::fs::metadata(path).unwrap().len()
}
