//! The finished-build answer for an adopted build: what a fresh build of
//! the request answers, made from the files the build left in the store
//! instead of from the ImageBuilder's output. Pure, except for the package
//! changes service a build would ask too (when `package_changes_url` is set).

use crate::builder::{self, BuildJob, changes, info, packages, result};
use crate::complete::Complete;
use crate::config::Config;
use crate::models::BuildRequest;
use serde_json::{Map, Value};

/// The stored result map and the `make image` argv a build would have run.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub result: Map<String, Value>,
    pub build_cmd: Vec<String>,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The answer for `request` (validated), whose build `complete` is.
///
/// - `manifest`: the image's manifest file, as the ImageBuilder wrote it.
/// - `build_cmd_packages`: the request's packages after package changes and
///   (with `diff_packages`) the diff against the defaults that profiles.json
///   lists, which are the ones `make info` reports.
/// - `build_cmd`: `make image …` as a build runs it; `EXTRA_IMAGE_NAME` is
///   read back from the image names the build produced when they carry it.
pub fn answer(
    config: &Config,
    request: &BuildRequest,
    bin_dir: &str,
    complete: &Complete,
) -> Result<Answer, String> {
    let profiles = &complete.profiles;
    let entry = result::profile_entry(profiles, &request.profile)
        .ok_or_else(|| "Profile not found in JSON file".to_owned())?;
    let defaults = packages::image_defaults(
        &strings(profiles.get("default_packages")),
        &strings(entry.get("device_packages")),
    );
    let revision = profiles
        .get("version_code")
        .and_then(Value::as_str)
        .unwrap_or("");
    let ctx = changes::Context {
        version: &request.version,
        target: &request.target,
        profile: &request.profile,
        revision: info::revision_number(revision),
    };
    let (requested, _) = changes::apply_package_changes(
        &config.package_changes_url,
        &ctx,
        &request.packages,
        &defaults,
        request.diff_packages,
    );
    let build_packages = packages::build_packages(requested, &defaults, request.diff_packages);
    let manifest = packages::parse_manifest(&complete.manifest);
    let job = BuildJob {
        request_hash: String::new(),
        request: request.clone(),
        bin_dir: bin_dir.to_owned(),
        store_dir: Default::default(),
        staging_dir: Default::default(),
    };
    let mut build_cmd = builder::image_cmd(&job, &build_packages, &manifest);
    let prefix = entry
        .get("image_prefix")
        .and_then(Value::as_str)
        .unwrap_or("");
    if let Some(extra) = extra_image_name(prefix, &request.target, &request.profile) {
        for arg in build_cmd.iter_mut() {
            if arg.starts_with("EXTRA_IMAGE_NAME=") {
                *arg = format!("EXTRA_IMAGE_NAME={extra}");
            }
        }
    }
    let mut result = result::build_result(
        profiles.clone(),
        &request.profile,
        manifest,
        bin_dir,
        &build_packages,
    )?;
    served_checksums(&mut result, complete);
    Ok(Answer { result, build_cmd })
}

/// `images[].sha256` of the files as they are served: an image signed
/// after the ImageBuilder differs from profiles.json's (whose
/// `sha256_unsigned` stays), as in a fresh build with a build key.
fn served_checksums(result: &mut Map<String, Value>, complete: &Complete) {
    let Some(images) = result.get_mut("images").and_then(Value::as_array_mut) else {
        return;
    };
    for image in images.iter_mut().filter_map(Value::as_object_mut) {
        let name = image.get("name").and_then(Value::as_str).unwrap_or("");
        if let Some(found) = complete.images.iter().find(|i| i.name == name) {
            image.insert("sha256".into(), found.sha256.clone().into());
        }
    }
}

