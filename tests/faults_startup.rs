//! Start-up never waits on Podman: the real binary against a container
//! socket that is absent, refuses, accepts and never answers, never
//! accepts, answers slowly, or answers 500. Every time the listener answers
//! at once, `/health` is 200 and reports the runtime as degraded, and a
//! build stays queued without spending an attempt. The time from exec to
//! the first answer is printed (`--nocapture`), not asserted.

mod common;

use common::daemon::Daemon;
use common::fake_upstream::FakeUpstream;
use common::podman_proxy::{Mode, PodmanProxy};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

fn start(socket: &Path, upstream: &FakeUpstream) -> Daemon {
    let extra = format!(
        "container_socket_path: {}\nupstream_url: {}\nlog_level: debug\nworker_poll_seconds: 1\n\
         branches:\n  \"1.2\":\n    path: \"releases/{{version}}\"\n",
        socket.display(),
        upstream.url()
    );
    Daemon::start(&extra)
}

fn json_of(d: &Daemon, path: &str) -> Value {
    let (status, body) = d.get(path).expect("the daemon answers");
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Report the time to the first answer, with the daemon's own figure.
fn report(case: &str, d: &Daemon) {
    let log = d.log();
    let own = log
        .lines()
        .find_map(|l| l.split("ready in ").nth(1))
        .unwrap_or("?");
    eprintln!(
        "start-up with Podman {case}: first /health answer {:.1} ms after exec (daemon: ready in {own})",
        d.ready_after.as_secs_f64() * 1000.0
    );
}

fn wait_degraded_with(d: &Daemon, reason: &str) -> Value {
    let mut last = Value::Null;
    wait_for(&format!("degraded because of {reason:?}"), || {
        last = json_of(d, "/health");
        last["container_runtime"] == "degraded"
            && last["container_runtime_detail"]
                .as_str()
                .is_some_and(|s| s.contains(reason))
    });
    assert_eq!(last["status"], "ok");
    last
}

fn post_build(d: &Daemon) -> String {
    let body = r#"{"version":"1.2.3","target":"testtarget/testsubtarget","profile":"testprofile"}"#;
    let mut s = std::net::TcpStream::connect(d.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST /api/v1/build HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let (text, _) = common::daemon::read_until_close(&mut s);
    assert_eq!(common::daemon::status_of(&text), Some(202), "{text}");
    let body = text.split_once("\r\n\r\n").unwrap().1;
    let v: Value = serde_json::from_str(body).unwrap();
    v["request_hash"].as_str().unwrap().to_string()
}

fn attempts(d: &Daemon, hash: &str) -> i64 {
    rusqlite::Connection::open(d.dir.path().join("data/builder.db"))
        .unwrap()
        .query_row(
            "SELECT attempts FROM build_jobs WHERE request_hash = ?1",
            [hash],
            |r| r.get(0),
        )
        .unwrap()
}

/// A build posted now stays queued while three more health checks fail.
fn builds_stay_queued(d: &Daemon, mut checks_seen: impl FnMut() -> usize) {
    let hash = post_build(d);
    let seen = checks_seen();
    wait_for("three more failed health checks", || {
        checks_seen() >= seen + 3
    });
    let (status, body) = d.get(&format!("/api/v1/build/{hash}")).unwrap();
    assert_eq!(status, 202, "{body}");
    assert!(body.contains("\"queued\""), "{body}");
    assert_eq!(
        attempts(d, &hash),
        0,
        "an attempt was spent on an absent runtime"
    );
    let stats = json_of(d, "/api/v1/stats");
    assert_eq!(stats["container_runtime"], "degraded", "{stats}");
    assert_eq!(stats["queue_length"], 1, "{stats}");
}

/// Failed health checks so far, from the daemon's debug log.
fn failed_checks(d: &Daemon) -> impl FnMut() -> usize + '_ {
    move || {
        d.log()
            .matches("container runtime still not answering")
            .count()
    }
}

#[test]
fn absent_socket() {
    let upstream = FakeUpstream::start_fixtures();
    let dir = tempfile::tempdir().unwrap();
    let d = start(&dir.path().join("absent.sock"), &upstream);
    report("socket absent", &d);
    wait_degraded_with(&d, "No such file");
    builds_stay_queued(&d, failed_checks(&d));
}

#[test]
fn refusing_socket() {
    let upstream = FakeUpstream::start_fixtures();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let d = start(&sock, &upstream);
    report("refusing connections", &d);
    wait_degraded_with(&d, "refused");
    builds_stay_queued(&d, failed_checks(&d));
}

#[test]
fn hung_service_that_accepts_and_never_answers() {
    let upstream = FakeUpstream::start_fixtures();
    let dir = tempfile::tempdir().unwrap();
    let proxy = PodmanProxy::start(&dir.path().join("hung.sock"), None, Mode::Hang);
    let d = start(&proxy.socket, &upstream);
    report("hung (accepts, never answers)", &d);
    // The health check is held by the hung service, and the API answers
    // meanwhile: start-up did not wait for it.
    wait_for("the held health check", || proxy.held() >= 1);
    let h = json_of(&d, "/health");
    assert_eq!(h["container_runtime"], "degraded", "{h}");
    wait_degraded_with(&d, "timeout");
    builds_stay_queued(&d, failed_checks(&d));
}

#[test]
fn service_that_never_accepts() {
    let upstream = FakeUpstream::start_fixtures();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("full.sock");
    // Backlog 0 and one connection queued: every further connect waits.
    let listener =
        socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
    listener
        .bind(&socket2::SockAddr::unix(&sock).unwrap())
        .unwrap();
    listener.listen(0).unwrap();
    let _queued = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let d = start(&sock, &upstream);
    report("not accepting (backlog full)", &d);
    wait_degraded_with(&d, "timeout");
    builds_stay_queued(&d, failed_checks(&d));
}

#[test]
fn slow_service_is_used_once_it_answers() {
    let upstream = FakeUpstream::start_fixtures();
    let dir = tempfile::tempdir().unwrap();
    let proxy = PodmanProxy::start(&dir.path().join("slow.sock"), None, Mode::Hang);
    let d = start(&proxy.socket, &upstream);
    report("slow to answer", &d);
    wait_for("the held health check", || proxy.held() >= 1);
    proxy.set_mode(Mode::Fake);
    wait_for("the runtime up", || {
        json_of(&d, "/health")["container_runtime"] == "up"
    });
    let stats = json_of(&d, "/api/v1/stats");
    assert_eq!(stats["container_runtime"], "up", "{stats}");
    assert!(d.log().contains("container runtime answers"), "{}", d.log());
}

#[test]
fn service_answering_500() {
    let upstream = FakeUpstream::start_fixtures();
    let dir = tempfile::tempdir().unwrap();
    let proxy = PodmanProxy::start(
        &dir.path().join("broken.sock"),
        None,
        Mode::Fail { ping_ok: false },
    );
    let d = start(&proxy.socket, &upstream);
    report("answering 500", &d);
    let h = wait_degraded_with(&d, "500");
    assert!(
        h["container_runtime_detail"]
            .as_str()
            .unwrap()
            .contains("injected fault"),
        "{h}"
    );
    builds_stay_queued(&d, failed_checks(&d));
}
