//! One client connection: read a request's head and its whole body within
//! the server's [`Limits`] and deadline, hand the request over, wait until it
//! has been answered, then read the next request or close.
//!
//! (asu-builder patch: rewritten. The original read lines of any length,
//! trusted Content-Length blindly, let a handler read the body from the
//! socket with no deadline, and accepted framing that allows request
//! smuggling. See PATCHES.md.)

use std::io::{BufRead, BufReader, BufWriter, Cursor, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use ascii::AsciiString;

use crate::common::{HTTPVersion, Header, HeaderField, Method, StatusCode};
use crate::limits::{BodyBudget, Counters, ErrorHook, Limits};
use crate::request::{new_request, Notification};
use crate::util::{DeadlineReader, RefinedTcpStream, SequentialWriterBuilder};
use crate::{Request, Response};

/// Socket buffers per connection: a typical request head, and a typical
/// JSON answer with its head, each in one system call.
const READ_BUFFER: usize = 4 * 1024;
const WRITE_BUFFER: usize = 4 * 1024;

/// A chunk-size line is a hex number and optional extensions.
const MAX_CHUNK_LINE: usize = 1024;

/// Empty lines tolerated before a request line (RFC 9112 §2.2).
const MAX_LEADING_EMPTY_LINES: usize = 4;

/// After refusing a request, how long and how much of what the client is
/// still sending is read and thrown away so that it sees the answer instead
/// of a reset (a "lingering close"). Bounded: the request is not read on.
const LINGER_TIME: Duration = Duration::from_millis(500);
const LINGER_BYTES: usize = 1024 * 1024;

pub(crate) struct ClientConnection {
    remote_addr: Option<SocketAddr>,
    source: BufReader<DeadlineReader>,
    sink: Option<SequentialWriterBuilder<BufWriter<RefinedTcpStream>>>,
    limits: Arc<Limits>,
    counters: Arc<Counters>,
    on_error: Option<ErrorHook>,
    /// Reused for every line of every request: never longer than a limit.
    line: Vec<u8>,
}

/// Why no request could be read from the connection.
enum Refusal {
    /// Answer with this status and reason, then close.
    Answer(u16, &'static str),
    /// Close without a word: the client left, stayed idle, or broke the
    /// stream in a way no answer can reach.
    Close,
}

/// How the request says its body is framed.
enum Framing {
    None,
    Length(usize),
    Chunked,
}

fn bad(reason: &'static str) -> Refusal {
    Refusal::Answer(400, reason)
}

/// The bodies being held already fill the server's budget.
fn busy() -> Refusal {
    Refusal::Answer(503, "Server busy, try again shortly")
}

impl ClientConnection {
    pub(crate) fn new(
        write_socket: RefinedTcpStream,
        read_socket: RefinedTcpStream,
        limits: Arc<Limits>,
        counters: Arc<Counters>,
        on_error: Option<ErrorHook>,
    ) -> ClientConnection {
        let remote_addr = read_socket.peer_addr().ok().flatten();
        // A client that stops reading must not hold a thread for ever.
        let _ = write_socket.set_write_timeout(Some(limits.write_timeout));
        ClientConnection {
            remote_addr,
            source: BufReader::with_capacity(READ_BUFFER, DeadlineReader::new(read_socket)),
            sink: Some(SequentialWriterBuilder::new(BufWriter::with_capacity(
                WRITE_BUFFER,
                write_socket,
            ))),
            limits,
            counters,
            on_error,
            line: Vec::new(),
        }
    }

    /// Serves the connection until it closes: each request is handed to
    /// `deliver`, and the next one is read only once it was answered.
    pub(crate) fn run(mut self, deliver: &(dyn Fn(Request) + Send + Sync), closing: &AtomicBool) {
        let (tx, rx) = mpsc::channel();
        loop {
            let (request, keep_alive) = match self.read_request() {
                Ok(r) => r,
                Err(Refusal::Close) => return,
                Err(Refusal::Answer(status, reason)) => {
                    self.refuse(status, reason);
                    return;
                }
            };
            let keep_alive = keep_alive && !closing.load(Ordering::Relaxed);
            deliver(
                request
                    .with_keep_alive(keep_alive)
                    .with_notify_sender(tx.clone()),
            );
            let still_open = match rx.recv() {
                Ok(Notification::Sent { keep_alive }) => keep_alive,
                Ok(Notification::Deferred(write)) => write(),
                Err(_) => false,
            };
            if !still_open || !keep_alive || closing.load(Ordering::Relaxed) {
                return;
            }
        }
    }

    /// Reads one whole request: head and body. The second value says
    /// whether the client wants the connection kept open afterwards.
    fn read_request(&mut self) -> Result<(Request, bool), Refusal> {
        // Idle until the first byte: a quiet client is closed silently.
        let idle_until = Instant::now() + self.limits.idle_timeout;
        self.source.get_mut().set_deadline(idle_until);
        match self.source.fill_buf() {
            Ok(buf) if !buf.is_empty() => {}
            _ => return Err(Refusal::Close),
        }
        // From the first byte on, the whole request has one deadline.
        let deadline = Instant::now() + self.limits.request_timeout;
        self.source.get_mut().set_deadline(deadline);

        let mut empty = 0;
        loop {
            let max = self.limits.max_request_line;
            self.read_line(
                max,
                Refusal::Answer(414, "Request line too long"),
                request_line_byte,
            )?;
            if !self.line.is_empty() {
                break;
            }
            empty += 1;
            if empty > MAX_LEADING_EMPTY_LINES {
                return Err(bad("Expected a request line"));
            }
        }
        let (method, path, version) = parse_request_line(&self.line)?;

        let mut headers: Vec<Header> = Vec::new();
        let mut header_bytes = 0usize;
        loop {
            let budget = self.limits.max_header_bytes.saturating_sub(header_bytes);
            self.read_line(
                budget,
                Refusal::Answer(431, "Request header fields too large"),
                field_line_byte,
            )?;
            header_bytes += self.line.len() + 2;
            if self.line.is_empty() {
                break;
            }
            if headers.len() >= self.limits.max_headers {
                return Err(Refusal::Answer(431, "Too many header fields"));
            }
            headers.push(parse_header_line(&self.line)?);
        }

        let (framing, expects_continue) = framing(&headers, &version, &self.limits)?;
        let keep_alive = wants_keep_alive(&headers, &version);
        let mut budget = BodyBudget::empty(self.counters.clone());
        let body = self.read_body(framing, expects_continue, &mut budget)?;

        let writer = match self.sink.as_mut().and_then(|s| s.next()) {
            Some(w) => w,
            None => return Err(Refusal::Close),
        };
        let request = new_request(
            false,
            method,
            path,
            version,
            headers,
            self.remote_addr,
            body,
            writer,
        )
        .with_budget(budget);
        Ok((request, keep_alive))
    }

    /// Reads one CRLF-terminated line into `self.line`, without the CRLF.
    /// A line longer than `max` bytes is refused with `too_long`, one with a
    /// byte `allowed` refuses as soon as that byte arrives (a TLS handshake
    /// or other binary has no line end to wait for).
    fn read_line(
        &mut self,
        max: usize,
        too_long: Refusal,
        allowed: fn(u8) -> bool,
    ) -> Result<(), Refusal> {
        self.line.clear();
        loop {
            let available = match self.source.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_failure(e.kind())),
            };
            if available.is_empty() {
                // The client left in the middle of a request.
                return Err(Refusal::Close);
            }
            let (take, done) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (available.len(), false),
            };
            if !available[..take].iter().all(|&b| allowed(b)) {
                return Err(bad("Invalid characters in the request head"));
            }
            // `max` counts the line without its CRLF; the CR is still in.
            if self.line.len() + take > max.saturating_add(1) {
                return Err(too_long);
            }
            self.line.extend_from_slice(&available[..take]);
            self.source.consume(if done { take + 1 } else { take });
            if done {
                if self.line.pop() != Some(b'\r') {
                    return Err(bad("Lines must end with CRLF"));
                }
                if self.line.contains(&b'\r') {
                    return Err(bad("Stray CR in a line"));
                }
                if self.line.len() > max {
                    return Err(too_long);
                }
                return Ok(());
            }
        }
    }

    fn read_body(
        &mut self,
        framing: Framing,
        expects_continue: bool,
        budget: &mut BodyBudget,
    ) -> Result<Vec<u8>, Refusal> {
        match framing {
            Framing::None | Framing::Length(0) => Ok(Vec::new()),
            Framing::Length(n) => {
                if !budget.grow(n, self.limits.max_buffered_bodies) {
                    return Err(busy());
                }
                if expects_continue {
                    self.send_continue()?;
                }
                // `n` is at most `max_body`: checked by `framing`.
                let mut body = Vec::with_capacity(n);
                self.read_exact_into(&mut body, n)?;
                Ok(body)
            }
            Framing::Chunked => {
                if expects_continue {
                    self.send_continue()?;
                }
                self.read_chunked(budget)
            }
        }
    }

    /// Appends exactly `n` bytes of the stream to `out`.
    fn read_exact_into(&mut self, out: &mut Vec<u8>, n: usize) -> Result<(), Refusal> {
        let before = out.len();
        match (&mut self.source).take(n as u64).read_to_end(out) {
            Ok(_) if out.len() - before == n => Ok(()),
            Ok(_) => Err(Refusal::Close),
            Err(e) => Err(read_failure(e.kind())),
        }
    }

    /// RFC 9112 §7.1, with every size bounded before it is reserved.
    fn read_chunked(&mut self, budget: &mut BodyBudget) -> Result<Vec<u8>, Refusal> {
        let max_body = self.limits.max_body as u64;
        let mut body = Vec::new();
        loop {
            self.read_line(
                MAX_CHUNK_LINE,
                bad("Chunk size line too long"),
                field_line_byte,
            )?;
            let size = parse_chunk_size(&self.line)?;
            if size == 0 {
                break;
            }
            // `body.len()` never exceeds `max_body`; no overflow either way.
            if size > max_body - body.len() as u64 {
                return Err(Refusal::Answer(413, "Request body too large"));
            }
            if !budget.grow(size as usize, self.limits.max_buffered_bodies) {
                return Err(busy());
            }
            self.read_exact_into(&mut body, size as usize)?;
            // The data is followed by CRLF and nothing else.
            self.read_line(0, bad("Chunk data longer than its size"), field_line_byte)?;
        }
        // Trailer fields are read within the header limits and ignored.
        let mut trailer_bytes = 0usize;
        loop {
            let budget = self.limits.max_header_bytes.saturating_sub(trailer_bytes);
            self.read_line(
                budget,
                Refusal::Answer(431, "Trailer fields too large"),
                field_line_byte,
            )?;
            trailer_bytes += self.line.len() + 2;
            if self.line.is_empty() {
                return Ok(body);
            }
        }
    }

    fn send_continue(&mut self) -> Result<(), Refusal> {
        let sink = self.sink.as_mut().ok_or(Refusal::Close)?;
        let mut writer = sink.next().ok_or(Refusal::Close)?;
        writer
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .and_then(|_| writer.flush())
            .map_err(|_| Refusal::Close)
    }

    /// Answers a request the server will not serve, then closes.
    fn refuse(&mut self, status: u16, reason: &str) {
        let (headers, body) = render_refusal(self.on_error.as_ref(), status, reason);
        if let Some(mut writer) = self.sink.as_mut().and_then(|s| s.next()) {
            let len = body.len();
            let response = Response::new(StatusCode(status), headers, Cursor::new(body), Some(len), None);
            let _ = response
                .print_with_connection(
                    &mut writer,
                    HTTPVersion(1, 1),
                    &[],
                    false,
                    None,
                    Some(false),
                )
                .and_then(|_| writer.flush());
        }
        // Dropping the writers shuts our side down (FIN); what the client
        // still sends is read briefly so that it sees the answer.
        self.sink = None;
        let until = Instant::now() + LINGER_TIME;
        self.source.get_mut().set_deadline(until);
        let mut drained = 0usize;
        while drained < LINGER_BYTES {
            match self.source.fill_buf() {
                Ok(buf) if !buf.is_empty() => {
                    let n = buf.len();
                    self.source.consume(n);
                    drained += n;
                }
                _ => break,
            }
        }
    }
}

