//! Crash recovery: the real daemon is killed with SIGKILL inside builds, at
//! the points where a crash hurts most, and restarted each time:
//!
//! - pull: the image registry (a local port that accepts and stays silent)
//!   holds the pull;
//! - exec: `make image` runs;
//! - archive copy: the images stream into the staging directory;
//! - result write: the build is published in the store, and the test holds
//!   SQLite's write lock so the result cannot be recorded yet;
//! - a random moment.
//!
//! Twenty builds, two per round, one kill per round (the soak,
//! `FAULT_CRASH_ROUNDS`, does more). Throughout, a sampler lists the
//! containers: a job never runs in two at once. Afterwards every request
//! ended done or failed with a detail, every published directory is whole
//! (its sha256sums hold) and downloads match their checksums, no container
//! is left, and the database passes its integrity check.

mod common;

use asu_builder::container::ContainerRuntime;
use asu_builder::container::podman::Podman;
use common::fake_upstream::FakeUpstream;
use common::http;
use common::podman_service::{self, Service};
use common::rng::Rng;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An image registry that accepts connections and either holds them
/// silent (a pull in progress for as long as the test likes) or closes
/// them at once (the pull fails and the local image is used).
struct Registry {
    port: u16,
    hold: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<TcpStream>>>,
    accepted: Arc<AtomicUsize>,
}

