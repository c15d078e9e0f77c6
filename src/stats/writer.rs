//! The statistics writer: one thread that owns the only connection writing
//! statistics. It commits what arrives in batches (at most `BATCH_EVENTS`
//! events, or what came within `BATCH_WINDOW` of the first), raw events and
//! rollups in one transaction, and prunes by the retention settings.

use super::rollup::{self, Increments};
use super::{Event, Kind, Msg, Recorder};
use crate::config::{Branch, Config, LiveConfig};
use crate::db::{self, DbError};
use crate::metrics::Metrics;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rusqlite::{Connection, TransactionBehavior, params};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Messages the channel holds before events are dropped: minutes of a busy
/// public server's traffic, a few MiB at most.
pub const CHANNEL_CAPACITY: usize = 16_384;
pub const BATCH_EVENTS: usize = 500;
pub const BATCH_WINDOW: Duration = Duration::from_millis(50);
/// How often retention pruning runs (and at start and each new UTC day).
const MAINTENANCE_EVERY: Duration = Duration::from_secs(3600);
/// Entries kept for /api/v1/build-errors (the reference keeps as many).
pub const MAX_ERROR_ENTRIES: i64 = 5000;

/// Owned by the app: stops and joins the writer.
pub struct Writer {
    tx: Sender<Msg>,
    handle: Option<JoinHandle<()>>,
}

impl Writer {
    /// Commit everything sent before this call; false when the writer did
    /// not answer within `limit` (it is gone or the database is stuck).
    pub fn flush(&self, limit: Duration) -> bool {
        let (ack_tx, ack_rx) = crossbeam_channel::bounded(1);
        if self.tx.send_timeout(Msg::Flush(ack_tx), limit).is_err() {
            return false;
        }
        ack_rx.recv_timeout(limit).is_ok()
    }

    /// Commit what is queued and end the thread. Call after the last
    /// producer (handlers, workers) has stopped.
    pub fn stop(mut self) {
        let _ = self.tx.send_timeout(Msg::Stop, Duration::from_secs(5));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Start the writer thread; the `Recorder` goes to handlers and workers.
pub fn start_writer(
    config: Arc<LiveConfig>,
    metrics: Arc<Metrics>,
) -> std::io::Result<(Writer, Recorder)> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let backlog = Arc::new(AtomicUsize::new(0));
    let inbox = Inbox {
        rx,
        backlog: Arc::clone(&backlog),
    };
    let thread_metrics = Arc::clone(&metrics);
    let handle = std::thread::Builder::new()
        .name("stats-writer".into())
        .spawn(move || run(&config, &thread_metrics, &inbox))?;
    Ok((
        Writer {
            tx: tx.clone(),
            handle: Some(handle),
        },
        Recorder::new(tx, backlog, CHANNEL_CAPACITY, metrics),
    ))
}

/// The writer's end of the channel: every event taken out frees a place in
/// the recorders' `backlog`.
struct Inbox {
    rx: Receiver<Msg>,
    backlog: Arc<AtomicUsize>,
}

impl Inbox {
    fn taken(&self, msg: Msg) -> Msg {
        if matches!(msg, Msg::Event(_)) {
            self.backlog.fetch_sub(1, Ordering::AcqRel);
        }
        msg
    }

    fn recv_deadline(&self, deadline: Instant) -> Result<Msg, RecvTimeoutError> {
        self.rx.recv_deadline(deadline).map(|m| self.taken(m))
    }

    fn recv_timeout(&self, timeout: Duration) -> Result<Msg, RecvTimeoutError> {
        self.rx.recv_timeout(timeout).map(|m| self.taken(m))
    }

