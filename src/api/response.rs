//! Responses as plain data; the server turns them into tiny_http responses.

use serde_json::{Value, json};
use std::fs::File;
use std::sync::Arc;

pub enum Body {
    Empty,
    Bytes(Vec<u8>),
    /// Bytes rendered once and shared by every answer until they change.
    Shared(Arc<[u8]>),
    /// Bytes compiled into the binary (pages and their assets).
    Static(&'static [u8]),
    /// A file streamed from `offset`, `len` bytes (store downloads, ranges).
    File {
        file: File,
        offset: u64,
        len: u64,
    },
}

pub struct Response {
    pub status: u16,
    /// Header names as they go out; CORS headers are added by the server.
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Response {
    pub fn json(status: u16, value: &Value) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Body::Bytes(serde_json::to_vec(value).unwrap_or_default()),
        }
    }

    /// The reference error shape for 400 and friends: `{"detail", "status"}`.
    pub fn error(status: u16, detail: &str) -> Response {
        Response::json(status, &json!({"detail": detail, "status": status}))
    }

    /// The reference shape with a `title` (404 for hashes, 529, 405 …).
    pub fn error_titled(status: u16, title: &str, detail: &str) -> Response {
        Response::json(
            status,
            &json!({"status": status, "title": title, "detail": detail}),
        )
    }

    /// 301 with a relative `Location`, as the reference sends.
    pub fn redirect(location: &str) -> Response {
        Response {
            status: 301,
            headers: vec![("Location".into(), location.into())],
            body: Body::Empty,
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
