//! Podman tier, end to end: the service with the real Podman client against
//! a private Podman service and the fake ImageBuilder image, from POST to
//! download, plus crash, timeout and outage cases. Never skipped: without
//! Podman every test fails with the harness's message.

mod common;

use asu_builder::config::Config;
use asu_builder::container::ContainerRuntime;
use asu_builder::container::podman::Podman;
use common::fake_upstream::FakeUpstream;
use common::http;
use common::podman_service::{self, Service};
use common::testapp::{self, TestApp};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A usign public key (key id 0102030405060708) in the format clients send.
const USIGN_KEY: &str = "RWQBAgMEBQYHCAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f";

fn unique_worker() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "e2e{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn config_for(dir: &Path, upstream: &FakeUpstream, service: &Service) -> Config {
    let mut c = testapp::config(dir, upstream.url());
    c.container_socket_path = service.socket.clone();
    c.worker_id = unique_worker();
    c.container_network = "asu-e2e".into();
    c
}

struct Env {
    dir: tempfile::TempDir,
    _upstream: FakeUpstream,
    app: TestApp,
    podman: Podman,
}

fn start_on(service: &Service, edit: impl FnOnce(&mut Config)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let upstream = FakeUpstream::start_fixtures();
    let mut c = config_for(dir.path(), &upstream, service);
    edit(&mut c);
    let runtime = Arc::new(Podman::new(&service.socket));
    let app = TestApp::start(c, runtime);
    Env {
        dir,
        _upstream: upstream,
        app,
        podman: Podman::new(&service.socket),
    }
}

fn start(edit: impl FnOnce(&mut Config)) -> Env {
    start_on(podman_service::shared(), edit)
}

fn body(extra: Value) -> String {
    let mut b = json!({
        "version": "1.2.3",
        "target": "testtarget/testsubtarget",
        "profile": "testprofile",
    });
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b.to_string()
}

fn containers_of(podman: &Podman, hash: &str) -> usize {
    podman
        .list_by_label(&format!("asu.job={hash}"))
        .expect("podman lists containers")
        .len()
}

fn sysupgrade(result: &Value) -> Value {
    result["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "sysupgrade")
        .cloned()
        .unwrap_or_else(|| panic!("no sysupgrade image in {result}"))
}

#[test]
fn a_build_downloads_with_matching_checksum_and_carries_the_defaults() {
    let env = start(|_| {});
    let base = &env.app.base;
    let posted = chrono::Utc::now();
    let hash = http::request_hash(&http::post_build(
        base,
        &body(json!({"packages": ["vim"], "defaults": "echo hello-from-asu\n"})),
    ));
    let done = http::wait_final(base, &hash, Duration::from_secs(120));
    assert_eq!(done.status, 200, "{}", done.text());
    let result = done.json();
    assert_eq!(result["detail"], "done");
    // The spec's fields after the reference's keys: seconds the build took
    // and when it finished, RFC 3339 in UTC.
    let duration = result["build_duration"]
        .as_f64()
        .expect("build_duration is a number");
    assert!(duration > 0.0, "{duration}");
    let finished = result["finished_at"].as_str().unwrap();
    assert!(finished.ends_with('Z'), "{finished}");
    let finished = chrono::DateTime::parse_from_rfc3339(finished).unwrap();
    assert!(
        finished.timestamp() >= posted.timestamp() && finished <= chrono::Utc::now(),
        "{finished}"
    );
    let keys: Vec<&str> = result
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys[keys.len() - 3..],
        ["request_hash", "build_duration", "finished_at"]
    );
    assert!(
        result["manifest"]["vim"].is_string(),
        "{}",
        result["manifest"]
    );
    let image = sysupgrade(&result);
    let url = format!(
        "{base}/store/{}/{}",
        result["bin_dir"].as_str().unwrap(),
        image["name"].as_str().unwrap()
    );
    let file = http::get(&url);
    assert_eq!(file.status, 200);
    assert_eq!(
        file.header("Content-Length").map(str::to_owned),
        Some(file.body.len().to_string())
    );
    let digest = asu_builder::hash::hex(&Sha256::digest(&file.body));
    assert_eq!(image["sha256"], digest.as_str());
    let text = file.text();
    assert!(
        text.contains("--- /etc/uci-defaults/99-asu-defaults ---"),
        "{text}"
    );
    assert!(text.contains("echo hello-from-asu"), "{text}");
    assert!(text.contains("vim"), "{text}");
    let cmd: Vec<String> = serde_json::from_value(result["build_cmd"].clone()).unwrap();
    assert!(
        cmd.iter().any(|a| a == "FILES=/builder/asu-files"),
        "{cmd:?}"
    );
    assert_eq!(
        containers_of(&env.podman, &hash),
        0,
        "container left behind"
    );
}

