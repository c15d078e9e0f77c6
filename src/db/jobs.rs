//! Queries over build_requests, build_jobs and build_results: the job queue
//! lives entirely in SQLite so any process sharing the file can work it.
//!
//! Statuses come from `JobStatus`, never spelled by hand: `status_sql!`
//! writes their texts into a query once, and phases are bound as
//! parameters. A status must not be a bound parameter: compared against
//! the partial index on active jobs, a bound value makes SQLite (built with
//! STAT4) re-prepare the statement on every execution, which cost more than
//! the query on every poll. The schema's CHECK constraint and partial index
//! name the same texts (a test below holds them together).

use super::{DbError, now_ms};
use crate::models::{BuildRequest, JobStatus, Phase};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, named_params, params};

/// `ToSql`/`FromSql` for an enum stored as its text (`as_str`/`parse`).
macro_rules! stored_as_text {
    ($t:ty, $what:literal) => {
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $t {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                from_text(value, <$t>::parse, $what)
            }
        }
    };
}

stored_as_text!(JobStatus, "job status");
stored_as_text!(Phase, "phase");

/// `{pending}`, `{running}`, `{completed}` and `{failed}` in `template`
/// replaced by the quoted status texts.
fn with_statuses(template: &str) -> String {
    JobStatus::ALL
        .iter()
        .fold(template.to_string(), |sql, status| {
            sql.replace(
                &format!("{{{}}}", status.as_str()),
                &format!("'{}'", status.as_str()),
            )
        })
}

/// A query with its status texts filled in, built once per call site.
macro_rules! status_sql {
    ($template:expr) => {{
        static SQL: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| with_statuses($template));
        SQL.as_str()
    }};
}

/// A text column read back through `parse`; unknown text is an error.
fn from_text<T>(value: ValueRef<'_>, parse: fn(&str) -> Option<T>, what: &str) -> FromSqlResult<T> {
    let text = value.as_str()?;
    parse(text).ok_or_else(|| FromSqlError::Other(format!("unknown {what} {text:?}").into()))
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub id: i64,
    pub request_hash: String,
    pub status: JobStatus,
    pub imagebuilder_status: Phase,
    pub attempts: i64,
    pub max_attempts: i64,
    pub worker_id: Option<String>,
    pub enqueued_at: String,
    pub detail: Option<String>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub build_cmd: Option<String>,
    pub expires_at: Option<i64>,
    /// The validated request in its stored form (`BuildRequest`'s serde
    /// form); `request()` decodes it.
    pub request_json: String,
    pub bin_dir: String,
}

impl JobRow {
    /// The stored request, decoded with the rules it was written with.
    pub fn request(&self) -> Result<BuildRequest, serde_json::Error> {
        serde_json::from_str(&self.request_json)
    }
}

pub(crate) const JOB_COLUMNS: &str = "j.id, j.request_hash, j.status, j.imagebuilder_status, j.attempts, \
    j.max_attempts, j.worker_id, j.enqueued_at, j.detail, j.stdout, j.stderr, j.build_cmd, \
    j.expires_at, r.request_json, r.bin_dir";

pub(crate) fn job_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    Ok(JobRow {
        id: row.get(0)?,
        request_hash: row.get(1)?,
        status: row.get(2)?,
        imagebuilder_status: row.get(3)?,
        attempts: row.get(4)?,
        max_attempts: row.get(5)?,
        worker_id: row.get(6)?,
        enqueued_at: row.get(7)?,
        detail: row.get(8)?,
        stdout: row.get(9)?,
        stderr: row.get(10)?,
        build_cmd: row.get(11)?,
        expires_at: row.get(12)?,
        request_json: row.get(13)?,
        bin_dir: row.get(14)?,
    })
}

/// The stored 200 body of a result that has not expired.
pub fn find_result(conn: &Connection, hash: &str, now: i64) -> Result<Option<String>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT result_json FROM build_results WHERE request_hash = ?1 AND expires_at > ?2",
    )?;
    Ok(stmt
        .query_row(params![hash, now], |r| r.get(0))
        .optional()?)
}

fn visible_job_sql() -> &'static str {
    status_sql!(&format!(
        "SELECT {JOB_COLUMNS} FROM build_jobs j JOIN build_requests r USING (request_hash) \
         WHERE j.request_hash = :hash AND (j.status IN ({{pending}}, {{running}}) \
            OR (j.status = {{failed}} AND j.expires_at > :now)) \
         ORDER BY (j.status IN ({{pending}}, {{running}})) DESC, j.id DESC LIMIT 1"
    ))
}

