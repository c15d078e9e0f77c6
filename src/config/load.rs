//! Loading the effective configuration: built-in defaults, then one YAML
//! (or JSON) file, then `ASU_<KEY>` environment variables; later wins.
//!
//! Every key is parsed and validated here (`value` parses one value), so
//! the rest of the program can trust `Config` blindly; errors are one line
//! naming the key and where the bad value came from (`error`).

use super::branches::all_package_changes;
use super::error::{ConfigError, Origin};
use super::value::{Field, Raw, invalid, render_value};
use super::{Branch, Config};
use serde::Deserialize;
use serde_norway::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Files looked at, in order, when no `--config` is given.
const DEFAULT_FILES: [&str; 2] = ["./config.yaml", "/etc/asu-builder/config.yaml"];

/// Environment variables with this prefix set configuration keys.
const ENV_PREFIX: &str = "ASU_";

/// Shortest `admin_token`: 16 characters of a random token are out of
/// reach of guessing over HTTP.
const MIN_TOKEN_LEN: usize = 16;

const LOG_LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// Which file, if any, the configuration was read from (for the startup log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// No file: built-in defaults plus environment.
    Defaults,
    File(PathBuf),
}

impl ConfigSource {
    pub fn file(&self) -> Option<&Path> {
        match self {
            ConfigSource::Defaults => None,
            ConfigSource::File(p) => Some(p),
        }
    }
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::Defaults => f.write_str("built-in defaults (no config file)"),
            ConfigSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Loads the configuration the way the binary does: `explicit` is the
/// `--config` argument (must exist); otherwise the first existing of
/// `./config.yaml` and `/etc/asu-builder/config.yaml`; then the process
/// environment's `ASU_*` variables.
pub fn load(explicit: Option<&Path>) -> Result<(Config, ConfigSource), ConfigError> {
    let defaults: Vec<PathBuf> = DEFAULT_FILES.iter().map(PathBuf::from).collect();
    let file = choose_file(explicit, &defaults)?;
    let env = process_env()?;
    let config = load_from(file.as_deref(), &env)?;
    let source = file.map_or(ConfigSource::Defaults, ConfigSource::File);
    Ok((config, source))
}

/// Loads defaults → `file` (if given; it must exist) → `env`. Only entries of
/// `env` whose name starts with `ASU_` are considered, so callers may pass the
/// whole environment.
pub fn load_from(file: Option<&Path>, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let mut config = Config::default();
    let mut seen = Seen::default();

    if let Some(path) = file {
        apply_file(&mut config, &mut seen, path)?;
    }

    // Sorted so that, with several bad variables, the error is always the same.
    let mut vars: Vec<&(String, String)> = env
        .iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    for (name, value) in vars {
        let key = name[ENV_PREFIX.len()..].to_ascii_lowercase();
        let origin = Origin::Env(name.clone());
        if key == "branches" {
            return Err(ConfigError::Unsupported {
                key,
                origin,
                reason: "branches can only be configured in the config file".into(),
            });
        }
        apply_key(&mut config, &mut seen, &key, Raw::Text(value), &origin)?;
    }

    // Operators who move `public_path` expect the store to move with it.
    if seen.public_path && !seen.store_path {
        config.store_path = config.public_path.join("store");
    }
    check_consistency(&config)?;
    Ok(config)
}

/// Rules between keys, checked once every source has been applied.
fn check_consistency(config: &Config) -> Result<(), ConfigError> {
    // A `defaults` script at its limit, JSON-escaped, plus the rest of a
    // large request must fit in a body; otherwise a valid request gets 413.
    let needed = config
        .max_defaults_length
        .saturating_mul(2)
        .saturating_add(64 * 1024);
    if config.server_max_body_bytes < needed {
        return Err(ConfigError::Conflict {
            message: format!(
                "server_max_body_bytes ({}) must be at least 2 × max_defaults_length + 65536 = {needed}, \
                 or a request with the longest allowed defaults script could not be sent",
                config.server_max_body_bytes
            ),
        });
    }
    Ok(())
}

/// YAML of the effective configuration (for `--check-config`). The output is
/// itself a valid config file that loads back to the same configuration.
pub fn render_effective(config: &Config) -> String {
    match serde_norway::to_string(config) {
        Ok(yaml) => format!("# asu-builder effective configuration\n{yaml}"),
        // Config holds only strings, numbers, lists and maps, so this is
        // unreachable in practice; still, never panic on a diagnostic path.
        Err(e) => format!("# cannot render configuration: {e}\n"),
    }
}

/// `explicit` wins and must exist; otherwise the first candidate that is a file.
fn choose_file(
    explicit: Option<&Path>,
    candidates: &[PathBuf],
) -> Result<Option<PathBuf>, ConfigError> {
    if let Some(path) = explicit {
        if !path.exists() {
            return Err(ConfigError::Missing {
                path: path.to_path_buf(),
            });
        }
        return Ok(Some(path.to_path_buf()));
    }
    Ok(candidates.iter().find(|p| p.is_file()).cloned())
}

/// The process environment's `ASU_*` variables. A non-UTF-8 value cannot be
/// a valid setting, so it is reported instead of silently skipped.
fn process_env() -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(ENV_PREFIX) {
            continue;
        }
        match value.into_string() {
            Ok(v) => out.push((name.to_string(), v)),
            Err(raw) => {
                return Err(ConfigError::Invalid {
                    key: name[ENV_PREFIX.len()..].to_ascii_lowercase(),
                    value: format!("{raw:?}"),
                    origin: Origin::Env(name.to_string()),
                    expected: "expected UTF-8 text".into(),
                });
            }
        }
    }
    Ok(out)
}

