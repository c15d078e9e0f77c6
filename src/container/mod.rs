//! Container runtime boundary. The build pipeline talks only to the
//! `ContainerRuntime` trait; `podman` implements it over libpod's REST API,
//! tests may implement it in-process.

pub mod podman;

use std::collections::BTreeMap;
use std::path::Path;

/// What the pipeline asks the runtime to create. Plain data; the Podman
/// client maps it to a libpod SpecGenerator (cap_drop ALL, no_new_privileges
/// and `init` are always applied there, not chosen per build).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// Mount points that get a private tmpfs.
    pub tmpfs: Vec<String>,
    /// Network to attach; `None` means no network at all.
    pub network: Option<String>,
    /// The runtime kills the container after this many seconds.
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    /// `None`: the image's default user (buildbot in ImageBuilder images).
    pub user: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
}

/// A file to place inside the container; `path` is relative to the
/// destination directory given to `put_files`.
#[derive(Debug, Clone, PartialEq)]
pub struct FileToPut {
    pub path: String,
    pub data: Vec<u8>,
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub state: String,
    pub labels: BTreeMap<String, String>,
}

/// Where `ensure_image` found the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageOrigin {
    Pulled,
    /// The registry could not be reached; a locally stored image is used.
    LocalFallback,
    AlreadyPresent,
}

#[derive(Debug)]
pub enum ContainerError {
    /// Nothing answers on the socket (missing, refused, dropped). Retryable.
    Unreachable { socket: String, reason: String },
    /// The image is neither pullable nor present locally.
    ImageMissing { image: String, reason: String },
    /// The API answered with an error status.
    Api { status: u16, message: String },
    /// An archive from the container tried to leave its directory, or was malformed.
    UnsafeArchive(String),
    /// Local I/O while streaming files (store directory, …).
    Io(String),
    /// The local disk holding the build output is full. Retryable: expiry
    /// or an operator may free space.
    StoreFull(String),
    /// A call took longer than its deadline.
    Timeout(String),
}

impl ContainerError {
    /// Whether a build that met this error may succeed when run again: the
    /// one retry decision for container errors. Only a missing image and an
    /// unsafe build output are about the request. Everything else is about
    /// the runtime's state at that moment: the socket, a deadline, local
    /// disk, and every API error answer, 4xx included (a container removed
    /// under a running build answers 404, a leftover holding the name 409),
    /// and a fresh attempt starts over with a new container.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            ContainerError::ImageMissing { .. } | ContainerError::UnsafeArchive(_)
        )
    }

    /// A create refused because a container already holds the name: 409
    /// from newer libpod, 500 "… is already in use …" from Podman 4.
    pub fn is_name_conflict(&self) -> bool {
        match self {
            ContainerError::Api { status: 409, .. } => true,
            ContainerError::Api { message, .. } => message.contains("is already in use"),
            _ => false,
        }
    }

    /// The runtime stopped answering: nothing listens on the socket, the
    /// connection broke, or a call's deadline passed. Not about the build:
    /// the queue retries it as soon as the runtime answers again.
    pub fn is_runtime_lost(&self) -> bool {
        matches!(
            self,
            ContainerError::Unreachable { .. } | ContainerError::Timeout(_)
        )
    }
}

impl std::fmt::Display for ContainerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContainerError::Unreachable { socket, reason } => {
                write!(f, "container runtime unreachable at {socket}: {reason}")
            }
            ContainerError::ImageMissing { image, reason } => {
                write!(f, "image {image} could not be pulled: {reason}")
            }
            ContainerError::Api { status, message } => {
                write!(f, "container API error {status}: {message}")
            }
            ContainerError::UnsafeArchive(s) => write!(f, "unsafe archive: {s}"),
            ContainerError::Io(s) => write!(f, "I/O error: {s}"),
            ContainerError::StoreFull(s) => write!(f, "no space left for the build output: {s}"),
            ContainerError::Timeout(s) => write!(f, "timeout: {s}"),
        }
    }
}

impl std::error::Error for ContainerError {}

