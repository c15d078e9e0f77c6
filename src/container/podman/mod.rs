//! `ContainerRuntime` over Podman's libpod REST API on a Unix socket.
//!
//! Synchronous: one blocking ureq agent with a Unix-socket transport
//! (`uds`). Connections are pooled; a pooled connection that the service
//! closed (restart) is detected before reuse and replaced. Exec sessions
//! are close-delimited streams and always use a fresh connection.

mod archive;
mod demux;
mod spec;
mod uds;

use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use ureq::http::Response;
use ureq::{Agent, Body};

use super::{
    ContainerError, ContainerInfo, ContainerRuntime, ContainerSpec, ExecOutput, ExecRequest,
    FileToPut, ImageOrigin,
};
use archive::{ExtractError, TrackedReader};
use demux::TailBuffer;
pub use spec::RLimits;
use spec::{PullOutcome, path_segment};

/// Base of every call. The host is a placeholder (never resolved); v4.0.0
/// is libpod's minimum API version, accepted by every 4.x/5.x service.
const API: &str = "http://d/v4.0.0/libpod";

/// Default bound on one image pull (multi-hundred-MB ImageBuilder images).
const DEFAULT_PULL_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Default cap on each of stdout/stderr kept from one exec.
const DEFAULT_EXEC_OUTPUT_CAP: usize = 4 * 1024 * 1024;
/// Default cap on the bytes one `copy_out` may write (disk protection).
const DEFAULT_COPY_LIMIT: u64 = 8 * 1024 * 1024 * 1024;
/// How long a non-streaming call may take to answer. Generous: a create or
/// remove can be slow on a loaded host, but must not hang forever.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest silence tolerated inside an archive download.
const ARCHIVE_READ_TIMEOUT: Duration = Duration::from_secs(300);
/// Most of an error body we read to find libpod's message.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// Client for one podman service socket.
pub struct Podman {
    socket: PathBuf,
    agent: Agent,
    pull_timeout: Duration,
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

/// libpod's error body: `{"cause": …, "message": …, "response": <code>}`.
#[derive(Deserialize)]
struct ApiErrorBody {
    message: Option<String>,
    cause: Option<String>,
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
        let config = Agent::config_builder()
            // 404/409/304 are answers we handle, not errors.
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_send_request(Some(CALL_TIMEOUT))
            .timeout_recv_response(Some(CALL_TIMEOUT))
            .user_agent("asu-builder")
            .build();
        Podman {
            socket: socket_path.to_path_buf(),
            agent: uds::agent(socket_path, config),
            pull_timeout: DEFAULT_PULL_TIMEOUT,
            exec_output_cap: DEFAULT_EXEC_OUTPUT_CAP,
            copy_limit: DEFAULT_COPY_LIMIT,
            rlimits: None,
        }
    }

    /// Upper bound on one image pull, stream included.
    pub fn with_pull_timeout(mut self, timeout: Duration) -> Podman {
        self.pull_timeout = timeout;
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

    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    fn url(path: &str) -> String {
        format!("{API}{path}")
    }

    fn socket_name(&self) -> String {
        self.socket.display().to_string()
    }

    /// A failed exchange: the socket is gone or refusing, a deadline
    /// passed, or the peer spoke something that is not HTTP.
    fn transport_error(&self, what: &str, e: ureq::Error) -> ContainerError {
        match e {
            ureq::Error::Timeout(t) => ContainerError::Timeout(format!("{what}: {t}")),
            ureq::Error::Io(io) => self.io_error(what, io),
            ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
                ContainerError::Unreachable {
                    socket: self.socket_name(),
                    reason: format!("{what}: {e}"),
                }
            }
            other => ContainerError::Api {
                status: 502,
                message: format!("{what}: malformed response from podman: {other}"),
            },
        }
    }

