//! `FakeRuntime`: an in-process stand-in for a Podman service running
//! OpenWrt ImageBuilder containers, behind the same `ContainerRuntime`
//! trait as the real client. It answers `make info`, `make manifest` and
//! `make image` with the samples in `tests/fixtures/imagebuilder/` (writing
//! into BIN_DIR what an ImageBuilder writes there: images, manifest,
//! profiles.json and sha256sums with the images' real checksums), keeps a
//! small in-memory file system per container, and records every call.
//!
//! Package names with a meaning:
//! - `missing-pkg`: `make manifest` fails like a package manager that
//!   cannot find it;
//! - `conflict-pkg`: `make manifest` fails with a conflict against dnsmasq;
//! - `too-big-pkg`: `make image` warns that the image is too big;
//! - `slow-pkg`: `make image` takes `slow` long (returns 137 early when
//!   the container is killed or removed meanwhile).
//!
//! Knobs (atomics, flip them at any time): `unreachable`, `image_missing`,
//! `wrong_revision`, `apk` (read when a container is created),
//! `kill_make_image`, `lose_execs`, `hold_make_image`, and `set_slow`;
//! `making_images` counts the `make image` runs in progress.

#![allow(dead_code)]

use asu_builder::container::{
    ContainerError, ContainerInfo, ContainerRuntime, ContainerSpec, ExecOutput, ExecRequest,
    FileToPut, ImageOrigin,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const INFO: &str = include_str!("../fixtures/imagebuilder/info.txt");
pub const INFO_APK: &str = include_str!("../fixtures/imagebuilder/info-apk.txt");
pub const MANIFEST_OPKG: &str = include_str!("../fixtures/imagebuilder/manifest-opkg.txt");
pub const MANIFEST_APK: &str = include_str!("../fixtures/imagebuilder/manifest-apk.txt");
pub const ERROR_OPKG_MISSING: &str =
    include_str!("../fixtures/imagebuilder/error-opkg-missing.txt");
pub const ERROR_OPKG_CONFLICT: &str =
    include_str!("../fixtures/imagebuilder/error-opkg-conflict.txt");
pub const ERROR_APK_MISSING: &str = include_str!("../fixtures/imagebuilder/error-apk-missing.txt");
pub const ERROR_APK_CONFLICT: &str =
    include_str!("../fixtures/imagebuilder/error-apk-conflict.txt");
pub const ERROR_TOO_BIG: &str = include_str!("../fixtures/imagebuilder/error-too-big.txt");
pub const PROFILES_JSON: &str = include_str!("../fixtures/imagebuilder/profiles.json");

/// Revision printed by `make info` (matches the upstream test fixtures).
pub const REVISION: &str = "r15666-8019c54d8a";
/// Revision printed instead when `wrong_revision` is set.
pub const WRONG_REVISION: &str = "r99999-0000000000";
/// The profile the samples describe.
pub const PROFILE: &str = "testprofile";
/// The image `make image` writes (named in the fixture profiles.json).
pub const SYSUPGRADE_IMAGE: &str =
    "openwrt-1.2.3-testtarget-testsubtarget-testprofile-squashfs-sysupgrade.bin";
pub const KERNEL_IMAGE: &str = "openwrt-1.2.3-testtarget-testsubtarget-testprofile-kernel.bin";
/// The image's manifest file `make image` writes next to it.
pub const MANIFEST_FILE: &str = "openwrt-1.2.3-testtarget-testsubtarget-testprofile.manifest";
/// Appended to each image by the fake signing step.
pub const FAKE_SIGNATURE: &[u8] = b"\n--fake-fwtool-signature--\n";

pub const OPKG_REPOSITORIES: &str = "\
src/gz openwrt_core https://downloads.openwrt.org/releases/1.2.3/targets/testtarget/testsubtarget/packages
src/gz openwrt_base https://downloads.openwrt.org/releases/1.2.3/packages/x86_64/base
src imagebuilder file:packages
option check_signature
";
pub const APK_REPOSITORIES: &str = "\
https://downloads.openwrt.org/releases/1.2.3/targets/testtarget/testsubtarget/packages/packages.adb
https://downloads.openwrt.org/releases/1.2.3/packages/x86_64/base/packages.adb
";

/// One recorded trait call.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Ping,
    EnsureImage(String),
    EnsureNetwork(String),
    Create(ContainerSpec),
    Start(String),
    Exec {
        id: String,
        req: ExecRequest,
    },
    PutFiles {
        id: String,
        dest_dir: String,
        files: Vec<FileToPut>,
    },
    CopyOut {
        id: String,
        src_dir: String,
        dest: PathBuf,
    },
    Kill(String),
    Remove(String),
    ListByLabel(String),
}

