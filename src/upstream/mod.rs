//! OpenWrt upstream metadata (`.versions.json`, `.targets.json`,
//! `profiles.json`, package indexes) fetched from `config.upstream_url`,
//! cached in memory and in the `metadata_cache` table.
//!
//! Freshness: `.versions.json` and snapshot files for minutes, release files
//! for an hour. A lookup that misses (unknown version, target or profile)
//! may ask for `Freshness::Recheck`, which refetches a copy older than
//! `recheck_after` — the points where the reference reloads its tables.
//! Concurrent requests for one URL share one fetch; a failing upstream keeps
//! serving the last good copy.

mod cache;
mod error;
mod http;
pub mod packages;
pub mod profiles;
pub mod versions;

pub use cache::Doc;
pub use error::UpstreamError;
pub use profiles::ProfilesIndex;
pub use versions::{Versions, VersionsFile};

use crate::config::{Config, IntoLive, LiveConfig};
use cache::{Cache, Lifetimes, Policy};
use http::HttpFetcher;
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Cache and network tuning. The defaults suit production; tests shorten
/// them.
#[derive(Debug, Clone)]
pub struct UpstreamOptions {
    pub versions_ttl: Duration,
    pub snapshot_ttl: Duration,
    pub release_ttl: Duration,
    /// How long a 404 is believed (files appear while targets are built).
    pub not_found_ttl: Duration,
    /// A miss refetches the file when the cached copy is older than this.
    pub recheck_after: Duration,
    /// After a failed fetch, upstream is left alone this long (the stale
    /// copy or the error is served meanwhile).
    pub error_backoff: Duration,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub max_body_bytes: u64,
    pub memory_budget_bytes: usize,
    pub max_entries: usize,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        UpstreamOptions {
            versions_ttl: Duration::from_secs(300),
            snapshot_ttl: Duration::from_secs(300),
            release_ttl: Duration::from_secs(3600),
            not_found_ttl: Duration::from_secs(60),
            recheck_after: Duration::from_secs(30),
            error_backoff: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            max_body_bytes: 64 << 20,
            memory_budget_bytes: 256 << 20,
            max_entries: 20_000,
        }
    }
}

/// Whether a cached copy is good enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Within its normal lifetime.
    Cached,
    /// The caller missed something in the cached copy: refetch unless the
    /// copy is younger than `recheck_after`.
    Recheck,
}

/// Shared by every handler thread (`Send + Sync`).
pub struct Upstream {
    config: Arc<LiveConfig>,
    base: String,
    cache: Cache,
    options: UpstreamOptions,
}

/// Rows unused this long after expiry are deleted at start-up.
const PRUNE_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

fn is_snapshot_path(path: &str) -> bool {
    path.starts_with("snapshots/") || path.split('/').any(|seg| seg.ends_with("-SNAPSHOT"))
}

impl Upstream {
    /// Opens its own connection to `db_path` (already migrated by the
    /// caller) for the persisted cache.
    pub fn new(config: impl IntoLive, db_path: &Path) -> Result<Upstream, UpstreamError> {
        Upstream::with_options(config, Some(db_path), UpstreamOptions::default())
    }

    /// `db_path: None` keeps the cache in memory only.
    pub fn with_options(
        config: impl IntoLive,
        db_path: Option<&Path>,
        options: UpstreamOptions,
    ) -> Result<Upstream, UpstreamError> {
        let db = match db_path {
            Some(p) => Some(crate::db::open(p).map_err(|e| UpstreamError::Database {
                message: e.to_string(),
            })?),
            None => None,
        };
        let fetcher = HttpFetcher::new(
            options.connect_timeout,
            options.request_timeout,
            options.max_body_bytes,
        );
        let cache = Cache::new(
            Box::new(fetcher),
            db,
            Policy {
                error_backoff: options.error_backoff,
                memory_budget: options.memory_budget_bytes,
                max_entries: options.max_entries,
            },
        );
        cache.prune(PRUNE_AFTER);
        let config = config.into_live();
        let base = config.get().upstream_url.trim_end_matches('/').to_owned();
        Ok(Upstream {
            config,
            base,
            cache,
            options,
        })
    }

