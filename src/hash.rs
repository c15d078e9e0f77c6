//! The reference server's request hash, reproduced byte for byte.
//!
//! Existing stores and clients key on it, so every quirk is kept: Python's
//! `str()` of booleans and `None`, `repr()` of the key list and repository
//! dict, and `json.dumps(sort_keys=True)` of `packages_versions`.

use crate::models::BuildRequest;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// Lowercase hex SHA-256 of a UTF-8 string.
pub fn sha256_hex(s: &str) -> String {
    hex(&Sha256::digest(s.as_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Hash of the package names: `+` prefixes dropped, deduplicated, sorted,
/// joined by spaces. Also used (truncated) as `EXTRA_IMAGE_NAME`.
pub fn packages_hash<'a>(packages: impl IntoIterator<Item = &'a str>) -> String {
    let mut names: Vec<&str> = packages
        .into_iter()
        .map(|p| p.strip_prefix('+').unwrap_or(p))
        .collect();
    names.sort_unstable();
    names.dedup();
    sha256_hex(&names.join(" "))
}

/// The request hash. For the job id pass the request as the client sent it
/// (profile with `,` → `_`); for `bin_dir` pass it after validation.
pub fn request_hash(req: &BuildRequest) -> String {
    let package_names: Vec<&str> = if req.packages_versions.is_empty() {
        req.packages.iter().map(String::as_str).collect()
    } else {
        req.packages_versions.keys().map(String::as_str).collect()
    };
    let mut input = String::new();
    input.push_str(&req.distro);
    input.push_str(&req.version);
    input.push_str(&req.version_code);
    input.push_str(&req.target);
    input.push_str(&req.profile);
    input.push_str(&packages_hash(package_names));
    input.push_str(&sha256_hex(&python_json_sorted(&req.packages_versions)));
    input.push_str(if req.diff_packages { "True" } else { "False" });
    input.push_str(req.filesystem.as_deref().unwrap_or(""));
    input.push_str(&sha256_hex(req.defaults.as_deref().unwrap_or("")));
    match req.rootfs_size_mb {
        Some(n) => input.push_str(&n.to_string()),
        None => input.push_str("None"),
    }
    input.push_str(&python_repr_list(&req.repository_keys));
    input.push_str(&python_repr_dict(&req.repositories));
    input.push_str(&req.repositories_mode);
    sha256_hex(&input)
}

/// `json.dumps(map, sort_keys=True)` for a map of strings: `", "` and `": "`
/// separators, non-ASCII escaped as `\uXXXX`.
fn python_json_sorted(map: &Map<String, Value>) -> String {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_unstable();
    let mut out = String::from("{");
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        python_json_str(&mut out, k);
        out.push_str(": ");
        match &map[k.as_str()] {
            Value::String(s) => python_json_str(&mut out, s),
            // Values are validated as strings; anything else renders as JSON.
            other => out.push_str(&other.to_string()),
        }
    }
    out.push('}');
    out
}

fn python_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python `repr()` of a `str`.
pub fn python_repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_python_printable(c) => out.push(c),
            c => {
                let n = c as u32;
                let _ = if n <= 0xff {
                    write!(out, "\\x{n:02x}")
                } else if n <= 0xffff {
                    write!(out, "\\u{n:04x}")
                } else {
                    write!(out, "\\U{n:08x}")
                };
            }
        }
    }
    out.push(quote);
    out
}

/// Close to Python's `str.isprintable` for what clients send: ASCII
/// controls, DEL, C1 controls and Unicode separators other than the plain
/// space are escaped.
fn is_python_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{feff}'))
}

/// Python `repr()` of a `list[str]`.
pub fn python_repr_list(items: &[String]) -> String {
    let parts: Vec<String> = items.iter().map(|s| python_repr_str(s)).collect();
    format!("[{}]", parts.join(", "))
}

/// Python `repr()` of a `dict[str, str]` in insertion order.
pub fn python_repr_dict(map: &Map<String, Value>) -> String {
    let parts: Vec<String> = map
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Value::String(s) => python_repr_str(s),
                other => other.to_string(),
            };
            format!("{}: {}", python_repr_str(k), value)
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_quotes_like_python() {
        assert_eq!(python_repr_str("abc"), "'abc'");
        assert_eq!(python_repr_str("it's"), "\"it's\"");
        assert_eq!(python_repr_str("it's \"x\""), "'it\\'s \"x\"'");
        assert_eq!(python_repr_str("a\nb\\c\td"), "'a\\nb\\\\c\\td'");
        assert_eq!(python_repr_str("\u{1}\u{7f}"), "'\\x01\\x7f'");
        assert_eq!(python_repr_str("grüß"), "'grüß'");
        assert_eq!(python_repr_list(&[]), "[]");
        assert_eq!(
            python_repr_list(&["k1".into(), "k2".into()]),
            "['k1', 'k2']"
        );
    }

    #[test]
    fn repr_dict_keeps_insertion_order() {
        let map: Map<String, Value> =
            serde_json::from_str(r#"{"z": "http://a", "a": "https://b"}"#).unwrap();
        assert_eq!(
            python_repr_dict(&map),
            "{'z': 'http://a', 'a': 'https://b'}"
        );
        assert_eq!(python_repr_dict(&Map::new()), "{}");
    }

    #[test]
    fn json_dumps_sorted_like_python() {
        let map: Map<String, Value> =
            serde_json::from_str(r#"{"vim": "9.1", "abc": "1.0-r1", "ü": "ä"}"#).unwrap();
        assert_eq!(
            python_json_sorted(&map),
            r#"{"abc": "1.0-r1", "vim": "9.1", "\u00fc": "\u00e4"}"#
        );
        assert!(sha256_hex(&python_json_sorted(&Map::new())).starts_with("44136fa3"));
    }

    #[test]
    fn reference_unit_vector() {
        let req = BuildRequest {
            distro: "test".into(),
            version: "test".into(),
            target: "testtarget/testsubtarget".into(),
            profile: "test".into(),
            packages: vec!["test".into()],
            ..Default::default()
        };
        let h = request_hash(&req);
        assert!(h.starts_with("525e1949") && h.ends_with("7800"), "{h}");
    }

    #[test]
    fn packages_hash_ignores_plus_order_and_duplicates() {
        assert_eq!(packages_hash(["b", "+a", "a"]), packages_hash(["a", "b"]));
        assert_ne!(packages_hash(["a"]), packages_hash(["a", "b"]));
    }
}
