//! Pure parsers for package indexes: opkg `Packages` files, v2
//! `index.json`, `feeds.conf`, and the kmod-split rule (reference:
//! `parse_packages_file`, `parse_feeds_conf`, `is_post_kmod_split_build`).

use serde_json::{Map, Value};

/// `{architecture, packages}` parsed from an opkg `Packages` file, with ABI
/// suffixes stripped from package names (`libfoo1` → `libfoo`).
pub fn parse_packages(text: &str) -> Map<String, Value> {
    let mut architecture = String::new();
    let mut packages = Map::new();
    for stanza in stanzas(text) {
        let field = |name: &str| {
            stanza
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        };
        if architecture.is_empty()
            && let Some(arch) = field("Architecture").filter(|a| *a != "all")
        {
            architecture = arch.to_owned();
        }
        let Some(mut name) = field("Package") else {
            continue;
        };
        if let Some(abi) = field("ABIVersion").filter(|a| !a.is_empty()) {
            name = name.strip_suffix(abi).unwrap_or(name);
        }
        let version = field("Version").map_or(Value::Null, |v| Value::String(v.to_owned()));
        packages.insert(name.to_owned(), version);
    }
    let mut out = Map::new();
    out.insert("architecture".into(), Value::String(architecture));
    out.insert("packages".into(), Value::Object(packages));
    out
}

/// Blank-line separated stanzas of `Key: value` fields; continuation lines
/// (leading whitespace, e.g. long descriptions) are skipped.
fn stanzas(text: &str) -> Vec<Vec<(&str, &str)>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            current.push((k.trim(), v.trim()));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A v2 `index.json` (ABI-free names) without its `version` key; None for
/// v1 files (or anything that is not an object), which need `Packages`.
pub fn v2_index(json: &Value) -> Option<Map<String, Value>> {
    let obj = json.as_object()?;
    let version = obj.get("version").map_or(Some(1), Value::as_u64)?;
    if version < 2 {
        return None;
    }
    let mut out = obj.clone();
    out.remove("version");
    Some(out)
}

/// Feed names from `feeds.conf` (`src-git packages https://…` → `packages`).
pub fn parse_feeds_conf(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(str::to_owned)
        .collect()
}

/// Whether kmods live in `kmods/<kernel>/` instead of the target's package
/// index: snapshots, 24.x and later, 23.05-SNAPSHOT and 23.05.6+.
pub fn is_post_kmod_split(path: &str) -> bool {
    if path.starts_with("snapshots") {
        return true;
    }
    let Some(version) = path.split('/').nth(1) else {
        return false;
    };
    let major: u64 = match version.split_once('.') {
        Some((m, _)) => m.parse().unwrap_or(0),
        None => 0,
    };
    if major >= 24 {
        return true;
    }
    if major == 23 {
        let minor = version.rsplit('.').next().unwrap_or_default();
        if minor == "05-SNAPSHOT" {
            return true;
        }
        // Numeric, so a future 23.05.10 counts too (the reference compares
        // strings here).
        let digits: String = minor.chars().take_while(char::is_ascii_digit).collect();
        let plain_release = digits.len() == minor.len();
        return plain_release && digits.parse::<u64>().is_ok_and(|n| n >= 6);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn packages_with_abi_and_malformed_tail() {
        let text = "Package: libusb-1.0-0\nABIVersion: -0\nVersion: 1.2.3\nArchitecture: x86_64\n\n\
                    Package: libpython-3.3-3\nABIVersion: -3\nVersion: 1.2.3\n\n\
                    Package: bort\nVersion: 9.9.9\nDescription: long\n more text\n\n\n\n";
        let idx = parse_packages(text);
        assert_eq!(
            Value::Object(idx),
            json!({"architecture": "x86_64", "packages": {
                "libusb-1.0": "1.2.3", "libpython-3.3": "1.2.3", "bort": "9.9.9"}})
        );
    }

    #[test]
    fn architecture_skips_all() {
        let idx = parse_packages(
            "Package: a\nVersion: 1\nArchitecture: all\n\nPackage: b\nVersion: 2\nArchitecture: mips_24kc\n",
        );
        assert_eq!(idx["architecture"], "mips_24kc");
    }

    #[test]
    fn v2_detection() {
        let v2 = json!({"version": 2, "architecture": "a", "packages": {"x": "1"}});
        assert_eq!(
            Value::Object(v2_index(&v2).unwrap()),
            json!({"architecture": "a", "packages": {"x": "1"}})
        );
        assert!(v2_index(&json!({"architecture": "a", "packages": {}})).is_none());
        assert!(v2_index(&json!({"version": 1})).is_none());
        assert!(v2_index(&json!([])).is_none());
    }

    #[test]
    fn feeds() {
        let f = parse_feeds_conf(
            "src-git packages https://git.openwrt.org/feed/packages.git^b1635b8\n\
             src-git luci https://git.openwrt.org/project/luci.git^63d8b79\n\nbroken\n",
        );
        assert_eq!(f, ["packages", "luci"]);
    }

    #[test]
    fn kmod_split_cases_from_reference() {
        let cases = [
            ("releases/22.07.3/targets/x86/64", false),
            ("releases/23.05.0-rc3/targets/x86/64", false),
            ("releases/23.05.2/targets/x86/64", false),
            ("releases/23.05.5/targets/x86/64", false),
            ("releases/23.05.6/targets/x86/64", true),
            ("releases/23.05-SNAPSHOT/targets/x86/64", true),
            ("releases/24.10.0-rc1/targets/x86/64", true),
            ("releases/24.10.2/targets/x86/64", true),
            ("releases/24.10-SNAPSHOT/targets/x86/64", true),
            ("releases/25.12.2/targets/x86/64", true),
            ("releases/26.10-SNAPSHOT/targets/x86/64", true),
            ("snapshots/targets/x86/64", true),
            ("releases/23.05.10/targets/x86/64", true),
            ("weird", false),
        ];
        for (path, expected) in cases {
            assert_eq!(is_post_kmod_split(path), expected, "{path}");
        }
    }
}
