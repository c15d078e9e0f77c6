//! Configuration errors: one line each, naming the key and where the bad
//! value came from, because the operator reads them on a terminal or in the
//! journal and should not have to guess which of three sources was wrong.

use std::fmt;
use std::path::PathBuf;

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
    /// Two keys that are each valid but not together.
    Conflict {
        message: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Texts coming from elsewhere (io and YAML errors) may span lines;
        // every error is one line.
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
            ConfigError::Conflict { message } => write!(f, "config: {message}"),
        }
    }
}

impl std::error::Error for ConfigError {}
