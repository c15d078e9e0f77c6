//! The statistics endpoints: `/api/v1/stats`, the reference server's chart
//! endpoints (`stats/summary`, `builds-per-day`, `builds-by-version`,
//! `top-packages`, `build-errors`), the `diff-packages-*` endpoints, and
//! Prometheus `/metrics`. They read rollups only (`crate::stats::query`).
//!
//! Query values: a missing one takes its default; a present but bad one
//! (`days=-1`, `n=abc`, `days=100000`) answers 400 with a `detail` naming
//! the parameter and its range.

use super::AppState;
use super::response::{Body, Response};
use crate::db::{DbError, jobs, now_ms};
use crate::metrics::Gauges;
use crate::stats::query::{self, chart_label, percent};
use crate::stats::rollup;
use rusqlite::Connection;
use serde_json::{Value, json};

/// Last path segments of the endpoints under /api/v1 routed here (besides
/// `stats` and `stats/summary`).
pub const ENDPOINTS: [&str; 7] = [
    "builds-per-day",
    "builds-by-version",
    "diff-packages-stats",
    "diff-packages-by-version",
    "diff-packages-trend",
    "top-packages",
    "build-errors",
];

const DEFAULT_DAYS: u64 = 30;
const DEFAULT_WEEKS: u64 = 26;
const DEFAULT_TOP: u64 = 30;
const MAX_TOP: u64 = 100;
const DEFAULT_ERRORS: u64 = 100;
const MAX_ERRORS: u64 = 500;
const MAX_BRANCH_LEN: usize = 64;

fn db_error(e: DbError) -> Response {
    log::error!("database error while answering a statistics request: {e}");
    Response::error(503, "Database temporarily unavailable, try again shortly")
        .with_header("Retry-After", "2")
}

/// A 400 naming the parameter and what it accepts.
#[derive(Debug, PartialEq)]
pub struct BadParam(pub String);

impl BadParam {
    fn response(self) -> Response {
        Response::error(400, &self.0)
    }
}

/// Decoded query pairs; a repeated key: the last one wins.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: &str) -> Query {
        Query(
            url::form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// An integer `min..=max`, `default` when absent.
    pub fn int(&self, key: &str, default: u64, min: u64, max: u64) -> Result<u64, BadParam> {
        let Some(raw) = self.get(key) else {
            return Ok(default.clamp(min, max));
        };
        let bad = || BadParam(format!("{key} must be an integer from {min} to {max}"));
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 20 || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        match raw.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(bad()),
        }
    }

    /// A branch name (`24.10`, `SNAPSHOT`); absent or empty means all.
    pub fn branch(&self) -> Result<Option<String>, BadParam> {
        match self.get("branch").map(str::trim) {
            None | Some("") => Ok(None),
            Some(b)
                if b.len() <= MAX_BRANCH_LEN
                    && b.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c)) =>
            {
                Ok(Some(b.to_string()))
            }
            Some(_) => Err(BadParam(format!(
                "branch must be a branch name of at most {MAX_BRANCH_LEN} letters, digits, '.', '_' or '-'"
            ))),
        }
    }
}

/// Day windows reach back as far as rollups are kept.
fn max_days(state: &AppState) -> u64 {
    state.config().stats_rollup_retention_days.max(1)
}

fn max_weeks(state: &AppState) -> u64 {
    (state.config().stats_rollup_retention_days / 7).max(1)
}

fn today() -> i64 {
    rollup::day_of(now_ms())
}

pub fn route(state: &AppState, conn: &Connection, name: &str, raw_query: &str) -> Response {
    let q = Query::parse(raw_query);
    let result = match name {
        "summary" => summary(conn),
        "builds-per-day" => builds_per_day(state, conn, &q),
        "builds-by-version" => builds_by_version(state, conn, &q),
        "diff-packages-stats" => diff_packages_stats(state, conn, &q),
        "diff-packages-by-version" => diff_packages_by_version(state, conn, &q),
        "diff-packages-trend" => diff_packages_trend(state, conn, &q),
        "top-packages" => top_packages(conn, &q),
        "build-errors" => build_errors(conn, &q),
        _ => return Response::error(404, "Not Found"),
    };
    match result {
        Ok(r) => r,
        Err(Failure::Param(p)) => p.response(),
        Err(Failure::Db(e)) => db_error(e),
    }
}

