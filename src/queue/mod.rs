//! The job queue: enqueue rules, worker threads that claim jobs from SQLite
//! and run the pipeline, the janitor that expires results, renews leases
//! and recovers what crashed, and the runtime monitor that checks Podman
//! and removes containers nobody owns.

pub mod control;
mod disposition;
mod inflight;
pub mod janitor;
pub mod monitor;
pub mod runtime;
mod supervise;
mod worker;

pub use inflight::InFlight;
pub use janitor::{Janitor, spawn_janitor};
pub use monitor::{Monitor, spawn_monitor};
pub use runtime::{RuntimeHealth, RuntimeReport};
pub use worker::spawn_workers;

use crate::config::{Config, IntoLive, LiveConfig};
use crate::container::{ContainerInfo, ContainerRuntime, job_label};
use crate::faults::Faults;
use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long a claimed job stays ours without a renewal. The janitor renews
/// every `LEASE_RENEW`, so only a dead process lets it run out.
pub const LEASE: Duration = Duration::from_secs(60);
pub const LEASE_RENEW: Duration = Duration::from_secs(10);
/// Attempts for infrastructure failures before a job fails for good.
pub const MAX_ATTEMPTS: i64 = 4;
/// Change notices held for the long-poll thread before `job_changed` drops.
const CHANGE_NOTICES: usize = 1024;

/// Everything the workers and the janitor share.
pub struct QueueShared {
    /// The configuration in force; read a snapshot with `config()`.
    pub live: Arc<LiveConfig>,
    pub runtime: Arc<dyn ContainerRuntime>,
    pub inflight: InFlight,
    /// Build outcomes go to the statistics writer through this.
    pub stats: crate::stats::Recorder,
    /// Up or degraded, from the monitor's checks; workers claim only while up.
    pub runtime_health: RuntimeHealth,
    /// Test-only fault hooks; empty in production.
    pub faults: Faults,
    pub stopping: AtomicBool,
    wake_tx: Sender<()>,
    wake_rx: Receiver<()>,
    /// Request hashes whose job changed status or phase, for the long-poll
    /// thread. Bounded, `try_send`: a full channel loses notices, which its
    /// periodic re-check makes up for.
    changes_tx: Sender<String>,
    changes_rx: Receiver<String>,
}

impl QueueShared {
    pub fn new(
        config: impl IntoLive,
        runtime: Arc<dyn ContainerRuntime>,
        stats: crate::stats::Recorder,
        faults: Faults,
    ) -> Arc<QueueShared> {
        // Bounded: a burst of enqueues needs only as many tokens as workers.
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1024);
        let (changes_tx, changes_rx) = crossbeam_channel::bounded(CHANGE_NOTICES);
        Arc::new(QueueShared {
            live: config.into_live(),
            runtime,
            inflight: InFlight::default(),
            stats,
            runtime_health: RuntimeHealth::new(),
            faults,
            stopping: AtomicBool::new(false),
            wake_tx,
            wake_rx,
            changes_tx,
            changes_rx,
        })
    }

    /// The configuration in force now (SIGHUP may replace it).
    pub fn config(&self) -> Arc<Config> {
        self.live.get()
    }

    /// Tell an idle worker there is work; never blocks.
    pub fn wake(&self) {
        let _ = self.wake_tx.try_send(());
    }

    /// The job of `hash` changed status or phase; never blocks.
    pub fn job_changed(&self, hash: &str) {
        let _ = self.changes_tx.try_send(hash.to_string());
    }

    /// Where `job_changed` notices arrive (the long-poll thread).
    pub fn change_receiver(&self) -> Receiver<String> {
        self.changes_rx.clone()
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Stop claiming new jobs and wake every idle worker so it notices,
    /// including those waiting for the runtime to come back.
    pub fn begin_shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.runtime_health.release_waiters();
        for _ in 0..self.config().worker_concurrent {
            let _ = self.wake_tx.try_send(());
        }
    }

    /// Abort the builds still running: their containers are removed, the
    /// pipelines return, and the workers put the jobs back in the queue.
    pub fn abort_running(&self) {
        for job in self.inflight.snapshot() {
            self.inflight.mark_aborted(job.job_id);
            stop_job_containers(
                self.runtime.as_ref(),
                &job.request_hash,
                Stop::KillAndRemove,
                "shutdown",
            );
        }
    }

    pub(crate) fn wake_receiver(&self) -> &Receiver<()> {
        &self.wake_rx
    }
}

/// What `stop_container` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// SIGKILL only: the running exec ends and the pipeline's own guard
    /// removes the container on its way out.
    Kill,
    /// SIGKILL, then force-remove: nobody else will.
    KillAndRemove,
}

/// Stop one of our containers; `why` goes into the log. Failures are only
/// logged: the janitor's orphan sweep tries again.
pub(crate) fn stop_container(
    runtime: &dyn ContainerRuntime,
    c: &ContainerInfo,
    how: Stop,
    why: &str,
) {
    log::warn!("{why}: stopping container {} ({how:?})", c.name);
    if let Err(e) = runtime.kill(&c.id) {
        log::warn!("{why}: killing container {} failed: {e}", c.name);
    }
    if how == Stop::KillAndRemove
        && let Err(e) = runtime.remove(&c.id)
    {
        log::warn!("{why}: removing container {} failed: {e}", c.name);
    }
}

/// Stop every container labelled with job `request_hash`.
pub(crate) fn stop_job_containers(
    runtime: &dyn ContainerRuntime,
    request_hash: &str,
    how: Stop,
    why: &str,
) {
    match runtime.list_by_label(&job_label(request_hash)) {
        Ok(containers) => {
            for c in &containers {
                stop_container(runtime, c, how, why);
            }
        }
        Err(e) => log::warn!("{why}: listing the containers of job {request_hash} failed: {e}"),
    }
}

/// Result TTL by request kind, as the reference chooses it.
pub fn result_ttl_seconds(config: &Config, req: &crate::models::BuildRequest) -> u64 {
    if req.defaults.as_deref().is_some_and(|d| !d.is_empty()) {
        config.defaults_build_ttl_seconds
    } else if !req.packages_versions.is_empty() {
        config.versioned_build_ttl_seconds
    } else {
        config.build_ttl_seconds
    }
}

/// ISO time for `enqueued_at`, microseconds like the reference.
pub fn iso_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}
