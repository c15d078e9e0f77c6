//! `ContainerRuntime` over Podman's libpod REST API on a Unix socket.
//!
//! Synchronous: one blocking ureq agent with a Unix-socket transport
//! (`uds`). Connections are pooled; a pooled connection that the service
//! closed (restart) is detected before reuse and replaced. Exec sessions
//! are close-delimited streams and always use a fresh connection, and so
//! does the health check (`ping`), so that it fails when new connections
//! do. Every call has a deadline (`Timeouts`).

mod archive;
mod demux;
mod errors;
mod spec;
mod timeouts;
mod uds;

use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use ureq::http::Response;
use ureq::typestate::{WithBody, WithoutBody};
use ureq::{Agent, Body, RequestBuilder};

use super::{
    ContainerError, ContainerInfo, ContainerRuntime, ContainerSpec, ExecOutput, ExecRequest,
    FileToPut, ImageOrigin,
};
use archive::{ExtractError, TrackedReader};
use demux::TailBuffer;
use errors::ERROR_BODY_LIMIT;
pub use spec::RLimits;
use spec::{PullOutcome, path_segment};
pub use timeouts::Timeouts;

/// Base of every call. The host is a placeholder (never resolved); v4.0.0
/// is libpod's minimum API version, accepted by every 4.x/5.x service.
const API: &str = "http://d/v4.0.0/libpod";

/// Default cap on each of stdout/stderr kept from one exec.
const DEFAULT_EXEC_OUTPUT_CAP: usize = 4 * 1024 * 1024;
/// Default cap on the bytes one `copy_out` may write (disk protection).
const DEFAULT_COPY_LIMIT: u64 = 8 * 1024 * 1024 * 1024;

/// Client for one podman service socket.
pub struct Podman {
    socket: PathBuf,
    agent: Agent,
    /// For the health check: never pooled, so each ping proves that a new
    /// connection can be made, as every build's exec needs one.
    probe: Agent,
    timeouts: Timeouts,
    exec_output_cap: usize,
    copy_limit: u64,
    rlimits: Option<RLimits>,
}

impl std::fmt::Debug for Podman {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Podman")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct IdBody {
    #[serde(rename = "Id")]
    id: String,
}

#[derive(Deserialize)]
struct ExecInspect {
    #[serde(rename = "ExitCode", default)]
    exit_code: i64,
    #[serde(rename = "Running", default)]
    running: bool,
}

#[derive(Deserialize)]
struct ListEntry {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Names", default)]
    names: Option<Vec<String>>,
    #[serde(rename = "State", default)]
    state: String,
    #[serde(rename = "Labels", default)]
    labels: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct VersionBody {
    #[serde(rename = "Version")]
    version: String,
}

impl Podman {
    /// A client for the service listening on `socket_path`. No I/O happens
    /// until the first call.
    pub fn new(socket_path: &Path) -> Podman {
        let timeouts = Timeouts::default();
        Podman {
            socket: socket_path.to_path_buf(),
            agent: Self::agent(socket_path, &timeouts, true),
            probe: Self::agent(socket_path, &timeouts, false),
            timeouts,
            exec_output_cap: DEFAULT_EXEC_OUTPUT_CAP,
            copy_limit: DEFAULT_COPY_LIMIT,
            rlimits: None,
        }
    }

    /// Every call sets its own deadline (`Timeouts`); the agent's global
    /// one is only the backstop for a call that forgot.
    fn agent(socket_path: &Path, timeouts: &Timeouts, pooled: bool) -> Agent {
        let mut config = Agent::config_builder();
        if !pooled {
            config = config
                .max_idle_connections(0)
                .max_idle_connections_per_host(0);
        }
        let config = config
            // 404/409/304 are answers we handle, not errors.
            .http_status_as_error(false)
            .timeout_connect(Some(timeouts.connect))
            .timeout_global(Some(timeouts.change))
            .user_agent("asu-builder")
            .build();
        uds::agent(socket_path, config)
    }

    /// Replace every deadline.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Podman {
        self.agent = Self::agent(&self.socket, &timeouts, true);
        self.probe = Self::agent(&self.socket, &timeouts, false);
        self.timeouts = timeouts;
        self
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Upper bound on one image pull, stream included.
    pub fn with_pull_timeout(mut self, timeout: Duration) -> Podman {
        self.timeouts.pull = timeout;
        self
    }

    /// Upper bound on one exec session, its output stream included.
    pub fn with_exec_timeout(mut self, timeout: Duration) -> Podman {
        self.timeouts.exec = timeout;
        self
    }

    /// Bytes kept (from the end) of each of an exec's stdout and stderr.
    pub fn with_exec_output_cap(mut self, bytes: usize) -> Podman {
        self.exec_output_cap = bytes.max(1);
        self
    }