    /// The configuration in force now (SIGHUP may replace the branches).
    pub fn config(&self) -> Arc<Config> {
        self.config.get()
    }

    pub fn options(&self) -> &UpstreamOptions {
        &self.options
    }

    /// `upstream_url` without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Absolute URL of a path below `upstream_url`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// HTTP requests sent to upstream so far.
    pub fn fetch_count(&self) -> u64 {
        self.cache.fetch_count()
    }

    /// Upstream fetches that failed so far (network, timeout, HTTP error).
    pub fn fetch_error_count(&self) -> u64 {
        self.cache.failed_fetch_count()
    }

    /// HTTP requests sent so far for one path below `upstream_url`.
    pub fn fetch_count_for(&self, path: &str) -> u64 {
        self.cache.fetch_count_for(&self.url(path))
    }

    fn lifetimes(&self, path: &str) -> Lifetimes {
        let o = &self.options;
        let found = if path == ".versions.json" {
            o.versions_ttl
        } else if is_snapshot_path(path) {
            o.snapshot_ttl
        } else {
            o.release_ttl
        };
        Lifetimes {
            found,
            not_found: o.not_found_ttl.min(found),
        }
    }

    /// Raw document for a path below `upstream_url`; `found == false` means
    /// upstream answered 404/410.
    pub fn get(&self, path: &str, freshness: Freshness) -> Result<Arc<Doc>, UpstreamError> {
        let max_age = match freshness {
            Freshness::Cached => None,
            Freshness::Recheck => Some(self.options.recheck_after),
        };
        self.cache
            .get(&self.url(path), self.lifetimes(path), max_age)
    }

    fn parse_error(&self, path: &str, message: String) -> UpstreamError {
        UpstreamError::Parse {
            url: self.url(path),
            message,
        }
    }

    /// Supported versions and `latest`, newest first.
    pub fn versions(&self) -> Result<Arc<Versions>, UpstreamError> {
        self.versions_with(Freshness::Cached)
    }

    pub fn versions_with(&self, freshness: Freshness) -> Result<Arc<Versions>, UpstreamError> {
        const PATH: &str = ".versions.json";
        let doc = self.get(PATH, freshness)?;
        if !doc.found {
            return Err(UpstreamError::Http {
                url: self.url(PATH),
                status: 404,
            });
        }
        let config = self.config.get();
        let branches = &config.branches;
        doc.parsed(|body| {
            versions::parse_versions_file(body).map(|file| versions::compute(branches, &file))
        })
        .map_err(|m| self.parse_error(PATH, m))
    }

    /// `{target: arch}` from `{version_path}/.targets.json`, upstream order;
    /// empty when upstream has no such file.
    pub fn targets(&self, version_path: &str) -> Result<Arc<Map<String, Value>>, UpstreamError> {
        self.targets_with(version_path, Freshness::Cached)
    }

