//! STUB — replaced by the upstream helper's module.
use super::response::Response;
use crate::config::Config;
use crate::upstream::Upstream;

pub fn route_json(_config: &Config, _upstream: &Upstream, _path: &str) -> Option<Response> {
    None
}

pub fn revision(
    _config: &Config,
    _upstream: &Upstream,
    version: &str,
    _target: &str,
    _subtarget: &str,
) -> Response {
    Response::error(400, &format!("Unsupported version: {version}"))
}
