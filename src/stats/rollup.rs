//! Pure parts of the statistics: UTC day and hour numbers, folding a batch
//! of events into rollup increments, dense day windows, and the build-error
//! line format. No I/O here; `writer` and `query` apply and read these.

use super::{Event, Kind};
use crate::config::Branch;
use std::collections::BTreeMap;

pub const DAY_MS: i64 = 24 * 3600 * 1000;
pub const HOUR_MS: i64 = 3600 * 1000;
/// The window of `stats_packages_recent` and of top-packages, in days.
pub const RECENT_DAYS: i64 = 30;

/// UTC day number (days since 1970-01-01) of a Unix-millisecond time.
pub fn day_of(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(DAY_MS)
}

pub fn hour_of(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(HOUR_MS)
}

/// `YYYY-MM-DD` of a day number.
pub fn date_of(day: i64) -> String {
    chrono::DateTime::from_timestamp(day.saturating_mul(86_400), 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// The first day of the recent-packages window that ends with `today`.
pub fn recent_start(today: i64) -> i64 {
    today - (RECENT_DAYS - 1)
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    pub requests: i64,
    pub cache_hits: i64,
    pub cache_misses: i64,
    /// Requests answered from a complete build found in the store.
    pub adopted: i64,
    pub successes: i64,
    pub failures: i64,
    pub build_seconds: f64,
    pub rejected: i64,
}

impl Counters {
    fn count(&mut self, e: &Event) {
        match e.kind {
            Kind::CacheHit => {
                self.requests += 1;
                self.cache_hits += 1;
            }
            Kind::CacheMiss => {
                self.requests += 1;
                self.cache_misses += 1;
            }
            Kind::Adopted => {
                self.requests += 1;
                self.adopted += 1;
            }
            Kind::Success | Kind::Failure => {
                if e.kind == Kind::Success {
                    self.successes += 1;
                } else {
                    self.failures += 1;
                }
                self.build_seconds += e.duration_s.unwrap_or(0.0).max(0.0);
            }
            Kind::Rejected(_) => self.rejected += 1,
        }
    }
}

/// Key of `stats_daily`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DailyKey {
    pub day: i64,
    pub version: String,
    pub target: String,
    pub client: String,
    pub diff_packages: bool,
}

/// What one batch adds to each rollup table.
#[derive(Debug, Default, PartialEq)]
pub struct Increments {
    pub daily: BTreeMap<DailyKey, Counters>,
    /// (day, version, diff_packages)
    pub by_version: BTreeMap<(i64, String, bool), Counters>,
    pub hourly: BTreeMap<i64, Counters>,
    /// (day, status)
    pub rejected: BTreeMap<(i64, u16), i64>,
    /// (day, branch, package)
    pub packages: BTreeMap<(i64, String, String), i64>,
    /// (branch, package), only for days inside the recent window.
    pub recent: BTreeMap<(String, String), i64>,
}

/// Fold a batch. `today` is the writer's current UTC day: package counts of
/// days inside the recent window also go to `recent`.
pub fn fold(events: &[Event], branches: &BTreeMap<String, Branch>, today: i64) -> Increments {
    let mut inc = Increments::default();
    for e in events {
        let day = day_of(e.ts_ms);
        inc.hourly.entry(hour_of(e.ts_ms)).or_default().count(e);
        if let Kind::Rejected(status) = e.kind {
            *inc.rejected.entry((day, status)).or_default() += 1;
            continue;
        }
        let b = &e.build;
        inc.daily
            .entry(DailyKey {
                day,
                version: b.version.clone(),
                target: b.target.clone(),
                client: b.client.clone(),
                diff_packages: b.diff_packages,
            })
            .or_default()
            .count(e);
        inc.by_version
            .entry((day, b.version.clone(), b.diff_packages))
            .or_default()
            .count(e);
        if e.kind == Kind::CacheMiss && !b.packages.is_empty() {
            let branch = crate::config::branch_name(branches, &b.version);
            for p in &b.packages {
                *inc.packages
                    .entry((day, branch.clone(), p.clone()))
                    .or_default() += 1;
                if day >= recent_start(today) {
                    *inc.recent.entry((branch.clone(), p.clone())).or_default() += 1;
                }
            }
        }
    }
    inc
}

/// Day-by-day values of `first..first+len`, zeros where `sparse` has none.
pub fn dense<T: Copy + Default>(sparse: &BTreeMap<i64, T>, first: i64, len: usize) -> Vec<T> {
    (0..len as i64)
        .map(|i| sparse.get(&(first + i)).copied().unwrap_or_default())
        .collect()
}

/// Longest line of /api/v1/build-errors.
pub const ERROR_LINE_MAX: usize = 200;

/// `YYYY-MM-DD HH:MM:SS version:target:profile error`, one line of at most
/// 200 characters, with 64-hex ids (request hashes, bin dirs) replaced so
/// the log names no one's build.
pub fn error_line(ts_ms: i64, version: &str, target: &str, profile: &str, detail: &str) -> String {
    let when = chrono::DateTime::from_timestamp_millis(ts_ms)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default();
    let cleaned = hide_ids(detail);
    let words: Vec<&str> = cleaned.split_whitespace().collect();
    let line = format!("{when} {version}:{target}:{profile} {}", words.join(" "));
    let line: String = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate_chars(&line, ERROR_LINE_MAX)
}

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// Replace every run of 64 lowercase hex digits with `[job-id]`, leftmost
/// first, like the reference's `[0-9a-f]{64}` substitution.
pub fn hide_ids(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut run = String::new();
    for c in s.chars() {
        if matches!(c, '0'..='9' | 'a'..='f') {
            run.push(c);
            if run.len() == 64 {
                out.push_str("[job-id]");
                run.clear();
            }
        } else {
            out.push_str(&run);
            run.clear();
            out.push(c);
        }
    }
    out.push_str(&run);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_branches;
    use crate::stats::BuildInfo;

    fn ts(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    fn ev(at: &str, kind: Kind, version: &str, packages: &[&str]) -> Event {
        Event {
            ts_ms: ts(at),
            kind,
            build: BuildInfo {
                version: version.into(),
                target: "ath79/generic".into(),
                client: "luci/1".into(),
                diff_packages: version.starts_with("24"),
                packages: packages.iter().map(|p| p.to_string()).collect(),
                ..BuildInfo::default()
            },
            duration_s: matches!(kind, Kind::Success | Kind::Failure).then_some(30.0),
            detail: None,
        }
    }

    #[test]
    fn utc_day_boundaries() {
        let last = ts("2024-03-09T23:59:59.999Z");
        let first = ts("2024-03-10T00:00:00Z");
        assert_eq!(day_of(first), day_of(last) + 1);
        assert_eq!(date_of(day_of(last)), "2024-03-09");
        assert_eq!(date_of(day_of(first)), "2024-03-10");
        // Local offsets do not move the UTC day.
        assert_eq!(
            day_of(ts("2024-03-10T01:30:00+02:00")),
            day_of(last),
            "23:30 UTC on the 9th"
        );
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(day_of(-1), -1);
        assert_eq!(hour_of(first) - hour_of(last), 1);
    }

    #[test]
    fn fold_splits_days_versions_and_branches() {
        let branches = default_branches();
        let today = day_of(ts("2024-03-10T12:00:00Z"));
        let events = [
            ev("2024-03-09T23:59:59Z", Kind::CacheMiss, "24.10.0", &["vim"]),
            ev(
                "2024-03-10T00:00:00Z",
                Kind::CacheMiss,
                "24.10.1",
                &["vim", "tmux"],
            ),
            ev(
                "2024-03-10T00:00:01Z",
                Kind::CacheHit,
                "24.10.1",
                &["ignored"],
            ),
            ev("2024-03-10T08:00:00Z", Kind::CacheMiss, "23.05.5", &["vim"]),
            ev("2024-03-10T09:00:00Z", Kind::Success, "24.10.1", &[]),
            ev("2024-03-10T09:00:01Z", Kind::Failure, "23.05.5", &[]),
            ev("2024-03-10T10:00:00Z", Kind::Rejected(400), "", &[]),
            // Outside the 30-day recent window, still in the daily table.
            ev("2024-01-01T10:00:00Z", Kind::CacheMiss, "23.05.5", &["old"]),
        ];
        let inc = fold(&events, &branches, today);

        let d9 = day_of(ts("2024-03-09T12:00:00Z"));
        let v = |day, version: &str, diff| inc.by_version[&(day, version.to_string(), diff)];
        assert_eq!(v(d9, "24.10.0", true).requests, 1);
        assert_eq!(v(d9, "24.10.0", true).cache_misses, 1);
        let v2410 = v(today, "24.10.1", true);
        assert_eq!(
            (
                v2410.requests,
                v2410.cache_hits,
                v2410.cache_misses,
                v2410.successes
            ),
            (2, 1, 1, 1)
        );
        assert_eq!(v2410.build_seconds, 30.0);
        let v2305 = v(today, "23.05.5", false);
        assert_eq!((v2305.requests, v2305.failures), (1, 1));
        assert_eq!(inc.rejected[&(today, 400)], 1);
        assert_eq!(inc.daily.len(), 4, "{:?}", inc.daily.keys());

        // Packages per day × branch, from misses only.
        let p = |day, branch: &str, pkg: &str| {
            inc.packages
                .get(&(day, branch.to_string(), pkg.to_string()))
                .copied()
        };
        assert_eq!(p(d9, "24.10", "vim"), Some(1));
        assert_eq!(p(today, "24.10", "vim"), Some(1));
        assert_eq!(p(today, "23.05", "vim"), Some(1));
        assert_eq!(p(today, "24.10", "ignored"), None);
        assert_eq!(inc.recent[&("24.10".to_string(), "vim".to_string())], 2);
        assert!(
            !inc.recent
                .contains_key(&("23.05".to_string(), "old".to_string()))
        );
        assert_eq!(
            p(day_of(ts("2024-01-01T00:00:00Z")), "23.05", "old"),
            Some(1)
        );

        // Hours: one bucket per UTC hour; rejected counted there too.
        let h10 = hour_of(ts("2024-03-10T10:00:00Z"));
        assert_eq!(inc.hourly[&h10].rejected, 1);
        let total_requests: i64 = inc.hourly.values().map(|c| c.requests).sum();
        assert_eq!(total_requests, 5);
    }

    #[test]
    fn dense_windows_fill_empty_days_with_zero() {
        let mut sparse = BTreeMap::new();
        sparse.insert(10, 5i64);
        sparse.insert(13, 2);
        sparse.insert(20, 9);
        assert_eq!(dense(&sparse, 9, 6), [0, 5, 0, 0, 2, 0]);
        assert_eq!(dense(&BTreeMap::<i64, i64>::new(), 0, 3), [0, 0, 0]);
    }

    #[test]
    fn error_lines_hide_ids_and_stay_short() {
        let hash = "a".repeat(64);
        let line = error_line(
            ts("2024-03-10T08:09:10Z"),
            "24.10.0",
            "ath79/generic",
            "tplink",
            &format!("Error: build {hash} failed\n\tstore/{hash}0 gone"),
        );
        assert_eq!(
            line,
            "2024-03-10 08:09:10 24.10.0:ath79/generic:tplink Error: build [job-id] failed store/[job-id]0 gone"
        );
        let long = error_line(0, "v", "t", "p", &"é".repeat(500));
        assert_eq!(long.chars().count(), ERROR_LINE_MAX);
        assert!(!long.contains('\n'));
        // Upper-case hex is not an id; a 63-digit run is kept.
        assert_eq!(hide_ids(&"A".repeat(64)), "A".repeat(64));
        assert_eq!(hide_ids(&"0".repeat(63)), "0".repeat(63));
    }
}
