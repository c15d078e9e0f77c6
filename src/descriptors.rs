//! File descriptors: the process limit, and how many client connections
//! fit under it with room left for everything else.
//!
//! Each client connection costs one socket, plus one open file while it
//! downloads from the store. The database connections, the Podman socket,
//! the upstream client, the statistics writer and store directories being
//! published need descriptors too: those come out of `RESERVED`, so a flood
//! of clients can never starve them.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept for everything that is not a client connection.
pub const RESERVED: u64 = 128;

/// What a client connection may cost at most: its socket and a store file.
const PER_CONNECTION: u64 = 2;

/// The soft and hard `RLIMIT_NOFILE` after trying to raise the soft limit
/// to the hard one (`None` = unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// Raises the soft descriptor limit to the hard limit, as daemons do: the
/// soft default (often 1024) is a compatibility limit for `select()`, which
/// nothing here uses.
pub fn raise_nofile_limit() -> std::io::Result<NofileLimit> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        )?;
    }
    Ok(current_nofile_limit())
}

pub fn current_nofile_limit() -> NofileLimit {
    let limit = getrlimit(Resource::Nofile);
    NofileLimit {
        soft: limit.current,
        hard: limit.maximum,
    }
}

/// The connection cap: the configured one, lowered when the descriptor
/// limit cannot hold that many connections plus the reserve. Never below
/// `floor`, so that a tiny limit still serves a few clients.
pub fn connection_cap(configured: usize, soft_limit: Option<u64>, floor: usize) -> usize {
    let Some(soft) = soft_limit else {
        return configured;
    };
    let fits = soft.saturating_sub(RESERVED) / PER_CONNECTION;
    let fits = usize::try_from(fits).unwrap_or(usize::MAX);
    configured.min(fits).max(floor.min(configured))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_follows_the_descriptor_limit() {
        assert_eq!(connection_cap(1024, None, 16), 1024);
        assert_eq!(connection_cap(1024, Some(1_048_576), 16), 1024);
        // 1024 descriptors: (1024 - 128) / 2 connections.
        assert_eq!(connection_cap(1024, Some(1024), 16), 448);
        assert_eq!(connection_cap(1024, Some(100), 16), 16);
        assert_eq!(connection_cap(8, Some(100), 16), 8);
    }

    #[test]
    fn raising_keeps_the_hard_limit() {
        let before = current_nofile_limit();
        let after = raise_nofile_limit().expect("raising the soft limit to the hard one");
        assert_eq!(after.hard, before.hard);
        assert_eq!(after.soft, after.hard);
    }
}
