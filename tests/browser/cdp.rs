//! Debian's chromium, headless, driven over the DevTools protocol (a
//! WebSocket on loopback): navigate, evaluate, collect exceptions, failed
//! requests and console errors, take screenshots.

use serde_json::{Value, json};
use std::io::ErrorKind;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

/// Generous: the machine is small and shared; this is a safety net only.
pub const DEADLINE: Duration = Duration::from_secs(90);

fn harness() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/chromium.sh")
}

/// The chromium binary, installed through the harness when missing.
pub fn chromium_binary() -> PathBuf {
    let path = || Command::new("bash").arg(harness()).arg("path").output();
    let out = path().expect("run tests/browser/chromium.sh");
    if out.status.success() {
        return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    }
    let install = Command::new("bash")
        .arg(harness())
        .arg("install")
        .output()
        .expect("run tests/browser/chromium.sh install");
    assert!(
        install.status.success(),
        "chromium is missing and could not be installed:\n{}{}",
        String::from_utf8_lossy(&install.stdout),
        String::from_utf8_lossy(&install.stderr)
    );
    let out = path().expect("run tests/browser/chromium.sh");
    assert!(out.status.success(), "chromium still missing");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

pub struct Browser {
    child: Child,
    pub page: Page,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Start chromium with a fresh profile and attach to its first tab.
    pub fn start() -> Browser {
        let bin = chromium_binary();
        let profile = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(profile.path().join("chromium.log")).unwrap();
        let child = Command::new(&bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut browser = Browser {
            child,
            page: Page::placeholder(),
            _profile: profile,
        };
        let port = browser.devtools_port();
        browser.page = Page::attach(port);
        browser
    }

    /// Chromium writes its DevTools port into the profile once listening.
    fn devtools_port(&mut self) -> u16 {
        let file = self._profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(text) = std::fs::read_to_string(&file)
                && let Some(port) = text.lines().next().and_then(|l| l.trim().parse().ok())
            {
                return port;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self._profile.path().join("chromium.log"))
                    .unwrap_or_default();
                panic!("chromium exited ({status}) before DevTools was up:\n{log}");
            }
            assert!(Instant::now() < deadline, "chromium never opened DevTools");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.page.call("Browser.close", json!({}));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One tab's DevTools session.
pub struct Page {
    ws: Option<WebSocket<TcpStream>>,
    next_id: u64,
    /// Events received so far (method, params), in order.
    pub events: Vec<(String, Value)>,
}

impl Page {
    fn placeholder() -> Page {
        Page {
            ws: None,
            next_id: 0,
            events: Vec::new(),
        }
    }

    fn attach(port: u16) -> Page {
        let targets: Value = {
            let deadline = Instant::now() + DEADLINE;
            loop {
                let r = ureq::get(&format!("http://127.0.0.1:{port}/json/list")).call();
                if let Ok(mut r) = r
                    && let Ok(v) = r.body_mut().read_json::<Value>()
                    && v.as_array()
                        .is_some_and(|a| a.iter().any(|t| t["type"] == "page"))
                {
                    break v;
                }
                assert!(Instant::now() < deadline, "no page target");
                std::thread::sleep(Duration::from_millis(100));
            }
        };
        let url = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("page target with a WebSocket URL")
            .to_string();
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let (ws, _) = tungstenite::client(url.as_str(), stream).expect("DevTools handshake");
        let mut page = Page {
            ws: Some(ws),
            next_id: 1,
            events: Vec::new(),
        };
        for domain in ["Page", "Runtime", "Network", "Log"] {
            page.call(&format!("{domain}.enable"), json!({}));
        }
        page
    }

    fn read(&mut self, deadline: Instant) -> Option<Value> {
        let ws = self.ws.as_mut()?;
        loop {
            match ws.read() {
                Ok(Message::Text(t)) => return serde_json::from_str(t.as_str()).ok(),
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    if Instant::now() >= deadline {
                        return None;
                    }
                }
                Err(e) => panic!("DevTools connection failed: {e}"),
            }
        }
    }

    /// Send a command and wait for its answer; events seen meanwhile are
    /// kept in `events`.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let Some(ws) = self.ws.as_mut() else {
            return Value::Null;
        };
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        if ws.send(Message::text(msg)).is_err() {
            return Value::Null;
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            let Some(v) = self.read(deadline) else {
                if method == "Browser.close" {
                    return Value::Null;
                }
                panic!("no answer to {method} within {DEADLINE:?}");
            };
            if v["id"] == id {
                if let Some(err) = v.get("error") {
                    panic!("{method} failed: {err}");
                }
                return v["result"].clone();
            }
            if let Some(m) = v["method"].as_str() {
                self.events.push((m.to_string(), v["params"].clone()));
            }
        }
    }

    /// Evaluate `expr` (awaiting a promise) and return its value.
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("evaluating {expr}: {ex}");
        }
        r["result"]["value"].clone()
    }

    /// Wait until `expr` is truthy.
    pub fn wait_for(&mut self, expr: &str) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let v = self.eval(expr);
            if v.as_bool() == Some(true) {
                return;
            }
            if Instant::now() >= deadline {
                let events: Vec<String> = self
                    .events
                    .iter()
                    .filter_map(|(m, p)| match m.as_str() {
                        "Runtime.exceptionThrown"
                        | "Runtime.consoleAPICalled"
                        | "Log.entryAdded"
                        | "Network.loadingFailed" => Some(format!("{m} {p}")),
                        "Network.responseReceived" => Some(format!(
                            "{} {}",
                            p["response"]["status"], p["response"]["url"]
                        )),
                        _ => None,
                    })
                    .collect();
                panic!("never true: {expr}\nevents:\n{}", events.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Viewport size, phone or desktop, and the colour scheme.
    pub fn emulate(&mut self, width: u32, height: u32, mobile: bool, dark: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        );
        self.call(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme",
                                  "value": if dark { "dark" } else { "light" }}]}),
        );
    }

    pub fn navigate(&mut self, url: &str) {
        self.events.clear();
        let r = self.call("Page.navigate", json!({"url": url}));
        assert!(r.get("errorText").is_none(), "navigating to {url}: {r}");
    }

    /// PNG of the whole page.
    pub fn screenshot(&mut self, path: &Path) {
        let m = self.call("Page.getLayoutMetrics", json!({}));
        let size = &m["cssContentSize"];
        let r = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true,
                   "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}}),
        );
        let png = base64_decode(r["data"].as_str().expect("screenshot data"));
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// PNG of what is on screen (the viewport).
    pub fn screenshot_viewport(&mut self, path: &Path) {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64_decode(r["data"].as_str().expect("screenshot data"));
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(path, png).unwrap();
    }

    /// Let events that are still in flight arrive (a short, bounded read).
    pub fn drain_events(&mut self, for_: Duration) {
        let deadline = Instant::now() + for_;
        while let Some(v) = self.read(deadline) {
            if let Some(m) = v["method"].as_str() {
                self.events.push((m.to_string(), v["params"].clone()));
            }
        }
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
