//! Supervision of the queue's threads: panics injected through the
//! test-only fault hooks at named points of the worker, janitor and runtime
//! monitor loops, and a database the janitor cannot open. Every thread
//! carries on: the worker pool still builds at full concurrency, jobs held
//! by a panicking worker are built again, and leases keep renewing.

mod common;

use asu_builder::config::Config;
use asu_builder::faults::{Faults, JanitorPoint, WorkerPoint};
use common::fake_runtime::FakeRuntime;
use common::fake_upstream::FakeUpstream;
use common::http;
use common::testapp::{self, TestApp};
use serde_json::json;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Env {
    dir: tempfile::TempDir,
    _upstream: FakeUpstream,
    runtime: Arc<FakeRuntime>,
    app: TestApp,
}

impl Env {
    fn db(&self) -> PathBuf {
        self.dir.path().join("data/builder.db")
    }
}

fn start(edit: impl FnOnce(&mut Config), faults: Faults) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let upstream = FakeUpstream::start_fixtures();
    let mut c = testapp::config(dir.path(), upstream.url());
    edit(&mut c);
    let runtime = Arc::new(FakeRuntime::new());
    let app = TestApp::start_with_faults(c, runtime.clone(), faults);
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

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Panics the first `n` times it is called.
fn first(n: usize) -> impl Fn() -> bool {
    let count = AtomicUsize::new(0);
    move || count.fetch_add(1, Ordering::SeqCst) < n
}

#[test]
fn workers_survive_panics_anywhere_and_the_pool_builds_at_full_concurrency() {
    const WORKERS: usize = 3;
    // Panics before claiming (no job held), right after a claim, and after
    // a build before its outcome is recorded: each once per job or point.
    let at_claim = first(2 * WORKERS);
    let claimed_once = Mutex::new(HashSet::new());
    let recorded_once = Mutex::new(HashSet::new());
    let hook = move |_worker: &str, point: WorkerPoint<'_>| match point {
        WorkerPoint::Claim => {
            if at_claim() {
                panic!("injected: claim");
            }
        }
        WorkerPoint::Claimed(hash) if hash.ends_with('0') || hash.ends_with('1') => {
            if claimed_once.lock().unwrap().insert(hash.to_string()) {
                panic!("injected: after the claim of {hash}");
            }
        }
        WorkerPoint::Record(hash) => {
            if recorded_once.lock().unwrap().insert(hash.to_string()) {
                panic!("injected: before recording {hash}");
            }
        }
        WorkerPoint::Claimed(_) => {}
    };
    let faults = Faults {
        worker: Some(Arc::new(hook)),
        ..Faults::none()
    };
    let env = start(|c| c.worker_concurrent = WORKERS, faults);
    let base = &env.app.base;

    // Every job panics its worker at least once (before recording), some
    // twice; each is released and built again.
    let hashes: Vec<String> = (0..4)
        .map(|i| {
            let pkg = format!("pkg-{i}");
            http::request_hash(&http::post_build(base, &request(&[pkg.as_str()])))
        })
        .collect();
    for hash in &hashes {
        let r = http::wait_final(base, hash, Duration::from_secs(60));
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(testapp::attempts(&env.db(), hash) >= 2, "{hash}");
    }

    // The pool is whole: WORKERS builds run at the same time.
    env.runtime.hold_make_image.store(true, Ordering::SeqCst);
    let held: Vec<String> = (0..WORKERS)
        .map(|i| {
            let pkg = format!("held-{i}");
            http::request_hash(&http::post_build(base, &request(&[pkg.as_str()])))
        })
        .collect();
    wait_for(
        "every worker in make image",
        Duration::from_secs(60),
        || env.runtime.making_images.load(Ordering::SeqCst) == WORKERS,
    );
    let stats = http::get(&env.app.url("/api/v1/stats")).json();
    assert_eq!(stats["workers_busy"], WORKERS, "{stats}");
    assert_eq!(stats["running"], WORKERS, "{stats}");
    env.runtime.hold_make_image.store(false, Ordering::SeqCst);
    for hash in &held {
        let r = http::wait_final(base, hash, Duration::from_secs(60));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert!(env.runtime.live_containers().is_empty());
}

fn lease_of(db: &Path) -> Option<i64> {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT lease_expires_at FROM build_jobs WHERE status = 'running'",
            [],
            |r| r.get(0),
        )
        .ok()
}

#[test]
fn the_janitor_survives_an_unreachable_database_and_panics_and_leases_keep_renewing() {
    let opens = Arc::new(AtomicUsize::new(0));
    let renew_panics = first(1);
    let hook = {
        let opens = Arc::clone(&opens);
        move |point: JanitorPoint| match point {
            JanitorPoint::Open => {
                opens.fetch_add(1, Ordering::SeqCst);
            }
            JanitorPoint::Renew => {
                if renew_panics() {
                    panic!("injected: renew");
                }
            }
            JanitorPoint::Sweep => {}
        }
    };
    let faults = Faults {
        janitor: Some(Arc::new(hook)),
        ..Faults::none()
    };
    let env = start(|_| {}, faults);
    let db = env.db();
    let data = db.parent().unwrap().to_path_buf();

    // A build that stays running for the whole test.
    env.runtime.hold_make_image.store(true, Ordering::SeqCst);
    let hash = http::request_hash(&http::post_build(&env.app.base, &request(&["held"])));
    wait_for("the build to run", Duration::from_secs(30), || {
        env.runtime.making_images.load(Ordering::SeqCst) == 1
    });
    let first_lease = lease_of(&db).expect("a running job");

    // The janitor's first pass opens the database: make that impossible
    // (the directory replaced by a file; open connections keep working).
    let moved = env.dir.path().join("data.moved");
    std::fs::rename(&data, &moved).unwrap();
    std::fs::write(&data, b"not a directory").unwrap();
    wait_for(
        "the janitor to retry opening",
        Duration::from_secs(60),
        || opens.load(Ordering::SeqCst) >= 3,
    );
    std::fs::remove_file(&data).unwrap();
    std::fs::rename(&moved, &data).unwrap();

    // It opens, panics once while renewing, then renews for good.
    wait_for("a renewed lease", Duration::from_secs(90), || {
        lease_of(&db).is_some_and(|l| l > first_lease)
    });
    // The API answered all along, and the build finishes normally.
    assert_eq!(http::get(&env.app.url("/api/v1/stats")).status, 200);
    env.runtime.hold_make_image.store(false, Ordering::SeqCst);
    let r = http::wait_final(&env.app.base, &hash, Duration::from_secs(30));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(testapp::attempts(&db, &hash), 1);
}

#[test]
fn the_runtime_monitor_survives_panics() {
    let panics = first(3);
    let faults = Faults {
        monitor: Some(Arc::new(move || {
            if panics() {
                panic!("injected: health check");
            }
        })),
        ..Faults::none()
    };
    let env = start(|_| {}, faults);
    let hash = http::request_hash(&http::post_build(&env.app.base, &request(&["vim"])));
    let r = http::wait_final(&env.app.base, &hash, Duration::from_secs(30));
    assert_eq!(r.status, 200, "{}", r.text());
    let health = http::get(&env.app.url("/health")).json();
    assert_eq!(health["container_runtime"], "up", "{health}");
}
