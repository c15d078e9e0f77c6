//! What the pipeline asks of Podman and of `make`, as plain values: the
//! container's name and spec, and the `make manifest` / `make image` argv.
//! Pure, so the exact arguments are unit-tested.

use super::packages;
use super::repos;
use super::{BuildJob, tag};
use crate::config::{self, Config};
use crate::container::{ContainerSpec, LABEL_JOB, LABEL_SERVICE, LABEL_WORKER};
use serde_json::{Map, Value};

/// The working directory of ImageBuilder images.
pub const WORKDIR: &str = "/builder";

/// Podman container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn container_name(request_hash: &str, worker_id: &str) -> String {
    let short: String = request_hash.chars().take(16).collect();
    format!("asu-{short}-{worker_id}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The container a job runs in: it only sleeps; every step is an exec.
pub fn container_spec(
    config: &Config,
    worker_id: &str,
    job: &BuildJob,
    image: &str,
) -> ContainerSpec {
    let req = &job.request;
    let mut spec = ContainerSpec {
        name: container_name(&job.request_hash, worker_id),
        image: image.to_owned(),
        command: vec!["sleep".into(), config.job_timeout_seconds.to_string()],
        tmpfs: vec![format!("{WORKDIR}/{}", job.bin_dir)],
        network: (!config.container_network.is_empty()).then(|| config.container_network.clone()),
        timeout_seconds: config.job_timeout_seconds,
        ..ContainerSpec::default()
    };
    spec.labels.insert(LABEL_SERVICE.into(), "1".into());
    spec.labels.insert(LABEL_WORKER.into(), worker_id.into());
    spec.labels
        .insert(LABEL_JOB.into(), job.request_hash.clone());
    if tag::is_snapshot_build(&req.version) {
        spec.env.insert("TARGET".into(), req.target.clone());
        // Validation admits only versions of configured branches.
        let path = config::version_path(&config.branches, &req.version);
        spec.env
            .insert("VERSION_PATH".into(), path.unwrap_or_default());
    }
    spec
}

/// `make manifest` argv.
pub fn manifest_cmd(profile: &str, packages: &[String]) -> Vec<String> {
    vec![
        "make".into(),
        "manifest".into(),
        format!("PROFILE={profile}"),
        format!("PACKAGES={}", packages.join(" ")),
        "STRIP_ABI=1".into(),
    ]
}

/// `make image` argv; also the `build_cmd` clients see.
pub fn image_cmd(
    job: &BuildJob,
    packages: &[String],
    manifest: &Map<String, Value>,
) -> Vec<String> {
    let req = &job.request;
    let hash = packages::packages_hash(manifest.keys().map(String::as_str));
    let mut cmd = vec![
        "make".into(),
        "image".into(),
        format!("PROFILE={}", req.profile),
        format!("PACKAGES={}", packages.join(" ")),
        format!("EXTRA_IMAGE_NAME={}", &hash[..12]),
        format!("BIN_DIR={WORKDIR}/{}", job.bin_dir),
    ];
    if req.defaults.as_deref().is_some_and(|d| !d.is_empty()) {
        cmd.push(repos::FILES_ARG.into());
    }
    if let Some(size) = req.rootfs_size_mb.filter(|s| *s > 0) {
        cmd.push(format!("ROOTFS_PARTSIZE={size}"));
    }
    if let Some(fs) = req.filesystem.as_deref().filter(|f| !f.is_empty()) {
        cmd.push(format!("ROOTFS_FILESYSTEM={fs}"));
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::BuildRequest;

    fn job(version: &str) -> BuildJob {
        BuildJob {
            request_hash: "0123456789abcdef0123456789abcdef".into(),
            request: BuildRequest {
                version: version.into(),
                target: "ath79/generic".into(),
                profile: "tplink_archer-c7-v2".into(),
                ..BuildRequest::default()
            },
            bin_dir: "fedcba".into(),
            store_dir: "/tmp/none".into(),
            staging_dir: "/tmp/none.staging".into(),
        }
    }

    #[test]
    fn container_names_are_sanitized() {
        assert_eq!(
            container_name("0123456789abcdef0123", "worker 1/x"),
            "asu-0123456789abcdef-worker-1-x"
        );
        assert_eq!(container_name("ab", "w"), "asu-ab-w");
    }

    #[test]
    fn release_container_spec() {
        let config = Config::default();
        let spec = container_spec(&config, "w1", &job("23.05.5"), "img");
        assert_eq!(spec.command, ["sleep", "600"]);
        assert_eq!(spec.tmpfs, ["/builder/fedcba"]);
        assert_eq!(spec.labels["asu.builder"], "1");
        assert_eq!(spec.labels["asu.worker"], "w1");
        assert_eq!(spec.labels["asu.job"], "0123456789abcdef0123456789abcdef");
        assert_eq!(spec.network.as_deref(), Some("asu-build"));
        assert_eq!(spec.timeout_seconds, 600);
        assert!(spec.env.is_empty());
    }

    #[test]
    fn snapshot_container_spec_has_setup_env() {
        let config = Config::default();
        let spec = container_spec(&config, "w1", &job("SNAPSHOT"), "img");
        assert_eq!(spec.env["TARGET"], "ath79/generic");
        assert_eq!(spec.env["VERSION_PATH"], "snapshots");
    }

    #[test]
    fn image_cmd_arguments() {
        let mut j = job("23.05.5");
        let manifest: Map<String, Value> =
            serde_json::from_str(r#"{"test1": "1", "test2": "2"}"#).unwrap();
        let cmd = image_cmd(&j, &["-ppp".into(), "vim".into()], &manifest);
        assert_eq!(
            cmd,
            [
                "make",
                "image",
                "PROFILE=tplink_archer-c7-v2",
                "PACKAGES=-ppp vim",
                "EXTRA_IMAGE_NAME=57aab5949a36",
                "BIN_DIR=/builder/fedcba"
            ]
        );
        j.request.defaults = Some("echo".into());
        j.request.rootfs_size_mb = Some(256);
        j.request.filesystem = Some("ext4".into());
        let cmd = image_cmd(&j, &[], &manifest);
        assert_eq!(
            &cmd[6..],
            [
                "FILES=/builder/asu-files",
                "ROOTFS_PARTSIZE=256",
                "ROOTFS_FILESYSTEM=ext4"
            ]
        );
    }
}