#[derive(Debug, Clone)]
pub struct FakeContainer {
    pub id: String,
    pub spec: ContainerSpec,
    pub apk: bool,
    pub started: bool,
    pub killed: bool,
    pub removed: bool,
    /// Absolute path → content.
    pub files: BTreeMap<String, Vec<u8>>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    containers: Vec<FakeContainer>,
    calls: Vec<Call>,
    extra_profiles: Vec<String>,
}

pub struct FakeRuntime {
    /// Every call fails with `ContainerError::Unreachable`.
    pub unreachable: AtomicBool,
    /// `ensure_image` fails with `ContainerError::ImageMissing`.
    pub image_missing: AtomicBool,
    /// `make info` reports `WRONG_REVISION`.
    pub wrong_revision: AtomicBool,
    /// New containers are apk ImageBuilders (`repositories`, apk output).
    pub apk: AtomicBool,
    /// `make image` exits 137 as if the container had been killed.
    pub kill_make_image: AtomicBool,
    /// While set, every `make image` waits (until cleared, or its
    /// container is killed or removed).
    pub hold_make_image: AtomicBool,
    /// How many `make image` execs are running right now.
    pub making_images: AtomicUsize,
    /// This many of the next execs fail as if the runtime went away
    /// mid-build, while pings keep answering.
    pub lose_execs: AtomicUsize,
    slow: Mutex<Duration>,
    state: Mutex<State>,
}

impl Default for FakeRuntime {
    fn default() -> Self {
        FakeRuntime::new()
    }
}

fn unreachable_err() -> ContainerError {
    ContainerError::Unreachable {
        socket: "/fake/podman.sock".into(),
        reason: "connection refused (fake)".into(),
    }
}

fn out(exit_code: i64, stdout: impl Into<String>, stderr: impl Into<String>) -> ExecOutput {
    ExecOutput {
        exit_code,
        stdout: stdout.into(),
        stderr: stderr.into(),
    }
}

fn resolve(workdir: &str, path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{}/{}", workdir.trim_end_matches('/'), path)
    }
}

fn make_arg<'a>(cmd: &'a [String], key: &str) -> Option<&'a str> {
    cmd.iter()
        .find_map(|a| a.strip_prefix(key)?.strip_prefix('='))
}