    fn try_recv(&self) -> Result<Msg, crossbeam_channel::TryRecvError> {
        self.rx.try_recv().map(|m| self.taken(m))
    }
}

fn open(config: &Config, rx: &Inbox) -> Option<Connection> {
    loop {
        match db::open(&config.database_path) {
            Ok(c) => return Some(c),
            Err(e) => {
                log::error!("statistics writer: {e}; retrying in 5 s");
                // Keep the channel moving meanwhile: flushes are answered,
                // events wait in the channel (and are dropped when it fills).
                let deadline = Instant::now() + Duration::from_secs(5);
                while let Ok(msg) = rx.recv_deadline(deadline) {
                    match msg {
                        Msg::Flush(ack) => {
                            let _ = ack.send(());
                        }
                        Msg::Stop => return None,
                        Msg::Event(_) => {}
                    }
                }
            }
        }
    }
}

fn run(live: &LiveConfig, metrics: &Metrics, rx: &Inbox) {
    let Some(mut conn) = open(&live.get(), rx) else {
        return;
    };
    let mut last_maintenance: Option<(Instant, i64)> = None;
    let mut batch: Vec<Event> = Vec::with_capacity(BATCH_EVENTS);
    loop {
        let today = rollup::day_of(db::now_ms());
        let due = last_maintenance
            .is_none_or(|(at, day)| at.elapsed() >= MAINTENANCE_EVERY || day != today);
        if due {
            maintain(&mut conn, &live.get(), db::now_ms());
            last_maintenance = Some((Instant::now(), today));
        }
        let first = match rx.recv_timeout(MAINTENANCE_EVERY) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut acks = Vec::new();
        let mut stop = false;
        let mut next = Some(first);
        let deadline = Instant::now() + BATCH_WINDOW;
        while let Some(msg) = next.take() {
            match msg {
                Msg::Event(e) => batch.push(e),
                Msg::Flush(ack) => acks.push(ack),
                Msg::Stop => stop = true,
            }
            // A flush or stop commits at once; otherwise gather a batch.
            if stop || !acks.is_empty() || batch.len() >= BATCH_EVENTS {
                // Take whatever is already queued, without waiting.
                while batch.len() < BATCH_EVENTS * 4 {
                    match rx.try_recv() {
                        Ok(Msg::Event(e)) => batch.push(e),
                        Ok(Msg::Flush(ack)) => acks.push(ack),
                        Ok(Msg::Stop) => stop = true,
                        Err(_) => break,
                    }
                }
                break;
            }
            next = rx.recv_deadline(deadline).ok();
        }
        if !batch.is_empty() {
            commit(&mut conn, &live.get(), metrics, &batch);
            batch.clear();
        }
        for ack in acks {
            let _ = ack.send(());
        }
        if stop {
            return;
        }
    }
}

fn commit(conn: &mut Connection, config: &Config, metrics: &Metrics, batch: &[Event]) {
    let weight: u64 = batch.iter().map(|e| e.kind.weight()).sum();
    match apply_batch(conn, &config.branches, batch, db::now_ms()) {
        Ok(()) => metrics.stat_events_written(weight),
        Err(e) => {
            metrics.stat_write_error();
            metrics.stat_events_dropped(weight);
            log::warn!("statistics writer: {} events lost: {e}", weight);
        }
    }
}

/// Write one batch: raw rows, every rollup and the error log, in one
/// transaction. `now_ms` decides the recent-packages window. Public so that
/// tests and the benchmark seed through the same code the writer runs.
pub fn apply_batch(
    conn: &mut Connection,
    branches: &BTreeMap<String, Branch>,
    events: &[Event],
    now_ms: i64,
) -> Result<(), DbError> {
    let today = rollup::day_of(now_ms);
    let inc = rollup::fold(events, branches, today);
    // IMMEDIATE: a deferred transaction that reads, then writes, gets
    // SQLITE_BUSY at once (no busy wait) when another connection wrote
    // meanwhile; taking the write lock first waits for it instead.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    refresh_recent_packages(&tx, today)?;
    insert_raw(&tx, events)?;
    upsert_rollups(&tx, &inc)?;
    tx.commit()?;
    Ok(())
}

fn insert_raw(conn: &Connection, events: &[Event]) -> Result<(), DbError> {
    let mut raw = conn.prepare_cached(
        "INSERT INTO build_stats (event, ts, request_hash, version, target, profile, client, \
            diff_packages, packages, duration, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    let mut error = conn.prepare_cached(
        "INSERT INTO stats_errors (ts, version, target, profile, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for e in events {
        if matches!(e.kind, Kind::Rejected(_)) {
            continue;
        }
        let b = &e.build;
        let packages = serde_json::to_string(&b.packages).unwrap_or_else(|_| "[]".into());
        let hash = (!b.request_hash.is_empty()).then_some(b.request_hash.as_str());
        let mut row = |event: &str| {
            raw.execute(params![
                event,
                e.ts_ms,
                hash,
                b.version,
                b.target,
                b.profile,
                b.client,
                b.diff_packages,
                packages,
                e.duration_s,
                e.detail
            ])
        };
        if e.kind.is_request() {
            row("request")?;
        }
        row(e.kind.as_str())?;
        if e.kind == Kind::Failure {
            error.execute(params![
                e.ts_ms,
                b.version,
                b.target,
                b.profile,
                e.detail.as_deref().unwrap_or("failed")
            ])?;
        }
    }
    Ok(())
}

fn upsert_rollups(conn: &Connection, inc: &Increments) -> Result<(), DbError> {
    let mut daily = conn.prepare_cached(
        "INSERT INTO stats_daily (day, version, target, client, diff_packages, requests, \
            cache_hits, cache_misses, successes, failures, build_seconds, adopted) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
         ON CONFLICT DO UPDATE SET requests = requests + excluded.requests, \
            cache_hits = cache_hits + excluded.cache_hits, \
            cache_misses = cache_misses + excluded.cache_misses, \
            adopted = adopted + excluded.adopted, \
            successes = successes + excluded.successes, \
            failures = failures + excluded.failures, \
            build_seconds = build_seconds + excluded.build_seconds",
    )?;
    for (k, c) in &inc.daily {
        daily.execute(params![
            k.day,
            k.version,
            k.target,
            k.client,
            k.diff_packages,
            c.requests,
            c.cache_hits,
            c.cache_misses,
            c.successes,
            c.failures,
            c.build_seconds,
            c.adopted
        ])?;
    }
    let mut by_version = conn.prepare_cached(
        "INSERT INTO stats_daily_version (day, version, diff_packages, requests, cache_hits, \
            cache_misses, successes, failures, build_seconds, adopted) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT DO UPDATE SET requests = requests + excluded.requests, \
            cache_hits = cache_hits + excluded.cache_hits, \
            cache_misses = cache_misses + excluded.cache_misses, \
            adopted = adopted + excluded.adopted, \
            successes = successes + excluded.successes, \
            failures = failures + excluded.failures, \
            build_seconds = build_seconds + excluded.build_seconds",
    )?;
    for ((day, version, diff), c) in &inc.by_version {
        by_version.execute(params![
            day,
            version,
            diff,
            c.requests,
            c.cache_hits,
            c.cache_misses,
            c.successes,
            c.failures,
            c.build_seconds,
            c.adopted
        ])?;
    }
    let mut hourly = conn.prepare_cached(
        "INSERT INTO stats_hourly (hour, requests, cache_hits, cache_misses, successes, failures, \
            rejected, adopted) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT DO UPDATE SET requests = requests + excluded.requests, \
            cache_hits = cache_hits + excluded.cache_hits, \
            cache_misses = cache_misses + excluded.cache_misses, \
            adopted = adopted + excluded.adopted, \
            successes = successes + excluded.successes, \
            failures = failures + excluded.failures, \
            rejected = rejected + excluded.rejected",
    )?;
    for (hour, c) in &inc.hourly {
        hourly.execute(params![
            hour,
            c.requests,
            c.cache_hits,
            c.cache_misses,
            c.successes,
            c.failures,
            c.rejected,
            c.adopted
        ])?;
    }
    let mut rejected = conn.prepare_cached(
        "INSERT INTO stats_daily_rejected (day, status, count) VALUES (?1, ?2, ?3) \
         ON CONFLICT DO UPDATE SET count = count + excluded.count",
    )?;
    for ((day, status), n) in &inc.rejected {
        rejected.execute(params![day, status, n])?;
    }
    let mut packages = conn.prepare_cached(
        "INSERT INTO stats_packages_daily (day, branch, package, count) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT DO UPDATE SET count = count + excluded.count",
    )?;
    for ((day, branch, package), n) in &inc.packages {
        packages.execute(params![day, branch, package, n])?;
    }
    let mut recent = conn.prepare_cached(
        "INSERT INTO stats_packages_recent (branch, package, count) VALUES (?1, ?2, ?3) \
         ON CONFLICT DO UPDATE SET count = count + excluded.count",
    )?;
    for ((branch, package), n) in &inc.recent {
        recent.execute(params![branch, package, n])?;
    }
    Ok(())
}

/// Rebuild `stats_packages_recent` from the daily table when it was built
/// for another day than `today` (the window moved, or it never was built).
fn refresh_recent_packages(conn: &Connection, today: i64) -> Result<(), DbError> {
    let built_for: Option<i64> = conn
        .query_row(
            "SELECT value FROM stats_state WHERE key = 'packages_recent_day'",
            [],
            |r| r.get(0),
        )
        .ok();
    if built_for == Some(today) {
        return Ok(());
    }
    conn.execute("DELETE FROM stats_packages_recent", [])?;
    conn.execute(
        "INSERT INTO stats_packages_recent (branch, package, count) \
         SELECT branch, package, sum(count) FROM stats_packages_daily \
         WHERE day >= ?1 AND day <= ?2 GROUP BY branch, package",
        params![rollup::recent_start(today), today],
    )?;
    conn.execute(
        "INSERT INTO stats_state (key, value) VALUES ('packages_recent_day', ?1) \
         ON CONFLICT DO UPDATE SET value = excluded.value",
        params![today],
    )?;
    Ok(())
}

/// Deletes past the retention settings; counts of what went, for the log.
pub fn prune(conn: &mut Connection, config: &Config, now_ms: i64) -> Result<usize, DbError> {
    let today = rollup::day_of(now_ms);
    let raw_before =
        now_ms.saturating_sub((config.stats_retention_days as i64).saturating_mul(rollup::DAY_MS));
    let day_before = today - config.stats_rollup_retention_days as i64;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Spelled out so the (event, ts) index serves the range.
    let mut n = tx.execute(
        "DELETE FROM build_stats WHERE event IN \
            ('request', 'cache-hit', 'cache-miss', 'adopted', 'success', 'failure') AND ts < ?1",
        params![raw_before],
    )?;
    for table in [
        "stats_daily",
        "stats_daily_version",
        "stats_daily_rejected",
        "stats_packages_daily",
    ] {
        n += tx.execute(
            &format!("DELETE FROM {table} WHERE day < ?1"),
            params![day_before],
        )?;
    }
    // Only the last 24 hours are read; two days leave room for clock steps.
    n += tx.execute(
        "DELETE FROM stats_hourly WHERE hour < ?1",
        params![rollup::hour_of(now_ms) - 48],
    )?;
    n += tx.execute(
        "DELETE FROM stats_errors WHERE id <= (SELECT max(id) FROM stats_errors) - ?1",
        params![MAX_ERROR_ENTRIES],
    )?;
    refresh_recent_packages(&tx, today)?;
    tx.commit()?;
    Ok(n)
}

fn maintain(conn: &mut Connection, config: &Config, now_ms: i64) {
    match prune(conn, config, now_ms) {
        Ok(0) => {}
        Ok(n) => log::info!("statistics: pruned {n} rows past their retention"),
        Err(e) => log::warn!("statistics: pruning failed: {e}"),
    }
}
