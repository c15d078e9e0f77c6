//! HTTP over a Unix domain socket for ureq 3.5.
//!
//! ureq's transport layer is pluggable (`ureq::unversioned`, outside semver,
//! hence the `~3.5` pin): a [`Connector`] that opens a `UnixStream` instead
//! of TCP, and a [`Resolver`] that never does DNS — the URL host (`d`) is
//! only a placeholder in the Host header, which podman ignores.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time;

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, ShutdownHandle, Transport,
};
use ureq::{Agent, Error, Timeout};

/// An agent whose every request goes to `socket`, whatever the URL's host.
pub fn agent(socket: &Path, config: Config) -> Agent {
    Agent::with_parts(
        config,
        UnixConnector {
            path: socket.to_path_buf(),
        },
        NoDnsResolver,
    )
}

/// Returns one placeholder address so ureq never looks the host up (its
/// default resolver would even spawn a thread when a timeout is set).
#[derive(Debug)]
pub struct NoDnsResolver;

impl Resolver for NoDnsResolver {
    fn resolve(
        &self,
        _uri: &Uri,
        _config: &Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, Error> {
        let mut addrs = self.empty();
        addrs.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
        Ok(addrs)
    }
}

#[derive(Debug)]
pub struct UnixConnector {
    path: PathBuf,
}

impl<In: Transport> Connector<In> for UnixConnector {
    type Out = UnixTransport;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<In>,
    ) -> Result<Option<Self::Out>, Error> {
        let config = details.config;
        // The connect budget: `timeout_connect`, capped by what is left of
        // the call's global deadline.
        let limit = socket_timeout(details.timeout)?;
        let stream = connect(&self.path, limit).map_err(|e| io_error(e, details.timeout.reason))?;
        let transport = UnixTransport {
            stream: Arc::new(SharedStream(stream)),
            buffers: LazyBuffers::new(config.input_buffer_size(), config.output_buffer_size()),
            timeout_read: None,
            timeout_write: None,
        };
        // Lets Agent::shutdown() interrupt a blocked read (e.g. a long exec).
        let handle: Weak<dyn ShutdownHandle> =
            Arc::downgrade(&transport.stream) as Weak<dyn ShutdownHandle>;
        (details.register_shutdown)(handle)?;
        Ok(Some(transport))
    }
}

/// Connect to the socket at `path` within `limit`. A missing file or a
/// socket nobody listens on fails at once, but a service that stopped
/// accepting (hung, its backlog full) would hold a blocking `connect` for
/// ever: Linux bounds it by the socket's send timeout, so set that first.
fn connect(path: &Path, limit: Option<time::Duration>) -> io::Result<UnixStream> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_write_timeout(limit.filter(|t| !t.is_zero()))?;
    socket.connect(&SockAddr::unix(path)?)?;
    socket.set_write_timeout(None)?;
    Ok(UnixStream::from(std::os::fd::OwnedFd::from(socket)))
}

struct SharedStream(UnixStream);

impl ShutdownHandle for SharedStream {
    fn shutdown(&self) {
        // Already closed is fine.
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

pub struct UnixTransport {
    stream: Arc<SharedStream>,
    buffers: LazyBuffers,
    /// Last timeouts set on the socket, to skip redundant syscalls.
    timeout_read: Option<time::Duration>,
    timeout_write: Option<time::Duration>,
}

impl fmt::Debug for UnixTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixTransport").finish()
    }
}

/// The remaining budget as a socket timeout; `None` blocks indefinitely.
/// An exhausted budget is reported as a ureq timeout before any I/O.
fn socket_timeout(timeout: NextTimeout) -> Result<Option<time::Duration>, Error> {
    if timeout.after.is_not_happening() {
        return Ok(None);
    }
    let left: time::Duration = *timeout.after;
    if left.is_zero() {
        return Err(Error::Timeout(timeout.reason));
    }
    Ok(Some(left))
}

fn io_error(e: io::Error, reason: Timeout) -> Error {
    match e.kind() {
        // SO_RCVTIMEO/SO_SNDTIMEO expiry surfaces as WouldBlock on Linux.
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout(reason),
        _ => Error::Io(e),
    }
}

