//! Signing with the build key named by `build_key_path`.

mod common;

use asu_builder::builder::{BuildJob, Progress, run_build};
use asu_builder::config::Config;
use asu_builder::models::{BuildRequest, Phase};
use common::fake_runtime::{self, Call, FakeRuntime};
use sha2::{Digest, Sha256};
use std::sync::Mutex;

struct Phases(Mutex<Vec<Phase>>);

impl Progress for Phases {
    fn phase(&self, phase: Phase) {
        self.0.lock().unwrap().push(phase);
    }
}

#[test]
fn images_are_signed_and_checksums_match_the_stored_files() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key-build");
    std::fs::write(&key, "untrusted comment: secret\nRWRCSwAAAA\n").unwrap();
    std::fs::write(dir.path().join("key-build.ucert"), "cert").unwrap();
    let config = Config {
        build_key_path: Some(key.clone()),
        ..Config::default()
    };

    let rt = FakeRuntime::new();
    let job = BuildJob {
        request_hash: "ab".repeat(32),
        request: BuildRequest {
            version: "1.2.3".into(),
            target: "testtarget/testsubtarget".into(),
            profile: "testprofile".into(),
            packages: vec!["vim".into()],
            ..BuildRequest::default()
        },
        bin_dir: "cd".repeat(32),
        store_dir: dir.path().join("store"),
        staging_dir: dir.path().join("staging"),
    };
    let phases = Phases(Mutex::new(Vec::new()));
    let s = run_build(&config, &rt, "w", &job, &phases).expect("build");

    assert!(phases.0.lock().unwrap().contains(&Phase::SigningImages));
    let stored = std::fs::read(job.store_dir.join(fake_runtime::SYSUPGRADE_IMAGE)).unwrap();
    assert!(
        stored.ends_with(fake_runtime::FAKE_SIGNATURE),
        "image was signed before copy-out"
    );
    let kernel = std::fs::read(job.store_dir.join(fake_runtime::KERNEL_IMAGE)).unwrap();
    assert!(
        !kernel.ends_with(fake_runtime::FAKE_SIGNATURE),
        "kernels are not signed"
    );

    let sum: String = Sha256::digest(&stored)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(s.result["images"][0]["sha256"], sum.as_str());
    // sha256_unsigned stays the ImageBuilder's: the image before signing.
    let unsigned = &stored[..stored.len() - fake_runtime::FAKE_SIGNATURE.len()];
    assert_eq!(
        s.result["images"][0]["sha256_unsigned"],
        fake_runtime::sha256_hex(unsigned).as_str()
    );
    assert_ne!(
        s.result["images"][0]["sha256"],
        s.result["images"][0]["sha256_unsigned"]
    );

    // The key went to the container, outside BIN_DIR, and signing ran as root.
    assert_eq!(
        rt.uploaded("/builder/.asu-sign/key-build").as_deref(),
        Some("untrusted comment: secret\nRWRCSwAAAA\n")
    );
    assert!(!job.store_dir.join("key-build").exists());
    let sign = rt
        .calls()
        .into_iter()
        .find_map(|c| match c {
            Call::Exec { req, .. } if req.cmd.len() > 2 && req.cmd[2].contains("usign") => {
                Some(req)
            }
            _ => None,
        })
        .expect("signing exec");
    assert_eq!(sign.user.as_deref(), Some("root"));
    assert_eq!(&sign.cmd[4..], [fake_runtime::SYSUPGRADE_IMAGE]);
    assert!(rt.live_containers().is_empty());
}

#[test]
fn without_build_key_path_nothing_is_signed() {
    let dir = tempfile::tempdir().unwrap();
    let rt = FakeRuntime::new();
    let job = BuildJob {
        request_hash: "ab".repeat(32),
        request: BuildRequest {
            version: "1.2.3".into(),
            target: "testtarget/testsubtarget".into(),
            profile: "testprofile".into(),
            ..BuildRequest::default()
        },
        bin_dir: "cd".repeat(32),
        store_dir: dir.path().join("store"),
        staging_dir: dir.path().join("staging"),
    };
    let phases = Phases(Mutex::new(Vec::new()));
    let s = run_build(&Config::default(), &rt, "w", &job, &phases).expect("build");
    assert!(!phases.0.lock().unwrap().contains(&Phase::SigningImages));
    assert!(rt.uploaded("/builder/.asu-sign/key-build").is_none());
    let stored = std::fs::read(job.store_dir.join(fake_runtime::SYSUPGRADE_IMAGE)).unwrap();
    assert!(!stored.ends_with(fake_runtime::FAKE_SIGNATURE));
    let sum: String = Sha256::digest(&stored)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(s.result["images"][0]["sha256"], sum.as_str());
}
