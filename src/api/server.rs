//! The HTTP server. tiny_http (patched, see vendor/tiny_http/PATCHES.md)
//! runs one thread per connection: it reads each request's head and whole
//! body within the configured limits and deadline, and later writes the
//! response. Complete requests go over a crossbeam channel to a fixed pool
//! of handler threads, which only compute: they never read from or write
//! to a socket, so no client can hold one.
//!
//! A long-poll (`?wait=N`) on a build still on its way is not answered by
//! its handler: the handler returns `Outcome::Park`, and the request goes
//! to the long-poll thread (`longpoll`), which answers it later through
//! the same `respond_deferred`. So waiters never hold handler threads.
//!
//! Admission follows the wait, not a count: every connection has at most
//! one request in flight, so the channel holds at most
//! `server_max_connections` requests; a request that waited longer than
//! `server_queue_timeout_ms` for a handler is answered 503 at once.

use super::longpoll::{LongPoll, Parker};
use super::request::{Method, Request};
use super::response::{Body, Response};
use super::{AppState, Handler, Outcome};
use crate::metrics::Endpoint;
use crossbeam_channel::Receiver;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Limits of the request head, fixed: generous for any real client.
pub const MAX_REQUEST_LINE: usize = 8 * 1024;
pub const MAX_HEADERS: usize = 100;
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Body bytes all connections together may hold while their requests wait
/// or are handled, as a multiple of the largest body.
const BUFFERED_BODIES: usize = 64;

/// Shedding is logged at most this often, with the count since the last line.
const SHED_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A request and when its last byte arrived.
struct Queued {
    raw: tiny_http::Request,
    arrived: Instant,
}

/// What the handler pool receives: requests, and at shutdown one `None`
/// per handler, queued behind the requests already waiting.
type Work = Option<Queued>;

pub struct ServerHandle {
    server: tiny_http::Server,
    addr: SocketAddr,
    work: crossbeam_channel::Sender<Work>,
    handlers: Vec<JoinHandle<()>>,
    longpoll: Option<LongPoll>,
    shed: Arc<Shed>,
}

impl ServerHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests answered 503 so far because they waited too long or the
    /// server had no room for them (connections, buffered bodies).
    pub fn shed_count(&self) -> u64 {
        self.shed.total.load(Ordering::Relaxed) + self.server.connection_stats().refused
    }

    pub fn connection_stats(&self) -> tiny_http::ConnectionStats {
        self.server.connection_stats()
    }

    /// Stop accepting, let handlers finish what is queued, join them.
    /// Requests that complete later are answered 503.
    pub fn shutdown(mut self) {
        // The last reference: dropping the server closes the listener.
        drop(self.server);
        for _ in &self.handlers {
            let _ = self.work.send(None);
        }
        for h in self.handlers {
            let _ = h.join();
        }
        // No handler can park any more: answer the parked long-polls.
        if let Some(lp) = self.longpoll.take() {
            lp.stop();
        }
    }
}

#[derive(Debug)]
pub struct ServerError(pub String);

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServerError {}

/// Counts requests shed by the handlers and logs them in batches: under
/// overload one line per request would itself be the overload.
#[derive(Default)]
struct Shed {
    total: AtomicU64,
    since_log: AtomicU64,
    last_log_ms: AtomicU64,
}

impl Shed {
    fn record(&self, epoch: Instant) {
        self.total.fetch_add(1, Ordering::Relaxed);
        self.since_log.fetch_add(1, Ordering::Relaxed);
        // Never 0, which means "never logged".
        let now = epoch.elapsed().as_millis() as u64 + 1;
        let last = self.last_log_ms.load(Ordering::Relaxed);
        let due = last == 0 || now - last >= SHED_LOG_INTERVAL.as_millis() as u64;
        if due
            && self
                .last_log_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let n = self.since_log.swap(0, Ordering::Relaxed);
            log::warn!(
                "overloaded: {n} requests answered 503 since the last report (waited over the queue timeout)"
            );
        }
    }
}

