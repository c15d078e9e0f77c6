//! How long each kind of call to the Podman service may take.

use std::time::Duration;

/// The deadline of every call, by kind. A call that needs no stream answers
/// in seconds or the service is in trouble: each has a deadline of seconds,
/// and its `Timeout` error tells the queue to check the service's health.
/// Only the three calls that stream data for as long as the work takes
/// (pull, the exec of a build step, the archive download) get minutes, and
/// even those are bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening a connection. Only a service that stopped accepting (its
    /// backlog full) makes this wait: 5 s.
    pub connect: Duration,
    /// `_ping` (and `version`), the health check: answered from memory, so
    /// 3 s is already very slow.
    pub ping: Duration,
    /// Reads: image inspect, container list, network exists, exec inspect,
    /// exec create: 10 s.
    pub query: Duration,
    /// Changes that touch storage or the OCI runtime: container create,
    /// start, kill, remove, network create, file upload, and the head of an
    /// exec or archive answer: 30 s, for a loaded host.
    pub change: Duration,
    /// One image pull, stream included (multi-hundred-MB ImageBuilder
    /// images): 15 min.
    pub pull: Duration,
    /// One exec session, its output stream included. A build step may be
    /// silent for long, so there is no per-read limit; the container's own
    /// timeout normally ends it first. Default 2 h; the daemon sets
    /// `job_timeout_seconds` + 1 min.
    pub exec: Duration,
    /// Longest silence inside an archive download: 60 s.
    pub archive_silence: Duration,
    /// One whole archive download: 30 min.
    pub archive: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(5),
            ping: Duration::from_secs(3),
            query: Duration::from_secs(10),
            change: Duration::from_secs(30),
            pull: Duration::from_secs(15 * 60),
            exec: Duration::from_secs(2 * 3600),
            archive_silence: Duration::from_secs(60),
            archive: Duration::from_secs(30 * 60),
        }
    }
}