/// The answer the connection writes itself, as the hook renders it.
pub(crate) fn render_refusal(
    hook: Option<&ErrorHook>,
    status: u16,
    reason: &str,
) -> (Vec<Header>, Vec<u8>) {
    match hook {
        Some(hook) => hook(status, reason),
        None => {
            let content_type = Header::from_bytes(&b"Content-Type"[..], &b"text/plain"[..]);
            (content_type.into_iter().collect(), reason.as_bytes().to_vec())
        }
    }
}

fn read_failure(kind: ErrorKind) -> Refusal {
    match kind {
        ErrorKind::TimedOut => Refusal::Answer(408, "Request not received in time"),
        _ => Refusal::Close,
    }
}

/// Bytes a request line may hold: visible ASCII, spaces and the CR of its
/// CRLF (which `read_line` checks for position).
fn request_line_byte(b: u8) -> bool {
    (0x20..=0x7e).contains(&b) || b == b'\r'
}

/// Bytes a header, trailer or chunk line may hold: as a request line, plus
/// horizontal tabs.
fn field_line_byte(b: u8) -> bool {
    request_line_byte(b) || b == b'\t'
}

/// RFC 9110 §5.6.2 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `method SP request-target SP HTTP-version`, exactly (RFC 9112 §3).
fn parse_request_line(line: &[u8]) -> Result<(Method, String, HTTPVersion), Refusal> {
    let malformed = || bad("Malformed request line");
    let mut parts = line.split(|&b| b == b' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next())
    {
        (Some(m), Some(t), Some(v), None) => (m, t, v),
        _ => return Err(malformed()),
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(malformed());
    }
    if target.is_empty() || !target.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(malformed());
    }
    let version = match version {
        b"HTTP/1.1" => HTTPVersion(1, 1),
        b"HTTP/1.0" => HTTPVersion(1, 0),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(Refusal::Answer(505, "Only HTTP/1.0 and HTTP/1.1 are served"));
        }
        [b'H', b'T', b'T', b'P', b'/', major] if major.is_ascii_digit() => {
            return Err(Refusal::Answer(505, "Only HTTP/1.0 and HTTP/1.1 are served"));
        }
        _ => return Err(malformed()),
    };
    // Both are ASCII by the checks above.
    let method = std::str::from_utf8(method)
        .ok()
        .and_then(|m| Method::from_str(m).ok())
        .ok_or_else(malformed)?;
    let path = String::from_utf8(target.to_vec()).map_err(|_| malformed())?;
    Ok((method, path, version))
}