/// What the server needs from the configuration, resolved at start-up.
pub struct ServerSettings {
    pub max_connections: usize,
}

pub fn start(state: Arc<AppState>, settings: ServerSettings) -> Result<ServerHandle, ServerError> {
    let config = state.config();
    let host = &config.server_host;
    // An IPv6 literal needs brackets before the port.
    let bind = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{}", config.server_port)
    } else {
        format!("{host}:{}", config.server_port)
    };
    let listener =
        listen(&bind).map_err(|e| ServerError(format!("cannot listen on {bind}: {e}")))?;
    let limits = tiny_http::Limits {
        max_connections: settings.max_connections,
        idle_timeout: Duration::from_secs(config.server_keepalive_timeout_seconds),
        request_timeout: Duration::from_secs(config.server_request_timeout_seconds),
        write_timeout: Duration::from_secs(config.server_write_timeout_seconds),
        max_request_line: MAX_REQUEST_LINE,
        max_headers: MAX_HEADERS,
        max_header_bytes: MAX_HEADER_BYTES,
        max_body: config.server_max_body_bytes,
        max_buffered_bodies: config.server_max_body_bytes.saturating_mul(BUFFERED_BODIES),
    };
    let cors = Arc::new(cors_headers(&config.cors_allow_origin));
    let hook_cors = Arc::clone(&cors);
    let hook_metrics = Arc::clone(&state.metrics);
    let on_error: tiny_http::ErrorHook = Arc::new(move |status, reason| {
        hook_metrics.server_response(status);
        let response = Response::error(status, reason);
        let mut headers = to_tiny_headers(&response.headers);
        headers.extend(hook_cors.iter().cloned());
        if status == 503 {
            headers.extend(header("Retry-After", "1"));
        }
        let body = match response.body {
            Body::Bytes(b) => b,
            _ => Vec::new(),
        };
        (headers, body)
    });
    // One request per connection at a time: the connection cap bounds the
    // queue. Unbounded in type only: a bounded crossbeam channel allocates
    // and touches a slot per place up front, ~230 KiB of idle RSS here.
    let (tx, rx) = crossbeam_channel::unbounded::<Work>();
    let shed = Arc::new(Shed::default());
    let epoch = Instant::now();
    let queue_timeout = Duration::from_millis(config.server_queue_timeout_ms);

    // Each connection's thread hands its complete request straight to the
    // handlers' channel: no thread in between.
    let sink_tx = tx.clone();
    let sink_cors = Arc::clone(&cors);
    let sink_metrics = Arc::clone(&state.metrics);
    let sink: tiny_http::RequestSink = Arc::new(move |raw| {
        let queued = Queued {
            raw,
            arrived: Instant::now(),
        };
        // Fails only once the handlers are gone: the service is stopping.
        if let Err(crossbeam_channel::SendError(Some(q))) = sink_tx.send(Some(queued)) {
            sink_metrics.server_response(503);
            respond(q.raw, busy(), &sink_cors);
        }
    });
    let server = tiny_http::Server::with_sink(listener, limits, Some(on_error), sink)
        .map_err(|e| ServerError(format!("cannot listen on {bind}: {e}")))?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| ServerError(format!("{bind} is not an IP address")))?;
    let lp_cors = Arc::clone(&cors);
    let longpoll = LongPoll::start(
        Arc::clone(&state),
        Arc::new(move |raw, response| respond(raw, response, &lp_cors)),
    )
    .map_err(|e| ServerError(format!("cannot spawn the long-poll thread: {e}")))?;

    let mut handlers = Vec::with_capacity(config.server_threads);
    for i in 0..config.server_threads {
        let rx = rx.clone();
        let state = Arc::clone(&state);
        let cors = Arc::clone(&cors);
        let shed = Arc::clone(&shed);
        let parker = longpoll.parker();
        let h = std::thread::Builder::new()
            .name(format!("http-{}", i + 1))
            .spawn(move || {
                let pool = Pool {
                    state: &state,
                    cors: &cors,
                    shed: &shed,
                    epoch,
                    queue_timeout,
                    parker,
                };
                pool.run(&rx)
            })
            .map_err(|e| ServerError(format!("cannot spawn handler thread: {e}")))?;
        handlers.push(h);
    }
    Ok(ServerHandle {
        server,
        addr,
        work: tx,
        handlers,
        longpoll: Some(longpoll),
        shed,
    })
}

