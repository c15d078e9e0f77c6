//! `make bench`'s load generator.
//!
//! N keep-alive connections, one thread each, closed loop (a connection
//! sends its next request when the previous answer has arrived), for a fixed
//! duration after a warm-up. Every response's status is counted; latency
//! percentiles and the throughput figure cover only responses with the
//! expected status. Socket errors are counted by kind, and a connection the
//! server closes (e.g. gunicorn's sync workers after every response) is
//! reopened and counted, not treated as an error.
//!
//! ```text
//! loadgen run --url http://127.0.0.1:8080/api/v1/stats --expect 200 \
//!     [--method POST --body '{…}'] [--connections 50] [--duration 5] \
//!     [--warmup 1] [--timeout 10]
//! ```
//! prints one JSON object.
//!
//! ```text
//! loadgen wait --url URL [--expect 200] [--pending 202,503] [--interval-ms 1] [--timeout 60]
//! ```
//! polls until URL answers the expected status (refused connections and the
//! `--pending` statuses mean "not yet"; any other status fails at once) and
//! prints `{"elapsed_s", "polls", "status"}`: start-up and build waits.
//!
//! Without `run` or `wait` (as `cargo test --all-targets` runs
//! it) it checks its own counting against two local servers and exits.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

/// Longest status line or header line accepted, and most header lines.
const MAX_LINE: u64 = 16 * 1024;
const MAX_HEADERS: usize = 100;

#[derive(Clone)]
struct Options {
    addr: SocketAddr,
    request: Arc<Vec<u8>>,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    expect: u16,
    timeout: Duration,
}

/// What one connection thread saw inside the measured window.
#[derive(Default)]
struct Tally {
    /// Microseconds, expected-status responses only.
    latencies_us: Vec<u32>,
    statuses: BTreeMap<u16, u64>,
    errors: BTreeMap<&'static str, u64>,
    /// Responses after which the server closed the connection.
    server_closes: u64,
    connects: u64,
    finished: Option<Instant>,
}

impl Tally {
    fn error(&mut self, kind: &'static str) {
        *self.errors.entry(kind).or_default() += 1;
    }
}

/// Why an exchange failed; each is a socket-level error, not a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fail {
    Write,
    Timeout,
    /// The connection was closed or reset before a complete response.
    Closed,
    Malformed,
}

impl Fail {
    fn name(self) -> &'static str {
        match self {
            Fail::Write => "write",
            Fail::Timeout => "timeout",
            Fail::Closed => "closed_or_reset",
            Fail::Malformed => "malformed_response",
        }
    }

    fn from_io(e: &io::Error) -> Fail {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Fail::Timeout,
            io::ErrorKind::InvalidData => Fail::Malformed,
            _ => Fail::Closed,
        }
    }
}

struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    line: String,
}

impl Conn {
    fn open(addr: SocketAddr, timeout: Duration) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Conn {
            writer: stream.try_clone()?,
            reader: BufReader::with_capacity(16 * 1024, stream),
            line: String::new(),
        })
    }

    /// Send one request and read its whole response: (status, server keeps
    /// the connection open).
    fn exchange(&mut self, request: &[u8]) -> Result<(u16, bool), Fail> {
        self.writer.write_all(request).map_err(|_| Fail::Write)?;
        read_response(&mut self.reader, &mut self.line)
    }
}

fn read_line(r: &mut BufReader<TcpStream>, line: &mut String) -> Result<(), Fail> {
    line.clear();
    let n = r
        .by_ref()
        .take(MAX_LINE)
        .read_line(line)
        .map_err(|e| Fail::from_io(&e))?;
    if n == 0 {
        return Err(Fail::Closed);
    }
    if !line.ends_with('\n') {
        // Over MAX_LINE, or cut short by EOF.
        return Err(if n as u64 >= MAX_LINE {
            Fail::Malformed
        } else {
            Fail::Closed
        });
    }
    Ok(())
}

