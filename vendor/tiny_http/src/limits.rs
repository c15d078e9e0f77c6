//! Bounds on what one client may make the server hold, and counters of the
//! connections the server refused or lost.
//!
//! (asu-builder patch; see PATCHES.md.)

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::Header;

/// Every size and wait a client controls, bounded before memory is reserved
/// or a thread waits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once; a connection beyond this is answered 503
    /// and closed at once, so descriptors stay free for everything else.
    pub max_connections: usize,
    /// How long a connection may sit without the first byte of its next
    /// request (also before the first request). It is then closed silently.
    pub idle_timeout: Duration,
    /// From the first byte of a request to its last body byte. A client
    /// slower than this gets 408 and the connection is closed.
    pub request_timeout: Duration,
    /// How long one write to the client may block (a client that stops
    /// reading). The connection is closed when it expires.
    pub write_timeout: Duration,
    /// Longest request line (method, target, version); longer → 414.
    pub max_request_line: usize,
    /// Most header fields; more → 431.
    pub max_headers: usize,
    /// Longest header section in bytes, all lines together; longer → 431.
    pub max_header_bytes: usize,
    /// Largest body, read in full before the request is handed over; a
    /// declared or decoded length beyond this → 413.
    pub max_body: usize,
    /// Body bytes all connections together may hold at once, from the
    /// moment a body is read until its request is dropped. A body that does
    /// not fit is answered 503: without this, `max_connections` clients each
    /// sending `max_body` would set the memory bound.
    pub max_buffered_bodies: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            max_request_line: 8 * 1024,
            max_headers: 100,
            max_header_bytes: 32 * 1024,
            max_body: 1024 * 1024,
            max_buffered_bodies: 16 * 1024 * 1024,
        }
    }
}

/// Renders the answer to a request the server refuses on its own (400, 408,
/// 413, 414, 417, 431, 503, 505): extra headers and a body. Without a
/// hook the answer is a short plain-text reason.
pub type ErrorHook = Arc<dyn Fn(u16, &str) -> (Vec<Header>, Vec<u8>) + Send + Sync>;

/// Connection counters, shared by the accept thread and every connection.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) live: AtomicUsize,
    pub(crate) refused: AtomicU64,
    pub(crate) accept_errors: AtomicU64,
    /// Body bytes held now (see `Limits::max_buffered_bodies`).
    pub(crate) buffered: AtomicUsize,
}

/// A share of `Limits::max_buffered_bodies`, given back when dropped.
#[derive(Debug)]
pub(crate) struct BodyBudget {
    counters: Arc<Counters>,
    bytes: usize,
}

impl BodyBudget {
    pub(crate) fn empty(counters: Arc<Counters>) -> BodyBudget {
        BodyBudget { counters, bytes: 0 }
    }

    /// Takes `more` bytes of the budget, or `false` when they don't fit.
    pub(crate) fn grow(&mut self, more: usize, max: usize) -> bool {
        let taken = self
            .counters
            .buffered
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(more).filter(|&total| total <= max)
            });
        if taken.is_ok() {
            self.bytes += more;
        }
        taken.is_ok()
    }
}

impl Drop for BodyBudget {
    fn drop(&mut self) {
        self.counters.buffered.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Connections open now.
    pub live: usize,
    /// Connections answered 503 because `max_connections` were open.
    pub refused: u64,
    /// `accept()` failures (for example EMFILE), each retried.
    pub accept_errors: u64,
    /// Request body bytes held in memory now.
    pub buffered_body_bytes: usize,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> ConnectionStats {
        ConnectionStats {
            live: self.live.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            accept_errors: self.accept_errors.load(Ordering::Relaxed),
            buffered_body_bytes: self.buffered.load(Ordering::Relaxed),
        }
    }
}

/// One live connection; the count drops when the connection's thread ends,
/// however it ends (a panic included).
pub(crate) struct ConnectionGuard {
    counters: Arc<Counters>,
}

impl ConnectionGuard {
    pub(crate) fn new(counters: Arc<Counters>) -> ConnectionGuard {
        counters.live.fetch_add(1, Ordering::AcqRel);
        ConnectionGuard { counters }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.counters.live.fetch_sub(1, Ordering::AcqRel);
    }
}
