//! `run_build`: the reference server's `build.py`, step by step, through
//! the `ContainerRuntime` trait. The steps with I/O live here (Podman calls,
//! the package-changes service, the build key, publishing to the store);
//! what they compute is in the pure modules next to it.

use super::changes::{self, Context};
use super::commands::{WORKDIR, container_spec, image_cmd, manifest_cmd};
use super::info::{self, ImageBuilderInfo};
use super::packages;
use super::repos;
use super::result;
use super::sign;
use super::tag;
use super::{BuildFailure, BuildJob, BuildSuccess, FailureKind, Progress};
use crate::config::Config;
use crate::container::{ContainerError, ContainerRuntime, ContainerSpec, ExecOutput, ExecRequest};
use crate::models::Phase;
use crate::store;
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

/// Exit status of a process killed by SIGKILL (container killed or removed).
const KILLED: i64 = 137;

/// Removes the container when dropped, so no path (error, early return,
/// panic) leaves it behind. `remove` is idempotent.
struct ContainerGuard<'a> {
    runtime: &'a dyn ContainerRuntime,
    id: String,
    removed: bool,
}

impl ContainerGuard<'_> {
    fn remove(&mut self) {
        if std::mem::replace(&mut self.removed, true) {
            return;
        }
        if let Err(e) = self.runtime.remove(&self.id) {
            // The janitor removes labelled orphans later.
            log::warn!("could not remove container {}: {e}", self.id);
        }
    }
}

impl Drop for ContainerGuard<'_> {
    fn drop(&mut self) {
        self.remove();
    }
}

/// State of one run: the output of the last main step travels into any
/// failure.
struct Build<'a> {
    config: &'a Config,
    runtime: &'a dyn ContainerRuntime,
    job: &'a BuildJob,
    progress: &'a dyn Progress,
    stdout: String,
    stderr: String,
    build_cmd: Vec<String>,
    /// Wall time per step, logged at the end so operators (and `make bench`)
    /// can tell the service's own overhead from the ImageBuilder's work.
    timings: Vec<(String, Duration)>,
}

/// What the in-container part hands back.
struct Built {
    manifest: Map<String, Value>,
    build_cmd_packages: Vec<String>,
}

impl<'a> Build<'a> {
    fn fail(&self, kind: FailureKind, msg: impl std::fmt::Display) -> BuildFailure {
        BuildFailure {
            kind,
            detail: format!("Error: {msg}"),
            stdout: self.stdout.clone(),
            stderr: self.stderr.clone(),
            build_cmd: self.build_cmd.clone(),
        }
    }

    /// A failure that running the build again cannot fix.
    fn permanent(&self, msg: impl std::fmt::Display) -> BuildFailure {
        self.fail(FailureKind::Permanent, msg)
    }

    fn runtime_failure(&self, err: ContainerError, during: &str) -> BuildFailure {
        let kind = if err.is_runtime_lost() {
            FailureKind::RuntimeLost
        } else if err.is_retryable() {
            FailureKind::Retryable
        } else {
            FailureKind::Permanent
        };
        match err {
            ContainerError::ImageMissing { image, reason } => {
                log::warn!("image {image} missing: {reason}");
                self.fail(
                    kind,
                    format!(
                        "Image not found: {image}. If this version was just released, please try \
                         again in a few hours as it may take some time to become fully available."
                    ),
                )
            }
            ContainerError::UnsafeArchive(what) => {
                self.fail(kind, format!("Unsafe build output ({during}): {what}"))
            }
            // The server's disk, not the runtime: say so, without its paths.
            ContainerError::StoreFull(what) => {
                log::warn!("job {}: store full: {what}", self.job.request_hash);
                self.fail(
                    kind,
                    "No space left in the store for the images of this build",
                )
            }
            other => self.fail(
                kind,
                format!("Container runtime failed during {during}: {other}"),
            ),
        }
    }

