//! Failed exchanges with the podman service as `ContainerError`s: transport
//! trouble (socket gone, deadline, not HTTP), I/O inside a body, and error
//! answers with libpod's own message.

use crate::container::ContainerError;
use serde::Deserialize;
use std::io;
use std::path::Path;
use ureq::Body;
use ureq::http::Response;

/// Most of an error body we read to find libpod's message (and most of a
/// small body we drain so a connection can be reused).
pub const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// libpod's error body: `{"cause": …, "message": …, "response": <code>}`.
#[derive(Deserialize)]
struct ApiErrorBody {
    message: Option<String>,
    cause: Option<String>,
}

fn unreachable(socket: &Path, reason: String) -> ContainerError {
    ContainerError::Unreachable {
        socket: socket.display().to_string(),
        reason,
    }
}

/// A failed exchange: the socket is gone or refusing, a deadline passed, or
/// the peer spoke something that is not HTTP.
pub fn transport(socket: &Path, what: &str, e: ureq::Error) -> ContainerError {
    match e {
        ureq::Error::Timeout(t) => ContainerError::Timeout(format!("{what}: {t}")),
        ureq::Error::Io(e) => io(socket, what, e),
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
            unreachable(socket, format!("{what}: {e}"))
        }
        other => ContainerError::Api {
            status: 502,
            message: format!("{what}: malformed response from podman: {other}"),
        },
    }
}

/// An I/O error while talking to the service, possibly a ureq error wrapped
/// by a body reader.
pub fn io(socket: &Path, what: &str, e: io::Error) -> ContainerError {
    if e.get_ref().is_some_and(|inner| inner.is::<ureq::Error>()) {
        if let Some(Ok(u)) = e.into_inner().map(|b| b.downcast::<ureq::Error>()) {
            return transport(socket, what, *u);
        }
        return unreachable(socket, format!("{what}: connection failed"));
    }
    if matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ) {
        return ContainerError::Timeout(format!("{what}: {e}"));
    }
    unreachable(socket, format!("{what}: {e}"))
}

/// Turns a non-success answer into `Api`, with libpod's own message.
pub fn api(what: &str, mut resp: Response<Body>) -> ContainerError {
    let status = resp.status().as_u16();
    let raw = resp
        .body_mut()
        .with_config()
        .limit(ERROR_BODY_LIMIT)
        .lossy_utf8(true)
        .read_to_string()
        .unwrap_or_default();
    let message = match serde_json::from_str::<ApiErrorBody>(&raw) {
        Ok(ApiErrorBody {
            message: Some(m), ..
        }) if !m.is_empty() => m,
        Ok(ApiErrorBody { cause: Some(c), .. }) if !c.is_empty() => c,
        _ if !raw.trim().is_empty() => raw.trim().to_string(),
        _ => resp
            .status()
            .canonical_reason()
            .unwrap_or("unknown error")
            .to_string(),
    };
    ContainerError::Api {
        status,
        message: format!("{what}: {message}"),
    }
}

/// Does a failed kill say "that container is not running"? Podman 4 answers
/// 500 "… container state improper"; newer versions use 409.
pub fn is_not_running_message(status: u16, message: &str) -> bool {
    status == 409
        || (status == 500
            && (message.contains("state improper") || message.contains("not running")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_running_answers_are_recognised() {
        assert!(is_not_running_message(
            500,
            "kill container x: can only kill running containers. x is in state exited: container state improper"
        ));
        assert!(is_not_running_message(409, "anything"));
        assert!(!is_not_running_message(500, "OCI runtime error"));
    }

    #[test]
    fn wrapped_ureq_timeouts_become_timeouts() {
        let socket = Path::new("/nonexistent.sock");
        let wrapped = ureq::Error::Timeout(ureq::Timeout::PerRead).into_io();
        assert!(matches!(
            io(socket, "x", wrapped),
            ContainerError::Timeout(_)
        ));
        let plain = io::Error::new(io::ErrorKind::ConnectionReset, "reset");
        assert!(matches!(
            io(socket, "x", plain),
            ContainerError::Unreachable { .. }
        ));
    }
}
