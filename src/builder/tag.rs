//! Which ImageBuilder container image serves a request (the reference's
//! `get_container_version_tag` and `is_snapshot_build`).

/// `x.y.z` or `x.y.z-rcN`, all parts decimal.
fn is_release(version: &str) -> bool {
    let (core, rc) = match version.split_once("-rc") {
        Some((core, rc)) => (core, Some(rc)),
        None => (version, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| digits(p)) && rc.is_none_or(digits)
}

/// Tag of the ImageBuilder image for `version`: `v1.2.3` for releases,
/// `master` for `SNAPSHOT`, `openwrt-24.10` for `24.10-SNAPSHOT`.
pub fn container_version_tag(version: &str) -> String {
    if is_release(version) {
        format!("v{version}")
    } else if version == "SNAPSHOT" {
        "master".to_owned()
    } else {
        format!(
            "openwrt-{}",
            version.strip_suffix("-SNAPSHOT").unwrap_or(version)
        )
    }
}

/// `{registry}:{target with / → -}-{tag}`.
pub fn image_name(registry: &str, target: &str, version: &str) -> String {
    format!(
        "{registry}:{}-{}",
        target.replace('/', "-"),
        container_version_tag(version)
    )
}

/// Snapshot ImageBuilder images are thin: they fetch the real ImageBuilder
/// with `setup.sh` at start (matched case-insensitively, like the reference).
pub fn is_snapshot_build(version: &str) -> bool {
    version.to_lowercase().ends_with("snapshot")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_tags_match_the_reference() {
        assert_eq!(container_version_tag("1.0.0"), "v1.0.0");
        assert_eq!(container_version_tag("SNAPSHOT"), "master");
        assert_eq!(container_version_tag("1.0.0-SNAPSHOT"), "openwrt-1.0.0");
        assert_eq!(container_version_tag("23.05.0-rc3"), "v23.05.0-rc3");
        assert_eq!(container_version_tag("SNAPP-SNAPSHOT"), "openwrt-SNAPP");
        assert_eq!(container_version_tag("24.10-SNAPSHOT"), "openwrt-24.10");
        // Not a release: a branch name without -SNAPSHOT is used as is.
        assert_eq!(container_version_tag("23.05"), "openwrt-23.05");
        assert_eq!(container_version_tag("23.05.0-rc"), "openwrt-23.05.0-rc");
    }

    #[test]
    fn image_name_replaces_the_target_slash() {
        assert_eq!(
            image_name("ghcr.io/openwrt/imagebuilder", "ath79/generic", "23.05.5"),
            "ghcr.io/openwrt/imagebuilder:ath79-generic-v23.05.5"
        );
        assert_eq!(image_name("reg", "x86/64", "SNAPSHOT"), "reg:x86-64-master");
    }

    #[test]
    fn snapshot_detection_matches_the_reference() {
        for (v, want) in [
            ("22.07.3", false),
            ("23.05.0-rc3", false),
            ("23.05.6", false),
            ("23.05-SNAPSHOT", true),
            ("24.10-SNAPSHOT", true),
            ("SNAPSHOT", true),
            ("snapshot", true),
        ] {
            assert_eq!(is_snapshot_build(v), want, "{v}");
        }
    }
}
