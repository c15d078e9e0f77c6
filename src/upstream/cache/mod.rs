//! URL → document cache: memory first, then the `metadata_cache` table, then
//! upstream. One fetch per URL at a time (single-flight); a failed refresh
//! keeps serving the copy it had (stale-on-error).
//!
//! Locking: one map mutex, held only for bookkeeping and never across I/O,
//! so a slow URL cannot block the others. Waiters sleep on one condvar and
//! re-check their own slot on every wake-up.

mod doc;
mod table;

pub use doc::Doc;

use super::UpstreamError;
use super::http::{Fetcher, Reply, Validators};
use doc::Content;
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How long answers stay fresh, chosen per URL by the caller.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub found: Duration,
    pub not_found: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// After a failed fetch, serve the stale copy (or the error) for this
    /// long before asking upstream again: an outage must not make every
    /// request wait for a timeout.
    pub error_backoff: Duration,
    /// Bodies kept in memory; least recently used ones beyond this are
    /// dropped (they stay in SQLite).
    pub memory_budget: usize,
    /// Cap on remembered URLs (clients choose index paths, so the key space
    /// is theirs).
    pub max_entries: usize,
}

#[derive(Default)]
struct Slot {
    doc: Option<Arc<Doc>>,
    in_flight: bool,
    /// The SQLite row was consulted since this slot was created.
    db_checked: bool,
    /// Last failure and the time (ms) until which it is reused.
    failure: Option<(UpstreamError, i64)>,
    last_access: u64,
}

#[derive(Default)]
struct Slots {
    map: HashMap<String, Slot>,
    bytes: usize,
}

pub struct Cache {
    fetcher: Box<dyn Fetcher>,
    db: Option<Mutex<Connection>>,
    slots: Mutex<Slots>,
    changed: Condvar,
    policy: Policy,
    tick: AtomicU64,
    total_fetches: AtomicU64,
    /// Fetches that failed (network, timeout, unexpected status), for /metrics.
    failed_fetches: AtomicU64,
    fetches: Mutex<HashMap<String, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking holder cannot leave this data half-updated in a way that
    // matters more than refusing every later request would.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ms() -> i64 {
    crate::db::now_ms()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Clears `in_flight` if the leader leaves without installing a result
/// (e.g. a panic in a parser), so waiters never sleep forever.
struct FlightGuard<'a> {
    cache: &'a Cache,
    url: &'a str,
    armed: bool,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut slots = lock(&self.cache.slots);
            if let Some(slot) = slots.map.get_mut(self.url) {
                slot.in_flight = false;
            }
            self.cache.changed.notify_all();
        }
    }
}

enum Decision {
    Done(Result<Arc<Doc>, UpstreamError>),
    Lead {
        prior: Option<Arc<Doc>>,
        check_db: bool,
    },
}

impl Cache {
    pub fn new(fetcher: Box<dyn Fetcher>, db: Option<Connection>, policy: Policy) -> Cache {
        Cache {
            fetcher,
            db: db.map(Mutex::new),
            slots: Mutex::new(Slots::default()),
            changed: Condvar::new(),
            policy,
            tick: AtomicU64::new(0),
            total_fetches: AtomicU64::new(0),
            failed_fetches: AtomicU64::new(0),
            fetches: Mutex::new(HashMap::new()),
        }
    }

    /// HTTP requests sent so far (all URLs).
    pub fn fetch_count(&self) -> u64 {
        self.total_fetches.load(Ordering::Relaxed)
    }

    pub fn failed_fetch_count(&self) -> u64 {
        self.failed_fetches.load(Ordering::Relaxed)
    }

    /// HTTP requests sent so far for one URL.
    pub fn fetch_count_for(&self, url: &str) -> u64 {
        lock(&self.fetches).get(url).copied().unwrap_or(0)
    }

    /// The document for `url`. `max_age` tightens freshness: a copy older
    /// than that is refetched (used when a lookup missed and upstream may
    /// have published something new).
    pub fn get(
        &self,
        url: &str,
        life: Lifetimes,
        max_age: Option<Duration>,
    ) -> Result<Arc<Doc>, UpstreamError> {
        let (prior, check_db) = match self.decide(url, max_age) {
            Decision::Done(r) => return r,
            Decision::Lead { prior, check_db } => (prior, check_db),
        };
        let mut guard = FlightGuard {
            cache: self,
            url,
            armed: true,
        };
        let result = self.lead(url, life, max_age, prior, check_db);
        guard.armed = false;
        result
    }

