//! Loading the effective configuration: built-in defaults, then one YAML
//! (or JSON) file, then `ASU_<KEY>` environment variables; later wins.
//!
//! Every key is parsed and validated here, so the rest of the program can
//! trust `Config` blindly. Errors are one line naming the key and where the
//! bad value came from, because the operator reads them on a terminal or in
//! the journal and should not have to guess which of three sources was wrong.

use super::branches::all_package_changes;
use super::{Branch, Config, PackageChange};
use serde::Deserialize;
use serde_norway::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Files looked at, in order, when no `--config` is given.
const DEFAULT_FILES: [&str; 2] = ["./config.yaml", "/etc/asu-builder/config.yaml"];

/// Environment variables with this prefix set configuration keys.
const ENV_PREFIX: &str = "ASU_";

/// Upper bound for every `*_seconds` key: ten years. Keeps `now + ttl`
/// arithmetic (done in i64 by chrono and SQLite) far away from overflow.
const MAX_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// Upper bound for thread counts: more threads than this only exhausts the
/// host, and a typo like `40000` should fail loudly instead of at spawn.
const MAX_THREADS: u64 = 1024;

/// Upper bound for the statistics retention keys: ten years of days.
pub const MAX_STATS_DAYS: u64 = 3650;

const LOG_LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The configuration file at this path.
    File(PathBuf),
    /// The environment variable of this name.
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "in {}", p.display()),
            Origin::Env(var) => write!(f, "from environment {var}"),
        }
    }
}

#[derive(Debug)]
pub enum ConfigError {
    /// `--config` named a file that does not exist.
    Missing {
        path: PathBuf,
    },
    /// The file exists but could not be read.
    Read {
        path: PathBuf,
        message: String,
    },
    /// The file is not valid YAML/JSON.
    Syntax {
        path: PathBuf,
        message: String,
    },
    /// The document is valid YAML but not a mapping of keys.
    NotAMapping {
        path: PathBuf,
    },
    UnknownKey {
        key: String,
        origin: Origin,
    },
    Invalid {
        key: String,
        /// The offending value, already rendered for display (quoted, short).
        value: String,
        origin: Origin,
        expected: String,
    },
    /// A key that exists but cannot be set from this source.
    Unsupported {
        key: String,
        origin: Origin,
        reason: String,
    },
    /// A required field is absent (a new branch without `path`).
    MissingField {
        key: String,
        origin: Origin,
        reason: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Texts coming from elsewhere (io and YAML errors) may span lines;
        // the contract is one line per error.
        let one_line = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        match self {
            ConfigError::Missing { path } => {
                write!(f, "config: file {} does not exist", path.display())
            }
            ConfigError::Read { path, message } => write!(
                f,
                "config: cannot read {}: {}",
                path.display(),
                one_line(message)
            ),
            ConfigError::Syntax { path, message } => write!(
                f,
                "config: {} is not valid YAML/JSON: {}",
                path.display(),
                one_line(message)
            ),
            ConfigError::NotAMapping { path } => write!(
                f,
                "config: {} must contain a mapping of keys to values",
                path.display()
            ),
            ConfigError::UnknownKey { key, origin } => {
                write!(f, "config: unknown key {key:?} {origin}")
            }
            ConfigError::Invalid {
                key,
                value,
                origin,
                expected,
            } => write!(
                f,
                "config: {key}: invalid value {value} {origin}: {}",
                one_line(expected)
            ),
            ConfigError::Unsupported {
                key,
                origin,
                reason,
            } => write!(f, "config: {key}: cannot be set {origin}: {reason}"),
            ConfigError::MissingField {
                key,
                origin,
                reason,
            } => write!(f, "config: {key}: missing {origin} ({reason})"),
        }
    }
}

impl std::error::Error for ConfigError {}

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
    Ok(config)
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

