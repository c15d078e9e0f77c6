//! Build statistics: events, the one writer thread that commits them in
//! batches together with their daily rollups, and the queries behind the
//! statistics endpoints.
//!
//! Handlers and workers never write statistics to SQLite: they hand events
//! to a [`Recorder`], which `try_send`s them over a bounded channel to the
//! writer (`writer`). A full channel drops the event and counts the drop
//! (`asu_stat_events_dropped_total`); a request never waits for statistics.
//!
//! Counting rule (also in the README): a POST to `/api/v1/build` that is a
//! build request records `request` plus exactly one of `cache-hit` (answered
//! from what already exists: a result, a queued or running job, a failure
//! replayed inside `failure_ttl_seconds`), `adopted` (answered from a
//! complete build found in the store, now recorded as a result) or
//! `cache-miss` (it queued a new build). Each queued build later records
//! exactly one `success` or `failure`. POSTs that are not build requests
//! (422 malformed, 400 invalid, 529 overloaded, 502/503/504 unavailable)
//! record one `rejected` count by status instead. So
//! `requests = cache-hits + adopted + cache-misses` and
//! `cache-misses = successes + failures + builds still queued or running`.

pub mod query;
pub mod rollup;
pub mod writer;

pub use writer::{Writer, start_writer};

use crate::metrics::Metrics;
use crate::models::BuildRequest;
use crossbeam_channel::Sender;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What happened, as stored in `build_stats.event` (hit and miss rows are
/// written together with a `request` row).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    CacheHit,
    CacheMiss,
    /// A POST answered from a complete build found in the store.
    Adopted,
    Success,
    Failure,
    /// A POST that was not a build request; the status the client got.
    Rejected(u16),
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::CacheHit => "cache-hit",
            Kind::CacheMiss => "cache-miss",
            Kind::Adopted => "adopted",
            Kind::Success => "success",
            Kind::Failure => "failure",
            Kind::Rejected(_) => "rejected",
        }
    }

    /// Whether it answers a build request (and so is also a `request`).
    pub fn is_request(self) -> bool {
        matches!(self, Kind::CacheHit | Kind::CacheMiss | Kind::Adopted)
    }

    /// Events this stands for (a hit, miss or adoption is also a `request`).
    fn weight(self) -> u64 {
        match self {
            k if k.is_request() => 2,
            _ => 1,
        }
    }
}

/// The request an event is about.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildInfo {
    pub request_hash: String,
    pub version: String,
    pub target: String,
    pub profile: String,
    pub client: String,
    pub diff_packages: bool,
    /// Requested packages that are neither default nor profile packages.
    /// Known (and recorded) for the POST that queues a build; empty on the
    /// other events, so package counts count builds, as the reference does.
    pub packages: Vec<String>,
}

