//! The pages `/` (overview) and `/stats`, and their assets under
//! `/static/`, all compiled into the binary (`src/web/`). The pages fetch
//! the JSON endpoints from their own origin; nothing comes from elsewhere.
//!
//! Assets are served with a year-long `Cache-Control` and an `ETag` (a hash
//! of the content); the pages link them as `/static/NAME?v=HASH`, so a new
//! binary changes every URL whose content changed. Pages themselves are
//! `no-cache` and revalidate with the same kind of `ETag`. `If-None-Match`
//! is answered with 304.

use super::request::Request;
use super::response::{Body, Response};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// Sources of the assets; each served asset is a concatenation of some, so
/// a page needs one stylesheet and one script (two requests, two
/// connections at most, besides the page itself).
const UPLOT_JS: &[u8] = include_bytes!("../web/vendor/uPlot.iife.min.js");
const UPLOT_CSS: &[u8] = include_bytes!("../web/vendor/uPlot.min.css");
const STYLE_CSS: &[u8] = include_bytes!("../web/style.css");
const COMMON_JS: &[u8] = include_bytes!("../web/common.js");
const OVERVIEW_JS: &[u8] = include_bytes!("../web/overview.js");
const STATS_JS: &[u8] = include_bytes!("../web/stats.js");

const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// (served name, content type, parts)
const BUNDLES: &[(&str, &str, &[&[u8]])] = &[
    ("asu.css", CSS, &[UPLOT_CSS, STYLE_CSS]),
    ("overview.js", JS, &[COMMON_JS, OVERVIEW_JS]),
    ("stats.js", JS, &[UPLOT_JS, COMMON_JS, STATS_JS]),
];

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    etag: String,
}

/// The bundles, joined and hashed once.
fn assets() -> &'static [Asset] {
    static ASSETS: OnceLock<Vec<Asset>> = OnceLock::new();
    ASSETS.get_or_init(|| {
        BUNDLES
            .iter()
            .map(|(name, content_type, parts)| {
                let body = parts.join(&b"\n"[..]);
                let etag = etag_of(&body);
                Asset {
                    name,
                    content_type,
                    body,
                    etag,
                }
            })
            .collect()
    })
}

const PAGES: &[(&str, &str)] = &[
    ("overview", include_str!("../web/overview.html")),
    ("stats", include_str!("../web/stats.html")),
];

const ASSET_CACHE: &str = "public, max-age=31536000, immutable";
pub(super) const PAGE_CACHE: &str = "no-cache";
/// Only our own origin: no CDN, no third-party requests, even by mistake.
pub(super) const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
    object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// `"<16 hex>"`: a strong validator over the content.
pub(super) fn etag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// `/static/NAME?v=HASH` for an asset, as pages link it.
pub(super) fn asset_url(name: &str) -> String {
    match assets().iter().find(|a| a.name == name) {
        Some(a) => format!("/static/{}?v={}", a.name, a.etag.trim_matches('"')),
        None => format!("/static/{name}"),
    }
}

/// Pages with `{{asset:NAME}}` replaced by the versioned asset URL, and
/// their ETags; rendered once.
fn rendered_pages() -> &'static [(String, String)] {
    static PAGES_RENDERED: OnceLock<Vec<(String, String)>> = OnceLock::new();
    PAGES_RENDERED.get_or_init(|| {
        PAGES
            .iter()
            .map(|(_, html)| {
                let mut out = html.to_string();
                for asset in assets() {
                    let url = format!("/static/{}?v={}", asset.name, asset.etag.trim_matches('"'));
                    out = out.replace(&format!("{{{{asset:{}}}}}", asset.name), &url);
                }
                let etag = etag_of(out.as_bytes());
                (out, etag)
            })
            .collect()
    })
}

/// Whether `If-None-Match` names `etag` (or is `*`); weak tags compare by
/// their opaque part, as RFC 9110 asks for GET.
fn not_modified(req: &Request, etag: &str) -> bool {
    req.header("If-None-Match").is_some_and(|v| {
        v.split(',')
            .map(str::trim)
            .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
    })
}

pub(super) fn answer(
    req: &Request,
    etag: &str,
    cache: &str,
    content_type: &str,
    body: &'static [u8],
) -> Response {
    let (status, body) = if not_modified(req, etag) {
        (304, Body::Empty)
    } else {
        (200, Body::Static(body))
    };
    let mut headers = vec![
        ("ETag".to_string(), etag.to_string()),
        ("Cache-Control".to_string(), cache.to_string()),
        ("X-Content-Type-Options".to_string(), "nosniff".to_string()),
    ];
    if status == 200 {
        headers.push(("Content-Type".to_string(), content_type.to_string()));
    }
    Response {
        status,
        headers,
        body,
    }
}

/// `GET /static/{name}`.
pub fn asset(name: &str, req: &Request) -> Response {
    match assets().iter().find(|a| a.name == name) {
        Some(a) => answer(req, &a.etag, ASSET_CACHE, a.content_type, &a.body),
        None => Response::error(404, "Not Found"),
    }
}

/// `GET /` and `GET /stats`.
pub fn page(name: &str, req: &Request) -> Response {
    let Some(i) = PAGES.iter().position(|(n, _)| *n == name) else {
        return Response::error(404, "Not Found");
    };
    let (html, etag) = &rendered_pages()[i];
    answer(
        req,
        etag,
        PAGE_CACHE,
        "text/html; charset=utf-8",
        html.as_bytes(),
    )
    .with_header("Content-Security-Policy", CSP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::request::Method;

    fn get(headers: &[(&str, &str)]) -> Request {
        Request {
            method: Method::Get,
            path: String::new(),
            query: String::new(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
        }
    }

    #[test]
    fn pages_link_every_asset_they_use_with_its_version() {
        for (html, _) in rendered_pages() {
            assert!(!html.contains("{{"), "placeholder left: {html}");
            for line in html.lines().filter(|l| l.contains("/static/")) {
                let start = line.find("/static/").unwrap() + "/static/".len();
                let rest = &line[start..];
                let name = &rest[..rest.find('?').unwrap()];
                let a = assets().iter().find(|a| a.name == name);
                let a = a.unwrap_or_else(|| panic!("unknown asset {name}"));
                let v = a.etag.trim_matches('"').to_string();
                assert!(rest.starts_with(&format!("{name}?v={v}\"")), "{line}");
            }
        }
    }

    #[test]
    fn etags_answer_304_and_unknown_assets_404() {
        let r = asset("asu.css", &get(&[]));
        assert_eq!(r.status, 200);
        let etag = r.header("ETag").unwrap().to_string();
        assert_eq!(r.header("Cache-Control"), Some(ASSET_CACHE));
        let again = asset("asu.css", &get(&[("If-None-Match", &etag)]));
        assert_eq!(again.status, 304);
        assert!(matches!(again.body, Body::Empty));
        let weak = format!("\"x\", W/{etag}");
        assert_eq!(
            asset("asu.css", &get(&[("If-None-Match", &weak)])).status,
            304
        );
        assert_eq!(
            asset("asu.css", &get(&[("If-None-Match", "\"x\"")])).status,
            200
        );
        assert_eq!(asset("../Cargo.toml", &get(&[])).status, 404);
        let p = page("stats", &get(&[]));
        assert_eq!(p.status, 200);
        assert_eq!(p.header("Cache-Control"), Some(PAGE_CACHE));
        let tag = p.header("ETag").unwrap().to_string();
        assert_eq!(page("stats", &get(&[("If-None-Match", &tag)])).status, 304);
    }
}
