//! Adopting complete builds found in the store, so a migration from the
//! reference server (or a reset database) does not rebuild what is already
//! there.
//!
//! A validated request that the database knows nothing about is looked up
//! in `store/<bin_dir>/` before it is queued. When that directory holds a
//! complete, consistent build of the request (`complete`), the request is
//! answered 200 at once, without a container, and the answer is recorded
//! as its result, so later polls and POSTs are database hits. Anything
//! else (no directory, incomplete, inconsistent, changed within
//! `store_adopt_settle_seconds`) is built as usual.
//!
//! What it costs, once per bin_dir: a `stat` when there is no directory
//! (the common case); otherwise one directory listing, three small reads
//! and one streamed SHA-256 of each listed image. It is paid once because
//! - an adopted build is a result row: the next request for the same hash
//!   is answered from the database, and one for another hash with the same
//!   bin_dir (a profile alias) reuses that row without touching the store;
//! - identical requests arriving together take turns per bin_dir, and the
//!   ones that waited find the first one's verdict;
//! - a refused directory is remembered with the stamps of what was read,
//!   and is not hashed again until one of them changes.

mod answer;

pub use answer::{Answer, answer, extra_image_name};

use crate::builder::result::{self as build_result, Done};
use crate::complete::{self, Expect, Incomplete, Seen};
use crate::config::Config;
use crate::db::{self, DbError, jobs, results};
use crate::metrics::Metrics;
use crate::models::BuildRequest;
use crate::queue;
use rusqlite::Connection;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a request waits for another one checking the same bin_dir
/// (hashing a 256 MiB image takes about a second).
const TURN_WAIT: Duration = Duration::from_secs(30);
/// Refused directories remembered; the memory is cleared when it is full.
const MAX_REFUSED: usize = 1024;

/// A validated request nothing is known about yet.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub request_hash: &'a str,
    pub request: &'a BuildRequest,
    pub bin_dir: &'a str,
    pub client: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Answered from the store; the 200 body, now this request's result.
    Adopted(String),
    /// A result for this request hash was recorded meanwhile (an identical
    /// request adopted or built it): answer from the database.
    AlreadyBuilt,
    /// Build it as usual.
    NotAdopted,
}

/// Shared by the handler threads: whose turn it is per bin_dir, and the
/// directories found wanting.
#[derive(Default)]
pub struct Adopter {
    busy: Mutex<HashSet<String>>,
    turn_over: Condvar,
    refused: Mutex<HashMap<String, Seen>>,
}