    /// An I/O error while talking to the service, possibly a ureq error
    /// wrapped by a body reader.
    fn io_error(&self, what: &str, e: io::Error) -> ContainerError {
        if e.get_ref().is_some_and(|inner| inner.is::<ureq::Error>()) {
            if let Some(Ok(u)) = e.into_inner().map(|b| b.downcast::<ureq::Error>()) {
                return self.transport_error(what, *u);
            }
            return ContainerError::Unreachable {
                socket: self.socket_name(),
                reason: format!("{what}: connection failed"),
            };
        }
        if matches!(
            e.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ) {
            return ContainerError::Timeout(format!("{what}: {e}"));
        }
        ContainerError::Unreachable {
            socket: self.socket_name(),
            reason: format!("{what}: {e}"),
        }
    }

    /// Turns a non-success answer into `Api`, with libpod's own message.
    fn api_error(&self, what: &str, mut resp: Response<Body>) -> ContainerError {
        let status = resp.status().as_u16();
        let raw = resp
            .body_mut()
            .with_config()
            .limit(ERROR_BODY_LIMIT)
            .lossy_utf8(true)
            .read_to_string()
            .unwrap_or_default();
        let message = match serde_json::from_str::<ApiErrorBody>(&raw) {
            Ok(ApiErrorBody {
                message: Some(m), ..
            }) if !m.is_empty() => m,
            Ok(ApiErrorBody { cause: Some(c), .. }) if !c.is_empty() => c,
            _ if !raw.trim().is_empty() => raw.trim().to_string(),
            _ => resp
                .status()
                .canonical_reason()
                .unwrap_or("unknown error")
                .to_string(),
        };
        ContainerError::Api {
            status,
            message: format!("{what}: {message}"),
        }
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
            other => self.transport_error(what, other),
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
        let resp = self
            .agent
            .get(Self::url(&format!("/images/{}/json", path_segment(image))))
            .call()
            .map_err(|e| self.transport_error(&what, e))?;
        match resp.status().as_u16() {
            200 => Ok(Some(self.json::<IdBody>(&what, resp)?.id)),
            404 => {
                Self::drain(resp);
                Ok(None)
            }
            _ => Err(self.api_error(&what, resp)),
        }
    }

    /// Asks podman to pull `image` from its registry (policy `always`, so an
    /// updated upstream image replaces the stored one), within the pull
    /// timeout.
    fn pull(&self, image: &str) -> Result<PullOutcome, ContainerError> {
        let what = format!("pull {image}");
        let resp = self
            .agent
            .post(Self::url("/images/pull"))
            .query("reference", image)
            .query("policy", "always")
            .config()
            .timeout_global(Some(self.pull_timeout))
            .timeout_recv_response(Some(self.pull_timeout))
            .build()
            .send_empty()
            .map_err(|e| self.transport_error(&what, e))?;
        if resp.status().as_u16() != 200 {
            return Err(self.api_error(&what, resp));
        }
        let reader = BufReader::new(resp.into_body().into_reader());
        spec::read_pull_stream(reader).map_err(|e| self.io_error(&what, e))
    }

    fn exec_inspect(&self, exec_id: &str) -> Result<ExecInspect, ContainerError> {
        let what = format!("inspect exec {exec_id}");
        let resp = self
            .agent
            .get(Self::url(&format!("/exec/{}/json", path_segment(exec_id))))
            .call()
            .map_err(|e| self.transport_error(&what, e))?;
        if resp.status().as_u16() != 200 {
            return Err(self.api_error(&what, resp));
        }
        self.json(&what, resp)
    }
}

/// Does a failed kill say "that container is not running"? Podman 4 answers
/// 500 "… container state improper"; newer versions use 409.
fn is_not_running_message(status: u16, message: &str) -> bool {
    status == 409
        || (status == 500
            && (message.contains("state improper") || message.contains("not running")))
}