    /// Run a command in the container. `keep` stores its output as the
    /// step output that failures report.
    fn exec(
        &mut self,
        id: &str,
        cmd: Vec<String>,
        during: &str,
        keep: bool,
    ) -> Result<ExecOutput, BuildFailure> {
        self.exec_as(id, cmd, None, during, keep)
    }

    fn exec_as(
        &mut self,
        id: &str,
        cmd: Vec<String>,
        user: Option<&str>,
        during: &str,
        keep: bool,
    ) -> Result<ExecOutput, BuildFailure> {
        log::debug!("exec in {id}: {cmd:?}");
        let req = ExecRequest {
            cmd,
            env: Vec::new(),
            workdir: Some(WORKDIR.into()),
            user: user.map(str::to_owned),
        };
        let started = Instant::now();
        let out = self.runtime.exec(id, &req);
        self.timings.push((during.to_string(), started.elapsed()));
        let out = out.map_err(|e| self.runtime_failure(e, during))?;
        if keep {
            self.stdout = out.stdout.clone();
            self.stderr = out.stderr.clone();
        }
        if out.exit_code == KILLED {
            return Err(self.fail(
                FailureKind::Retryable,
                format!("The build container was killed during {during} (exit code {KILLED})"),
            ));
        }
        Ok(out)
    }

    fn run(&mut self, worker_id: &str) -> Result<BuildSuccess, BuildFailure> {
        let (config, runtime, job) = (self.config, self.runtime, self.job);
        let req = &job.request;
        self.progress.phase(Phase::Init);

        let image = tag::image_name(&config.imagebuilder_registry, &req.target, &req.version);
        self.progress.phase(Phase::ContainerSetup);
        log::info!("job {}: image {image}", job.request_hash);
        let started = Instant::now();
        let origin = runtime.ensure_image(&image);
        self.timings.push(("image pull".into(), started.elapsed()));
        let origin = origin.map_err(|e| self.runtime_failure(e, "image pull"))?;
        log::debug!("image {image}: {origin:?}");
        if !config.container_network.is_empty() {
            runtime
                .ensure_network(&config.container_network)
                .map_err(|e| self.runtime_failure(e, "network setup"))?;
        }

        let spec = container_spec(config, worker_id, job, &image);
        let started = Instant::now();
        let id = self.create(&spec)?;
        self.timings
            .push(("container create".into(), started.elapsed()));
        let mut guard = ContainerGuard {
            runtime,
            id: id.clone(),
            removed: false,
        };
        let started = Instant::now();
        let built = runtime
            .start(&id)
            .map_err(|e| self.runtime_failure(e, "container start"))
            .and_then(|()| {
                self.timings
                    .push(("container start".into(), started.elapsed()));
                log::info!("job {}: container started", job.request_hash);
                self.in_container(&id)
            });
        let started = Instant::now();
        guard.remove();
        self.timings
            .push(("container remove".into(), started.elapsed()));
        self.log_timings();
        let built = built?;

        let result = self.result(built)?;
        super::replace::warn_if_replacing(job, &result);
        store::publish(&job.staging_dir, &job.store_dir).map_err(|e| {
            self.fail(
                FailureKind::Retryable,
                format!("Could not move the images into the store: {e}"),
            )
        })?;
        self.progress.phase(Phase::Done);
        Ok(BuildSuccess {
            result,
            build_cmd: self.build_cmd.clone(),
            stdout: std::mem::take(&mut self.stdout),
            stderr: std::mem::take(&mut self.stderr),
        })
    }

    /// The stored result: the staged profiles.json's entry for the profile,
    /// the manifest, and checksums of the staged images.
    fn result(&self, built: Built) -> Result<Map<String, Value>, BuildFailure> {
        let job = self.job;
        let json_path = job.staging_dir.join("profiles.json");
        if !json_path.is_file() {
            return Err(self.permanent("No JSON file found"));
        }
        let profiles: Map<String, Value> = std::fs::read(&json_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| self.permanent("Could not parse profiles.json"))?;
        let mut result = result::build_result(
            profiles,
            &job.request.profile,
            built.manifest,
            &job.bin_dir,
            &built.build_cmd_packages,
        )
        .map_err(|e| self.permanent(e))?;
        // After signing, so clients verify what they download.
        result::refresh_checksums(&mut result, &job.staging_dir);
        Ok(result)
    }

