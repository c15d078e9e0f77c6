//! A Unix-socket stand-in for a misbehaving Podman service: the daemon is
//! pointed at it, and the test switches what it does.
//!
//! - `Pass`: every connection is spliced byte for byte to a real service.
//! - `Hang`: connections are accepted and read, never answered (a hung
//!   `podman system service`).
//! - `Fail`: every request is answered 500 with libpod's error body; with
//!   `ping_ok`, `_ping` still answers 200 (a service whose storage broke).
//! - `Fake`: a minimal healthy service: `_ping` answers, no containers.
//!
//! Switching the mode closes every connection opened under the previous
//! one (a stream cut mid-way sees EOF), so pooled connections do not carry
//! the old behaviour over.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    Hang,
    Fail { ping_ok: bool },
    Fake,
}

struct Shared {
    mode: Mutex<Mode>,
    target: Option<PathBuf>,
    /// Every live stream, to cut them all at a switch.
    live: Mutex<Vec<UnixStream>>,
    held: AtomicUsize,
    requests: AtomicUsize,
    stopping: AtomicBool,
}

pub struct PodmanProxy {
    pub socket: PathBuf,
    shared: Arc<Shared>,
}

impl PodmanProxy {
    /// Listen on `socket`; `target` is the real service for `Pass`.
    pub fn start(socket: &Path, target: Option<&Path>, mode: Mode) -> PodmanProxy {
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket).expect("bind the proxy socket");
        let shared = Arc::new(Shared {
            mode: Mutex::new(mode),
            target: target.map(Path::to_path_buf),
            live: Mutex::new(Vec::new()),
            held: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let s = Arc::clone(&s);
                thread::spawn(move || serve(&s, conn));
            }
        });
        PodmanProxy {
            socket: socket.to_path_buf(),
            shared,
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
        for s in self.shared.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Connections accepted in `Hang` mode and still held.
    pub fn held(&self) -> usize {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// Requests answered in `Fail` or `Fake` mode.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }
}

impl Drop for PodmanProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.set_mode(Mode::Hang);
        // Wake the accept loop so it sees `stopping`.
        let _ = UnixStream::connect(&self.socket);
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn track(shared: &Shared, s: &UnixStream) {
    if let Ok(c) = s.try_clone() {
        shared.live.lock().unwrap().push(c);
    }
}

fn serve(shared: &Shared, client: UnixStream) {
    track(shared, &client);
    let mode = *shared.mode.lock().unwrap();
    match mode {
        Mode::Pass => splice(shared, client),
        Mode::Hang => {
            shared.held.fetch_add(1, Ordering::SeqCst);
            // Read and drop whatever comes until the switch cuts us off.
            let _ = std::io::copy(&mut &client, &mut std::io::sink());
            shared.held.fetch_sub(1, Ordering::SeqCst);
        }
        Mode::Fail { ping_ok } => answer(shared, client, |path| {
            if ping_ok && path.contains("/_ping") {
                ping()
            } else {
                error_500(path)
            }
        }),
        Mode::Fake => answer(shared, client, |path| {
            if path.contains("/_ping") {
                ping()
            } else if path.contains("/containers/json") {
                reply(200, "application/json", "[]", "")
            } else {
                error_500(path)
            }
        }),
    }
}

fn splice(shared: &Shared, client: UnixStream) {
    let Some(target) = &shared.target else {
        return;
    };
    let Ok(upstream) = UnixStream::connect(target) else {
        return;
    };
    track(shared, &upstream);
    let (Ok(mut c2), Ok(mut u2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let up = thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut u2);
        let _ = u2.shutdown(std::net::Shutdown::Write);
    });
    let (mut u, mut c) = (upstream, client);
    let _ = std::io::copy(&mut u, &mut c);
    let _ = c.shutdown(std::net::Shutdown::Both);
    let _ = up.join();
}

/// Answer each request on the connection with `respond(path)`.
fn answer(shared: &Shared, client: UnixStream, respond: impl Fn(&str) -> String) {
    let Ok(mut out) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(client);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split(' ').nth(1).unwrap_or("").to_string();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        if std::io::copy(&mut (&mut reader).take(length as u64), &mut std::io::sink()).is_err() {
            return;
        }
        shared.requests.fetch_add(1, Ordering::SeqCst);
        if out.write_all(respond(&path).as_bytes()).is_err() {
            return;
        }
    }
}

fn reply(status: u16, content_type: &str, body: &str, extra: &str) -> String {
    let reason = if status == 200 {
        "OK"
    } else {
        "Internal Server Error"
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn ping() -> String {
    reply(200, "text/plain", "OK", "Libpod-Api-Version: 4.3.1\r\n")
}

fn error_500(path: &str) -> String {
    let body = serde_json::json!({
        "cause": "injected fault",
        "message": format!("injected fault: {path} failed"),
        "response": 500,
    })
    .to_string();
    reply(500, "application/json", &body, "")
}
