//! Plain data shared between layers: the build request as clients send it,
//! job phases and statuses.

mod parse;

pub use parse::{FILESYSTEMS, FieldError, Limits, Unprocessable, parse_build_request};

use serde::Serialize;
use serde_json::{Map, Value};

/// The reference `BuildRequest`, after parsing and field validation.
/// `repositories` keeps the client's key order (it is part of the hash).
#[derive(Debug, Clone, PartialEq, Serialize)]
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

/// Progress phase shown to clients as `imagebuilder_status`.
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
}