impl ContainerRuntime for Podman {
    fn ping(&self) -> Result<String, ContainerError> {
        let resp = self
            .agent
            .get(Self::url("/_ping"))
            .call()
            .map_err(|e| self.transport_error("ping", e))?;
        if resp.status().as_u16() != 200 {
            return Err(self.api_error("ping", resp));
        }
        let header = resp
            .headers()
            .get("Libpod-Api-Version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Self::drain(resp);
        if let Some(v) = header {
            return Ok(v);
        }
        let resp = self
            .agent
            .get(Self::url("/version"))
            .call()
            .map_err(|e| self.transport_error("version", e))?;
        if resp.status().as_u16() != 200 {
            return Err(self.api_error("version", resp));
        }
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
        let resp = self
            .agent
            .get(Self::url(&format!(
                "/networks/{}/exists",
                path_segment(name)
            )))
            .call()
            .map_err(|e| self.transport_error(&what, e))?;
        match resp.status().as_u16() {
            204 => return Ok(()),
            404 => Self::drain(resp),
            _ => return Err(self.api_error(&what, resp)),
        }
        let what = format!("create network {name}");
        let resp = self
            .agent
            .post(Self::url("/networks/create"))
            .send_json(serde_json::json!({"name": name, "driver": "bridge"}))
            .map_err(|e| self.transport_error(&what, e))?;
        match resp.status().as_u16() {
            // 409: another worker created it in between; that is the goal.
            200 | 201 | 409 => {
                Self::drain(resp);
                Ok(())
            }
            _ => Err(self.api_error(&what, resp)),
        }
    }

    fn create(&self, spec: &ContainerSpec) -> Result<String, ContainerError> {
        let what = format!("create container {}", spec.name);
        let body = spec::create_body(spec, self.rlimits);
        let resp = self
            .agent
            .post(Self::url("/containers/create"))
            .send_json(&body)
            .map_err(|e| self.transport_error(&what, e))?;
        match resp.status().as_u16() {
            200 | 201 => Ok(self.json::<IdBody>(&what, resp)?.id),
            _ => Err(self.api_error(&what, resp)),
        }
    }

    fn start(&self, id: &str) -> Result<(), ContainerError> {
        let what = format!("start container {id}");
        let resp = self
            .agent
            .post(Self::url(&format!(
                "/containers/{}/start",
                path_segment(id)
            )))
            .send_empty()
            .map_err(|e| self.transport_error(&what, e))?;
        match resp.status().as_u16() {
            // 304: already running.
            204 | 304 | 200 => {
                Self::drain(resp);
                Ok(())
            }
            _ => Err(self.api_error(&what, resp)),
        }
    }

    fn exec(&self, id: &str, req: &ExecRequest) -> Result<ExecOutput, ContainerError> {
        let what = format!("exec {:?} in {id}", req.cmd);
        let resp = self
            .agent
            .post(Self::url(&format!("/containers/{}/exec", path_segment(id))))
            .send_json(spec::exec_create_body(req))
            .map_err(|e| self.transport_error(&what, e))?;
        let exec_id = match resp.status().as_u16() {
            200 | 201 => self.json::<IdBody>(&what, resp)?.id,
            _ => return Err(self.api_error(&what, resp)),
        };

        // The answer is a hijacked stream: 200, no length, frames until the
        // service closes the socket. No Upgrade headers (podman would answer
        // 101) and a JSON body is mandatory. No read timeout: a build step
        // may be silent for long; the container's own timeout bounds it.
        let resp = self
            .agent
            .post(Self::url(&format!(
                "/exec/{}/start",
                path_segment(&exec_id)
            )))
            .send_json(serde_json::json!({"Detach": false, "Tty": false}))
            .map_err(|e| self.transport_error(&what, e))?;
        if resp.status().as_u16() != 200 {
            return Err(self.api_error(&what, resp));
        }
        let mut stdout = TailBuffer::new(self.exec_output_cap);
        let mut stderr = TailBuffer::new(self.exec_output_cap);
        demux::demux(resp.into_body().into_reader(), &mut stdout, &mut stderr)
            .map_err(|e| self.io_error(&what, e))?;

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
        let resp = self
            .agent
            .put(Self::url(&format!(
                "/containers/{}/archive",
                path_segment(id)
            )))
            .query("path", dest_dir)
            .header("Content-Type", "application/x-tar")
            .send(&tar[..])
            .map_err(|e| self.transport_error(&what, e))?;
        match resp.status().as_u16() {
            200 | 204 => {
                Self::drain(resp);
                Ok(())
            }
            _ => Err(self.api_error(&what, resp)),
        }
    }

    fn copy_out(&self, id: &str, src_dir: &str, dest: &Path) -> Result<u64, ContainerError> {
        let what = format!("copy {id}:{src_dir} to {}", dest.display());
        // "<dir>/." makes the archive hold the directory's contents, not a
        // top-level entry named after it.
        let src = format!("{}/.", src_dir.trim_end_matches('/'));
        let resp = self
            .agent
            .get(Self::url(&format!(
                "/containers/{}/archive",
                path_segment(id)
            )))
            .query("path", &src)
            .config()
            .timeout_per_read(Some(ARCHIVE_READ_TIMEOUT))
            .build()
            .call()
            .map_err(|e| self.transport_error(&what, e))?;
        if resp.status().as_u16() != 200 {
            return Err(self.api_error(&what, resp));
        }
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
            Err(ExtractError::Local(m)) => Err(ContainerError::Io(format!("{what}: {m}"))),
            Err(ExtractError::Read(e)) => match body.failure.take() {
                Some(transport) => Err(self.io_error(&what, transport)),
                None => Err(ContainerError::UnsafeArchive(format!(
                    "{what}: malformed archive: {e}"
                ))),
            },
        }
    }

