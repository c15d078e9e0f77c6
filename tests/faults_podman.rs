//! Podman faults with a real private Podman service and the fake
//! ImageBuilder: the service stopped under a running build and started
//! again, restarted between builds, hung (SIGSTOP) under a running build,
//! its socket removed, its API answering 500. Throughout, the API keeps
//! answering; builds wait, retry and recover, or fail with a clear detail.
//! Each test has a service of its own. How long recovery took after Podman
//! returned is printed (`--nocapture`), not asserted.

mod common;

use asu_builder::config::Config;
use asu_builder::container::ContainerRuntime;
use asu_builder::container::podman::Podman;
use common::fake_upstream::FakeUpstream;
use common::http;
use common::podman_proxy::{Mode, PodmanProxy};
use common::podman_service::{self, Service};
use common::testapp::{self, TestApp};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn service() -> Service {
    let s = podman_service::start_service().unwrap_or_else(|e| panic!("{e}"));
    s.image(&[podman_service::IMAGE_RELEASE])
        .unwrap_or_else(|e| panic!("{e}"));
    s
}

struct Env {
    dir: tempfile::TempDir,
    _upstream: FakeUpstream,
    app: TestApp,
}

impl Env {
    fn start(socket: &Path, edit: impl FnOnce(&mut Config)) -> Env {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = tempfile::tempdir().unwrap();
        let upstream = FakeUpstream::start_fixtures();
        let mut c = testapp::config(dir.path(), upstream.url());
        c.container_socket_path = socket.to_path_buf();
        c.worker_id = format!(
            "pf{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        c.container_network = "asu-faults".into();
        edit(&mut c);
        let app = TestApp::start(c, Arc::new(Podman::new(socket)));
        Env {
            dir,
            _upstream: upstream,
            app,
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("data/builder.db")
    }

    fn post(&self, packages: &[&str]) -> String {
        let body = json!({
            "version": "1.2.3",
            "target": "testtarget/testsubtarget",
            "profile": "testprofile",
            "packages": packages,
        });
        http::request_hash(&http::post_build(&self.app.base, &body.to_string()))
    }

    fn get(&self, path: &str) -> Value {
        let r = http::get(&self.app.url(path));
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.json()
    }

    fn runtime_state(&self) -> String {
        self.get("/health")["container_runtime"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn wait_runtime(&self, state: &str) {
        wait_for(&format!("runtime {state}"), || {
            self.runtime_state() == state
        });
    }

    fn poll(&self, hash: &str) -> http::Reply {
        http::poll(&self.app.base, hash)
    }

    fn wait_phase(&self, hash: &str, phase: &str) {
        wait_for(&format!("{hash} in {phase}"), || {
            self.poll(hash).json()["imagebuilder_status"] == phase
        });
    }

    fn status(&self, hash: &str) -> (String, i64) {
        rusqlite::Connection::open(self.db())
            .unwrap()
            .query_row(
                "SELECT status, attempts FROM build_jobs WHERE request_hash = ?1",
                [hash],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    }

    fn wait_done(&self, hash: &str) -> Value {
        let r = http::wait_final(&self.app.base, hash, Duration::from_secs(180));
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn containers_of(socket: &Path, hash: &str) -> usize {
    Podman::new(socket)
        .list_by_label(&format!("asu.job={hash}"))
        .expect("podman lists containers")
        .len()
}

fn report(fault: &str, outcome: &str) {
    eprintln!("podman fault: {fault}: {outcome}");
}

#[test]
fn stopped_under_a_running_build_then_started_again() {
    let s = service();
    let env = Env::start(&s.socket, |_| {});
    let hash = env.post(&["slow-6-pkg"]);
    env.wait_phase(&hash, "building_image");
    // As `systemctl stop podman` does: the build container keeps running.
    s.halt().unwrap_or_else(|e| panic!("{e}"));
    env.wait_runtime("degraded");
    // The lost attempt goes back to the queue; the API answers throughout.
    wait_for("the job requeued", || env.status(&hash).0 == "pending");
    assert_eq!(env.poll(&hash).status, 202);
    assert_eq!(env.get("/api/v1/stats")["container_runtime"], "degraded");

    s.start().unwrap_or_else(|e| panic!("{e}"));
    let back = Instant::now();
    env.wait_done(&hash);
    let took = back.elapsed();
    // The old build container held the job's container name; the retry
    // must not trip over it (it did, and finished only on attempt 4/4).
    let attempts = env.status(&hash).1;
    assert_eq!(attempts, 2);
    wait_for("no container of the job", || {
        containers_of(&s.socket, &hash) == 0
    });
    report(
        "service stopped under a running build (its container left running), started again",
        &format!(
            "done on attempt {attempts}, {:.1} s after Podman was back (the build itself sleeps 6 s)",
            took.as_secs_f64()
        ),
    );

    // Restarted between builds: pooled connections to the old service are
    // replaced, and the next build needs one attempt.
    s.halt().unwrap_or_else(|e| panic!("{e}"));
    s.start().unwrap_or_else(|e| panic!("{e}"));
    let restarted = Instant::now();
    let next = env.post(&["tmux"]);
    env.wait_done(&next);
    assert_eq!(env.status(&next).1, 1);
    report(
        "service restarted between builds",
        &format!(
            "the next build done on attempt 1, {:.1} s after the restart",
            restarted.elapsed().as_secs_f64()
        ),
    );
}

fn lease_of(env: &Env, hash: &str) -> i64 {
    rusqlite::Connection::open(env.db())
        .unwrap()
        .query_row(
            "SELECT lease_expires_at FROM build_jobs WHERE request_hash = ?1",
            [hash],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn hung_under_a_running_build_then_thawed() {
    let s = service();
    let env = Env::start(&s.socket, |_| {});
    let hash = env.post(&["slow-4-pkg"]);
    env.wait_phase(&hash, "building_image");
    let lease = lease_of(&env, &hash);
    s.freeze().unwrap_or_else(|e| panic!("{e}"));
    let frozen = Instant::now();
    env.wait_runtime("degraded");
    let detail = env.get("/health")["container_runtime_detail"].clone();
    assert!(detail.as_str().unwrap().contains("timeout"), "{detail}");
    // New work waits without spending attempts, and the janitor, which
    // never calls Podman, keeps the running build's lease alive.
    let queued = env.post(&["vim"]);
    wait_for("a lease renewed while Podman hangs", || {
        lease_of(&env, &hash) > lease
    });
    assert_eq!(env.status(&queued), ("pending".into(), 0));
    assert_eq!(env.get("/api/v1/stats")["queue_length"], 1);

    s.thaw().unwrap_or_else(|e| panic!("{e}"));
    let back = Instant::now();
    env.wait_done(&hash);
    env.wait_done(&queued);
    let took = back.elapsed();
    let (attempts, queued_attempts) = (env.status(&hash).1, env.status(&queued).1);
    assert_eq!(queued_attempts, 1);
    report(
        "service hung (SIGSTOP) under a running build",
        &format!(
            "degraded while hung ({:.1} s), running build done on attempt {attempts} and the \
             build queued meanwhile on attempt 1, {:.1} s after the thaw",
            back.duration_since(frozen).as_secs_f64(),
            took.as_secs_f64()
        ),
    );
}

#[test]
fn socket_removed_then_service_restarted() {
    let s = service();
    let env = Env::start(&s.socket, |_| {});
    env.wait_runtime("up");
    std::fs::remove_file(&s.socket).unwrap();
    env.wait_runtime("degraded");
    let detail = env.get("/health")["container_runtime_detail"].clone();
    assert!(
        detail.as_str().unwrap().contains("No such file"),
        "{detail}"
    );
    let hash = env.post(&["vim"]);
    // The service still runs but nobody can reach it: restart it.
    s.start().unwrap_or_else(|e| panic!("{e}"));
    let back = Instant::now();
    env.wait_done(&hash);
    assert_eq!(env.status(&hash).1, 1);
    report(
        "socket removed",
        &format!(
            "degraded, the build waited in the queue and was done on attempt 1, {:.1} s after \
             the service was restarted",
            back.elapsed().as_secs_f64()
        ),
    );
}

#[test]
fn api_answering_500() {
    let s = service();
    let dir = tempfile::tempdir().unwrap();
    let proxy = PodmanProxy::start(&dir.path().join("p.sock"), Some(&s.socket), Mode::Pass);
    let env = Env::start(&proxy.socket, |_| {});
    let ok = env.post(&["vim"]);
    env.wait_done(&ok);

    // Every call but the health check fails: retried with backoff (skipped
    // here), then failed with the runtime's own message.
    proxy.set_mode(Mode::Fail { ping_ok: true });
    let hash = env.post(&["tmux"]);
    let failed = Instant::now();
    let r = loop {
        rusqlite::Connection::open(env.db())
            .unwrap()
            .execute("UPDATE build_jobs SET not_before = 0", [])
            .unwrap();
        let r = env.poll(&hash);
        if r.status != 202 {
            break r;
        }
        assert!(failed.elapsed() < Duration::from_secs(120), "{}", r.text());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(r.status, 500, "{}", r.text());
    let detail = r.json()["detail"].as_str().unwrap().to_string();
    assert!(
        detail.starts_with(
            "Error: Container runtime failed during image pull: container API error 500:"
        ),
        "{detail}"
    );
    assert!(detail.contains("injected fault"), "{detail}");
    assert!(detail.ends_with("(gave up after 4 attempts)"), "{detail}");
    report(
        "API answering 500 except _ping",
        &format!("failed after 4 attempts: {detail}"),
    );

    // The health check fails too: degraded, builds wait.
    proxy.set_mode(Mode::Fail { ping_ok: false });
    env.wait_runtime("degraded");
    let waiting = env.post(&["nano"]);
    proxy.set_mode(Mode::Pass);
    let back = Instant::now();
    env.wait_done(&waiting);
    assert_eq!(env.status(&waiting).1, 1);
    assert_eq!(env.runtime_state(), "up");
    report(
        "API answering 500 to everything",
        &format!(
            "degraded, the build waited in the queue and was done on attempt 1, {:.1} s after \
             the API answered again",
            back.elapsed().as_secs_f64()
        ),
    );
}
