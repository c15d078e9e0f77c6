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

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("built-in defaults")
    }
}

pub fn load(_explicit: Option<&Path>) -> Result<(Config, ConfigSource), ConfigError> {
    Ok((Config::default(), ConfigSource::Default))
}

pub fn render_effective(_config: &Config) -> String {
    String::new()
}

pub fn load_from(_file: Option<&Path>, _env: &[(String, String)]) -> Result<Config, ConfigError> {
    Ok(Config::default())
}
