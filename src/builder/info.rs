//! Parsing `make info` output of an ImageBuilder.

/// What the pipeline needs from `make info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageBuilderInfo {
    /// `Current Revision`, e.g. `r24106-10cc5fcd00`.
    pub revision: String,
    /// `Default Packages`, in output order without duplicates.
    pub default_packages: Vec<String>,
    /// The requested profile's `Packages` (may hold removals like `-swconfig`).
    pub profile_packages: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfoError {
    NoRevision,
    NoDefaultPackages,
    ProfileNotFound(String),
}

impl std::fmt::Display for InfoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InfoError::NoRevision => write!(f, "Could not find the revision in ImageBuilder info"),
            InfoError::NoDefaultPackages => {
                write!(f, "Could not find default packages in ImageBuilder info")
            }
            InfoError::ProfileNotFound(p) => {
                write!(f, "Could not find profile {p} in ImageBuilder info")
            }
        }
    }
}

fn unique_words(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in s.split_whitespace() {
        if !out.iter().any(|o| o == w) {
            out.push(w.to_owned());
        }
    }
    out
}

/// `Current Revision: "(r.+)"`: from the `r` to the last quote on the line.
fn revision(stdout: &str) -> Option<String> {
    const KEY: &str = "Current Revision: \"r";
    let mut rest = stdout;
    while let Some(pos) = rest.find(KEY) {
        let after = &rest[pos + KEY.len() - 1..];
        let line = after.split('\n').next().unwrap_or("");
        if let Some(end) = line.rfind('"')
            && end > 1
        {
            return Some(line[..end].to_owned());
        }
        rest = &rest[pos + 1..];
    }
    None
}

/// `Default Packages: (.*)\n`.
fn default_packages(stdout: &str) -> Option<Vec<String>> {
    const KEY: &str = "Default Packages: ";
    let pos = stdout.find(KEY)?;
    let line = &stdout[pos + KEY.len()..];
    // The reference requires the line to be newline-terminated.
    let end = line.find('\n')?;
    Some(unique_words(&line[..end]))
}

/// The `Packages:` line of the block that starts with the line `{profile}:`.
/// Unlike the reference's unanchored regex this never matches the tail of a
/// longer profile name (`foo_testprofile:`; docs/compatibility.md).
fn profile_packages(stdout: &str, profile: &str) -> Option<Vec<String>> {
    let header = format!("{profile}:");
    let lines: Vec<&str> = stdout.lines().collect();
    for (i, _) in lines.iter().enumerate().filter(|(_, l)| **l == header) {
        // Indented lines belong to this profile; the title comes first.
        for line in &lines[i + 1..] {
            let Some(body) = line.strip_prefix("    ") else {
                break;
            };
            if let Some(pkgs) = body.strip_prefix("Packages: ") {
                return Some(unique_words(pkgs));
            }
            if body == "Packages:" {
                return Some(Vec::new());
            }
        }
    }
    None
}

pub fn parse_info(stdout: &str, profile: &str) -> Result<ImageBuilderInfo, InfoError> {
    Ok(ImageBuilderInfo {
        revision: revision(stdout).ok_or(InfoError::NoRevision)?,
        default_packages: default_packages(stdout).ok_or(InfoError::NoDefaultPackages)?,
        profile_packages: profile_packages(stdout, profile)
            .ok_or_else(|| InfoError::ProfileNotFound(profile.to_owned()))?,
    })
}

/// `None` when the revision is acceptable, else the reference's error text.
pub fn check_revision(got: &str, requested: &str) -> Option<String> {
    (!requested.is_empty() && got != requested)
        .then(|| format!("Received incorrect version {got} (requested {requested})"))
}