#[test]
fn user_errors_come_back_with_the_reference_details() {
    let env = start(|_| {});
    let base = &env.app.base;
    let cases = [
        (
            json!({"packages": ["missing-pkg"]}),
            "Error: Impossible package selection: missing (",
        ),
        (
            json!({"packages": ["conflict-pkg"]}),
            "Error: Impossible package selection:",
        ),
        (
            json!({"packages": ["too-big-pkg"]}),
            "Error: Selected packages exceed device storage",
        ),
        (
            json!({"version_code": "r1-0000000000"}),
            "Error: Received incorrect version r12345-abcdef (requested r1-0000000000)",
        ),
    ];
    for (extra, want) in cases {
        let hash = http::request_hash(&http::post_build(base, &body(extra.clone())));
        let r = http::wait_final(base, &hash, Duration::from_secs(120));
        assert_eq!(r.status, 500, "{extra}: {}", r.text());
        let detail = r.json()["detail"].as_str().unwrap().to_string();
        assert!(detail.starts_with(want), "{extra}: {detail}");
        assert!(r.json()["stderr"].is_string());
        assert_eq!(containers_of(&env.podman, &hash), 0);
    }
}

#[test]
fn diff_packages_removes_unrequested_defaults() {
    let env = start(|_| {});
    let base = &env.app.base;
    let hash = http::request_hash(&http::post_build(
        base,
        &body(json!({"packages": ["base-files", "busybox", "vim"], "diff_packages": true})),
    ));
    let r = http::wait_final(base, &hash, Duration::from_secs(120));
    assert_eq!(r.status, 200, "{}", r.text());
    let result = r.json();
    let manifest = result["manifest"].as_object().unwrap();
    assert!(manifest.contains_key("vim"));
    assert!(manifest.contains_key("busybox"));
    assert!(!manifest.contains_key("dnsmasq"), "{manifest:?}");
    let cmd: Vec<String> = serde_json::from_value(result["build_cmd"].clone()).unwrap();
    let packages = cmd.iter().find(|a| a.starts_with("PACKAGES=")).unwrap();
    assert!(packages.contains("-dnsmasq"), "{packages}");
}

#[test]
fn custom_repositories_and_keys_reach_the_imagebuilder() {
    let env = start(|c| c.repository_allow_list = vec!["https://feed.example.org/".into()]);
    let base = &env.app.base;
    let hash = http::request_hash(&http::post_build(
        base,
        &body(json!({
            "packages": ["vim"],
            "repositories": {"custom": "https://feed.example.org/packages/base"},
            "repository_keys": [USIGN_KEY],
        })),
    ));
    let r = http::wait_final(base, &hash, Duration::from_secs(120));
    assert_eq!(r.status, 200, "{}", r.text());
    let stdout = r.json()["stdout"].as_str().unwrap().to_string();
    assert!(
        stdout.contains("repository-file repositories.conf: src/gz custom https://feed.example.org/packages/base"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("key-file 0102030405060708: {USIGN_KEY}")),
        "{stdout}"
    );
    // Replace mode: the image's own feeds are gone.
    assert!(!stdout.contains("downloads.openwrt.org"), "{stdout}");
}

#[test]
fn job_timeout_kills_the_container_and_fails_the_job() {
    let env = start(|c| c.job_timeout_seconds = 4);
    let base = &env.app.base;
    let hash = http::request_hash(&http::post_build(
        base,
        &body(json!({"packages": ["slow-60-pkg"]})),
    ));
    let r = http::wait_final(base, &hash, Duration::from_secs(90));
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(
        r.json()["detail"],
        "Error: Build timed out after 4 seconds (job_timeout_seconds)"
    );
    assert_eq!(containers_of(&env.podman, &hash), 0);
}

