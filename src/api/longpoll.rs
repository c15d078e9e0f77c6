//! Long-polling of a build: `GET /api/v1/build/{hash}?wait=N` (N ≤ 60)
//! answers as soon as the build's status or phase changes, or after N
//! seconds with its state then.
//!
//! No handler thread waits. A handler that sees `wait` on a build that is
//! not final returns `Outcome::Park` with the answer it would have given;
//! the server hands the raw request to the one long-poll thread (or, when
//! `long_poll_max_waiters` are already parked, answers at once with that
//! state). The thread holds the parked requests with their deadlines and
//! renders a build again, with the same code as a plain GET, when
//!
//! - the queue says the job changed (`QueueShared::job_changed`: a claim, a
//!   phase, an outcome, a cancel or retry in this process), or
//! - every `RECHECK`, the database changed at all (`PRAGMA data_version`):
//!   the fallback for another process working the same database.
//!
//! It answers a request through `respond_deferred`, so the connection's own
//! thread writes it, and a slow reader costs nobody else anything.

use super::response::Response;
use super::stats::Query;
use super::{AppState, Handler, Outcome};
use crate::metrics::Endpoint;
use crossbeam_channel::{Receiver, Sender, select};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest `wait` a client may ask for, in seconds.
pub const MAX_WAIT_SECONDS: u64 = 60;

/// How often the thread looks for changes made by another process.
const RECHECK: Duration = Duration::from_secs(1);

/// A long-poll a handler wants parked, with the answer it would give now.
pub struct Park {
    pub hash: String,
    pub deadline: Instant,
    pub current: Response,
}

/// What tells one state of a build from another: the HTTP status and the
/// phase header. The queue position moving is not a change of status.
type Fingerprint = (u16, Option<String>);

fn fingerprint(r: &Response) -> Fingerprint {
    (
        r.status,
        r.header("X-Imagebuilder-Status").map(str::to_string),
    )
}

/// `GET /api/v1/build/{hash}`, with or without `wait`.
pub fn poll(state: &AppState, conn: &rusqlite::Connection, hash: &str, query: &str) -> Outcome {
    let wait = if query.is_empty() {
        0
    } else {
        match Query::parse(query).int("wait", 0, 0, MAX_WAIT_SECONDS) {
            Ok(n) => n,
            Err(bad) => return Outcome::Respond(Response::error(400, &bad.0)),
        }
    };
    let current = super::build::get_build(state, conn, hash);
    // Only a build still on its way has something to wait for.
    if wait == 0 || current.status != 202 || state.config().long_poll_max_waiters == 0 {
        return Outcome::Respond(current);
    }
    Outcome::Park(Park {
        hash: hash.to_string(),
        deadline: Instant::now() + Duration::from_secs(wait),
        current,
    })
}

/// Answers one raw request (the server's `respond`, with CORS headers).
pub type Responder = Arc<dyn Fn(tiny_http::Request, Response) + Send + Sync>;

struct Waiter {
    raw: tiny_http::Request,
    hash: String,
    deadline: Instant,
    seen: Fingerprint,
}

/// The server's side of the long-poll thread.
pub struct LongPoll {
    tx: Option<Sender<Waiter>>,
    handle: Option<JoinHandle<()>>,
    parked: Arc<AtomicUsize>,
    max: usize,
    state: Arc<AppState>,
}

/// What each handler thread holds to park requests.
#[derive(Clone)]
pub struct Parker {
    tx: Sender<Waiter>,
    parked: Arc<AtomicUsize>,
    max: usize,
}

impl Parker {
    /// Park `raw`, or give it back with its answer when the bound is
    /// reached (the caller answers it at once).
    pub fn park(
        &self,
        raw: tiny_http::Request,
        park: Park,
    ) -> Result<(), Box<(tiny_http::Request, Response)>> {
        let admitted = self
            .parked
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            return Err(Box::new((raw, park.current)));
        }
        let waiter = Waiter {
            raw,
            hash: park.hash,
            deadline: park.deadline,
            seen: fingerprint(&park.current),
        };
        match self.tx.send(waiter) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.parked.fetch_sub(1, Ordering::AcqRel);
                Err(Box::new((e.0.raw, park.current)))
            }
        }
    }
}

