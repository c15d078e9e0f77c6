//! `make install` / `make uninstall`: the tree a packager gets with DESTDIR
//! and PREFIX, a configuration that is never overwritten, and the systemd
//! unit checked by `systemd-analyze verify` (with the installed man page
//! for its Documentation=) and scored by `systemd-analyze security`.
//! tests/tools/install.sh installs systemd-analyze and man when missing.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_asu-builder");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn make(args: &[&str]) {
    let out = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(ROOT)
        .args(args)
        .arg(format!("BIN={BIN}"))
        .env_remove("MAKEFLAGS")
        .env_remove("MAKELEVEL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every file under `root`: relative path → mode.
fn tree(root: &Path) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, meta.permissions().mode() & 0o777);
            }
        }
    }
    out
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn install_with_destdir_and_uninstall() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest");
    let d = dest.display().to_string();
    make(&["install", &format!("DESTDIR={d}")]);
    let expected: BTreeMap<String, u32> = [
        ("etc/asu-builder/config.yaml", 0o644),
        ("usr/local/bin/asu-builder", 0o755),
        ("usr/local/lib/systemd/system/asu-builder.service", 0o644),
        (
            "usr/local/lib/systemd/system/podman.socket.d/asu-builder.conf",
            0o644,
        ),
        ("usr/local/lib/sysusers.d/asu-builder.conf", 0o644),
        ("usr/local/share/doc/asu-builder/ARCHITECTURE.md", 0o644),
        ("usr/local/share/doc/asu-builder/README.md", 0o644),
        ("usr/local/share/doc/asu-builder/compatibility.md", 0o644),
        ("usr/local/share/doc/asu-builder/config.yaml.example", 0o644),
        ("usr/local/share/man/man8/asu-builder.8", 0o644),
    ]
    .into_iter()
    .map(|(p, m)| (p.to_string(), m))
    .collect();
    assert_eq!(tree(&dest), expected);

    assert_eq!(
        read(dest.join("etc/asu-builder/config.yaml")),
        read(Path::new(ROOT).join("etc/config.yaml"))
    );
    let unit = read(dest.join("usr/local/lib/systemd/system/asu-builder.service"));
    assert!(
        unit.contains(
            "\nExecStart=/usr/local/bin/asu-builder --config /etc/asu-builder/config.yaml\n"
        ),
        "{unit}"
    );
    for line in [
        "After=network-online.target podman.socket",
        "Wants=network-online.target podman.socket",
        "StateDirectory=asu-builder",
        "ReadWritePaths=/var/lib/asu-builder",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.lines().any(|l| l == line), "unit lacks {line}");
    }
    let man = read(dest.join("usr/local/share/man/man8/asu-builder.8"));
    assert!(man.contains(".TH asu-builder 8"), "{man}");
    let installed = dest.join("usr/local/bin/asu-builder");
    let v = Command::new(&installed).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("asu-builder "));

    // An operator's configuration survives a reinstall.
    let config = dest.join("etc/asu-builder/config.yaml");
    std::fs::write(&config, "server_port: 9999\n").unwrap();
    make(&["install", &format!("DESTDIR={d}")]);
    assert_eq!(read(config.clone()), "server_port: 9999\n");

    // Uninstall removes everything but the configuration.
    make(&["uninstall", &format!("DESTDIR={d}")]);
    let left: Vec<String> = tree(&dest).into_keys().collect();
    assert_eq!(left, ["etc/asu-builder/config.yaml"]);
}

#[test]
fn packagers_use_prefix_usr() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("pkg");
    make(&[
        "install",
        &format!("DESTDIR={}", dest.display()),
        "PREFIX=/usr",
    ]);
    assert!(dest.join("usr/bin/asu-builder").is_file());
    assert!(dest.join("usr/share/man/man8/asu-builder.8").is_file());
    assert!(dest.join("etc/asu-builder/config.yaml").is_file());
    let unit = read(dest.join("usr/lib/systemd/system/asu-builder.service"));
    assert!(
        unit.contains("\nExecStart=/usr/bin/asu-builder --config /etc/asu-builder/config.yaml\n")
    );
}

fn tools() {
    let script = Path::new(ROOT).join("tests/tools/install.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg("install")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tests/tools/install.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The unit as installed for real: `systemd-analyze verify` resolves
/// ExecStart= and Documentation=man:…, so the prefix must hold them; a
/// prefix in a temporary directory (no DESTDIR) does, touching nothing
/// outside it.
#[test]
fn the_unit_verifies_and_its_exposure_is_low() {
    tools();
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("prefix");
    let p = prefix.display().to_string();
    make(&[
        "install",
        &format!("PREFIX={p}"),
        &format!("SYSCONFDIR={p}/etc"),
    ]);
    let unit = prefix.join("lib/systemd/system/asu-builder.service");
    assert!(read(unit.clone()).contains(&format!(
        "ExecStart={p}/bin/asu-builder --config {p}/etc/asu-builder/config.yaml"
    )));
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .env("MANPATH", prefix.join("share/man"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "systemd-analyze verify: {text}");
    assert!(!text.contains("asu-builder.service"), "warnings: {text}");

    // The man page the unit names is found there; without it, verify fails.
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .env("MANPATH", tmp.path())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "verify did not look for the man page"
    );

    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no exposure level: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    eprintln!("systemd-analyze security: {line}");
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(score <= 2.0, "exposure {score} (OK is up to 2.0): {text}");
}
