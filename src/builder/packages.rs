//! Package lists: diffing against defaults, the packages hash, manifests,
//! and the classification of package manager errors.

use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// The reference's `get_packages_hash` (shared with the request hash).
pub use crate::hash::packages_hash;

/// Packages for `make … PACKAGES=`: every default not requested, as a sorted
/// `-pkg` removal, then the requested packages in the client's order.
pub fn diff_packages(requested: &[String], defaults: &BTreeSet<String>) -> Vec<String> {
    let requested_set: BTreeSet<&str> = requested.iter().map(String::as_str).collect();
    let removals: BTreeSet<String> = defaults
        .iter()
        .filter(|d| !requested_set.contains(d.as_str()))
        // A default that already is a removal (`-swconfig`) stays one.
        .map(|d| format!("-{d}").replace("--", "-"))
        .collect();
    removals
        .into_iter()
        .chain(requested.iter().cloned())
        .collect()
}

/// `name - version` (opkg) or `name version` (apk), one per line. The opkg
/// separator is chosen when it appears anywhere, as the reference does.
/// Lines without a separator are skipped (the reference would crash).
pub fn parse_manifest(stdout: &str) -> Map<String, Value> {
    let sep = if stdout.contains(" - ") { " - " } else { " " };
    stdout
        .lines()
        .filter_map(|line| line.split_once(sep))
        .map(|(name, version)| (name.to_owned(), Value::String(version.to_owned())))
        .collect()
}

/// `packages_versions` against the manifest; the reference's texts.
pub fn check_manifest(
    manifest: &Map<String, Value>,
    wanted: &Map<String, Value>,
) -> Option<String> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for (package, version) in wanted {
        let Some(got) = manifest.get(package) else {
            return Some(format!(
                "Impossible package selection: {package} not in manifest"
            ));
        };
        if text(version) != text(got) {
            return Some(format!(
                "Impossible package selection: {package} version not as requested: {} vs. {}",
                text(version),
                text(got)
            ));
        }
    }
    None
}

/// `is too big` / `out of space?` in the image build's stderr.
pub fn exceeds_storage(stderr: &str) -> bool {
    stderr.contains("is too big") || stderr.contains("out of space?")
}

/// The reference's `check_package_errors`: names of missing and conflicting
/// packages from opkg or apk output, as
/// `Impossible package selection: missing (a, b) conflicts (c)`.
pub fn check_package_errors(stderr: &str) -> String {
    let mut missing: BTreeSet<String> = BTreeSet::new();
    missing.extend(errscan::opkg_cannot_install(stderr));
    missing.extend(errscan::apk_no_such_package(stderr));

    let mut conflicts: BTreeSet<String> = BTreeSet::new();
    for (a, b) in errscan::apk_conflict_groups(stderr) {
        conflicts.insert(a);
        conflicts.insert(b);
    }
    conflicts.extend(errscan::opkg_file_clash(stderr));
    conflicts.extend(errscan::opkg_already_provided(stderr));
    conflicts.extend(errscan::opkg_check_conflicts(stderr));
    conflicts.extend(errscan::apk_overwrite_owner_first(stderr));
    conflicts.extend(errscan::apk_overwrite_owned_by(stderr));

    // opkg reports a conflicting package as "cannot install" too.
    missing.retain(|m| !conflicts.contains(m));

    let mut text = String::from("Impossible package selection");
    if !missing.is_empty() || !conflicts.is_empty() {
        text.push(':');
    }
    let join = |s: &BTreeSet<String>| s.iter().map(String::as_str).collect::<Vec<_>>().join(", ");
    if !missing.is_empty() {
        text.push_str(&format!(" missing ({})", join(&missing)));
    }
    if !conflicts.is_empty() {
        text.push_str(&format!(" conflicts ({})", join(&conflicts)));
    }
    text
}

