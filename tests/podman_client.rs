//! The Podman client against a real podman service.
//!
//! One private service (own storage, config, network configs and socket in a
//! temp dir) is started through `tests/podman/service.sh` for the whole test
//! binary, with the fake ImageBuilder image built into it. The service stops
//! by itself when this process exits (`--owner`). Never skipped: when podman
//! cannot be started, every test fails with the harness's message.

mod common;

use common::podman_service::{self, run_script, start_service};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use asu_builder::container::podman::Podman;
use asu_builder::container::{
    ContainerError, ContainerRuntime, ContainerSpec, ExecRequest, FileToPut, ImageOrigin,
    LABEL_JOB, LABEL_SERVICE,
};
use sha2::{Digest, Sha256};

const IMAGE: &str = podman_service::IMAGE_RELEASE;
const NETWORK: &str = "asu-test-client";

fn podman() -> Podman {
    Podman::new(&podman_service::shared().socket).with_pull_timeout(Duration::from_secs(30))
}

/// A unique container name per call, so parallel tests never collide.
fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "asu-test-{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn spec(name: &str) -> ContainerSpec {
    ContainerSpec {
        name: name.to_string(),
        image: IMAGE.to_string(),
        command: vec!["sleep".into(), "300".into()],
        env: BTreeMap::from([("FOO".into(), "bar baz".into())]),
        labels: BTreeMap::from([
            (LABEL_SERVICE.into(), "test".into()),
            (LABEL_JOB.into(), name.to_string()),
        ]),
        tmpfs: vec!["/builder/out".into()],
        network: None,
        timeout_seconds: 600,
    }
}

/// A started container, removed on drop (also when the test fails).
struct Running<'a> {
    p: &'a Podman,
    id: String,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let _ = self.p.remove(&self.id);
    }
}

fn run<'a>(p: &'a Podman, spec: &ContainerSpec) -> Running<'a> {
    p.ensure_image(IMAGE).expect("image");
    let id = p.create(spec).expect("create");
    let c = Running { p, id };
    p.start(&c.id).expect("start");
    c
}

fn sh(p: &Podman, id: &str, script: &str) -> (i64, String, String) {
    let out = p
        .exec(
            id,
            &ExecRequest {
                cmd: vec!["sh".into(), "-c".into(), script.into()],
                ..Default::default()
            },
        )
        .expect("exec");
    (out.exit_code, out.stdout, out.stderr)
}

#[test]
fn ping_answers_with_the_version() {
    let p = podman();
    let v = p.ping().expect("ping");
    assert!(v.chars().next().is_some_and(|c| c.is_ascii_digit()), "{v}");
    let n = 200;
    let started = Instant::now();
    for _ in 0..n {
        p.ping().expect("ping");
    }
    eprintln!(
        "ping: {v}, mean latency over {n} pooled calls: {:?}",
        started.elapsed() / n
    );
}

#[test]
fn ensure_image_falls_back_to_the_local_image() {
    let p = podman();
    // No registry is reachable (or it does not know the tag): the stored
    // fake image must be used, and said so.
    assert_eq!(
        p.ensure_image(IMAGE).expect("ensure_image"),
        ImageOrigin::LocalFallback
    );
    match p.ensure_image("ghcr.io/openwrt/imagebuilder:no-such-target-v0.0.0") {
        Err(ContainerError::ImageMissing { image, reason }) => {
            assert!(image.ends_with("no-such-target-v0.0.0"));
            assert!(!reason.is_empty());
        }
        other => panic!("expected ImageMissing, got {other:?}"),
    }
}

