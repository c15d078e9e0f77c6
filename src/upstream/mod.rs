//! STUB — replaced by the upstream helper's module.
use crate::config::Config;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug)]
pub struct UpstreamError(pub String);
impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for UpstreamError {}

pub struct Upstream {
    _config: Arc<Config>,
}

impl Upstream {
    pub fn new(config: Arc<Config>, _db_path: &Path) -> Result<Upstream, UpstreamError> {
        Ok(Upstream { _config: config })
    }
}