    /// Bytes one `copy_out` may write before it is refused as unsafe.
    pub fn with_copy_limit(mut self, bytes: u64) -> Podman {
        self.copy_limit = bytes;
        self
    }

    /// Sets nofile and nproc on every container instead of relying on
    /// containers.conf `default_ulimits` (podman needs both or neither).
    pub fn with_rlimits(mut self, limits: RLimits) -> Podman {
        self.rlimits = Some(limits);
        self
    }

    /// Whether the network exists, without creating it (`asu-builder
    /// doctor`; builds use `ensure_network`).
    pub fn network_exists(&self, name: &str) -> Result<bool, ContainerError> {
        let what = format!("network {name}");
        let url = Self::url(&format!("/networks/{}/exists", path_segment(name)));
        Ok(self.call_drained(&what, self.agent.get(url).call(), &[204, 404])? == 204)
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    fn url(path: &str) -> String {
        format!("{API}{path}")
    }

    // One builder per method; each call names its deadline, answer body
    // included (`timeout_global`).

    fn get(&self, path: &str, deadline: Duration) -> RequestBuilder<WithoutBody> {
        let r = self.agent.get(Self::url(path));
        r.config().timeout_global(Some(deadline)).build()
    }

    fn delete(&self, path: &str, deadline: Duration) -> RequestBuilder<WithoutBody> {
        let r = self.agent.delete(Self::url(path));
        r.config().timeout_global(Some(deadline)).build()
    }

    fn post(&self, path: &str, deadline: Duration) -> RequestBuilder<WithBody> {
        let r = self.agent.post(Self::url(path));
        r.config().timeout_global(Some(deadline)).build()
    }

    fn put(&self, path: &str, deadline: Duration) -> RequestBuilder<WithBody> {
        let r = self.agent.put(Self::url(path));
        r.config().timeout_global(Some(deadline)).build()
    }

    /// Every call goes through here: `sent` is the request as sent, its
    /// transport failure is mapped, and an answer outside `accepted` becomes
    /// `Api` with libpod's own message. Callers handle the accepted answers.
    fn call(
        &self,
        what: &str,
        sent: Result<Response<Body>, ureq::Error>,
        accepted: &[u16],
    ) -> Result<Response<Body>, ContainerError> {
        let resp = sent.map_err(|e| errors::transport(&self.socket, what, e))?;
        if accepted.contains(&resp.status().as_u16()) {
            Ok(resp)
        } else {
            Err(errors::api(what, resp))
        }
    }

    /// `call`, with the (small) answer body read and dropped so the
    /// connection can go back to the pool; returns the status.
    fn call_drained(
        &self,
        what: &str,
        sent: Result<Response<Body>, ureq::Error>,
        accepted: &[u16],
    ) -> Result<u16, ContainerError> {
        let resp = self.call(what, sent, accepted)?;
        let status = resp.status().as_u16();
        Self::drain(resp);
        Ok(status)
    }

    /// Reads a JSON answer; a body that does not parse is a bad response.
    fn json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        mut resp: Response<Body>,
    ) -> Result<T, ContainerError> {
        resp.body_mut().read_json::<T>().map_err(|e| match e {
            ureq::Error::Json(j) => ContainerError::Api {
                status: 502,
                message: format!("{what}: unexpected answer from podman: {j}"),
            },
            other => errors::transport(&self.socket, what, other),
        })
    }

    /// Consumes a small body so the connection can return to the pool.
    fn drain(mut resp: Response<Body>) {
        let _ = resp
            .body_mut()
            .with_config()
            .limit(ERROR_BODY_LIMIT)
            .read_to_vec();
    }

    /// Id of the locally stored image `image`, `None` when absent.
    fn local_image_id(&self, image: &str) -> Result<Option<String>, ContainerError> {
        let what = format!("inspect image {image}");
        let path = format!("/images/{}/json", path_segment(image));
        let sent = self.get(&path, self.timeouts.query).call();
        let resp = self.call(&what, sent, &[200, 404])?;
        if resp.status().as_u16() == 404 {
            Self::drain(resp);
            return Ok(None);
        }
        Ok(Some(self.json::<IdBody>(&what, resp)?.id))
    }

    /// Asks podman to pull `image` from its registry (policy `always`, so an
    /// updated upstream image replaces the stored one), within the pull
    /// timeout.
    fn pull(&self, image: &str) -> Result<PullOutcome, ContainerError> {
        let what = format!("pull {image}");
        let sent = self
            .post("/images/pull", self.timeouts.pull)
            .query("reference", image)
            .query("policy", "always")
            .send_empty();
        let resp = self.call(&what, sent, &[200])?;
        let reader = BufReader::new(resp.into_body().into_reader());
        spec::read_pull_stream(reader).map_err(|e| errors::io(&self.socket, &what, e))
    }

