//! Reads behind the statistics endpoints. Each reads rollups only (or the
//! capped error log), with explicit `today`/`now` so tests can pin time.

use super::rollup::{self, Counters, DAY_MS};
use crate::config::Branch;
use crate::db::DbError;
use crate::upstream::versions;
use rusqlite::{Connection, params};
use std::collections::BTreeMap;

/// Counts over the last 24 hourly buckets (this hour and the 23 before).
pub fn last_24h(conn: &Connection, now_ms: i64) -> Result<Counters, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT coalesce(sum(requests), 0), coalesce(sum(cache_hits), 0), \
            coalesce(sum(cache_misses), 0), coalesce(sum(successes), 0), \
            coalesce(sum(failures), 0), coalesce(sum(rejected), 0), coalesce(sum(adopted), 0) \
         FROM stats_hourly WHERE hour > ?1",
    )?;
    Ok(stmt.query_row(params![rollup::hour_of(now_ms) - 24], |r| {
        Ok(Counters {
            requests: r.get(0)?,
            cache_hits: r.get(1)?,
            cache_misses: r.get(2)?,
            successes: r.get(3)?,
            failures: r.get(4)?,
            rejected: r.get(5)?,
            adopted: r.get(6)?,
            build_seconds: 0.0,
        })
    })?)
}

