//! HTTP API: server, router, handlers.
pub mod request;
pub mod response;
