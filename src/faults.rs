//! Fault injection for the test tiers. Production code never installs a
//! hook: `app::start` passes `Faults::none()`. Tests use
//! `app::start_with_faults` to make a handler, a worker, the janitor or the
//! runtime monitor panic or stall on purpose at a named point of its loop,
//! and check that the service survives it.

use std::sync::Arc;

/// Called with the request path before a handler routes the request.
pub type HandlerHook = Arc<dyn Fn(&str) + Send + Sync>;

/// Where a worker is in its loop when its hook is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerPoint<'a> {
    /// About to claim a job (the runtime answered its last check).
    Claim,
    /// Claimed the job with this request hash; the build has not started.
    Claimed(&'a str),
    /// The build of this job ended; its outcome is not recorded yet.
    Record(&'a str),
}

/// Called with the worker's name (`worker_id/N`) and the point.
pub type WorkerHook = Arc<dyn Fn(&str, WorkerPoint<'_>) + Send + Sync>;

/// Where the janitor is in its loop when its hook is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JanitorPoint {
    /// About to open its database connection.
    Open,
    /// About to renew the leases of the running builds.
    Renew,
    /// About to sweep (lease recovery, expiry).
    Sweep,
}

pub type JanitorHook = Arc<dyn Fn(JanitorPoint) + Send + Sync>;

/// Called before each health check of the runtime monitor.
pub type MonitorHook = Arc<dyn Fn() + Send + Sync>;

#[derive(Clone, Default)]
pub struct Faults {
    pub handler: Option<HandlerHook>,
    pub worker: Option<WorkerHook>,
    pub janitor: Option<JanitorHook>,
    pub monitor: Option<MonitorHook>,
}

impl Faults {
    pub fn none() -> Faults {
        Faults::default()
    }

    pub(crate) fn at_worker(&self, worker: &str, point: WorkerPoint<'_>) {
        if let Some(hook) = &self.worker {
            hook(worker, point);
        }
    }

    pub(crate) fn at_janitor(&self, point: JanitorPoint) {
        if let Some(hook) = &self.janitor {
            hook(point);
        }
    }

    pub(crate) fn at_monitor(&self) {
        if let Some(hook) = &self.monitor {
            hook();
        }
    }
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("handler", &self.handler.is_some())
            .field("worker", &self.worker.is_some())
            .field("janitor", &self.janitor.is_some())
            .field("monitor", &self.monitor.is_some())
            .finish()
    }
}