/// The listening socket, with TCP_NODELAY set so accepted connections
/// inherit it (Linux does): a response's head and body may leave in two
/// writes, and with Nagle's algorithm a keep-alive client waits out its
/// delayed ACK (40 ms) on every such response.
fn listen(bind: &str) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::net::ToSocketAddrs;
    let addr = bind
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address"))?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    // Bursts of new connections wait here while the accept thread catches up.
    socket.listen(4096)?;
    Ok(socket.into())
}

fn busy() -> Response {
    Response::error(503, "Service busy, try again shortly").with_header("Retry-After", "1")
}

/// What every handler thread shares, borrowed for the thread's lifetime.
struct Pool<'a> {
    state: &'a AppState,
    cors: &'a [tiny_http::Header],
    shed: &'a Shed,
    epoch: Instant,
    queue_timeout: Duration,
    /// Hands long-polls to the long-poll thread.
    parker: Option<Parker>,
}

impl Pool<'_> {
    fn run(&self, rx: &Receiver<Work>) {
        let mut handler = self.new_handler();
        for work in rx.iter() {
            let Some(queued) = work else {
                return;
            };
            if queued.arrived.elapsed() > self.queue_timeout {
                self.shed.record(self.epoch);
                self.state.metrics.server_response(503);
                respond(queued.raw, busy(), self.cors);
                continue;
            }
            let mut raw = queued.raw;
            let started = Instant::now();
            let response = match read_request(&mut raw) {
                Ok(req) => match handler.as_mut() {
                    Some(h) => {
                        match catch_unwind(AssertUnwindSafe(|| h.handle(&req))) {
                            Ok(Outcome::Respond(r)) => r,
                            Ok(Outcome::Park(park)) => {
                                let Some(parker) = &self.parker else {
                                    let status = park.current.status;
                                    self.state
                                        .metrics
                                        .http_response(Endpoint::BuildStatus, status);
                                    respond(raw, park.current, self.cors);
                                    continue;
                                };
                                match parker.park(raw, park) {
                                    Ok(()) => continue,
                                    // Full: the state now, at once.
                                    Err(back) => {
                                        let (back, current) = *back;
                                        self.state
                                            .metrics
                                            .http_response(Endpoint::BuildStatus, current.status);
                                        respond(back, current, self.cors);
                                        continue;
                                    }
                                }
                            }
                            Err(panic) => {
                                log::error!(
                                    "handler panicked on {} {}: {}; answering 500",
                                    raw.method(),
                                    raw.url(),
                                    panic_message(&panic)
                                );
                                // Its database connection may be mid-way.
                                handler = self.new_handler();
                                self.state.metrics.server_response(500);
                                Response::error(500, "Internal server error")
                            }
                        }
                    }
                    None => {
                        // The database could not be opened: try again for
                        // the next request, answer this one honestly.
                        handler = self.new_handler();
                        self.state.metrics.server_response(503);
                        Response::error(503, "Database temporarily unavailable, try again shortly")
                            .with_header("Retry-After", "2")
                    }
                },
                Err(r) => r,
            };
            log::debug!(
                "{} {} -> {} ({:.1} ms)",
                raw.method(),
                raw.url(),
                response.status,
                started.elapsed().as_secs_f64() * 1000.0
            );
            respond(raw, response, self.cors);
        }
    }

    fn new_handler(&self) -> Option<Handler<'_>> {
        match Handler::new(self.state) {
            Ok(h) => Some(h),
            Err(e) => {
                log::error!("handler cannot open the database: {e}");
                None
            }
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Copy what handlers need out of tiny_http. The body was read in full,
/// within the limits, by the connection's thread.
fn read_request(raw: &mut tiny_http::Request) -> Result<Request, Response> {
    let method = match raw.method() {
        tiny_http::Method::Get => Method::Get,
        tiny_http::Method::Head => Method::Head,
        tiny_http::Method::Post => Method::Post,
        tiny_http::Method::Delete => Method::Delete,
        tiny_http::Method::Options => Method::Options,
        other => Method::Other(other.as_str().to_string()),
    };
    let url = raw.url().to_string();
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (url, String::new()),
    };
    let headers: Vec<(String, String)> = raw
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_string(),
                h.value.as_str().to_string(),
            )
        })
        .collect();
    let mut body = Vec::with_capacity(raw.body_length().unwrap_or(0));
    if let Err(e) = raw.as_reader().read_to_end(&mut body) {
        return Err(Response::error(
            400,
            &format!("Could not read request body: {e}"),
        ));
    }
    Ok(Request {
        method,
        path,
        query,
        headers,
        body,
    })
}

