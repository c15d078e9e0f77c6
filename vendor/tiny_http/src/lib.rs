//! # Simple usage
//!
//! ## Creating the server
//!
//! The easiest way to create a server is to call `Server::http()`.
//!
//! The `http()` function returns an `IoResult<Server>` which will return an error
//! in the case where the server creation fails (for example if the listening port is already
//! occupied).
//!
//! ```no_run
//! let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! ```
//!
//! A newly-created `Server` will immediately start listening for incoming connections and HTTP
//! requests.
//!
//! ## Receiving requests
//!
//! Calling `server.recv()` will block until the next request is available.
//! This function returns an `IoResult<Request>`, so you need to handle the possible errors.
//!
//! ```no_run
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//!
//! loop {
//!     // blocks until the next request is received
//!     let request = match server.recv() {
//!         Ok(rq) => rq,
//!         Err(e) => { println!("error: {}", e); break }
//!     };
//!
//!     // do something with the request
//!     // ...
//! }
//! ```
//!
//! In a real-case scenario, you will probably want to spawn multiple worker tasks and call
//! `server.recv()` on all of them. Like this:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::thread;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! let server = Arc::new(server);
//! let mut guards = Vec::with_capacity(4);
//!
//! for _ in (0 .. 4) {
//!     let server = server.clone();
//!
//!     let guard = thread::spawn(move || {
//!         loop {
//!             let rq = server.recv().unwrap();
//!
//!             // ...
//!         }
//!     });
//!
//!     guards.push(guard);
//! }
//! ```
//!
//! If you don't want to block, you can call `server.try_recv()` instead.
//!
//! ## Handling requests
//!
//! The `Request` object returned by `server.recv()` contains informations about the client's request.
//! The most useful methods are probably `request.method()` and `request.url()` which return
//! the requested method (`GET`, `POST`, etc.) and url.
//!
//! To handle a request, you need to create a `Response` object. See the docs of this object for
//! more infos. Here is an example of creating a `Response` from a file:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! ```
//!
//! All that remains to do is call `request.respond()`:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! # let request = server.recv().unwrap();
//! # let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! let _ = request.respond(response);
//! ```
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![allow(clippy::match_like_matches_macro)]

use std::error::Error;
use std::io::Error as IoError;
use std::io::ErrorKind as IoErrorKind;
use std::io::Result as IoResult;
use std::io::Write;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{self, Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use client::ClientConnection;
use connection::Connection;
use limits::{ConnectionGuard, Counters};
use util::MessagesQueue;

pub use common::{HTTPVersion, Header, HeaderField, Method, StatusCode};
pub use connection::{ConfigListenAddr, ListenAddr, Listener};
pub use limits::{ConnectionStats, ErrorHook, Limits};

/// Where a server with [`Server::with_sink`] hands each complete request,
/// from the connection's own thread. (asu-builder patch)
pub type RequestSink = Arc<dyn Fn(Request) + Send + Sync>;
pub use request::{ReadWrite, Request};
pub use response::{Response, ResponseBox};
pub use test::TestRequest;

mod client;
mod common;
mod connection;
mod limits;
mod request;
mod response;
mod test;
mod util;

/// The main class of this library.
///
/// Destroying this object will immediately close the listening socket and the reading
///  part of all the client's connections. Requests that have already been returned by
///  the `recv()` function will not close and the responses will be transferred to the client.
pub struct Server {
    // should be false as long as the server exists
    // when set to true, all the subtasks will close within a few hundreds ms
    close: Arc<AtomicBool>,

    // queue for messages received by child threads
    messages: Arc<MessagesQueue<Message>>,

    // result of TcpListener::local_addr()
    listening_addr: ListenAddr,

    counters: Arc<Counters>,
}

enum Message {
    Error(IoError),
    NewRequest(Request),
}

impl From<IoError> for Message {
    fn from(e: IoError) -> Message {
        Message::Error(e)
    }
}

impl From<Request> for Message {
    fn from(rq: Request) -> Message {
        Message::NewRequest(rq)
    }
}

pub struct IncomingRequests<'a> {
    server: &'a Server,
}

/// Represents the parameters required to create a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The addresses to try to listen to.
    pub addr: ConfigListenAddr,

    /// If `Some`, then the server will use SSL to encode the communications.
    /// (asu-builder patch: SSL is not supported by this copy; `Some` fails.)
    pub ssl: Option<SslConfig>,
}

/// Configuration of the server for SSL.
#[derive(Debug, Clone)]
pub struct SslConfig {
    /// Contains the public certificate to send to clients.
    pub certificate: Vec<u8>,
    /// Contains the ultra-secret private key used to decode communications.
    pub private_key: Vec<u8>,
}

