//! Placeholder: replaced by the config loader (defaults → file → env).
use super::Config;
use std::path::Path;

#[derive(Debug)]
pub enum ConfigError {
    Invalid(String),
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Invalid(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone)]
pub enum ConfigSource {
    Default,
}

pub fn load(_explicit: Option<&Path>) -> Result<Config, ConfigError> {
    Ok(Config::default())
}

pub fn load_from(_file: Option<&Path>, _env: &[(String, String)]) -> Result<Config, ConfigError> {
    Ok(Config::default())
}