    fn exec_inspect(&self, exec_id: &str) -> Result<ExecInspect, ContainerError> {
        let what = format!("inspect exec {exec_id}");
        let path = format!("/exec/{}/json", path_segment(exec_id));
        let resp = self.call(&what, self.get(&path, self.timeouts.query).call(), &[200])?;
        self.json(&what, resp)
    }
}

impl ContainerRuntime for Podman {
    fn ping(&self) -> Result<String, ContainerError> {
        let sent = self
            .probe
            .get(Self::url("/_ping"))
            .config()
            .timeout_global(Some(self.timeouts.ping))
            .build()
            .call();
        let resp = self.call("ping", sent, &[200])?;
        let header = resp
            .headers()
            .get("Libpod-Api-Version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Self::drain(resp);
        if let Some(v) = header {
            return Ok(v);
        }
        let sent = self.get("/version", self.timeouts.ping).call();
        let resp = self.call("version", sent, &[200])?;
        Ok(self.json::<VersionBody>("version", resp)?.version)
    }

    fn ensure_image(&self, image: &str) -> Result<ImageOrigin, ContainerError> {
        let local = self.local_image_id(image)?;
        let failure = match self.pull(image) {
            Ok(PullOutcome::Pulled { id }) => {
                return Ok(if local.as_deref() == Some(id.as_str()) {
                    ImageOrigin::AlreadyPresent
                } else {
                    ImageOrigin::Pulled
                });
            }
            Ok(PullOutcome::Failed(reason)) => reason,
            // Only a slow registry is worth falling back from; a dead
            // podman socket is not something a local image can fix.
            Err(ContainerError::Timeout(reason)) => reason,
            Err(e) => return Err(e),
        };
        if local.is_some() {
            log::warn!(
                "could not pull {image} (registry unreachable or pull failed: {failure}); \
                 using the locally stored image"
            );
            Ok(ImageOrigin::LocalFallback)
        } else {
            Err(ContainerError::ImageMissing {
                image: image.to_string(),
                reason: failure,
            })
        }
    }

    fn ensure_network(&self, name: &str) -> Result<(), ContainerError> {
        let what = format!("network {name}");
        let path = format!("/networks/{}/exists", path_segment(name));
        let sent = self.get(&path, self.timeouts.query).call();
        if self.call_drained(&what, sent, &[204, 404])? == 204 {
            return Ok(());
        }
        let what = format!("create network {name}");
        let sent = self
            .post("/networks/create", self.timeouts.change)
            .send_json(serde_json::json!({"name": name, "driver": "bridge"}));
        // 409: another worker created it in between; that is the goal.
        self.call_drained(&what, sent, &[200, 201, 409])?;
        Ok(())
    }

    fn create(&self, spec: &ContainerSpec) -> Result<String, ContainerError> {
        let what = format!("create container {}", spec.name);
        let body = spec::create_body(spec, self.rlimits);
        let sent = self
            .post("/containers/create", self.timeouts.change)
            .send_json(&body);
        let resp = self.call(&what, sent, &[200, 201])?;
        Ok(self.json::<IdBody>(&what, resp)?.id)
    }

    fn start(&self, id: &str) -> Result<(), ContainerError> {
        let what = format!("start container {id}");
        let path = format!("/containers/{}/start", path_segment(id));
        let sent = self.post(&path, self.timeouts.change).send_empty();
        // 304: already running.
        self.call_drained(&what, sent, &[200, 204, 304])?;
        Ok(())
    }

    fn exec(&self, id: &str, req: &ExecRequest) -> Result<ExecOutput, ContainerError> {
        let what = format!("exec {:?} in {id}", req.cmd);
        let path = format!("/containers/{}/exec", path_segment(id));
        let sent = self
            .post(&path, self.timeouts.query)
            .send_json(spec::exec_create_body(req));
        let resp = self.call(&what, sent, &[200, 201])?;
        let exec_id = self.json::<IdBody>(&what, resp)?.id;

        // The answer is a hijacked stream: 200, no length, frames until the
        // service closes the socket. No Upgrade headers (podman would answer
        // 101) and a JSON body is mandatory. No read timeout: a build step
        // may be silent for long. The session as a whole is bounded (the
        // container's own timeout normally ends it first).
        let path = format!("/exec/{}/start", path_segment(&exec_id));
        let sent = self
            .post(&path, self.timeouts.exec)
            .config()
            .timeout_recv_response(Some(self.timeouts.change))
            .build()
            .send_json(serde_json::json!({"Detach": false, "Tty": false}));
        let resp = self.call(&what, sent, &[200])?;
        let mut stdout = TailBuffer::new(self.exec_output_cap);
        let mut stderr = TailBuffer::new(self.exec_output_cap);
        demux::demux(resp.into_body().into_reader(), &mut stdout, &mut stderr)
            .map_err(|e| errors::io(&self.socket, &what, e))?;

        // The exit code is only final once the session stopped; the stream
        // ending first is normal, so give the bookkeeping a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut inspect = self.exec_inspect(&exec_id)?;
        while inspect.running && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            inspect = self.exec_inspect(&exec_id)?;
        }
        if inspect.running {
            return Err(ContainerError::Timeout(format!(
                "{what}: output ended but the exec session is still running"
            )));
        }
        for (name, buf) in [("stdout", &mut stdout), ("stderr", &mut stderr)] {
            let dropped = buf.dropped();
            if dropped > 0 {
                log::debug!("{what}: {name} truncated, {dropped} leading bytes dropped");
            }
        }
        Ok(ExecOutput {
            exit_code: inspect.exit_code,
            stdout: stdout.into_string(),
            stderr: stderr.into_string(),
        })
    }