    /// One line per build: each step's wall time and the share spent
    /// inside `make`, the ImageBuilder's own work.
    fn log_timings(&self) {
        let total: Duration = self.timings.iter().map(|(_, d)| *d).sum();
        let make: Duration = self
            .timings
            .iter()
            .filter(|(step, _)| step.starts_with("make "))
            .map(|(_, d)| *d)
            .sum();
        let steps: Vec<String> = self
            .timings
            .iter()
            .map(|(step, d)| format!("{step}={:.1}ms", d.as_secs_f64() * 1000.0))
            .collect();
        log::info!(
            "job {}: timings total={:.1}ms make={:.1}ms outside-make={:.1}ms [{}]",
            self.job.request_hash,
            total.as_secs_f64() * 1000.0,
            make.as_secs_f64() * 1000.0,
            (total - make).as_secs_f64() * 1000.0,
            steps.join(" ")
        );
    }

    /// Create the container. The name belongs to this job on this worker,
    /// so a container holding it is a leftover of an earlier attempt (the
    /// runtime or this process went away while it ran): it is removed and
    /// the create tried once more, instead of failing the attempt.
    fn create(&self, spec: &ContainerSpec) -> Result<String, BuildFailure> {
        match self.runtime.create(spec) {
            Ok(id) => Ok(id),
            Err(e) if e.is_name_conflict() => {
                log::warn!("container {} exists ({e}); replacing it", spec.name);
                if let Err(e) = self.runtime.remove(&spec.name) {
                    log::warn!("removing the leftover container {} failed: {e}", spec.name);
                }
                self.runtime
                    .create(spec)
                    .map_err(|e| self.runtime_failure(e, "container create"))
            }
            Err(e) => Err(self.runtime_failure(e, "container create")),
        }
    }

    fn in_container(&mut self, id: &str) -> Result<Built, BuildFailure> {
        if tag::is_snapshot_build(&self.job.request.version) {
            self.setup_imagebuilder(id)?;
        }
        self.inject_files(id)?;
        let build_cmd_packages = self.packages(id)?;
        let manifest = self.manifest(id, &build_cmd_packages)?;
        self.image(id, &build_cmd_packages, &manifest)?;
        self.copy_images(id)?;
        Ok(Built {
            manifest,
            build_cmd_packages,
        })
    }

    /// Snapshot images fetch the real ImageBuilder with `setup.sh`.
    fn setup_imagebuilder(&mut self, id: &str) -> Result<(), BuildFailure> {
        log::info!("running setup.sh for the ImageBuilder");
        let cmd = vec!["sh".into(), "setup.sh".into()];
        let out = self.exec(id, cmd, "ImageBuilder setup", true)?;
        if out.exit_code != 0 {
            // setup.sh downloads the ImageBuilder: usually the network.
            return Err(self.fail(
                FailureKind::Retryable,
                format!(
                    "Could not set up ImageBuilder (returncode={})",
                    out.exit_code
                ),
            ));
        }
        Ok(())
    }

