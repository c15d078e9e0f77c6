//! API tier, migration: complete builds already in the store (written the
//! way the reference server writes them, `common::reference_store`) are
//! answered at once without a container; anything incomplete or
//! inconsistent is built as usual; expiry never deletes what was adopted.

mod common;

use asu_builder::config::Config;
use common::fake_runtime::{self, Call, FakeRuntime};
use common::fake_upstream::FakeUpstream;
use common::http;
use common::reference_store;
use common::testapp::{self, TestApp};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Log records of this test binary, for the lines an operator reads.
struct Capture(Mutex<Vec<(log::Level, String)>>);

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            let line = r.args().to_string();
            self.0.lock().unwrap().push((r.level(), line));
        }
    }
    fn flush(&self) {}
}

static LOG: Capture = Capture(Mutex::new(Vec::new()));

/// Records logged so far that mention `needle`.
fn logged(needle: &str) -> Vec<(log::Level, String)> {
    if log::set_logger(&LOG).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    LOG.0
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, l)| l.contains(needle))
        .cloned()
        .collect()
}

struct Env {
    dir: tempfile::TempDir,
    upstream: FakeUpstream,
    runtime: Arc<FakeRuntime>,
    app: TestApp,
}

impl Env {
    fn store(&self) -> PathBuf {
        self.dir.path().join("public/store")
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.path().join("data/builder.db")).unwrap()
    }

    fn count(&self, sql: &str) -> i64 {
        self.app.flush_stats();
        self.db().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    fn metric(&self, series: &str) -> f64 {
        http::get(&self.app.url("/metrics"))
            .text()
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }

    /// Calls that would need a container runtime.
    fn container_work(&self) -> usize {
        self.runtime
            .calls()
            .into_iter()
            .filter(|c| {
                matches!(
                    c,
                    Call::EnsureImage(_) | Call::Create(_) | Call::Exec { .. }
                )
            })
            .count()
    }
}

/// A service on a store that already holds what `prepare` writes there
/// (before the service starts, as when it takes over a store).
fn start(edit: impl FnOnce(&mut Config), prepare: impl FnOnce(&Path)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("public/store");
    std::fs::create_dir_all(&store).unwrap();
    prepare(&store);
    let upstream = FakeUpstream::start_fixtures();
    let mut c = testapp::config(dir.path(), upstream.url());
    // Fixtures are written just now: no settle time unless a test wants it.
    c.store_adopt_settle_seconds = 0;
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

const PACKAGES: [&str; 2] = ["vim", "tmux"];

fn body() -> String {
    json!({
        "version": "1.2.3",
        "target": "testtarget/testsubtarget",
        "profile": "testprofile",
        "packages": PACKAGES,
        "client": "test/1",
    })
    .to_string()
}

fn bin_dir() -> String {
    reference_store::bin_dir_of(&body())
}

/// The reference's build of `body()`.
fn reference_build(store: &Path) {
    reference_store::write(store, &bin_dir(), fake_runtime::PROFILE, &PACKAGES);
}

/// Keys whose values differ between two answers for the same build.
const PER_ANSWER: [&str; 5] = [
    "enqueued_at",
    "finished_at",
    "build_duration",
    "stdout",
    "stderr",
];

fn without_per_answer(v: &Value) -> Value {
    let mut v = v.clone();
    for k in PER_ANSWER {
        v.as_object_mut().unwrap().remove(k);
    }
    v
}

#[test]
fn a_complete_reference_build_is_answered_at_once_without_a_container() {
    // What a fresh build answers for the same request, for comparison.
    let fresh_env = start(|_| {}, |_| {});
    let r = http::post_build(&fresh_env.app.base, &body());
    assert_eq!(r.status, 202, "{}", r.text());
    let fresh = http::wait_final(
        &fresh_env.app.base,
        &http::request_hash(&r),
        Duration::from_secs(30),
    );
    assert_eq!(fresh.status, 200, "{}", fresh.text());
    let fresh = fresh.json();
    assert_eq!(fresh["bin_dir"], bin_dir().as_str());

    let env = start(|_| {}, reference_build);
    env.runtime.set_unreachable(true);
    let r = http::post_build(&env.app.base, &body());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("X-Imagebuilder-Status"), Some("done"));
    assert_eq!(env.container_work(), 0, "{:?}", env.runtime.calls());
    let adopted = r.json();
    // Every key of a fresh build's answer, in the same order; the same
    // values but for the build log and the times.
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&adopted), keys(&fresh));
    assert_eq!(without_per_answer(&adopted), without_per_answer(&fresh));
    assert_eq!(
        (&adopted["stdout"], &adopted["stderr"]),
        (&json!(""), &json!(""))
    );
    assert!(adopted["build_cmd"][0] == "make" && adopted["build_cmd"][1] == "image");
    assert!(adopted["build_duration"].is_number());
    let at = adopted["finished_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(at).is_ok() && at.ends_with('Z'),
        "{at}"
    );

    // The downloads are the files the checksums describe.
    for image in adopted["images"].as_array().unwrap() {
        let url = format!("/store/{}/{}", bin_dir(), image["name"].as_str().unwrap());
        let file = http::get(&env.app.url(&url));
        assert_eq!(file.status, 200, "{url}");
        assert_eq!(
            image["sha256"],
            fake_runtime::sha256_hex(&file.body).as_str()
        );
    }

    // It is a result now: polls and POSTs are answered from the database.
    let hash = adopted["request_hash"].as_str().unwrap().to_owned();
    let poll = http::poll(&env.app.base, &hash);
    assert_eq!(poll.status, 200);
    assert_eq!(poll.json(), adopted);
    let hashed = env.metric("asu_store_adoption_hashed_bytes_total");
    assert!(hashed > 0.0);
    assert_eq!(http::post_build(&env.app.base, &body()).status, 200);
    assert_eq!(env.metric("asu_store_adoption_hashed_bytes_total"), hashed);
    assert_eq!(env.container_work(), 0);

    // Statistics: one `adopted`, then one hit; no miss, no build.
    let raw = |e: &str| {
        env.count(&format!(
            "SELECT count(*) FROM build_stats WHERE event = '{e}'"
        ))
    };
    assert_eq!(
        (
            raw("request"),
            raw("adopted"),
            raw("cache-hit"),
            raw("cache-miss"),
            raw("success")
        ),
        (2, 1, 1, 0, 0)
    );
    let rollup = env.count(
        "SELECT sum(requests) * 1000000 + sum(adopted) * 1000 + sum(cache_hits) FROM stats_daily",
    );
    assert_eq!(rollup, 2_001_001, "requests = hits + adopted + misses");
    assert_eq!(env.metric("asu_builds_adopted_total"), 1.0);
    let stats = http::get(&env.app.url("/api/v1/stats")).json();
    assert_eq!(stats["adopted_24h"], 1);
    assert_eq!(stats["completed_24h"], 0);
}

