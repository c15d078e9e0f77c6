//! Start the whole service in-process on an ephemeral loopback port.

use asu_builder::app::{self, App};
use asu_builder::config::{Branch, Config};
use asu_builder::container::ContainerRuntime;
use asu_builder::faults::Faults;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The fixtures' release `1.2.3` belongs to a branch the built-in table
/// does not have (the reference tests add it the same way).
pub fn test_branch() -> Branch {
    Branch {
        path: "releases/{version}".into(),
        enabled: true,
        snapshot: false,
        branch_off_rev: None,
        package_changes: vec![],
    }
}

/// How many times the job for `hash` was attempted, read from the database.
pub fn attempts(db: &Path, hash: &str) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT attempts FROM build_jobs WHERE request_hash = ?1",
            [hash],
            |r| r.get(0),
        )
        .unwrap()
}

/// Wait until the job for `hash` was attempted at least once.
pub fn wait_attempted(db: &Path, hash: &str, limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    while attempts(db, hash) < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "job {hash} never attempted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A config for tests: loopback, ephemeral port, everything under `dir`,
/// with the fixtures' `1.2` branch.
pub fn config(dir: &Path, upstream_url: &str) -> Config {
    let mut c = Config {
        server_host: "127.0.0.1".into(),
        server_port: 0,
        database_path: dir.join("data/builder.db"),
        public_path: dir.join("public"),
        store_path: dir.join("public/store"),
        upstream_url: upstream_url.to_string(),
        container_socket_path: dir.join("no-podman.sock"),
        worker_concurrent: 2,
        worker_poll_seconds: 1,
        server_threads: 4,
        ..Config::default()
    };
    c.branches.insert("1.2".into(), test_branch());
    c
}

pub struct TestApp {
    pub app: Option<App>,
    pub base: String,
    pub config: Config,
}

impl TestApp {
    pub fn start(config: Config, runtime: Arc<dyn ContainerRuntime>) -> TestApp {
        Self::start_with_faults(config, runtime, Faults::none())
    }

    pub fn start_with_faults(
        config: Config,
        runtime: Arc<dyn ContainerRuntime>,
        faults: Faults,
    ) -> TestApp {
        let app = app::start_with_faults(config.clone(), runtime, faults).expect("service starts");
        let base = format!("http://{}", app.addr());
        TestApp {
            app: Some(app),
            base,
            config,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Wait until the statistics writer committed every event so far.
    pub fn flush_stats(&self) {
        let app = self.app.as_ref().expect("service running");
        assert!(app.flush_stats(), "statistics writer did not flush");
    }

    pub fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            app.shutdown(Duration::from_secs(5));
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop();
    }
}