/// The job that decides what a client sees: an active one if any, else a
/// failure still inside its failure TTL.
pub fn find_visible_job(
    conn: &Connection,
    hash: &str,
    now: i64,
) -> Result<Option<JobRow>, DbError> {
    let mut stmt = conn.prepare_cached(visible_job_sql())?;
    Ok(stmt
        .query_row(
            named_params! {
                ":hash": hash,
                ":now": now,
            },
            job_from_row,
        )
        .optional()?)
}

pub fn job_by_id(conn: &Connection, id: i64) -> Result<Option<JobRow>, DbError> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM build_jobs j JOIN build_requests r USING (request_hash) WHERE j.id = ?1"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    Ok(stmt.query_row(params![id], job_from_row).optional()?)
}

/// 0-based position among pending jobs, in claim order.
pub fn queue_position(conn: &Connection, job_id: i64) -> Result<i64, DbError> {
    let mut stmt = conn.prepare_cached(status_sql!(
        "SELECT count(*) FROM build_jobs WHERE status = {pending} AND id < ?1"
    ))?;
    Ok(stmt.query_row(params![job_id], |r| r.get(0))?)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    pub pending: i64,
    pub running: i64,
}

pub fn queue_counts(conn: &Connection) -> Result<QueueCounts, DbError> {
    let mut stmt = conn.prepare_cached(status_sql!(
        "SELECT coalesce(sum(status = {pending}), 0), coalesce(sum(status = {running}), 0) \
         FROM build_jobs WHERE status IN ({pending}, {running})"
    ))?;
    Ok(stmt.query_row([], |r| {
        Ok(QueueCounts {
            pending: r.get(0)?,
            running: r.get(1)?,
        })
    })?)
}

/// What the queue needs to store for a new job.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub request_hash: &'a str,
    /// The validated request; stored in its serde form.
    pub request: &'a BuildRequest,
    pub bin_dir: &'a str,
    pub client: &'a str,
    pub enqueued_at: &'a str,
    pub max_pending: u64,
    pub max_attempts: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EnqueueOutcome {
    Created(JobRow),
    /// Another request inserted the same job first.
    Existing(JobRow),
    /// A result appeared meanwhile (the job finished while we validated).
    AlreadyBuilt,
    /// `max_pending` exceeded; carries the pending count.
    Overloaded(i64),
}

/// Check-and-insert under one write lock (`BEGIN IMMEDIATE`): the re-check
/// inside it is what makes identical concurrent POSTs create exactly one
/// job; the partial unique index on active jobs only backs it up.
pub fn enqueue(conn: &mut Connection, job: &NewJob<'_>) -> Result<EnqueueOutcome, DbError> {
    let now = now_ms();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if find_result(&tx, job.request_hash, now)?.is_some() {
        return Ok(EnqueueOutcome::AlreadyBuilt);
    }
    if let Some(existing) =
        find_visible_job(&tx, job.request_hash, now)?.filter(|j| j.status.is_active())
    {
        return Ok(EnqueueOutcome::Existing(existing));
    }
    let pending: i64 = tx
        .prepare_cached(status_sql!(
            "SELECT count(*) FROM build_jobs WHERE status = {pending}"
        ))?
        .query_row([], |r| r.get(0))?;
    // The reference refuses once the queue is longer than the limit. The
    // configuration bounds it far below i64::MAX; saturate regardless.
    if pending > i64::try_from(job.max_pending).unwrap_or(i64::MAX) {
        return Ok(EnqueueOutcome::Overloaded(pending));
    }
    save_request(
        &tx,
        job.request_hash,
        job.request,
        job.bin_dir,
        job.client,
        now,
    )?;
    tx.prepare_cached(status_sql!(
        "INSERT INTO build_jobs (request_hash, status, imagebuilder_status, max_attempts, \
            enqueued_at, enqueued_ms) VALUES (?1, {pending}, ?5, ?2, ?3, ?4)"
    ))?
    .execute(params![
        job.request_hash,
        job.max_attempts,
        job.enqueued_at,
        now,
        Phase::Queued
    ])?;
    let id = tx.last_insert_rowid();
    let row = job_by_id(&tx, id)?.ok_or(DbError::Sql(rusqlite::Error::QueryReturnedNoRows))?;
    tx.commit()?;
    Ok(EnqueueOutcome::Created(row))
}

