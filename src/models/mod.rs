//! Plain data shared between layers: the build request as clients send it,
//! job statuses and progress phases.

pub mod bounds;
mod parse;
mod patterns;
mod sizes;
mod unprocessable;

pub use parse::{FILESYSTEMS, Limits, parse_build_request};
pub use unprocessable::{FieldError, Unprocessable};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The reference `BuildRequest`, after parsing and field validation.
/// `repositories` keeps the client's key order (it is part of the hash).
///
/// Clients' bodies go through `parse_build_request` (the reference's rules,
/// 422). serde's own form, every field written, is the stored form: the
/// `request` the API echoes and what `db::jobs` keeps in `request_json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BuildRequest {
    pub distro: String,
    pub version: String,
    pub version_code: String,
    pub target: String,
    pub profile: String,
    pub packages: Vec<String>,
    pub packages_versions: Map<String, Value>,
    pub diff_packages: bool,
    pub defaults: Option<String>,
    pub rootfs_size_mb: Option<u64>,
    pub filesystem: Option<String>,
    pub repositories: Map<String, Value>,
    pub repositories_mode: String,
    pub repository_keys: Vec<String>,
    pub client: Option<String>,
}

impl Default for BuildRequest {
    fn default() -> Self {
        BuildRequest {
            distro: "openwrt".into(),
            version: String::new(),
            version_code: String::new(),
            target: String::new(),
            profile: String::new(),
            packages: Vec::new(),
            packages_versions: Map::new(),
            diff_packages: false,
            defaults: None,
            rootfs_size_mb: None,
            filesystem: None,
            repositories: Map::new(),
            repositories_mode: "replace".into(),
            repository_keys: Vec::new(),
            client: None,
        }
    }
}

/// The profile name as the reference hashes and looks it up: board names
/// come with commas (`tplink,archer-c7-v2` from older LuCI and auc), profile
/// ids and the alias table use `_`.
pub fn sanitize_profile(name: &str) -> String {
    name.replace(',', "_")
}

impl BuildRequest {
    /// Repositories as (name, url) pairs in the client's order.
    pub fn repository_pairs(&self) -> Vec<(&str, &str)> {
        self.repositories
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|u| (k.as_str(), u)))
            .collect()
    }
}

/// Where a job is in its life, stored as text in `build_jobs.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Waiting to be claimed (also while waiting out a retry backoff).
    Pending,
    /// Claimed by a worker holding a lease.
    Running,
    /// Built; the result lives in `build_results`.
    Completed,
    /// Failed for good; replayed to clients for `failure_ttl_seconds`.
    Failed,
    /// Stopped by an operator; clients see the hash as unknown, so the
    /// next POST builds it afresh.
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Pending or running: at most one such job per request hash.
    pub fn is_active(self) -> bool {
        matches!(self, JobStatus::Pending | JobStatus::Running)
    }
}

/// Progress phase shown to clients as `imagebuilder_status` (and stored in
/// the column of that name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Queued,
    Init,
    ContainerSetup,
    ValidateRevision,
    ValidateManifest,
    BuildingImage,
    SigningImages,
    Done,
    Failed,
}

impl Phase {
    pub const ALL: [Phase; 9] = [
        Phase::Queued,
        Phase::Init,
        Phase::ContainerSetup,
        Phase::ValidateRevision,
        Phase::ValidateManifest,
        Phase::BuildingImage,
        Phase::SigningImages,
        Phase::Done,
        Phase::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Queued => "queued",
            Phase::Init => "init",
            Phase::ContainerSetup => "container_setup",
            Phase::ValidateRevision => "validate_revision",
            Phase::ValidateManifest => "validate_manifest",
            Phase::BuildingImage => "building_image",
            Phase::SigningImages => "signing_images",
            Phase::Done => "done",
            Phase::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_round_trip() {
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
        }
        for p in Phase::ALL {
            assert_eq!(Phase::parse(p.as_str()), Some(p));
        }
        assert_eq!(JobStatus::parse("Pending"), None);
        assert_eq!(Phase::parse(""), None);
    }

    #[test]
    fn the_stored_form_round_trips() {
        let mut req = BuildRequest {
            version: "1.2.3".into(),
            target: "a/b".into(),
            profile: "p".into(),
            packages: vec!["+vim".into()],
            defaults: Some("x".repeat(30000)),
            rootfs_size_mb: Some(4096),
            filesystem: Some("ext4".into()),
            client: Some("luci/1".into()),
            ..Default::default()
        };
        req.repositories
            .insert("z".into(), Value::from("https://example.com/z"));
        req.repositories
            .insert("a".into(), Value::from("https://example.com/a"));
        req.packages_versions
            .insert("vim".into(), Value::from("9.1"));
        let text = serde_json::to_string(&req).unwrap();
        let back: BuildRequest = serde_json::from_str(&text).unwrap();
        assert_eq!(back, req);
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
    }
}
