//! The operator commands of the real binary, on the database of a server
//! that is running meanwhile: jobs, job (by a hash prefix), cancel, retry,
//! purge, with what the server then answers and what the statistics
//! record; and doctor's OK/FAIL lines.

mod common;

use common::fake_upstream::FakeUpstream;
use common::http;
use common::testapp::{self, TestApp};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const BIN: &str = env!("CARGO_BIN_EXE_asu-builder");

struct Env {
    dir: tempfile::TempDir,
    upstream: FakeUpstream,
    app: TestApp,
    config: PathBuf,
}

fn start() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let upstream = FakeUpstream::start_fixtures();
    let mut c = testapp::config(dir.path(), upstream.url());
    c.worker_concurrent = 0;
    let runtime = Arc::new(asu_builder::container::podman::Podman::new(
        &dir.path().join("absent.sock"),
    ));
    let app = TestApp::start(c, runtime);
    let config = write_config(dir.path(), upstream.url());
    Env {
        dir,
        upstream,
        app,
        config,
    }
}

/// The same paths as the running server's, as a config file.
fn write_config(dir: &Path, upstream: &str) -> PathBuf {
    let d = dir.display();
    let path = dir.join("operator.yaml");
    std::fs::write(
        &path,
        format!(
            "database_path: {d}/data/builder.db\npublic_path: {d}/public\nstore_path: {d}/public/store\n\
             container_socket_path: {d}/absent.sock\nupstream_url: {upstream}\n"
        ),
    )
    .unwrap();
    path
}

/// Runs `asu-builder --config … args`: (exit code, stdout, stderr).
fn run(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("ASU_SERVER_PORT")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn request(packages: &[&str]) -> String {
    json!({"version": "1.2.3", "target": "testtarget/testsubtarget", "profile": "testprofile",
           "packages": packages})
    .to_string()
}

fn events(env: &Env, event: &str) -> i64 {
    env.app.flush_stats();
    let conn = rusqlite::Connection::open(env.dir.path().join("data/builder.db")).unwrap();
    conn.query_row(
        "SELECT count(*) FROM build_stats WHERE event = ?1",
        [event],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn operator_commands_beside_a_running_server() {
    let env = start();
    let a = http::request_hash(&http::post_build(&env.app.base, &request(&["vim"])));
    let b = http::request_hash(&http::post_build(&env.app.base, &request(&["tmux"])));
    let cfg = &env.config;

    let (code, out, err) = run(cfg, &["jobs"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("    ID  STATUS"), "{out}");
    assert!(out.contains(&a[..16]) && out.contains(&b[..16]), "{out}");
    assert_eq!(out.matches(" pending ").count(), 2, "{out}");
    assert!(out.trim_end().ends_with("2 jobs"), "{out}");
    let (_, out, _) = run(
        cfg,
        &["jobs", "--status", "failed", "--status", "cancelled"],
    );
    assert!(out.trim_end().ends_with("0 jobs"), "{out}");

    let (code, out, err) = run(cfg, &["job", &a[..8]]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("request_hash  {a}")), "{out}");
    assert!(out.contains("pending (queued)"), "{out}");
    assert!(out.contains("\"packages\": [\n"), "{out}");
    let (code, _, err) = run(cfg, &["job", "abc"]);
    assert_eq!(code, 1);
    assert!(err.contains("at least 6"), "{err}");

    // cancel: the server then answers 404, and the build ended once.
    let (code, out, err) = run(cfg, &["cancel", &a]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("cancelled") && out.contains("was queued"),
        "{out}"
    );
    assert_eq!(http::poll(&env.app.base, &a).status, 404);
    assert_eq!(events(&env, "failure"), 1);
    let (code, _, err) = run(cfg, &["cancel", &a]);
    assert_eq!(code, 1);
    assert!(err.contains("no queued or running build"), "{err}");

    // retry: queued again, the server sees it, a second retry is refused.
    let (code, out, err) = run(cfg, &["retry", &a[..10]]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("queued"), "{out}");
    assert_eq!(http::poll(&env.app.base, &a).status, 202);
    assert_eq!(events(&env, "cache-miss"), 3, "two POSTs and the retry");
    let (code, _, err) = run(cfg, &["retry", &a]);
    assert_eq!(code, 1);
    assert!(err.contains("pending already"), "{err}");

    // purge --failed removes cancelled jobs; a request with none left is gone.
    run(cfg, &["cancel", &b]);
    let (code, out, err) = run(cfg, &["purge", "--failed"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("deleted 2 failed or cancelled jobs"), "{out}");
    let (code, _, err) = run(cfg, &["job", &b]);
    assert_eq!(code, 1);
    assert!(err.contains("nothing is known"), "{err}");
    let (code, out, _) = run(cfg, &["purge", "--expired"]);
    assert_eq!(code, 0);
    assert!(out.contains("removed 0 store directories"), "{out}");
    let (code, _, _) = run(cfg, &["purge"]);
    assert_eq!(code, 2, "purge needs --failed or --expired");
    // Still one queued build: a's retry.
    let (_, out, _) = run(cfg, &["jobs", "--status", "pending"]);
    assert!(out.trim_end().ends_with("1 jobs"), "{out}");
    assert_eq!(
        http::get(&env.app.url("/api/v1/stats")).json()["pending"],
        1
    );
}

#[test]
fn commands_refuse_a_missing_database() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "http://127.0.0.1:9");
    let (code, _, err) = run(&cfg, &["jobs"]);
    assert_eq!(code, 1);
    assert!(err.contains("no database at"), "{err}");
    assert!(
        !dir.path().join("data/builder.db").exists(),
        "nothing created"
    );
}

#[test]
fn doctor_prints_a_line_per_check_with_fixes() {
    let env = start();
    let (code, out, _) = run(&env.config, &["doctor"]);
    assert_eq!(code, 1, "Podman is absent: {out}");
    let lines: Vec<&str> = out.lines().collect();
    let names = [
        "config", "database", "podman", "network", "store", "upstream",
    ];
    assert_eq!(lines.len(), names.len(), "{out}");
    for (line, name) in lines.iter().zip(names) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[1], name, "{line}");
        match fields[0] {
            "OK" => assert!(!line.contains("fix:"), "{line}"),
            "FAIL" => assert!(line.contains(" — fix: "), "{line}"),
            other => panic!("{other}: {line}"),
        }
    }
    let status = |name: &str| {
        lines
            .iter()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(status("config"), "OK");
    assert_eq!(status("database"), "OK", "{out}");
    assert_eq!(status("podman"), "FAIL");
    assert_eq!(status("network"), "FAIL");
    assert_eq!(status("upstream"), "OK", "{out}");
    assert!(out.contains("schema"), "{out}");
    assert!(env.upstream.hits(".versions.json") > 0);

    // A configuration that does not load: one FAIL line naming the key.
    let bad = env.dir.path().join("bad.yaml");
    std::fs::write(&bad, "worker_concurent: 3\n").unwrap();
    let (code, out, _) = run(&bad, &["doctor"]);
    assert_eq!(code, 1);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with("FAIL  config") && out.contains("worker_concurent"),
        "{out}"
    );
}