/// The `EXTRA_IMAGE_NAME` a build used, read back from its image prefix
/// `openwrt-[<version>-][<revision>-]<extra>-<target>-<subtarget>-<profile>`
/// (12 hex digits right before the target). The manifest file may name
/// packages with their ABI suffix where `make manifest STRIP_ABI=1` does
/// not, so hashing it again need not give the name the build used.
pub fn extra_image_name<'a>(image_prefix: &'a str, target: &str, profile: &str) -> Option<&'a str> {
    let rest = image_prefix.strip_suffix(profile)?.strip_suffix('-')?;
    let rest = rest
        .strip_suffix(target.replace('/', "-").as_str())?
        .strip_suffix('-')?;
    let (_, extra) = rest.rsplit_once('-')?;
    (extra.len() == 12
        && extra
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    .then_some(extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::complete::Seen;
    use serde_json::json;

    fn complete(profiles: Value, manifest: &str) -> Complete {
        Complete {
            profiles: profiles.as_object().unwrap().clone(),
            manifest: manifest.into(),
            images: Vec::new(),
            seen: Seen::default(),
        }
    }

    fn profiles(prefix: &str) -> Value {
        json!({
            "default_packages": ["base-files", "busybox", "ppp"],
            "profiles": {"p1": {
                "device_packages": ["kmod-x", "busybox"],
                "image_prefix": prefix,
                "images": [{"name": "a.bin", "sha256": "00", "type": "sysupgrade"}],
                "titles": [{"title": "P1"}]
            }},
            "source_date_epoch": 1700000000,
            "target": "t/s",
            "version_code": "r100-abc",
            "version_number": "1.2.3"
        })
    }

    fn request(packages: &[&str], diff: bool) -> BuildRequest {
        BuildRequest {
            version: "1.2.3".into(),
            target: "t/s".into(),
            profile: "p1".into(),
            packages: packages.iter().map(|p| p.to_string()).collect(),
            diff_packages: diff,
            ..BuildRequest::default()
        }
    }

    #[test]
    fn the_answer_has_a_fresh_build_s_keys_and_command() {
        let c = complete(
            profiles("openwrt-1.2.3-t-s-p1"),
            "base-files - 1\nbusybox - 2\nvim - 3\n",
        );
        let a = answer(
            &Config::default(),
            &request(&["vim", "-ppp"], true),
            "bd",
            &c,
        )
        .unwrap();
        assert_eq!(a.result["id"], "p1");
        assert_eq!(a.result["bin_dir"], "bd");
        assert_eq!(a.result["manifest"]["vim"], "3");
        assert_eq!(a.result["titles"][0]["title"], "P1");
        assert_eq!(a.result["build_at"], "2023-11-14T22:13:20.000000Z");
        // Diffed against target defaults + device packages, as `make info`
        // lists them.
        let pkgs = json!(["-base-files", "-busybox", "-kmod-x", "-ppp", "vim", "-ppp"]);
        assert_eq!(a.result["build_cmd_packages"], pkgs);
        let manifest_hash = packages::packages_hash(["base-files", "busybox", "vim"]);
        assert_eq!(
            a.build_cmd,
            [
                "make".to_string(),
                "image".into(),
                "PROFILE=p1".into(),
                "PACKAGES=-base-files -busybox -kmod-x -ppp vim -ppp".into(),
                format!("EXTRA_IMAGE_NAME={}", &manifest_hash[..12]),
                "BIN_DIR=/builder/bd".into(),
            ]
        );
    }

    #[test]
    fn extra_image_name_comes_from_the_image_prefix_when_it_has_one() {
        let c = complete(
            profiles("openwrt-1.2.3-0123456789ab-t-s-p1"),
            "libubox20240329 - 1\n",
        );
        let a = answer(&Config::default(), &request(&[], false), "bd", &c).unwrap();
        assert_eq!(a.build_cmd[4], "EXTRA_IMAGE_NAME=0123456789ab");
        assert_eq!(
            extra_image_name(
                "openwrt-0123456789ab-ath79-generic-tplink_c7",
                "ath79/generic",
                "tplink_c7"
            ),
            Some("0123456789ab")
        );
        assert_eq!(
            extra_image_name(
                "openwrt-24.10-snapshot-r28000-abcdef0123-0123456789ab-x86-64-generic",
                "x86/64",
                "generic"
            ),
            Some("0123456789ab")
        );
        assert_eq!(
            extra_image_name("openwrt-1.2.3-x86-64-generic", "x86/64", "generic"),
            None
        );
        assert_eq!(
            extra_image_name(
                "openwrt-1.2.3-0123456789ab-x86-64-other",
                "x86/64",
                "generic"
            ),
            None
        );
    }

    #[test]
    fn another_profile_is_not_answered() {
        let c = complete(profiles("x"), "");
        let mut r = request(&[], false);
        r.profile = "p2".into();
        assert!(answer(&Config::default(), &r, "bd", &c).is_err());
    }
}
