//! A socket reader with a total deadline, not just a per-read timeout: a
//! client that sends one byte just before each timeout would otherwise hold
//! the connection for ever (slowloris).
//!
//! (asu-builder patch; see PATCHES.md.)

use std::io::{Error, ErrorKind, Read, Result};
use std::time::{Duration, Instant};

use crate::util::RefinedTcpStream;

pub struct DeadlineReader {
    inner: RefinedTcpStream,
    deadline: Option<Instant>,
}

impl DeadlineReader {
    pub fn new(inner: RefinedTcpStream) -> DeadlineReader {
        DeadlineReader {
            inner,
            deadline: None,
        }
    }

    /// Every read from now on fails with `TimedOut` once `deadline` passed.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
    }
}

impl Read for DeadlineReader {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        if let Some(deadline) = self.deadline {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Error::new(ErrorKind::TimedOut, "request deadline passed"));
            }
            // A zero timeout means "block for ever" to the OS.
            self.inner
                .set_read_timeout(Some(remaining.max(Duration::from_millis(1))))?;
        }
        match self.inner.read(buf) {
            // SO_RCVTIMEO expiring shows up as EAGAIN on Unix.
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                Err(Error::new(ErrorKind::TimedOut, "request deadline passed"))
            }
            other => other,
        }
    }
}
