//! The operator commands on the queue: `jobs`, `job`, `retry`, `cancel`,
//! `purge`. Each opens the database a running server uses, does its one
//! short transaction, prints, and exits. What a server would record in its
//! statistics (a cancel ends a build, a retry queues one) is written here
//! through the statistics writer's own batch code, so the counting rule
//! holds whichever side acted.

use super::{HashArg, JobsArgs, PurgeArgs};
use crate::config::Config;
use crate::container::podman::Podman;
use crate::db::control::{self, CANCELLED_DETAIL, RetryOutcome};
use crate::db::{self, DbError, jobs};
use crate::queue::control as qc;
use crate::stats::{BuildInfo, Event, Kind, writer};
use crate::store;
use chrono::{TimeZone, Utc};
use rusqlite::Connection;
use std::fmt::Write as _;

/// Shortest hash prefix accepted: long enough to be typed on purpose.
const MIN_PREFIX: usize = 6;

/// A command's failure, printed as one line (`asu-builder: …`).
#[derive(Debug)]
pub struct OpError(pub String);

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<DbError> for OpError {
    fn from(e: DbError) -> Self {
        OpError(e.to_string())
    }
}

/// The server's database, as it is: never created or migrated from here.
pub fn open(config: &Config) -> Result<Connection, OpError> {
    let path = &config.database_path;
    if !path.is_file() {
        return Err(OpError(format!(
            "no database at {} (database_path); has the server run with this configuration?",
            path.display()
        )));
    }
    let conn = db::open(path)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(DbError::from)?;
    if version != db::SCHEMA_VERSION {
        return Err(OpError(format!(
            "database {} has schema {version}, this asu-builder uses {}; start the server of this version once to migrate it",
            path.display(),
            db::SCHEMA_VERSION
        )));
    }
    Ok(conn)
}

/// A full hash, or the one hash a prefix names.
fn resolve(conn: &Connection, given: &str) -> Result<String, OpError> {
    let given = given.trim().to_ascii_lowercase();
    if given.len() == 64 {
        return Ok(given);
    }
    if given.len() < MIN_PREFIX {
        return Err(OpError(format!(
            "{given:?}: give the request hash, or at least {MIN_PREFIX} of its first hex digits"
        )));
    }
    let found = control::hashes_with_prefix(conn, &given, 2)?;
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(OpError(format!("no request hash starts with {given}"))),
        _ => Err(OpError(format!(
            "{given} is the start of several request hashes; give more digits"
        ))),
    }
}

fn time(ms: Option<i64>) -> String {
    ms.and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// `asu-builder jobs`.
pub fn jobs(config: &Config, args: &JobsArgs) -> Result<String, OpError> {
    let conn = open(config)?;
    let statuses: Vec<_> = args.status.iter().map(|s| s.status()).collect();
    let rows = control::list(&conn, &statuses, args.limit as usize)?;
    let mut out = format!(
        "{:>6}  {:<9}  {:<17}  {:>3}  {:<19}  {:<16}  {:<12}  {:<20}  {}\n",
        "ID", "STATUS", "PHASE", "TRY", "ENQUEUED", "HASH", "VERSION", "TARGET", "PROFILE"
    );
    for j in &rows {
        let req = j.request().unwrap_or_default();
        let enqueued = j
            .enqueued_at
            .get(..19)
            .unwrap_or(&j.enqueued_at)
            .replace('T', " ");
        let _ = writeln!(
            out,
            "{:>6}  {:<9}  {:<17}  {:>3}  {:<19}  {:<16}  {:<12}  {:<20}  {}",
            j.id,
            j.status.as_str(),
            j.imagebuilder_status.as_str(),
            format!("{}/{}", j.attempts, j.max_attempts),
            enqueued,
            &j.request_hash[..16.min(j.request_hash.len())],
            req.version,
            req.target,
            req.profile
        );
    }
    let _ = writeln!(out, "{} jobs", rows.len());
    Ok(out)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n      ")
}

/// `asu-builder job HASH`.
pub fn job(config: &Config, args: &HashArg) -> Result<String, OpError> {
    let conn = open(config)?;
    let hash = resolve(&conn, &args.hash)?;
    let all = control::jobs_of(&conn, &hash)?;
    let result = control::result_of(&conn, &hash)?;
    if all.is_empty() && result.is_none() {
        return Err(OpError(format!("nothing is known about {hash}")));
    }
    let mut out = format!("request_hash  {hash}\n");
    if let Some(j) = all.first() {
        let _ = writeln!(out, "bin_dir       {}", j.bin_dir);
        let pretty = serde_json::from_str::<serde_json::Value>(&j.request_json)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or_else(|_| j.request_json.clone());
        let _ = writeln!(
            out,
            "request       {}",
            pretty.replace('\n', "\n              ")
        );
    }
    match &result {
        Some(r) => {
            let dir = store::build_dir(&config.store_path, &r.bin_dir);
            let _ = writeln!(
                out,
                "result        built {} in {:.1} s, expires {}{}; store {} ({})",
                time(Some(r.finished_at)),
                r.build_duration,
                time(Some(r.expires_at)),
                if r.expires_at <= db::now_ms() {
                    " (expired)"
                } else {
                    ""
                },
                dir.display(),
                if dir.is_dir() { "present" } else { "missing" }
            );
        }
        None => out.push_str("result        none\n"),
    }
    for j in &all {
        let _ = writeln!(
            out,
            "job {:<8}  {} ({}), attempt {}/{}, worker {}, enqueued {}, expires {}",
            j.id,
            j.status.as_str(),
            j.imagebuilder_status.as_str(),
            j.attempts,
            j.max_attempts,
            j.worker_id.as_deref().unwrap_or("-"),
            j.enqueued_at,
            time(j.expires_at)
        );
        if let Some(d) = j.detail.as_deref().filter(|d| !d.is_empty()) {
            let _ = writeln!(out, "    detail: {d}");
        }
        for (name, text) in [("stdout", &j.stdout), ("stderr", &j.stderr)] {
            if let Some(t) = text.as_deref().filter(|t| !t.trim().is_empty()) {
                let _ = writeln!(out, "    {name} (last lines):\n      {}", tail(t, 10));
            }
        }
    }
    Ok(out)
}

/// Write statistics events the way the server's writer does, retrying
/// while the server's own writer holds the database.
fn record(conn: &mut Connection, config: &Config, events: &[Event]) {
    for attempt in 0..5 {
        match writer::apply_batch(conn, &config.branches, events, db::now_ms()) {
            Ok(()) => return,
            Err(e) if attempt == 4 => eprintln!("asu-builder: statistics not recorded: {e}"),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(200)),
        }
    }
}

