//! What becomes of a job after one build attempt. A pure decision, so every
//! case is a row of the table test below; the worker only carries it out.

use crate::builder::{BuildFailure, BuildSuccess, FailureKind};
use std::time::Duration;

/// The facts about one attempt the decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// This attempt's number, from 1 (the claim counts it).
    pub number: i64,
    pub max: i64,
    /// Wall time of the build.
    pub elapsed: Duration,
    pub job_timeout_seconds: u64,
    /// Shutdown aborted the build or is under way: not the job's fault.
    pub interrupted: bool,
}

#[derive(Debug, Clone)]
pub enum Disposition<'o> {
    /// Store the result.
    Complete(&'o BuildSuccess),
    /// Back to the queue, claimable `after` from now. `refund` gives the
    /// attempt back; `note` becomes the job's `detail` meanwhile.
    Retry {
        after: Duration,
        refund: bool,
        note: String,
    },
    /// Failed for good: `detail` is what clients are shown, the rest of the
    /// failure (output, build command) is stored with it.
    Fail {
        detail: String,
        failure: &'o BuildFailure,
    },
}

/// The one place that decides between storing, retrying and failing.
///
/// - A success is stored, even when shutdown began meanwhile.
/// - An interrupted failure goes back to the queue at once, attempt refunded.
/// - A build that ran for `job_timeout_seconds` failed for good, whatever
///   the error said: running it again would time out again.
/// - A retryable failure is retried with backoff until `max` attempts, then
///   fails saying so; a permanent one fails at once.
/// - A runtime lost mid-build is retried without backoff: workers claim
///   only while the runtime answers its health check, so the retry starts
///   as soon as it is back. The attempt counts (the build may be what
///   breaks the runtime), so a job survives `max - 1` outages.
pub fn disposition<'o>(
    outcome: &'o Result<BuildSuccess, BuildFailure>,
    attempt: &Attempt,
) -> Disposition<'o> {
    let failure = match outcome {
        Ok(success) => return Disposition::Complete(success),
        Err(failure) => failure,
    };
    if attempt.interrupted {
        return Disposition::Retry {
            after: Duration::ZERO,
            refund: true,
            note: "requeued at shutdown".into(),
        };
    }
    let timed_out = attempt.elapsed.as_secs() >= attempt.job_timeout_seconds;
    let retryable = failure.kind != FailureKind::Permanent;
    if retryable && !timed_out && attempt.number < attempt.max {
        let after = match failure.kind {
            FailureKind::RuntimeLost => Duration::ZERO,
            _ => retry_backoff(attempt.number),
        };
        return Disposition::Retry {
            after,
            refund: false,
            note: failure.detail.clone(),
        };
    }
    let detail = if timed_out {
        format!(
            "Error: Build timed out after {} seconds (job_timeout_seconds)",
            attempt.job_timeout_seconds
        )
    } else if retryable {
        format!(
            "{} (gave up after {} attempts)",
            failure.detail, attempt.number
        )
    } else {
        failure.detail.clone()
    };
    Disposition::Fail { detail, failure }
}

/// 5 s, 20 s, 80 s, … capped at 5 minutes.
fn retry_backoff(attempt: i64) -> Duration {
    let exp = attempt.clamp(1, 8) as u32 - 1;
    Duration::from_secs((5u64 * 4u64.pow(exp)).min(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(kind: FailureKind) -> BuildFailure {
        BuildFailure {
            kind,
            detail: "Error: boom".into(),
            stdout: "out".into(),
            stderr: "err".into(),
            build_cmd: vec!["make".into()],
        }
    }

    fn attempt(number: i64, elapsed_s: u64, interrupted: bool) -> Attempt {
        Attempt {
            number,
            max: 4,
            elapsed: Duration::from_secs(elapsed_s),
            job_timeout_seconds: 600,
            interrupted,
        }
    }

    /// A row's expectation, in plain values.
    #[derive(Debug, PartialEq)]
    enum Want {
        Complete,
        Retry(u64, bool, String),
        Fail(String, FailureKind),
    }

    fn want(d: &Disposition<'_>) -> Want {
        match d {
            Disposition::Complete(_) => Want::Complete,
            Disposition::Retry {
                after,
                refund,
                note,
            } => Want::Retry(after.as_secs(), *refund, note.clone()),
            Disposition::Fail { detail, failure } => Want::Fail(detail.clone(), failure.kind),
        }
    }

    fn retry(after_s: u64, refund: bool, note: &str) -> Want {
        Want::Retry(after_s, refund, note.into())
    }

    fn fail(detail: &str, kind: FailureKind) -> Want {
        Want::Fail(detail.into(), kind)
    }

    #[test]
    fn the_table() {
        use FailureKind::*;
        let ok = Ok(BuildSuccess::default());
        let r = Err(failure(Retryable));
        let p = Err(failure(Permanent));
        let lost = Err(failure(RuntimeLost));
        let timed_out = "Error: Build timed out after 600 seconds (job_timeout_seconds)";
        let rows = [
            (&ok, attempt(1, 10, false), Want::Complete),
            (&ok, attempt(4, 700, true), Want::Complete),
            (&r, attempt(1, 10, false), retry(5, false, "Error: boom")),
            (&r, attempt(2, 10, false), retry(20, false, "Error: boom")),
            (&r, attempt(3, 10, false), retry(80, false, "Error: boom")),
            (
                &r,
                attempt(4, 10, false),
                fail("Error: boom (gave up after 4 attempts)", Retryable),
            ),
            (&r, attempt(1, 600, false), fail(timed_out, Retryable)),
            (&r, attempt(1, 599, false), retry(5, false, "Error: boom")),
            (
                &r,
                attempt(1, 10, true),
                retry(0, true, "requeued at shutdown"),
            ),
            (
                &r,
                attempt(4, 900, true),
                retry(0, true, "requeued at shutdown"),
            ),
            (&lost, attempt(1, 10, false), retry(0, false, "Error: boom")),
            (&lost, attempt(3, 10, false), retry(0, false, "Error: boom")),
            (
                &lost,
                attempt(4, 10, false),
                fail("Error: boom (gave up after 4 attempts)", RuntimeLost),
            ),
            (&lost, attempt(2, 600, false), fail(timed_out, RuntimeLost)),
            (
                &lost,
                attempt(2, 10, true),
                retry(0, true, "requeued at shutdown"),
            ),
            (&p, attempt(1, 10, false), fail("Error: boom", Permanent)),
            (&p, attempt(1, 601, false), fail(timed_out, Permanent)),
            (
                &p,
                attempt(1, 10, true),
                retry(0, true, "requeued at shutdown"),
            ),
        ];
        for (i, (outcome, attempt, expected)) in rows.iter().enumerate() {
            assert_eq!(&want(&disposition(outcome, attempt)), expected, "row {i}");
        }
        // A failure carries the build's output along to the stored row.
        match disposition(&p, &attempt(1, 10, false)) {
            Disposition::Fail { failure, .. } => {
                assert_eq!(
                    (failure.stdout.as_str(), failure.stderr.as_str()),
                    ("out", "err")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(retry_backoff(1), Duration::from_secs(5));
        assert_eq!(retry_backoff(2), Duration::from_secs(20));
        assert_eq!(retry_backoff(3), Duration::from_secs(80));
        assert_eq!(retry_backoff(7), Duration::from_secs(300));
        assert_eq!(retry_backoff(0), Duration::from_secs(5));
    }
}
