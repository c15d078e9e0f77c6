//! The HTTP server: one accept thread on tiny_http hands requests over a
//! bounded channel to a fixed pool of handler threads. A full channel is
//! answered with 503 at once, so overload never queues without bound.

use super::request::{Method, Request};
use super::response::{Body, Response};
use super::{AppState, Handler};
use crossbeam_channel::{Receiver, TrySendError};
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Request bodies larger than this are refused with 413 (the biggest valid
/// build request, with `defaults` at its limit, is far below it).
pub const MAX_BODY: usize = 1024 * 1024;

pub struct ServerHandle {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
    handlers: Vec<JoinHandle<()>>,
}

impl ServerHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting, let handlers finish what they hold, join them.
    pub fn shutdown(mut self) {
        self.server.unblock();
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        // The accept thread owned the only sender: handlers drain and exit.
        for h in self.handlers.drain(..) {
            let _ = h.join();
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

pub fn start(state: Arc<AppState>) -> Result<ServerHandle, ServerError> {
    let config = &state.config;
    let host = &config.server_host;
    // An IPv6 literal needs brackets before the port.
    let bind = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{}", config.server_port)
    } else {
        format!("{host}:{}", config.server_port)
    };
    let listener =
        listen(&bind).map_err(|e| ServerError(format!("cannot listen on {bind}: {e}")))?;
    let server = tiny_http::Server::from_listener(listener, None)
        .map_err(|e| ServerError(format!("cannot listen on {bind}: {e}")))?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| ServerError(format!("{bind} is not an IP address")))?;
    let server = Arc::new(server);
    let threads = config.server_threads;
    // A few requests per handler may wait; beyond that, 503.
    let (tx, rx) = crossbeam_channel::bounded::<tiny_http::Request>(threads * 4);

    let mut handlers = Vec::with_capacity(threads);
    for i in 0..threads {
        let rx = rx.clone();
        let state = Arc::clone(&state);
        let h = std::thread::Builder::new()
            .name(format!("http-{}", i + 1))
            .spawn(move || handler_loop(&state, &rx))
            .map_err(|e| ServerError(format!("cannot spawn handler thread: {e}")))?;
        handlers.push(h);
    }
    let accept_server = Arc::clone(&server);
    let cors = state.config.cors_allow_origin.clone();
    let accept = std::thread::Builder::new()
        .name("http-accept".into())
        .spawn(move || {
            for request in accept_server.incoming_requests() {
                match tx.try_send(request) {
                    Ok(()) => {}
                    Err(TrySendError::Full(request)) => {
                        log::warn!("all {threads} handlers busy: answering 503");
                        let r = Response::error(503, "Service busy, try again shortly")
                            .with_header("Retry-After", "1");
                        respond(request, r, &cors);
                    }
                    Err(TrySendError::Disconnected(_)) => break,
                }
            }
        })
        .map_err(|e| ServerError(format!("cannot spawn accept thread: {e}")))?;
    Ok(ServerHandle {
        server,
        addr,
        accept: Some(accept),
        handlers,
    })
}

/// The listening socket, with TCP_NODELAY set so accepted connections
/// inherit it (Linux does): tiny_http writes headers and body separately,
/// and with Nagle's algorithm a keep-alive client waits out its delayed ACK
/// (40 ms) on every response larger than tiny_http's 1 KiB buffer.
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
    socket.listen(1024)?;
    Ok(socket.into())
}

fn handler_loop(state: &AppState, rx: &Receiver<tiny_http::Request>) {
    let mut handler = match Handler::new(state) {
        Ok(h) => h,
        Err(e) => {
            log::error!("handler thread cannot start: {e}");
            // Keep draining so clients get an answer rather than a hang.
            for req in rx.iter() {
                respond(
                    req,
                    Response::error(503, "Service unavailable"),
                    &state.config.cors_allow_origin,
                );
            }
            return;
        }
    };
    for mut raw in rx.iter() {
        let started = std::time::Instant::now();
        let response = match read_request(&mut raw) {
            Ok(req) => handler.handle(&req),
            Err(r) => r,
        };
        log::debug!(
            "{} {} -> {} ({:.1} ms)",
            raw.method(),
            raw.url(),
            response.status,
            started.elapsed().as_secs_f64() * 1000.0
        );
        respond(raw, response, &state.config.cors_allow_origin);
    }
}

/// Copy what handlers need out of tiny_http; refuse oversized bodies
/// without reading them.
fn read_request(raw: &mut tiny_http::Request) -> Result<Request, Response> {
    let method = match raw.method() {
        tiny_http::Method::Get => Method::Get,
        tiny_http::Method::Head => Method::Head,
        tiny_http::Method::Post => Method::Post,
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
    let too_large = || Response::error(413, "Request body too large (limit 1 MiB)");
    if raw.body_length().is_some_and(|n| n > MAX_BODY) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    if method == Method::Post || raw.body_length().is_some_and(|n| n > 0) {
        let mut limited = raw.as_reader().take(MAX_BODY as u64 + 1);
        if let Err(e) = limited.read_to_end(&mut body) {
            return Err(Response::error(
                400,
                &format!("Could not read request body: {e}"),
            ));
        }
        if body.len() > MAX_BODY {
            return Err(too_large());
        }
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

fn respond(raw: tiny_http::Request, response: Response, cors_origin: &str) {
    let mut headers: Vec<tiny_http::Header> = response
        .headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("content-length"))
        .filter_map(|(k, v)| header(k, v))
        .collect();
    // Browsers (LuCI, the firmware selector) need these on every hop.
    headers.extend(header("Access-Control-Allow-Origin", cors_origin));
    headers.extend(header(
        "Access-Control-Allow-Methods",
        "GET, HEAD, POST, OPTIONS",
    ));
    headers.extend(header("Access-Control-Allow-Headers", "*"));
    headers.extend(header(
        "Access-Control-Expose-Headers",
        "X-Imagebuilder-Status, X-Queue-Position, Content-Length, Content-Range",
    ));
    headers.extend(header("Server", "asu-builder"));
    let status = tiny_http::StatusCode(response.status);
    let result = match response.body {
        Body::Empty => raw.respond(
            tiny_http::Response::new(status, headers, std::io::empty(), Some(0), None)
                .with_chunked_threshold(usize::MAX),
        ),
        Body::Bytes(bytes) => {
            let len = bytes.len();
            raw.respond(
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
        Body::File {
            mut file,
            offset,
            len,
        } => {
            if let Err(e) = file.seek(SeekFrom::Start(offset)) {
                log::warn!("seek in store file failed: {e}");
            }
            // Content-Length always, never chunked: auc compares the size.
            raw.respond(
                tiny_http::Response::new(status, headers, file.take(len), Some(len as usize), None)
                    .with_chunked_threshold(usize::MAX),
            )
        }
    };
    if let Err(e) = result {
        log::debug!("client went away before the response was sent: {e}");
    }
}