fn packages_of(cmd: &[String]) -> Vec<String> {
    make_arg(cmd, "PACKAGES")
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

impl FakeRuntime {
    pub fn new() -> Self {
        FakeRuntime {
            unreachable: AtomicBool::new(false),
            image_missing: AtomicBool::new(false),
            wrong_revision: AtomicBool::new(false),
            apk: AtomicBool::new(false),
            kill_make_image: AtomicBool::new(false),
            lose_execs: AtomicUsize::new(0),
            hold_make_image: AtomicBool::new(false),
            making_images: AtomicUsize::new(0),
            slow: Mutex::new(Duration::from_secs(2)),
            state: Mutex::new(State::default()),
        }
    }

    /// An apk-mode runtime.
    pub fn new_apk() -> Self {
        let f = FakeRuntime::new();
        f.apk.store(true, Ordering::SeqCst);
        f
    }

    pub fn set_unreachable(&self, on: bool) {
        self.unreachable.store(on, Ordering::SeqCst);
    }

    /// How long `make image` takes with `slow-pkg`.
    pub fn set_slow(&self, d: Duration) {
        *self.slow.lock().unwrap() = d;
    }

    /// Make `make info` list another profile (with the sample profile's
    /// packages) and `make image` describe it in profiles.json.
    pub fn add_profile(&self, name: &str) {
        self.state
            .lock()
            .unwrap()
            .extra_profiles
            .push(name.to_owned());
    }

    // ---- inspection -------------------------------------------------------

    /// How many health checks (pings) the runtime has answered or refused.
    pub fn pings(&self) -> usize {
        let st = self.state.lock().unwrap();
        st.calls.iter().filter(|c| **c == Call::Ping).count()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn containers(&self) -> Vec<FakeContainer> {
        self.state.lock().unwrap().containers.clone()
    }

    /// Specs of every container created so far.
    pub fn created(&self) -> Vec<ContainerSpec> {
        self.containers().into_iter().map(|c| c.spec).collect()
    }

    /// Ids passed to `remove` (including ids that did not exist).
    pub fn removed(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Remove(id) => Some(id),
                _ => None,
            })
            .collect()
    }

    /// Containers created and not removed.
    pub fn live_containers(&self) -> Vec<String> {
        self.containers()
            .into_iter()
            .filter(|c| !c.removed)
            .map(|c| c.id)
            .collect()
    }

    /// Argv of every exec, in order.
    pub fn execs(&self) -> Vec<Vec<String>> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Exec { req, .. } => Some(req.cmd),
                _ => None,
            })
            .collect()
    }

    /// The exec whose argv starts with `prefix` (last one), e.g. `["make", "image"]`.
    pub fn exec_starting_with(&self, prefix: &[&str]) -> Option<Vec<String>> {
        self.execs()
            .into_iter()
            .rev()
            .find(|cmd| cmd.len() >= prefix.len() && cmd.iter().zip(prefix).all(|(a, b)| a == b))
    }

    /// Every uploaded file as (absolute path, content), in upload order.
    pub fn put_files(&self) -> Vec<(String, Vec<u8>)> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::PutFiles {
                    dest_dir, files, ..
                } => Some(
                    files
                        .into_iter()
                        .map(|f| (resolve(&dest_dir, &f.path), f.data))
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// The last uploaded content of `path` (absolute), as text.
    pub fn uploaded(&self, path: &str) -> Option<String> {
        self.put_files()
            .into_iter()
            .rev()
            .find(|(p, _)| p == path)
            .map(|(_, d)| String::from_utf8_lossy(&d).into_owned())
    }

    /// A file of the (last created) container, after the build ran.
    pub fn container_file(&self, path: &str) -> Option<Vec<u8>> {
        let st = self.state.lock().unwrap();
        st.containers.last()?.files.get(path).cloned()
    }

    // ---- internals ----------------------------------------------------------

    fn record(&self, call: Call) -> Result<(), ContainerError> {
        self.state.lock().unwrap().calls.push(call);
        if self.unreachable.load(Ordering::SeqCst) {
            Err(unreachable_err())
        } else {
            Ok(())
        }
    }

    /// Run `f` on a live container.
    fn with_container<T>(
        &self,
        id: &str,
        f: impl FnOnce(&mut FakeContainer) -> Result<T, ContainerError>,
    ) -> Result<T, ContainerError> {
        let mut st = self.state.lock().unwrap();
        let c = st
            .containers
            .iter_mut()
            .find(|c| (c.id == id || c.spec.name == id) && !c.removed)
            .ok_or_else(|| ContainerError::Api {
                status: 404,
                message: format!("no container with name or ID \"{id}\" found"),
            })?;
        f(c)
    }

    fn running(&self, id: &str) -> Result<bool, ContainerError> {
        self.with_container(id, |c| {
            if !c.started || c.killed {
                return Err(ContainerError::Api {
                    status: 409,
                    message: format!("container {id} is not running"),
                });
            }
            Ok(c.apk)
        })
    }

    fn info_text(&self, apk: bool) -> String {
        let mut text = if apk { INFO_APK } else { INFO }.to_owned();
        if self.wrong_revision.load(Ordering::SeqCst) {
            text = text.replace(REVISION, WRONG_REVISION);
        }
        for p in &self.state.lock().unwrap().extra_profiles {
            text.push_str(&format!(
                "{p}:\n    Extra {p}\n    Packages: kmod-bnx2 kmod-e1000e kmod-e1000 kmod-forcedeth kmod-igb kmod-ixgbe kmod-r8169\n    hasImageMetadata: 1\n"
            ));
        }
        text
    }

    fn make_manifest(&self, apk: bool, cmd: &[String]) -> ExecOutput {
        let packages = packages_of(cmd);
        let has = |p: &str| packages.iter().any(|x| x == p);
        if has("missing-pkg") {
            return out(
                2,
                "",
                if apk {
                    ERROR_APK_MISSING
                } else {
                    ERROR_OPKG_MISSING
                },
            );
        }
        if has("conflict-pkg") {
            return out(
                2,
                "",
                if apk {
                    ERROR_APK_CONFLICT
                } else {
                    ERROR_OPKG_CONFLICT
                },
            );
        }
        out(0, manifest_text(apk, &packages), "")
    }

    fn make_image(&self, id: &str, apk: bool, cmd: &[String]) -> ExecOutput {
        if self.kill_make_image.load(Ordering::SeqCst) {
            return out(137, "", "");
        }
        let packages = packages_of(cmd);
        let has = |p: &str| packages.iter().any(|x| x == p);
        while self.hold_make_image.load(Ordering::SeqCst) {
            if self.running(id).is_err() {
                return out(137, "", "");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if has("slow-pkg") {
            let until = Instant::now() + *self.slow.lock().unwrap();
            while Instant::now() < until {
                if self.running(id).is_err() {
                    return out(137, "", "");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let profile = make_arg(cmd, "PROFILE").unwrap_or(PROFILE).to_owned();
        let stdout = format!(
            "Building images for testtarget - {profile}\nPackages: {}\n\nInstalling packages...\n",
            packages.join(" ")
        );
        if has("too-big-pkg") {
            // Like the ImageBuilder: a warning, the image is dropped, exit 0.
            return out(0, stdout, ERROR_TOO_BIG);
        }
        let Some(bin_dir) = make_arg(cmd, "BIN_DIR").map(str::to_owned) else {
            return out(2, stdout, "make: *** BIN_DIR not set.  Stop.\n");
        };
        let mut profiles: serde_json::Value = serde_json::from_str(PROFILES_JSON).expect("fixture");
        if profile != PROFILE
            && let Some(map) = profiles["profiles"].as_object_mut()
            && let Some(entry) = map.remove(PROFILE)
        {
            map.insert(profile.clone(), entry);
        }
        let image = format!("FAKE SYSUPGRADE IMAGE\n{}\napk={apk}\n", cmd.join(" ")).into_bytes();
        let kernel = b"FAKE KERNEL\n".to_vec();
        let manifest = manifest_text(apk, &packages).into_bytes();
        // Like the ImageBuilder: profiles.json and sha256sums carry the
        // checksums of the images as written.
        let image_sum = sha256_hex(&image);
        let kernel_sum = sha256_hex(&kernel);
        if let Some(images) = profiles["profiles"][&profile]["images"].as_array_mut() {
            for entry in images {
                let sum = if entry["name"] == SYSUPGRADE_IMAGE {
                    &image_sum
                } else {
                    &kernel_sum
                };
                entry["sha256"] = sum.as_str().into();
                entry["sha256_unsigned"] = sum.as_str().into();
            }
        }
        let sums = format!(
            "{image_sum} *{SYSUPGRADE_IMAGE}\n{kernel_sum} *{KERNEL_IMAGE}\n{} *{MANIFEST_FILE}\n",
            sha256_hex(&manifest)
        );
        let files = [
            (SYSUPGRADE_IMAGE.to_owned(), image),
            (KERNEL_IMAGE.to_owned(), kernel),
            (MANIFEST_FILE.to_owned(), manifest),
            (
                "profiles.json".to_owned(),
                serde_json::to_vec_pretty(&profiles).expect("json"),
            ),
            ("sha256sums".to_owned(), sums.into_bytes()),
        ];
        let written = self.with_container(id, |c| {
            for (name, data) in files {
                c.files
                    .insert(format!("{}/{name}", bin_dir.trim_end_matches('/')), data);
            }
            Ok(())
        });
        match written {
            Ok(()) => out(0, stdout, ""),
            Err(_) => out(137, stdout, ""),
        }
    }

    fn sign(&self, id: &str, images: &[String]) -> ExecOutput {
        let signed = self.with_container(id, |c| {
            let mut n = 0;
            for (path, data) in c.files.iter_mut() {
                if path.starts_with("/builder/")
                    && images.iter().any(|i| path.ends_with(&format!("/{i}")))
                {
                    data.extend_from_slice(FAKE_SIGNATURE);
                    n += 1;
                }
            }
            Ok(n)
        });
        match signed {
            Ok(n) => out(0, format!("signed {n} images\n"), ""),
            Err(_) => out(137, "", ""),
        }
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    asu_builder::hash::hex(&sha2::Sha256::digest(data))
}

/// The sample manifest with the requested packages applied: `-pkg`
/// removes, anything else is installed (version `1.0-1` / `1.0-r1`).
pub fn manifest_text(apk: bool, packages: &[String]) -> String {
    let (sample, sep, version) = if apk {
        (MANIFEST_APK, " ", "1.0-r1")
    } else {
        (MANIFEST_OPKG, " - ", "1.0-1")
    };
    let mut m: BTreeMap<String, String> = sample
        .lines()
        .filter_map(|l| l.split_once(sep))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    for p in packages {
        match p.strip_prefix('-') {
            Some(name) => {
                m.remove(name);
            }
            None => {
                m.entry(p.trim_start_matches('+').to_owned())
                    .or_insert_with(|| version.to_owned());
            }
        }
    }
    m.iter().map(|(n, v)| format!("{n}{sep}{v}\n")).collect()
}

impl ContainerRuntime for FakeRuntime {
    fn ping(&self) -> Result<String, ContainerError> {
        self.record(Call::Ping)?;
        Ok("4.3.1-fake".into())
    }

    fn ensure_image(&self, image: &str) -> Result<ImageOrigin, ContainerError> {
        self.record(Call::EnsureImage(image.into()))?;
        if self.image_missing.load(Ordering::SeqCst) {
            return Err(ContainerError::ImageMissing {
                image: image.into(),
                reason: "manifest unknown (fake)".into(),
            });
        }
        Ok(ImageOrigin::Pulled)
    }

    fn ensure_network(&self, name: &str) -> Result<(), ContainerError> {
        self.record(Call::EnsureNetwork(name.into()))
    }

    fn create(&self, spec: &ContainerSpec) -> Result<String, ContainerError> {
        self.record(Call::Create(spec.clone()))?;
        let apk = self.apk.load(Ordering::SeqCst);
        let mut st = self.state.lock().unwrap();
        if st
            .containers
            .iter()
            .any(|c| c.spec.name == spec.name && !c.removed)
        {
            // Podman 4's answer (newer versions say 409).
            return Err(ContainerError::Api {
                status: 500,
                message: format!(
                    "create container {0}: creating container storage: the container name \"{0}\" \
                     is already in use by {1}. You have to remove that container to be able to reuse \
                     that name: that name is already in use",
                    spec.name, "0123456789ab"
                ),
            });
        }
        st.next_id += 1;
        let id = format!("fake{:060x}", st.next_id);
        let mut files = BTreeMap::new();
        if apk {
            files.insert(
                "/builder/repositories".into(),
                APK_REPOSITORIES.as_bytes().to_vec(),
            );
        } else {
            files.insert(
                "/builder/repositories.conf".into(),
                OPKG_REPOSITORIES.as_bytes().to_vec(),
            );
        }
        files.insert(
            "/builder/setup.sh".into(),
            b"#!/bin/sh\necho fake setup\n".to_vec(),
        );
        st.containers.push(FakeContainer {
            id: id.clone(),
            spec: spec.clone(),
            apk,
            started: false,
            killed: false,
            removed: false,
            files,
        });
        Ok(id)
    }

    fn start(&self, id: &str) -> Result<(), ContainerError> {
        self.record(Call::Start(id.into()))?;
        self.with_container(id, |c| {
            c.started = true;
            Ok(())
        })
    }

    fn exec(&self, id: &str, req: &ExecRequest) -> Result<ExecOutput, ContainerError> {
        self.record(Call::Exec {
            id: id.into(),
            req: req.clone(),
        })?;
        let lose = |n: usize| n.checked_sub(1);
        if self
            .lose_execs
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, lose)
            .is_ok()
        {
            return Err(unreachable_err());
        }
        let apk = self.running(id)?;
        let workdir = req.workdir.clone().unwrap_or_else(|| "/builder".into());
        let cmd = &req.cmd;
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let result = match args.as_slice() {
            ["make", "info"] => out(0, self.info_text(apk), ""),
            ["make", "manifest", ..] => self.make_manifest(apk, cmd),
            ["make", "image", ..] => {
                self.making_images.fetch_add(1, Ordering::SeqCst);
                let r = self.make_image(id, apk, cmd);
                self.making_images.fetch_sub(1, Ordering::SeqCst);
                r
            }
            ["sh", "setup.sh"] => out(0, "Downloading ImageBuilder (fake)\n", ""),
            ["sh", "-c", script, _argv0, images @ ..] if script.contains("usign") => {
                let images: Vec<String> = images.iter().map(|s| s.to_string()).collect();
                self.sign(id, &images)
            }
            ["test", "-f", path] => {
                let p = resolve(&workdir, path);
                let found = self.with_container(id, |c| Ok(c.files.contains_key(&p)))?;
                out(if found { 0 } else { 1 }, "", "")
            }
            ["cat", path] => {
                let p = resolve(&workdir, path);
                match self.with_container(id, |c| Ok(c.files.get(&p).cloned()))? {
                    Some(d) => out(0, String::from_utf8_lossy(&d), ""),
                    None => out(
                        1,
                        "",
                        format!("cat: can't open '{path}': No such file or directory\n"),
                    ),
                }
            }
            ["sed", "-i", expr, path] => {
                let p = resolve(&workdir, path);
                let Some((from, to)) = expr
                    .strip_prefix("s|")
                    .and_then(|e| e.strip_suffix("|g"))
                    .and_then(|e| e.split_once('|'))
                else {
                    return Ok(out(1, "", "sed: unsupported expression (fake)\n"));
                };
                let done = self.with_container(id, |c| {
                    Ok(c.files.get_mut(&p).map(|d| {
                        *d = String::from_utf8_lossy(d).replace(from, to).into_bytes();
                    }))
                })?;
                match done {
                    Some(()) => out(0, "", ""),
                    None => out(2, "", format!("sed: {path}: No such file or directory\n")),
                }
            }
            _ => out(
                127,
                "",
                format!(
                    "sh: {}: not found\n",
                    cmd.first().map_or("", |s| s.as_str())
                ),
            ),
        };
        Ok(result)
    }

    fn put_files(
        &self,
        id: &str,
        dest_dir: &str,
        files: &[FileToPut],
    ) -> Result<(), ContainerError> {
        self.record(Call::PutFiles {
            id: id.into(),
            dest_dir: dest_dir.into(),
            files: files.to_vec(),
        })?;
        self.with_container(id, |c| {
            for f in files {
                c.files.insert(resolve(dest_dir, &f.path), f.data.clone());
            }
            Ok(())
        })
    }

    fn copy_out(&self, id: &str, src_dir: &str, dest: &Path) -> Result<u64, ContainerError> {
        self.record(Call::CopyOut {
            id: id.into(),
            src_dir: src_dir.into(),
            dest: dest.to_owned(),
        })?;
        let prefix = format!("{}/", src_dir.trim_end_matches('/'));
        let files: Vec<(String, Vec<u8>)> = self.with_container(id, |c| {
            Ok(c.files
                .iter()
                .filter_map(|(p, d)| {
                    p.strip_prefix(&prefix)
                        .map(|rel| (rel.to_owned(), d.clone()))
                })
                .collect())
        })?;
        let io = |e: std::io::Error| ContainerError::Io(e.to_string());
        std::fs::create_dir_all(dest).map_err(io)?;
        let mut bytes = 0;
        for (rel, data) in files {
            let target = dest.join(&rel);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            std::fs::write(&target, &data).map_err(io)?;
            bytes += data.len() as u64;
        }
        Ok(bytes)
    }

    fn kill(&self, id: &str) -> Result<(), ContainerError> {
        self.record(Call::Kill(id.into()))?;
        let _ = self.with_container(id, |c| {
            c.killed = true;
            Ok(())
        });
        Ok(())
    }

    fn remove(&self, id: &str) -> Result<(), ContainerError> {
        self.record(Call::Remove(id.into()))?;
        let _ = self.with_container(id, |c| {
            c.removed = true;
            c.killed = true;
            Ok(())
        });
        Ok(())
    }

    fn list_by_label(&self, label: &str) -> Result<Vec<ContainerInfo>, ContainerError> {
        self.record(Call::ListByLabel(label.into()))?;
        let (key, value) = match label.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (label, None),
        };
        let st = self.state.lock().unwrap();
        Ok(st
            .containers
            .iter()
            .filter(|c| !c.removed)
            .filter(|c| match (c.spec.labels.get(key), value) {
                (Some(v), Some(want)) => v == want,
                (Some(_), None) => true,
                (None, _) => false,
            })
            .map(|c| ContainerInfo {
                id: c.id.clone(),
                name: c.spec.name.clone(),
                state: if c.killed {
                    "exited".into()
                } else if c.started {
                    "running".into()
                } else {
                    "created".into()
                },
                labels: c.spec.labels.clone(),
            })
            .collect())
    }
}