impl Registry {
    fn start() -> Registry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = Arc::new(AtomicBool::new(false));
        let held = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (h, hd, a) = (hold.clone(), held.clone(), accepted.clone());
        std::thread::spawn(move || {
            for s in listener.incoming().flatten() {
                a.fetch_add(1, Ordering::SeqCst);
                if h.load(Ordering::SeqCst) {
                    hd.lock().unwrap().push(s);
                } else {
                    std::thread::spawn(move || refuse(s));
                }
            }
        });
        Registry {
            port,
            hold,
            held,
            accepted,
        }
    }

    fn set_hold(&self, on: bool) {
        self.hold.store(on, Ordering::SeqCst);
        if !on {
            self.held.lock().unwrap().clear();
        }
    }

    fn held(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

/// Answer the TLS handshake in plain HTTP: the pull fails at once ("server
/// gave HTTP response to HTTPS client"), where a closed connection would be
/// retried for 3 s.
fn refuse(mut s: TcpStream) {
    use std::io::{Read, Write};
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.read(&mut [0u8; 1024]);
    let _ = s.write_all(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
}

struct Harness {
    dir: tempfile::TempDir,
    config: PathBuf,
    base: String,
    worker: String,
    service: Service,
    podman: Podman,
    daemon: Option<Child>,
    _upstream: FakeUpstream,
}

impl Harness {
    fn start(registry: &Registry) -> Harness {
        let service = podman_service::start_service().unwrap_or_else(|e| panic!("{e}"));
        let image = format!(
            "127.0.0.1:{}/openwrt/imagebuilder:testtarget-testsubtarget-v1.2.3",
            registry.port
        );
        service.image(&[&image]).unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::tempdir().unwrap();
        let upstream = FakeUpstream::start_fixtures();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let worker = format!("crash{}", std::process::id());
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "server_host: 127.0.0.1\nserver_port: {port}\ndatabase_path: {d}/data/builder.db\n\
                 public_path: {d}/public\ncontainer_socket_path: {sock}\nupstream_url: {up}\n\
                 imagebuilder_registry: 127.0.0.1:{reg}/openwrt/imagebuilder\n\
                 worker_id: {worker}\nworker_concurrent: 2\nworker_poll_seconds: 1\n\
                 container_network: asu-crash\nlog_level: debug\n\
                 branches:\n  \"1.2\":\n    path: \"releases/{{version}}\"\n",
                d = dir.path().display(),
                sock = service.socket.display(),
                up = upstream.url(),
                reg = registry.port,
            ),
        )
        .unwrap();
        Harness {
            podman: Podman::new(&service.socket),
            base: format!("http://127.0.0.1:{port}"),
            dir,
            config,
            worker,
            service,
            daemon: None,
            _upstream: upstream,
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("data/builder.db")
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("public/store")
    }

    /// Start the daemon (its log appended to `daemon.log`); returns how
    /// long it took to answer.
    fn spawn(&mut self) -> Duration {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .unwrap();
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_asu-builder"))
            .arg("--config")
            .arg(&self.config)
            .env_remove("ASU_SERVER_PORT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if ureq::get(&format!("{}/health", self.base)).call().is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("daemon exited with {status}:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "daemon did not come up");
            std::thread::sleep(Duration::from_millis(2));
        }
        self.daemon = Some(child);
        started.elapsed()
    }

    fn kill(&mut self) {
        let mut child = self.daemon.take().expect("a running daemon");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    fn post(&self, packages: &[String]) -> String {
        let body = json!({
            "version": "1.2.3",
            "target": "testtarget/testsubtarget",
            "profile": "testprofile",
            "packages": packages,
        });
        http::request_hash(&http::post_build(&self.base, &body.to_string()))
    }

    fn phase(&self, hash: &str) -> String {
        let r = http::poll(&self.base, hash);
        let body = r.json();
        match (r.status, body["imagebuilder_status"].as_str()) {
            (_, Some(phase)) => phase.to_string(),
            (202, None) => "queued".into(),
            (status, None) => status.to_string(),
        }
    }

    /// The phase of every running job, as the database has it.
    fn running_phases(&self) -> Vec<String> {
        let conn = rusqlite::Connection::open(self.db()).unwrap();
        let mut stmt = conn
            .prepare("SELECT imagebuilder_status FROM build_jobs WHERE status = 'running'")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn bin_dir(&self, hash: &str) -> String {
        rusqlite::Connection::open(self.db())
            .unwrap()
            .query_row(
                "SELECT bin_dir FROM build_requests WHERE request_hash = ?1",
                [hash],
                |r| r.get(0),
            )
            .unwrap()
    }

    /// Our containers, by job, with their states.
    fn containers(&self) -> BTreeMap<String, Vec<String>> {
        let mut by_job: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let prefix = format!("{}/", self.worker);
        for c in self.podman.list_by_label("asu.builder").unwrap_or_default() {
            if c.labels
                .get("asu.worker")
                .is_some_and(|w| w.starts_with(&prefix))
            {
                let job = c.labels.get("asu.job").cloned().unwrap_or_default();
                by_job.entry(job).or_default().push(c.state);
            }
        }
        by_job
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            eprintln!("(gave up waiting for {what})");
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

fn staged_bytes(store: &Path) -> u64 {
    let mut total = 0;
    let Ok(workers) = std::fs::read_dir(store.join(".staging")) else {
        return 0;
    };
    for w in workers.flatten() {
        for f in std::fs::read_dir(w.path()).into_iter().flatten().flatten() {
            total += f.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    total
}

/// Every published directory holds exactly what its sha256sums lists.
fn published_dirs_are_whole(store: &Path) -> Result<usize, String> {
    let mut n = 0;
    for d in std::fs::read_dir(store)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        let name = d.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let sums = std::fs::read_to_string(d.path().join("sha256sums"))
            .map_err(|e| format!("{name}: no sha256sums: {e}"))?;
        for line in sums.lines() {
            let (sum, file) = line.split_once(" *").ok_or(format!("{name}: {line}"))?;
            let data =
                std::fs::read(d.path().join(file)).map_err(|e| format!("{name}/{file}: {e}"))?;
            if asu_builder::hash::hex(&Sha256::digest(&data)) != sum {
                return Err(format!("{name}/{file} does not match its checksum"));
            }
        }
        n += 1;
    }
    Ok(n)
}

#[derive(Debug, Clone, Copy)]
enum Point {
    Pull,
    Exec,
    ArchiveCopy,
    ResultWrite,
    Random,
}

const POINTS: [Point; 5] = [
    Point::Pull,
    Point::Exec,
    Point::ArchiveCopy,
    Point::ResultWrite,
    Point::Random,
];

#[test]
fn kill_9_at_every_point_of_twenty_builds() {
    let rounds: usize = std::env::var("FAULT_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let seed = std::env::var("FAULT_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_0008);
    let mut rng = Rng::new(seed);
    let registry = Registry::start();
    let mut h = Harness::start(&registry);
    let started = Instant::now();
    h.spawn();

    // The sampler: a job must never have two running containers.
    let stop = Arc::new(AtomicBool::new(false));
    let violations = Arc::new(Mutex::new(Vec::<String>::new()));
    let samples = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (stop, violations, samples) = (stop.clone(), violations.clone(), samples.clone());
        let podman = Podman::new(&h.service.socket);
        let prefix = format!("{}/", h.worker);
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let mut running: BTreeMap<String, usize> = BTreeMap::new();
                for c in podman.list_by_label("asu.builder").unwrap_or_default() {
                    let ours = c
                        .labels
                        .get("asu.worker")
                        .is_some_and(|w| w.starts_with(&prefix));
                    if ours && c.state == "running" {
                        *running.entry(c.labels["asu.job"].clone()).or_default() += 1;
                    }
                }
                for (job, n) in running.into_iter().filter(|(_, n)| *n > 1) {
                    violations
                        .lock()
                        .unwrap()
                        .push(format!("{job}: {n} running containers"));
                }
                samples.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    let mut hashes = Vec::new();
    let mut kills = Vec::new();
    for round in 0..rounds {
        let point = POINTS[round % POINTS.len()];
        let mut packages = vec![format!("round-{round}")];
        match point {
            Point::Exec => packages.push("slow-3-pkg".into()),
            Point::ArchiveCopy => packages.push("big-image-pkg".into()),
            Point::ResultWrite => packages.push("slow-1-pkg".into()),
            Point::Pull | Point::Random => packages.push(format!("slow-{}-pkg", rng.below(3))),
        }
        registry.set_hold(matches!(point, Point::Pull));
        let target = h.post(&packages);
        // A bystander build in the same round, killed wherever it is.
        let bystander = h.post(&[format!("bystander-{round}"), "slow-1-pkg".into()]);
        hashes.push(target.clone());
        hashes.push(bystander);

        let mut lock: Option<rusqlite::Connection> = None;
        let hit = match point {
            Point::Pull => wait_for("a held pull", Duration::from_secs(60), || {
                registry.held() > 0
            }),
            Point::Exec => wait_for("make image", Duration::from_secs(60), || {
                h.phase(&target) == "building_image"
            }),
            // The big image being copied (a previous life's staging is
            // cleared at start-up, and small builds copy in a blink).
            Point::ArchiveCopy => wait_for("the archive copy", Duration::from_secs(90), || {
                staged_bytes(&h.store()) > 1 << 20 && !h.running_phases().is_empty()
            }),
            Point::ResultWrite => {
                wait_for("make image", Duration::from_secs(60), || {
                    h.phase(&target) == "building_image"
                });
                // Hold the write lock: the result cannot be recorded.
                let c = rusqlite::Connection::open(h.db()).unwrap();
                c.execute_batch("BEGIN IMMEDIATE").unwrap();
                lock = Some(c);
                let published = h.store().join(h.bin_dir(&target));
                wait_for("the published build", Duration::from_secs(60), || {
                    published.is_dir()
                })
            }
            Point::Random => {
                std::thread::sleep(Duration::from_millis(100 + rng.below(2500) as u64));
                true
            }
        };
        let phases = h.running_phases();
        let staged = staged_bytes(&h.store());
        h.kill();
        drop(lock);
        registry.set_hold(false);
        // Between lives: what is published is whole.
        if let Err(e) = published_dirs_are_whole(&h.store()) {
            panic!("after the kill at {point:?}: {e}");
        }
        let answered = h.spawn();
        kills.push(format!(
            "{point:?}{} (running then: {phases:?}, {:.1} MiB staged), answering again {:.0} ms after restart",
            if hit { "" } else { " (point missed)" },
            staged as f64 / (1 << 20) as f64,
            answered.as_secs_f64() * 1000.0
        ));
    }

    // Every request ends: done, or failed with a detail.
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut attempts: BTreeMap<i64, usize> = BTreeMap::new();
    for hash in &hashes {
        let r = http::wait_final(&h.base, hash, Duration::from_secs(300));
        let body: Value = r.json();
        match r.status {
            200 => {
                for image in body["images"].as_array().unwrap() {
                    let url = format!(
                        "{}/store/{}/{}",
                        h.base,
                        body["bin_dir"].as_str().unwrap(),
                        image["name"].as_str().unwrap()
                    );
                    let file = http::get(&url);
                    assert_eq!(file.status, 200, "{url}");
                    let sum = asu_builder::hash::hex(&Sha256::digest(&file.body));
                    assert_eq!(image["sha256"], sum.as_str(), "{url}");
                }
                *outcomes.entry("done".into()).or_default() += 1;
            }
            500 => {
                let detail = body["detail"].as_str().unwrap_or_default();
                assert!(detail.starts_with("Error: "), "{hash}: {body}");
                *outcomes.entry(detail.to_string()).or_default() += 1;
            }
            other => panic!("{hash}: {other} {body}"),
        }
        let n: i64 = rusqlite::Connection::open(h.db())
            .unwrap()
            .query_row(
                "SELECT attempts FROM build_jobs WHERE request_hash = ?1 ORDER BY id DESC",
                [hash],
                |r| r.get(0),
            )
            .unwrap();
        *attempts.entry(n).or_default() += 1;
    }
    let whole = published_dirs_are_whole(&h.store()).unwrap_or_else(|e| panic!("{e}"));
    let staged: Vec<_> = std::fs::read_dir(h.store().join(".staging"))
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|w| std::fs::read_dir(w.path()).into_iter().flatten().flatten())
        .map(|f| f.path())
        .collect();
    assert!(staged.is_empty(), "staged files left behind: {staged:?}");
    // The last life's start-up sweep removed the killed lives' containers.
    let left = wait_for("no container left", Duration::from_secs(60), || {
        h.containers().is_empty()
    });
    assert!(left, "containers left: {:?}", h.containers());
    stop.store(true, Ordering::SeqCst);
    sampler.join().unwrap();
    let violations = violations.lock().unwrap().clone();
    assert!(violations.is_empty(), "built twice at once: {violations:?}");
    let conn = rusqlite::Connection::open(h.db()).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let running: i64 = conn
        .query_row(
            "SELECT count(*) FROM build_jobs WHERE status IN ('pending', 'running')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(running, 0);

    eprintln!(
        "crash: {} builds, {} kills in {:.0} s (seed {seed:#x}); {} container samples, none with a job twice",
        hashes.len(),
        kills.len(),
        started.elapsed().as_secs_f64(),
        samples.load(Ordering::SeqCst)
    );
    for k in &kills {
        eprintln!("crash: kill -9 at {k}");
    }
    eprintln!(
        "crash: outcomes {outcomes:?}; attempts {attempts:?}; {whole} store directories whole"
    );
    assert!(
        registry.accepted.load(Ordering::SeqCst) > 0,
        "no pull ever reached the registry"
    );
    if std::env::var_os("FAULT_CRASH_LOG").is_some() {
        eprintln!("{}", h.log());
    }
    let mut daemon = h.daemon.take().unwrap();
    Command::new("kill")
        .arg("-TERM")
        .arg(daemon.id().to_string())
        .status()
        .unwrap();
    assert!(daemon.wait().unwrap().success());
}