#[test]
fn builds_wait_out_a_podman_outage_and_succeed_when_it_returns() {
    let service = podman_service::start_service().unwrap_or_else(|e| panic!("{e}"));
    service
        .image(&[podman_service::IMAGE_RELEASE])
        .unwrap_or_else(|e| panic!("{e}"));
    let env = start_on(&service, |_| {});
    let base = &env.app.base;
    service.stop().unwrap_or_else(|e| panic!("{e}"));
    let health = || http::get(&format!("{base}/health")).json();
    let deadline = Instant::now() + Duration::from_secs(30);
    while health()["container_runtime"] != "degraded" {
        assert!(Instant::now() < deadline, "never degraded: {}", health());
        std::thread::sleep(Duration::from_millis(50));
    }

    let hash = http::request_hash(&http::post_build(
        base,
        &body(json!({"packages": ["tmux"]})),
    ));
    let db = env.dir.path().join("data/builder.db");
    // The API keeps answering while Podman is away; the job waits.
    let r = http::poll(base, &hash);
    assert_eq!(r.status, 202, "{}", r.text());
    let stats = http::get(&format!("{base}/api/v1/stats"));
    assert_eq!(stats.status, 200);
    assert_eq!(stats.json()["container_runtime"], "degraded");

    service.start().unwrap_or_else(|e| panic!("{e}"));
    let done = http::wait_final(base, &hash, Duration::from_secs(120));
    assert_eq!(done.status, 200, "{}", done.text());
    // Workers claim only while Podman answers: no attempt was spent on it.
    assert_eq!(testapp::attempts(&db, &hash), 1);
}

// ---- the real binary: kill -9 mid-build, then restart ----------------------