#[test]
fn containers_run_without_capabilities_and_privileges() {
    let p = podman();
    let c = run(&p, &spec(&unique("caps")));
    let (code, out, _) = sh(
        &p,
        &c.id,
        "grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/self/status; id -un; pwd; echo \"$FOO\"",
    );
    assert_eq!(code, 0);
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("CapPrm:\t0000000000000000"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("\nbuildbot\n/builder\nbar baz\n"), "{out}");

    // Even as root inside, nothing is granted.
    let out = p
        .exec(
            &c.id,
            &ExecRequest {
                cmd: vec!["grep".into(), "CapEff".into(), "/proc/self/status".into()],
                user: Some("root".into()),
                ..Default::default()
            },
        )
        .expect("exec as root");
    assert_eq!(out.stdout.trim(), "CapEff:\t0000000000000000");

    // network: None → loopback only; init runs as PID 1.
    let (_, out, _) = sh(&p, &c.id, "ls /sys/class/net; cat /proc/1/comm");
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words[0], "lo", "{out}");
    // catatonit, mounted as /run/podman-init
    assert!(
        matches!(words[1..], ["podman-init"] | ["catatonit"]),
        "{out}"
    );
}

#[test]
fn bridge_network_is_created_and_attached() {
    let p = podman();
    p.ensure_network(NETWORK).expect("ensure_network");
    p.ensure_network(NETWORK).expect("ensure_network twice");
    let mut s = spec(&unique("net"));
    s.network = Some(NETWORK.into());
    let c = run(&p, &s);
    let (code, out, err) = sh(&p, &c.id, "ip -4 -o addr show scope global");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("inet "),
        "no IPv4 address on the bridge: {out}"
    );
}

#[test]
fn exec_demultiplexes_output_and_reports_the_exit_code() {
    let p = podman();
    let c = run(&p, &spec(&unique("exec")));
    let (code, out, err) = sh(&p, &c.id, "echo out1; echo err1 >&2; echo out2; exit 3");
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (3, "out1\nout2\n", "err1\n")
    );

    let out = p
        .exec(
            &c.id,
            &ExecRequest {
                cmd: vec!["sh".into(), "-c".into(), "pwd; echo \"$X\"".into()],
                env: vec![("X".into(), "from exec".into())],
                workdir: Some("/tmp".into()),
                user: None,
            },
        )
        .expect("exec");
    assert_eq!(out.stdout, "/tmp\nfrom exec\n");

    let out = p
        .exec(
            &c.id,
            &ExecRequest {
                cmd: vec!["/no/such/binary".into()],
                ..Default::default()
            },
        )
        .expect("exec of a missing binary still answers");
    assert_ne!(out.exit_code, 0);

    // The fake ImageBuilder answers like the real one.
    let out = p
        .exec(
            &c.id,
            &ExecRequest {
                cmd: vec!["make".into(), "info".into()],
                ..Default::default()
            },
        )
        .expect("make info");
    assert_eq!(out.exit_code, 0);
    assert!(
        out.stdout.contains("Current Revision: \"r12345-abcdef\""),
        "{}",
        out.stdout
    );

    // Round-trip time of a trivial exec (create + start + stream + inspect).
    let n = 20;
    let started = Instant::now();
    for _ in 0..n {
        assert_eq!(sh(&p, &c.id, "true").0, 0);
    }
    eprintln!("exec round trip: {:?} mean over {n}", started.elapsed() / n);
}

#[test]
fn exec_output_is_capped_keeping_the_tail() {
    let p = podman().with_exec_output_cap(1000);
    let c = run(&p, &spec(&unique("cap")));
    let (code, out, err) = sh(&p, &c.id, "seq 1 5000; echo last line >&2");
    assert_eq!(code, 0);
    assert!(out.starts_with("[... "), "{}", &out[..60.min(out.len())]);
    assert!(out.ends_with("4999\n5000\n"));
    assert!(out.len() < 1100);
    assert_eq!(err, "last line\n");
}