#[test]
fn identical_and_aliased_requests_hash_the_directory_once() {
    let env = start(|_| {}, reference_build);
    // A board name that resolves to the same profile: another request
    // hash, the same bin_dir.
    let mut profiles: Value = serde_json::from_slice(
        &std::fs::read(
            "tests/fixtures/upstream/releases/1.2.3/targets/testtarget/testsubtarget/profiles.json",
        )
        .unwrap(),
    )
    .unwrap();
    profiles["profiles"]["testprofile"]["supported_devices"] = json!(["testvendor,testprofile"]);
    env.upstream.set_file(
        "releases/1.2.3/targets/testtarget/testsubtarget/profiles.json",
        profiles.to_string(),
    );
    let base = env.app.base.clone();
    let answers: Vec<http::Reply> = std::thread::scope(|s| {
        let posts: Vec<_> = (0..6)
            .map(|_| s.spawn(|| http::post_build(&base, &body())))
            .collect();
        posts.into_iter().map(|p| p.join().unwrap()).collect()
    });
    assert!(
        answers.iter().all(|r| r.status == 200),
        "all answered from the store"
    );
    let hashed = env.metric("asu_store_adoption_hashed_bytes_total");
    let on_disk: u64 = env
        .store()
        .join(bin_dir())
        .read_dir()
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".bin"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert_eq!(hashed, on_disk as f64, "each image hashed once");

    let mut alias: Value = serde_json::from_str(&body()).unwrap();
    alias["profile"] = json!("testvendor,testprofile");
    let r = http::post_build(&base, &alias.to_string());
    assert_eq!(r.status, 200, "{}", r.text());
    let a = r.json();
    assert_eq!(a["bin_dir"], bin_dir().as_str());
    assert_ne!(a["request_hash"], answers[0].json()["request_hash"]);
    assert_eq!(a["images"], answers[0].json()["images"]);
    assert_eq!(env.metric("asu_store_adoption_hashed_bytes_total"), hashed);
    assert_eq!(env.metric("asu_builds_adopted_total"), 2.0);
    assert_eq!(env.container_work(), 0);
}