    pub fn targets_with(
        &self,
        version_path: &str,
        freshness: Freshness,
    ) -> Result<Arc<Map<String, Value>>, UpstreamError> {
        let path = format!("{version_path}/.targets.json");
        let doc = self.get(&path, freshness)?;
        if !doc.found {
            return Ok(Arc::new(Map::new()));
        }
        doc.parsed(|body| match serde_json::from_slice(body) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err("not a JSON object".to_owned()),
            Err(e) => Err(e.to_string()),
        })
        .map_err(|m| self.parse_error(&path, m))
    }

    /// `{version_path}/targets/{target}/profiles.json`; None when upstream
    /// has no such file.
    pub fn profiles(
        &self,
        version_path: &str,
        target: &str,
    ) -> Result<Option<Arc<ProfilesIndex>>, UpstreamError> {
        self.profiles_with(version_path, target, Freshness::Cached)
    }

    pub fn profiles_with(
        &self,
        version_path: &str,
        target: &str,
        freshness: Freshness,
    ) -> Result<Option<Arc<ProfilesIndex>>, UpstreamError> {
        let path = format!("{version_path}/targets/{target}/profiles.json");
        let doc = self.get(&path, freshness)?;
        if !doc.found {
            return Ok(None);
        }
        doc.parsed(ProfilesIndex::parse)
            .map(Some)
            .map_err(|m| self.parse_error(&path, m))
    }

    /// `version_code` (e.g. `r24106-10cc5fcd00`) of the current upstream
    /// build of a target; None when upstream has no profiles.json for it or
    /// the file lacks the field.
    pub fn revision(
        &self,
        version_path: &str,
        target: &str,
    ) -> Result<Option<String>, UpstreamError> {
        Ok(self
            .profiles(version_path, target)?
            .and_then(|idx| idx.version_code().map(str::to_owned)))
    }

    /// `{architecture, packages}` of the package directory at `dir` (below
    /// `upstream_url`): a v2 `index.json` as is (minus `version`), else the
    /// opkg `Packages` file with ABI suffixes stripped, else a v1
    /// `index.json`, else `{}`.
    pub fn package_index(&self, dir: &str) -> Result<Map<String, Value>, UpstreamError> {
        let json_path = format!("{dir}/index.json");
        let json_doc = self.get(&json_path, Freshness::Cached)?;
        let json = if json_doc.found {
            // Unreadable JSON counts as "no index.json" and falls through.
            json_doc
                .parsed(|b| Ok(serde_json::from_slice::<Value>(b).unwrap_or(Value::Null)))
                .unwrap_or_else(|_| Arc::new(Value::Null))
        } else {
            Arc::new(Value::Null)
        };
        if let Some(v2) = packages::v2_index(&json) {
            return Ok(v2);
        }
        let packages_doc = self.get(&format!("{dir}/Packages"), Freshness::Cached)?;
        if !packages_doc.found {
            return Ok(json.as_object().cloned().unwrap_or_default());
        }
        let parsed = packages_doc
            .parsed(|b| Ok(packages::parse_packages(&String::from_utf8_lossy(b))))
            .unwrap_or_default();
        Ok((*parsed).clone())
    }

    /// Feed names from `{dir}/feeds.conf`; empty when there is none.
    pub fn feeds(&self, dir: &str) -> Result<Vec<String>, UpstreamError> {
        let doc = self.get(&format!("{dir}/feeds.conf"), Freshness::Cached)?;
        if !doc.found {
            return Ok(Vec::new());
        }
        Ok(doc
            .parsed(|b| Ok(packages::parse_feeds_conf(&String::from_utf8_lossy(b))))
            .map(|v| (*v).clone())
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_paths_get_short_lifetimes() {
        assert!(is_snapshot_path("snapshots/.targets.json"));
        assert!(is_snapshot_path("releases/24.10-SNAPSHOT/.targets.json"));
        assert!(!is_snapshot_path("releases/24.10.0/.targets.json"));
        let u = Upstream::with_options(
            Arc::new(Config::default()),
            None,
            UpstreamOptions::default(),
        )
        .unwrap();
        let o = UpstreamOptions::default();
        assert_eq!(u.lifetimes(".versions.json").found, o.versions_ttl);
        assert_eq!(u.lifetimes("snapshots/x").found, o.snapshot_ttl);
        assert_eq!(u.lifetimes("releases/23.05.5/x").found, o.release_ttl);
        assert_eq!(
            u.url("/snapshots/.targets.json"),
            "https://downloads.openwrt.org/snapshots/.targets.json"
        );
    }

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn upstream_is_shareable() {
        assert_send_sync::<Upstream>();
    }
}