/// Keys whose presence changes how other keys are derived.
#[derive(Default)]
struct Seen {
    public_path: bool,
    store_path: bool,
}

/// Second look at the file, only for `branches`: deserializing straight into
/// `String` keys keeps `24.10` as written, whereas `Value` would have read it
/// as the float 24.1.
#[derive(Deserialize)]
struct BranchKeys {
    #[serde(default)]
    branches: Option<BTreeMap<String, Value>>,
}

fn apply_file(config: &mut Config, seen: &mut Seen, path: &Path) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let syntax = |e: serde_norway::Error| ConfigError::Syntax {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let doc: Value = serde_norway::from_str(&text).map_err(syntax)?;
    let map = match doc {
        // An empty file (or only comments) sets nothing.
        Value::Null => return Ok(()),
        Value::Mapping(m) => m,
        _ => {
            return Err(ConfigError::NotAMapping {
                path: path.to_path_buf(),
            });
        }
    };
    let origin = Origin::File(path.to_path_buf());
    for (key, value) in &map {
        let Some(key) = key.as_str() else {
            return Err(ConfigError::UnknownKey {
                key: render_value(key),
                origin,
            });
        };
        if key == "branches" {
            if !value.is_mapping() {
                return Err(invalid(
                    "branches",
                    Raw::Yaml(value),
                    &origin,
                    "expected a mapping of branch name to settings",
                ));
            }
            let typed: BranchKeys = serde_norway::from_str(&text).map_err(|e| {
                invalid(
                    "branches",
                    Raw::Yaml(value),
                    &origin,
                    &format!("expected a mapping of branch name to settings ({e})"),
                )
            })?;
            for (name, entry) in typed.branches.unwrap_or_default() {
                apply_branch(&mut config.branches, &name, &entry, &origin)?;
            }
            continue;
        }
        apply_key(config, seen, key, Raw::Yaml(value), &origin)?;
    }
    Ok(())
}