#[test]
fn put_files_then_read_them_back() {
    let p = podman();
    let c = run(&p, &spec(&unique("put")));
    let files = vec![
        FileToPut {
            path: "asu-files/etc/uci-defaults/99-asu-defaults".into(),
            data: b"uci set system.@system[0].hostname='x'\n".to_vec(),
            mode: 0o755,
        },
        FileToPut {
            path: "keys/custom-0.pem".into(),
            data: b"-----BEGIN PUBLIC KEY-----\n".to_vec(),
            mode: 0o644,
        },
    ];
    p.put_files(&c.id, "/builder/up", &files)
        .expect("put_files");
    let (code, out, err) = sh(
        &p,
        &c.id,
        "cd /builder/up && cat asu-files/etc/uci-defaults/99-asu-defaults keys/custom-0.pem \
         && stat -c '%a %U' asu-files/etc/uci-defaults/99-asu-defaults keys/custom-0.pem",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "uci set system.@system[0].hostname='x'\n-----BEGIN PUBLIC KEY-----\n755 buildbot\n644 buildbot\n"
    );
    let bad = [FileToPut {
        path: "../escape".into(),
        data: vec![],
        mode: 0o644,
    }];
    assert!(matches!(
        p.put_files(&c.id, "/builder/up", &bad),
        Err(ContainerError::UnsafeArchive(_))
    ));
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn copy_out_extracts_the_directory_contents() {
    let p = podman();
    let c = run(&p, &spec(&unique("copy")));
    let (code, out, err) = sh(
        &p,
        &c.id,
        "cd /builder/out && mkdir -p sub/deeper && echo '{\"profiles\":{}}' > profiles.json \
         && head -c 3000000 /dev/urandom > a.bin && echo nested > sub/deeper/n.txt \
         && ln -s a.bin link.bin && sha256sum a.bin profiles.json sub/deeper/n.txt",
    );
    assert_eq!(code, 0, "{err}");
    let dest = tempfile::tempdir().unwrap();
    let target = dest.path().join("store/abc");
    let n = p
        .copy_out(&c.id, "/builder/out/", &target)
        .expect("copy_out");

    let mut total = 0u64;
    for line in out.lines() {
        let (sum, name) = line.split_once("  ").unwrap();
        let data = std::fs::read(target.join(name)).unwrap();
        assert_eq!(sha256_hex(&data), sum, "{name}");
        total += data.len() as u64;
    }
    assert_eq!(n, total, "bytes written");
    assert_eq!(
        std::fs::read_link(target.join("link.bin")).unwrap(),
        Path::new("a.bin")
    );
    // The contents, not a top-level "out" directory.
    assert!(!target.join("out").exists());

    // Missing source directory: an API error, nothing created.
    match p.copy_out(&c.id, "/builder/nope", &dest.path().join("x")) {
        Err(ContainerError::Api { status: 404, .. }) => {}
        other => panic!("expected 404, got {other:?}"),
    }
}

#[test]
fn copy_out_refuses_a_symlink_leaving_the_directory() {
    let p = podman();
    let c = run(&p, &spec(&unique("evil")));
    let (code, _, err) = sh(
        &p,
        &c.id,
        "cd /builder/out && echo ok > a.txt && ln -s /etc/passwd passwd && ln -s ../../etc up",
    );
    assert_eq!(code, 0, "{err}");
    let dest = tempfile::tempdir().unwrap();
    match p.copy_out(&c.id, "/builder/out", dest.path()) {
        Err(ContainerError::UnsafeArchive(m)) => assert!(m.contains("leaves"), "{m}"),
        other => panic!("expected UnsafeArchive, got {other:?}"),
    }
    // Nothing outside dest was touched and no link into the host exists.
    for name in ["passwd", "up"] {
        assert!(
            std::fs::symlink_metadata(dest.path().join(name)).is_err(),
            "{name}"
        );
    }
}

/// A 256 MiB file arrives whole. How much memory streaming it costs is
/// measured where it means something: the daemon's own RSS, in
/// `podman_e2e.rs` (this process runs other tests in parallel).
#[test]
fn copy_out_writes_large_files_whole() {
    let p = podman();
    let c = run(&p, &spec(&unique("big")));
    let (code, _, err) = sh(
        &p,
        &c.id,
        "dd if=/dev/zero of=/builder/out/big.bin bs=1M count=256 2>/dev/null",
    );
    assert_eq!(code, 0, "{err}");
    let dest = tempfile::tempdir().unwrap();
    let n = p
        .copy_out(&c.id, "/builder/out", dest.path())
        .expect("copy_out");
    assert_eq!(n, 256 << 20);
    assert_eq!(
        std::fs::metadata(dest.path().join("big.bin"))
            .unwrap()
            .len(),
        256 << 20
    );
}

#[test]
fn kill_and_remove_are_idempotent() {
    let p = podman();
    let c = run(&p, &spec(&unique("kill")));
    p.kill(&c.id).expect("kill running");
    p.kill(&c.id).expect("kill stopped");
    p.remove(&c.id).expect("remove");
    p.remove(&c.id).expect("remove again");
    p.kill(&c.id).expect("kill removed");
    match p.start(&c.id) {
        Err(ContainerError::Api { status: 404, .. }) => {}
        other => panic!("start of a removed container: {other:?}"),
    }
}

#[test]
fn list_by_label_finds_our_containers_in_any_state() {
    let p = podman();
    p.ensure_image(IMAGE).expect("image");
    let job = unique("job");
    let mut ids = Vec::new();
    let mut guards = Vec::new();
    for i in 0..2 {
        let mut s = spec(&format!("{job}-{i}"));
        s.labels.insert(LABEL_JOB.into(), job.clone());
        let id = p.create(&s).expect("create");
        guards.push(Running {
            p: &p,
            id: id.clone(),
        });
        ids.push(id);
    }
    p.start(&ids[0]).expect("start");
    let mut found = p
        .list_by_label(&format!("{LABEL_JOB}={job}"))
        .expect("list");
    found.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].id, ids[0]);
    assert_eq!(found[0].name, format!("{job}-0"));
    assert_eq!(found[0].state, "running");
    assert_eq!(found[1].state, "created");
    assert_eq!(
        found[1].labels.get(LABEL_SERVICE).map(String::as_str),
        Some("test")
    );
    // Key-only labels match too; an unknown value matches nothing.
    assert!(p.list_by_label(LABEL_SERVICE).expect("list").len() >= 2);
    assert!(
        p.list_by_label(&format!("{LABEL_JOB}=nothing-{job}"))
            .expect("list")
            .is_empty()
    );
}