/// A raw value from either source. File values keep their YAML type;
/// environment values are always text and get parsed per key.
#[derive(Clone, Copy)]
enum Raw<'a> {
    Yaml(&'a Value),
    Text(&'a str),
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
            let port = v.integer(1, u16::MAX.into(), "expected an integer 1-65535")?;
            // In range by the check above.
            config.server_port = u16::try_from(port).unwrap_or(u16::MAX);
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
        "max_pending_jobs" => config.max_pending_jobs = v.positive(u64::MAX)?,
        "job_timeout_seconds" => config.job_timeout_seconds = v.positive(MAX_SECONDS)?,
        "build_ttl_seconds" => config.build_ttl_seconds = v.seconds()?,
        "failure_ttl_seconds" => config.failure_ttl_seconds = v.seconds()?,
        "allow_defaults" => config.allow_defaults = v.boolean()?,
        "worker_id" => config.worker_id = v.token()?,
        "worker_concurrent" => config.worker_concurrent = v.threads()?,
        "worker_poll_seconds" => config.worker_poll_seconds = v.positive(MAX_SECONDS)?,
        "package_changes_url" => config.package_changes_url = v.optional_http_url()?,
        "log_level" => {
            let s = v.string()?.to_ascii_lowercase();
            if !LOG_LEVELS.contains(&s.as_str()) {
                return Err(v.invalid("expected one of error, warn, info, debug, trace"));
            }
            config.log_level = s;
        }
        "versioned_build_ttl_seconds" => config.versioned_build_ttl_seconds = v.seconds()?,
        "defaults_build_ttl_seconds" => config.defaults_build_ttl_seconds = v.seconds()?,
        "max_custom_rootfs_size_mb" => {
            config.max_custom_rootfs_size_mb =
                v.integer(0, u64::MAX, "expected a non-negative integer")?
        }
        "max_defaults_length" => {
            let n = v.integer(0, u32::MAX.into(), "expected an integer 0-4294967295")?;
            config.max_defaults_length = usize::try_from(n).unwrap_or(usize::MAX);
        }
        "repository_allow_list" => config.repository_allow_list = v.url_list()?,
        "cache_url" => config.cache_url = v.optional_http_url()?,
        "container_network" => config.container_network = v.network_name()?,
        "server_threads" => config.server_threads = v.threads()?,
        "cors_allow_origin" => config.cors_allow_origin = v.header_value()?,
        "stats_retention_days" => config.stats_retention_days = v.positive(MAX_STATS_DAYS)?,
        "stats_rollup_retention_days" => {
            config.stats_rollup_retention_days = v.positive(MAX_STATS_DAYS)?
        }
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
    let prefix = format!("branches.{name}");
    if name.trim().is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            "branches",
            Raw::Text(name),
            origin,
            "expected a branch name without spaces",
        ));
    }
    let Some(fields) = entry.as_mapping() else {
        return Err(invalid(
            &prefix,
            Raw::Yaml(entry),
            origin,
            "expected a mapping with path, enabled, snapshot, branch_off_rev, package_changes",
        ));
    };

    let mut path = None;
    let mut enabled = None;
    let mut snapshot = None;
    let mut branch_off_rev = None;
    let mut package_changes = None;
    for (field, value) in fields {
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
            "path" => path = Some(v.nonempty_string()?),
            "enabled" => enabled = Some(v.boolean()?),
            "snapshot" => snapshot = Some(v.boolean()?),
            "branch_off_rev" => {
                branch_off_rev = Some(match value {
                    Value::Null => None,
                    _ => Some(v.integer(0, u64::MAX, "expected a revision number or null")?),
                })
            }
            "package_changes" => package_changes = Some(v.package_changes()?),
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

    let branch = match branches.get(name) {
        Some(builtin) => Branch {
            path: path.unwrap_or_else(|| builtin.path.clone()),
            enabled: enabled.unwrap_or(builtin.enabled),
            snapshot: snapshot.unwrap_or(builtin.snapshot),
            branch_off_rev: branch_off_rev.unwrap_or(builtin.branch_off_rev),
            package_changes: package_changes.unwrap_or_else(|| builtin.package_changes.clone()),
        },
        None => {
            let Some(path) = path else {
                return Err(ConfigError::MissingField {
                    key: format!("{prefix}.path"),
                    origin: origin.clone(),
                    reason: "required for a branch that is not built in".into(),
                });
            };
            let branch_off_rev = branch_off_rev.flatten();
            Branch {
                path,
                enabled: enabled.unwrap_or(true),
                snapshot: snapshot.unwrap_or(false),
                branch_off_rev,
                // Same rule as the built-in table: the changes that happened
                // before the branch was forked (all of them for snapshots).
                package_changes: package_changes.unwrap_or_else(|| {
                    all_package_changes()
                        .into_iter()
                        .filter(|c| branch_off_rev.is_none_or(|r| c.revision <= r))
                        .collect()
                }),
            }
        }
    };
    branches.insert(name.to_string(), branch);
    Ok(())
}