/// Per day of `first..=last`, counters summed over versions.
fn per_day(
    conn: &Connection,
    first: i64,
    last: i64,
) -> Result<BTreeMap<i64, (Counters, i64, i64)>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT day, sum(requests), sum(cache_hits), sum(cache_misses), sum(successes), \
            sum(failures), sum(CASE WHEN diff_packages THEN requests ELSE 0 END) \
         FROM stats_daily_version WHERE day >= ?1 AND day <= ?2 GROUP BY day",
    )?;
    let rows = stmt.query_map(params![first, last], |r| {
        let requests: i64 = r.get(1)?;
        let diff_true: i64 = r.get(6)?;
        Ok((
            r.get::<_, i64>(0)?,
            (
                Counters {
                    requests,
                    cache_hits: r.get(2)?,
                    cache_misses: r.get(3)?,
                    successes: r.get(4)?,
                    failures: r.get(5)?,
                    ..Counters::default()
                },
                diff_true,
                requests - diff_true,
            ),
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[derive(Debug, Clone, PartialEq)]
pub struct DaySeries {
    /// Day numbers, oldest first, the last one `today`.
    pub days: Vec<i64>,
    pub counters: Vec<Counters>,
    pub diff_true: Vec<i64>,
    pub diff_false: Vec<i64>,
}

/// One entry per day of the `days` days ending with `today`, zeros included.
pub fn daily_window(conn: &Connection, today: i64, days: u32) -> Result<DaySeries, DbError> {
    let first = today - (days as i64 - 1);
    let sparse = per_day(conn, first, today)?;
    let dense = rollup::dense(&sparse, first, days as usize);
    Ok(DaySeries {
        days: (first..=today).collect(),
        counters: dense.iter().map(|(c, _, _)| *c).collect(),
        diff_true: dense.iter().map(|(_, t, _)| *t).collect(),
        diff_false: dense.iter().map(|(_, _, f)| *f).collect(),
    })
}

/// Requests with and without `diff_packages` over the window.
pub fn diff_totals(conn: &Connection, today: i64, days: u32) -> Result<(i64, i64), DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT coalesce(sum(CASE WHEN diff_packages THEN requests ELSE 0 END), 0), \
            coalesce(sum(CASE WHEN diff_packages THEN 0 ELSE requests END), 0) \
         FROM stats_daily_version WHERE day >= ?1 AND day <= ?2",
    )?;
    Ok(
        stmt.query_row(params![today - (days as i64 - 1), today], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?,
    )
}

/// Per version: (requests with diff_packages, without), newest version first.
pub fn diff_by_version(
    conn: &Connection,
    today: i64,
    days: u32,
) -> Result<Vec<(String, i64, i64)>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT version, sum(CASE WHEN diff_packages THEN requests ELSE 0 END), \
            sum(CASE WHEN diff_packages THEN 0 ELSE requests END) \
         FROM stats_daily_version WHERE day >= ?1 AND day <= ?2 \
         GROUP BY version HAVING sum(requests) > 0",
    )?;
    let mut rows: Vec<(String, i64, i64)> = stmt
        .query_map(params![today - (days as i64 - 1), today], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    rows.sort_by(|a, b| versions::cmp_versions(&b.0, &a.0));
    Ok(rows)
}

/// Weekly buckets ending with `today`, the reference's way: bucket `i`
/// covers days `start + 7i .. start + 7i + 6`, the last one ends today.
#[derive(Debug, Clone, PartialEq)]
pub struct Weekly {
    /// First day of each bucket.
    pub starts: Vec<i64>,
    /// Series label → requests per bucket, labels in version order.
    pub series: Vec<(String, Vec<i64>)>,
}

/// Requests per week: one series per branch, or with `branch` one per
/// version of that branch.
pub fn weekly_by_version(
    conn: &Connection,
    branches: &BTreeMap<String, Branch>,
    today: i64,
    weeks: u32,
    branch: Option<&str>,
) -> Result<Weekly, DbError> {
    let start = today + 1 - 7 * weeks as i64;
    let mut stmt = conn.prepare_cached(
        "SELECT day, version, sum(requests) FROM stats_daily_version \
         WHERE day >= ?1 AND day <= ?2 GROUP BY day, version",
    )?;
    let mut series: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let rows = stmt.query_map(params![start, today], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (day, version, n) = row?;
        let version_branch = crate::config::branch_name(branches, &version);
        let label = match branch {
            Some(b) if version_branch != b => continue,
            Some(_) => version,
            None => version_branch,
        };
        let bucket = ((day - start) / 7) as usize;
        let data = series
            .entry(label)
            .or_insert_with(|| vec![0; weeks as usize]);
        if let Some(slot) = data.get_mut(bucket) {
            *slot += n;
        }
    }
    let mut series: Vec<(String, Vec<i64>)> = series.into_iter().collect();
    series.sort_by(|a, b| versions::cmp_versions(&a.0, &b.0));
    Ok(Weekly {
        starts: (0..weeks as i64).map(|i| start + 7 * i).collect(),
        series,
    })
}

/// The `n` most requested extra packages of the last 30 days, optionally of
/// one branch; ties by name.
pub fn top_packages(
    conn: &Connection,
    branch: Option<&str>,
    n: u32,
) -> Result<Vec<(String, i64)>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT package, sum(count) AS c FROM stats_packages_recent \
         WHERE ?1 IS NULL OR branch = ?1 GROUP BY package ORDER BY c DESC, package LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![branch, n], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The newest `n` build errors as display lines, newest first.
pub fn build_errors(conn: &Connection, n: u32) -> Result<Vec<String>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT ts, version, target, profile, detail FROM stats_errors \
         ORDER BY ts DESC, id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map(params![n], |r| {
        Ok(rollup::error_line(
            r.get(0)?,
            &r.get::<_, String>(1)?,
            &r.get::<_, String>(2)?,
            &r.get::<_, String>(3)?,
            &r.get::<_, String>(4)?,
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Label of a day as the reference's charts have it: `YYYY-MM-DDZ`.
pub fn chart_label(day: i64) -> String {
    format!("{}Z", rollup::date_of(day))
}

/// Percentage with two decimals; 0 for an empty total.
pub fn percent(part: i64, total: i64) -> f64 {
    if total <= 0 {
        return 0.0;
    }
    (part as f64 * 10_000.0 / total as f64).round() / 100.0
}

/// Milliseconds of day `day`'s start (for tests and seeding).
pub fn day_start_ms(day: i64) -> i64 {
    day * DAY_MS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_branches;
    use crate::stats::writer::apply_batch;
    use crate::stats::{BuildInfo, Event, Kind};

    fn db() -> Connection {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open_and_migrate(&dir.path().join("s.db")).unwrap();
        // The file stays open after the directory handle goes (Linux).
        std::mem::forget(dir);
        conn
    }

    fn at(day: i64, hour: i64) -> i64 {
        day_start_ms(day) + hour * 3_600_000
    }

    fn ev(ts_ms: i64, kind: Kind, version: &str, diff: bool, pkgs: &[&str]) -> Event {
        Event {
            ts_ms,
            kind,
            build: BuildInfo {
                request_hash: "h".into(),
                version: version.into(),
                target: "x86/64".into(),
                profile: "generic".into(),
                client: "auc/0.3".into(),
                diff_packages: diff,
                packages: pkgs.iter().map(|p| p.to_string()).collect(),
            },
            duration_s: matches!(kind, Kind::Success | Kind::Failure).then_some(12.0),
            detail: (kind == Kind::Failure).then(|| "Error: boom".to_string()),
        }
    }

    const TODAY: i64 = 19_800; // 2024-03-18

    fn seeded() -> Connection {
        let mut conn = db();
        let events = vec![
            // Two days ago, last millisecond of the day.
            ev(
                day_start_ms(TODAY - 1) - 1,
                Kind::CacheMiss,
                "24.10.0",
                true,
                &["vim"],
            ),
            ev(at(TODAY - 1, 0), Kind::CacheHit, "24.10.0", true, &[]),
            ev(
                at(TODAY, 1),
                Kind::CacheMiss,
                "23.05.5",
                false,
                &["tmux", "vim"],
            ),
            ev(at(TODAY, 2), Kind::Success, "23.05.5", false, &[]),
            ev(at(TODAY, 3), Kind::Failure, "24.10.0", true, &[]),
            ev(at(TODAY, 4), Kind::CacheMiss, "SNAPSHOT", false, &["vim"]),
            ev(at(TODAY, 5), Kind::Rejected(400), "", false, &[]),
            // Ten weeks ago: outside a 30-day window, inside 26 weeks.
            ev(
                at(TODAY - 70, 5),
                Kind::CacheMiss,
                "22.03.7",
                false,
                &["old"],
            ),
        ];
        apply_batch(&mut conn, &default_branches(), &events, at(TODAY, 12)).unwrap();
        conn
    }

    #[test]
    fn daily_window_is_dense_and_ends_today() {
        let conn = seeded();
        let w = daily_window(&conn, TODAY, 5).unwrap();
        assert_eq!(w.days, (TODAY - 4..=TODAY).collect::<Vec<_>>());
        let requests: Vec<i64> = w.counters.iter().map(|c| c.requests).collect();
        assert_eq!(requests, [0, 0, 1, 1, 2]);
        let hits: Vec<i64> = w.counters.iter().map(|c| c.cache_hits).collect();
        assert_eq!(hits, [0, 0, 0, 1, 0]);
        let failures: Vec<i64> = w.counters.iter().map(|c| c.failures).collect();
        assert_eq!(failures, [0, 0, 0, 0, 1]);
        assert_eq!(w.diff_true, [0, 0, 1, 1, 0]);
        assert_eq!(w.diff_false, [0, 0, 0, 0, 2]);
        // A window of empty days only.
        let empty = daily_window(&conn, TODAY + 100, 3).unwrap();
        assert!(empty.counters.iter().all(|c| *c == Counters::default()));
        assert_eq!(empty.days.len(), 3);
    }

    #[test]
    fn diff_totals_and_by_version() {
        let conn = seeded();
        assert_eq!(diff_totals(&conn, TODAY, 30).unwrap(), (2, 2));
        assert_eq!(diff_totals(&conn, TODAY, 1).unwrap(), (0, 2));
        assert_eq!(diff_totals(&conn, TODAY, 100).unwrap(), (2, 3));
        let by = diff_by_version(&conn, TODAY, 30).unwrap();
        assert_eq!(
            by,
            [
                ("SNAPSHOT".to_string(), 0, 1),
                ("24.10.0".to_string(), 2, 0),
                ("23.05.5".to_string(), 0, 1)
            ]
        );
        assert_eq!(percent(1, 3), 33.33);
        assert_eq!(percent(0, 0), 0.0);
    }

    #[test]
    fn weekly_series_by_branch_and_by_version() {
        let conn = seeded();
        let branches = default_branches();
        let w = weekly_by_version(&conn, &branches, TODAY, 26, None).unwrap();
        assert_eq!(w.starts.len(), 26);
        assert_eq!(*w.starts.last().unwrap(), TODAY - 6);
        let labels: Vec<&str> = w.series.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(labels, ["22.03", "23.05", "24.10", "SNAPSHOT"]);
        let s2410 = &w.series[2].1;
        assert_eq!(s2410[25], 2, "both 24.10 requests fall in the last week");
        assert_eq!(s2410.iter().sum::<i64>(), 2);
        let s2203 = &w.series[0].1;
        assert_eq!(s2203.iter().sum::<i64>(), 1);
        assert_eq!(s2203[25 - 10], 1, "ten weeks back");

        let only = weekly_by_version(&conn, &branches, TODAY, 4, Some("24.10")).unwrap();
        assert_eq!(only.series.len(), 1);
        assert_eq!(only.series[0].0, "24.10.0");
        let none = weekly_by_version(&conn, &branches, TODAY, 4, Some("19.07")).unwrap();
        assert!(none.series.is_empty());
    }

    #[test]
    fn top_packages_count_misses_in_the_recent_window() {
        let conn = seeded();
        let all = top_packages(&conn, None, 10).unwrap();
        assert_eq!(all, [("vim".to_string(), 3), ("tmux".to_string(), 1)]);
        assert_eq!(
            top_packages(&conn, Some("24.10"), 10).unwrap(),
            [("vim".to_string(), 1)]
        );
        assert_eq!(top_packages(&conn, None, 1).unwrap().len(), 1);
        assert!(top_packages(&conn, Some("nope"), 10).unwrap().is_empty());
    }

    #[test]
    fn the_recent_window_moves_with_the_day() {
        let mut conn = seeded();
        // 30 days later "vim" of TODAY-1 and TODAY have left the window.
        let later = at(TODAY + 30, 1);
        apply_batch(
            &mut conn,
            &default_branches(),
            &[ev(later, Kind::CacheMiss, "24.10.0", true, &["luci"])],
            later,
        )
        .unwrap();
        assert_eq!(
            top_packages(&conn, None, 10).unwrap(),
            [("luci".to_string(), 1)]
        );
    }

    #[test]
    fn last_24_hours_and_errors() {
        let conn = seeded();
        let c = last_24h(&conn, at(TODAY, 12)).unwrap();
        // Yesterday 00:00 is more than 24 hours back.
        assert_eq!(
            (c.requests, c.successes, c.failures, c.rejected),
            (2, 1, 1, 1)
        );
        let errors = build_errors(&conn, 10).unwrap();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].ends_with("24.10.0:x86/64:generic Error: boom"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn pruning_keeps_rollups_longer_than_raw_events() {
        let mut conn = seeded();
        let config = crate::config::Config {
            stats_retention_days: 1,
            stats_rollup_retention_days: 30,
            ..crate::config::Config::default()
        };
        crate::stats::writer::prune(&mut conn, &config, at(TODAY, 12)).unwrap();
        let raw: i64 = conn
            .query_row("SELECT count(*) FROM build_stats", [], |r| r.get(0))
            .unwrap();
        // Left: the events of the last 24 hours (TODAY 01:00 … 05:00).
        assert_eq!(raw, 6, "request+miss, success, failure, request+miss");
        assert_eq!(diff_totals(&conn, TODAY, 30).unwrap(), (2, 2));
        assert_eq!(
            diff_totals(&conn, TODAY, 100).unwrap(),
            (2, 2),
            "day -70 pruned"
        );
    }
}