#[test]
fn container_timeout_kills_a_running_command() {
    let p = podman();
    let mut s = spec(&unique("timeout"));
    s.timeout_seconds = 2;
    let c = run(&p, &s);
    // An exec busy when the timeout hits ends too, instead of hanging.
    let started = Instant::now();
    let out = p
        .exec(
            &c.id,
            &ExecRequest {
                cmd: vec!["sleep".into(), "60".into()],
                ..Default::default()
            },
        )
        .expect("exec");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_ne!(out.exit_code, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = p
            .list_by_label(&format!("{LABEL_JOB}={}", s.name))
            .expect("list")
            .first()
            .map(|c| c.state.clone())
            .unwrap_or_default();
        if state == "exited" || state == "stopped" {
            break;
        }
        assert!(Instant::now() < deadline, "still {state} after its timeout");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn unreachable_sockets_give_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sock");
    match Podman::new(&missing).ping() {
        Err(ContainerError::Unreachable { socket, .. }) => {
            assert_eq!(socket, missing.display().to_string())
        }
        other => panic!("{other:?}"),
    }
    // A socket file nobody listens on: connection refused.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let e = Podman::new(&stale).list_by_label("x").unwrap_err();
    assert!(matches!(e, ContainerError::Unreachable { .. }), "{e:?}");
    assert!(e.is_retryable());
}

#[test]
fn pooled_connections_recover_after_a_service_restart() {
    let s = start_service().unwrap_or_else(|e| panic!("second service: {e}"));
    let d = s.dir.to_str().unwrap().to_string();
    let p = Podman::new(&s.socket);
    p.ping().expect("ping before");
    p.ping().expect("ping pooled");
    run_script(&["stop", &d]).unwrap();
    assert!(matches!(p.ping(), Err(ContainerError::Unreachable { .. })));
    run_script(&["start", &d]).unwrap();
    p.ping().expect("ping after restart");
    p.list_by_label(LABEL_SERVICE).expect("list after restart");
    run_script(&["stop", &d]).unwrap();
}

#[test]
fn fake_imagebuilder_builds_consistent_output() {
    let p = podman();
    let c = run(&p, &spec(&unique("fakeib")));
    let make = |args: &[&str]| {
        let mut cmd = vec!["make".to_string()];
        cmd.extend(args.iter().map(|s| s.to_string()));
        p.exec(
            &c.id,
            &ExecRequest {
                cmd,
                ..Default::default()
            },
        )
        .expect("exec make")
    };
    let info = make(&["info"]);
    assert_eq!(info.exit_code, 0);
    for line in [
        "Current Target: \"testtarget/testsubtarget\"",
        "Current Architecture: \"testarch\"",
        "Current Revision: \"r12345-abcdef\"",
        "Available Profiles:",
        "\ntestprofile:\n    Testprofile\n    Packages: ",
        "\ngeneric:\n",
    ] {
        assert!(
            info.stdout.contains(line),
            "{line:?} missing in\n{}",
            info.stdout
        );
    }

    let manifest = make(&[
        "manifest",
        "PROFILE=testprofile",
        "PACKAGES=vim -dnsmasq",
        "STRIP_ABI=1",
    ]);
    assert_eq!(manifest.exit_code, 0, "{}", manifest.stderr);
    assert!(
        manifest.stdout.lines().any(|l| l.starts_with("vim - ")),
        "{}",
        manifest.stdout
    );
    assert!(!manifest.stdout.lines().any(|l| l.starts_with("dnsmasq - ")));

    let missing = make(&[
        "manifest",
        "PROFILE=testprofile",
        "PACKAGES=missing-pkg-opkg",
    ]);
    assert_eq!(missing.exit_code, 2);
    assert!(
        missing
            .stderr
            .contains("Cannot install package missing-pkg-opkg."),
        "{}",
        missing.stderr
    );
    let unknown = make(&["nonsense"]);
    assert_eq!(unknown.exit_code, 2);
    assert_eq!(
        unknown.stderr,
        "make: *** No rule to make target 'nonsense'.  Stop.\n"
    );
    let too_big = make(&[
        "image",
        "PROFILE=testprofile",
        "PACKAGES=too-big-pkg",
        "BIN_DIR=/builder/out",
    ]);
    assert_ne!(too_big.exit_code, 0);
    assert!(too_big.stderr.contains("is too big"), "{}", too_big.stderr);

    let defaults = "uci set system.@system[0].hostname='fake'\n";
    p.put_files(
        &c.id,
        "/builder/asu-files",
        &[FileToPut {
            path: "etc/uci-defaults/99-asu-defaults".into(),
            data: defaults.as_bytes().to_vec(),
            mode: 0o644,
        }],
    )
    .expect("put defaults");
    let image = make(&[
        "image",
        "PROFILE=testprofile",
        "PACKAGES=vim",
        "EXTRA_IMAGE_NAME=0123456789ab",
        "BIN_DIR=/builder/out",
        "FILES=/builder/asu-files",
        "ROOTFS_PARTSIZE=256",
    ]);
    assert_eq!(image.exit_code, 0, "{}", image.stderr);

    let dest = tempfile::tempdir().unwrap();
    p.copy_out(&c.id, "/builder/out", dest.path())
        .expect("copy_out");
    let profiles: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.path().join("profiles.json")).unwrap()).unwrap();
    let images = profiles["profiles"]["testprofile"]["images"]
        .as_array()
        .unwrap();
    assert_eq!(images.len(), 2, "{images:?}");
    for img in images {
        let name = img["name"].as_str().unwrap();
        let data = std::fs::read(dest.path().join(name)).unwrap();
        assert_eq!(img["sha256"].as_str().unwrap(), sha256_hex(&data), "{name}");
    }
    let sysupgrade = images.iter().find(|i| i["type"] == "sysupgrade").unwrap();
    assert_eq!(
        sysupgrade["name"],
        "openwrt-1.2.3-0123456789ab-testtarget-testsubtarget-testprofile-squashfs-sysupgrade.bin"
    );
    let firmware =
        std::fs::read_to_string(dest.path().join(sysupgrade["name"].as_str().unwrap())).unwrap();
    assert!(firmware.contains(defaults), "{firmware}");
    assert!(firmware.contains("rootfs_partsize=256\n"));
    assert!(
        firmware.contains(" vim\n") || firmware.contains(" vim "),
        "{firmware}"
    );
    assert_eq!(profiles["version_code"], "r12345-abcdef");
}
