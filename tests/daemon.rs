//! The real binary: configuration errors stop it with one line naming the
//! key, the environment beats the file, SIGTERM exits 0.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_asu-builder");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("config.yaml");
    let text = format!(
        "server_host: 127.0.0.1\nserver_port: 1\ndatabase_path: {d}/data/builder.db\npublic_path: {d}/public\n\
         container_socket_path: {d}/absent.sock\nupstream_url: http://127.0.0.1:9\nworker_concurrent: 4\n{extra}",
        d = dir.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn command(config: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--config")
        .arg(config)
        .env_remove("ASU_SERVER_PORT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// GET `path` on the port; `None` until something answers.
fn try_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn wait_ready(child: &mut Child, port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(r) = try_get(port, "/api/v1/stats") {
            return r;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("daemon exited early with {status}: {err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("daemon did not answer on port {port}");
}

#[test]
fn env_port_beats_file_and_sigterm_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let port = free_port();
    let mut child = command(&config)
        .env("ASU_SERVER_PORT", port.to_string())
        .spawn()
        .unwrap();
    let reply = wait_ready(&mut child, port);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("\"queue_length\":0"), "{reply}");
    assert!(dir.path().join("data/builder.db").exists());

    let ok = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "daemon ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("listening on http://127.0.0.1:"), "{err}");
    assert!(err.contains("stopped"), "{err}");
}

fn run_to_end(mut cmd: Command) -> (i32, String) {
    let out = cmd.output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn bad_env_value_exits_nonzero_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let mut cmd = command(&config);
    cmd.env("ASU_SERVER_PORT", "abc");
    let (code, text) = run_to_end(cmd);
    assert_ne!(code, 0);
    assert!(text.contains("server_port"), "{text}");
    assert!(text.contains("ASU_SERVER_PORT"), "{text}");
    assert_eq!(text.trim().lines().count(), 1, "one line: {text}");
}

#[test]
fn unknown_key_in_file_exits_nonzero_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "worker_concurent: 3\n");
    let (code, text) = run_to_end(command(&config));
    assert_ne!(code, 0);
    assert!(text.contains("worker_concurent"), "{text}");
    assert!(text.contains("config.yaml"), "{text}");
}

#[test]
fn check_config_prints_the_effective_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "max_pending_jobs: 7\n");
    let mut cmd = command(&config);
    cmd.arg("--check-config").env("ASU_WORKER_CONCURRENT", "3");
    let (code, text) = run_to_end(cmd);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("max_pending_jobs: 7"), "{text}");
    assert!(text.contains("worker_concurrent: 3"), "{text}");
}

#[test]
fn version_and_help() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("asu-builder "));
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--config"));
    let out = Command::new(BIN).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
