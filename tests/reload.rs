//! SIGHUP on the real binary: the configuration is read again; live keys
//! apply at once (an admin token turns the build-control endpoints on),
//! each change is logged, keys that need a restart are named, and a broken
//! file leaves the running configuration in place. Also: log lines carry
//! no timestamp of their own under systemd (`JOURNAL_STREAM`).

mod common;

use common::daemon::{Daemon, status_of};
use std::process::Command;
use std::time::{Duration, Instant};

const TOKEN: &str = "reload-admin-token-0123456789";

fn hup(d: &Daemon) {
    let ok = Command::new("kill")
        .arg("-HUP")
        .arg(d.pid().to_string())
        .status()
        .unwrap();
    assert!(ok.success());
}

fn wait_log(d: &Daemon, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !d.log().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// DELETE without credentials: its status says whether the endpoint is on.
fn delete_status(d: &Daemon) -> u16 {
    let hash = "a".repeat(64);
    let req =
        format!("DELETE /api/v1/build/{hash} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let (text, _) = d.exchange(req.as_bytes(), Duration::from_secs(10));
    status_of(&text).unwrap_or(0)
}

#[test]
fn sighup_applies_live_keys_and_names_the_rest() {
    let mut d = Daemon::start("");
    assert_eq!(
        delete_status(&d),
        404,
        "no admin_token: the endpoint does not exist"
    );
    let config = d.dir.path().join("config.yaml");
    let original = std::fs::read_to_string(&config).unwrap();
    let changed = original
        .lines()
        .filter(|l| !l.starts_with("log_level:") && !l.starts_with("server_port:"))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + &format!(
            "log_level: info\nadmin_token: {TOKEN}\nmax_pending_jobs: 7\nserver_port: {}\n",
            d.port + 1
        );
    std::fs::write(&config, changed).unwrap();
    hup(&d);
    wait_log(&d, "changed but only applied at a restart: server_port");
    let log = d.log();
    assert!(
        log.contains("reload (SIGHUP): admin_token changed"),
        "{log}"
    );
    assert!(
        log.contains("reload (SIGHUP): max_pending_jobs: 200 → 7"),
        "{log}"
    );
    assert!(
        log.contains("reload (SIGHUP): log_level: \"warn\" → \"info\""),
        "{log}"
    );
    assert!(!log.contains(TOKEN), "the token is never logged");
    // Live: the control endpoints now want the token; same port still.
    assert_eq!(delete_status(&d), 401);

    // A broken file: logged, and the running configuration stays.
    std::fs::write(&config, "max_pending_jobs: many\n").unwrap();
    hup(&d);
    wait_log(&d, "the running configuration stays");
    assert_eq!(delete_status(&d), 401);
    assert!(d.alive());
}

/// Under systemd (`JOURNAL_STREAM` set) the journal stamps each line, so
/// ours carry no timestamp; elsewhere they start with one.
#[test]
fn no_timestamps_when_logging_to_the_journal() {
    for journal in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let port = common::daemon::free_port();
        let d = dir.path().display();
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "server_host: 127.0.0.1\nserver_port: {port}\ndatabase_path: {d}/db/builder.db\n\
                 public_path: {d}/public\ncontainer_socket_path: {d}/absent.sock\n\
                 upstream_url: http://127.0.0.1:9\nlog_level: info\n"
            ),
        )
        .unwrap();
        let log = dir.path().join("stderr.log");
        let mut cmd = Command::new(common::daemon::BIN);
        cmd.arg("--config")
            .arg(&config)
            .env_remove("ASU_SERVER_PORT")
            .env_remove("JOURNAL_STREAM")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if journal {
            cmd.env("JOURNAL_STREAM", "8:123456");
        }
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let line = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(l) = text.lines().find(|l| l.contains("listening on http://")) {
                break l.to_string();
            }
            assert!(Instant::now() < deadline, "never listening: {text}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let _ = child.kill();
        let _ = child.wait();
        if journal {
            assert!(line.starts_with("[INFO]"), "{line}");
        } else {
            assert!(line.starts_with("20"), "a timestamp first: {line}");
        }
    }
}