    /// `make info` (revision check, defaults), package changes and the diff:
    /// the `PACKAGES=` of the build.
    fn packages(&mut self, id: &str) -> Result<Vec<String>, BuildFailure> {
        let req = &self.job.request;
        let out = self.exec(id, vec!["make".into(), "info".into()], "make info", true)?;
        self.progress.phase(Phase::ValidateRevision);
        let info: ImageBuilderInfo =
            info::parse_info(&out.stdout, &req.profile).map_err(|e| self.permanent(e))?;
        if let Some(msg) = info::check_revision(&info.revision, &req.version_code) {
            return Err(self.permanent(msg));
        }
        let defaults = packages::image_defaults(&info.default_packages, &info.profile_packages);
        let ctx = Context {
            version: &req.version,
            target: &req.target,
            profile: &req.profile,
            revision: info::revision_number(&info.revision),
        };
        // The package-changes service is asked over HTTP (built-in rules
        // when it is unset or fails): the pipeline's one network call
        // outside Podman.
        let (requested, _source) = changes::apply_package_changes(
            &self.config.package_changes_url,
            &ctx,
            &req.packages,
            &defaults,
            req.diff_packages,
        );
        Ok(packages::build_packages(
            requested,
            &defaults,
            req.diff_packages,
        ))
    }

    /// `make manifest`: package errors and `packages_versions` are checked
    /// here, before the image is built.
    fn manifest(
        &mut self,
        id: &str,
        build_packages: &[String],
    ) -> Result<Map<String, Value>, BuildFailure> {
        let req = &self.job.request;
        self.progress.phase(Phase::ValidateManifest);
        let cmd = manifest_cmd(&req.profile, build_packages);
        let out = self.exec(id, cmd, "make manifest", true)?;
        if out.exit_code != 0 {
            return Err(self.permanent(packages::check_package_errors(&out.stderr)));
        }
        let manifest = packages::parse_manifest(&out.stdout);
        if let Some(msg) = packages::check_manifest(&manifest, &req.packages_versions) {
            return Err(self.permanent(msg));
        }
        Ok(manifest)
    }

    /// `make image`, then signing when a build key is configured.
    fn image(
        &mut self,
        id: &str,
        build_packages: &[String],
        manifest: &Map<String, Value>,
    ) -> Result<(), BuildFailure> {
        self.build_cmd = image_cmd(self.job, build_packages, manifest);
        self.progress.phase(Phase::BuildingImage);
        let out = self.exec(id, self.build_cmd.clone(), "make image", true)?;
        if packages::exceeds_storage(&out.stderr) {
            return Err(self.permanent("Selected packages exceed device storage"));
        }
        if out.exit_code != 0 {
            return Err(self.permanent("Error while building firmware. See stdout/stderr"));
        }
        if let Some(key) = sign::find_build_key(self.config.build_key_path.as_deref()) {
            self.sign_images(id, &key)?;
        } else {
            log::debug!("no build key; images stay unsigned");
        }
        Ok(())
    }

    /// Stream BIN_DIR out of the container into the (emptied) staging
    /// directory.
    fn copy_images(&mut self, id: &str) -> Result<(), BuildFailure> {
        let job = self.job;
        let src = format!("{WORKDIR}/{}", job.bin_dir);
        let started = Instant::now();
        store::discard(&job.staging_dir);
        let bytes = self.runtime.copy_out(id, &src, &job.staging_dir);
        self.timings.push(("copy out".into(), started.elapsed()));
        let bytes = bytes.map_err(|e| self.runtime_failure(e, "copying images"))?;
        log::info!(
            "job {}: {bytes} bytes stored in {}",
            job.request_hash,
            job.staging_dir.display()
        );
        Ok(())
    }

