//! Typed failures of talking to the upstream download server.

use std::fmt;

/// Why upstream metadata could not be had. `Clone` because one failed fetch
/// is handed to every request that waited for it (single-flight).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// Upstream answered with a status that is neither 200 nor a definite
    /// "not there" (404/410), e.g. 500 or 403.
    Http { url: String, status: u16 },
    /// Connect or whole-request timeout.
    Timeout { url: String },
    /// DNS, refused connection, TLS, broken transfer, …
    Network { url: String, message: String },
    /// The body was larger than we accept for metadata.
    TooLarge { url: String, limit: u64 },
    /// The body arrived but is not what the file should contain.
    Parse { url: String, message: String },
    /// The metadata cache database could not be opened (start-up only).
    Database { message: String },
}

impl UpstreamError {
    /// HTTP status for a client-facing error caused by this failure: 504 when
    /// upstream was too slow, 502 for everything else it did wrong.
    pub fn http_status(&self) -> u16 {
        match self {
            UpstreamError::Timeout { .. } => 504,
            UpstreamError::Database { .. } => 500,
            _ => 502,
        }
    }

    pub fn url(&self) -> Option<&str> {
        match self {
            UpstreamError::Http { url, .. }
            | UpstreamError::Timeout { url }
            | UpstreamError::Network { url, .. }
            | UpstreamError::TooLarge { url, .. }
            | UpstreamError::Parse { url, .. } => Some(url),
            UpstreamError::Database { .. } => None,
        }
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Http { url, status } => {
                write!(f, "upstream answered {status} for {url}")
            }
            UpstreamError::Timeout { url } => write!(f, "upstream timed out fetching {url}"),
            UpstreamError::Network { url, message } => {
                write!(f, "cannot fetch {url} from upstream: {message}")
            }
            UpstreamError::TooLarge { url, limit } => {
                write!(f, "upstream file {url} is larger than {limit} bytes")
            }
            UpstreamError::Parse { url, message } => {
                write!(f, "upstream file {url} is malformed: {message}")
            }
            UpstreamError::Database { message } => {
                write!(f, "metadata cache database: {message}")
            }
        }
    }
}

impl std::error::Error for UpstreamError {}