/// Store (or refresh) the validated request a job or result is for.
pub(super) fn save_request(
    conn: &Connection,
    request_hash: &str,
    request: &BuildRequest,
    bin_dir: &str,
    client: &str,
    now: i64,
) -> Result<(), DbError> {
    conn.prepare_cached(
        "INSERT INTO build_requests (request_hash, request_json, bin_dir, version, target, profile, \
            diff_packages, client, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
         ON CONFLICT (request_hash) DO UPDATE SET request_json = excluded.request_json, \
            bin_dir = excluded.bin_dir, client = excluded.client",
    )?
    .execute(params![
        request_hash,
        serde_json::to_string(request).map_err(DbError::Encode)?,
        bin_dir,
        request.version,
        request.target,
        request.profile,
        request.diff_packages,
        client,
        now
    ])?;
    Ok(())
}

/// Atomically take the oldest claimable job and lease it to `worker`.
pub fn claim(
    conn: &mut Connection,
    worker: &str,
    lease_ms: i64,
) -> Result<Option<JobRow>, DbError> {
    let now = now_ms();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let id: Option<i64> = tx
        .query_row(
            status_sql!(
                "UPDATE build_jobs SET status = {running}, imagebuilder_status = :init, \
                    worker_id = :worker, lease_expires_at = :lease, started_at = :now, \
                    attempts = attempts + 1, detail = 'init' \
                 WHERE id = (SELECT id FROM build_jobs WHERE status = {pending} \
                             AND not_before <= :now ORDER BY id LIMIT 1) \
                 RETURNING id"
            ),
            named_params! {
                ":worker": worker,
                ":lease": now + lease_ms,
                ":now": now,
                ":init": Phase::Init,
            },
            |r| r.get(0),
        )
        .optional()?;
    let job = match id {
        Some(id) => job_by_id(&tx, id)?,
        None => None,
    };
    tx.commit()?;
    Ok(job)
}

pub fn set_phase(conn: &Connection, job_id: i64, phase: Phase) -> Result<(), DbError> {
    conn.prepare_cached(status_sql!(
        "UPDATE build_jobs SET imagebuilder_status = ?2 WHERE id = ?1 AND status = {running}"
    ))?
    .execute(params![job_id, phase])?;
    Ok(())
}

/// Extend the leases of jobs this process is running.
pub fn renew_leases(
    conn: &Connection,
    worker_ids: &[(i64, String)],
    until: i64,
) -> Result<(), DbError> {
    let mut stmt = conn.prepare_cached(status_sql!(
        "UPDATE build_jobs SET lease_expires_at = ?3 \
         WHERE id = ?1 AND worker_id = ?2 AND status = {running}"
    ))?;
    for (id, worker) in worker_ids {
        stmt.execute(params![id, worker, until])?;
    }
    Ok(())
}

pub struct Completion<'a> {
    pub job_id: i64,
    pub request_hash: &'a str,
    pub bin_dir: &'a str,
    pub result_json: &'a str,
    pub duration_s: f64,
    pub expires_at: i64,
}

pub fn complete(conn: &mut Connection, c: &Completion<'_>) -> Result<(), DbError> {
    let now = now_ms();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // First the job, guarded: an operator may have cancelled it meanwhile.
    let updated = tx
        .prepare_cached(status_sql!(
            "UPDATE build_jobs SET status = {completed}, imagebuilder_status = ?4, \
                detail = 'done', finished_at = ?2, expires_at = ?3, lease_expires_at = NULL \
             WHERE id = ?1 AND status = {running}"
        ))?
        .execute(params![c.job_id, now, c.expires_at, Phase::Done])?;
    if updated == 0 {
        return Err(DbError::NotRunning { job_id: c.job_id });
    }
    tx.prepare_cached(
        "INSERT OR REPLACE INTO build_results (request_hash, bin_dir, result_json, build_duration, \
            finished_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        c.request_hash,
        c.bin_dir,
        c.result_json,
        c.duration_s,
        now,
        c.expires_at
    ])?;
    // The worker renamed this directory into place: ours to delete later.
    tx.prepare_cached(
        "INSERT INTO store_published (bin_dir, published_at) VALUES (?1, ?2) \
         ON CONFLICT (bin_dir) DO UPDATE SET published_at = excluded.published_at",
    )?
    .execute(params![c.bin_dir, now])?;
    tx.commit()?;
    Ok(())
}