impl Transport for UnixTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        let timeout = timeout.for_write();
        let wanted = socket_timeout(timeout)?;
        if wanted != self.timeout_write {
            self.stream.0.set_write_timeout(wanted)?;
            self.timeout_write = wanted;
        }
        let output = &self.buffers.output()[..amount];
        (&self.stream.0)
            .write_all(output)
            .map_err(|e| io_error(e, timeout.reason))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        let timeout = timeout.for_read();
        let wanted = socket_timeout(timeout)?;
        if wanted != self.timeout_read {
            self.stream.0.set_read_timeout(wanted)?;
            self.timeout_read = wanted;
        }
        let input = self.buffers.input_append_buf();
        let amount = loop {
            match (&self.stream.0).read(input) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        }
        .map_err(|e| io_error(e, timeout.reason))?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    /// A pooled connection is reusable only when the peer has not closed it
    /// and has sent nothing unasked; a non-blocking 1-byte peek tells.
    /// This is what lets the pool recover after a podman service restart.
    fn is_open(&mut self) -> bool {
        let stream = &self.stream.0;
        if stream.set_nonblocking(true).is_err() {
            return false;
        }
        let mut buf = [0u8; 1];
        let open = matches!(
            (&*stream).read(&mut buf),
            Err(ref e) if e.kind() == io::ErrorKind::WouldBlock
        );
        open && stream.set_nonblocking(false).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::os::unix::net::UnixListener;
    use std::thread;

    fn config() -> Config {
        Agent::config_builder()
            .http_status_as_error(false)
            .timeout_recv_response(Some(time::Duration::from_secs(5)))
            .build()
    }

    /// A one-shot HTTP server on a Unix socket answering `replies` requests
    /// on a single connection (so pooling shows) and counting connections.
    fn serve(path: &Path, replies: usize) -> thread::JoinHandle<(usize, Vec<String>)> {
        let listener = UnixListener::bind(path).unwrap();
        thread::spawn(move || {
            let mut connections = 0;
            let mut lines = Vec::new();
            let mut answered = 0;
            while answered < replies {
                let (stream, _) = listener.accept().unwrap();
                connections += 1;
                let mut reader = io::BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                while answered < replies {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        break;
                    }
                    lines.push(request_line.trim_end().to_string());
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).unwrap();
                        if h == "\r\n" || h.is_empty() {
                            break;
                        }
                    }
                    writer
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
                        .unwrap();
                    answered += 1;
                }
            }
            (connections, lines)
        })
    }

    #[test]
    fn requests_go_over_the_socket_and_reuse_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        let server = serve(&sock, 3);
        let agent = agent(&sock, config());
        for _ in 0..3 {
            let mut r = agent.get("http://d/v4.0.0/libpod/_ping").call().unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.body_mut().read_to_string().unwrap(), "OK");
        }
        let (connections, lines) = server.join().unwrap();
        assert_eq!(connections, 1, "pooled connection not reused");
        assert_eq!(lines[0], "GET /v4.0.0/libpod/_ping HTTP/1.1");
    }

    #[test]
    fn missing_socket_is_an_io_not_found_error() {
        let dir = tempfile::tempdir().unwrap();
        let agent = agent(&dir.path().join("nope.sock"), config());
        match agent.get("http://d/_ping").call() {
            Err(Error::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_service_that_stopped_accepting_times_out_on_connect() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        // Backlog 0: the kernel queues one connection, then connects block.
        let listener =
            socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
        listener
            .bind(&socket2::SockAddr::unix(&sock).unwrap())
            .unwrap();
        listener.listen(0).unwrap();
        let _queued = UnixStream::connect(&sock).unwrap();
        let cfg = Agent::config_builder()
            .timeout_connect(Some(time::Duration::from_millis(200)))
            .build();
        let r = agent(&sock, cfg).get("http://d/x").call();
        assert!(matches!(r, Err(Error::Timeout(_))), "{r:?}");
    }

    #[test]
    fn silent_server_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let (done, wait) = std::sync::mpsc::channel::<()>();
        // Accepts and never answers until the test is over; the long limit
        // is only a safety net. Only the client's deadline can end the
        // call with a timeout: a hang-up would be a different error.
        let keep = thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let _ = wait.recv_timeout(time::Duration::from_secs(60));
            drop(s);
        });
        let cfg = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_recv_response(Some(time::Duration::from_millis(200)))
            .build();
        let r = agent(&sock, cfg).get("http://d/x").call();
        assert!(matches!(r, Err(Error::Timeout(_))), "{r:?}");
        done.send(()).unwrap();
        keep.join().unwrap();
    }
}