/// `field-name ":" OWS field-value OWS` (RFC 9112 §5), ASCII only.
fn parse_header_line(line: &[u8]) -> Result<Header, Refusal> {
    let malformed = || bad("Malformed header field");
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err(bad("Obsolete header line folding is not accepted"));
    }
    let colon = line.iter().position(|&b| b == b':').ok_or_else(malformed)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    // Whitespace before the colon is how smuggling attempts look.
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(malformed());
    }
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !is_ows(b)).map_or(start, |i| i + 1);
    let value = &value[start..end];
    if value
        .iter()
        .any(|&b| (b < 0x20 && b != b'\t') || b >= 0x7f)
    {
        return Err(bad("Header values must be printable ASCII"));
    }
    let field = HeaderField::from_bytes(name.to_vec()).map_err(|_| malformed())?;
    let value = AsciiString::from_ascii(value.to_vec()).map_err(|_| malformed())?;
    Ok(Header { field, value })
}

/// The comma-separated elements of every `name` field, trimmed.
fn list_values<'h>(headers: &'h [Header], name: &'static str) -> Vec<&'h str> {
    headers
        .iter()
        .filter(|h| h.field.equiv(name))
        .flat_map(|h| h.value.as_str().split(','))
        .map(|v| v.trim())
        .collect()
}

