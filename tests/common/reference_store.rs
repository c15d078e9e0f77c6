//! A store directory as the reference server writes it, made with the fake
//! ImageBuilder (`FakeRuntime`).
//!
//! The reference's `build.py` (openwrt/asu, since it runs the ImageBuilder
//! in Podman) computes `bin_dir` as the hash of the validated request, runs
//! `make image PROFILE=… PACKAGES=… EXTRA_IMAGE_NAME=<packages hash[:12]>
//! BIN_DIR=/builder/<bin_dir>` in the container and extracts the
//! container's `/builder/<bin_dir>` into `public/store/`, so
//! `store/<bin_dir>/` is the ImageBuilder's BIN_DIR as it was written:
//! images, `<image_prefix>.manifest`, `profiles.json`, `sha256sums`. This
//! does the same steps with the fake ImageBuilder and no server involved.

use super::fake_runtime::{FakeRuntime, manifest_text};
use asu_builder::container::{ContainerRuntime, ContainerSpec, ExecRequest};
use asu_builder::models::{BuildRequest, Limits, parse_build_request};
use std::path::{Path, PathBuf};

/// `bin_dir` of a request body that needs no validation changes (canonical
/// profile, no `+` prefixes): the hash of the request as parsed.
pub fn bin_dir_of(body: &str) -> String {
    let limits = Limits {
        max_defaults_length: 20480,
        max_custom_rootfs_size_mb: 1024,
    };
    let req: BuildRequest = parse_build_request(body.as_bytes(), limits).expect("valid request");
    asu_builder::hash::request_hash(&req)
}

/// Build `profile` with `packages` the reference's way and extract BIN_DIR
/// into `store/<bin_dir>`; returns that directory.
pub fn write(store: &Path, bin_dir: &str, profile: &str, packages: &[&str]) -> PathBuf {
    let rt = FakeRuntime::new();
    if profile != super::fake_runtime::PROFILE {
        rt.add_profile(profile);
    }
    let id = rt
        .create(&ContainerSpec {
            name: "reference-build".into(),
            image: "imagebuilder".into(),
            ..ContainerSpec::default()
        })
        .unwrap();
    rt.start(&id).unwrap();
    let packages: Vec<String> = packages.iter().map(|p| p.to_string()).collect();
    let manifest = asu_builder::builder::packages::parse_manifest(&manifest_text(false, &packages));
    let extra = asu_builder::hash::packages_hash(manifest.keys().map(String::as_str));
    let cmd = vec![
        "make".to_string(),
        "image".into(),
        format!("PROFILE={profile}"),
        format!("PACKAGES={}", packages.join(" ")),
        format!("EXTRA_IMAGE_NAME={}", &extra[..12]),
        format!("BIN_DIR=/builder/{bin_dir}"),
    ];
    let out = rt
        .exec(
            &id,
            &ExecRequest {
                cmd,
                env: Vec::new(),
                workdir: Some("/builder".into()),
                user: None,
            },
        )
        .unwrap();
    assert_eq!(out.exit_code, 0, "{}", out.stderr);
    let dest = store.join(bin_dir);
    rt.copy_out(&id, &format!("/builder/{bin_dir}"), &dest)
        .unwrap();
    rt.remove(&id).unwrap();
    dest
}