/// Read exactly `n` body bytes into nowhere.
fn skip(r: &mut BufReader<TcpStream>, n: u64) -> Result<(), Fail> {
    let got = io::copy(&mut r.by_ref().take(n), &mut io::sink()).map_err(|e| Fail::from_io(&e))?;
    if got == n { Ok(()) } else { Err(Fail::Closed) }
}

fn read_response(r: &mut BufReader<TcpStream>, line: &mut String) -> Result<(u16, bool), Fail> {
    read_line(r, line)?;
    let mut parts = line.split_ascii_whitespace();
    let version = parts.next().ok_or(Fail::Malformed)?;
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(Fail::Malformed),
    };
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or(Fail::Malformed)?;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut connection = String::new();
    let mut headers = 0;
    loop {
        read_line(r, line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        headers += 1;
        if headers > MAX_HEADERS {
            return Err(Fail::Malformed);
        }
        let (name, value) = l.split_once(':').ok_or(Fail::Malformed)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse().map_err(|_| Fail::Malformed)?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            connection = value.to_ascii_lowercase();
        }
    }
    let mut keep_alive = if http10 {
        connection.contains("keep-alive")
    } else {
        !connection.contains("close")
    };
    if status < 200 || status == 204 || status == 304 {
        return Ok((status, keep_alive));
    }
    if chunked {
        loop {
            read_line(r, line)?;
            let size = line.trim_end().split(';').next().unwrap_or_default();
            let size = u64::from_str_radix(size.trim(), 16).map_err(|_| Fail::Malformed)?;
            if size == 0 {
                // Trailers up to the empty line.
                loop {
                    read_line(r, line)?;
                    if line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            skip(r, size + 2)?;
        }
    } else if let Some(n) = length {
        skip(r, n)?;
    } else {
        // No length: the body ends when the server closes.
        io::copy(r, &mut io::sink()).map_err(|e| Fail::from_io(&e))?;
        keep_alive = false;
    }
    Ok((status, keep_alive))
}

fn connection_loop(opts: &Options, origin: &OnceLock<Instant>, ready: &Barrier) -> Tally {
    let mut tally = Tally::default();
    let mut conn = Conn::open(opts.addr, opts.timeout).ok();
    tally.connects += u64::from(conn.is_some());
    ready.wait();
    let origin = *origin.get_or_init(Instant::now);
    let window_start = origin + opts.warmup;
    let end = window_start + opts.duration;
    loop {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        let counted = sent >= window_start;
        let Some(c) = conn.as_mut() else {
            match Conn::open(opts.addr, opts.timeout) {
                Ok(c) => {
                    conn = Some(c);
                    tally.connects += 1;
                }
                Err(_) => {
                    if counted {
                        tally.error("connect");
                    }
                    // A refused connect returns at once: don't spin on it.
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            continue;
        };
        match c.exchange(&opts.request) {
            Ok((status, keep_alive)) => {
                if counted {
                    *tally.statuses.entry(status).or_default() += 1;
                    if status == opts.expect {
                        let us = sent.elapsed().as_micros();
                        tally
                            .latencies_us
                            .push(u32::try_from(us).unwrap_or(u32::MAX));
                    }
                }
                if !keep_alive {
                    tally.server_closes += u64::from(counted);
                    conn = None;
                }
            }
            Err(fail) => {
                if counted {
                    tally.error(fail.name());
                }
                conn = None;
            }
        }
    }
    tally.finished = Some(Instant::now());
    tally
}

struct Outcome {
    ok: u64,
    statuses: BTreeMap<u16, u64>,
    errors: BTreeMap<&'static str, u64>,
    server_closes: u64,
    connects: u64,
    /// From the end of the warm-up to the last thread's last response.
    elapsed: Duration,
    latencies_us: Vec<u32>,
}

fn run(opts: &Options) -> Outcome {
    let origin = Arc::new(OnceLock::new());
    let ready = Arc::new(Barrier::new(opts.connections));
    let threads: Vec<_> = (0..opts.connections)
        .map(|i| {
            let (opts, origin, ready) = (opts.clone(), Arc::clone(&origin), Arc::clone(&ready));
            std::thread::Builder::new()
                .name(format!("conn-{i}"))
                .stack_size(256 * 1024)
                .spawn(move || connection_loop(&opts, &origin, &ready))
                .expect("spawn a connection thread")
        })
        .collect();
    let tallies: Vec<Tally> = threads
        .into_iter()
        .map(|t| t.join().expect("connection thread panicked"))
        .collect();
    let origin = *origin.get().expect("the threads started");
    let window_start = origin + opts.warmup;
    let last = tallies
        .iter()
        .filter_map(|t| t.finished)
        .max()
        .unwrap_or(window_start);
    let mut out = Outcome {
        ok: 0,
        statuses: BTreeMap::new(),
        errors: BTreeMap::new(),
        server_closes: 0,
        connects: 0,
        elapsed: last.saturating_duration_since(window_start),
        latencies_us: Vec::new(),
    };
    for t in tallies {
        for (s, n) in t.statuses {
            *out.statuses.entry(s).or_default() += n;
        }
        for (k, n) in t.errors {
            *out.errors.entry(k).or_default() += n;
        }
        out.server_closes += t.server_closes;
        out.connects += t.connects;
        out.latencies_us.extend(t.latencies_us);
    }
    out.latencies_us.sort_unstable();
    out.ok = out.latencies_us.len() as u64;
    out
}

/// Nearest-rank percentile of a sorted sample, in milliseconds.
fn percentile_ms(sorted_us: &[u32], p: f64) -> Option<f64> {
    if sorted_us.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted_us.len()) - 1;
    Some(f64::from(sorted_us[i]) / 1000.0)
}

/// Upper bounds (ms) of the latency histogram's buckets; the last is open.
const BUCKETS_MS: [f64; 14] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
];

fn histogram(sorted_us: &[u32]) -> Value {
    let mut counts = vec![0u64; BUCKETS_MS.len() + 1];
    for &us in sorted_us {
        let ms = f64::from(us) / 1000.0;
        let i = BUCKETS_MS
            .iter()
            .position(|&b| ms <= b)
            .unwrap_or(BUCKETS_MS.len());
        counts[i] += 1;
    }
    let mut rows: Vec<Value> = BUCKETS_MS
        .iter()
        .zip(&counts)
        .map(|(b, n)| json!({"le_ms": b, "count": n}))
        .collect();
    rows.push(json!({"le_ms": null, "count": counts[BUCKETS_MS.len()]}));
    json!(rows)
}

fn report(opts: &Options, out: &Outcome) -> Value {
    let secs = out.elapsed.as_secs_f64();
    let other: BTreeMap<String, u64> = out
        .statuses
        .iter()
        .filter(|(s, _)| **s != opts.expect)
        .map(|(s, n)| (s.to_string(), *n))
        .collect();
    let mean_ms = if out.latencies_us.is_empty() {
        None
    } else {
        let sum: u64 = out.latencies_us.iter().map(|&u| u64::from(u)).sum();
        Some(sum as f64 / out.latencies_us.len() as f64 / 1000.0)
    };
    json!({
        "connections": opts.connections,
        "expect": opts.expect,
        "warmup_s": opts.warmup.as_secs_f64(),
        "duration_s": opts.duration.as_secs_f64(),
        "elapsed_s": secs,
        "ok": out.ok,
        "ok_per_s": if secs > 0.0 { out.ok as f64 / secs } else { 0.0 },
        "other_statuses": other,
        "other_total": other.values().sum::<u64>(),
        "socket_errors": out.errors,
        "socket_errors_total": out.errors.values().sum::<u64>(),
        "server_closes": out.server_closes,
        "connects": out.connects,
        "latency_ms": {
            "p50": percentile_ms(&out.latencies_us, 50.0),
            "p90": percentile_ms(&out.latencies_us, 90.0),
            "p99": percentile_ms(&out.latencies_us, 99.0),
            "max": out.latencies_us.last().map(|&u| f64::from(u) / 1000.0),
            "mean": mean_ms,
        },
        "latency_histogram": histogram(&out.latencies_us),
    })
}

fn build_request(method: &str, host: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: asu-bench-loadgen\r\nAccept: */*\r\n"
    );
    if method != "GET" && method != "HEAD" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut url = None;
    let mut method = "GET".to_string();
    let mut body = Vec::new();
    let mut connections = 50usize;
    let mut warmup = 1.0f64;
    let mut duration = 5.0f64;
    let mut expect = 200u16;
    let mut timeout = 10.0f64;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let num = |v: String| {
            v.parse::<f64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--url" => url = Some(value()?),
            "--method" => method = value()?.to_ascii_uppercase(),
            "--body" => body = value()?.into_bytes(),
            "--body-file" => {
                let p = value()?;
                body = std::fs::read(&p).map_err(|e| format!("--body-file {p}: {e}"))?;
            }
            "--connections" => {
                connections = value()?
                    .parse()
                    .map_err(|_| "--connections: not a count".to_string())?;
            }
            "--warmup" => warmup = num(value()?)?,
            "--duration" => duration = num(value()?)?,
            "--timeout" => timeout = num(value()?)?,
            "--expect" => {
                expect = value()?
                    .parse()
                    .map_err(|_| "--expect: not a status".to_string())?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let url = url.ok_or("--url is required")?;
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = host
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    if !(1..=20_000).contains(&connections) {
        return Err("--connections must be 1..=20000".into());
    }
    for (name, v) in [
        ("--warmup", warmup),
        ("--duration", duration),
        ("--timeout", timeout),
    ] {
        if !(0.0..=3600.0).contains(&v) {
            return Err(format!("{name} must be 0..=3600 seconds"));
        }
    }
    if duration <= 0.0 || timeout <= 0.0 {
        return Err("--duration and --timeout must be above 0".into());
    }
    Ok(Options {
        addr,
        request: Arc::new(build_request(&method, host, path, &body)),
        connections,
        warmup: Duration::from_secs_f64(warmup),
        duration: Duration::from_secs_f64(duration),
        expect,
        timeout: Duration::from_secs_f64(timeout),
    })
}

fn main() {
    // `cargo bench` appends --bench; `cargo test --all-targets` passes nothing.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("run") => {}
        Some("wait") => wait(&args[1..]),
        _ => {
            self_test();
            return;
        }
    }
    let opts = match parse_args(&args[1..]) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    };
    let out = run(&opts);
    println!("{}", report(&opts, &out));
}

/// `loadgen wait`: exits 0 once the URL answers `--expect`, 1 on another
/// final status or at the timeout.
fn wait(args: &[String]) -> ! {
    let mut pending: Vec<u16> = Vec::new();
    let mut interval = Duration::from_millis(1);
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--pending" => {
                pending = it
                    .next()
                    .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
                    .unwrap_or_default();
            }
            "--interval-ms" => {
                let ms = it.next().and_then(|v| v.parse().ok()).unwrap_or(1u64);
                interval = Duration::from_millis(ms.clamp(1, 60_000));
            }
            _ => rest.push(a.clone()),
        }
    }
    let opts = match parse_args(&rest) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("loadgen wait: {e}");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    let deadline = started + opts.timeout;
    let per_try = Duration::from_secs(5).min(opts.timeout);
    let mut polls = 0u64;
    loop {
        polls += 1;
        let status = Conn::open(opts.addr, per_try)
            .ok()
            .and_then(|mut c| c.exchange(&opts.request).ok())
            .map(|(s, _)| s);
        let report = |s: Option<u16>| json!({"elapsed_s": started.elapsed().as_secs_f64(), "polls": polls, "status": s});
        match status {
            Some(s) if s == opts.expect => {
                println!("{}", report(status));
                std::process::exit(0);
            }
            Some(s) if !pending.contains(&s) => {
                println!("{}", report(status));
                std::process::exit(1);
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            println!("{}", report(status));
            std::process::exit(1);
        }
        std::thread::sleep(interval);
    }
}

/// Checks the counting against servers whose answers are known: statuses
/// split as served, latencies only for the expected one, close-delimited
/// bodies and server-closed connections handled without errors.
fn self_test() {
    use std::sync::atomic::{AtomicU64, Ordering};

    // 1. tiny_http, keep-alive: even requests 200 with Content-Length, odd
    //    ones 404 with a chunked body.
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind"));
    let port = server.server_addr().to_ip().expect("ip").port();
    let served = Arc::new(AtomicU64::new(0));
    for _ in 0..2 {
        let (server, served) = (Arc::clone(&server), Arc::clone(&served));
        std::thread::spawn(move || {
            for rq in server.incoming_requests() {
                let n = served.fetch_add(1, Ordering::SeqCst);
                let body = vec![b'x'; 3000];
                let _ = if n % 2 == 0 {
                    rq.respond(tiny_http::Response::from_data(body))
                } else {
                    rq.respond(tiny_http::Response::new(
                        tiny_http::StatusCode(404),
                        Vec::new(),
                        &body[..],
                        None,
                        None,
                    ))
                };
            }
        });
    }
    let args: Vec<String> = [
        "--url",
        &format!("http://127.0.0.1:{port}/x"),
        "--connections",
        "4",
        "--warmup",
        "0",
        "--duration",
        "0.5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let opts = parse_args(&args).expect("options");
    let out = run(&opts);
    let r = report(&opts, &out);
    let ok = out.statuses.get(&200).copied().unwrap_or(0);
    let not_found = out.statuses.get(&404).copied().unwrap_or(0);
    assert!(out.errors.is_empty(), "no socket errors expected: {r}");
    assert!(ok > 0 && not_found > 0, "both statuses seen: {r}");
    assert_eq!(out.ok, ok, "ok counts only 200s: {r}");
    assert_eq!(out.latencies_us.len() as u64, ok, "latencies only for 200s");
    assert_eq!(
        ok + not_found,
        served.load(Ordering::SeqCst),
        "every answer counted: {r}"
    );
    assert_eq!(
        out.server_closes, 0,
        "tiny_http keeps connections open: {r}"
    );
    assert_eq!(r["other_statuses"]["404"], json!(not_found));
    server.unblock();

    // 2. A server that closes after every response and sends no length.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let answered = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&answered);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            if !head.ends_with(b"\r\n\r\n") {
                continue; // the client closed without asking
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody without length");
        }
    });
    let args: Vec<String> = [
        "--url",
        &format!("http://127.0.0.1:{port}/y"),
        "--connections",
        "2",
        "--warmup",
        "0",
        "--duration",
        "0.3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let opts = parse_args(&args).expect("options");
    let out = run(&opts);
    let r = report(&opts, &out);
    assert!(out.errors.is_empty(), "no socket errors expected: {r}");
    assert!(out.ok > 0, "answers counted: {r}");
    assert_eq!(
        out.server_closes, out.ok,
        "every answer closed the connection: {r}"
    );
    assert_eq!(
        out.ok,
        answered.load(Ordering::SeqCst),
        "every answer counted: {r}"
    );

    assert_eq!(percentile_ms(&[1000, 2000, 3000, 4000], 50.0), Some(2.0));
    assert_eq!(percentile_ms(&[1000, 2000, 3000, 4000], 99.0), Some(4.0));
    assert_eq!(percentile_ms(&[], 50.0), None);
    // Three checks: the keep-alive server, the close-delimited server, the
    // percentile arithmetic. In the plain form test-output readers parse.
    println!("loadgen self-test: counting checked against two local servers");
    println!("loadgen: 3 passed, 0 failed");
}