/// How the body is framed, refusing every ambiguous combination (RFC 9112
/// §6): a request that two parsers could read differently is a smuggling
/// attempt. The second value is whether `100 Continue` is expected.
fn framing(
    headers: &[Header],
    version: &HTTPVersion,
    limits: &Limits,
) -> Result<(Framing, bool), Refusal> {
    if *version == (1, 1) {
        match headers.iter().filter(|h| h.field.equiv("Host")).count() {
            1 => {}
            0 => return Err(bad("Missing Host header")),
            _ => return Err(bad("More than one Host header")),
        }
    }

    let mut expects_continue = false;
    for value in list_values(headers, "Expect") {
        if value.eq_ignore_ascii_case("100-continue") {
            expects_continue = true;
        } else {
            return Err(Refusal::Answer(417, "Only Expect: 100-continue is supported"));
        }
    }

    let mut length: Option<u64> = None;
    for value in list_values(headers, "Content-Length") {
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("Invalid Content-Length"));
        }
        let n: u64 = value.parse().map_err(|_| bad("Invalid Content-Length"))?;
        match length {
            Some(previous) if previous != n => {
                return Err(bad("Conflicting Content-Length values"));
            }
            _ => length = Some(n),
        }
    }

    let has_transfer_encoding = headers.iter().any(|h| h.field.equiv("Transfer-Encoding"));
    if has_transfer_encoding {
        if *version == (1, 0) {
            return Err(bad("Transfer-Encoding is not allowed in HTTP/1.0"));
        }
        if length.is_some() {
            return Err(bad("Content-Length and Transfer-Encoding together"));
        }
        let codings: Vec<&str> = list_values(headers, "Transfer-Encoding")
            .into_iter()
            .filter(|v| !v.is_empty())
            .collect();
        return match codings.as_slice() {
            [only] if only.eq_ignore_ascii_case("chunked") => Ok((Framing::Chunked, expects_continue)),
            // 400 rather than RFC 9112's 501: a 5xx would blame the server
            // for what the client sent.
            _ => Err(bad("Only Transfer-Encoding: chunked is supported")),
        };
    }

    match length {
        None => Ok((Framing::None, false)),
        Some(n) if n > limits.max_body as u64 => {
            Err(Refusal::Answer(413, "Request body too large"))
        }
        // At most `max_body`, so it fits a usize.
        Some(n) => Ok((Framing::Length(n as usize), expects_continue)),
    }
}