/// Holding the turn for one bin_dir; handed on when dropped.
struct Turn<'a> {
    adopter: &'a Adopter,
    bin_dir: String,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        lock(&self.adopter.busy).remove(&self.bin_dir);
        self.adopter.turn_over.notify_all();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn is_bin_dir(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Adopter {
    /// Answer `c` from the store if it holds a complete build of it.
    pub fn adopt(
        &self,
        config: &Config,
        metrics: &Metrics,
        conn: &mut Connection,
        c: &Candidate<'_>,
    ) -> Outcome {
        if !is_bin_dir(c.bin_dir) {
            return Outcome::NotAdopted;
        }
        let dir = crate::store::build_dir(&config.store_path, c.bin_dir);
        // Nothing there, the usual case: one stat.
        if !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            return Outcome::NotAdopted;
        }
        let Some(_turn) = self.take_turn(c.bin_dir) else {
            log::warn!(
                "store/{}: still being checked for another request after {} s; building {}",
                c.bin_dir,
                TURN_WAIT.as_secs(),
                c.request_hash
            );
            return Outcome::NotAdopted;
        };
        match self.adopt_in_turn(config, metrics, conn, c, &dir) {
            Ok(outcome) => outcome,
            Err(e) => {
                log::warn!("store/{}: not adopted: {e}", c.bin_dir);
                Outcome::NotAdopted
            }
        }
    }

    /// Wait (bounded) until no other request checks `bin_dir`, then take it.
    fn take_turn(&self, bin_dir: &str) -> Option<Turn<'_>> {
        let deadline = Instant::now() + TURN_WAIT;
        let mut busy = lock(&self.busy);
        while busy.contains(bin_dir) {
            let left = deadline.checked_duration_since(Instant::now())?;
            busy = self
                .turn_over
                .wait_timeout(busy, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        busy.insert(bin_dir.to_owned());
        Some(Turn {
            adopter: self,
            bin_dir: bin_dir.to_owned(),
        })
    }

    fn adopt_in_turn(
        &self,
        config: &Config,
        metrics: &Metrics,
        conn: &mut Connection,
        c: &Candidate<'_>,
        dir: &Path,
    ) -> Result<Outcome, DbError> {
        let now = db::now_ms();
        // Whoever held the turn before may have settled it.
        if jobs::find_result(conn, c.request_hash, now)?.is_some() {
            return Ok(Outcome::AlreadyBuilt);
        }
        if let Some(body) = results::live_result_for_bin_dir(conn, c.bin_dir, now)? {
            return self.reuse(config, conn, c, &body);
        }
        if let Some(seen) = lock(&self.refused).get(c.bin_dir)
            && complete::unchanged(dir, seen)
        {
            log::debug!("store/{}: unchanged since it was refused", c.bin_dir);
            return Ok(Outcome::NotAdopted);
        }
        if let Some(age) = self.too_fresh(config, dir) {
            log::info!(
                "store/{}: changed {age} s ago (store_adopt_settle_seconds: {}), may still be \
                 being written; building {}",
                c.bin_dir,
                config.store_adopt_settle_seconds,
                c.request_hash
            );
            return Ok(Outcome::NotAdopted);
        }
        let started = Instant::now();
        let req = c.request;
        let expect = Expect {
            target: &req.target,
            version: &req.version,
            version_code: &req.version_code,
            profile: &req.profile,
        };
        let found = match complete::check(dir, &expect) {
            Ok(found) => found,
            Err(refused) => {
                metrics.adoption_checked(refused.seen.hashed_bytes, true);
                log::info!(
                    "store/{} is not a complete build of {} ({} {} {}): {}; building it",
                    c.bin_dir,
                    c.request_hash,
                    req.version,
                    req.target,
                    req.profile,
                    refused.reason
                );
                if refused.reason != Incomplete::Missing {
                    self.remember_refusal(c.bin_dir, *refused.seen);
                }
                return Ok(Outcome::NotAdopted);
            }
        };
        metrics.adoption_checked(found.seen.hashed_bytes, false);
        let age = unix_now() - found.seen.newest_change();
        if config.store_adopt_settle_seconds > 0 && age < config.store_adopt_settle_seconds as i64 {
            log::info!(
                "store/{}: a file changed {age} s ago; building {}",
                c.bin_dir,
                c.request_hash
            );
            return Ok(Outcome::NotAdopted);
        }
        let answer = match answer(config, req, c.bin_dir, &found) {
            Ok(a) => a,
            Err(e) => {
                log::warn!("store/{}: cannot answer from it: {e}", c.bin_dir);
                return Ok(Outcome::NotAdopted);
            }
        };
        let elapsed = started.elapsed();
        let body = build_result::done_body(&Done {
            request: req,
            stdout: "",
            stderr: "",
            build_cmd: &answer.build_cmd,
            result: &answer.result,
            enqueued_at: &queue::iso_now(),
            request_hash: c.request_hash,
            duration: elapsed,
            finished_at: &build_result::finished_at_now(),
        })
        .to_string();
        let outcome = self.record(config, conn, c, &body, elapsed.as_secs_f64())?;
        if let Outcome::Adopted(_) = outcome {
            log::info!(
                "adopted store/{} for {} ({} {} {}): {} images, {} bytes verified in {:.1} ms",
                c.bin_dir,
                c.request_hash,
                req.version,
                req.target,
                req.profile,
                found.images.len(),
                found.seen.hashed_bytes,
                elapsed.as_secs_f64() * 1000.0
            );
        }
        Ok(outcome)
    }

    /// The directory (not its files: they were not read yet) changed
    /// within the settle time; its age in seconds.
    fn too_fresh(&self, config: &Config, dir: &Path) -> Option<i64> {
        use std::os::unix::fs::MetadataExt;
        let settle = config.store_adopt_settle_seconds as i64;
        let changed = std::fs::symlink_metadata(dir).ok()?.ctime();
        let age = unix_now() - changed;
        (settle > 0 && age < settle).then_some(age)
    }

    fn remember_refusal(&self, bin_dir: &str, seen: Seen) {
        let mut refused = lock(&self.refused);
        if refused.len() >= MAX_REFUSED {
            refused.clear();
        }
        refused.insert(bin_dir.to_owned(), seen);
    }

    /// Another request (a profile alias) already has a live result in this
    /// bin_dir: the same build, answered under this request's hash.
    fn reuse(
        &self,
        config: &Config,
        conn: &mut Connection,
        c: &Candidate<'_>,
        body: &str,
    ) -> Result<Outcome, DbError> {
        let Ok(Value::Object(mut body)) = serde_json::from_str::<Value>(body) else {
            return Ok(Outcome::NotAdopted);
        };
        body.insert(
            "request".into(),
            serde_json::to_value(c.request).unwrap_or(Value::Null),
        );
        body.insert("enqueued_at".into(), queue::iso_now().into());
        body.insert("request_hash".into(), c.request_hash.into());
        let outcome = self.record(config, conn, c, &Value::Object(body).to_string(), 0.0)?;
        if let Outcome::Adopted(_) = outcome {
            log::info!(
                "adopted store/{} for {}: the build another request's result uses",
                c.bin_dir,
                c.request_hash
            );
        }
        Ok(outcome)
    }

    fn record(
        &self,
        config: &Config,
        conn: &mut Connection,
        c: &Candidate<'_>,
        body: &str,
        duration_s: f64,
    ) -> Result<Outcome, DbError> {
        let ttl = queue::result_ttl_seconds(config, c.request) as i64;
        let adoption = results::Adoption {
            request_hash: c.request_hash,
            request: c.request,
            bin_dir: c.bin_dir,
            client: c.client,
            result_json: body,
            duration_s,
            expires_at: db::now_ms() + ttl * 1000,
        };
        Ok(match results::record_adoption(conn, &adoption)? {
            results::AdoptOutcome::Recorded => {
                lock(&self.refused).remove(c.bin_dir);
                Outcome::Adopted(body.to_owned())
            }
            results::AdoptOutcome::AlreadyBuilt => Outcome::AlreadyBuilt,
            results::AdoptOutcome::Active => Outcome::NotAdopted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn turns_are_taken_one_at_a_time_per_bin_dir() {
        let a = Arc::new(Adopter::default());
        let first = a.take_turn("ab").unwrap();
        // Another bin_dir is not held up.
        assert!(a.take_turn("cd").is_some());
        let (tx, rx) = crossbeam_channel::bounded(1);
        let a2 = Arc::clone(&a);
        let waiter = std::thread::spawn(move || {
            let turn = a2.take_turn("ab");
            tx.send(turn.is_some()).unwrap();
        });
        // The waiter cannot have the turn while `first` holds it.
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        drop(first);
        assert!(rx.recv_timeout(Duration::from_secs(30)).unwrap());
        waiter.join().unwrap();
        assert!(lock(&a.busy).is_empty());
    }

    #[test]
    fn only_hash_names_are_looked_up() {
        assert!(is_bin_dir("0123abcdef"));
        assert!(!is_bin_dir(""));
        assert!(!is_bin_dir("../x"));
        assert!(!is_bin_dir(".staging"));
    }
}
