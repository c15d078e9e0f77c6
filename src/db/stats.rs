//! Writes to `build_stats`: one row per event, read later by GROUP BY queries.

use super::{DbError, now_ms};
use rusqlite::{Connection, params};

/// Event names as stored; the statistics endpoints group on them.
pub const REQUEST: &str = "request";
pub const CACHE_HIT: &str = "cache-hit";
pub const CACHE_MISS: &str = "cache-miss";
pub const SUCCESS: &str = "success";
pub const FAILURE: &str = "failure";

#[derive(Debug, Clone, Default)]
pub struct StatEvent<'a> {
    pub request_hash: Option<&'a str>,
    pub version: &'a str,
    pub target: &'a str,
    pub profile: &'a str,
    pub client: &'a str,
    pub diff_packages: bool,
    pub packages: &'a [String],
    pub duration_s: Option<f64>,
}

pub fn record(conn: &Connection, event: &str, e: &StatEvent<'_>) -> Result<(), DbError> {
    let packages = serde_json::to_string(e.packages).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(
        "INSERT INTO build_stats (event, ts, request_hash, version, target, profile, client, \
            diff_packages, packages, duration) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        event,
        now_ms(),
        e.request_hash,
        e.version,
        e.target,
        e.profile,
        e.client,
        e.diff_packages,
        packages,
        e.duration_s
    ])?;
    Ok(())
}

/// Several events for one request, committed together.
pub fn record_all(conn: &Connection, events: &[&str], e: &StatEvent<'_>) -> Result<(), DbError> {
    let tx = conn.unchecked_transaction()?;
    for event in events {
        record(&tx, event, e)?;
    }
    tx.commit()?;
    Ok(())
}