/// `chunk-size [ chunk-ext ]`: at most 16 hex digits, so no overflow.
fn parse_chunk_size(line: &[u8]) -> Result<u64, Refusal> {
    let malformed = || bad("Malformed chunk size");
    let size = line.split(|&b| b == b';').next().unwrap_or(&[]);
    let end = size
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    let size = &size[..end];
    if size.is_empty() || size.len() > 16 || !size.iter().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed());
    }
    let text = std::str::from_utf8(size).map_err(|_| malformed())?;
    u64::from_str_radix(text, 16).map_err(|_| malformed())
}

/// HTTP/1.1 keeps the connection unless told `close`; HTTP/1.0 closes it
/// unless told `keep-alive`.
fn wants_keep_alive(headers: &[Header], version: &HTTPVersion) -> bool {
    let tokens = list_values(headers, "Connection");
    if tokens.iter().any(|t| t.eq_ignore_ascii_case("close")) {
        return false;
    }
    if *version == (1, 0) {
        return tokens.iter().any(|t| t.eq_ignore_ascii_case("keep-alive"));
    }
    true
}

#[cfg(test)]
mod test {
    use super::*;

    fn header(line: &str) -> Header {
        match parse_header_line(line.as_bytes()) {
            Ok(h) => h,
            Err(_) => panic!("{line:?} refused"),
        }
    }