/// Sets one top-level key (everything except `branches`).
fn apply_key(
    config: &mut Config,
    seen: &mut Seen,
    key: &str,
    raw: Raw<'_>,
    origin: &Origin,
) -> Result<(), ConfigError> {
    let v = Field { key, raw, origin };
    match key {
        "server_host" => config.server_host = v.nonempty_string()?,
        "server_port" => {
            let port = v.bounded()?;
            config.server_port = u16::try_from(port).map_err(|_| v.invalid("a port"))?;
        }
        "database_path" => config.database_path = v.path()?,
        "public_path" => {
            config.public_path = v.path()?;
            seen.public_path = true;
        }
        "store_path" => {
            config.store_path = v.path()?;
            seen.store_path = true;
        }
        "upstream_url" => config.upstream_url = v.http_url()?,
        "container_runtime" => {
            let s = v.string()?;
            if s != "podman" {
                return Err(v.invalid("expected \"podman\" (the only supported runtime)"));
            }
            config.container_runtime = s;
        }
        "container_socket_path" => config.container_socket_path = v.path()?,
        "imagebuilder_registry" => config.imagebuilder_registry = v.token()?,
        "max_pending_jobs" => config.max_pending_jobs = v.bounded()?,
        "job_timeout_seconds" => config.job_timeout_seconds = v.bounded()?,
        "build_ttl_seconds" => config.build_ttl_seconds = v.bounded()?,
        "failure_ttl_seconds" => config.failure_ttl_seconds = v.bounded()?,
        "allow_defaults" => config.allow_defaults = v.boolean()?,
        "worker_id" => config.worker_id = v.token()?,
        "worker_concurrent" => config.worker_concurrent = v.bounded_size()?,
        "worker_poll_seconds" => config.worker_poll_seconds = v.bounded()?,
        "package_changes_url" => config.package_changes_url = v.optional_http_url()?,
        "log_level" => {
            let s = v.string()?.to_ascii_lowercase();
            if !LOG_LEVELS.contains(&s.as_str()) {
                return Err(v.invalid("expected one of error, warn, info, debug, trace"));
            }
            config.log_level = s;
        }
        "versioned_build_ttl_seconds" => config.versioned_build_ttl_seconds = v.bounded()?,
        "defaults_build_ttl_seconds" => config.defaults_build_ttl_seconds = v.bounded()?,
        "max_custom_rootfs_size_mb" => config.max_custom_rootfs_size_mb = v.bounded()?,
        "max_defaults_length" => config.max_defaults_length = v.bounded_size()?,
        "repository_allow_list" => config.repository_allow_list = v.url_list()?,
        "cache_url" => config.cache_url = v.optional_http_url()?,
        "container_network" => config.container_network = v.network_name()?,
        "server_threads" => config.server_threads = v.bounded_size()?,
        "server_max_connections" => config.server_max_connections = v.bounded_size()?,
        "server_keepalive_timeout_seconds" => {
            config.server_keepalive_timeout_seconds = v.bounded()?
        }
        "server_request_timeout_seconds" => config.server_request_timeout_seconds = v.bounded()?,
        "server_write_timeout_seconds" => config.server_write_timeout_seconds = v.bounded()?,
        "server_max_body_bytes" => config.server_max_body_bytes = v.bounded_size()?,
        "server_queue_timeout_ms" => config.server_queue_timeout_ms = v.bounded()?,
        "cors_allow_origin" => config.cors_allow_origin = v.header_value()?,
        "build_key_path" => config.build_key_path = v.optional_path()?,
        "stats_retention_days" => config.stats_retention_days = v.bounded()?,
        "stats_rollup_retention_days" => config.stats_rollup_retention_days = v.bounded()?,
        "admin_token" => config.admin_token = v.optional_secret(MIN_TOKEN_LEN)?,
        "long_poll_max_waiters" => config.long_poll_max_waiters = v.bounded_size()?,
        "store_gc" => config.store_gc = v.boolean()?,
        "store_adopt_settle_seconds" => config.store_adopt_settle_seconds = v.bounded()?,
        _ => {
            return Err(ConfigError::UnknownKey {
                key: key.to_string(),
                origin: origin.clone(),
            });
        }
    }
    Ok(())
}

/// Merges one `branches` entry over the table: an existing branch keeps the
/// fields the entry leaves out, a new branch needs at least `path`.
fn apply_branch(
    branches: &mut BTreeMap<String, Branch>,
    name: &str,
    entry: &Value,
    origin: &Origin,
) -> Result<(), ConfigError> {
    if name.trim().is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            "branches",
            Raw::Text(name),
            origin,
            "expected a branch name without spaces",
        ));
    }
    let prefix = format!("branches.{name}");
    let fields = BranchFields::parse(&prefix, entry, origin)?;
    let branch = match branches.get(name) {
        Some(existing) => fields.over(existing),
        None => fields.new_branch(&prefix, origin)?,
    };
    branches.insert(name.to_string(), branch);
    Ok(())
}

