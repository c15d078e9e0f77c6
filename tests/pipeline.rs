//! `run_build` driven through `FakeRuntime`: result shape, every failure's
//! client-visible text (byte-identical to the reference server), container
//! cleanup on every path, and what is placed in and run inside the
//! container.

mod common;

use asu_builder::builder::{
    BuildFailure, BuildJob, BuildSuccess, FailureKind, Progress, run_build,
};
use asu_builder::config::Config;
use asu_builder::container::ContainerRuntime;
use asu_builder::models::{BuildRequest, Phase};
use common::fake_runtime::{self, FakeRuntime};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

const JOB_HASH: &str = "1111111111111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const BIN_DIR: &str = "2222222222222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const IMAGE: &str = "ghcr.io/openwrt/imagebuilder:testtarget-testsubtarget-v1.2.3";

#[derive(Default)]
struct Phases {
    seen: Mutex<Vec<Phase>>,
    on_phase: Option<Box<dyn Fn(Phase) + Send + Sync>>,
}

impl Progress for Phases {
    fn phase(&self, phase: Phase) {
        self.seen.lock().unwrap().push(phase);
        if let Some(f) = &self.on_phase {
            f(phase);
        }
    }
}

fn config() -> Config {
    Config {
        repository_allow_list: vec!["https://example.com".into()],
        ..Config::default()
    }
}

fn request() -> BuildRequest {
    BuildRequest {
        version: "1.2.3".into(),
        target: "testtarget/testsubtarget".into(),
        profile: "testprofile".into(),
        packages: vec!["vim".into()],
        ..BuildRequest::default()
    }
}

struct Run {
    _dir: tempfile::TempDir,
    job: BuildJob,
    phases: Vec<Phase>,
    outcome: Result<BuildSuccess, BuildFailure>,
}

fn run_with(rt: &FakeRuntime, config: &Config, req: BuildRequest, progress: Phases) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let job = BuildJob {
        request_hash: JOB_HASH.into(),
        request: req,
        bin_dir: BIN_DIR.into(),
        store_dir: dir.path().join("store").join(BIN_DIR),
        staging_dir: dir.path().join("store/.staging/w"),
    };
    let outcome = run_build(config, rt, "worker-1", &job, &progress);
    let phases = progress.seen.lock().unwrap().clone();
    Run {
        _dir: dir,
        job,
        phases,
        outcome,
    }
}

fn run(rt: &FakeRuntime, req: BuildRequest) -> Run {
    run_with(rt, &config(), req, Phases::default())
}

fn success(run: &Run) -> &BuildSuccess {
    match &run.outcome {
        Ok(s) => s,
        Err(f) => panic!("build failed: {f:?}"),
    }
}

fn failure(run: &Run) -> &BuildFailure {
    match &run.outcome {
        Ok(s) => panic!("build succeeded: {:?}", s.result),
        Err(f) => f,
    }
}

/// Every container the runtime created was removed again.
fn assert_cleaned_up(rt: &FakeRuntime) {
    assert!(
        rt.live_containers().is_empty(),
        "left behind: {:?}",
        rt.live_containers()
    );
}

