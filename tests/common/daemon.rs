//! The real binary as a separate process, for tests that must see it die,
//! measure its memory, or limit its descriptors: start it on a free port
//! with a config written to a temp dir, talk to it with raw sockets.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_asu-builder");

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Daemon {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    log: PathBuf,
    /// From spawning the process to its first 200 on `/health`.
    pub ready_after: Duration,
}

impl Daemon {
    /// Starts the daemon with `extra` YAML appended to a loopback config.
    pub fn start(extra: &str) -> Daemon {
        Self::start_limited(extra, None)
    }

    /// Same, with the soft and hard `RLIMIT_NOFILE` set to `nofile`.
    pub fn start_limited(extra: &str, nofile: Option<u64>) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yaml");
        let d = dir.path().display();
        let defaults = [
            "server_host: 127.0.0.1".to_string(),
            format!("server_port: {port}"),
            format!("database_path: {d}/data/builder.db"),
            format!("public_path: {d}/public"),
            format!("container_socket_path: {d}/absent.sock"),
            "upstream_url: http://127.0.0.1:9".to_string(),
            "log_level: warn".to_string(),
        ];
        // `extra` may replace any of the defaults.
        let mut text: String = defaults
            .iter()
            .filter(|line| {
                let key = line.split(':').next().unwrap_or_default();
                !extra.lines().any(|l| l.starts_with(&format!("{key}:")))
            })
            .map(|line| format!("{line}\n"))
            .collect();
        text.push_str(extra);
        std::fs::write(&config, text).unwrap();
        let log = dir.path().join("daemon.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" --config \"$1\""))
                    .arg(BIN)
                    .arg(&config);
                c
            }
            None => {
                let mut c = Command::new(BIN);
                c.arg("--config").arg(&config);
                c
            }
        };
        let spawned = Instant::now();
        let child = cmd
            .env_remove("ASU_SERVER_PORT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .unwrap();
        let mut daemon = Daemon {
            child,
            port,
            dir,
            log,
            ready_after: Duration::ZERO,
        };
        daemon.ready_after = daemon.wait_ready(spawned);
        daemon
    }

    /// Polls `/health` until it answers 200; returns the time since `spawned`.
    fn wait_ready(&mut self, spawned: Instant) -> Duration {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.get("/health").is_some_and(|(s, _)| s == 200) {
                return spawned.elapsed();
            }
            assert!(self.alive(), "daemon exited early:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!(
            "daemon did not answer on port {}:\n{}",
            self.port,
            self.log()
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A line of `/proc/PID/status`, in KiB (`VmRSS`, `VmHWM`, `Threads`…).
    pub fn status_value(&self, key: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{key} missing from /proc status"))
    }

    pub fn rss_mib(&self) -> f64 {
        self.status_value("VmRSS") as f64 / 1024.0
    }

    pub fn peak_rss_mib(&self) -> f64 {
        self.status_value("VmHWM") as f64 / 1024.0
    }

    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Connects and sends `bytes` (ignoring a refusal mid-way).
    pub fn connect_send(&self, bytes: &[u8]) -> TcpStream {
        let mut s = TcpStream::connect(self.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = s.write_all(bytes);
        s
    }

    /// Sends `bytes` and reads until the server closes or `limit` passes.
    /// The second value says whether the server closed (EOF) in time.
    pub fn exchange(&self, bytes: &[u8], limit: Duration) -> (String, bool) {
        let mut s = TcpStream::connect(self.addr()).unwrap();
        s.set_read_timeout(Some(limit)).unwrap();
        let _ = s.write_all(bytes);
        read_until_close(&mut s)
    }

    /// One GET on a fresh connection: status and body, `None` on failure.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(self.addr()).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let (text, _) = read_until_close(&mut s);
        let status = status_of(&text)?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
        Some((status, body))
    }

    /// `n` concurrent GET /health, each on its own connection: every one
    /// must answer 200. Returns the slowest answer's time.
    pub fn all_answer(&self, n: usize) -> Duration {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let addr = self.addr();
                std::thread::spawn(move || {
                    let started = Instant::now();
                    let r = get_at(&addr, "/health");
                    (r, started.elapsed())
                })
            })
            .collect();
        let mut slowest = Duration::ZERO;
        for h in handles {
            let (r, took) = h.join().unwrap();
            assert_eq!(r.map(|(s, _)| s), Some(200), "a /health went unanswered");
            slowest = slowest.max(took);
        }
        slowest
    }

    /// Polls until RSS is below `mib`, up to `limit`; the last RSS seen.
    pub fn settle_rss(&self, mib: f64, limit: Duration) -> f64 {
        let deadline = Instant::now() + limit;
        loop {
            let rss = self.rss_mib();
            if rss <= mib || Instant::now() >= deadline {
                return rss;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn get_at(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let (text, _) = read_until_close(&mut s);
    Some((status_of(&text)?, text))
}

/// Reads until EOF, an error or the socket's read timeout. The flag is
/// true when the server closed the connection (EOF or reset).
pub fn read_until_close(s: &mut TcpStream) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break false;
            }
            Err(_) => break true,
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// The status code of the first response in `text`.
pub fn status_of(text: &str) -> Option<u16> {
    let line = text.lines().next()?;
    let mut parts = line.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}
