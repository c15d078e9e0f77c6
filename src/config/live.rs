//! The running configuration, replaceable while the daemon runs (SIGHUP).
//!
//! Every reader takes a snapshot (`LiveConfig::get`, an `Arc<Config>`) for
//! the work at hand: one request, one build, one sweep. A reload swaps the
//! `Arc` under a write lock held for a pointer store, so readers never wait
//! on a reload and never see half of one.
//!
//! Only the keys in `LIVE_KEYS` change on a reload; every other key keeps
//! its start-up value in the new snapshot (the listener, the database, the
//! thread counts are built from them once), and a changed value of one of
//! them is reported as needing a restart. So a reader may read any key from
//! any snapshot and get what the process actually runs with.

use super::Config;
use serde_json::Value;
use std::sync::{Arc, RwLock};

/// Keys a reload applies at once. Everything else needs a restart.
pub const LIVE_KEYS: &[&str] = &[
    "log_level",
    "build_ttl_seconds",
    "versioned_build_ttl_seconds",
    "defaults_build_ttl_seconds",
    "failure_ttl_seconds",
    "repository_allow_list",
    "branches",
    "max_pending_jobs",
    "admin_token",
];

/// Keys whose values never go into a log line.
const SECRET_KEYS: &[&str] = &["admin_token"];

#[derive(Debug)]
pub struct LiveConfig {
    current: RwLock<Arc<Config>>,
}

/// What a reload did: one line per applied change, and the keys whose new
/// value waits for a restart.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reload {
    pub applied: Vec<String>,
    pub need_restart: Vec<String>,
}

impl LiveConfig {
    pub fn new(config: Config) -> Arc<LiveConfig> {
        Arc::new(LiveConfig {
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// The configuration in force now.
    pub fn get(&self) -> Arc<Config> {
        // A poisoned lock still holds a whole Arc: the swap cannot panic
        // half-way.
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Apply the live keys of `loaded` (a freshly loaded configuration).
    pub fn reload(&self, loaded: &Config) -> Reload {
        let mut slot = self.current.write().unwrap_or_else(|e| e.into_inner());
        let (merged, report) = merge(&slot, loaded);
        *slot = Arc::new(merged);
        report
    }
}

/// Anything that can become the shared live configuration; lets callers
/// that only ever had a fixed `Config` (tests, tools) keep passing one.
pub trait IntoLive {
    fn into_live(self) -> Arc<LiveConfig>;
}

impl IntoLive for Arc<LiveConfig> {
    fn into_live(self) -> Arc<LiveConfig> {
        self
    }
}

impl IntoLive for Arc<Config> {
    fn into_live(self) -> Arc<LiveConfig> {
        Arc::new(LiveConfig {
            current: RwLock::new(self),
        })
    }
}

impl IntoLive for Config {
    fn into_live(self) -> Arc<LiveConfig> {
        LiveConfig::new(self)
    }
}

/// `current` with the live keys taken from `loaded`, and what changed.
pub fn merge(current: &Config, loaded: &Config) -> (Config, Reload) {
    let mut merged = current.clone();
    merged.log_level = loaded.log_level.clone();
    merged.build_ttl_seconds = loaded.build_ttl_seconds;
    merged.versioned_build_ttl_seconds = loaded.versioned_build_ttl_seconds;
    merged.defaults_build_ttl_seconds = loaded.defaults_build_ttl_seconds;
    merged.failure_ttl_seconds = loaded.failure_ttl_seconds;
    merged.repository_allow_list = loaded.repository_allow_list.clone();
    merged.branches = loaded.branches.clone();
    merged.max_pending_jobs = loaded.max_pending_jobs;
    merged.admin_token = loaded.admin_token.clone();

    let mut report = Reload::default();
    let (old, new) = (as_map(current), as_map(loaded));
    for (key, before) in &old {
        let after = new.get(key).unwrap_or(&Value::Null);
        if before == after {
            continue;
        }
        if LIVE_KEYS.contains(&key.as_str()) {
            report.applied.push(describe(key, before, after));
        } else {
            report.need_restart.push(key.clone());
        }
    }
    (merged, report)
}

fn as_map(config: &Config) -> serde_json::Map<String, Value> {
    match serde_json::to_value(config) {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    }
}

/// `key: old → new`, short; secrets and the branch table by name only.
fn describe(key: &str, before: &Value, after: &Value) -> String {
    if SECRET_KEYS.contains(&key) {
        return format!("{key} changed");
    }
    if key == "branches" {
        return "branches changed".to_string();
    }
    format!("{key}: {before} → {after}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed_everywhere() -> Config {
        let mut c = Config {
            log_level: "debug".into(),
            build_ttl_seconds: 1,
            versioned_build_ttl_seconds: 2,
            defaults_build_ttl_seconds: 3,
            failure_ttl_seconds: 4,
            repository_allow_list: vec!["https://example.org/feed".into()],
            max_pending_jobs: 5,
            admin_token: Some("0123456789abcdef0123".into()),
            server_port: 9999,
            worker_concurrent: 77,
            database_path: "/elsewhere.db".into(),
            ..Config::default()
        };
        c.branches.remove("21.02");
        c
    }

    #[test]
    fn live_keys_are_applied_and_the_rest_kept() {
        let current = Config::default();
        let loaded = changed_everywhere();
        let (merged, report) = merge(&current, &loaded);
        let (m, l, c) = (as_map(&merged), as_map(&loaded), as_map(&current));
        for key in m.keys() {
            let expected = if LIVE_KEYS.contains(&key.as_str()) {
                &l
            } else {
                &c
            };
            assert_eq!(m[key], expected[key], "{key}");
        }
        // Every live key names a real key.
        for key in LIVE_KEYS {
            assert!(m.contains_key(*key), "{key}");
        }
        assert_eq!(report.applied.len(), LIVE_KEYS.len(), "{report:?}");
        assert!(
            report
                .applied
                .contains(&"max_pending_jobs: 200 → 5".to_string())
        );
        assert!(report.applied.contains(&"admin_token changed".to_string()));
        assert!(!report.applied.iter().any(|l| l.contains("0123456789")));
        assert_eq!(
            report.need_restart,
            ["server_port", "database_path", "worker_concurrent"]
        );
    }

    #[test]
    fn reload_swaps_what_readers_get() {
        let live = LiveConfig::new(Config::default());
        let before = live.get();
        let report = live.reload(&changed_everywhere());
        assert!(!report.applied.is_empty());
        assert_eq!(before.max_pending_jobs, 200, "old snapshots stay whole");
        assert_eq!(live.get().max_pending_jobs, 5);
        assert_eq!(live.get().server_port, 8080);
        let again = live.reload(&changed_everywhere());
        assert!(again.applied.is_empty(), "{again:?}");
        assert_eq!(again.need_restart.len(), 3);
    }
}
