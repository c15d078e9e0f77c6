//! Wiring: database, upstream, queue, workers, janitor and HTTP server,
//! started and stopped in the right order. `main` and the test tiers both
//! start the service through here.

use crate::api::{self, AppState};
use crate::config::{Config, LiveConfig};
use crate::container::ContainerRuntime;
use crate::db;
use crate::descriptors;
use crate::faults::Faults;
use crate::metrics::Metrics;
use crate::queue::{self, Janitor, Monitor, QueueShared};
use crate::stats;
use crate::upstream::Upstream;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub enum StartError {
    Db(db::DbError),
    Store(std::path::PathBuf, std::io::Error),
    Upstream(String),
    Thread(std::io::Error),
    Server(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Db(e) => write!(f, "{e}"),
            StartError::Store(p, e) => {
                write!(f, "cannot create store directory {}: {e}", p.display())
            }
            StartError::Upstream(e) => write!(f, "upstream metadata client: {e}"),
            StartError::Thread(e) => write!(f, "cannot start threads: {e}"),
            StartError::Server(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// However low the descriptor limit, this many clients can connect.
const MIN_CONNECTIONS: usize = 16;

pub struct App {
    live: Arc<LiveConfig>,
    server: api::server::ServerHandle,
    queue: Arc<QueueShared>,
    workers: Vec<JoinHandle<()>>,
    janitor: Janitor,
    stats: stats::Writer,
    monitor: Monitor,
}

pub fn start(config: Config, runtime: Arc<dyn ContainerRuntime>) -> Result<App, StartError> {
    start_with_faults(config, runtime, Faults::none())
}

/// `start` with fault hooks installed: for the test tiers only.
pub fn start_with_faults(
    config: Config,
    runtime: Arc<dyn ContainerRuntime>,
    faults: Faults,
) -> Result<App, StartError> {
    let live = LiveConfig::new(config);
    let config = live.get();
    let mut conn = db::open_and_migrate(&config.database_path).map_err(StartError::Db)?;
    std::fs::create_dir_all(&config.store_path)
        .map_err(|e| StartError::Store(config.store_path.clone(), e))?;
    let upstream = Upstream::new(Arc::clone(&live), &config.database_path)
        .map_err(|e| StartError::Upstream(e.to_string()))?;
    let metrics = Arc::new(Metrics::default());
    let (stats_writer, recorder) =
        stats::start_writer(Arc::clone(&live), Arc::clone(&metrics)).map_err(StartError::Thread)?;
    let queue = QueueShared::new(
        Arc::clone(&live),
        Arc::clone(&runtime),
        recorder.clone(),
        faults.clone(),
    );

    // Said once here; each build reads the key again (it may be replaced).
    if let Some(path) = &config.build_key_path
        && crate::builder::sign::find_build_key(Some(path)).is_some()
    {
        log::info!("images are signed with the build key {}", path.display());
    }
    // Anything still marked running under our worker id died with a
    // previous process: back to the queue. Only SQLite here; its containers
    // are the runtime monitor's, removed once Podman answers and before any
    // worker claims. Nothing on the way to the listener waits on Podman.
    let own_prefix = format!("{}/", config.worker_id);
    queue::janitor::sweep(&queue, &mut conn, Some(&own_prefix));
    drop(conn);
    // And whatever they were copying out.
    crate::store::clear_staging(&config.store_path, &config.worker_id);

    let state = Arc::new(AppState {
        live: Arc::clone(&live),
        upstream: Arc::new(upstream),
        queue: Arc::clone(&queue),
        faults,
        branch_docs: Default::default(),
        metrics,
        stats: recorder,
        adopter: crate::adopt::Adopter::default(),
    });
    let nofile = descriptors::current_nofile_limit();
    let max_connections =
        descriptors::connection_cap(config.server_max_connections, nofile.soft, MIN_CONNECTIONS);
    if max_connections < config.server_max_connections {
        log::warn!(
            "server_max_connections lowered from {} to {max_connections}: the descriptor limit is {} \
             and {} descriptors stay reserved for the database, Podman and the store",
            config.server_max_connections,
            nofile.soft.map_or("unlimited".into(), |n| n.to_string()),
            descriptors::RESERVED
        );
    }
    let settings = api::server::ServerSettings { max_connections };
    let server =
        api::server::start(state, settings).map_err(|e| StartError::Server(e.to_string()))?;
    // The listener answers from here on; Podman is checked in the
    // background and the workers wait for its first answer.
    let monitor = queue::spawn_monitor(&queue).map_err(StartError::Thread)?;
    let workers = queue::spawn_workers(&queue).map_err(StartError::Thread)?;
    let janitor = queue::spawn_janitor(&queue).map_err(StartError::Thread)?;
    Ok(App {
        live,
        server,
        queue,
        workers,
        janitor,
        stats: stats_writer,
        monitor,
    })
}

impl App {
    /// The configuration in force; SIGHUP reloads through this.
    pub fn live(&self) -> &LiveConfig {
        &self.live
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Requests answered 503 because the server was saturated.
    pub fn shed_count(&self) -> u64 {
        self.server.shed_count()
    }

    /// Run one janitor pass (expiry, lease recovery) and one orphan
    /// container sweep now instead of waiting for the next tick.
    pub fn sweep_now(&self) -> Result<(), db::DbError> {
        let mut conn = db::open(&self.queue.config().database_path)?;
        queue::janitor::sweep(&self.queue, &mut conn, None);
        queue::monitor::remove_orphan_containers(&self.queue, &mut Some(conn));
        Ok(())
    }

    /// Commit every statistics event recorded so far (tests read the
    /// tables right after); false if the writer did not answer in time.
    pub fn flush_stats(&self) -> bool {
        self.stats.flush(Duration::from_secs(30))
    }

    /// The container runtime as the monitor last saw it.
    pub fn runtime_report(&self) -> queue::RuntimeReport {
        self.queue.runtime_health.report()
    }

    /// Stop accepting and finish in-flight requests; give running builds
    /// `grace` to finish, then abort them back into the queue.
    pub fn shutdown(self, grace: Duration) {
        self.server.shutdown();
        self.queue.begin_shutdown();
        let deadline = Instant::now() + grace;
        while !self.queue.inflight.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if !self.queue.inflight.is_empty() {
            log::warn!(
                "{} builds still running after the grace period; requeueing them",
                self.queue.inflight.len()
            );
            self.queue.abort_running();
        }
        for w in self.workers {
            let _ = w.join();
        }
        self.janitor.stop();
        self.monitor.stop();
        // Last: every producer of statistics events has stopped.
        self.stats.stop();
    }
}
