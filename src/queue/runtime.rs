//! What this process knows about the container runtime: up, or degraded and
//! why. The runtime monitor (`monitor`) sets it from its health checks; a
//! worker whose build lost the runtime marks it degraded at once. Workers
//! claim jobs only while it is up, and `/health` and `/api/v1/stats`
//! report it.

use crossbeam_channel::{Receiver, Sender};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// A copy of the state for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeReport {
    pub up: bool,
    /// Why it is degraded (the last error), or the runtime's version.
    pub detail: String,
}

impl RuntimeReport {
    /// The word `/health` and `/api/v1/stats` show.
    pub fn state(&self) -> &'static str {
        if self.up { "up" } else { "degraded" }
    }
}

#[derive(Debug)]
struct State {
    up: bool,
    /// A check has answered or failed at least once.
    checked: bool,
    detail: String,
    /// Shutdown began: waiters return at once.
    released: bool,
}

#[derive(Debug)]
pub struct RuntimeHealth {
    state: Mutex<State>,
    changed: Condvar,
    check_tx: Sender<()>,
    check_rx: Receiver<()>,
}

impl Default for RuntimeHealth {
    fn default() -> Self {
        RuntimeHealth::new()
    }
}

impl RuntimeHealth {
    /// Degraded until the first health check answers.
    pub fn new() -> RuntimeHealth {
        let (check_tx, check_rx) = crossbeam_channel::bounded(1);
        RuntimeHealth {
            state: Mutex::new(State {
                up: false,
                checked: false,
                detail: "not checked yet".into(),
                released: false,
            }),
            changed: Condvar::new(),
            check_tx,
            check_rx,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking thread must not take the health state down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_up(&self) -> bool {
        self.lock().up
    }

    /// `up` or `degraded`, without copying the detail (for hot paths).
    pub fn state(&self) -> &'static str {
        if self.is_up() { "up" } else { "degraded" }
    }

    pub fn report(&self) -> RuntimeReport {
        let s = self.lock();
        RuntimeReport {
            up: s.up,
            detail: s.detail.clone(),
        }
    }

    /// The runtime answered. Returns whether it was degraded before.
    pub(crate) fn set_up(&self, version: &str) -> bool {
        let mut s = self.lock();
        let was_down = !s.up;
        s.up = true;
        s.checked = true;
        s.detail = format!("version {version}");
        drop(s);
        if was_down {
            self.changed.notify_all();
        }
        was_down
    }

    /// The runtime did not answer. Returns whether that is news: it was up,
    /// or this is the first check.
    pub(crate) fn set_down(&self, detail: &str) -> bool {
        let mut s = self.lock();
        let news = s.up || !s.checked;
        s.up = false;
        s.checked = true;
        s.detail = detail.to_string();
        news
    }

    /// A build lost the runtime: stop claiming at once and ask the monitor
    /// to check now rather than at its next tick.
    pub fn lost(&self, detail: &str) {
        if self.set_down(detail) {
            log::warn!("container runtime lost during a build: {detail}");
        }
        let _ = self.check_tx.try_send(());
    }

    /// Wait until the runtime is up, shutdown began, or `limit` passed;
    /// returns whether it is up.
    pub fn wait_up(&self, limit: Duration) -> bool {
        let s = self.lock();
        let (s, _) = self
            .changed
            .wait_timeout_while(s, limit, |s| !s.up && !s.released)
            .unwrap_or_else(|e| e.into_inner());
        s.up
    }

    /// Shutdown: wake every waiter for good.
    pub(crate) fn release_waiters(&self) {
        self.lock().released = true;
        self.changed.notify_all();
    }

    /// Tokens asking the monitor for an immediate check.
    pub(crate) fn check_requests(&self) -> &Receiver<()> {
        &self.check_rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn starts_degraded_and_follows_the_checks() {
        let h = RuntimeHealth::new();
        assert_eq!(h.report().state(), "degraded");
        assert!(h.set_down("refused"), "the first failed check is news");
        assert!(!h.set_down("refused"), "the second is not");
        assert!(h.set_up("4.3.1"));
        assert!(!h.set_up("4.3.1"), "no transition");
        assert_eq!(
            h.report(),
            RuntimeReport {
                up: true,
                detail: "version 4.3.1".into()
            }
        );
        h.lost("connection refused");
        assert_eq!(h.report().state(), "degraded");
        assert_eq!(h.report().detail, "connection refused");
        assert!(
            h.check_requests().try_recv().is_ok(),
            "a check was asked for"
        );
    }

    #[test]
    fn waiters_wake_when_the_runtime_comes_up_or_at_shutdown() {
        let h = Arc::new(RuntimeHealth::new());
        assert!(!h.wait_up(Duration::from_millis(10)));
        let h2 = Arc::clone(&h);
        let waiter = std::thread::spawn(move || h2.wait_up(Duration::from_secs(60)));
        h.set_up("x");
        assert!(waiter.join().unwrap());

        h.set_down("gone");
        let h2 = Arc::clone(&h);
        let waiter = std::thread::spawn(move || h2.wait_up(Duration::from_secs(60)));
        h.release_waiters();
        assert!(!waiter.join().unwrap());
    }
}
