//! Operator actions on the queue, shared by the HTTP build-control
//! endpoints and the `asu-builder` operator commands: cancel, drop, retry,
//! purge, and the reads behind `jobs` and `job`.
//!
//! Each write is one short `BEGIN IMMEDIATE` transaction, so it is safe
//! beside a running daemon (WAL readers never wait; writers queue behind
//! the busy timeout). The worker's own writes are guarded by
//! `status = 'running'`, so a cancel always wins over a late outcome.

use super::jobs::{self, JobRow};
use super::{DbError, now_ms};
use crate::models::{JobStatus, Phase};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, named_params, params};

/// What `detail` says for a cancelled job.
pub const CANCELLED_DETAIL: &str = "Error: cancelled by an operator";

/// A job `cancel` stopped, as it was before.
#[derive(Debug, Clone, PartialEq)]
pub struct Cancelled {
    pub job: JobRow,
    /// It was running: its containers must be killed.
    pub was_running: bool,
}

/// Mark the active job of `hash` cancelled. `None`: nothing was active.
pub fn cancel(
    conn: &mut Connection,
    hash: &str,
    expires_at: i64,
) -> Result<Option<Cancelled>, DbError> {
    let now = now_ms();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some(job) = jobs::find_visible_job(&tx, hash, now)?.filter(|j| j.status.is_active()) else {
        return Ok(None);
    };
    tx.execute(
        "UPDATE build_jobs SET status = :cancelled, imagebuilder_status = :failed, \
            detail = :detail, finished_at = :now, expires_at = :expires, \
            lease_expires_at = NULL WHERE id = :id",
        named_params! {
            ":cancelled": JobStatus::Cancelled,
            ":failed": Phase::Failed,
            ":detail": CANCELLED_DETAIL,
            ":now": now,
            ":expires": expires_at,
            ":id": job.id,
        },
    )?;
    tx.commit()?;
    let was_running = job.status == JobStatus::Running;
    Ok(Some(Cancelled { job, was_running }))
}

/// What `drop_cached` made invisible.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    pub result: bool,
    pub failure: bool,
}

impl Dropped {
    pub fn any(self) -> bool {
        self.result || self.failure
    }
}

/// Expire the result and the replayed failures of `hash` now: clients see
/// the hash as unknown at once, the janitor's next sweep deletes the rows
/// and a store directory no other result uses.
pub fn drop_cached(conn: &mut Connection, hash: &str) -> Result<Dropped, DbError> {
    let now = now_ms();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let result = tx.execute(
        "UPDATE build_results SET expires_at = ?2 WHERE request_hash = ?1 AND expires_at > ?2",
        params![hash, now],
    )? > 0;
    let failure = tx.execute(
        "UPDATE build_jobs SET expires_at = ?2 WHERE request_hash = ?1 AND status = ?3 \
         AND expires_at > ?2",
        params![hash, now, JobStatus::Failed],
    )? > 0;
    tx.commit()?;
    Ok(Dropped { result, failure })
}

#[derive(Debug, Clone, PartialEq)]
pub enum RetryOutcome {
    /// A new pending job.
    Queued(JobRow),
    /// A job is already pending or running.
    Active(JobRow),
    /// A live result exists: nothing to retry.
    Built,
    /// Nothing is known about the hash (never requested, or forgotten).
    Unknown,
}

