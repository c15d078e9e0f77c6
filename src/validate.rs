//! STUB — replaced by the upstream helper's module.
use crate::config::Config;
use crate::models::BuildRequest;
use crate::upstream::Upstream;

pub fn validate_request(
    _config: &Config,
    _upstream: &Upstream,
    _req: &mut BuildRequest,
) -> Result<(), String> {
    Ok(())
}