fn write_daemon_config(
    dir: &Path,
    port: u16,
    upstream: &FakeUpstream,
    service: &Service,
    worker: &str,
) -> std::path::PathBuf {
    let path = dir.join("config.yaml");
    let text = format!(
        "server_host: 127.0.0.1\nserver_port: {port}\ndatabase_path: {d}/data/builder.db\n\
         public_path: {d}/public\ncontainer_socket_path: {sock}\nupstream_url: {up}\n\
         worker_id: {worker}\nworker_concurrent: 1\nworker_poll_seconds: 1\n\
         container_network: asu-e2e\nlog_level: debug\n\
         branches:\n  \"1.2\":\n    path: \"releases/{{version}}\"\n    enabled: true\n    snapshot: false\n",
        d = dir.display(),
        sock = service.socket.display(),
        up = upstream.url(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The daemon's log goes to `daemon.log` next to its config: a pipe nobody
/// reads would fill up and block every thread that logs.
fn spawn_daemon(config: &Path) -> Child {
    let log = std::fs::File::create(daemon_log(config)).unwrap();
    Command::new(env!("CARGO_BIN_EXE_asu-builder"))
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn daemon_log(config: &Path) -> std::path::PathBuf {
    config.with_file_name("daemon.log")
}

fn wait_up(child: &mut Child, config: &Path, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let up = ureq::get(&format!("{base}/health")).call().is_ok();
        if up {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(daemon_log(config)).unwrap_or_default();
            panic!("daemon exited with {status}: {log}");
        }
        assert!(Instant::now() < deadline, "daemon did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn kill_9_mid_build_then_restart_completes_and_leaves_no_container() {
    let service = podman_service::shared();
    let dir = tempfile::tempdir().unwrap();
    let upstream = FakeUpstream::start_fixtures();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = write_daemon_config(dir.path(), port, &upstream, service, &unique_worker());
    let base = format!("http://127.0.0.1:{port}");
    let podman = Podman::new(&service.socket);

    let mut daemon = spawn_daemon(&config);
    wait_up(&mut daemon, &config, &base);
    let hash = http::request_hash(&http::post_build(
        &base,
        &body(json!({"packages": ["slow-5-pkg"]})),
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = http::poll(&base, &hash).json();
        if r["imagebuilder_status"] == "building_image" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never reached building_image: {r}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    daemon.kill().unwrap(); // SIGKILL
    daemon.wait().unwrap();
    assert_eq!(
        containers_of(&podman, &hash),
        1,
        "the build container outlives the daemon"
    );

    let mut daemon = spawn_daemon(&config);
    wait_up(&mut daemon, &config, &base);
    let done = http::wait_final(&base, &hash, Duration::from_secs(120));
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(containers_of(&podman, &hash), 0, "orphaned container left");
    Command::new("kill")
        .arg("-TERM")
        .arg(daemon.id().to_string())
        .status()
        .unwrap();
    let status = daemon.wait().unwrap();
    assert!(status.success(), "{status}");
}

/// Peak resident memory (VmHWM) of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

/// The daemon streams a 256 MiB image from the container into the store:
/// its own peak RSS (a process of its own, nothing else runs in it) must
/// stay far below the image size. Buffering the archive would need more
/// than 256 MiB.
#[test]
fn the_daemon_streams_a_big_image_without_holding_it_in_memory() {
    let service = podman_service::shared();
    let dir = tempfile::tempdir().unwrap();
    let upstream = FakeUpstream::start_fixtures();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = write_daemon_config(dir.path(), port, &upstream, service, &unique_worker());
    let base = format!("http://127.0.0.1:{port}");
    let mut daemon = spawn_daemon(&config);
    wait_up(&mut daemon, &config, &base);

    let before = peak_rss_kib(daemon.id());
    // A started daemon is a few MiB; a broken reading would make the
    // comparison below meaningless.
    assert!(
        (1024..64 * 1024).contains(&before),
        "peak RSS before: {before} KiB"
    );
    let hash = http::request_hash(&http::post_build(
        &base,
        &body(json!({"packages": ["big-image-pkg"]})),
    ));
    let done = http::wait_final(&base, &hash, Duration::from_secs(300));
    assert_eq!(done.status, 200, "{}", done.text());
    let after = peak_rss_kib(daemon.id());
    eprintln!("daemon peak RSS: {before} KiB before, {after} KiB after a 256 MiB image");

    let result = done.json();
    let image = sysupgrade(&result);
    let stored = dir
        .path()
        .join("public/store")
        .join(result["bin_dir"].as_str().unwrap())
        .join(image["name"].as_str().unwrap());
    let size = std::fs::metadata(&stored).unwrap().len();
    assert!(size >= 256 << 20, "the big image was built: {size} bytes");
    assert!(
        after - before < 64 * 1024,
        "peak RSS grew by {} KiB while streaming {size} bytes",
        after - before
    );

    Command::new("kill")
        .arg("-TERM")
        .arg(daemon.id().to_string())
        .status()
        .unwrap();
    assert!(daemon.wait().unwrap().success());
}

#[test]
fn a_snapshot_build_runs_setup_and_honours_rootfs_options() {
    let env = start(|_| {});
    let base = &env.app.base;
    // Snapshot testtarget has one profile, `generic`: a board name maps to it.
    let request = json!({
        "version": "SNAPSHOT",
        "target": "testtarget/testsubtarget",
        "profile": "vendor,board",
        "packages": ["tmux"],
        "rootfs_size_mb": 256,
        "filesystem": "ext4",
    });
    let hash = http::request_hash(&http::post_build(base, &request.to_string()));
    let r = http::wait_final(base, &hash, Duration::from_secs(120));
    assert_eq!(r.status, 200, "{}", r.text());
    let result = r.json();
    assert_eq!(result["id"], "generic");
    let bin_dir = result["bin_dir"].as_str().unwrap();
    assert_ne!(
        bin_dir, hash,
        "bin_dir is the hash after the profile was resolved"
    );
    let cmd: Vec<String> = serde_json::from_value(result["build_cmd"].clone()).unwrap();
    for arg in [
        "ROOTFS_PARTSIZE=256",
        "ROOTFS_FILESYSTEM=ext4",
        "PROFILE=generic",
    ] {
        assert!(cmd.iter().any(|a| a == arg), "{arg} missing from {cmd:?}");
    }
    let image = sysupgrade(&result);
    assert_eq!(image["filesystem"], "ext4");
    let text = http::get(&format!(
        "{base}/store/{bin_dir}/{}",
        image["name"].as_str().unwrap()
    ))
    .text();
    assert!(text.contains("rootfs_partsize=256"), "{text}");
    assert!(text.contains("filesystem=ext4"), "{text}");
    assert_eq!(containers_of(&env.podman, &hash), 0);
}