pub struct Failure<'a> {
    pub job_id: i64,
    pub detail: &'a str,
    pub stdout: &'a str,
    pub stderr: &'a str,
    pub build_cmd: Option<&'a str>,
    pub expires_at: i64,
}

pub fn fail(conn: &Connection, f: &Failure<'_>) -> Result<(), DbError> {
    let updated = conn
        .prepare_cached(status_sql!(
            "UPDATE build_jobs SET status = {failed}, imagebuilder_status = ?8, detail = ?2, \
                stdout = ?3, stderr = ?4, build_cmd = ?5, finished_at = ?6, expires_at = ?7, \
                lease_expires_at = NULL WHERE id = ?1 AND status = {running}"
        ))?
        .execute(params![
            f.job_id,
            f.detail,
            f.stdout,
            f.stderr,
            f.build_cmd,
            now_ms(),
            f.expires_at,
            Phase::Failed
        ])?;
    if updated == 0 {
        return Err(DbError::NotRunning { job_id: f.job_id });
    }
    Ok(())
}

/// Put a running job back in the queue, claimable from `not_before`.
/// `refund` gives the attempt back (shutdown, not the job's fault).
pub fn requeue(
    conn: &Connection,
    job_id: i64,
    not_before: i64,
    refund: bool,
    note: &str,
) -> Result<(), DbError> {
    conn.prepare_cached(status_sql!(
        "UPDATE build_jobs SET status = {pending}, imagebuilder_status = ?5, worker_id = NULL, \
            lease_expires_at = NULL, not_before = ?2, detail = ?4, \
            attempts = CASE WHEN ?3 THEN max(attempts - 1, 0) ELSE attempts END \
         WHERE id = ?1 AND status = {running}"
    ))?
    .execute(params![job_id, not_before, refund, note, Phase::Queued])?;
    Ok(())
}

/// End `worker`'s lease on a job it can no longer finish (its thread
/// panicked), so the next `recover_abandoned` takes it at once.
pub fn release_lease(conn: &Connection, job_id: i64, worker: &str) -> Result<(), DbError> {
    conn.prepare_cached(status_sql!(
        "UPDATE build_jobs SET lease_expires_at = 0 \
         WHERE id = ?1 AND worker_id = ?2 AND status = {running}"
    ))?
    .execute(params![job_id, worker])?;
    Ok(())
}