#[test]
fn a_build_signed_after_the_imagebuilder_is_adopted_with_the_served_checksum() {
    // The reference signs the installable images in place after the build
    // (fwtool appends a signature chunk; usign and ucert leave files next
    // to them); profiles.json keeps the ImageBuilder's checksums.
    let env = start(
        |_| {},
        |store| {
            reference_build(store);
            let dir = store.join(bin_dir());
            let image = dir.join(fake_runtime::SYSUPGRADE_IMAGE);
            let mut data = std::fs::read(&image).unwrap();
            data.extend(asu_builder::complete::fwtool::signature_chunk(
                b"ucert chain",
            ));
            std::fs::write(&image, data).unwrap();
            for ext in ["sig", "ucert", "test"] {
                let name = format!("{}.{ext}", fake_runtime::SYSUPGRADE_IMAGE);
                std::fs::write(dir.join(name), ext).unwrap();
            }
        },
    );
    let listed: Value = serde_json::from_slice(
        &std::fs::read(env.store().join(bin_dir()).join("profiles.json")).unwrap(),
    )
    .unwrap();
    let listed = &listed["profiles"]["testprofile"]["images"][0];
    let r = http::post_build(&env.app.base, &body());
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json();
    let image = &answer["images"][0];
    assert_eq!(image["name"], fake_runtime::SYSUPGRADE_IMAGE);
    let file = http::get(&env.app.url(&format!(
        "/store/{}/{}",
        bin_dir(),
        fake_runtime::SYSUPGRADE_IMAGE
    )));
    assert_eq!(
        image["sha256"],
        fake_runtime::sha256_hex(&file.body).as_str()
    );
    assert_ne!(image["sha256"], listed["sha256"]);
    assert_eq!(image["sha256_unsigned"], listed["sha256_unsigned"]);
    assert_eq!(env.container_work(), 0);
}

/// Writes a store that is not quite a complete build of `body()`.
type Spoiler = Box<dyn Fn(&Path)>;

/// Each way of not being a complete build of the request.
fn spoilers() -> Vec<(&'static str, Spoiler)> {
    let image = |store: &Path| store.join(bin_dir()).join(fake_runtime::SYSUPGRADE_IMAGE);
    let edit = |store: &Path, f: &dyn Fn(&mut Value)| {
        let path = store.join(bin_dir()).join("profiles.json");
        let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(path, v.to_string()).unwrap();
    };
    vec![
        (
            "the empty directory the reference creates when its build starts",
            Box::new(|s: &Path| std::fs::create_dir_all(s.join(bin_dir())).unwrap()),
        ),
        (
            "a missing image",
            Box::new(move |s: &Path| {
                reference_build(s);
                std::fs::remove_file(image(s)).unwrap();
            }),
        ),
        (
            "a short image",
            Box::new(move |s: &Path| {
                reference_build(s);
                let data = std::fs::read(image(s)).unwrap();
                std::fs::write(image(s), &data[..data.len() - 1]).unwrap();
            }),
        ),
        (
            "a wrong sha256",
            Box::new(move |s: &Path| {
                reference_build(s);
                std::fs::remove_file(s.join(bin_dir()).join("sha256sums")).unwrap();
                edit(s, &|v| {
                    v["profiles"]["testprofile"]["images"][0]["sha256"] = json!("0".repeat(64))
                });
            }),
        ),
        (
            "sha256sums disagreeing with profiles.json",
            Box::new(move |s: &Path| {
                reference_build(s);
                let sums = s.join(bin_dir()).join("sha256sums");
                let text = std::fs::read_to_string(&sums).unwrap();
                std::fs::write(&sums, format!("{}{}", "1".repeat(64), &text[64..])).unwrap();
            }),
        ),
        (
            "another profile",
            Box::new(|s: &Path| {
                reference_store::write(s, &bin_dir(), "otherprofile", &PACKAGES);
            }),
        ),
        (
            "another version",
            Box::new(move |s: &Path| {
                reference_build(s);
                edit(s, &|v| v["version_number"] = json!("1.2.4"));
            }),
        ),
    ]
}

#[test]
fn anything_incomplete_or_inconsistent_is_built_as_usual() {
    for (what, spoil) in spoilers() {
        let env = start(|_| {}, |s| spoil(s));
        let r = http::post_build(&env.app.base, &body());
        assert_eq!(r.status, 202, "{what}: {}", r.text());
        let done = http::wait_final(
            &env.app.base,
            &http::request_hash(&r),
            Duration::from_secs(30),
        );
        assert_eq!(done.status, 200, "{what}: {}", done.text());
        assert_eq!(env.runtime.created().len(), 1, "{what}: built once");
        assert_eq!(env.metric("asu_builds_adopted_total"), 0.0, "{what}");
        let refused = env.metric("asu_store_adoption_refused_total");
        assert_eq!(refused, 1.0, "{what}");
        // The build replaced the directory: now complete and served.
        let body = done.json();
        let name = body["images"][0]["name"].as_str().unwrap();
        let file = http::get(&env.app.url(&format!("/store/{}/{name}", bin_dir())));
        assert_eq!(
            body["images"][0]["sha256"],
            fake_runtime::sha256_hex(&file.body).as_str()
        );
        let published = env.count("SELECT count(*) FROM store_published");
        assert_eq!(published, 1, "{what}: the rebuilt directory is ours");
    }
}