    fn kill(&self, id: &str) -> Result<(), ContainerError> {
        let what = format!("kill container {id}");
        let resp = self
            .agent
            .post(Self::url(&format!("/containers/{}/kill", path_segment(id))))
            .query("signal", "SIGKILL")
            .send_empty()
            .map_err(|e| self.transport_error(&what, e))?;
        match resp.status().as_u16() {
            200 | 204 | 404 => {
                Self::drain(resp);
                Ok(())
            }
            _ => match self.api_error(&what, resp) {
                ContainerError::Api { status, message }
                    if is_not_running_message(status, &message) =>
                {
                    Ok(())
                }
                e => Err(e),
            },
        }
    }

    fn remove(&self, id: &str) -> Result<(), ContainerError> {
        let what = format!("remove container {id}");
        let resp = self
            .agent
            .delete(Self::url(&format!("/containers/{}", path_segment(id))))
            .query("force", "true")
            .query("volumes", "true")
            .query("timeout", "0")
            .call()
            .map_err(|e| self.transport_error(&what, e))?;
        match resp.status().as_u16() {
            200 | 204 | 404 => {
                Self::drain(resp);
                Ok(())
            }
            _ => Err(self.api_error(&what, resp)),
        }
    }

    fn list_by_label(&self, label: &str) -> Result<Vec<ContainerInfo>, ContainerError> {
        let what = format!("list containers labelled {label}");
        let resp = self
            .agent
            .get(Self::url("/containers/json"))
            .query("all", "true")
            .query("filters", spec::label_filter(label))
            .call()
            .map_err(|e| self.transport_error(&what, e))?;
        if resp.status().as_u16() != 200 {
            return Err(self.api_error(&what, resp));
        }
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
mod tests {
    use super::*;

    #[test]
    fn not_running_answers_are_recognised() {
        assert!(is_not_running_message(
            500,
            "kill container x: can only kill running containers. x is in state exited: container state improper"
        ));
        assert!(is_not_running_message(409, "anything"));
        assert!(!is_not_running_message(500, "OCI runtime error"));
    }

    #[test]
    fn errors_for_a_missing_socket_are_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let p = Podman::new(&dir.path().join("none.sock"));
        match p.ping() {
            Err(ContainerError::Unreachable { socket, reason }) => {
                assert!(socket.ends_with("none.sock"));
                assert!(reason.contains("No such file"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
        // Reported as retryable.
        assert!(p.ping().unwrap_err().is_retryable());
    }

    #[test]
    fn wrapped_ureq_timeouts_become_timeouts() {
        let p = Podman::new(Path::new("/nonexistent.sock"));
        let wrapped = ureq::Error::Timeout(ureq::Timeout::PerRead).into_io();
        assert!(matches!(
            p.io_error("x", wrapped),
            ContainerError::Timeout(_)
        ));
        let plain = io::Error::new(io::ErrorKind::ConnectionReset, "reset");
        assert!(matches!(
            p.io_error("x", plain),
            ContainerError::Unreachable { .. }
        ));
    }
}