/// Jobs whose worker vanished (lease expired, or left by this worker id in
/// a previous life): back to pending, or failed when out of attempts.
/// Returns how many were requeued and failed.
pub fn recover_abandoned(
    conn: &mut Connection,
    own_worker_prefix: Option<&str>,
    failure_expires_at: i64,
) -> Result<(usize, Vec<i64>), DbError> {
    let now = now_ms();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let pattern =
        own_worker_prefix.map(|p| format!("{}%", p.replace('%', "\\%").replace('_', "\\_")));
    let abandoned = "status = {running} AND (lease_expires_at < :now \
        OR (:own IS NOT NULL AND worker_id LIKE :own ESCAPE '\\'))";
    let failed: Vec<i64> = tx
        .prepare(&with_statuses(&format!(
            "UPDATE build_jobs SET status = {{failed}}, imagebuilder_status = :failed_phase, \
                detail = 'Error: the worker building this request stopped ' || attempts || ' times; giving up', \
                finished_at = :now, expires_at = :expires, lease_expires_at = NULL \
             WHERE {abandoned} AND attempts >= max_attempts RETURNING id"
        )))?
        .query_map(
            named_params! {
                ":now": now,
                ":own": pattern,
                ":expires": failure_expires_at,
                ":failed_phase": Phase::Failed,
            },
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    let requeued = tx.execute(
        &with_statuses(&format!(
            "UPDATE build_jobs SET status = {{pending}}, imagebuilder_status = :queued, \
                worker_id = NULL, lease_expires_at = NULL, not_before = 0 WHERE {abandoned}"
        )),
        named_params! {
            ":now": now,
            ":own": pattern,
            ":queued": Phase::Queued,
        },
    )?;
    tx.commit()?;
    Ok((requeued, failed))
}

/// Delete expired results and failures; returns the store directories this
/// service published that no live result references any more (the caller
/// removes them from disk, or leaves them to the operator). Directories it
/// adopted are never returned: another server may still serve them.
pub fn delete_expired(conn: &mut Connection, now: i64) -> Result<Vec<String>, DbError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let bin_dirs: Vec<String> = {
        let mut stmt = tx.prepare(
            "SELECT DISTINCT bin_dir FROM build_results WHERE expires_at <= ?1 \
             AND bin_dir NOT IN (SELECT bin_dir FROM build_results WHERE expires_at > ?1) \
             AND bin_dir IN (SELECT bin_dir FROM store_published)",
        )?;
        stmt.query_map(params![now], |r| r.get(0))?
            .collect::<Result<_, _>>()?
    };
    for dir in &bin_dirs {
        tx.execute(
            "DELETE FROM store_published WHERE bin_dir = ?1",
            params![dir],
        )?;
    }
    tx.execute(
        "DELETE FROM build_results WHERE expires_at <= ?1",
        params![now],
    )?;
    tx.execute(
        status_sql!(
            "DELETE FROM build_jobs WHERE status NOT IN ({pending}, {running}) AND expires_at <= ?1"
        ),
        params![now],
    )?;
    tx.execute(
        "DELETE FROM build_requests WHERE request_hash NOT IN (SELECT request_hash FROM build_jobs) \
         AND request_hash NOT IN (SELECT request_hash FROM build_results)",
        [],
    )?;
    tx.commit()?;
    Ok(bin_dirs)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobActivity {
    /// This database has never seen the hash (or forgot it).
    Unknown,
    /// A job for it is pending or running.
    Active,
    /// Only completed or failed jobs.
    Finished,
}

pub fn job_activity(conn: &Connection, hash: &str) -> Result<JobActivity, DbError> {
    let mut stmt = conn.prepare_cached(status_sql!(
        "SELECT count(*), coalesce(sum(status IN ({pending}, {running})), 0) \
         FROM build_jobs WHERE request_hash = ?1"
    ))?;
    let (all, active): (i64, i64) =
        stmt.query_row(params![hash], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(match (all, active) {
        (0, _) => JobActivity::Unknown,
        (_, 0) => JobActivity::Finished,
        _ => JobActivity::Active,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_written_into_queries_quoted() {
        assert_eq!(
            with_statuses("status IN ({pending}, {running}) OR status = {failed} OR {completed}"),
            "status IN ('pending', 'running') OR status = 'failed' OR 'completed'"
        );
    }

    /// The queries of every poll and POST are prepared once per connection:
    /// a plan that depended on a bound value would be re-prepared at each
    /// new binding (partial-index checks do that unless QPSG is on).
    #[test]
    fn hot_queries_are_never_re_prepared() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open_and_migrate(&dir.path().join("q.db")).unwrap();
        for i in 0..4 {
            let hash = format!("h{i}");
            find_result(&conn, &hash, 1000 + i).unwrap();
            find_visible_job(&conn, &hash, 1000 + i).unwrap();
            queue_position(&conn, i).unwrap();
            queue_counts(&conn).unwrap();
            job_activity(&conn, &hash).unwrap();
        }
        let stmt = conn.prepare_cached(visible_job_sql()).unwrap();
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }

    /// The enum and the schema spell the statuses the same way.
    #[test]
    fn statuses_are_the_schema_s() {
        // The newest migration that (re)creates build_jobs.
        let schema = super::super::MIGRATIONS
            .iter()
            .rev()
            .map(|(_, sql)| *sql)
            .find(|sql| sql.contains("CHECK (status IN"))
            .unwrap();
        let quoted = |s: &[JobStatus]| {
            s.iter()
                .map(|s| format!("'{}'", s.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let check = format!("CHECK (status IN ({}))", quoted(&JobStatus::ALL));
        assert!(schema.contains(&check), "{check}");
        let active: Vec<JobStatus> = JobStatus::ALL
            .into_iter()
            .filter(|s| s.is_active())
            .collect();
        let index = format!("WHERE status IN ({});", quoted(&active));
        assert!(schema.contains(&index), "{index}");
    }

    #[test]
    fn unknown_texts_are_errors_not_guesses() {
        let conn = Connection::open_in_memory().unwrap();
        let read =
            |sql: &str| -> rusqlite::Result<JobStatus> { conn.query_row(sql, [], |r| r.get(0)) };
        assert_eq!(read("SELECT 'running'").unwrap(), JobStatus::Running);
        assert!(read("SELECT 'RUNNING'").is_err());
        assert!(read("SELECT 1").is_err());
        let phase: Phase = conn
            .query_row("SELECT ?1", params![Phase::BuildingImage], |r| r.get(0))
            .unwrap();
        assert_eq!(phase, Phase::BuildingImage);
    }
}
