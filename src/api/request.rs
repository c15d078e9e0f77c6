//! The parts of an HTTP request handlers look at, read off tiny_http once.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Delete,
    Options,
    Other(String),
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// Percent-decoding is left to the handler that needs it (store paths).
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