/// The fields one `branches` entry sets; `None` where it is silent.
#[derive(Default)]
struct BranchFields {
    path: Option<String>,
    enabled: Option<bool>,
    snapshot: Option<bool>,
    /// `Some(None)`: explicitly `null`.
    branch_off_rev: Option<Option<u64>>,
    package_changes: Option<Vec<crate::config::PackageChange>>,
}

impl BranchFields {
    fn parse(prefix: &str, entry: &Value, origin: &Origin) -> Result<BranchFields, ConfigError> {
        let Some(mapping) = entry.as_mapping() else {
            return Err(invalid(
                prefix,
                Raw::Yaml(entry),
                origin,
                "expected a mapping with path, enabled, snapshot, branch_off_rev, package_changes",
            ));
        };
        let mut out = BranchFields::default();
        for (field, value) in mapping {
            let Some(field) = field.as_str() else {
                return Err(ConfigError::UnknownKey {
                    key: format!("{prefix}.{}", render_value(field)),
                    origin: origin.clone(),
                });
            };
            let key = format!("{prefix}.{field}");
            let v = Field {
                key: &key,
                raw: Raw::Yaml(value),
                origin,
            };
            match field {
                "path" => out.path = Some(v.nonempty_string()?),
                "enabled" => out.enabled = Some(v.boolean()?),
                "snapshot" => out.snapshot = Some(v.boolean()?),
                "branch_off_rev" => {
                    out.branch_off_rev = Some(match value {
                        Value::Null => None,
                        _ => Some(v.bounded()?),
                    })
                }
                "package_changes" => out.package_changes = Some(v.package_changes()?),
                // Branch tables copied from the reference's output carry this;
                // it is constant there, so accept and ignore it.
                "path_packages" => {}
                _ => {
                    return Err(ConfigError::UnknownKey {
                        key,
                        origin: origin.clone(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Over a branch already in the table: unset fields keep its values.
    fn over(self, existing: &Branch) -> Branch {
        Branch {
            path: self.path.unwrap_or_else(|| existing.path.clone()),
            enabled: self.enabled.unwrap_or(existing.enabled),
            snapshot: self.snapshot.unwrap_or(existing.snapshot),
            branch_off_rev: self.branch_off_rev.unwrap_or(existing.branch_off_rev),
            package_changes: self
                .package_changes
                .unwrap_or_else(|| existing.package_changes.clone()),
        }
    }

    /// A branch the table does not have: `path` is required.
    fn new_branch(self, prefix: &str, origin: &Origin) -> Result<Branch, ConfigError> {
        let Some(path) = self.path else {
            return Err(ConfigError::MissingField {
                key: format!("{prefix}.path"),
                origin: origin.clone(),
                reason: "required for a branch that is not built in".into(),
            });
        };
        let branch_off_rev = self.branch_off_rev.flatten();
        Ok(Branch {
            path,
            enabled: self.enabled.unwrap_or(true),
            snapshot: self.snapshot.unwrap_or(false),
            branch_off_rev,
            // Same rule as the built-in table: the changes that happened
            // before the branch was forked (all of them for snapshots).
            package_changes: self.package_changes.unwrap_or_else(|| {
                all_package_changes()
                    .into_iter()
                    .filter(|c| branch_off_rev.is_none_or(|r| c.revision <= r))
                    .collect()
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_file_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.yaml");
        let err = choose_file(Some(&missing), &[]).unwrap_err();
        assert!(matches!(err, ConfigError::Missing { .. }));
        assert!(err.to_string().contains("nope.yaml"), "{err}");
    }

    #[test]
    fn explicit_file_wins_over_candidates() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.yaml");
        let b = dir.path().join("b.yaml");
        std::fs::write(&a, "").unwrap();
        std::fs::write(&b, "").unwrap();
        assert_eq!(choose_file(Some(&b), &[a]).unwrap(), Some(b));
    }

    #[test]
    fn first_existing_candidate_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("config.yaml");
        let etc = dir.path().join("etc.yaml");
        std::fs::write(&etc, "").unwrap();
        let got = choose_file(None, &[absent.clone(), etc.clone()]).unwrap();
        assert_eq!(got, Some(etc));
        // A directory with the candidate's name is not a config file.
        std::fs::create_dir(&absent).unwrap();
        assert_eq!(choose_file(None, &[absent]).unwrap(), None);
    }
}
