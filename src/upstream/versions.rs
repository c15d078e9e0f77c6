//! Pure version logic: the supported/latest version lists built from
//! `.versions.json` (the reference's `reload_versions`) and version order.
//! Which branch a version belongs to is `config::branch_of`.

use crate::config::{Branch, branch_of};
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// The fields of upstream `.versions.json` we use. All optional: a missing
/// field must not take the whole API down.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VersionsFile {
    pub stable_version: Option<String>,
    pub oldstable_version: Option<String>,
    pub upcoming_version: Option<String>,
    pub versions_list: Vec<String>,
}

pub fn parse_versions_file(body: &[u8]) -> Result<VersionsFile, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    let text = |k: &str| {
        obj.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Ok(VersionsFile {
        stable_version: text("stable_version"),
        oldstable_version: text("oldstable_version"),
        upcoming_version: text("upcoming_version"),
        versions_list: obj
            .get("versions_list")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

fn supported(branches: &BTreeMap<String, Branch>, version: &str) -> bool {
    branch_of(branches, version).is_some_and(|(_, b)| b.enabled)
}

/// The supported versions and the `latest` list, both newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Versions {
    pub versions: Vec<String>,
    pub latest: Vec<String>,
}

impl Versions {
    pub fn contains(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }
}

fn push_supported<'a>(
    out: &mut Vec<String>,
    branches: &BTreeMap<String, Branch>,
    candidates: impl IntoIterator<Item = &'a str>,
) {
    for v in candidates {
        if !v.is_empty() && !out.iter().any(|o| o == v) && supported(branches, v) {
            out.push(v.to_owned());
        }
    }
}

/// Versions that exist without upstream's word: `SNAPSHOT` and every
/// `X.Y-SNAPSHOT` of an enabled branch.
pub fn snapshot_versions(branches: &BTreeMap<String, Branch>) -> Vec<String> {
    let names: Vec<String> = std::iter::once("SNAPSHOT".to_owned())
        .chain(
            branches
                .keys()
                .filter(|b| b.as_str() != "SNAPSHOT")
                .map(|b| format!("{b}-SNAPSHOT")),
        )
        .collect();
    let mut out = Vec::new();
    push_supported(&mut out, branches, names.iter().map(String::as_str));
    sort_newest_first(&mut out);
    out
}

/// Combine `.versions.json` with the branch table, keeping only versions of
/// enabled branches (the reference's `reload_versions`).
pub fn compute(branches: &BTreeMap<String, Branch>, file: &VersionsFile) -> Versions {
    let mut latest = Vec::new();
    push_supported(
        &mut latest,
        branches,
        [
            file.upcoming_version.as_deref(),
            file.stable_version.as_deref(),
            file.oldstable_version.as_deref(),
        ]
        .into_iter()
        .flatten(),
    );
    sort_newest_first(&mut latest);

    let mut versions = Vec::new();
    push_supported(
        &mut versions,
        branches,
        file.upcoming_version
            .as_deref()
            .into_iter()
            .chain(file.versions_list.iter().map(String::as_str)),
    );
    for v in snapshot_versions(branches) {
        if !versions.contains(&v) {
            versions.push(v);
        }
    }
    sort_newest_first(&mut versions);
    Versions { versions, latest }
}

pub fn sort_newest_first(versions: &mut [String]) {
    versions.sort_by(|a, b| cmp_versions(b, a));
}

/// Version order, oldest < newest. The reference sorts the strings with
/// `.0-rc` turned into `-rc`, which puts releases before their rcs and
/// `X.Y-SNAPSHOT` after both; we compare the same key, but digit runs as
/// numbers so that `24.10.10` is newer than `24.10.9`.
pub fn cmp_versions(a: &str, b: &str) -> Ordering {
    let ka = a.replace(".0-rc", "-rc");
    let kb = b.replace(".0-rc", "-rc");
    natural_cmp(&ka, &kb)
}

fn tokens(s: &str) -> impl Iterator<Item = &str> {
    let bytes = s.as_bytes();
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= bytes.len() {
            return None;
        }
        let digit = bytes[start].is_ascii_digit();
        let len = bytes[start..]
            .iter()
            .take_while(|c| c.is_ascii_digit() == digit)
            .count();
        let tok = &s[start..start + len];
        start += len;
        Some(tok)
    })
}

fn natural_cmp(a: &str, b: &str) -> Ordering {
    let mut ta = tokens(a);
    let mut tb = tokens(b);
    loop {
        match (ta.next(), tb.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let both_digits =
                    x.as_bytes()[0].is_ascii_digit() && y.as_bytes()[0].is_ascii_digit();
                let ord = if both_digits {
                    let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                    x.len().cmp(&y.len()).then_with(|| x.cmp(y))
                } else {
                    x.cmp(y)
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_branches;

    fn branches_with_12() -> BTreeMap<String, Branch> {
        let mut b = default_branches();
        b.insert(
            "1.2".into(),
            Branch {
                path: "releases/{version}".into(),
                enabled: true,
                snapshot: false,
                branch_off_rev: None,
                package_changes: vec![],
            },
        );
        b
    }

    #[test]
    fn order_matches_reference_and_fixes_numbers() {
        let mut v: Vec<String> = [
            "24.10-SNAPSHOT",
            "1.2.3",
            "24.10.0-rc7",
            "SNAPSHOT",
            "24.10.9",
            "24.10.0",
            "24.10.10",
            "24.10.0-rc10",
            "23.05.5",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        sort_newest_first(&mut v);
        assert_eq!(
            v,
            [
                "SNAPSHOT",
                "24.10.10",
                "24.10.9",
                "24.10.0",
                "24.10.0-rc10",
                "24.10.0-rc7",
                "24.10-SNAPSHOT",
                "23.05.5",
                "1.2.3"
            ]
        );
    }

    #[test]
    fn compute_from_fixture() {
        let file = parse_versions_file(
            br#"{"stable_version": "23.05.5", "oldstable_version": "22.03.7",
                 "upcoming_version": "24.10.0-rc6",
                 "versions_list": ["1.2.3", "22.03.7", "23.05.5", "24.10.0-rc6", "19.07.10"]}"#,
        )
        .unwrap();
        let mut b = branches_with_12();
        b.get_mut("21.02").unwrap().enabled = false;
        let v = compute(&b, &file);
        assert_eq!(v.latest, ["24.10.0-rc6", "23.05.5", "22.03.7"]);
        assert_eq!(
            v.versions,
            [
                "SNAPSHOT",
                "25.12-SNAPSHOT",
                "24.10.0-rc6",
                "24.10-SNAPSHOT",
                "23.05.5",
                "23.05-SNAPSHOT",
                "22.03.7",
                "22.03-SNAPSHOT",
                "1.2.3",
                "1.2-SNAPSHOT"
            ]
        );
    }

    #[test]
    fn lenient_versions_file() {
        let f =
            parse_versions_file(br#"{"upcoming_version": null, "stable_version": ""}"#).unwrap();
        assert_eq!(f, VersionsFile::default());
        assert!(parse_versions_file(b"<html>").is_err());
        assert!(parse_versions_file(b"[]").is_err());
    }
}