enum Failure {
    Param(BadParam),
    Db(DbError),
}

impl From<BadParam> for Failure {
    fn from(p: BadParam) -> Self {
        Failure::Param(p)
    }
}

impl From<DbError> for Failure {
    fn from(e: DbError) -> Self {
        Failure::Db(e)
    }
}

type Answer = Result<Response, Failure>;

fn ok(v: Value) -> Answer {
    Ok(Response::json(200, &v))
}

/// `GET /api/v1/stats`: the queue, the workers, and the last 24 hours.
pub fn queue_stats(state: &AppState, conn: &Connection) -> Response {
    let read = || -> Result<Value, DbError> {
        let c = jobs::queue_counts(conn)?;
        let day = query::last_24h(conn, now_ms())?;
        Ok(json!({
            "queue_length": c.pending,
            "pending": c.pending,
            "running": c.running,
            "workers": state.config().worker_concurrent,
            "workers_busy": state.queue.inflight.len(),
            "completed_24h": day.successes,
            "failed_24h": day.failures,
            "adopted_24h": day.adopted,
            // `degraded` while Podman does not answer: jobs stay queued.
            "container_runtime": state.queue.runtime_health.state(),
        }))
    };
    match read() {
        Ok(v) => Response::json(200, &v),
        Err(e) => db_error(e),
    }
}

/// `GET /api/v1/stats/summary` (reference shape). `builds_24h` counts build
/// requests, like every "builds" figure here.
fn summary(conn: &Connection) -> Answer {
    let c = jobs::queue_counts(conn)?;
    let day = query::last_24h(conn, now_ms())?;
    ok(json!({"queue_length": c.pending, "builds_24h": day.requests}))
}

fn builds_per_day(state: &AppState, conn: &Connection, q: &Query) -> Answer {
    let days = q.int("days", DEFAULT_DAYS, 1, max_days(state))? as u32;
    let w = query::daily_window(conn, today(), days)?;
    let series =
        |f: fn(&rollup::Counters) -> i64| -> Vec<i64> { w.counters.iter().map(f).collect() };
    ok(json!({
        "labels": w.days.iter().map(|d| chart_label(*d)).collect::<Vec<_>>(),
        "datasets": [
            {"label": "Requests", "data": series(|c| c.requests), "color": "green"},
            {"label": "Cache-Hits", "data": series(|c| c.cache_hits), "color": "orange"},
            {"label": "Failures", "data": series(|c| c.failures), "color": "red"},
        ],
    }))
}

fn builds_by_version(state: &AppState, conn: &Connection, q: &Query) -> Answer {
    let weeks = q.int("weeks", DEFAULT_WEEKS, 1, max_weeks(state))? as u32;
    let branch = q.branch()?;
    let w = query::weekly_by_version(
        conn,
        &state.config().branches,
        today(),
        weeks,
        branch.as_deref(),
    )?;
    let datasets: Vec<Value> = w
        .series
        .into_iter()
        .map(|(label, data)| json!({"label": label, "data": data}))
        .collect();
    ok(json!({
        "labels": w.starts.iter().map(|d| chart_label(*d)).collect::<Vec<_>>(),
        "datasets": datasets,
    }))
}

fn diff_packages_stats(state: &AppState, conn: &Connection, q: &Query) -> Answer {
    let days = q.int("days", DEFAULT_DAYS, 1, max_days(state))? as u32;
    let (t, f) = query::diff_totals(conn, today(), days)?;
    let total = t + f;
    ok(json!({
        "total_builds": total,
        "diff_packages_true": t,
        "diff_packages_false": f,
        "percentage_true": percent(t, total),
        "percentage_false": percent(f, total),
    }))
}

fn diff_packages_by_version(state: &AppState, conn: &Connection, q: &Query) -> Answer {
    let weeks = q.int("weeks", DEFAULT_WEEKS, 1, max_weeks(state))? as u32;
    let rows = query::diff_by_version(conn, today(), weeks * 7)?;
    ok(Value::Array(
        rows.into_iter()
            .map(|(version, t, f)| {
                json!({
                    "version": version,
                    "total_builds": t + f,
                    "diff_packages_true": t,
                    "diff_packages_false": f,
                    "percentage_true": percent(t, t + f),
                })
            })
            .collect(),
    ))
}