fn header(name: &str, value: &str) -> Option<tiny_http::Header> {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn to_tiny_headers(headers: &[(String, String)]) -> Vec<tiny_http::Header> {
    headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("content-length"))
        .filter_map(|(k, v)| header(k, v))
        .collect()
}

/// Browsers (LuCI, the firmware selector) need these on every answer,
/// errors included.
fn cors_headers(origin: &str) -> Vec<tiny_http::Header> {
    [
        ("Access-Control-Allow-Origin", origin),
        (
            "Access-Control-Allow-Methods",
            "GET, HEAD, POST, DELETE, OPTIONS",
        ),
        // `*` does not cover Authorization (Fetch standard): named.
        ("Access-Control-Allow-Headers", "*, Authorization"),
        (
            "Access-Control-Expose-Headers",
            "X-Imagebuilder-Status, X-Queue-Position, Content-Length, Content-Range",
        ),
        ("Server", "asu-builder"),
    ]
    .into_iter()
    .filter_map(|(k, v)| header(k, v))
    .collect()
}

/// Hands the response to the connection's own thread: the handler returns
/// at once, whatever the client's reading speed.
pub(super) fn respond(raw: tiny_http::Request, response: Response, cors: &[tiny_http::Header]) {
    let mut headers = to_tiny_headers(&response.headers);
    headers.extend(cors.iter().cloned());
    let status = tiny_http::StatusCode(response.status);
    match response.body {
        Body::Empty => raw.respond_deferred(
            tiny_http::Response::new(status, headers, std::io::empty(), Some(0), None)
                .with_chunked_threshold(usize::MAX),
        ),
        Body::Bytes(bytes) => respond_bytes(raw, status, headers, bytes),
        Body::Shared(bytes) => respond_bytes(raw, status, headers, bytes),
        Body::Static(bytes) => respond_bytes(raw, status, headers, bytes),
        Body::File {
            mut file,
            offset,
            len,
        } => {
            if let Err(e) = file.seek(SeekFrom::Start(offset)) {
                log::warn!("seek in store file failed: {e}");
            }
            // Content-Length always, never chunked: auc compares the size.
            let Ok(size) = usize::try_from(len) else {
                return;
            };
            raw.respond_deferred(
                tiny_http::Response::new(status, headers, file.take(len), Some(size), None)
                    .with_chunked_threshold(usize::MAX),
            )
        }
    }
}

fn respond_bytes<B>(
    raw: tiny_http::Request,
    status: tiny_http::StatusCode,
    headers: Vec<tiny_http::Header>,
    bytes: B,
) where
    B: AsRef<[u8]> + Send + 'static,
{
    let len = bytes.as_ref().len();
    raw.respond_deferred(
        tiny_http::Response::new(
            status,
            headers,
            std::io::Cursor::new(bytes),
            Some(len),
            None,
        )
        .with_chunked_threshold(usize::MAX),
    )
}
