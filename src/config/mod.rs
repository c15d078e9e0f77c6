//! Effective configuration: built-in defaults → YAML/JSON file → `ASU_*` env.
//!
//! The struct is plain data; threads read the one in force through
//! `LiveConfig` (`live.rs`), which SIGHUP replaces. Loading and validation
//! live in `load.rs`; the built-in branch table in `branches.rs`.

mod bounds;
mod branches;
mod error;
mod live;
mod load;
mod value;

pub use bounds::{BOUNDS, Bound, bound_of};
pub use branches::{Branch, PackageChange, branch_name, branch_of, default_branches, version_path};
pub use error::{ConfigError, Origin};
pub use live::{IntoLive, LIVE_KEYS, LiveConfig, Reload, merge};
pub use load::{ConfigSource, load, load_from, render_effective};

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub server_host: String,
    pub server_port: u16,
    pub database_path: PathBuf,
    pub public_path: PathBuf,
    pub store_path: PathBuf,
    pub upstream_url: String,
    pub container_runtime: String,
    pub container_socket_path: PathBuf,
    pub imagebuilder_registry: String,
    pub max_pending_jobs: u64,
    pub job_timeout_seconds: u64,
    pub build_ttl_seconds: u64,
    pub failure_ttl_seconds: u64,
    pub allow_defaults: bool,
    pub worker_id: String,
    pub worker_concurrent: usize,
    pub worker_poll_seconds: u64,
    /// Empty means: use the built-in package change rules.
    pub package_changes_url: String,
    pub log_level: String,
    pub versioned_build_ttl_seconds: u64,
    pub defaults_build_ttl_seconds: u64,
    pub max_custom_rootfs_size_mb: u64,
    pub max_defaults_length: usize,
    pub repository_allow_list: Vec<String>,
    pub cache_url: String,
    pub container_network: String,
    pub server_threads: usize,
    /// Connections served at once; more are answered 503 and closed. The
    /// effective value is also capped by the descriptor limit at start-up.
    pub server_max_connections: usize,
    /// An idle keep-alive connection is closed after this long.
    pub server_keepalive_timeout_seconds: u64,
    /// A request's head and body must arrive within this (else 408).
    pub server_request_timeout_seconds: u64,
    /// One write to a client that stopped reading may block this long.
    pub server_write_timeout_seconds: u64,
    /// Largest request body (413 beyond).
    pub server_max_body_bytes: usize,
    /// A request that waited this long for a handler is answered 503.
    pub server_queue_timeout_ms: u64,
    pub cors_allow_origin: String,
    /// usign secret key to sign images with (its certificate next to it as
    /// `<path>.ucert`); `None`: images stay unsigned.
    pub build_key_path: Option<PathBuf>,
    /// Raw statistics events older than this are deleted.
    pub stats_retention_days: u64,
    /// Daily statistics rollups older than this are deleted.
    pub stats_rollup_retention_days: u64,
    /// Bearer token of the build-control endpoints (DELETE
    /// /api/v1/build/{hash}, POST …/retry); `None`: they answer 404.
    pub admin_token: Option<String>,
    /// Long-polling clients (`?wait=N`) held at once; beyond it a poll is
    /// answered at once. 0 turns long-polling off.
    pub long_poll_max_waiters: usize,
    /// Delete the store directory of a build this service published when
    /// its last result expires. Off: store cleanup is the operator's (two
    /// servers sharing one store).
    pub store_gc: bool,
    /// A store directory changed more recently than this is not adopted
    /// (another server may still be writing or signing it); it is built.
    pub store_adopt_settle_seconds: u64,
    /// Branch name → branch settings. Ordered by name for stable output;
    /// version ordering is computed where it matters (overview `latest`).
    pub branches: BTreeMap<String, Branch>,
}

impl Default for Config {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Config {
            server_host: "0.0.0.0".into(),
            server_port: 8080,
            database_path: "./data/builder.db".into(),
            public_path: "./public".into(),
            store_path: "./public/store".into(),
            upstream_url: "https://downloads.openwrt.org".into(),
            container_runtime: "podman".into(),
            container_socket_path: "/run/podman/podman.sock".into(),
            imagebuilder_registry: "ghcr.io/openwrt/imagebuilder".into(),
            max_pending_jobs: 200,
            job_timeout_seconds: 600,
            build_ttl_seconds: 86400,
            failure_ttl_seconds: 3600,
            allow_defaults: true,
            worker_id: "worker-1".into(),
            worker_concurrent: 4,
            worker_poll_seconds: 5,
            package_changes_url: String::new(),
            log_level: "info".into(),
            versioned_build_ttl_seconds: 604_800,
            defaults_build_ttl_seconds: 1800,
            max_custom_rootfs_size_mb: 1024,
            max_defaults_length: 20480,
            repository_allow_list: Vec::new(),
            cache_url: String::new(),
            container_network: "asu-build".into(),
            server_threads: std::cmp::max(4, 2 * cores),
            server_max_connections: 1024,
            server_keepalive_timeout_seconds: 15,
            server_request_timeout_seconds: 10,
            server_write_timeout_seconds: 30,
            server_max_body_bytes: 256 * 1024,
            server_queue_timeout_ms: 2000,
            cors_allow_origin: "*".into(),
            build_key_path: None,
            stats_retention_days: 30,
            stats_rollup_retention_days: 730,
            admin_token: None,
            long_poll_max_waiters: 256,
            store_gc: true,
            store_adopt_settle_seconds: 60,
            branches: default_branches(),
        }
    }
}
