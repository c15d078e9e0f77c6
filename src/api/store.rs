//! STUB — replaced by the config helper's module.
use super::response::Response;
use std::path::Path;

pub fn serve_store(
    _store_root: &Path,
    _url_path: &str,
    _range: Option<&str>,
    _head: bool,
) -> Response {
    Response::json(404, &serde_json::json!({"detail": "Not found"}))
}
