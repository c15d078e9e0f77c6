//! The build pipeline (the reference's `build.py`) and its pure parsers.
//!
//! `run_build` drives one job through a `ContainerRuntime`; everything it
//! parses (make info, manifests, package errors, package changes, image tags)
//! lives in pure functions next to it.
//!
//! - `tag`: ImageBuilder image name, snapshot/branch helpers
//! - `info`: `make info` parsing and the revision check
//! - `changes`: package changes (service or built-in rules)
//! - `packages`: package diff, packages hash, manifests, package errors
//! - `repos`: repository files, allow list, keys, defaults script
//! - `result`: profiles.json → stored result, image checksums
//! - `sign`: optional image signing with a build key
//! - `replace`: the warning when a build replaces another complete build
//! - `pipeline`: `run_build` itself

pub mod changes;
mod commands;
pub mod info;
pub mod packages;
mod pipeline;
mod replace;

pub use pipeline::run_build;
pub mod repos;
pub mod result;
pub mod sign;
pub mod tag;

pub use commands::{container_name, container_spec, image_cmd, manifest_cmd};

use crate::models::{BuildRequest, Phase};
use serde_json::{Map, Value};
use std::path::PathBuf;

/// One job as the worker hands it to the pipeline.
#[derive(Debug, Clone)]
pub struct BuildJob {
    /// The job id: hash of the request as the client sent it.
    pub request_hash: String,
    /// The request after validation (profile resolved to its canonical id).
    pub request: BuildRequest,
    /// Store directory name: the hash recomputed after profile resolution.
    pub bin_dir: String,
    /// `{store_path}/{bin_dir}`; the finished build is renamed here.
    pub store_dir: PathBuf,
    /// Where images are streamed while the build runs (`store::staging_dir`);
    /// emptied before and removed after each build.
    pub staging_dir: PathBuf,
}

/// What a finished build contributes to the stored result.
#[derive(Debug, Clone, Default)]
pub struct BuildSuccess {
    /// profiles.json top level (minus `profiles`) + the built profile's keys +
    /// `manifest`, `id`, `bin_dir`, `build_cmd_packages`, `build_at`.
    pub result: Map<String, Value>,
    pub build_cmd: Vec<String>,
    pub stdout: String,
    pub stderr: String,
}

/// What the queue should do with a failed build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Running it again cannot help: the request cannot be built
    /// (impossible packages, wrong revision, too big, missing image, …) or
    /// the pipeline itself broke (a panic). Fail at once.
    Permanent,
    /// The runtime's state got in the way (an error answer, a killed
    /// container, local disk, …; see `ContainerError::is_retryable`): retry
    /// with backoff.
    Retryable,
    /// The runtime stopped answering mid-build (`ContainerError::
    /// is_runtime_lost`): retry as soon as it answers again, no backoff.
    RuntimeLost,
}

#[derive(Debug, Clone)]
pub struct BuildFailure {
    pub kind: FailureKind,
    /// Client-visible text, e.g. `Error: Impossible package selection: …`.
    pub detail: String,
    pub stdout: String,
    pub stderr: String,
    pub build_cmd: Vec<String>,
}

/// Callbacks from the pipeline to the worker that runs it.
pub trait Progress {
    fn phase(&self, phase: Phase);
}