/// `asu-builder retry HASH`.
pub fn retry(config: &Config, args: &HashArg) -> Result<String, OpError> {
    let mut conn = open(config)?;
    let hash = resolve(&conn, &args.hash)?;
    match qc::retry(&mut conn, &hash)? {
        RetryOutcome::Queued(job) => {
            let info = BuildInfo::of_stored(&hash, &job.request_json);
            record(&mut conn, config, &[Event::now(Kind::CacheMiss, info)]);
            Ok(format!(
                "queued {hash} again as job {}; a worker takes it within worker_poll_seconds ({} s)\n",
                job.id, config.worker_poll_seconds
            ))
        }
        RetryOutcome::Active(job) => Err(OpError(format!(
            "{hash} is {} already (job {})",
            job.status.as_str(),
            job.id
        ))),
        RetryOutcome::Built => Err(OpError(format!(
            "{hash} was built; nothing to retry (purge or DELETE it to build it again)"
        ))),
        RetryOutcome::Unknown => Err(OpError(format!("nothing is known about {hash}"))),
    }
}

/// `asu-builder cancel HASH`.
pub fn cancel(config: &Config, args: &HashArg) -> Result<String, OpError> {
    let mut conn = open(config)?;
    let hash = resolve(&conn, &args.hash)?;
    let runtime = Podman::new(&config.container_socket_path);
    match qc::cancel(&mut conn, &hash, config.failure_ttl_seconds)? {
        Some(c) => {
            let killed = c.was_running.then(|| qc::kill_containers(&runtime, &hash));
            let mut event = Event::now(
                Kind::Failure,
                BuildInfo::of_stored(&hash, &c.job.request_json),
            );
            event.duration_s = Some(0.0);
            event.detail = Some(CANCELLED_DETAIL.into());
            record(&mut conn, config, &[event]);
            Ok(match killed {
                None => format!("cancelled {hash} (job {}, was queued)\n", c.job.id),
                Some(Ok(n)) => format!(
                    "cancelled {hash} (job {}, was running); SIGKILL sent to {n} container(s)\n",
                    c.job.id
                ),
                Some(Err(e)) => format!(
                    "cancelled {hash} (job {}, was running), but its container could not be killed: {e}\n\
                     the build runs to its end and its outcome is discarded; run this as a user that may use {}\n",
                    c.job.id,
                    config.container_socket_path.display()
                ),
            })
        }
        None => Err(OpError(format!("{hash} has no queued or running build"))),
    }
}

/// `asu-builder purge`.
pub fn purge(config: &Config, args: &PurgeArgs) -> Result<String, OpError> {
    let mut conn = open(config)?;
    let mut out = String::new();
    if args.failed {
        let n = control::purge_failed(&mut conn)?;
        let _ = writeln!(out, "deleted {n} failed or cancelled jobs");
    }
    if args.expired {
        let dirs = jobs::delete_expired(&mut conn, db::now_ms())?;
        for dir in &dirs {
            store::remove_build(&config.store_path, dir);
        }
        let _ = writeln!(
            out,
            "deleted expired results and failures; removed {} store directories",
            dirs.len()
        );
    }
    Ok(out)
}