/// After a failed `accept()` (EMFILE, ENFILE, ENOBUFS…) the accept thread
/// waits this long, doubling up to the maximum, and tries again: the
/// pending connections wait in the kernel's backlog meanwhile.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// At most one log line per this interval about failing `accept()`.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(10);

impl Server {
    /// Shortcut for a simple server on a specific address.
    #[inline]
    pub fn http<A>(addr: A) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: None,
        })
    }

    #[cfg(unix)]
    #[inline]
    /// Shortcut for a UNIX socket server at a specific path
    pub fn http_unix(
        path: &std::path::Path,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::unix_from_path(path),
            ssl: None,
        })
    }

    /// Builds a new server that listens on the specified address.
    pub fn new(config: ServerConfig) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = config.addr.bind()?;
        Self::from_listener(listener, config.ssl)
    }

    /// Builds a new server using the specified TCP listener, with the
    /// default [`Limits`].
    ///
    /// This is useful if you've constructed TcpListener using some less usual method
    /// such as from systemd. For other cases, you probably want the `new()` function.
    pub fn from_listener<L: Into<Listener>>(
        listener: L,
        ssl_config: Option<SslConfig>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        if ssl_config.is_some() {
            return Err("SSL is not supported by this build of tiny-http".into());
        }
        Ok(Self::with_limits(listener, Limits::default(), None)?)
    }

    /// Builds a new server on `listener` that holds every client to
    /// `limits`; `on_error` renders the answers the server gives on its own
    /// (malformed requests, timeouts, too many connections).
    /// (asu-builder patch)
    pub fn with_limits<L: Into<Listener>>(
        listener: L,
        limits: Limits,
        on_error: Option<ErrorHook>,
    ) -> IoResult<Server> {
        let messages = MessagesQueue::with_capacity(8);
        let queue = messages.clone();
        let sink: RequestSink = Arc::new(move |rq: Request| queue.push(rq.into()));
        Self::start(listener.into(), limits, on_error, sink, messages)
    }

    /// Like [`Server::with_limits`], but each complete request is handed to
    /// `sink` by the thread of its connection, instead of waiting in the
    /// server's own queue for `recv()`: one hand-over less per request when
    /// the application has a queue of its own. `recv()` and
    /// `incoming_requests()` then only return when unblocked.
    /// (asu-builder patch)
    pub fn with_sink<L: Into<Listener>>(
        listener: L,
        limits: Limits,
        on_error: Option<ErrorHook>,
        sink: RequestSink,
    ) -> IoResult<Server> {
        let messages = MessagesQueue::with_capacity(1);
        Self::start(listener.into(), limits, on_error, sink, messages)
    }

    fn start(
        listener: Listener,
        limits: Limits,
        on_error: Option<ErrorHook>,
        sink: RequestSink,
        messages: Arc<MessagesQueue<Message>>,
    ) -> IoResult<Server> {
        let close_trigger = Arc::new(AtomicBool::new(false));
        let local_addr = listener.local_addr()?;
        log::debug!("Server listening on {}", local_addr);

        let counters = Arc::new(Counters::default());
        let limits = Arc::new(limits);

        let inside_close_trigger = close_trigger.clone();
        let inside_counters = counters.clone();
        thread::Builder::new()
            .name("http-listen".into())
            .spawn(move || {
                accept_loop(
                    listener,
                    limits,
                    on_error,
                    sink,
                    inside_counters,
                    inside_close_trigger,
                )
            })?;

        Ok(Server {
            messages,
            close: close_trigger,
            listening_addr: local_addr,
            counters,
        })
    }

    /// Returns an iterator for all the incoming requests.
    ///
    /// The iterator will return `None` if the server socket is shutdown.
    #[inline]
    pub fn incoming_requests(&self) -> IncomingRequests<'_> {
        IncomingRequests { server: self }
    }

    /// Returns the address the server is listening to.
    #[inline]
    pub fn server_addr(&self) -> ListenAddr {
        self.listening_addr.clone()
    }

    /// Returns the number of clients currently connected to the server.
    pub fn num_connections(&self) -> usize {
        self.counters.live.load(Ordering::Relaxed)
    }

    /// Connections open, refused and failed to accept so far.
    /// (asu-builder patch)
    pub fn connection_stats(&self) -> ConnectionStats {
        self.counters.snapshot()
    }

    /// Blocks until an HTTP request has been submitted and returns it.
    pub fn recv(&self) -> IoResult<Request> {
        match self.messages.pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(rq),
            None => Err(IoError::new(IoErrorKind::Other, "thread unblocked")),
        }
    }

    /// Same as `recv()` but doesn't block longer than timeout
    pub fn recv_timeout(&self, timeout: Duration) -> IoResult<Option<Request>> {
        match self.messages.pop_timeout(timeout) {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Same as `recv()` but doesn't block.
    pub fn try_recv(&self) -> IoResult<Option<Request>> {
        match self.messages.try_pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Unblock thread stuck in recv() or incoming_requests().
    /// If there are several such threads, only one is unblocked.
    /// This method allows graceful shutdown of server.
    pub fn unblock(&self) {
        self.messages.unblock();
    }
}

/// Accepts connections until the server closes. A failing `accept()` is
/// retried with backoff instead of ending the loop (the upstream loop
/// stopped for good on the first EMFILE, tiny-http issue #195), and
/// connections beyond `max_connections` are answered 503 and closed.
fn accept_loop(
    listener: Listener,
    limits: Arc<Limits>,
    on_error: Option<ErrorHook>,
    sink: RequestSink,
    counters: Arc<Counters>,
    close: Arc<AtomicBool>,
) {
    let tasks_pool = util::TaskPool::new();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let mut last_log: Option<Instant> = None;
    let mut unlogged = 0u64;

    log::debug!("Running accept thread");
    while !close.load(Relaxed) {
        let sock = match listener.accept() {
            Ok((sock, _)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                sock
            }
            Err(e) => {
                if close.load(Relaxed) {
                    break;
                }
                counters.accept_errors.fetch_add(1, Ordering::Relaxed);
                unlogged += 1;
                if last_log.map_or(true, |t| t.elapsed() >= ACCEPT_LOG_INTERVAL) {
                    log::error!(
                        "accepting connections fails ({} times since the last report): {}; retrying",
                        unlogged,
                        e
                    );
                    last_log = Some(Instant::now());
                    unlogged = 0;
                }
                thread::sleep(backoff);
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        if close.load(Relaxed) {
            break;
        }

        if counters.live.load(Ordering::Acquire) >= limits.max_connections {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            refuse_connection(sock, on_error.as_ref());
            continue;
        }
        let guard = ConnectionGuard::new(counters.clone());
        let (read_half, write_half) = util::RefinedTcpStream::new(sock);
        let client = ClientConnection::new(
            write_half,
            read_half,
            limits.clone(),
            counters.clone(),
            on_error.clone(),
        );
        let sink = sink.clone();
        let close = close.clone();
        let mut task = Some((client, guard));
        let spawned = tasks_pool.spawn(Box::new(move || {
            if let Some((client, _guard)) = task.take() {
                client.run(&*sink, &close);
            }
        }));
        if let Err(e) = spawned {
            log::warn!("no thread for a new connection, closing it: {}", e);
        }
    }
    log::debug!("Terminating accept thread");
}

/// Answers 503 on a connection the server has no room for, without reading
/// anything, and closes it. The write goes into an empty socket buffer, so
/// it never blocks.
fn refuse_connection(sock: Connection, on_error: Option<&ErrorHook>) {
    let (headers, body) = client::render_refusal(on_error, 503, "Too many connections, try again shortly");
    let mut head = format!(
        "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        if !h.field.equiv("Content-Length") && !h.field.equiv("Connection") {
            head.push_str(&format!("{}: {}\r\n", h.field, h.value));
        }
    }
    head.push_str("\r\n");
    let mut sock = sock;
    if sock.set_nonblocking(true).is_ok() {
        let _ = sock.write_all(head.as_bytes());
        let _ = sock.write_all(&body);
    }
    let _ = sock.shutdown(Shutdown::Both);
}

impl Iterator for IncomingRequests<'_> {
    type Item = Request;
    fn next(&mut self) -> Option<Request> {
        self.server.recv().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close.store(true, Relaxed);
        // Connect briefly to ourselves to unblock the accept thread
        let maybe_stream = match &self.listening_addr {
            ListenAddr::IP(addr) => TcpStream::connect(addr).map(Connection::from),
            #[cfg(unix)]
            ListenAddr::Unix(addr) => {
                // TODO: use connect_addr when its stabilized.
                let path = addr.as_pathname().unwrap();
                std::os::unix::net::UnixStream::connect(path).map(Connection::from)
            }
        };
        if let Ok(stream) = maybe_stream {
            let _ = stream.shutdown(Shutdown::Both);
        }

        #[cfg(unix)]
        if let ListenAddr::Unix(addr) = &self.listening_addr {
            if let Some(path) = addr.as_pathname() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