pub trait ContainerRuntime: Send + Sync {
    /// Liveness check; returns the runtime's version string.
    fn ping(&self) -> Result<String, ContainerError>;
    /// Pull `image`; when the registry is unreachable but the image is stored
    /// locally, use that (and say so through the returned origin).
    fn ensure_image(&self, image: &str) -> Result<ImageOrigin, ContainerError>;
    /// Create the named bridge network unless it exists.
    fn ensure_network(&self, name: &str) -> Result<(), ContainerError>;
    /// Create a container; returns its id.
    fn create(&self, spec: &ContainerSpec) -> Result<String, ContainerError>;
    fn start(&self, id: &str) -> Result<(), ContainerError>;
    /// Run a command to completion; output is capped at a sane size.
    fn exec(&self, id: &str, req: &ExecRequest) -> Result<ExecOutput, ContainerError>;
    /// Upload files under `dest_dir` (created when missing).
    fn put_files(
        &self,
        id: &str,
        dest_dir: &str,
        files: &[FileToPut],
    ) -> Result<(), ContainerError>;
    /// Stream the *contents* of `src_dir` into local directory `dest`
    /// (created when missing), never buffering whole files in memory.
    /// Returns the number of bytes written.
    fn copy_out(&self, id: &str, src_dir: &str, dest: &Path) -> Result<u64, ContainerError>;
    /// SIGKILL; a container that is not running is not an error.
    fn kill(&self, id: &str) -> Result<(), ContainerError>;
    /// Force-remove with volumes and no grace period; an already removed
    /// container is not an error.
    fn remove(&self, id: &str) -> Result<(), ContainerError>;
    /// All containers (any state) carrying `label` (`key` or `key=value`).
    fn list_by_label(&self, label: &str) -> Result<Vec<ContainerInfo>, ContainerError>;
}

/// Labels every container of ours carries; orphan cleanup matches on the first.
pub const LABEL_SERVICE: &str = "asu.builder";
pub const LABEL_WORKER: &str = "asu.worker";
pub const LABEL_JOB: &str = "asu.job";

/// The `list_by_label` filter for the containers of one job.
pub fn job_label(request_hash: &str) -> String {
    format!("{LABEL_JOB}={request_hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_container_errors_are_retried() {
        let s = String::new;
        let api = |status| ContainerError::Api {
            status,
            message: s(),
        };
        let table = [
            (
                ContainerError::Unreachable {
                    socket: s(),
                    reason: s(),
                },
                true,
            ),
            (ContainerError::Timeout(s()), true),
            (ContainerError::Io(s()), true),
            (ContainerError::StoreFull(s()), true),
            (api(500), true),
            (api(502), true),
            (api(404), true),
            (api(409), true),
            (api(400), true),
            (
                ContainerError::ImageMissing {
                    image: s(),
                    reason: s(),
                },
                false,
            ),
            (ContainerError::UnsafeArchive(s()), false),
        ];
        for (error, retryable) in table {
            assert_eq!(error.is_retryable(), retryable, "{error:?}");
        }
    }

    #[test]
    fn lost_runtimes_and_name_conflicts_are_recognised() {
        let api = |status, message: &str| ContainerError::Api {
            status,
            message: message.into(),
        };
        let unreachable = ContainerError::Unreachable {
            socket: "/run/podman/podman.sock".into(),
            reason: "Connection refused".into(),
        };
        assert!(unreachable.is_runtime_lost());
        assert!(ContainerError::Timeout("ping".into()).is_runtime_lost());
        assert!(!api(500, "boom").is_runtime_lost());
        assert!(!ContainerError::Io("No space left on device".into()).is_runtime_lost());

        // Podman 4.3's answer to a create whose name is taken, verbatim.
        let podman4 = api(
            500,
            "create container asu-x-worker-1-1: creating container storage: the container \
             name \"asu-x-worker-1-1\" is already in use by 2eec62d05ebc. You have to remove \
             that container to be able to reuse that name: that name is already in use",
        );
        assert!(podman4.is_name_conflict());
        assert!(api(409, "conflict").is_name_conflict());
        assert!(!api(500, "OCI runtime error").is_name_conflict());
        assert!(!unreachable.is_name_conflict());
    }
}
