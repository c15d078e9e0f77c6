//! Start the whole service in-process on an ephemeral loopback port.

use asu_builder::app::{self, App};
use asu_builder::config::Config;
use asu_builder::container::ContainerRuntime;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A config for tests: loopback, ephemeral port, everything under `dir`.
pub fn config(dir: &Path, upstream_url: &str) -> Config {
    Config {
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
    }
}

pub struct TestApp {
    pub app: Option<App>,
    pub base: String,
    pub config: Config,
}

impl TestApp {
    pub fn start(config: Config, runtime: Arc<dyn ContainerRuntime>) -> TestApp {
        let app = app::start(config.clone(), runtime).expect("service starts");
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