/// Queue `hash` again from its stored (validated) request, dropping a
/// replayed failure. Not bounded by `max_pending_jobs`: an operator's act.
pub fn retry(
    conn: &mut Connection,
    hash: &str,
    enqueued_at: &str,
    max_attempts: i64,
) -> Result<RetryOutcome, DbError> {
    let now = now_ms();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(job) = jobs::find_visible_job(&tx, hash, now)?.filter(|j| j.status.is_active()) {
        return Ok(RetryOutcome::Active(job));
    }
    if jobs::find_result(&tx, hash, now)?.is_some() {
        return Ok(RetryOutcome::Built);
    }
    let known: bool = tx
        .query_row(
            "SELECT 1 FROM build_requests WHERE request_hash = ?1",
            params![hash],
            |_| Ok(true),
        )
        .optional()?
        .unwrap_or(false);
    if !known {
        return Ok(RetryOutcome::Unknown);
    }
    tx.execute(
        "UPDATE build_jobs SET expires_at = ?2 WHERE request_hash = ?1 AND status = ?3 \
         AND expires_at > ?2",
        params![hash, now, JobStatus::Failed],
    )?;
    tx.execute(
        "INSERT INTO build_jobs (request_hash, status, imagebuilder_status, max_attempts, \
            enqueued_at, enqueued_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            hash,
            JobStatus::Pending,
            Phase::Queued,
            max_attempts,
            enqueued_at,
            now
        ],
    )?;
    let id = tx.last_insert_rowid();
    let job =
        jobs::job_by_id(&tx, id)?.ok_or(DbError::Sql(rusqlite::Error::QueryReturnedNoRows))?;
    tx.commit()?;
    Ok(RetryOutcome::Queued(job))
}

/// Delete failed and cancelled jobs whatever their expiry, and requests
/// nothing refers to any more. Failed builds leave no store directory.
pub fn purge_failed(conn: &mut Connection) -> Result<usize, DbError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let n = tx.execute(
        "DELETE FROM build_jobs WHERE status IN (?1, ?2)",
        params![JobStatus::Failed, JobStatus::Cancelled],
    )?;
    tx.execute(
        "DELETE FROM build_requests WHERE request_hash NOT IN (SELECT request_hash FROM build_jobs) \
         AND request_hash NOT IN (SELECT request_hash FROM build_results)",
        [],
    )?;
    tx.commit()?;
    Ok(n)
}

/// Jobs newest first, optionally of some statuses only.
pub fn list(
    conn: &Connection,
    statuses: &[JobStatus],
    limit: usize,
) -> Result<Vec<JobRow>, DbError> {
    let filter = if statuses.is_empty() {
        String::new()
    } else {
        let marks: Vec<String> = (1..=statuses.len()).map(|i| format!("?{i}")).collect();
        format!("WHERE j.status IN ({})", marks.join(", "))
    };
    let sql = format!(
        "SELECT {} FROM build_jobs j JOIN build_requests r USING (request_hash) {filter} \
         ORDER BY j.id DESC LIMIT {}",
        jobs::JOB_COLUMNS,
        limit.min(i64::MAX as usize)
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(
            rusqlite::params_from_iter(statuses.iter()),
            jobs::job_from_row,
        )?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Every job of one hash, newest first.
pub fn jobs_of(conn: &Connection, hash: &str) -> Result<Vec<JobRow>, DbError> {
    let sql = format!(
        "SELECT {} FROM build_jobs j JOIN build_requests r USING (request_hash) \
         WHERE j.request_hash = ?1 ORDER BY j.id DESC",
        jobs::JOB_COLUMNS
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(params![hash], jobs::job_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// A stored result's bookkeeping (not its body).
#[derive(Debug, Clone, PartialEq)]
pub struct ResultMeta {
    pub bin_dir: String,
    pub build_duration: f64,
    pub finished_at: i64,
    pub expires_at: i64,
}

pub fn result_of(conn: &Connection, hash: &str) -> Result<Option<ResultMeta>, DbError> {
    Ok(conn
        .query_row(
            "SELECT bin_dir, build_duration, finished_at, expires_at FROM build_results \
             WHERE request_hash = ?1",
            params![hash],
            |r| {
                Ok(ResultMeta {
                    bin_dir: r.get(0)?,
                    build_duration: r.get(1)?,
                    finished_at: r.get(2)?,
                    expires_at: r.get(3)?,
                })
            },
        )
        .optional()?)
}

/// The request hashes starting with `prefix` (at most `limit`), so an
/// operator can type a few characters of one.
pub fn hashes_with_prefix(
    conn: &Connection,
    prefix: &str,
    limit: usize,
) -> Result<Vec<String>, DbError> {
    if !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(
        "SELECT request_hash FROM build_requests WHERE request_hash >= ?1 AND request_hash < ?1 || 'g' \
         ORDER BY request_hash LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![prefix, limit as i64], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}
