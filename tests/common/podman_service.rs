//! A private Podman API service for the Podman test tier, started through
//! `tests/podman/service.sh` (own storage, containers.conf, network configs
//! and socket in a temp dir). The service stops and its directory is purged
//! by a watchdog once the test process exits (`--owner`). Never skipped:
//! when Podman cannot be started the tests fail with the harness's message.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The fake ImageBuilder tags every shared service gets.
pub const IMAGE_RELEASE: &str = "ghcr.io/openwrt/imagebuilder:testtarget-testsubtarget-v1.2.3";
pub const IMAGE_SNAPSHOT: &str = "ghcr.io/openwrt/imagebuilder:testtarget-testsubtarget-master";

pub struct Service {
    pub dir: PathBuf,
    pub socket: PathBuf,
}

impl Service {
    pub fn dir_str(&self) -> &str {
        self.dir.to_str().expect("UTF-8 temp dir")
    }

    pub fn stop(&self) -> Result<String, String> {
        run_script(&["stop", self.dir_str()])
    }

    pub fn start(&self) -> Result<String, String> {
        run_script(&["start", self.dir_str()])
    }

    /// Stop the service process only: running containers stay.
    pub fn halt(&self) -> Result<String, String> {
        run_script(&["halt", self.dir_str()])
    }

    /// SIGSTOP the service: it accepts connections and never answers.
    pub fn freeze(&self) -> Result<String, String> {
        run_script(&["freeze", self.dir_str()])
    }

    pub fn thaw(&self) -> Result<String, String> {
        run_script(&["thaw", self.dir_str()])
    }

    /// Build (or reuse) fake ImageBuilder images in this service's storage.
    pub fn image(&self, tags: &[&str]) -> Result<String, String> {
        let mut args = vec!["image", self.dir_str()];
        args.extend_from_slice(tags);
        run_script(&args)
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/podman/service.sh")
}

pub fn run_script(args: &[&str]) -> Result<String, String> {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script().display()))?;
    if !out.status.success() {
        return Err(format!(
            "`tests/podman/service.sh {}` failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A new private service owned by this process.
pub fn start_service() -> Result<Service, String> {
    let dir = tempfile::Builder::new()
        .prefix("asu-podman-")
        .tempdir()
        .map_err(|e| format!("tempdir: {e}"))?
        .keep();
    let d = dir.to_str().ok_or("non-UTF-8 temp dir")?.to_string();
    run_script(&["start", &d, "--owner", &std::process::id().to_string()])?;
    Ok(Service {
        socket: dir.join("podman.sock"),
        dir,
    })
}

/// The service shared by all tests of one test binary, with the fake
/// ImageBuilder images built into it.
pub fn shared() -> &'static Service {
    static SERVICE: OnceLock<Result<Service, String>> = OnceLock::new();
    let s = SERVICE.get_or_init(|| {
        let s = start_service()?;
        s.image(&[IMAGE_RELEASE, IMAGE_SNAPSHOT])?;
        Ok(s)
    });
    match s {
        Ok(s) => s,
        Err(e) => panic!(
            "podman test service unavailable (install with `tests/podman/service.sh install` as root):\n{e}"
        ),
    }
}