    /// Under the map lock: answer from memory, wait for a running fetch, or
    /// become the one who fetches.
    fn decide(&self, url: &str, max_age: Option<Duration>) -> Decision {
        let mut slots = lock(&self.slots);
        loop {
            let tick = self.tick.fetch_add(1, Ordering::Relaxed);
            let now = now_ms();
            let slot = slots.map.entry(url.to_owned()).or_default();
            slot.last_access = tick;
            if let Some(doc) = &slot.doc
                && doc.fresh(now, max_age)
            {
                return Decision::Done(Ok(Arc::clone(doc)));
            }
            if slot.in_flight {
                // Plain readers take the stale copy at once; a miss re-check
                // waits, because the fetch under way may hold the answer.
                if let (Some(doc), None) = (&slot.doc, max_age) {
                    return Decision::Done(Ok(Arc::clone(doc)));
                }
                slots = self.changed.wait(slots).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            if let Some((err, until)) = &slot.failure
                && now < *until
            {
                return Decision::Done(match &slot.doc {
                    Some(doc) => Ok(Arc::clone(doc)),
                    None => Err(err.clone()),
                });
            }
            slot.in_flight = true;
            let check_db = !slot.db_checked;
            slot.db_checked = true;
            return Decision::Lead {
                prior: slot.doc.clone(),
                check_db,
            };
        }
    }

    /// Without locks: SQLite, then HTTP; then publish the outcome.
    fn lead(
        &self,
        url: &str,
        life: Lifetimes,
        max_age: Option<Duration>,
        mut prior: Option<Arc<Doc>>,
        check_db: bool,
    ) -> Result<Arc<Doc>, UpstreamError> {
        if check_db && let Some(doc) = self.load_row(url) {
            let doc = Arc::new(doc);
            if doc.fresh(now_ms(), max_age) {
                self.install(url, Some(Arc::clone(&doc)), None);
                return Ok(doc);
            }
            prior = Some(doc);
        }
        let validators = prior
            .as_ref()
            .filter(|d| d.found)
            .map(|d| d.content.validators.clone())
            .unwrap_or_default();
        self.count_fetch(url);
        let now = now_ms();
        let fresh = |found: bool, content: Arc<Content>| {
            let ttl = if found { life.found } else { life.not_found };
            Arc::new(Doc {
                found,
                content,
                fetched_at: now,
                expires_at: now.saturating_add(ms(ttl)),
            })
        };
        match self.fetcher.fetch(url, &validators) {
            Ok(Reply::Ok { body, validators }) => {
                let doc = fresh(true, Arc::new(Content::new(body, validators)));
                self.install(url, Some(Arc::clone(&doc)), None);
                self.store_row(url, &doc);
                Ok(doc)
            }
            Ok(Reply::NotModified) if prior.as_ref().is_some_and(|d| d.found) => {
                let old = prior.unwrap_or_else(|| unreachable!("checked above"));
                let doc = fresh(true, Arc::clone(&old.content));
                self.install(url, Some(Arc::clone(&doc)), None);
                self.store_row(url, &doc);
                Ok(doc)
            }
            Ok(Reply::NotModified) => {
                // 304 without having sent validators: upstream is confused.
                let err = UpstreamError::Http {
                    url: url.to_owned(),
                    status: 304,
                };
                self.fail(url, prior, err)
            }
            Ok(Reply::NotFound) => {
                let doc = fresh(
                    false,
                    Arc::new(Content::new(Vec::new(), Validators::default())),
                );
                self.install(url, Some(Arc::clone(&doc)), None);
                Ok(doc)
            }
            Err(err) => self.fail(url, prior, err),
        }
    }

    fn fail(
        &self,
        url: &str,
        prior: Option<Arc<Doc>>,
        err: UpstreamError,
    ) -> Result<Arc<Doc>, UpstreamError> {
        self.failed_fetches.fetch_add(1, Ordering::Relaxed);
        let until = now_ms().saturating_add(ms(self.policy.error_backoff));
        match prior {
            Some(doc) => {
                log::warn!("{err}; serving the cached copy");
                self.install(url, Some(Arc::clone(&doc)), Some((err, until)));
                Ok(doc)
            }
            None => {
                log::warn!("{err}");
                self.install(url, None, Some((err.clone(), until)));
                Err(err)
            }
        }
    }

    fn count_fetch(&self, url: &str) {
        self.total_fetches.fetch_add(1, Ordering::Relaxed);
        *lock(&self.fetches).entry(url.to_owned()).or_insert(0) += 1;
    }

    /// Publish a fetch outcome, wake waiters, keep memory within budget.
    fn install(&self, url: &str, doc: Option<Arc<Doc>>, failure: Option<(UpstreamError, i64)>) {
        let mut slots = lock(&self.slots);
        let Slots { map, bytes } = &mut *slots;
        let slot = map.entry(url.to_owned()).or_default();
        let old = slot.doc.as_ref().map_or(0, |d| d.body().len());
        let new = doc.as_ref().map_or(0, |d| d.body().len());
        *bytes = bytes.saturating_sub(old).saturating_add(new);
        slot.doc = doc;
        slot.failure = failure;
        slot.in_flight = false;
        slot.db_checked = true;
        if *bytes > self.policy.memory_budget || map.len() > self.policy.max_entries {
            Self::evict(&mut slots, url, &self.policy);
        }
        self.changed.notify_all();
    }

    /// Drop least recently used idle slots until under budget. Documents
    /// remain in SQLite, so a later request reloads them without HTTP.
    fn evict(slots: &mut Slots, keep: &str, policy: &Policy) {
        let mut idle: Vec<(u64, String)> = slots
            .map
            .iter()
            .filter(|(k, s)| !s.in_flight && k.as_str() != keep)
            .map(|(k, s)| (s.last_access, k.clone()))
            .collect();
        idle.sort_unstable();
        for (_, key) in idle {
            if slots.bytes <= policy.memory_budget && slots.map.len() <= policy.max_entries {
                break;
            }
            if let Some(slot) = slots.map.remove(&key) {
                let size = slot.doc.as_ref().map_or(0, |d| d.body().len());
                slots.bytes = slots.bytes.saturating_sub(size);
            }
        }
    }

    fn load_row(&self, url: &str) -> Option<Doc> {
        let db = self.db.as_ref()?;
        match table::load(&lock(db), url) {
            Ok(doc) => doc,
            Err(e) => {
                log::warn!("metadata cache read for {url} failed: {e}");
                None
            }
        }
    }

    fn store_row(&self, url: &str, doc: &Doc) {
        let Some(db) = self.db.as_ref() else { return };
        if let Err(e) = table::store(&lock(db), url, doc) {
            // The memory copy still serves; persistence is an optimisation.
            log::warn!("metadata cache write for {url} failed: {e}");
        }
    }

    /// Delete rows that expired long ago (URLs nobody asks for any more).
    pub fn prune(&self, older_than: Duration) {
        let Some(db) = self.db.as_ref() else { return };
        let cutoff = now_ms().saturating_sub(ms(older_than));
        if let Err(e) = table::prune(&lock(db), cutoff) {
            log::warn!("metadata cache prune failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::thread;

    struct Fake {
        calls: AtomicU64,
        fail: AtomicBool,
        delay: Duration,
        body: Mutex<Vec<u8>>,
    }

    impl Fake {
        fn new(delay: Duration) -> Arc<Fake> {
            Arc::new(Fake {
                calls: AtomicU64::new(0),
                fail: AtomicBool::new(false),
                delay,
                body: Mutex::new(b"one".to_vec()),
            })
        }
    }

    impl Fetcher for Arc<Fake> {
        fn fetch(&self, url: &str, _: &Validators) -> Result<Reply, UpstreamError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            thread::sleep(self.delay);
            if self.fail.load(Ordering::SeqCst) {
                return Err(UpstreamError::Timeout { url: url.into() });
            }
            if url.ends_with("missing") {
                return Ok(Reply::NotFound);
            }
            Ok(Reply::Ok {
                body: lock(&self.body).clone(),
                validators: Validators::default(),
            })
        }
    }

    const LIFE: Lifetimes = Lifetimes {
        found: Duration::from_secs(60),
        not_found: Duration::from_secs(60),
    };

    fn cache(fake: &Arc<Fake>, backoff: Duration) -> Cache {
        Cache::new(
            Box::new(Arc::clone(fake)),
            None,
            Policy {
                error_backoff: backoff,
                memory_budget: 1 << 20,
                max_entries: 100,
            },
        )
    }

    #[test]
    fn second_get_is_served_from_memory() {
        let fake = Fake::new(Duration::ZERO);
        let c = cache(&fake, Duration::ZERO);
        assert_eq!(c.get("u", LIFE, None).unwrap().body(), b"one");
        assert_eq!(c.get("u", LIFE, None).unwrap().body(), b"one");
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
        assert_eq!(c.fetch_count_for("u"), 1);
    }

    #[test]
    fn concurrent_gets_share_one_fetch() {
        let fake = Fake::new(Duration::from_millis(200));
        let c = Arc::new(cache(&fake, Duration::ZERO));
        let handles: Vec<_> = (0..20)
            .map(|_| {
                let c = Arc::clone(&c);
                thread::spawn(move || c.get("u", LIFE, None).map(|d| d.body().to_vec()))
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap().unwrap(), b"one");
        }
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn failure_without_copy_is_shared_and_backed_off() {
        let fake = Fake::new(Duration::from_millis(100));
        fake.fail.store(true, Ordering::SeqCst);
        let c = Arc::new(cache(&fake, Duration::from_secs(60)));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let c = Arc::clone(&c);
                thread::spawn(move || c.get("u", LIFE, None).is_err())
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap());
        }
        assert!(matches!(
            c.get("u", LIFE, None),
            Err(UpstreamError::Timeout { .. })
        ));
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn stale_copy_served_when_refresh_fails() {
        let fake = Fake::new(Duration::ZERO);
        let c = cache(&fake, Duration::from_secs(60));
        let short = Lifetimes {
            found: Duration::ZERO,
            not_found: Duration::ZERO,
        };
        assert_eq!(c.get("u", short, None).unwrap().body(), b"one");
        fake.fail.store(true, Ordering::SeqCst);
        assert_eq!(c.get("u", short, None).unwrap().body(), b"one");
        // Inside the back-off window upstream is not asked again.
        assert_eq!(c.get("u", short, None).unwrap().body(), b"one");
        assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn max_age_forces_refetch_of_a_fresh_copy() {
        let fake = Fake::new(Duration::ZERO);
        let c = cache(&fake, Duration::ZERO);
        c.get("u", LIFE, None).unwrap();
        *lock(&fake.body) = b"two".to_vec();
        assert_eq!(c.get("u", LIFE, None).unwrap().body(), b"one");
        thread::sleep(Duration::from_millis(5));
        let doc = c.get("u", LIFE, Some(Duration::ZERO)).unwrap();
        assert_eq!(doc.body(), b"two");
        assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn not_found_is_cached_as_a_document() {
        let fake = Fake::new(Duration::ZERO);
        let c = cache(&fake, Duration::ZERO);
        assert!(!c.get("missing", LIFE, None).unwrap().found);
        assert!(!c.get("missing", LIFE, None).unwrap().found);
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn parsed_once_and_type_mismatch_reparses() {
        let fake = Fake::new(Duration::ZERO);
        let c = cache(&fake, Duration::ZERO);
        let doc = c.get("u", LIFE, None).unwrap();
        let calls = AtomicU64::new(0);
        let parse = |b: &[u8]| {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(b.len())
        };
        assert_eq!(*doc.parsed(parse).unwrap(), 3);
        assert_eq!(*doc.parsed(parse).unwrap(), 3);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let s = doc
            .parsed(|b| Ok(String::from_utf8_lossy(b).into_owned()))
            .unwrap();
        assert_eq!(s.as_str(), "one");
    }

    #[test]
    fn eviction_keeps_memory_within_budget() {
        let fake = Fake::new(Duration::ZERO);
        let c = Cache::new(
            Box::new(Arc::clone(&fake)),
            None,
            Policy {
                error_backoff: Duration::ZERO,
                memory_budget: 5,
                max_entries: 100,
            },
        );
        c.get("a", LIFE, None).unwrap();
        c.get("b", LIFE, None).unwrap();
        assert!(lock(&c.slots).bytes <= 5);
        assert!(!lock(&c.slots).map.contains_key("a"));
        // Evicted entries come back through a fetch (no DB here).
        c.get("a", LIFE, None).unwrap();
        assert_eq!(fake.calls.load(Ordering::SeqCst), 3);
    }
}
