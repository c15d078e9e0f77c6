//! The reference server's branch table, as the built-in default, and the
//! one rule for which branch a version belongs to (the reference's
//! `get_branch`) and where it lives upstream.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One entry of a branch's `package_changes` list, as clients read it from
/// overview.json: rename when both `source` and `target` are set, addition
/// when only `source`, removal when only `target`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub revision: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mandatory: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Branch {
    /// `snapshots` or `releases/{version}`.
    pub path: String,
    pub enabled: bool,
    pub snapshot: bool,
    /// Releases only: the revision the branch was forked at.
    pub branch_off_rev: Option<u64>,
    pub package_changes: Vec<PackageChange>,
}

/// The branch name a version (or branch name) belongs to: itself when it is
/// a configured branch, `X.Y` for `X.Y-SNAPSHOT`, else everything before the
/// last dot (`21.02.0-rc1` → `21.02`).
pub fn branch_name(branches: &BTreeMap<String, Branch>, version: &str) -> String {
    if branches.contains_key(version) {
        return version.to_owned();
    }
    if version.ends_with("-SNAPSHOT") {
        return version
            .rsplit_once('-')
            .map_or(version, |(head, _)| head)
            .to_owned();
    }
    version
        .rsplit_once('.')
        .map_or(version, |(head, _)| head)
        .to_owned()
}

/// The configured branch of a version, if any (enabled or not).
pub fn branch_of<'a>(
    branches: &'a BTreeMap<String, Branch>,
    version: &str,
) -> Option<(&'a str, &'a Branch)> {
    let name = branch_name(branches, version);
    branches
        .get_key_value(name.as_str())
        .map(|(k, b)| (k.as_str(), b))
}

/// Upstream directory of a version: the branch `path` with `{version}`
/// filled in (`releases/23.05.5`, `snapshots`). None for unknown branches.
pub fn version_path(branches: &BTreeMap<String, Branch>, version: &str) -> Option<String> {
    branch_of(branches, version).map(|(_, b)| b.path.replace("{version}", version))
}

fn change(
    source: Option<&str>,
    target: Option<&str>,
    revision: u64,
    mandatory: bool,
) -> PackageChange {
    PackageChange {
        source: source.map(str::to_owned),
        target: target.map(str::to_owned),
        revision,
        mandatory: mandatory.then_some(true),
    }
}

/// All known package changes, oldest first (the reference's `package_changes_list`).
pub fn all_package_changes() -> Vec<PackageChange> {
    vec![
        change(Some("firewall"), Some("firewall4"), 18611, false),
        change(Some("kmod-nft-nat6"), None, 20282, true),
        change(
            Some("libustream-wolfssl"),
            Some("libustream-mbedtls"),
            21994,
            false,
        ),
        change(Some("px5g-wolfssl"), Some("px5g-mbedtls"), 21994, false),
        change(
            Some("wpad-basic-wolfssl"),
            Some("wpad-basic-mbedtls"),
            21994,
            false,
        ),
        change(Some("luci-app-diag-core"), None, 25984, true),
        change(Some("auc"), Some("owut"), 26792, false),
        change(
            Some("luci-app-opkg"),
            Some("luci-app-package-manager"),
            27897,
            false,
        ),
        change(Some("opkg"), Some("apk-mbedtls"), 28056, false),
    ]
}

fn changes_before(rev: Option<u64>) -> Vec<PackageChange> {
    all_package_changes()
        .into_iter()
        .filter(|c| rev.is_none_or(|r| c.revision <= r))
        .collect()
}

fn release(branch_off_rev: u64) -> Branch {
    Branch {
        path: "releases/{version}".into(),
        enabled: true,
        snapshot: false,
        branch_off_rev: Some(branch_off_rev),
        package_changes: changes_before(Some(branch_off_rev)),
    }
}

pub fn default_branches() -> BTreeMap<String, Branch> {
    let mut b = BTreeMap::new();
    b.insert(
        "SNAPSHOT".to_string(),
        Branch {
            path: "snapshots".into(),
            enabled: true,
            snapshot: true,
            branch_off_rev: None,
            package_changes: changes_before(None),
        },
    );
    b.insert("25.12".into(), release(32295));
    b.insert("24.10".into(), release(27990));
    b.insert("23.05".into(), release(23069));
    b.insert("22.03".into(), release(19160));
    b.insert("21.02".into(), release(15812));
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_like_the_reference() {
        let b = default_branches();
        assert_eq!(branch_name(&b, "SNAPSHOT"), "SNAPSHOT");
        assert_eq!(branch_name(&b, "24.10"), "24.10");
        assert_eq!(branch_name(&b, "24.10.2"), "24.10");
        assert_eq!(branch_name(&b, "21.02.0-rc1"), "21.02");
        assert_eq!(branch_name(&b, "23.05-SNAPSHOT"), "23.05");
        assert_eq!(branch_name(&b, "10.10.10"), "10.10");
        assert_eq!(branch_name(&b, "invalid-version"), "invalid-version");
        assert_eq!(branch_name(&b, "a-b-SNAPSHOT"), "a-b");
    }

    #[test]
    fn version_paths() {
        let b = default_branches();
        assert_eq!(version_path(&b, "SNAPSHOT").as_deref(), Some("snapshots"));
        assert_eq!(
            version_path(&b, "23.05.5").as_deref(),
            Some("releases/23.05.5")
        );
        assert_eq!(
            version_path(&b, "24.10-SNAPSHOT").as_deref(),
            Some("releases/24.10-SNAPSHOT")
        );
        assert_eq!(version_path(&b, "invalid-version"), None);
        assert_eq!(version_path(&b, "99.99-SNAPSHOT"), None);
    }
}
