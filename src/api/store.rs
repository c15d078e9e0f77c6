//! `GET/HEAD /store/{path}`: built images straight from the store directory.
//!
//! The path comes from the network, so it is decoded exactly once, checked
//! for traversal tricks, and the canonical result must still lie inside the
//! canonical store root (that also defeats symlinks leading out). Files are
//! streamed, never read into memory: images are tens of megabytes.

use super::response::{Body, Response};
use crate::store;
use chrono::{DateTime, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::json;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Serves one file below `store_root`. `url_path` is the raw (still
/// percent-encoded) path after `/store/`; `range` the `Range` header, if any.
pub fn serve_store(store_root: &Path, url_path: &str, range: Option<&str>) -> Response {
    let Some(file_path) = resolve(store_root, url_path) else {
        return not_found();
    };
    // Open first, then ask the open handle: what we describe is what we send.
    let Ok(file) = File::open(&file_path) else {
        return not_found();
    };
    let Ok(meta) = file.metadata() else {
        return not_found();
    };
    if !meta.is_file() {
        return not_found();
    }
    let total = meta.len();
    let name = file_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();

    let mut headers = vec![
        (
            "Content-Type".to_string(),
            "application/octet-stream".to_string(),
        ),
        ("Content-Disposition".into(), content_disposition(&name)),
        ("X-Content-Type-Options".into(), "nosniff".into()),
        ("Accept-Ranges".into(), "bytes".into()),
    ];
    if let Ok(modified) = meta.modified() {
        headers.push(("Last-Modified".into(), http_date(modified.into())));
    }

    let (status, offset, len) = match parse_range(range, total) {
        ByteRange::Full => (200, 0, total),
        ByteRange::Partial { start, end } => {
            headers.push((
                "Content-Range".into(),
                format!("bytes {start}-{end}/{total}"),
            ));
            (206, start, end - start + 1)
        }
        ByteRange::Unsatisfiable => {
            headers.push(("Content-Range".into(), format!("bytes */{total}")));
            headers.push(("Content-Length".into(), "0".into()));
            return Response {
                status: 416,
                headers,
                body: Body::Empty,
            };
        }
    };
    // The server sends the real length from the body; HEAD is answered
    // there too (headers of the GET, no body), like every other route.
    headers.push(("Content-Length".into(), len.to_string()));
    Response {
        status,
        headers,
        body: Body::File { file, offset, len },
    }
}

/// The reference's 404 body for the store (FastAPI `HTTPException` shape).
fn not_found() -> Response {
    Response::json(404, &json!({"detail": "Not found"}))
}

/// Decodes `url_path` once and maps it to a canonical path inside the
/// canonical `store_root`, or `None` for anything suspicious or absent.
fn resolve(store_root: &Path, url_path: &str) -> Option<PathBuf> {
    let decoded = String::from_utf8(percent_decode(url_path)).ok()?;
    if !is_safe_relative(&decoded) {
        return None;
    }
    let root = store_root.canonicalize().ok()?;
    let full = root.join(&decoded).canonicalize().ok()?;
    store::is_servable(&root, &full).then_some(full)
}

/// A relative path of plain names: no `..`, no absolute start, no
/// backslashes (some clients and proxies treat them as separators) and no
/// NUL. Canonicalization re-checks containment; this check makes the
/// intent explicit and rejects traversal even when the target is absent.
fn is_safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && !path.contains('\0')
        && path.split('/').all(|segment| segment != "..")
}

/// `%XX` → byte, once. Malformed escapes stay literal, as Starlette's
/// `unquote` leaves them; `+` is not a space in paths.
fn percent_decode(s: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(s).collect()
}

/// RFC 5987 `attr-char`: what `filename*` may carry unescaped.
const ATTR_CHAR_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment; filename="…"` for printable ASCII names (quotes and
/// backslashes escaped). Other names get an ASCII fallback plus the RFC 6266
/// `filename*` form, so no byte of a file name can break the header line.
fn content_disposition(name: &str) -> String {
    let printable = name.bytes().all(|b| (0x20..0x7f).contains(&b));
    let quoted: String = name
        .chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '_' })
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            _ => vec![c],
        })
        .collect();
    if printable {
        return format!("attachment; filename=\"{quoted}\"");
    }
    let encoded = utf8_percent_encode(name, ATTR_CHAR_ESCAPES);
    format!("attachment; filename=\"{quoted}\"; filename*=utf-8''{encoded}")
}

/// IMF-fixdate, the only format HTTP/1.1 senders may generate.
fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteRange {
    Full,
    /// Inclusive byte positions, `end < total`.
    Partial {
        start: u64,
        end: u64,
    },
    Unsatisfiable,
}

/// One `bytes=` range out of a `Range` header. Multiple ranges and anything
/// malformed fall back to the full file, which RFC 7233 §3.1 permits (a
/// server may ignore Range); only a well-formed range that misses the file
/// is unsatisfiable.
fn parse_range(header: Option<&str>, total: u64) -> ByteRange {
    let Some(header) = header else {
        return ByteRange::Full;
    };
    let header = header.trim();
    let Some((unit, spec)) = header.split_once('=') else {
        return ByteRange::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return ByteRange::Full;
    };
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // `bytes=-n`: the last n bytes.
        (true, false) => match number(last) {
            None => ByteRange::Full,
            Some(0) => ByteRange::Unsatisfiable,
            Some(_) if total == 0 => ByteRange::Unsatisfiable,
            Some(n) => ByteRange::Partial {
                start: total.saturating_sub(n),
                end: total - 1,
            },
        },
        // `bytes=a-`: from a to the end.
        (false, true) => match number(first) {
            None => ByteRange::Full,
            Some(a) if a >= total => ByteRange::Unsatisfiable,
            Some(a) => ByteRange::Partial {
                start: a,
                end: total - 1,
            },
        },
        // `bytes=a-b`: inclusive; b past the end is clamped.
        (false, false) => match (number(first), number(last)) {
            (Some(a), Some(b)) if a <= b => {
                if a >= total {
                    ByteRange::Unsatisfiable
                } else {
                    ByteRange::Partial {
                        start: a,
                        end: b.min(total - 1),
                    }
                }
            }
            _ => ByteRange::Full,
        },
        (true, true) => ByteRange::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse() {
        use ByteRange::*;
        let r = |h: &str| parse_range(Some(h), 100);
        assert_eq!(parse_range(None, 100), Full);
        assert_eq!(r("bytes=0-9"), Partial { start: 0, end: 9 });
        assert_eq!(r("bytes=90-200"), Partial { start: 90, end: 99 });
        assert_eq!(r("bytes=10-"), Partial { start: 10, end: 99 });
        assert_eq!(r("bytes=-10"), Partial { start: 90, end: 99 });
        assert_eq!(r("bytes=-500"), Partial { start: 0, end: 99 });
        assert_eq!(r("Bytes = 5-5"), Partial { start: 5, end: 5 });
        assert_eq!(r("bytes=100-"), Unsatisfiable);
        assert_eq!(r("bytes=100-120"), Unsatisfiable);
        assert_eq!(r("bytes=-0"), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-5"), 0), Unsatisfiable);
        // malformed or multiple: ignored
        for h in [
            "bytes=0-1,5-6",
            "bytes=9-2",
            "bytes=a-b",
            "bytes=-",
            "bytes=+1-2",
            "items=0-1",
            "bytes 0-1",
            "bytes=1",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(r(h), Full, "{h}");
        }
    }

    #[test]
    fn decodes_once_and_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%20b"), b"a b");
        assert_eq!(percent_decode("%2e%2E"), b"..");
        assert_eq!(percent_decode("%252e"), b"%2e");
        assert_eq!(percent_decode("100%"), b"100%");
        assert_eq!(percent_decode("%zz%4"), b"%zz%4");
        assert_eq!(percent_decode("a+b"), b"a+b");
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for p in [
            "",
            "..",
            "../x",
            "a/../b",
            "a/..",
            "/etc/passwd",
            "a\\b",
            "a\0b",
        ] {
            assert!(!is_safe_relative(p), "{p:?}");
        }
        for p in ["a", "a/b.bin", "..a/b", "a../b", "./a", "%2e%2e/x"] {
            assert!(is_safe_relative(p), "{p:?}");
        }
    }

    #[test]
    fn disposition_escapes_and_encodes() {
        assert_eq!(
            content_disposition("openwrt-x86-64.img.gz"),
            "attachment; filename=\"openwrt-x86-64.img.gz\""
        );
        assert_eq!(
            content_disposition("a \"q\" \\b"),
            "attachment; filename=\"a \\\"q\\\" \\\\b\""
        );
        let d = content_disposition("bad\r\nX: y");
        assert!(!d.contains('\r') && !d.contains('\n'), "{d}");
        assert!(d.ends_with("filename*=utf-8''bad%0D%0AX%3A%20y"), "{d}");
        assert_eq!(
            content_disposition("ü.bin"),
            "attachment; filename=\"_.bin\"; filename*=utf-8''%C3%BC.bin"
        );
    }

    #[test]
    fn dates_are_imf_fixdate() {
        let t = DateTime::from_timestamp(784_111_777, 0).unwrap();
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
