//! The range of every numeric key, in one table: the loader refuses a value
//! outside it with the usual one-line error, and tests hold README's
//! configuration table and `etc/config.yaml` to the same numbers.
//!
//! Each upper bound is far above any sane setting and low enough that the
//! arithmetic done with the value cannot overflow: seconds become
//! milliseconds in i64 (`now + ttl`), counts go to SQLite as i64, sizes are
//! multiplied, durations are added.

/// One numeric key and its inclusive range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub key: &'static str,
    pub min: u64,
    pub max: u64,
}

/// Ten years, the longest any lifetime may be.
const TEN_YEARS: u64 = 10 * 365 * 24 * 3600;

const fn b(key: &'static str, min: u64, max: u64) -> Bound {
    Bound { key, min, max }
}

/// Every numeric key of `Config` (branch fields included).
pub const BOUNDS: &[Bound] = &[
    b("server_port", 1, 65_535),
    // More threads than this only exhausts the host; a typo like 40000
    // should fail here, not at spawn.
    b("server_threads", 1, 1024),
    // Fewer would make a handful of browsers look like an attack; more,
    // and a thread per connection costs more than a host has.
    b("server_max_connections", 16, 100_000),
    b("server_keepalive_timeout_seconds", 1, 3600),
    b("server_request_timeout_seconds", 1, 600),
    b("server_write_timeout_seconds", 1, 3600),
    // At least what an empty request needs beside a defaults script
    // (`check_consistency` wants 2 × max_defaults_length + 64 KiB).
    b("server_max_body_bytes", 64 * 1024, 16 * 1024 * 1024),
    b("server_queue_timeout_ms", 10, 60_000),
    // Compared with a count in SQLite (i64): above 2^63 it used to wrap
    // negative and refuse every build.
    b("max_pending_jobs", 1, 1_000_000),
    // A day: no ImageBuilder run needs more, and a hung one holds a worker.
    b("job_timeout_seconds", 1, 86_400),
    b("build_ttl_seconds", 0, TEN_YEARS),
    b("versioned_build_ttl_seconds", 0, TEN_YEARS),
    b("defaults_build_ttl_seconds", 0, TEN_YEARS),
    b("failure_ttl_seconds", 0, TEN_YEARS),
    b("worker_concurrent", 1, 1024),
    b("worker_poll_seconds", 1, 3600),
    // A defaults script this long, JSON-escaped, still fits the largest body.
    b("max_defaults_length", 0, 8_000_000),
    // 1 TiB.
    b("max_custom_rootfs_size_mb", 0, 1_048_576),
    // OpenWrt revision numbers; JSON clients read them as doubles.
    b("branches.*.branch_off_rev", 0, u32::MAX as u64),
    // Ten years of days.
    b("stats_retention_days", 1, 3650),
    b("stats_rollup_retention_days", 1, 3650),
    // Parked long-polls are cheap (a socket and a few hundred bytes); the
    // bound keeps a flood of them from holding every connection. 0: off.
    b("long_poll_max_waiters", 0, 10_000),
    // A day: a store directory older than that is surely finished.
    b("store_adopt_settle_seconds", 0, 86_400),
];

/// The range of `key`; `branches.<name>.<field>` is looked up as
/// `branches.*.<field>`.
pub fn bound_of(key: &str) -> Option<&'static Bound> {
    let generic;
    let key = match key
        .strip_prefix("branches.")
        .and_then(|r| r.rsplit_once('.'))
    {
        Some((_, field)) => {
            generic = format!("branches.*.{field}");
            generic.as_str()
        }
        None => key,
    };
    BOUNDS.iter().find(|b| b.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn every_numeric_key_has_a_range_that_holds_its_default() {
        let value = serde_json::to_value(Config::default()).unwrap();
        let mut numeric = Vec::new();
        for (key, v) in value.as_object().unwrap() {
            if let Some(n) = v.as_u64() {
                let bound = bound_of(key).unwrap_or_else(|| panic!("{key} has no range in BOUNDS"));
                assert!((bound.min..=bound.max).contains(&n), "{key}: default {n}");
                numeric.push(key.clone());
            }
        }
        for branch in value["branches"].as_object().unwrap().values() {
            if let Some(rev) = branch["branch_off_rev"].as_u64() {
                assert!(rev <= bound_of("branches.x.branch_off_rev").unwrap().max);
            }
        }
        // And nothing in the table that Config does not have.
        for b in BOUNDS.iter().filter(|b| !b.key.starts_with("branches.")) {
            assert!(numeric.iter().any(|k| k == b.key), "{} is not a key", b.key);
        }
    }

    #[test]
    fn every_upper_bound_survives_the_arithmetic_done_with_it() {
        for b in BOUNDS {
            // Milliseconds since the epoch plus the value in milliseconds.
            let ms = i64::try_from(b.max).unwrap().checked_mul(1000).unwrap();
            assert!(
                ms.checked_add(chrono::Utc::now().timestamp_millis())
                    .is_some()
            );
        }
    }

    #[test]
    fn branch_fields_are_found_by_their_generic_name() {
        assert_eq!(
            bound_of("branches.24.10.branch_off_rev").map(|b| b.key),
            Some("branches.*.branch_off_rev")
        );
        assert_eq!(bound_of("server_port").map(|b| b.max), Some(65_535));
        assert!(bound_of("worker_id").is_none());
    }
}
