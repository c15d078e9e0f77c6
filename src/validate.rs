//! Checks a build request against the server settings and upstream metadata
//! before it is queued, in the reference's order and with its exact texts
//! (`validate_request` in asu/routers/api.py). On success the request is
//! normalised: `packages` is taken from `packages_versions` when given, `+`
//! prefixes dropped, and `profile` is the canonical profile id.

use crate::allow_list::url_allowed;
use crate::config::{self, Config};
use crate::models::{BuildRequest, sanitize_profile};
use crate::upstream::{Freshness, Upstream, UpstreamError, versions};
use serde_json::Value;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum ValidationError {
    /// The request is not acceptable: 400 with this `detail`.
    Invalid(String),
    /// Upstream metadata needed to decide was unavailable (and nothing was
    /// cached): 502/504 rather than blaming the client.
    Upstream(UpstreamError),
}

impl ValidationError {
    /// The HTTP status the API answers with; the body is the reference's
    /// `{"detail", "status"}`.
    pub fn status(&self) -> u16 {
        match self {
            ValidationError::Invalid(_) => 400,
            ValidationError::Upstream(e) => e.http_status(),
        }
    }

    pub fn detail(&self) -> String {
        match self {
            ValidationError::Invalid(d) => d.clone(),
            ValidationError::Upstream(e) => e.to_string(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail())
    }
}

impl std::error::Error for ValidationError {}

impl From<UpstreamError> for ValidationError {
    fn from(e: UpstreamError) -> Self {
        ValidationError::Upstream(e)
    }
}

fn invalid(detail: String) -> Result<(), ValidationError> {
    log::info!("validation failure: {detail}");
    Err(ValidationError::Invalid(detail))
}

/// The only distribution the ImageBuilders serve.
const DISTROS: &[&str] = &["openwrt"];

/// The reference's `validate_request` shape: `Err` is the 400 `detail`.
/// Upstream outages also come back as text here; prefer [`check_request`],
/// which keeps them apart so they can be answered with 502/504.
pub fn validate_request(
    config: &Config,
    upstream: &Upstream,
    req: &mut BuildRequest,
) -> Result<(), String> {
    check_request(config, upstream, req).map_err(|e| e.detail())
}

/// Validate and normalise `req`; see the module comment. The checks run in
/// the reference's order, so a request with several faults gets its text.
pub fn check_request(
    config: &Config,
    upstream: &Upstream,
    req: &mut BuildRequest,
) -> Result<(), ValidationError> {
    if req.defaults.as_deref().is_some_and(|d| !d.is_empty()) && !config.allow_defaults {
        return invalid("Handling `defaults` not enabled on server".into());
    }
    check_repositories(config, req)?;
    if !DISTROS.contains(&req.distro.as_str()) {
        return invalid(format!("Unsupported distro: {}", req.distro));
    }
    let Some(version_path) = config::version_path(&config.branches, &req.version) else {
        return invalid(format!("Unsupported branch: {}", req.version));
    };
    if !version_supported(upstream, &req.version)? {
        return invalid(format!("Unsupported version: {}", req.version));
    }
    normalise_packages(req);
    check_target(upstream, &version_path, req)?;
    resolve_profile(upstream, &version_path, req)
}

/// Every repository URL must be on the operator's allow list.
fn check_repositories(config: &Config, req: &BuildRequest) -> Result<(), ValidationError> {
    for value in req.repositories.values() {
        let allowed = value
            .as_str()
            .is_some_and(|u| url_allowed(u, &config.repository_allow_list));
        if !allowed {
            let shown = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            return invalid(format!("Repository not allowed: {shown}"));
        }
    }
    Ok(())
}

/// The package list the build uses: `packages_versions` keys win over
/// `packages`; `+` prefixes go.
fn normalise_packages(req: &mut BuildRequest) {
    let names: Vec<String> = if req.packages_versions.is_empty() {
        std::mem::take(&mut req.packages)
    } else {
        req.packages_versions.keys().cloned().collect()
    };
    req.packages = names
        .into_iter()
        .map(|p| p.strip_prefix('+').map(str::to_owned).unwrap_or(p))
        .collect();
}

/// The target must be in the version's `.targets.json` (re-read once when
/// missing).
fn check_target(
    upstream: &Upstream,
    version_path: &str,
    req: &BuildRequest,
) -> Result<(), ValidationError> {
    let has_target = |f| -> Result<bool, UpstreamError> {
        Ok(upstream
            .targets_with(version_path, f)?
            .contains_key(&req.target))
    };
    if has_target(Freshness::Cached)? || has_target(Freshness::Recheck)? {
        return Ok(());
    }
    invalid(format!(
        "Unsupported target: {}. The requested target was either dropped, is still \
         being built or is not supported by the selected version. Please check the \
         forums or try again later.",
        req.target
    ))
}

/// Replace `profile` by the canonical profile id (an alias or a board name
/// resolved; `profiles.json` re-read once when missing).
fn resolve_profile(
    upstream: &Upstream,
    version_path: &str,
    req: &mut BuildRequest,
) -> Result<(), ValidationError> {
    // Clients may still send board names with commas (old LuCI).
    req.profile = sanitize_profile(&req.profile);
    let resolve = |f| -> Result<Option<String>, UpstreamError> {
        Ok(upstream
            .profiles_with(version_path, &req.target, f)?
            .and_then(|idx| idx.resolve(&req.profile).map(str::to_owned)))
    };
    let canonical = match resolve(Freshness::Cached)? {
        Some(id) => Some(id),
        None => resolve(Freshness::Recheck)?,
    };
    match canonical {
        Some(id) => {
            req.profile = id;
            Ok(())
        }
        None => invalid(format!(
            "Unsupported profile: {}. The requested profile was either dropped or never \
             existed. Please check the forums for more information.",
            req.profile
        )),
    }
}

/// Snapshot versions of enabled branches need no upstream list; everything
/// else must be in `.versions.json` (re-read once when missing).
fn version_supported(upstream: &Upstream, version: &str) -> Result<bool, UpstreamError> {
    let config = upstream.config();
    let branches = &config.branches;
    if versions::snapshot_versions(branches)
        .iter()
        .any(|v| v == version)
    {
        return Ok(true);
    }
    if upstream.versions_with(Freshness::Cached)?.contains(version) {
        return Ok(true);
    }
    Ok(upstream
        .versions_with(Freshness::Recheck)?
        .contains(version))
}
