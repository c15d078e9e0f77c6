//! The ceiling of our own design card, measured by `make bench` in the same
//! run as the service: a tiny_http accept thread hands requests over a
//! crossbeam channel to 4 handler threads, each of which runs one prepared
//! SQLite query and answers a small stats JSON. Nothing else: no routing,
//! no logging, no statistics. It is built from the same crates (and the same
//! `[patch]`es) as the service, so `asu-builder / bare stack` measures what
//! the service adds on top of its own building blocks.
//!
//! ```text
//! bare_stack run --db PATH [--port 0] [--threads 4]
//! ```
//! prints `listening 127.0.0.1:PORT` and serves until killed. Without `run`
//! (as `cargo test --all-targets` runs it) it answers one request to itself
//! and exits.

use crossbeam_channel::Receiver;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// The same listener the service builds: TCP_NODELAY inherited by accepted
/// sockets, backlog 1024.
fn listen(port: u16) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

fn create_db(path: &Path) -> rusqlite::Result<()> {
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE IF NOT EXISTS build_jobs (
             id INTEGER PRIMARY KEY,
             status TEXT NOT NULL
         );
         DELETE FROM build_jobs;
         INSERT INTO build_jobs (status) VALUES ('pending'), ('pending'), ('running'), ('done');",
    )
}

const STATS_SQL: &str = "SELECT COALESCE(SUM(status = 'pending'), 0), \
     COALESCE(SUM(status = 'running'), 0) FROM build_jobs";

fn handler(db: &Path, rx: &Receiver<tiny_http::Request>, threads: usize) {
    let conn = rusqlite::Connection::open(db).expect("open the database");
    let mut stmt = conn.prepare(STATS_SQL).expect("prepare the stats query");
    let json = tiny_http::Header::from_bytes("Content-Type", "application/json").expect("header");
    let cors = tiny_http::Header::from_bytes("Access-Control-Allow-Origin", "*").expect("header");
    for rq in rx.iter() {
        let (pending, running): (i64, i64) = stmt
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("the stats query");
        let body = format!(
            "{{\"queue_length\":{pending},\"pending\":{pending},\"running\":{running},\"workers\":{threads}}}"
        );
        let response = tiny_http::Response::from_string(body)
            .with_header(json.clone())
            .with_header(cors.clone());
        let _ = rq.respond(response);
    }
}

/// Start the stack; returns the bound address. Threads run until exit.
fn start(db: &Path, port: u16, threads: usize) -> SocketAddr {
    create_db(db).expect("create the database");
    let listener = listen(port).expect("listen on 127.0.0.1");
    let server = tiny_http::Server::from_listener(listener, None).expect("tiny_http server");
    let addr = server.server_addr().to_ip().expect("an IP listener");
    // Blocking send: the ceiling queues instead of shedding.
    let (tx, rx) = crossbeam_channel::bounded::<tiny_http::Request>(1024);
    for i in 0..threads {
        let (rx, db) = (rx.clone(), db.to_path_buf());
        std::thread::Builder::new()
            .name(format!("bare-{}", i + 1))
            .spawn(move || handler(&db, &rx, threads))
            .expect("spawn a handler");
    }
    let server = Arc::new(server);
    std::thread::Builder::new()
        .name("bare-accept".into())
        .spawn(move || {
            for rq in server.incoming_requests() {
                if tx.send(rq).is_err() {
                    break;
                }
            }
        })
        .expect("spawn the accept thread");
    addr
}

fn main() {
    // `cargo bench` appends --bench; `cargo test --all-targets` passes nothing.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) != Some("run") {
        self_test();
        return;
    }
    let mut db = None;
    let mut port = 0u16;
    let mut threads = 4usize;
    let mut it = args[1..].iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--db" => db = Some(value.clone()),
            "--port" => {
                port = value
                    .parse()
                    .unwrap_or_else(|_| usage("--port: not a port"))
            }
            "--threads" => {
                threads = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=256).contains(n))
                    .unwrap_or_else(|| usage("--threads: 1..=256"));
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let db = db.unwrap_or_else(|| usage("--db is required"));
    let addr = start(Path::new(&db), port, threads);
    println!("listening {addr}");
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}

fn usage(msg: &str) -> ! {
    eprintln!("bare_stack: {msg}\nusage: bare_stack run --db PATH [--port N] [--threads N]");
    std::process::exit(2);
}

/// One request to itself: 200, and the JSON reflects the table's rows.
fn self_test() {
    let dir = tempfile::tempdir().expect("temp dir");
    let addr = start(&dir.path().join("bare.db"), 0, 4);
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.write_all(b"GET /api/v1/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).expect("a body");
    let v: serde_json::Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(v["pending"], 2, "{v}");
    assert_eq!(v["running"], 1, "{v}");
    println!("bare_stack self-test: answered {body}");
    println!("bare_stack: 1 passed, 0 failed");
}
