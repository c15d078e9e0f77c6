//! The reference server's branch table, as the built-in default.

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
