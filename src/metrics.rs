//! Prometheus counters in memory: atomics bumped where things happen, read
//! only by `GET /metrics`. A scrape formats these and reads the queue length
//! once; it never touches the statistics tables.
//!
//! One `Metrics` per service instance (shared as `Arc<Metrics>` by the HTTP
//! handlers, the workers and the statistics recorder), so two services in
//! one process (the test tiers) do not mix their counts.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Static route labels of `asu_http_responses_total`. The handler maps each
/// route to one; the server uses `Server` for what it answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    BuildPost,
    BuildStatus,
    Stats,
    StatsApi,
    Health,
    Revision,
    Redirect,
    Json,
    Store,
    Page,
    Static,
    Metrics,
    /// DELETE /api/v1/build/{hash} (cancel or drop).
    BuildCancel,
    /// POST /api/v1/build/{hash}/retry.
    BuildRetry,
    /// GET /api/v1/openapi.json.
    OpenApi,
    Options,
    NotFound,
    /// Responses the HTTP server sends without a handler: 503 when shedding
    /// load, 408 request timeout, 413 body too large, 400 for a request it
    /// cannot parse.
    Server,
}

impl Endpoint {
    pub const ALL: [Endpoint; 18] = [
        Endpoint::BuildPost,
        Endpoint::BuildStatus,
        Endpoint::Stats,
        Endpoint::StatsApi,
        Endpoint::Health,
        Endpoint::Revision,
        Endpoint::Redirect,
        Endpoint::Json,
        Endpoint::Store,
        Endpoint::Page,
        Endpoint::Static,
        Endpoint::Metrics,
        Endpoint::BuildCancel,
        Endpoint::BuildRetry,
        Endpoint::OpenApi,
        Endpoint::Options,
        Endpoint::NotFound,
        Endpoint::Server,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Endpoint::BuildPost => "build_post",
            Endpoint::BuildStatus => "build_status",
            Endpoint::Stats => "stats",
            Endpoint::StatsApi => "stats_api",
            Endpoint::Health => "health",
            Endpoint::Revision => "revision",
            Endpoint::Redirect => "redirect",
            Endpoint::Json => "json",
            Endpoint::Store => "store",
            Endpoint::Page => "page",
            Endpoint::Static => "static",
            Endpoint::Metrics => "metrics",
            Endpoint::BuildCancel => "build_cancel",
            Endpoint::BuildRetry => "build_retry",
            Endpoint::OpenApi => "openapi",
            Endpoint::Options => "options",
            Endpoint::NotFound => "not_found",
            Endpoint::Server => "server",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Status codes counted one by one; anything else is counted as `other`.
const STATUSES: [u16; 29] = [
    200, 201, 202, 204, 206, 301, 302, 304, 400, 401, 403, 404, 405, 408, 409, 411, 413, 414, 416,
    422, 429, 431, 500, 501, 502, 503, 504, 505, 529,
];
const STATUS_SLOTS: usize = STATUSES.len() + 1;

fn status_slot(status: u16) -> usize {
    STATUSES
        .iter()
        .position(|s| *s == status)
        .unwrap_or(STATUSES.len())
}

fn status_label(slot: usize) -> String {
    STATUSES
        .get(slot)
        .map_or_else(|| "other".to_string(), u16::to_string)
}

/// Upper bounds (seconds) of the build-duration histogram buckets.
pub const DURATION_BUCKETS: [f64; 10] = [
    10.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
];

/// Why a POST to /api/v1/build was not a build request (see README,
/// "Statistics"). The status is the one the client got.
pub const REJECT_STATUSES: [u16; 6] = [400, 422, 502, 503, 504, 529];

#[derive(Debug)]
pub struct Metrics {
    responses: Vec<AtomicU64>,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    /// Build requests answered from a complete build found in the store.
    adopted: AtomicU64,
    /// Store directories checked for adoption and found wanting.
    adoption_refused: AtomicU64,
    /// Image bytes hashed to verify store directories.
    adoption_hashed_bytes: AtomicU64,
    rejected: [AtomicU64; REJECT_STATUSES.len() + 1],
    successes: AtomicU64,
    failures: AtomicU64,
    /// Cumulative-on-read: each build lands in exactly one slot here, the
    /// scrape adds them up.
    duration_buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    duration_sum_ms: AtomicU64,
    stat_events_dropped: AtomicU64,
    stat_events_written: AtomicU64,
    stat_write_errors: AtomicU64,
    /// Long-poll requests parked right now (a gauge).
    long_poll_waiters: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            responses: (0..Endpoint::ALL.len() * STATUS_SLOTS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            adopted: AtomicU64::new(0),
            adoption_refused: AtomicU64::new(0),
            adoption_hashed_bytes: AtomicU64::new(0),
            rejected: Default::default(),
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            duration_buckets: Default::default(),
            duration_sum_ms: AtomicU64::new(0),
            stat_events_dropped: AtomicU64::new(0),
            stat_events_written: AtomicU64::new(0),
            stat_write_errors: AtomicU64::new(0),
            long_poll_waiters: AtomicU64::new(0),
        }
    }
}

/// Values only the scrape knows how to read (SQLite, other modules).
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    pub queue_length: Option<i64>,
    pub running: usize,
    pub workers: usize,
    pub upstream_fetch_errors: u64,
    pub upstream_fetches: u64,
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

fn read(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl Metrics {
    /// One HTTP response with `status` for `endpoint`.
    pub fn http_response(&self, endpoint: Endpoint, status: u16) {
        let i = endpoint.index() * STATUS_SLOTS + status_slot(status);
        if let Some(c) = self.responses.get(i) {
            bump(c);
        }
    }

    /// Shorthand for responses the server answers itself (503 shed, 408,
    /// 413, 400 for unparsable requests).
    pub fn server_response(&self, status: u16) {
        self.http_response(Endpoint::Server, status);
    }

    pub fn responses(&self, endpoint: Endpoint, status: u16) -> u64 {
        let i = endpoint.index() * STATUS_SLOTS + status_slot(status);
        self.responses.get(i).map_or(0, read)
    }

    pub fn set_long_poll_waiters(&self, n: u64) {
        self.long_poll_waiters.store(n, Ordering::Relaxed);
    }

    pub fn long_poll_waiters(&self) -> u64 {
        read(&self.long_poll_waiters)
    }

    pub fn cache_hit(&self) {
        bump(&self.cache_hits);
    }

    pub fn cache_miss(&self) {
        bump(&self.cache_misses);
    }

    pub fn adopted(&self) {
        bump(&self.adopted);
    }

    /// One store directory verified for adoption: `hashed` image bytes
    /// read, and whether it was found wanting.
    pub fn adoption_checked(&self, hashed: u64, refused: bool) {
        self.adoption_hashed_bytes
            .fetch_add(hashed, Ordering::Relaxed);
        if refused {
            bump(&self.adoption_refused);
        }
    }

    pub fn adopted_builds(&self) -> u64 {
        read(&self.adopted)
    }

    pub fn adoption_hashed_bytes(&self) -> u64 {
        read(&self.adoption_hashed_bytes)
    }

    pub fn rejected(&self, status: u16) {
        let slot = REJECT_STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or(REJECT_STATUSES.len());
        bump(&self.rejected[slot]);
    }

    pub fn build_finished(&self, success: bool, duration_s: f64) {
        bump(if success {
            &self.successes
        } else {
            &self.failures
        });
        let slot = DURATION_BUCKETS
            .iter()
            .position(|le| duration_s <= *le)
            .unwrap_or(DURATION_BUCKETS.len());
        bump(&self.duration_buckets[slot]);
        let ms = (duration_s.max(0.0) * 1000.0).round() as u64;
        self.duration_sum_ms.fetch_add(ms, Ordering::Relaxed);
    }

    pub fn stat_events_dropped(&self, n: u64) {
        self.stat_events_dropped.fetch_add(n, Ordering::Relaxed);
    }

    pub fn stat_events_written(&self, n: u64) {
        self.stat_events_written.fetch_add(n, Ordering::Relaxed);
    }

    pub fn stat_write_error(&self) {
        bump(&self.stat_write_errors);
    }

    pub fn dropped_stat_events(&self) -> u64 {
        read(&self.stat_events_dropped)
    }

    pub fn cache_hits(&self) -> u64 {
        read(&self.cache_hits)
    }

    pub fn cache_misses(&self) -> u64 {
        read(&self.cache_misses)
    }

    pub fn builds(&self) -> (u64, u64) {
        (read(&self.successes), read(&self.failures))
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let _ = writeln!(
            out,
            "# HELP asu_http_responses_total HTTP responses by route and status.\n\
             # TYPE asu_http_responses_total counter"
        );
        for e in Endpoint::ALL {
            for slot in 0..STATUS_SLOTS {
                let n = self
                    .responses
                    .get(e.index() * STATUS_SLOTS + slot)
                    .map_or(0, read);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "asu_http_responses_total{{route=\"{}\",status=\"{}\"}} {n}",
                        e.label(),
                        status_label(slot)
                    );
                }
            }
        }
        let simple = |out: &mut String, name: &str, kind: &str, help: &str, v: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        simple(
            &mut out,
            "asu_cache_hits_total",
            "counter",
            "Build requests answered from an existing build or job.",
            read(&self.cache_hits).to_string(),
        );
        simple(
            &mut out,
            "asu_cache_misses_total",
            "counter",
            "Build requests that queued a new build.",
            read(&self.cache_misses).to_string(),
        );
        simple(
            &mut out,
            "asu_builds_adopted_total",
            "counter",
            "Build requests answered from a complete build found in the store.",
            read(&self.adopted).to_string(),
        );
        simple(
            &mut out,
            "asu_store_adoption_refused_total",
            "counter",
            "Store directories found for a request but incomplete or inconsistent (built as usual).",
            read(&self.adoption_refused).to_string(),
        );
        simple(
            &mut out,
            "asu_store_adoption_hashed_bytes_total",
            "counter",
            "Image bytes hashed to verify store directories before adopting them.",
            read(&self.adoption_hashed_bytes).to_string(),
        );
        let _ = writeln!(
            out,
            "# HELP asu_build_requests_rejected_total POSTs to /api/v1/build that were not build requests, by status.\n# TYPE asu_build_requests_rejected_total counter"
        );
        for (i, c) in self.rejected.iter().enumerate() {
            let label = REJECT_STATUSES
                .get(i)
                .map_or_else(|| "other".to_string(), u16::to_string);
            let _ = writeln!(
                out,
                "asu_build_requests_rejected_total{{status=\"{label}\"}} {}",
                read(c)
            );
        }
        let _ = writeln!(
            out,
            "# HELP asu_builds_total Finished builds by outcome.\n# TYPE asu_builds_total counter\n\
             asu_builds_total{{outcome=\"success\"}} {}\nasu_builds_total{{outcome=\"failure\"}} {}",
            read(&self.successes),
            read(&self.failures)
        );
        let _ = writeln!(
            out,
            "# HELP asu_build_duration_seconds Duration of finished builds.\n# TYPE asu_build_duration_seconds histogram"
        );
        let mut cumulative = 0;
        for (i, le) in DURATION_BUCKETS.iter().enumerate() {
            cumulative += read(&self.duration_buckets[i]);
            let _ = writeln!(
                out,
                "asu_build_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        cumulative += read(&self.duration_buckets[DURATION_BUCKETS.len()]);
        let _ = writeln!(
            out,
            "asu_build_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}\n\
             asu_build_duration_seconds_sum {:.3}\nasu_build_duration_seconds_count {cumulative}",
            read(&self.duration_sum_ms) as f64 / 1000.0
        );
        if let Some(q) = g.queue_length {
            simple(
                &mut out,
                "asu_queue_length",
                "gauge",
                "Jobs waiting for a worker.",
                q.to_string(),
            );
        }
        simple(
            &mut out,
            "asu_workers_busy",
            "gauge",
            "Workers of this process running a build.",
            g.running.to_string(),
        );
        simple(
            &mut out,
            "asu_workers",
            "gauge",
            "Configured workers of this process.",
            g.workers.to_string(),
        );
        simple(
            &mut out,
            "asu_long_poll_waiters",
            "gauge",
            "Long-poll requests (?wait=N) parked right now.",
            read(&self.long_poll_waiters).to_string(),
        );
        simple(
            &mut out,
            "asu_upstream_fetches_total",
            "counter",
            "HTTP requests sent to the upstream metadata server.",
            g.upstream_fetches.to_string(),
        );
        simple(
            &mut out,
            "asu_upstream_fetch_errors_total",
            "counter",
            "Upstream metadata fetches that failed (network, timeout, HTTP error).",
            g.upstream_fetch_errors.to_string(),
        );
        simple(
            &mut out,
            "asu_stat_events_dropped_total",
            "counter",
            "Statistics events dropped because the writer's queue was full.",
            read(&self.stat_events_dropped).to_string(),
        );
        simple(
            &mut out,
            "asu_stat_events_written_total",
            "counter",
            "Statistics events committed by the writer.",
            read(&self.stat_events_written).to_string(),
        );
        simple(
            &mut out,
            "asu_stat_write_errors_total",
            "counter",
            "Statistics batches the writer could not commit.",
            read(&self.stat_write_errors).to_string(),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_counted_per_route_and_status() {
        let m = Metrics::default();
        m.http_response(Endpoint::BuildPost, 202);
        m.http_response(Endpoint::BuildPost, 202);
        m.http_response(Endpoint::BuildPost, 599);
        m.server_response(503);
        assert_eq!(m.responses(Endpoint::BuildPost, 202), 2);
        assert_eq!(m.responses(Endpoint::Server, 503), 1);
        let text = m.render(&Gauges::default());
        assert!(text.contains("asu_http_responses_total{route=\"build_post\",status=\"202\"} 2"));
        assert!(text.contains("asu_http_responses_total{route=\"build_post\",status=\"other\"} 1"));
        assert!(text.contains("asu_http_responses_total{route=\"server\",status=\"503\"} 1"));
        assert!(!text.contains("status=\"200\""), "zero series are left out");
    }

    #[test]
    fn histogram_is_cumulative_with_sum_and_count() {
        let m = Metrics::default();
        m.build_finished(true, 5.0);
        m.build_finished(false, 45.5);
        m.build_finished(true, 7200.0);
        let text = m.render(&Gauges::default());
        assert!(text.contains("asu_build_duration_seconds_bucket{le=\"10\"} 1\n"));
        assert!(text.contains("asu_build_duration_seconds_bucket{le=\"60\"} 2\n"));
        assert!(text.contains("asu_build_duration_seconds_bucket{le=\"3600\"} 2\n"));
        assert!(text.contains("asu_build_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("asu_build_duration_seconds_sum 7250.500\n"));
        assert!(text.contains("asu_build_duration_seconds_count 3\n"));
        assert!(text.contains("asu_builds_total{outcome=\"success\"} 2\n"));
        assert!(text.contains("asu_builds_total{outcome=\"failure\"} 1\n"));
    }

    #[test]
    fn every_family_has_help_and_type() {
        let text = Metrics::default().render(&Gauges {
            queue_length: Some(3),
            ..Gauges::default()
        });
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "no TYPE for {name}"
            );
        }
        assert!(text.contains("asu_queue_length 3\n"));
    }
}