fn diff_packages_trend(state: &AppState, conn: &Connection, q: &Query) -> Answer {
    let days = q.int("days", DEFAULT_DAYS, 1, max_days(state))? as u32;
    let w = query::daily_window(conn, today(), days)?;
    ok(Value::Array(
        w.days
            .iter()
            .enumerate()
            .map(|(i, day)| {
                json!({
                    "date": rollup::date_of(*day),
                    "diff_packages_true": w.diff_true[i],
                    "diff_packages_false": w.diff_false[i],
                    "total": w.diff_true[i] + w.diff_false[i],
                })
            })
            .collect(),
    ))
}

fn top_packages(conn: &Connection, q: &Query) -> Answer {
    let n = q.int("n", DEFAULT_TOP, 1, MAX_TOP)? as u32;
    let branch = q.branch()?;
    let rows = query::top_packages(conn, branch.as_deref(), n)?;
    ok(json!({
        "packages": rows
            .into_iter()
            .map(|(name, count)| json!({"name": name, "count": count}))
            .collect::<Vec<_>>(),
        "branch": branch,
        "days": rollup::RECENT_DAYS,
    }))
}

/// Plain text in the reference's layout: a header, then one line per
/// failure, newest first.
fn build_errors(conn: &Connection, q: &Query) -> Answer {
    let n = q.int("n", DEFAULT_ERRORS, 1, MAX_ERRORS)? as u32;
    let lines = query::build_errors(conn, n)?;
    let text = if lines.is_empty() {
        "No build errors recorded.".to_string()
    } else {
        let stamp = |l: &String| l.get(..19).unwrap_or("unknown").to_string();
        let mut out = vec![
            format!("Build Errors: {} entries", lines.len()),
            format!(
                "Time range: {} to {}",
                lines.last().map(stamp).unwrap_or_default(),
                lines.first().map(stamp).unwrap_or_default()
            ),
            String::new(),
            "Recent errors:".to_string(),
            "-".repeat(60),
        ];
        out.extend(lines);
        out.join("\n")
    };
    Ok(Response {
        status: 200,
        headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
        body: Body::Bytes(text.into_bytes()),
    })
}

/// `GET /metrics`: format the counters; one read of the queue length.
pub fn metrics(state: &AppState, conn: &Connection) -> Response {
    let queue_length = match jobs::queue_counts(conn) {
        Ok(c) => Some(c.pending),
        Err(e) => {
            log::warn!("/metrics: queue length unavailable: {e}");
            None
        }
    };
    let gauges = Gauges {
        queue_length,
        running: state.queue.inflight.len(),
        workers: state.config().worker_concurrent,
        upstream_fetch_errors: state.upstream.fetch_error_count(),
        upstream_fetches: state.upstream.fetch_count(),
    };
    Response {
        status: 200,
        headers: vec![(
            "Content-Type".into(),
            "text/plain; version=0.0.4; charset=utf-8".into(),
        )],
        body: Body::Bytes(state.metrics.render(&gauges).into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_default_range_and_errors() {
        let q = Query::parse("days=7&n=abc&m=-1&big=100000&sp=%2012%20&e=&x=1&x=2");
        assert_eq!(q.int("days", 30, 1, 730), Ok(7));
        assert_eq!(q.int("missing", 30, 1, 730), Ok(30));
        assert_eq!(q.int("missing", 30, 1, 10), Ok(10), "default clamped");
        assert_eq!(q.int("sp", 30, 1, 730), Ok(12));
        assert_eq!(q.int("x", 30, 1, 730), Ok(2), "last wins");
        for key in ["n", "m", "big", "e"] {
            assert_eq!(
                q.int(key, 30, 1, 730),
                Err(BadParam(format!("{key} must be an integer from 1 to 730")))
            );
        }
        let huge = Query::parse("days=99999999999999999999999999");
        assert!(huge.int("days", 30, 1, 730).is_err());
    }

    #[test]
    fn branch_names() {
        assert_eq!(Query::parse("").branch(), Ok(None));
        assert_eq!(Query::parse("branch=").branch(), Ok(None));
        assert_eq!(
            Query::parse("branch=24.10").branch(),
            Ok(Some("24.10".into()))
        );
        assert!(Query::parse("branch=a%20b").branch().is_err());
        assert!(
            Query::parse(&format!("branch={}", "x".repeat(65)))
                .branch()
                .is_err()
        );
    }
}