    /// Keys, repositories and the defaults script, then the cache rewrite.
    fn inject_files(&mut self, id: &str) -> Result<(), BuildFailure> {
        let (config, req) = (self.config, &self.job.request);
        let runtime = self.runtime;
        let put = |this: &Self, files: Vec<crate::container::FileToPut>| {
            runtime
                .put_files(id, WORKDIR, &files)
                .map_err(|e| this.runtime_failure(e, "file upload"))
        };

        if !req.repository_keys.is_empty() {
            let files = repos::key_files(&req.repository_keys);
            if !files.is_empty() {
                put(self, files)?;
            }
        }

        let mut apk: Option<bool> = None;
        if !req.repositories.is_empty() {
            let allowed =
                repos::allowed_repositories(&req.repository_pairs(), &config.repository_allow_list);
            let is_apk = self.detect_apk(id)?;
            apk = Some(is_apk);
            let file = repos::repo_file_name(is_apk);
            let base = if req.repositories_mode == "append" {
                self.exec(
                    id,
                    vec!["cat".into(), file.into()],
                    "reading repositories",
                    false,
                )?
                .stdout
            } else {
                String::new()
            };
            let merged = repos::merge_repositories(&base, &allowed, is_apk);
            put(
                self,
                vec![crate::container::FileToPut {
                    path: file.into(),
                    data: merged.into_bytes(),
                    mode: 0o644,
                }],
            )?;
        }

        if let Some(defaults) = req.defaults.as_deref().filter(|d| !d.is_empty()) {
            put(self, vec![repos::defaults_file(defaults)])?;
        }

        if !config.cache_url.is_empty() {
            let is_apk = match apk {
                Some(a) => a,
                None => self.detect_apk(id)?,
            };
            let cmd = repos::cache_rewrite_cmd(&config.cache_url, repos::repo_file_name(is_apk));
            let out = self.exec(id, cmd, "cache rewrite", false)?;
            if out.exit_code != 0 {
                log::warn!("cache rewrite failed: {}", out.stderr.trim());
            }
        }
        Ok(())
    }

    fn detect_apk(&mut self, id: &str) -> Result<bool, BuildFailure> {
        let cmd = vec![
            "test".into(),
            "-f".into(),
            format!("{WORKDIR}/repositories"),
        ];
        Ok(self
            .exec(id, cmd, "package manager detection", false)?
            .exit_code
            == 0)
    }

    /// Sign the installable images in BIN_DIR before they are copied out.
    fn sign_images(&mut self, id: &str, key: &sign::BuildKey) -> Result<(), BuildFailure> {
        let job = self.job;
        let cmd = vec![
            "cat".into(),
            format!("{WORKDIR}/{}/profiles.json", job.bin_dir),
        ];
        let out = self.exec(id, cmd, "reading profiles.json", false)?;
        let images = serde_json::from_str::<Map<String, Value>>(&out.stdout)
            .ok()
            .and_then(|p| {
                result::profile_entry(&p, &job.request.profile).map(result::installable_images)
            })
            .unwrap_or_default();
        if images.is_empty() {
            log::warn!("no installable images to sign");
            return Ok(());
        }
        self.progress.phase(Phase::SigningImages);
        log::info!("signing {images:?} with {}", key.path.display());
        self.runtime
            .put_files(id, sign::KEY_DIR, &sign::key_files(key))
            .map_err(|e| self.runtime_failure(e, "key upload"))?;
        let out = self.exec_as(
            id,
            sign::sign_command(&job.bin_dir, &images),
            Some("root"),
            "signing",
            false,
        )?;
        if out.exit_code != 0 {
            // As in the reference, signing trouble does not fail the build;
            // the checksums are recomputed from whatever is stored.
            log::warn!("signing exited {}: {}", out.exit_code, out.stderr.trim());
        }
        Ok(())
    }
}

/// Run one build. The container is removed on every path.
///
/// Phases reported: `Init`, `ContainerSetup`, `ValidateRevision`,
/// `ValidateManifest`, `BuildingImage`, `SigningImages` (only with a build
/// key) and `Done`; setting `Failed` or re-queueing is the worker's call.
pub fn run_build(
    config: &Config,
    runtime: &dyn ContainerRuntime,
    worker_id: &str,
    job: &BuildJob,
    progress: &dyn Progress,
) -> Result<BuildSuccess, BuildFailure> {
    Build {
        config,
        runtime,
        job,
        progress,
        stdout: String::new(),
        stderr: String::new(),
        build_cmd: Vec::new(),
        timings: Vec::new(),
    }
    .run(worker_id)
}