/// Hand-written equivalents of the reference's regular expressions (the
/// crate has no regex engine). Each function states the pattern it mirrors,
/// including its backtracking quirks, since the texts must come out the same.
mod errscan {
    /// Length of the run of non-space characters at the start of `s`
    /// (`[^ ]+`; note that newlines are part of the run).
    fn nonspace_len(s: &str) -> usize {
        s.find(' ').unwrap_or(s.len())
    }

    /// `[^ ]+\.` after a literal: the longest non-space run that ends in a
    /// dot, capture without the dot.
    fn token_before_last_dot(s: &str) -> Option<(&str, usize)> {
        let run = &s[..nonspace_len(s)];
        let dot = run.rfind('.')?;
        (dot > 0).then(|| (&run[..dot], dot + 1))
    }

    /// All matches of `{literal}` followed by `capture(rest)`, scanned left to
    /// right without overlap, like `re.findall`.
    fn scan<'a>(
        s: &'a str,
        literal: &str,
        capture: impl Fn(&'a str) -> Option<(&'a str, usize)>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let mut pos = 0;
        while let Some(found) = s[pos..].find(literal) {
            let start = pos + found + literal.len();
            match capture(&s[start..]) {
                Some((token, consumed)) => {
                    out.push(token.to_owned());
                    pos = start + consumed;
                }
                // Retry one character further, as a regex scan would.
                None => pos += found + 1,
            }
        }
        out
    }

    /// `Cannot install package ([^ ]+)\.`
    pub fn opkg_cannot_install(s: &str) -> Vec<String> {
        scan(s, "Cannot install package ", token_before_last_dot)
    }

    /// ` ([^ ]+) \(no such package\)`
    pub fn apk_no_such_package(s: &str) -> Vec<String> {
        const TAIL: &str = " (no such package)";
        let mut out = Vec::new();
        let mut floor = 0;
        let mut pos = 0;
        while let Some(found) = s[pos..].find(TAIL) {
            let at = pos + found;
            // The token runs back to the previous space, which must exist.
            if let Some(space) = s[floor..at].rfind(' ') {
                let token = &s[floor + space + 1..at];
                if !token.is_empty() {
                    out.push(token.to_owned());
                    floor = at + TAIL.len();
                }
            }
            pos = at + TAIL.len();
        }
        out
    }

    /// `\n +([^:\n]+):\n +conflicts: ([^[]+)`
    pub fn apk_conflict_groups(s: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while let Some(found) = s[pos..].find('\n') {
            let nl = pos + found;
            match conflict_group_at(&s[nl..]) {
                Some((a, b, consumed)) => {
                    out.push((a.to_owned(), b.to_owned()));
                    pos = nl + consumed;
                }
                None => pos = nl + 1,
            }
        }
        out
    }

    fn conflict_group_at(s: &str) -> Option<(&str, &str, usize)> {
        let line1 = s.strip_prefix('\n')?;
        let spaces = line1.len() - line1.trim_start_matches(' ').len();
        if spaces == 0 {
            return None;
        }
        let end1 = line1.find(['\n', ':']).unwrap_or(line1.len());
        if !line1[end1..].starts_with(":\n") {
            return None;
        }
        // ` +` is greedy; it gives one space back only when nothing else is left.
        let name = if end1 > spaces {
            &line1[spaces..end1]
        } else if spaces >= 2 {
            &line1[end1 - 1..end1]
        } else {
            return None;
        };
        let line2 = &line1[end1 + 2..];
        let spaces2 = line2.len() - line2.trim_start_matches(' ').len();
        if spaces2 == 0 {
            return None;
        }
        let rest = line2[spaces2..].strip_prefix("conflicts: ")?;
        let len = rest.find('[').unwrap_or(rest.len());
        if len == 0 {
            return None;
        }
        let consumed = s.len() - rest.len() + len;
        Some((name, &rest[..len], consumed))
    }

    /// `check_data_file_clashes: Package ([^ ]+) wants to`
    pub fn opkg_file_clash(s: &str) -> Vec<String> {
        scan(s, "check_data_file_clashes: Package ", |rest| {
            let len = nonspace_len(rest);
            (len > 0 && rest[len..].starts_with(" wants to"))
                .then(|| (&rest[..len], len + " wants to".len()))
        })
    }

    /// `is already provided by package  \* ([^ ]+)$` (multiline): the
    /// longest non-space prefix that ends at a line end.
    pub fn opkg_already_provided(s: &str) -> Vec<String> {
        scan(s, "is already provided by package  * ", |rest| {
            let run = &rest[..nonspace_len(rest)];
            let len = if run.len() == rest.len() {
                run.len()
            } else {
                run.rfind('\n')?
            };
            (len > 0).then(|| (&rest[..len], len))
        })
    }

    /// `\* check_conflicts_for:.+ ([^ ]+)(?: \*|:)$` (multiline): the
    /// greedy `.+` stays on the line, so the rightmost workable space wins.
    pub fn opkg_check_conflicts(s: &str) -> Vec<String> {
        scan(s, "* check_conflicts_for:", |rest| {
            let line_len = rest.find('\n').unwrap_or(rest.len());
            let spaces: Vec<usize> = rest[..line_len]
                .char_indices()
                .filter(|&(i, c)| c == ' ' && i > 0)
                .map(|(i, _)| i)
                .collect();
            for &space in spaces.iter().rev() {
                let after = &rest[space + 1..];
                let run = nonspace_len(after);
                for len in (1..=run).rev() {
                    if !after.is_char_boundary(len) {
                        continue;
                    }
                    let tail = &after[len..];
                    let at_eol = |t: &str| t.is_empty() || t.starts_with('\n');
                    let used = if tail.starts_with(" *") && at_eol(&tail[2..]) {
                        2
                    } else if tail.starts_with(':') && at_eol(&tail[1..]) {
                        1
                    } else {
                        continue;
                    };
                    return Some((&after[..len], space + 1 + len + used));
                }
            }
            None
        })
    }

    /// `ERROR: ([^ ]+): trying to overwrite`
    pub fn apk_overwrite_owner_first(s: &str) -> Vec<String> {
        scan(s, "ERROR: ", |rest| {
            let run = &rest[..nonspace_len(rest)];
            let name = run.strip_suffix(':')?;
            (!name.is_empty() && rest[run.len()..].starts_with(" trying to overwrite"))
                .then(|| (name, run.len() + " trying to overwrite".len()))
        })
    }

    /// `trying to overwrite .* owned by ([^ ]+)\.`: `.*` stays on the line
    /// and is greedy, so the rightmost workable ` owned by ` wins.
    pub fn apk_overwrite_owned_by(s: &str) -> Vec<String> {
        const MID: &str = " owned by ";
        scan(s, "trying to overwrite ", |rest| {
            let line_len = rest.find('\n').unwrap_or(rest.len());
            let mut starts: Vec<usize> = rest[..line_len]
                .match_indices(MID)
                .map(|(i, _)| i)
                .collect();
            starts.reverse();
            starts.into_iter().find_map(|i| {
                let after = &rest[i + MID.len()..];
                token_before_last_dot(after).map(|(tok, used)| (tok, i + MID.len() + used))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }
    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn diff_packages_matches_the_reference() {
        assert_eq!(
            diff_packages(&list(&["test1"]), &set(&["test1", "test2"])),
            ["-test2", "test1"]
        );
        assert_eq!(
            diff_packages(&list(&["test1"]), &set(&["test1"])),
            ["test1"]
        );
        assert_eq!(
            diff_packages(&list(&["test1"]), &set(&["test2", "test3"])),
            ["-test2", "-test3", "test1"]
        );
        assert_eq!(
            diff_packages(&list(&["test1"]), &set(&["test2", "-test3"])),
            ["-test2", "-test3", "test1"]
        );
        assert_eq!(
            diff_packages(&list(&["z", "x"]), &set(&["x", "y", "z"])),
            ["-y", "z", "x"]
        );
        assert_eq!(
            diff_packages(&list(&["x", "z"]), &set(&["x", "y", "z"])),
            ["-y", "x", "z"]
        );
        assert_eq!(
            diff_packages(&list(&["z", "y"]), &set(&["x", "y", "z"])),
            ["-x", "z", "y"]
        );
        assert_eq!(
            diff_packages(&list(&["y", "z"]), &set(&["x", "y", "z"])),
            ["-x", "y", "z"]
        );
    }

    #[test]
    fn hashes_match_the_reference() {
        assert_eq!(
            packages_hash(["test1", "test2"]),
            "57aab5949a36e66b535a8cb13e39e9e093181c9000c016990d7be9eb86a9b9e8"
        );
        assert_eq!(
            packages_hash(["+test2", "test1", "test2"]),
            packages_hash(["test1", "test2"])
        );
    }

    #[test]
    fn manifests_opkg_and_apk() {
        let want = json!({"test": "1.0", "test2": "2.0", "test3": "3.0", "test4": "3.0"});
        let opkg = parse_manifest("test - 1.0\ntest2 - 2.0\ntest3 - 3.0\ntest4 - 3.0\n");
        assert_eq!(Value::Object(opkg), want);
        let apk = parse_manifest("test 1.0\ntest2 2.0\ntest3 3.0\ntest4 3.0\n");
        assert_eq!(Value::Object(apk), want);
    }

    #[test]
    fn manifest_fixtures() {
        let opkg = parse_manifest(include_str!(
            "../../tests/fixtures/imagebuilder/manifest-opkg.txt"
        ));
        assert_eq!(opkg["busybox"], "1.36.1-1");
        assert_eq!(
            opkg["kernel"],
            "5.15.167-1-7a5c0f5e1a2b3c4d5e6f708192a3b4c5"
        );
        assert_eq!(opkg.keys().next().unwrap(), "base-files");
        let apk = parse_manifest(include_str!(
            "../../tests/fixtures/imagebuilder/manifest-apk.txt"
        ));
        assert_eq!(apk["base-files"], "1667~d2f6a9fca5-r1");
        assert_eq!(apk.len(), 39);
    }

    #[test]
    fn manifest_garbage_does_not_panic() {
        assert!(parse_manifest("").is_empty());
        assert_eq!(parse_manifest("noversion\nname 1\n\n").len(), 1);
    }

    #[test]
    fn check_manifest_texts() {
        let m = json!({"test": "1.0"});
        let m = m.as_object().unwrap();
        assert_eq!(
            check_manifest(m, json!({"test": "1.0"}).as_object().unwrap()),
            None
        );
        assert_eq!(
            check_manifest(m, json!({"test": "2.0"}).as_object().unwrap()).unwrap(),
            "Impossible package selection: test version not as requested: 2.0 vs. 1.0"
        );
        assert_eq!(
            check_manifest(m, json!({"test2": "1.0"}).as_object().unwrap()).unwrap(),
            "Impossible package selection: test2 not in manifest"
        );
    }

    /// The reference's docstring, which its own test feeds in whole.
    const DOCSTRING: &str = r#"
    Note that this docstring is used as the test case, see tests/test_util.py

    opkg error formats:

    Case opkg-1
        Collected errors:
         * opkg_install_cmd: Cannot install package OPKG-MISSING.

    Case opkg-2
        Collected errors:
         * check_conflicts_for: The following packages conflict with OPKG-CONFLICT-1:
         * check_conflicts_for:         OPKG-CONFLICT-2 *
         * opkg_install_cmd: Cannot install package OPKG-CONFLICT-1.

    Case opkg-3
        Collected errors:
         * check_data_file_clashes: Package OPKG-CONFLICT-3 wants to install file /some/file
                But that file is already provided by package  * OPKG-CONFLICT-4
         * opkg_install_cmd: Cannot install package OPKG-CONFLICT-4.

    apk error formats:

    Case apk-1
        ERROR: unable to select packages:
          APK-MISSING (no such package):
            required by: world[APK-MISSING]

    Case apk-2
        ERROR: unable to select packages:
          APK-CONFLICT-1:
            conflicts: APK-CONFLICT-2[nftables=1.1.6-r1]
            satisfies: world[nftables-json]
                       blah[nftables]
          APK-CONFLICT-2:
            conflicts: APK-CONFLICT-1[nftables=1.1.6-r1]
            satisfies: world[nftables-nojson]

    Case apk-3
        ERROR: APK-CONFLICT-3: trying to overwrite somefile owned by APK-CONFLICT-4.
    "#;

    #[test]
    fn package_errors_match_the_reference_test() {
        assert_eq!(
            check_package_errors("hello world"),
            "Impossible package selection"
        );
        assert_eq!(
            check_package_errors(" * opkg_install_cmd: Cannot install package OPKG-MISSING."),
            "Impossible package selection: missing (OPKG-MISSING)"
        );
        assert_eq!(
            check_package_errors(DOCSTRING),
            "Impossible package selection: missing (APK-MISSING, OPKG-MISSING) conflicts \
             (APK-CONFLICT-1, APK-CONFLICT-2, APK-CONFLICT-3, APK-CONFLICT-4, \
             OPKG-CONFLICT-1, OPKG-CONFLICT-2, OPKG-CONFLICT-3, OPKG-CONFLICT-4)"
        );
    }

    #[test]
    fn package_error_fixtures() {
        let cases = [
            (
                include_str!("../../tests/fixtures/imagebuilder/error-opkg-missing.txt"),
                "missing (missing-pkg)",
            ),
            (
                include_str!("../../tests/fixtures/imagebuilder/error-apk-missing.txt"),
                "missing (missing-pkg)",
            ),
            (
                include_str!("../../tests/fixtures/imagebuilder/error-opkg-conflict.txt"),
                "conflicts (conflict-pkg, dnsmasq)",
            ),
            (
                include_str!("../../tests/fixtures/imagebuilder/error-opkg-clash.txt"),
                "conflicts (conflict-pkg, dnsmasq)",
            ),
            (
                include_str!("../../tests/fixtures/imagebuilder/error-apk-conflict.txt"),
                "conflicts (conflict-pkg, dnsmasq)",
            ),
            (
                include_str!("../../tests/fixtures/imagebuilder/error-apk-overwrite.txt"),
                "conflicts (conflict-pkg, dnsmasq)",
            ),
        ];
        for (stderr, want) in cases {
            assert_eq!(
                check_package_errors(stderr),
                format!("Impossible package selection: {want}")
            );
        }
    }

    #[test]
    fn regex_quirks_are_kept() {
        // Versioned apk names keep their version, like the reference.
        assert_eq!(
            check_package_errors("ERROR: a-1.0-r1: trying to overwrite x owned by b-2.0-r1.\n"),
            "Impossible package selection: conflicts (a-1.0-r1, b-2.0-r1)"
        );
        // `.+` needs one character, so a lone leading space cannot split.
        assert!(errscan::opkg_check_conflicts(" * check_conflicts_for: x\tY *\n").is_empty());
        // A tab before the name is part of the token for opkg-2 (no space split).
        assert_eq!(
            errscan::opkg_check_conflicts(" * check_conflicts_for: a x\tY *\n"),
            ["x\tY"]
        );
        // No space before the token: no match.
        assert!(errscan::apk_no_such_package("X (no such package)").is_empty());
        // Multi-byte text never panics.
        let _ = check_package_errors("* check_conflicts_for: ä ö ü:\nCannot install package é.");
    }

    #[test]
    fn storage_errors() {
        assert!(exceeds_storage(include_str!(
            "../../tests/fixtures/imagebuilder/error-too-big.txt"
        )));
        assert!(exceeds_storage(include_str!(
            "../../tests/fixtures/imagebuilder/error-out-of-space.txt"
        )));
        assert!(!exceeds_storage(include_str!(
            "../../tests/fixtures/imagebuilder/error-opkg-missing.txt"
        )));
    }
}