impl LongPoll {
    pub fn start(state: Arc<AppState>, respond: Responder) -> std::io::Result<LongPoll> {
        let max = state.config().long_poll_max_waiters;
        // Unbounded in count only up to `max`: admission counts first.
        let (tx, rx) = crossbeam_channel::unbounded::<Waiter>();
        let parked = Arc::new(AtomicUsize::new(0));
        let changes = state.queue.change_receiver();
        let thread_state = Arc::clone(&state);
        let thread_parked = Arc::clone(&parked);
        let handle = std::thread::Builder::new()
            .name("http-longpoll".into())
            .spawn(move || {
                let mut poller = Poller {
                    state: &thread_state,
                    respond,
                    parked: &thread_parked,
                    waiters: Vec::new(),
                };
                poller.run(&rx, &changes);
            })?;
        Ok(LongPoll {
            tx: Some(tx),
            handle: Some(handle),
            parked,
            max,
            state,
        })
    }

    pub fn parker(&self) -> Option<Parker> {
        Some(Parker {
            tx: self.tx.clone()?,
            parked: Arc::clone(&self.parked),
            max: self.max,
        })
    }

    /// Answer every parked request with its state now and end the thread.
    /// Call once no handler can park any more.
    pub fn stop(mut self) {
        drop(self.tx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.state.metrics.set_long_poll_waiters(0);
    }
}

struct Poller<'a> {
    state: &'a AppState,
    respond: Responder,
    parked: &'a AtomicUsize,
    waiters: Vec<Waiter>,
}

impl Poller<'_> {
    fn run(&mut self, rx: &Receiver<Waiter>, changes: &Receiver<String>) {
        let mut handler = None;
        let mut data_version = None;
        let mut last_check = Instant::now();
        loop {
            let next = self
                .waiters
                .iter()
                .map(|w| w.deadline)
                .min()
                .map_or(last_check + RECHECK, |d| d.min(last_check + RECHECK));
            let timeout = next.saturating_duration_since(Instant::now());
            let mut dirty: HashSet<String> = HashSet::new();
            let mut closed = false;
            select! {
                recv(rx) -> w => match w {
                    Ok(w) => {
                        // It may have changed before it got here.
                        dirty.insert(w.hash.clone());
                        self.waiters.push(w);
                    }
                    Err(_) => closed = true,
                },
                recv(changes) -> h => if let Ok(h) = h { dirty.insert(h); },
                default(timeout) => {},
            }
            // Take whatever else is already there.
            while let Ok(w) = rx.try_recv() {
                dirty.insert(w.hash.clone());
                self.waiters.push(w);
            }
            while let Ok(h) = changes.try_recv() {
                dirty.insert(h);
            }
            if handler.is_none() {
                handler = Handler::new(self.state)
                    .map_err(|e| log::error!("long-poll: cannot open the database: {e}"))
                    .ok();
            }
            if last_check.elapsed() >= RECHECK {
                last_check = Instant::now();
                let now = handler.as_ref().and_then(|h| h.data_version());
                if now.is_none() || now != data_version {
                    dirty.extend(self.waiters.iter().map(|w| w.hash.clone()));
                }
                data_version = now;
            }
            self.answer(handler.as_ref(), &dirty, closed);
            if closed {
                return;
            }
        }
    }

    /// Answer the waiters whose build changed, whose deadline passed, or
    /// all of them when the server stops.
    fn answer(&mut self, handler: Option<&Handler<'_>>, dirty: &HashSet<String>, all: bool) {
        let now = Instant::now();
        let mut keep = Vec::with_capacity(self.waiters.len());
        for w in std::mem::take(&mut self.waiters) {
            let due = all || now >= w.deadline;
            if !due && !dirty.contains(&w.hash) {
                keep.push(w);
                continue;
            }
            let response = match handler {
                Some(h) => h.build_status(&w.hash),
                None => Response::error(503, "Database temporarily unavailable, try again shortly")
                    .with_header("Retry-After", "2"),
            };
            if !due && fingerprint(&response) == w.seen {
                keep.push(w);
                continue;
            }
            self.state
                .metrics
                .http_response(Endpoint::BuildStatus, response.status);
            (self.respond)(w.raw, response);
            self.parked.fetch_sub(1, Ordering::AcqRel);
        }
        self.waiters = keep;
        self.state
            .metrics
            .set_long_poll_waiters(self.waiters.len() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_ignore_the_queue_position() {
        let a = Response::json(202, &serde_json::json!({}))
            .with_header("X-Imagebuilder-Status", "queued")
            .with_header("X-Queue-Position", "3");
        let b = Response::json(202, &serde_json::json!({"x": 1}))
            .with_header("X-Imagebuilder-Status", "queued")
            .with_header("X-Queue-Position", "2");
        let c = Response::json(202, &serde_json::json!({}))
            .with_header("X-Imagebuilder-Status", "init");
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
        assert_ne!(fingerprint(&a), fingerprint(&Response::error(404, "x")));
    }
}