/// Numeric part of `r12345-abcdef`, for revision-dependent package rules.
pub fn revision_number(revision: &str) -> Option<u64> {
    let digits = revision.strip_prefix('r')?.split('-').next()?;
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = include_str!("../../tests/fixtures/imagebuilder/info.txt");
    const INFO_APK: &str = include_str!("../../tests/fixtures/imagebuilder/info-apk.txt");

    #[test]
    fn parses_the_opkg_sample() {
        let info = parse_info(INFO, "testprofile").unwrap();
        assert_eq!(info.revision, "r15666-8019c54d8a");
        assert_eq!(info.default_packages.len(), 30);
        assert_eq!(info.default_packages[0], "base-files");
        assert!(info.default_packages.contains(&"ppp-mod-pppoe".to_owned()));
        assert_eq!(
            info.profile_packages,
            [
                "kmod-bnx2",
                "kmod-e1000e",
                "kmod-e1000",
                "kmod-forcedeth",
                "kmod-igb",
                "kmod-ixgbe",
                "kmod-r8169"
            ]
        );
        let other = parse_info(INFO, "8dev_carambola2").unwrap();
        assert_eq!(other.profile_packages, ["kmod-usb2", "kmod-usb-chipidea2"]);
    }

    #[test]
    fn parses_the_apk_sample() {
        let info = parse_info(INFO_APK, "generic").unwrap();
        assert!(info.default_packages.contains(&"apk-mbedtls".to_owned()));
        assert_eq!(info.profile_packages.len(), 12);
        assert_eq!(info.profile_packages[11], "kmod-drm-i915");
    }

    #[test]
    fn reference_sample_with_removals() {
        let stdout = "Current Target: \"testtarget/testsubtarget\"\n\
            Current Revision: \"r12647-cb44ab4f5d\"\n\
            Default Packages: base-files libc swconfig\n\
            Available Profiles:\n\n\
            testprofile:\n    Testprofile\n    Packages: kmod-usb2 -swconfig\n    hasImageMetadata: 1\n";
        let info = parse_info(stdout, "testprofile").unwrap();
        assert_eq!(info.revision, "r12647-cb44ab4f5d");
        assert_eq!(info.profile_packages, ["kmod-usb2", "-swconfig"]);
    }

    #[test]
    fn profile_is_matched_as_a_whole_line() {
        let stdout = "Current Revision: \"r1-a\"\nDefault Packages: a\n\
            foo_bar:\n    Foo\n    Packages: wrong\nbar:\n    Bar\n    Packages: right\n";
        assert_eq!(
            parse_info(stdout, "bar").unwrap().profile_packages,
            ["right"]
        );
        assert_eq!(
            parse_info(stdout, "baz"),
            Err(InfoError::ProfileNotFound("baz".into()))
        );
    }

    #[test]
    fn profile_without_title_or_packages() {
        let stdout = "Current Revision: \"r1-a\"\nDefault Packages: a\n\
            bare:\n    Packages: x y x\n    hasImageMetadata: 0\nnone:\n    None\n";
        assert_eq!(
            parse_info(stdout, "bare").unwrap().profile_packages,
            ["x", "y"]
        );
        assert!(parse_info(stdout, "none").is_err());
    }

    #[test]
    fn missing_pieces_are_errors_not_panics() {
        assert_eq!(parse_info("", "p"), Err(InfoError::NoRevision));
        assert_eq!(
            parse_info("Current Revision: \"r1-x\"\n", "p"),
            Err(InfoError::NoDefaultPackages)
        );
        // Revision must start with `r`, as in the reference regex.
        assert_eq!(revision("Current Revision: \"x1\"\n"), None);
        assert_eq!(
            revision("Current Revision: \"r1-\"a\"\n").as_deref(),
            Some("r1-\"a")
        );
    }

    #[test]
    fn revision_check_text() {
        assert_eq!(check_revision("r1-a", ""), None);
        assert_eq!(check_revision("r1-a", "r1-a"), None);
        assert_eq!(
            check_revision("r2-b", "r1-a").unwrap(),
            "Received incorrect version r2-b (requested r1-a)"
        );
        assert_eq!(revision_number("r24106-10cc5fcd00"), Some(24106));
        assert_eq!(revision_number("garbage"), None);
    }
}
