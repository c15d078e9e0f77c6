//! Disk full: the database and the store live on a small tmpfs mounted by
//! the test (it runs as root, like the rest of the Podman tier), and a
//! build streams a 256 MiB image into it. The build fails with a clear
//! detail after its retries, nothing half-written is published or served,
//! the space is given back, SQLite's integrity check passes, and the next
//! build on the same disk succeeds.

mod common;

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

/// A tmpfs of `mib` MiB at `dir`, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, mib: u64) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root (the Podman tier runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }

    fn free_bytes(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.0)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df output")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
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

#[test]
fn a_full_store_fails_the_build_cleanly_and_the_next_one_works() {
    let service = podman_service::shared();
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("disk"), 48);
    let empty = disk.free_bytes();
    let upstream = FakeUpstream::start_fixtures();
    let mut c = testapp::config(&disk.0, upstream.url());
    c.container_socket_path = service.socket.clone();
    c.container_network = "asu-disk".into();
    c.worker_id = format!("disk{}", std::process::id());
    let db = c.database_path.clone();
    let store = c.store_path.clone();
    let app = TestApp::start(c, Arc::new(Podman::new(&service.socket)));
    let base = &app.base;

    let hash = http::request_hash(&http::post_build(base, &body(&["big-image-pkg"])));
    // Retries back off 5, 20 and 80 s: make each claimable at once.
    let deadline = Instant::now() + Duration::from_secs(300);
    let r = loop {
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute("UPDATE build_jobs SET not_before = 0", [])
            .unwrap();
        let r = http::poll(base, &hash);
        if r.status != 202 {
            break r;
        }
        assert!(Instant::now() < deadline, "never finished: {}", r.text());
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(r.status, 500, "{}", r.text());
    let detail = r.json()["detail"].as_str().unwrap().to_string();
    assert_eq!(
        detail,
        "Error: No space left in the store for the images of this build (gave up after 4 attempts)"
    );
    eprintln!("disk full: the build failed with {detail:?}");

    // Nothing half-written is left, published or served.
    let left = files_under(&store);
    assert!(left.is_empty(), "files left in the store: {left:?}");
    let bin_dir = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT bin_dir FROM build_requests WHERE request_hash = ?1",
            [&hash],
            |r| r.get::<_, String>(0),
        )
        .unwrap();
    let image = "openwrt-1.2.3-testtarget-testsubtarget-testprofile-squashfs-sysupgrade.bin";
    assert_eq!(
        http::get(&format!("{base}/store/{bin_dir}/{image}")).status,
        404
    );
    // The space came back (the database and its WAL may have grown a bit).
    assert!(
        disk.free_bytes() + 4 * 1024 * 1024 >= empty,
        "{} of {empty} bytes free",
        disk.free_bytes()
    );
    let integrity: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");

    // The next build fits and is served whole.
    let next = http::request_hash(&http::post_build(base, &body(&["vim"])));
    let done = http::wait_final(base, &next, Duration::from_secs(120));
    assert_eq!(done.status, 200, "{}", done.text());
    let result = done.json();
    let name = result["images"][0]["name"].as_str().unwrap();
    let file = http::get(&format!(
        "{base}/store/{}/{name}",
        result["bin_dir"].as_str().unwrap()
    ));
    assert_eq!(file.status, 200);
    drop(app);
}