fn invalid(key: &str, raw: Raw<'_>, origin: &Origin, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: match raw {
            Raw::Yaml(v) => render_value(v),
            Raw::Text(s) => shorten(&format!("{s:?}")),
        },
        origin: origin.clone(),
        expected: expected.to_string(),
    }
}

/// A YAML value as a short single line: strings quoted, collections as JSON.
fn render_value(v: &Value) -> String {
    let text = match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => {
            serde_json::to_string(v).unwrap_or_else(|_| "(a YAML structure)".into())
        }
    };
    shorten(&text)
}

fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        return s.to_string();
    }
    let cut: String = s.chars().take(MAX).collect();
    format!("{cut}…")
}

/// One value being parsed for one key; knows how to report itself.
struct Field<'a> {
    key: &'a str,
    raw: Raw<'a>,
    origin: &'a Origin,
}

impl Field<'_> {
    fn invalid(&self, expected: &str) -> ConfigError {
        invalid(self.key, self.raw, self.origin, expected)
    }

    fn invalid_item(&self, item: &str, expected: &str) -> ConfigError {
        invalid(self.key, Raw::Text(item), self.origin, expected)
    }

    /// Text as given. A YAML number is refused rather than converted: `1.10`
    /// would silently become "1.1".
    fn string(&self) -> Result<String, ConfigError> {
        match self.raw {
            Raw::Text(s) => Ok(s.to_string()),
            Raw::Yaml(Value::String(s)) => Ok(s.clone()),
            Raw::Yaml(_) => Err(self.invalid("expected a string (quote it)")),
        }
    }

    fn nonempty_string(&self) -> Result<String, ConfigError> {
        let s = self.string()?;
        if s.trim().is_empty() || s.chars().any(char::is_control) {
            return Err(self.invalid("expected a non-empty string"));
        }
        Ok(s)
    }

    /// A name without spaces (worker id, image registry): these end up in
    /// container names, labels and image references.
    fn token(&self) -> Result<String, ConfigError> {
        let s = self.string()?;
        if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(self.invalid("expected a non-empty string without spaces"));
        }
        Ok(s)
    }

    /// Relative paths stay relative (to the working directory at startup).
    fn path(&self) -> Result<PathBuf, ConfigError> {
        let s = self.string()?;
        if s.trim().is_empty() || s.contains('\0') {
            return Err(self.invalid("expected a non-empty path"));
        }
        Ok(PathBuf::from(s))
    }

    fn integer(&self, min: u64, max: u64, expected: &str) -> Result<u64, ConfigError> {
        let n = match self.raw {
            Raw::Yaml(Value::Number(n)) => n.as_u64(),
            Raw::Yaml(_) => None,
            Raw::Text(s) => {
                let s = s.trim();
                // `u64::from_str` accepts a leading '+'; a setting should not.
                if s.bytes().all(|b| b.is_ascii_digit()) {
                    s.parse().ok()
                } else {
                    None
                }
            }
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.invalid(expected)),
        }
    }

    fn positive(&self, max: u64) -> Result<u64, ConfigError> {
        self.integer(1, max, &format!("expected an integer 1-{max}"))
    }

    fn seconds(&self) -> Result<u64, ConfigError> {
        self.integer(
            0,
            MAX_SECONDS,
            &format!("expected a number of seconds 0-{MAX_SECONDS}"),
        )
    }

    fn threads(&self) -> Result<usize, ConfigError> {
        let n = self.positive(MAX_THREADS)?;
        Ok(usize::try_from(n).unwrap_or(1))
    }

    /// YAML booleans, and the spellings people use in env files and in
    /// YAML 1.1 habits (`yes`/`no`, `1`/`0`).
    fn boolean(&self) -> Result<bool, ConfigError> {
        let text = match self.raw {
            Raw::Yaml(Value::Bool(b)) => return Ok(*b),
            Raw::Yaml(Value::String(s)) => s.as_str(),
            Raw::Yaml(Value::Number(n)) => match n.as_u64() {
                Some(0) => "0",
                Some(1) => "1",
                _ => "",
            },
            Raw::Yaml(_) => "",
            Raw::Text(s) => s,
        };
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(self.invalid("expected true or false (also yes/no, 1/0)")),
        }
    }

    fn http_url(&self) -> Result<String, ConfigError> {
        let s = self.string()?;
        check_http_url(s.trim())
            .map_err(|why| self.invalid(&format!("expected an http(s) URL ({why})")))
    }

    /// Empty disables the feature; otherwise an http(s) URL.
    fn optional_http_url(&self) -> Result<String, ConfigError> {
        let s = self.string()?;
        if s.trim().is_empty() {
            return Ok(String::new());
        }
        check_http_url(s.trim()).map_err(|why| {
            self.invalid(&format!(
                "expected an http(s) URL or an empty string ({why})"
            ))
        })
    }

    /// A list of http(s) URLs: a YAML sequence of strings in the file,
    /// comma-separated in the environment.
    fn url_list(&self) -> Result<Vec<String>, ConfigError> {
        let items: Vec<String> = match self.raw {
            Raw::Text(s) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            Raw::Yaml(Value::Sequence(seq)) => {
                let mut items = Vec::with_capacity(seq.len());
                for item in seq {
                    match item {
                        Value::String(s) => items.push(s.trim().to_string()),
                        other => {
                            return Err(invalid(
                                self.key,
                                Raw::Yaml(other),
                                self.origin,
                                "expected a list of http(s) URLs",
                            ));
                        }
                    }
                }
                items
            }
            Raw::Yaml(_) => return Err(self.invalid("expected a list of http(s) URLs")),
        };
        for item in &items {
            // Entries are prefixes matched against client repository URLs,
            // so keep them exactly as given (trailing slash included).
            if let Err(why) = check_http_url(item) {
                return Err(self.invalid_item(item, &format!("expected http(s) URLs ({why})")));
            }
        }
        Ok(items)
    }

    /// Podman network names: the value is put into libpod URL paths, so it
    /// must not carry `/`, `?` or spaces.
    fn network_name(&self) -> Result<String, ConfigError> {
        let s = self.string()?;
        let mut chars = s.chars();
        let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok {
            return Err(self.invalid("expected a network name of letters, digits, '_', '.', '-'"));
        }
        Ok(s)
    }

    /// Goes out verbatim as a response header, so it must be one visible line.
    fn header_value(&self) -> Result<String, ConfigError> {
        let s = self.string()?;
        let s = s.trim();
        if s.is_empty() || s.chars().any(|c| c.is_control() || !c.is_ascii()) {
            return Err(self.invalid("expected a non-empty single-line ASCII string"));
        }
        Ok(s.to_string())
    }

    fn package_changes(&self) -> Result<Vec<PackageChange>, ConfigError> {
        const SHAPE: &str = "expected a list of {source, target, revision, mandatory}";
        let Raw::Yaml(value) = self.raw else {
            return Err(self.invalid(SHAPE));
        };
        let changes: Vec<PackageChange> = serde_norway::from_value(value.clone())
            .map_err(|e| self.invalid(&format!("{SHAPE} ({e})")))?;
        if let Some(bad) = changes
            .iter()
            .find(|c| c.source.is_none() && c.target.is_none())
        {
            return Err(self.invalid(&format!(
                "{SHAPE}: the change at revision {} has neither source nor target",
                bad.revision
            )));
        }
        Ok(changes)
    }
}

