//! Results that no build of ours produced: builds adopted from the store,
//! and the lookup of a live result by its store directory.

use super::jobs::{find_result, find_visible_job, save_request};
use super::{DbError, now_ms};
use crate::models::BuildRequest;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// The 200 body of a live result whose build is in `bin_dir`, whatever
/// request hash it was answered under (a profile alias and its canonical
/// id share the directory).
pub fn live_result_for_bin_dir(
    conn: &Connection,
    bin_dir: &str,
    now: i64,
) -> Result<Option<String>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT result_json FROM build_results WHERE bin_dir = ?1 AND expires_at > ?2 \
         ORDER BY expires_at DESC LIMIT 1",
    )?;
    Ok(stmt
        .query_row(params![bin_dir, now], |r| r.get(0))
        .optional()?)
}

/// A build found complete in the store, to be recorded as the result of
/// `request_hash`.
#[derive(Debug, Clone)]
pub struct Adoption<'a> {
    pub request_hash: &'a str,
    /// The validated request.
    pub request: &'a BuildRequest,
    pub bin_dir: &'a str,
    pub client: &'a str,
    /// The 200 body.
    pub result_json: &'a str,
    pub duration_s: f64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdoptOutcome {
    Recorded,
    /// A result for the hash appeared meanwhile (an identical POST).
    AlreadyBuilt,
    /// A job for the hash was queued meanwhile; it stays in charge.
    Active,
}

/// Record an adoption under one write lock, unless a result or an active
/// job for the hash appeared since the caller looked. The directory is not
/// added to `store_published`: it is not ours to delete.
pub fn record_adoption(conn: &mut Connection, a: &Adoption<'_>) -> Result<AdoptOutcome, DbError> {
    let now = now_ms();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if find_result(&tx, a.request_hash, now)?.is_some() {
        return Ok(AdoptOutcome::AlreadyBuilt);
    }
    if find_visible_job(&tx, a.request_hash, now)?.is_some_and(|j| j.status.is_active()) {
        return Ok(AdoptOutcome::Active);
    }
    save_request(&tx, a.request_hash, a.request, a.bin_dir, a.client, now)?;
    tx.execute(
        "INSERT OR REPLACE INTO build_results (request_hash, bin_dir, result_json, build_duration, \
            finished_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            a.request_hash,
            a.bin_dir,
            a.result_json,
            a.duration_s,
            now,
            a.expires_at
        ],
    )?;
    tx.commit()?;
    Ok(AdoptOutcome::Recorded)
}
