//! Podman tier, operator control against a real Podman service and the
//! fake ImageBuilder: `asu-builder cancel` (the real binary, another
//! process) kills a running build's container through Podman while the
//! service runs; the service's worker lets go, the container is removed,
//! the job stays cancelled and the next POST builds afresh. `doctor` sees
//! Podman and the build network. Never skipped.

mod common;

use asu_builder::container::ContainerRuntime;
use asu_builder::container::podman::Podman;
use common::fake_upstream::FakeUpstream;
use common::http;
use common::podman_service;
use common::testapp::{self, TestApp};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_asu-builder");

fn containers_of(podman: &Podman, hash: &str) -> usize {
    podman
        .list_by_label(&format!("asu.job={hash}"))
        .expect("podman lists containers")
        .len()
}

fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn operator_config(dir: &Path, socket: &Path, upstream: &str) -> PathBuf {
    let d = dir.display();
    let path = dir.join("operator.yaml");
    std::fs::write(
        &path,
        format!(
            "database_path: {d}/data/builder.db\npublic_path: {d}/public\nstore_path: {d}/public/store\n\
             container_socket_path: {}\ncontainer_network: asu-e2e\nupstream_url: {upstream}\n",
            socket.display()
        ),
    )
    .unwrap();
    path
}

fn run(config: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn cancel_from_the_command_line_kills_the_running_container() {
    let service = podman_service::shared();
    let dir = tempfile::tempdir().unwrap();
    let upstream = FakeUpstream::start_fixtures();
    let mut c = testapp::config(dir.path(), upstream.url());
    c.container_socket_path = service.socket.clone();
    c.worker_id = format!("ctl{}", std::process::id());
    c.container_network = "asu-e2e".into();
    c.worker_concurrent = 1;
    let app = TestApp::start(c, Arc::new(Podman::new(&service.socket)));
    let podman = Podman::new(&service.socket);
    let body = json!({"version": "1.2.3", "target": "testtarget/testsubtarget",
                      "profile": "testprofile", "packages": ["slow-120-pkg"]})
    .to_string();
    let hash = http::request_hash(&http::post_build(&app.base, &body));
    wait_for("make image to run", Duration::from_secs(120), || {
        http::poll(&app.base, &hash).header("X-Imagebuilder-Status") == Some("building_image")
    });
    assert_eq!(containers_of(&podman, &hash), 1);

    let config = operator_config(dir.path(), &service.socket, upstream.url());
    let (code, out) = run(&config, &["cancel", &hash]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("SIGKILL sent to 1 container(s)"), "{out}");
    assert_eq!(http::poll(&app.base, &hash).status, 404);
    // The worker's exec ends with the kill; its guard removes the container.
    wait_for("the container to go", Duration::from_secs(60), || {
        containers_of(&podman, &hash) == 0
    });
    wait_for("the worker to let go", Duration::from_secs(60), || {
        http::get(&app.url("/api/v1/stats")).json()["workers_busy"] == 0
    });
    let (_, out) = run(&config, &["job", &hash]);
    assert!(out.contains("cancelled"), "{out}");
    assert!(
        !out.contains("completed") && !out.contains("failed ("),
        "{out}"
    );

    // Doctor: Podman answers and the network the build used exists.
    let (_, out) = run(&config, &["doctor"]);
    for check in ["config", "database", "podman", "network", "upstream"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("OK") && l.split_whitespace().nth(1) == Some(check)),
            "{check}: {out}"
        );
    }
}