/// Accepts an absolute http(s) URL with a host; returns it without trailing
/// `/` because everyone joins paths onto it with `{url}/{path}`.
fn check_http_url(s: &str) -> Result<String, &'static str> {
    let url = url::Url::parse(s).map_err(|_| "does not parse")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("scheme must be http or https");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("no host");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("no query or fragment allowed");
    }
    Ok(s.trim_end_matches('/').to_string())
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

    #[test]
    fn urls_are_checked_and_trimmed() {
        assert_eq!(
            check_http_url("https://downloads.openwrt.org/").unwrap(),
            "https://downloads.openwrt.org"
        );
        assert_eq!(
            check_http_url("http://mirror.example/openwrt").unwrap(),
            "http://mirror.example/openwrt"
        );
        assert!(check_http_url("ftp://x.example").is_err());
        assert!(check_http_url("downloads.openwrt.org").is_err());
        assert!(check_http_url("http://").is_err());
        assert!(check_http_url("https://x.example/?a=b").is_err());
        assert!(check_http_url("file:///etc/passwd").is_err());
    }

    #[test]
    fn rendered_values_are_one_short_line() {
        let v: Value = serde_norway::from_str("[1, \"a\\nb\"]").unwrap();
        assert_eq!(render_value(&v), "[1,\"a\\nb\"]");
        let long = Value::String("x".repeat(500));
        let shown = render_value(&long);
        assert!(shown.chars().count() <= 81, "{shown}");
        assert!(!shown.contains('\n'));
    }
}