#[test]
fn a_directory_changed_within_the_settle_time_is_not_adopted() {
    // The default settle time: the fixture was written a moment ago, as a
    // directory the other server is still writing or signing would be.
    let env = start(
        |c| c.store_adopt_settle_seconds = Config::default().store_adopt_settle_seconds,
        reference_build,
    );
    let r = http::post_build(&env.app.base, &body());
    assert_eq!(r.status, 202, "{}", r.text());
    let done = http::wait_final(
        &env.app.base,
        &http::request_hash(&r),
        Duration::from_secs(30),
    );
    assert_eq!(done.status, 200);
    assert_eq!(env.runtime.created().len(), 1);
    // Not even hashed: the directory's own change time was enough.
    assert_eq!(env.metric("asu_store_adoption_hashed_bytes_total"), 0.0);
}

#[test]
fn a_rebuild_over_another_complete_build_warns_naming_the_bin_dir() {
    logged("");
    // Another server's build of this request, with other bytes, so fresh
    // that it is not adopted: the rebuild replaces it.
    let body = json!({
        "version": "1.2.3", "target": "testtarget/testsubtarget",
        "profile": "testprofile", "packages": ["vim", "htop"],
    })
    .to_string();
    let bin_dir = reference_store::bin_dir_of(&body);
    let env = start(
        |c| c.store_adopt_settle_seconds = 3600,
        |s| {
            reference_store::write(
                s,
                &bin_dir,
                fake_runtime::PROFILE,
                &["vim", "htop", "other"],
            );
        },
    );
    let r = http::post_build(&env.app.base, &body);
    assert_eq!(r.status, 202, "{}", r.text());
    let done = http::wait_final(
        &env.app.base,
        &http::request_hash(&r),
        Duration::from_secs(30),
    );
    assert_eq!(done.status, 200);
    let warnings: Vec<String> = logged(&format!("store/{bin_dir}"))
        .into_iter()
        .filter(|(level, line)| *level == log::Level::Warn && line.contains("different bytes"))
        .map(|(_, line)| line)
        .collect();
    assert_eq!(warnings.len(), 1, "{:?}", logged(&bin_dir));
    assert!(
        warnings[0].contains(fake_runtime::SYSUPGRADE_IMAGE),
        "{}",
        warnings[0]
    );
    let image = &done.json()["images"][0];
    let file = http::get(&env.app.url(&format!(
        "/store/{bin_dir}/{}",
        image["name"].as_str().unwrap()
    )));
    assert_eq!(
        image["sha256"],
        fake_runtime::sha256_hex(&file.body).as_str()
    );
}

#[test]
fn expiry_of_an_adopted_result_leaves_the_files() {
    let env = start(|c| c.build_ttl_seconds = 1, reference_build);
    let r = http::post_build(&env.app.base, &body());
    assert_eq!(r.status, 200, "{}", r.text());
    let hash = http::request_hash(&r);
    let dir = env.store().join(bin_dir());
    let files = |d: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = d
            .read_dir()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = files(&dir);
    // Past the TTL the result is gone, from the answers and the database …
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(http::poll(&env.app.base, &hash).status, 404);
    env.app.app.as_ref().unwrap().sweep_now().unwrap();
    assert_eq!(env.count("SELECT count(*) FROM build_results"), 0);
    // … and the directory, not ours, is left exactly as it was.
    assert_eq!(files(&dir), before);
    assert_eq!(env.count("SELECT count(*) FROM store_published"), 0);
}

#[test]
fn with_store_gc_off_even_our_own_builds_stay() {
    let env = start(
        |c| {
            c.build_ttl_seconds = 1;
            c.store_gc = false;
        },
        |_| {},
    );
    let r = http::post_build(&env.app.base, &body());
    let done = http::wait_final(
        &env.app.base,
        &http::request_hash(&r),
        Duration::from_secs(30),
    );
    assert_eq!(done.status, 200);
    std::thread::sleep(Duration::from_millis(1100));
    env.app.app.as_ref().unwrap().sweep_now().unwrap();
    assert_eq!(env.count("SELECT count(*) FROM build_results"), 0);
    assert!(env.store().join(bin_dir()).join("profiles.json").is_file());
}

#[test]
fn a_request_whose_metadata_cannot_be_fetched_is_not_adopted() {
    let env = start(|_| {}, reference_build);
    env.upstream.set_failing(true);
    let r = http::post_build(&env.app.base, &body());
    assert!(matches!(r.status, 502 | 504), "{} {}", r.status, r.text());
    assert_eq!(env.metric("asu_builds_adopted_total"), 0.0);
    assert_eq!(env.count("SELECT count(*) FROM build_results"), 0);
}