impl BuildInfo {
    /// A stored (validated) request, as the workers see it; no packages
    /// (see `packages`).
    pub fn of_request(request_hash: &str, req: &BuildRequest) -> BuildInfo {
        BuildInfo {
            request_hash: request_hash.to_string(),
            version: req.version.clone(),
            target: req.target.clone(),
            profile: req.profile.clone(),
            client: req
                .client
                .clone()
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| "unknown/0".into()),
            diff_packages: req.diff_packages,
            packages: Vec::new(),
        }
    }

    /// From a stored request's JSON (the janitor's view of a job); fields
    /// it cannot read stay empty.
    pub fn of_stored(request_hash: &str, request_json: &str) -> BuildInfo {
        // The storage form, decoded as stored (not the HTTP parser's rules).
        match serde_json::from_str::<crate::models::BuildRequest>(request_json) {
            Ok(req) => BuildInfo::of_request(request_hash, &req),
            Err(_) => BuildInfo {
                request_hash: request_hash.to_string(),
                ..BuildInfo::default()
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unix milliseconds; the UTC day and hour of the rollups come from it.
    pub ts_ms: i64,
    pub kind: Kind,
    pub build: BuildInfo,
    /// Seconds, for `success` and `failure`.
    pub duration_s: Option<f64>,
    /// The failure detail the client sees, for `failure`.
    pub detail: Option<String>,
}

impl Event {
    pub fn now(kind: Kind, build: BuildInfo) -> Event {
        Event {
            ts_ms: crate::db::now_ms(),
            kind,
            build,
            duration_s: None,
            detail: None,
        }
    }
}

/// Messages to the writer thread.
pub(crate) enum Msg {
    Event(Event),
    /// Commit everything received so far, then answer.
    Flush(Sender<()>),
    Stop,
}

/// The handle handlers and workers record through. Cheap to clone; never
/// blocks. Also bumps the matching Prometheus counters, which stay exact
/// even when the channel is full.
///
/// The channel itself is unbounded and the bound is the `backlog` count:
/// a bounded crossbeam channel allocates and touches every slot up front,
/// and 16,384 events' worth of slots were half of the idle RSS.
#[derive(Clone)]
pub struct Recorder {
    tx: Sender<Msg>,
    backlog: Arc<AtomicUsize>,
    capacity: usize,
    metrics: Arc<Metrics>,
}

impl Recorder {
    pub(crate) fn new(
        tx: Sender<Msg>,
        backlog: Arc<AtomicUsize>,
        capacity: usize,
        metrics: Arc<Metrics>,
    ) -> Recorder {
        Recorder {
            tx,
            backlog,
            capacity,
            metrics,
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// A POST answered from an existing result, job or failure.
    pub fn cache_hit(&self, build: BuildInfo) {
        self.metrics.cache_hit();
        self.send(Event::now(Kind::CacheHit, build));
    }

    /// A POST that queued a new build.
    pub fn cache_miss(&self, build: BuildInfo) {
        self.metrics.cache_miss();
        self.send(Event::now(Kind::CacheMiss, build));
    }

    /// A POST answered from a complete build found in the store.
    pub fn adopted(&self, build: BuildInfo) {
        self.metrics.adopted();
        self.send(Event::now(Kind::Adopted, build));
    }

    /// A POST that was not a build request, answered with `status`.
    pub fn rejected(&self, status: u16) {
        self.metrics.rejected(status);
        self.send(Event::now(Kind::Rejected(status), BuildInfo::default()));
    }

    /// A queued build ended for good (retries and shutdown requeues are not
    /// endings).
    pub fn build_finished(
        &self,
        build: BuildInfo,
        success: bool,
        duration_s: f64,
        detail: Option<String>,
    ) {
        self.metrics.build_finished(success, duration_s);
        let kind = if success {
            Kind::Success
        } else {
            Kind::Failure
        };
        let mut event = Event::now(kind, build);
        event.duration_s = Some(duration_s);
        event.detail = detail;
        self.send(event);
    }

    pub fn send(&self, event: Event) {
        let weight = event.kind.weight();
        if self.backlog.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.backlog.fetch_sub(1, Ordering::AcqRel);
            self.metrics.stat_events_dropped(weight);
            return;
        }
        if self.tx.send(Msg::Event(event)).is_err() {
            self.backlog.fetch_sub(1, Ordering::AcqRel);
            self.metrics.stat_events_dropped(weight);
        }
    }
}

/// Requested packages that are neither default nor profile packages, in
/// request order without duplicates; removals (`-pkg`) are not requests.
pub fn extra_packages(requested: &[String], defaults: &[&str], profile: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in requested {
        let p = p.trim();
        if p.is_empty()
            || p.starts_with('-')
            || defaults.contains(&p)
            || profile.contains(&p)
            || out.iter().any(|o| o == p)
        {
            continue;
        }
        out.push(p.to_string());
    }
    out
}

fn strs(v: Option<&serde_json::Value>) -> Vec<&str> {
    v.and_then(serde_json::Value::as_array)
        .map(|a| a.iter().filter_map(serde_json::Value::as_str).collect())
        .unwrap_or_default()
}

/// `extra_packages` against a target's profiles.json (`default_packages`
/// and the profile's `device_packages`).
pub fn extras_from_profiles(
    requested: &[String],
    profiles: &serde_json::Map<String, serde_json::Value>,
    profile: &str,
) -> Vec<String> {
    let defaults = strs(profiles.get("default_packages"));
    let device = strs(
        profiles
            .get("profiles")
            .and_then(|p| p.get(profile))
            .and_then(|p| p.get("device_packages")),
    );
    extra_packages(requested, &defaults, &device)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn extras_leave_out_defaults_profile_packages_and_removals() {
        let got = extra_packages(
            &s(&[
                "vim",
                "base-files",
                "-ppp",
                "kmod-usb2",
                "vim",
                " tmux ",
                "",
            ]),
            &["base-files", "ppp"],
            &["kmod-usb2"],
        );
        assert_eq!(got, ["vim", "tmux"]);
    }

    #[test]
    fn extras_from_a_profiles_document() {
        let doc: serde_json::Value = serde_json::json!({
            "default_packages": ["busybox", "dropbear"],
            "profiles": {"p1": {"device_packages": ["kmod-ath9k"]}},
        });
        let doc = doc.as_object().unwrap();
        let req = s(&["busybox", "kmod-ath9k", "luci"]);
        assert_eq!(extras_from_profiles(&req, doc, "p1"), ["luci"]);
        // Unknown profile: only the defaults are known.
        assert_eq!(
            extras_from_profiles(&req, doc, "nope"),
            ["kmod-ath9k", "luci"]
        );
    }

    #[test]
    fn a_full_channel_drops_and_counts_never_blocks() {
        let (tx, _rx) = crossbeam_channel::unbounded();
        let metrics = Arc::new(Metrics::default());
        let r = Recorder::new(tx, Arc::new(AtomicUsize::new(0)), 1, Arc::clone(&metrics));
        r.cache_hit(BuildInfo::default());
        r.cache_miss(BuildInfo::default());
        r.adopted(BuildInfo::default());
        r.rejected(400);
        assert_eq!(metrics.dropped_stat_events(), 5);
        assert_eq!(metrics.adopted_builds(), 1);
        assert_eq!(metrics.cache_hits(), 1);
        assert_eq!(metrics.cache_misses(), 1);
    }
}
