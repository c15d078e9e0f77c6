//! Package lists: diffing against defaults, the packages hash, manifests,
//! and the classification of package manager errors.

use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// The reference's `get_packages_hash` (shared with the request hash).
pub use crate::hash::packages_hash;

/// The image's default packages in `make info` order: the target's
/// defaults, then the profile's own that are not among them.
pub fn image_defaults(target_defaults: &[String], profile_packages: &[String]) -> Vec<String> {
    let mut all = target_defaults.to_vec();
    all.extend(
        profile_packages
            .iter()
            .filter(|p| !target_defaults.contains(p))
            .cloned(),
    );
    all
}

/// `PACKAGES=` of the build: the requested packages as they are, or with
/// `diff_packages` the diff against the image defaults.
pub fn build_packages(requested: Vec<String>, defaults: &[String], diff: bool) -> Vec<String> {
    if diff {
        let defaults: BTreeSet<String> = defaults.iter().cloned().collect();
        diff_packages(&requested, &defaults)
    } else {
        requested
    }
}

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
/// Lines without a separator are skipped (the reference would crash;
/// docs/compatibility.md).
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
    use errscan::ErrorPattern::*;
    let mut missing: BTreeSet<String> = BTreeSet::new();
    missing.extend(OpkgCannotInstall.names(stderr));
    missing.extend(ApkNoSuchPackage.names(stderr));

    // apk reports conflicts in pairs; both sides count.
    let mut conflicts: BTreeSet<String> = BTreeSet::new();
    conflicts.extend(ApkConflictGroups.names(stderr));
    for pattern in [
        OpkgFileClash,
        OpkgAlreadyProvided,
        OpkgCheckConflicts,
        ApkOverwriteOwnerFirst,
        ApkOverwriteOwnedBy,
    ] {
        conflicts.extend(pattern.names(stderr));
    }

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

/// The reference's package-error patterns, verbatim, with the flags it
/// passes to Python's `re.findall`. Python's `re` and the `regex` crate
/// agree on everything these patterns use (leftmost-first matches, the
/// captures a backtracking engine would pick, `.` never crossing a newline,
/// `$` before every `\n` in multi-line mode); the vectors in
/// `tests/fixtures/patterns/package-errors.json` come from Python itself.
mod errscan {
    use regex::{Regex, RegexBuilder};
    use std::sync::LazyLock;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum ErrorPattern {
        /// opkg: a package that does not exist (or conflicts).
        OpkgCannotInstall,
        /// apk: a package that does not exist.
        ApkNoSuchPackage,
        /// apk: a conflicting pair, both captured.
        ApkConflictGroups,
        OpkgFileClash,
        OpkgAlreadyProvided,
        OpkgCheckConflicts,
        ApkOverwriteOwnerFirst,
        ApkOverwriteOwnedBy,
    }

    /// A pattern with Python's `MULTILINE` and `DOTALL` flags.
    struct Source {
        pattern: &'static str,
        multi_line: bool,
        dot_all: bool,
    }

    impl ErrorPattern {
        pub const ALL: [ErrorPattern; 8] = [
            ErrorPattern::OpkgCannotInstall,
            ErrorPattern::ApkNoSuchPackage,
            ErrorPattern::ApkConflictGroups,
            ErrorPattern::OpkgFileClash,
            ErrorPattern::OpkgAlreadyProvided,
            ErrorPattern::OpkgCheckConflicts,
            ErrorPattern::ApkOverwriteOwnerFirst,
            ErrorPattern::ApkOverwriteOwnedBy,
        ];

        fn source(self) -> Source {
            let (pattern, multi_line, dot_all) = match self {
                ErrorPattern::OpkgCannotInstall => {
                    (r"Cannot install package ([^ ]+)\.", false, false)
                }
                ErrorPattern::ApkNoSuchPackage => (r" ([^ ]+) \(no such package\)", false, false),
                // The reference writes `[^[]`; the regex crate wants the `[`
                // escaped inside a class. Same set of characters.
                ErrorPattern::ApkConflictGroups => {
                    (r"\n +([^:\n]+):\n +conflicts: ([^\[]+)", false, true)
                }
                ErrorPattern::OpkgFileClash => (
                    r"check_data_file_clashes: Package ([^ ]+) wants to",
                    false,
                    false,
                ),
                ErrorPattern::OpkgAlreadyProvided => {
                    (r"is already provided by package  \* ([^ ]+)$", true, false)
                }
                ErrorPattern::OpkgCheckConflicts => {
                    (r"\* check_conflicts_for:.+ ([^ ]+)(?: \*|:)$", true, false)
                }
                ErrorPattern::ApkOverwriteOwnerFirst => {
                    (r"ERROR: ([^ ]+): trying to overwrite", false, false)
                }
                ErrorPattern::ApkOverwriteOwnedBy => {
                    (r"trying to overwrite .* owned by ([^ ]+)\.", false, false)
                }
            };
            Source {
                pattern,
                multi_line,
                dot_all,
            }
        }

