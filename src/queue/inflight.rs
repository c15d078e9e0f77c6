//! The jobs this process is building right now: the janitor renews their
//! leases, shutdown aborts them, and orphan cleanup spares their containers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct RunningJob {
    pub job_id: i64,
    pub request_hash: String,
    pub worker: String,
    pub started: Instant,
    pub aborted: bool,
}

#[derive(Debug, Default)]
pub struct InFlight {
    jobs: Mutex<HashMap<i64, RunningJob>>,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, RunningJob>> {
        // A panicking worker must not take lease renewal down with it.
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, job_id: i64, request_hash: &str, worker: &str) {
        self.lock().insert(
            job_id,
            RunningJob {
                job_id,
                request_hash: request_hash.to_string(),
                worker: worker.to_string(),
                started: Instant::now(),
                aborted: false,
            },
        );
    }

    /// Forget a job; returns whether shutdown aborted it.
    pub fn remove(&self, job_id: i64) -> bool {
        self.lock().remove(&job_id).is_some_and(|j| j.aborted)
    }

    pub fn mark_aborted(&self, job_id: i64) {
        if let Some(j) = self.lock().get_mut(&job_id) {
            j.aborted = true;
        }
    }

    pub fn snapshot(&self) -> Vec<RunningJob> {
        self.lock().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains_hash(&self, hash: &str) -> bool {
        self.lock().values().any(|j| j.request_hash == hash)
    }
}