    fn status_of(r: Result<(Framing, bool), Refusal>) -> u16 {
        match r {
            Ok(_) => 0,
            Err(Refusal::Answer(s, _)) => s,
            Err(Refusal::Close) => 1,
        }
    }

    #[test]
    fn request_lines() {
        let (method, path, ver) = parse_request_line(b"GET /hello HTTP/1.1").ok().unwrap();
        assert!(method == Method::Get);
        assert!(path == "/hello");
        assert!(ver == HTTPVersion(1, 1));
        for line in [
            &b"GET /hello"[..],
            b"qsd qsd qsd",
            b"GET  /x HTTP/1.1",
            b"GET /x HTTP/1.1 ",
            b"G(T /x HTTP/1.1",
            b"GET /\x00 HTTP/1.1",
            b"GET /\xc3\xa9 HTTP/1.1",
        ] {
            assert!(matches!(parse_request_line(line), Err(Refusal::Answer(400, _))));
        }
        for line in [&b"PRI * HTTP/2.0"[..], b"GET / HTTP/3.0", b"GET / HTTP/2"] {
            assert!(matches!(parse_request_line(line), Err(Refusal::Answer(505, _))));
        }
    }

    #[test]
    fn framing_rules() {
        let limits = Limits::default();
        let v11 = HTTPVersion(1, 1);
        let host = header("Host: x");
        let f = |extra: &[&str]| {
            let mut h = vec![host.clone()];
            h.extend(extra.iter().map(|l| header(l)));
            status_of(framing(&h, &v11, &limits))
        };
        assert_eq!(f(&[]), 0);
        assert_eq!(f(&["Content-Length: 5"]), 0);
        assert_eq!(f(&["Content-Length: 5", "Content-Length: 5"]), 0);
        assert_eq!(f(&["Content-Length: 5, 5"]), 0);
        assert_eq!(f(&["Content-Length: 5", "Content-Length: 6"]), 400);
        assert_eq!(f(&["Content-Length: +5"]), 400);
        assert_eq!(f(&["Content-Length: 18446744073709551616"]), 400);
        assert_eq!(f(&["Content-Length: 18446744073709551615"]), 413);
        assert_eq!(f(&["Content-Length: 4", "Transfer-Encoding: chunked"]), 400);
        assert_eq!(f(&["Transfer-Encoding: chunked"]), 0);
        assert_eq!(f(&["Transfer-Encoding: gzip, chunked"]), 400);
        assert_eq!(f(&["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"]), 400);
        assert_eq!(f(&["Expect: 100-continue"]), 0);
        assert_eq!(f(&["Expect: something"]), 417);
        assert_eq!(status_of(framing(&[], &v11, &limits)), 400);
        assert_eq!(status_of(framing(&[host.clone(), host], &v11, &limits)), 400);
        let te = [header("Transfer-Encoding: chunked")];
        assert_eq!(status_of(framing(&te, &HTTPVersion(1, 0), &limits)), 400);
    }

    #[test]
    fn header_lines() {
        assert!(parse_header_line(b"Content-Length : 5").is_err());
        assert!(parse_header_line(b" folded").is_err());
        assert!(parse_header_line(b"X: a\x00b").is_err());
        assert!(parse_header_line(b"X: \xff").is_err());
        assert!(parse_header_line(b"NoColon").is_err());
        assert_eq!(header("X-A:  spaced \t").value.as_str(), "spaced");
        assert_eq!(header("X-A:").value.as_str(), "");
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"ff").ok(), Some(255));
        assert_eq!(parse_chunk_size(b"A;name=value").ok(), Some(10));
        assert_eq!(parse_chunk_size(b"ffffffffffffffff").ok(), Some(u64::MAX));
        assert!(parse_chunk_size(b"1ffffffffffffffff").is_err());
        assert!(parse_chunk_size(b"").is_err());
        assert!(parse_chunk_size(b"-1").is_err());
        assert!(parse_chunk_size(b"0x10").is_err());
    }
}