    fn put_files(
        &self,
        id: &str,
        dest_dir: &str,
        files: &[FileToPut],
    ) -> Result<(), ContainerError> {
        let what = format!("upload {} file(s) to {id}:{dest_dir}", files.len());
        let tar = archive::build_tar(files)?;
        // The content type matters: with a form type podman extracts
        // nothing and still answers 200.
        let path = format!("/containers/{}/archive", path_segment(id));
        let sent = self
            .put(&path, self.timeouts.change)
            .query("path", dest_dir)
            .header("Content-Type", "application/x-tar")
            .send(&tar[..]);
        self.call_drained(&what, sent, &[200, 204])?;
        Ok(())
    }

    fn copy_out(&self, id: &str, src_dir: &str, dest: &Path) -> Result<u64, ContainerError> {
        let what = format!("copy {id}:{src_dir} to {}", dest.display());
        // "<dir>/." makes the archive hold the directory's contents, not a
        // top-level entry named after it.
        let src = format!("{}/.", src_dir.trim_end_matches('/'));
        let path = format!("/containers/{}/archive", path_segment(id));
        let sent = self
            .get(&path, self.timeouts.archive)
            .query("path", &src)
            .config()
            .timeout_recv_response(Some(self.timeouts.change))
            .timeout_per_read(Some(self.timeouts.archive_silence))
            .build()
            .call();
        let resp = self.call(&what, sent, &[200])?;
        let mut body = TrackedReader::new(resp.into_body().into_reader());
        let result = archive::extract(&mut body, dest, self.copy_limit);
        match result {
            Ok(n) => {
                // Tar padding after the end marker: read it (bounded) so
                // the connection can be reused.
                let _ = io::copy(&mut (&mut body).take(1 << 20), &mut io::sink());
                Ok(n)
            }
            Err(ExtractError::Unsafe(m)) => {
                Err(ContainerError::UnsafeArchive(format!("{what}: {m}")))
            }
            Err(ExtractError::Local(
                m,
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded,
            )) => Err(ContainerError::StoreFull(format!("{what}: {m}"))),
            Err(ExtractError::Local(m, _)) => Err(ContainerError::Io(format!("{what}: {m}"))),
            Err(ExtractError::Read(e)) => match body.failure.take() {
                Some(transport) => Err(errors::io(&self.socket, &what, transport)),
                None => Err(ContainerError::UnsafeArchive(format!(
                    "{what}: malformed archive: {e}"
                ))),
            },
        }
    }

    fn kill(&self, id: &str) -> Result<(), ContainerError> {
        let what = format!("kill container {id}");
        let path = format!("/containers/{}/kill", path_segment(id));
        let sent = self
            .post(&path, self.timeouts.change)
            .query("signal", "SIGKILL")
            .send_empty();
        match self.call_drained(&what, sent, &[200, 204, 404]) {
            Err(ContainerError::Api { status, message })
                if errors::is_not_running_message(status, &message) =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    fn remove(&self, id: &str) -> Result<(), ContainerError> {
        let what = format!("remove container {id}");
        let path = format!("/containers/{}", path_segment(id));
        let sent = self
            .delete(&path, self.timeouts.change)
            .query("force", "true")
            .query("volumes", "true")
            .query("timeout", "0")
            .call();
        self.call_drained(&what, sent, &[200, 204, 404])?;
        Ok(())
    }

    fn list_by_label(&self, label: &str) -> Result<Vec<ContainerInfo>, ContainerError> {
        let what = format!("list containers labelled {label}");
        let sent = self
            .get("/containers/json", self.timeouts.query)
            .query("all", "true")
            .query("filters", spec::label_filter(label))
            .call();
        let resp = self.call(&what, sent, &[200])?;
        let entries: Vec<ListEntry> = self.json(&what, resp)?;
        Ok(entries
            .into_iter()
            .map(|e| ContainerInfo {
                name: e
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                id: e.id,
                state: e.state,
                labels: e.labels.unwrap_or_default(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests;