fn sha256_file(path: &std::path::Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn manifest_packages(rt: &FakeRuntime) -> String {
    rt.exec_starting_with(&["make", "manifest"])
        .expect("make manifest ran")[3]
        .clone()
}

#[test]
fn success_result_has_the_reference_shape() {
    let rt = FakeRuntime::new();
    let r = run(&rt, request());
    let s = success(&r);
    let keys: Vec<&str> = s.result.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "arch_packages",
            "default_packages",
            "linux_kernel",
            "metadata_version",
            "source_date_epoch",
            "target",
            "version_code",
            "version_number",
            "manifest",
            "device_packages",
            "image_prefix",
            "images",
            "supported_devices",
            "titles",
            "id",
            "bin_dir",
            "build_cmd_packages",
            "build_at",
            "detail"
        ]
    );
    assert_eq!(s.result["id"], "testprofile");
    assert_eq!(s.result["bin_dir"], BIN_DIR);
    assert_eq!(s.result["build_cmd_packages"], json!(["vim"]));
    assert_eq!(s.result["build_at"], "2024-09-23T12:34:46.000000Z");
    assert_eq!(s.result["detail"], "done");
    assert_eq!(s.result["manifest"]["vim"], "1.0-1");
    assert_eq!(s.result["manifest"]["busybox"], "1.36.1-1");
    assert_eq!(s.result["version_code"], fake_runtime::REVISION);

    // build_cmd is exactly what ran, with the packages hash of the manifest.
    let ran = rt.exec_starting_with(&["make", "image"]).unwrap();
    assert_eq!(s.build_cmd, ran);
    assert_eq!(
        &s.build_cmd[..4],
        ["make", "image", "PROFILE=testprofile", "PACKAGES=vim"]
    );
    let names: Vec<&str> = s.result["manifest"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let hash = asu_builder::builder::packages::packages_hash(names);
    assert_eq!(s.build_cmd[4], format!("EXTRA_IMAGE_NAME={}", &hash[..12]));
    assert_eq!(s.build_cmd[5], format!("BIN_DIR=/builder/{BIN_DIR}"));
    assert_eq!(s.build_cmd.len(), 6);
    assert_eq!(
        manifest_packages(&rt),
        "PACKAGES=vim",
        "make manifest gets the same packages"
    );
    assert!(s.stdout.contains("Building images for testtarget"));

    // Images: stored, and the checksum is the stored file's.
    let image = &s.result["images"][0];
    assert_eq!(image["name"], fake_runtime::SYSUPGRADE_IMAGE);
    let stored = r.job.store_dir.join(fake_runtime::SYSUPGRADE_IMAGE);
    assert_eq!(image["sha256"], sha256_file(&stored).as_str());
    // Unsigned, the ImageBuilder's own checksum is the stored file's too.
    assert_eq!(image["sha256_unsigned"], sha256_file(&stored).as_str());
    assert!(r.job.store_dir.join("profiles.json").is_file());

    assert_eq!(
        r.phases,
        [
            Phase::Init,
            Phase::ContainerSetup,
            Phase::ValidateRevision,
            Phase::ValidateManifest,
            Phase::BuildingImage,
            Phase::Done
        ]
    );
    assert_cleaned_up(&rt);
}