        fn regex(self) -> &'static Regex {
            // Compiled once for the process, on first use.
            static COMPILED: LazyLock<Vec<Regex>> = LazyLock::new(|| {
                ErrorPattern::ALL
                    .iter()
                    .map(|p| {
                        let s = p.source();
                        RegexBuilder::new(s.pattern)
                            .multi_line(s.multi_line)
                            .dot_matches_new_line(s.dot_all)
                            .build()
                            .expect("the package error patterns are valid regexes")
                    })
                    .collect()
            });
            &COMPILED[self as usize]
        }

        /// `re.findall`: every group of every non-overlapping match.
        pub fn findall(self, text: &str) -> Vec<Vec<String>> {
            self.regex()
                .captures_iter(text)
                .map(|c| {
                    c.iter()
                        .skip(1)
                        .map(|g| g.map_or_else(String::new, |m| m.as_str().to_owned()))
                        .collect()
                })
                .collect()
        }

        /// The package names the pattern reports, in order of appearance.
        pub fn names(self, text: &str) -> Vec<String> {
            self.findall(text).into_iter().flatten().collect()
        }

        #[cfg(test)]
        pub fn pattern(self) -> &'static str {
            self.source().pattern
        }
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
    fn defaults_keep_make_info_order_and_diff_only_when_asked() {
        let defaults = image_defaults(&list(&["base", "b", "a"]), &list(&["z", "a", "-y"]));
        assert_eq!(defaults, ["base", "b", "a", "z", "-y"]);
        assert_eq!(
            build_packages(list(&["vim", "a"]), &defaults, true),
            ["-b", "-base", "-y", "-z", "vim", "a"]
        );
        assert_eq!(
            build_packages(list(&["vim", "a"]), &defaults, false),
            ["vim", "a"]
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

    /// Every vector Python's `re.findall` answered for the reference's
    /// patterns (`tests/fixtures/patterns/generate.py`).
    #[test]
    fn error_patterns_find_what_python_finds() {
        use errscan::ErrorPattern::{self, *};
        let fixture: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/patterns/package-errors.json"
        ))
        .unwrap();
        let name = |p: ErrorPattern| match p {
            OpkgCannotInstall => "opkg_cannot_install",
            ApkNoSuchPackage => "apk_no_such_package",
            ApkConflictGroups => "apk_conflict_groups",
            OpkgFileClash => "opkg_file_clash",
            OpkgAlreadyProvided => "opkg_already_provided",
            OpkgCheckConflicts => "opkg_check_conflicts",
            ApkOverwriteOwnerFirst => "apk_overwrite_owner_first",
            ApkOverwriteOwnedBy => "apk_overwrite_owned_by",
        };
        for p in ErrorPattern::ALL {
            let reference = fixture["patterns"][name(p)]["pattern"].as_str().unwrap();
            // Verbatim but for the one escape the regex crate requires.
            assert_eq!(
                reference,
                p.pattern().replace(r"[^\[]", "[^[]"),
                "{}",
                name(p)
            );
        }
        let vectors = fixture["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 30, "{}", vectors.len());
        let mut found = 0;
        for v in vectors {
            let input = v["input"].as_str().unwrap();
            for p in ErrorPattern::ALL {
                let want: Vec<Vec<String>> =
                    serde_json::from_value(v["findall"][name(p)].clone()).unwrap();
                found += want.len();
                assert_eq!(p.findall(input), want, "{} on {}", name(p), v["name"]);
            }
        }
        assert!(found >= 30, "the vectors exercise the patterns: {found}");
    }

    #[test]
    fn regex_quirks_are_kept() {
        // Versioned apk names keep their version, like the reference.
        assert_eq!(
            check_package_errors("ERROR: a-1.0-r1: trying to overwrite x owned by b-2.0-r1.\n"),
            "Impossible package selection: conflicts (a-1.0-r1, b-2.0-r1)"
        );
        // `.+` needs one character, so a lone leading space cannot split.
        use errscan::ErrorPattern::*;
        assert!(
            OpkgCheckConflicts
                .names(" * check_conflicts_for: x\tY *\n")
                .is_empty()
        );
        // A tab before the name is part of the token for opkg-2 (no space split).
        assert_eq!(
            OpkgCheckConflicts.names(" * check_conflicts_for: a x\tY *\n"),
            ["x\tY"]
        );
        // No space before the token: no match.
        assert!(ApkNoSuchPackage.names("X (no such package)").is_empty());
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