#[test]
fn container_is_created_as_specified() {
    let rt = FakeRuntime::new();
    let r = run(&rt, request());
    success(&r);
    let calls = rt.calls();
    assert_eq!(calls[0], fake_runtime::Call::EnsureImage(IMAGE.into()));
    assert_eq!(
        calls[1],
        fake_runtime::Call::EnsureNetwork("asu-build".into())
    );
    let spec = &rt.created()[0];
    assert_eq!(spec.name, "asu-1111111111111111-worker-1");
    assert_eq!(spec.image, IMAGE);
    assert_eq!(spec.command, ["sleep", "600"]);
    assert_eq!(spec.tmpfs, [format!("/builder/{BIN_DIR}")]);
    assert_eq!(spec.labels["asu.builder"], "1");
    assert_eq!(spec.labels["asu.worker"], "worker-1");
    assert_eq!(spec.labels["asu.job"], JOB_HASH);
    assert!(spec.env.is_empty(), "releases need no setup.sh");
    assert_eq!(rt.execs()[0], ["make", "info"]);
    let copy = calls
        .iter()
        .find_map(|c| match c {
            fake_runtime::Call::CopyOut { src_dir, dest, .. } => {
                Some((src_dir.clone(), dest.clone()))
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(
        copy,
        (format!("/builder/{BIN_DIR}"), r.job.staging_dir.clone())
    );
    // Nothing was uploaded for a plain request.
    assert!(rt.put_files().is_empty());
    assert_eq!(rt.removed().len(), 1);
}

#[test]
fn apk_imagebuilder_success() {
    let rt = FakeRuntime::new_apk();
    let r = run(&rt, request());
    let s = success(&r);
    assert_eq!(s.result["manifest"]["vim"], "1.0-r1");
    assert_eq!(s.result["manifest"]["apk-mbedtls"], "3.0.0_pre20250123-r2");
    assert_cleaned_up(&rt);
}

#[test]
fn snapshot_runs_setup_sh_with_its_environment() {
    let rt = FakeRuntime::new();
    let mut req = request();
    req.version = "SNAPSHOT".into();
    let r = run(&rt, req);
    success(&r);
    let spec = &rt.created()[0];
    assert_eq!(
        spec.image,
        "ghcr.io/openwrt/imagebuilder:testtarget-testsubtarget-master"
    );
    assert_eq!(spec.env["TARGET"], "testtarget/testsubtarget");
    assert_eq!(spec.env["VERSION_PATH"], "snapshots");
    assert_eq!(rt.execs()[0], ["sh", "setup.sh"]);
    assert_eq!(rt.execs()[1], ["make", "info"]);
}

fn assert_user_failure(r: &Run, rt: &FakeRuntime, detail: &str) {
    let f = failure(r);
    assert_eq!(f.kind, FailureKind::Permanent, "{f:?}");
    assert_eq!(f.detail, detail);
    assert_cleaned_up(rt);
}

#[test]
fn missing_package_opkg_and_apk() {
    for rt in [FakeRuntime::new(), FakeRuntime::new_apk()] {
        let mut req = request();
        req.packages = vec!["vim".into(), "missing-pkg".into()];
        let r = run(&rt, req);
        assert_user_failure(
            &r,
            &rt,
            "Error: Impossible package selection: missing (missing-pkg)",
        );
        let f = failure(&r);
        assert!(
            f.stderr.contains("missing-pkg"),
            "stderr of make manifest is kept"
        );
        assert!(f.build_cmd.is_empty());
        assert!(rt.exec_starting_with(&["make", "image"]).is_none());
        assert!(!r.job.store_dir.exists());
    }
}

#[test]
fn conflicting_package_opkg_and_apk() {
    for rt in [FakeRuntime::new(), FakeRuntime::new_apk()] {
        let mut req = request();
        req.packages = vec!["conflict-pkg".into()];
        let r = run(&rt, req);
        assert_user_failure(
            &r,
            &rt,
            "Error: Impossible package selection: conflicts (conflict-pkg, dnsmasq)",
        );
    }
}

#[test]
fn too_big_is_reported_even_with_exit_code_zero() {
    let rt = FakeRuntime::new();
    let mut req = request();
    req.packages = vec!["too-big-pkg".into()];
    let r = run(&rt, req);
    assert_user_failure(&r, &rt, "Error: Selected packages exceed device storage");
    let f = failure(&r);
    assert_eq!(&f.build_cmd[..2], ["make", "image"]);
    assert!(f.stderr.contains("is too big"));
}

#[test]
fn wrong_revision() {
    let rt = FakeRuntime::new();
    rt.wrong_revision.store(true, Ordering::SeqCst);
    let mut req = request();
    req.version_code = fake_runtime::REVISION.into();
    let r = run(&rt, req.clone());
    assert_user_failure(
        &r,
        &rt,
        "Error: Received incorrect version r99999-0000000000 (requested r15666-8019c54d8a)",
    );
    assert!(
        failure(&r).stdout.contains("Current Revision"),
        "make info output is kept"
    );

    // The right revision builds; no version_code skips the check.
    rt.wrong_revision.store(false, Ordering::SeqCst);
    success(&run(&rt, req));
    rt.wrong_revision.store(true, Ordering::SeqCst);
    success(&run(&rt, request()));
}

#[test]
fn packages_versions_are_checked_against_the_manifest() {
    let rt = FakeRuntime::new();
    let mut req = request();
    req.packages_versions = json!({"busybox": "9.9"}).as_object().unwrap().clone();
    let r = run(&rt, req.clone());
    assert_user_failure(
        &r,
        &rt,
        "Error: Impossible package selection: busybox version not as requested: 9.9 vs. 1.36.1-1",
    );
    req.packages_versions = json!({"nope": "1"}).as_object().unwrap().clone();
    assert_user_failure(
        &run(&rt, req.clone()),
        &rt,
        "Error: Impossible package selection: nope not in manifest",
    );
    req.packages_versions = json!({"busybox": "1.36.1-1"}).as_object().unwrap().clone();
    success(&run(&rt, req));
}

#[test]
fn missing_image_is_a_user_failure() {
    let rt = FakeRuntime::new();
    rt.image_missing.store(true, Ordering::SeqCst);
    let r = run(&rt, request());
    assert_user_failure(
        &r,
        &rt,
        "Error: Image not found: ghcr.io/openwrt/imagebuilder:testtarget-testsubtarget-v1.2.3. \
         If this version was just released, please try again in a few hours as it may take \
         some time to become fully available.",
    );
    assert!(rt.created().is_empty());
    assert_eq!(r.phases, [Phase::Init, Phase::ContainerSetup]);
}

#[test]
fn unreachable_runtime_is_an_infrastructure_failure() {
    let rt = FakeRuntime::new();
    rt.set_unreachable(true);
    let r = run(&rt, request());
    let f = failure(&r);
    assert_eq!(f.kind, FailureKind::RuntimeLost);
    assert!(f.detail.starts_with("Error: "), "{}", f.detail);
    assert!(f.detail.contains("unreachable"), "{}", f.detail);
    assert!(rt.created().is_empty());
}

#[test]
fn runtime_lost_mid_build_still_attempts_removal() {
    let rt = std::sync::Arc::new(FakeRuntime::new());
    let rt2 = rt.clone();
    let progress = Phases {
        on_phase: Some(Box::new(move |p| {
            if p == Phase::ValidateManifest {
                rt2.set_unreachable(true);
            }
        })),
        ..Phases::default()
    };
    let r = run_with(&rt, &config(), request(), progress);
    let f = failure(&r);
    assert_eq!(f.kind, FailureKind::RuntimeLost);
    assert!(f.detail.contains("make manifest"), "{}", f.detail);
    let created = rt.containers();
    assert_eq!(
        rt.removed(),
        [created[0].id.clone()],
        "removal was attempted"
    );
    rt.set_unreachable(false);
}

#[test]
fn killed_container_is_an_infrastructure_failure() {
    let rt = FakeRuntime::new();
    rt.kill_make_image.store(true, Ordering::SeqCst);
    let r = run(&rt, request());
    let f = failure(&r);
    assert_eq!(f.kind, FailureKind::Retryable);
    assert!(f.detail.contains("killed"), "{}", f.detail);
    assert_cleaned_up(&rt);
}

#[test]
fn killing_a_slow_build_ends_it() {
    let rt = std::sync::Arc::new(FakeRuntime::new());
    rt.set_slow(Duration::from_secs(30));
    let killer = {
        let rt = rt.clone();
        std::thread::spawn(move || {
            // Kill as the worker would on timeout, once make image runs.
            for _ in 0..500 {
                if rt.exec_starting_with(&["make", "image"]).is_some() {
                    let id = rt.live_containers()[0].clone();
                    rt.kill(&id).unwrap();
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let mut req = request();
    req.packages = vec!["slow-pkg".into()];
    let started = std::time::Instant::now();
    let r = run(&rt, req);
    killer.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    let f = failure(&r);
    assert_eq!(f.kind, FailureKind::Retryable);
    assert!(f.detail.contains("killed"), "{}", f.detail);
    assert_cleaned_up(&rt);
}

#[test]
fn defaults_script_and_files_argument() {
    let rt = FakeRuntime::new();
    let mut req = request();
    req.defaults = Some("uci set system.@system[0].hostname=asu\n".into());
    let r = run(&rt, req);
    let s = success(&r);
    assert_eq!(
        rt.uploaded("/builder/asu-files/etc/uci-defaults/99-asu-defaults")
            .as_deref(),
        Some("uci set system.@system[0].hostname=asu\n")
    );
    assert_eq!(s.build_cmd[6], "FILES=/builder/asu-files");

    // Empty defaults: nothing uploaded, no FILES.
    let rt = FakeRuntime::new();
    let mut req = request();
    req.defaults = Some(String::new());
    let r = run(&rt, req);
    assert!(
        !success(&r)
            .build_cmd
            .iter()
            .any(|a| a.starts_with("FILES="))
    );
    assert!(rt.put_files().is_empty());
}

#[test]
fn rootfs_size_and_filesystem_arguments() {
    let rt = FakeRuntime::new();
    let mut req = request();
    req.rootfs_size_mb = Some(512);
    req.filesystem = Some("ext4".into());
    let r = run(&rt, req);
    assert_eq!(
        &success(&r).build_cmd[6..],
        ["ROOTFS_PARTSIZE=512", "ROOTFS_FILESYSTEM=ext4"]
    );
}

#[test]
fn diff_packages_command_line() {
    let rt = FakeRuntime::new();
    let defaults: Vec<String> = {
        let line = fake_runtime::INFO
            .lines()
            .find(|l| l.starts_with("Default Packages: "))
            .unwrap();
        line["Default Packages: ".len()..]
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let mut req = request();
    req.diff_packages = true;
    // Everything but ppp, ppp-mod-pppoe and the profile's kmod-r8169, plus vim.
    req.packages = defaults
        .iter()
        .filter(|p| !p.starts_with("ppp"))
        .cloned()
        .chain(
            [
                "kmod-bnx2",
                "kmod-e1000e",
                "kmod-e1000",
                "kmod-forcedeth",
                "kmod-igb",
                "kmod-ixgbe",
                "vim",
            ]
            .map(String::from),
        )
        .collect();
    let r = run(&rt, req.clone());
    let s = success(&r);
    let mut want = vec![
        "-kmod-r8169".to_string(),
        "-ppp".into(),
        "-ppp-mod-pppoe".into(),
    ];
    want.extend(req.packages.iter().cloned());
    assert_eq!(
        manifest_packages(&rt),
        format!("PACKAGES={}", want.join(" "))
    );
    assert_eq!(s.build_cmd[3], format!("PACKAGES={}", want.join(" ")));
    assert_eq!(s.result["build_cmd_packages"], json!(want));
    assert!(s.result["manifest"].get("ppp").is_none());

    // Without diff_packages the list goes through untouched.
    let rt = FakeRuntime::new();
    req.diff_packages = false;
    success(&run(&rt, req.clone()));
    assert_eq!(
        manifest_packages(&rt),
        format!("PACKAGES={}", req.packages.join(" "))
    );
}

#[test]
fn builtin_package_changes_are_applied_before_the_diff() {
    let rt = FakeRuntime::new();
    let mut req = request();
    req.version = "24.10.0".into();
    req.packages = vec![
        "auc".into(),
        "luci-i18n-base-en".into(),
        "luci-i18n-opkg-de".into(),
    ];
    let r = run(&rt, req);
    let s = success(&r);
    assert_eq!(
        manifest_packages(&rt),
        "PACKAGES=luci-i18n-package-manager-de owut"
    );
    assert_eq!(
        s.result["build_cmd_packages"],
        json!(["luci-i18n-package-manager-de", "owut"])
    );
}

fn repo_request(mode: &str) -> BuildRequest {
    let mut req = request();
    req.repositories = json!({
        "zcustom": "https://example.com/custom/packages",
        "acustom": "https://example.com/other",
        "evil": "https://evil.example.org/x"
    })
    .as_object()
    .unwrap()
    .clone();
    req.repositories_mode = mode.into();
    req
}

#[test]
fn opkg_repositories_replace_and_append() {
    let rt = FakeRuntime::new();
    success(&run(&rt, repo_request("replace")));
    assert_eq!(
        rt.uploaded("/builder/repositories.conf").unwrap(),
        "src/gz acustom https://example.com/other\n\
         src/gz zcustom https://example.com/custom/packages\n\
         src imagebuilder file:packages\n\
         option check_signature\n"
    );
    assert_eq!(rt.execs()[0], ["test", "-f", "/builder/repositories"]);

    let rt = FakeRuntime::new();
    success(&run(&rt, repo_request("append")));
    assert_eq!(
        rt.uploaded("/builder/repositories.conf").unwrap(),
        format!(
            "{}src/gz acustom https://example.com/other\n\
             src/gz zcustom https://example.com/custom/packages\n",
            fake_runtime::OPKG_REPOSITORIES
        )
    );
}

#[test]
fn apk_repositories_replace_and_append() {
    let rt = FakeRuntime::new_apk();
    success(&run(&rt, repo_request("replace")));
    assert_eq!(
        rt.uploaded("/builder/repositories").unwrap(),
        "https://example.com/other\nhttps://example.com/custom/packages\n"
    );
    assert!(rt.uploaded("/builder/repositories.conf").is_none());

    let rt = FakeRuntime::new_apk();
    success(&run(&rt, repo_request("append")));
    assert_eq!(
        rt.uploaded("/builder/repositories").unwrap(),
        format!(
            "{}https://example.com/other\nhttps://example.com/custom/packages\n",
            fake_runtime::APK_REPOSITORIES
        )
    );
}

#[test]
fn repository_keys_are_uploaded() {
    let rt = FakeRuntime::new();
    let usign = "RWSrHfFmlHslUcLbXFIRp+eEikWF9z1N77IJiX5Bt/nJd1a/x+L+SU89";
    let pem = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZI...\n-----END PUBLIC KEY-----\n";
    let mut req = request();
    req.repository_keys = vec![usign.into(), pem.into()];
    success(&run(&rt, req));
    assert_eq!(
        rt.uploaded("/builder/keys/ab1df166947b2551").unwrap(),
        format!("untrusted comment: ab1df166947b2551\n{usign}")
    );
    assert_eq!(rt.uploaded("/builder/keys/custom-1.pem").unwrap(), pem);
    assert_eq!(rt.put_files().len(), 2);
}

#[test]
fn cache_url_rewrites_repository_urls() {
    let rt = FakeRuntime::new();
    let config = Config {
        cache_url: "http://cache.local:3128/".into(),
        ..config()
    };
    success(&run_with(&rt, &config, request(), Phases::default()));
    assert!(rt.execs().contains(&vec![
        "sed".to_string(),
        "-i".into(),
        "s|https://|http://cache.local:3128/|g".into(),
        "repositories.conf".into()
    ]));
    let conf = String::from_utf8(rt.container_file("/builder/repositories.conf").unwrap()).unwrap();
    assert!(
        conf.starts_with(
            "src/gz openwrt_core http://cache.local:3128/downloads.openwrt.org/releases/"
        ),
        "{conf}"
    );
}

#[test]
fn other_profiles_build_too() {
    let rt = FakeRuntime::new();
    rt.add_profile("vendor_other-device");
    let mut req = request();
    req.profile = "vendor_other-device".into();
    let r = run(&rt, req);
    let s = success(&r);
    assert_eq!(s.result["id"], "vendor_other-device");
    assert_eq!(s.result["images"][0]["type"], "sysupgrade");
}

#[test]
fn leftover_container_with_the_same_name_is_replaced() {
    let rt = FakeRuntime::new();
    success(&run(&rt, request()));
    // Simulate a crashed earlier attempt: a live container with our name.
    let spec = rt.created()[0].clone();
    let stale = rt.create(&spec).unwrap();
    success(&run(&rt, request()));
    assert!(rt.removed().contains(&spec.name) || rt.removed().contains(&stale));
    assert_cleaned_up(&rt);
}

#[test]
fn remote_package_changes_are_used() {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let url = format!("http://{}", server.server_addr().to_ip().unwrap());
    let handle = std::thread::spawn(move || {
        let mut req = server.recv().unwrap();
        let mut body = String::new();
        req.as_reader().read_to_string(&mut body).unwrap();
        req.respond(tiny_http::Response::from_string(
            r#"{"packages": ["remote-pkg", "vim"]}"#,
        ))
        .unwrap();
        body
    });
    let rt = FakeRuntime::new();
    let config = Config {
        package_changes_url: url,
        ..config()
    };
    let r = run_with(&rt, &config, request(), Phases::default());
    success(&r);
    assert_eq!(manifest_packages(&rt), "PACKAGES=remote-pkg vim");
    let sent: Value = serde_json::from_str(&handle.join().unwrap()).unwrap();
    assert_eq!(sent["profile"], "testprofile");
    assert_eq!(sent["packages"], json!(["vim"]));
    assert_eq!(sent["default_packages"][0], "base-files");
    assert_eq!(sent["diff_packages"], false);
}

#[test]
fn unreachable_package_changes_service_falls_back() {
    let rt = FakeRuntime::new();
    let config = Config {
        package_changes_url: "http://127.0.0.1:9".into(),
        ..config()
    };
    let mut req = request();
    req.packages = vec!["luci-i18n-base-en".into(), "vim".into()];
    success(&run_with(&rt, &config, req, Phases::default()));
    assert_eq!(manifest_packages(&rt), "PACKAGES=vim");
}
