//! The route table, written once as data: every path the server answers,
//! with its method and what handles it. The router walks it, `/metrics`
//! labels come from it, and a test holds the OpenAPI document
//! (`openapi.yaml`) to it, path for path and method for method.
//!
//! Patterns are the OpenAPI path templates, plus one mark: `{name*}`
//! matches one or more segments (version paths like `releases/24.10.0`
//! carry slashes). `{name}` matches exactly one non-empty segment and may
//! be followed by a literal suffix inside the segment (`{arch}-index.json`).

use crate::metrics::Endpoint;

/// A method of the table. GET routes also answer HEAD (the server drops
/// the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Delete,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Delete => "DELETE",
        }
    }
}

/// What a route leads to; handlers read their parameters from `Matched`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Build,
    BuildStatus,
    BuildCancel,
    BuildRetry,
    Health,
    Stats,
    /// The statistics endpoints (by the name `api::stats::route` takes).
    StatsApi(&'static str),
    Metrics,
    Revision,
    Redirect(&'static str),
    /// Everything under /json/v1 (`api::metadata::route_json` parses it).
    Json,
    Store,
    /// `/`, `/stats`, `/docs`.
    Page(&'static str),
    /// Embedded assets under /static/.
    Static,
    OpenApi,
}

impl Kind {
    /// The static label of `asu_http_responses_total`.
    pub fn endpoint(self) -> Endpoint {
        match self {
            Kind::Build => Endpoint::BuildPost,
            Kind::BuildStatus => Endpoint::BuildStatus,
            Kind::BuildCancel => Endpoint::BuildCancel,
            Kind::BuildRetry => Endpoint::BuildRetry,
            Kind::Health => Endpoint::Health,
            Kind::Stats => Endpoint::Stats,
            Kind::StatsApi(_) => Endpoint::StatsApi,
            Kind::Metrics => Endpoint::Metrics,
            Kind::Revision => Endpoint::Revision,
            Kind::Redirect(_) => Endpoint::Redirect,
            Kind::Json => Endpoint::Json,
            Kind::Store => Endpoint::Store,
            Kind::Page(_) => Endpoint::Page,
            Kind::Static => Endpoint::Static,
            Kind::OpenApi => Endpoint::OpenApi,
        }
    }
}

#[derive(Debug)]
pub struct Route {
    pub verb: Verb,
    pub pattern: &'static str,
    pub kind: Kind,
}

const fn get(pattern: &'static str, kind: Kind) -> Route {
    Route {
        verb: Verb::Get,
        pattern,
        kind,
    }
}

const fn post(pattern: &'static str, kind: Kind) -> Route {
    Route {
        verb: Verb::Post,
        pattern,
        kind,
    }
}

const fn delete(pattern: &'static str, kind: Kind) -> Route {
    Route {
        verb: Verb::Delete,
        pattern,
        kind,
    }
}

/// The table. Order matters only where two patterns match one path: the
/// first wins (a target's `index.json` before a profile named `index`).
pub const ROUTES: &[Route] = &[
    post("/api/v1/build", Kind::Build),
    get("/api/v1/build/{request_hash}", Kind::BuildStatus),
    delete("/api/v1/build/{request_hash}", Kind::BuildCancel),
    post("/api/v1/build/{request_hash}/retry", Kind::BuildRetry),
    get("/api/v1/stats", Kind::Stats),
    get("/api/v1/stats/summary", Kind::StatsApi("summary")),
    get("/api/v1/builds-per-day", Kind::StatsApi("builds-per-day")),
    get(
        "/api/v1/builds-by-version",
        Kind::StatsApi("builds-by-version"),
    ),
    get(
        "/api/v1/diff-packages-stats",
        Kind::StatsApi("diff-packages-stats"),
    ),
    get(
        "/api/v1/diff-packages-by-version",
        Kind::StatsApi("diff-packages-by-version"),
    ),
    get(
        "/api/v1/diff-packages-trend",
        Kind::StatsApi("diff-packages-trend"),
    ),
    get("/api/v1/top-packages", Kind::StatsApi("top-packages")),
    get("/api/v1/build-errors", Kind::StatsApi("build-errors")),
    get(
        "/api/v1/revision/{version}/{target}/{subtarget}",
        Kind::Revision,
    ),
    get("/api/v1/openapi.json", Kind::OpenApi),
    // `/api/overview` is ours (docs/compatibility.md).
    get("/api/v1/overview", Kind::Redirect("/json/v1/overview.json")),
    get("/api/overview", Kind::Redirect("/json/v1/overview.json")),
    get("/overview", Kind::Redirect("/json/v1/overview.json")),
    get("/api/v1/latest", Kind::Redirect("/json/v1/latest.json")),
    get("/json/v1/overview.json", Kind::Json),
    get("/json/v1/branches.json", Kind::Json),
    get("/json/v1/latest.json", Kind::Json),
    get(
        "/json/v1/{version_path*}/targets/{target}/{subtarget}/index.json",
        Kind::Json,
    ),
    get(
        "/json/v1/{version_path*}/packages/{arch}-index.json",
        Kind::Json,
    ),
    get(
        "/json/v1/{version_path*}/targets/{target}/{subtarget}/{profile}.json",
        Kind::Json,
    ),
    get("/store/{bin_dir}/{file*}", Kind::Store),
    get("/health", Kind::Health),
    get("/metrics", Kind::Metrics),
    get("/", Kind::Page("overview")),
    get("/stats", Kind::Page("stats")),
    get("/docs", Kind::Page("docs")),
    get("/static/{name}", Kind::Static),
];

/// A route that matched a path, with the values of its parameters in the
/// order of the pattern.
#[derive(Debug)]
pub struct Matched<'p> {
    pub route: &'static Route,
    pub params: Vec<&'p str>,
}

impl<'p> Matched<'p> {
    pub fn param(&self, i: usize) -> &'p str {
        self.params.get(i).copied().unwrap_or("")
    }
}

/// Every route whose pattern matches `path`, in table order.
pub fn matching(path: &str) -> Vec<Matched<'_>> {
    let segments = split(path);
    ROUTES
        .iter()
        .filter_map(|route| {
            let pattern: Vec<&str> = route.pattern[1..].split('/').collect();
            let mut spans = Vec::new();
            if !match_from(&pattern, &segments, 0, &mut spans) {
                return None;
            }
            let params = spans
                .into_iter()
                .map(|(from, to)| {
                    &path[segments[from].0..segments[to - 1].0 + segments[to - 1].1.len()]
                })
                .zip(route_params(route.pattern))
                .map(|(value, suffix)| value.strip_suffix(suffix).unwrap_or(value))
                .collect();
            Some(Matched { route, params })
        })
        .collect()
}

/// The path's segments after the leading `/`, each with its byte offset.
fn split(path: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut offset = 1;
    for seg in path.get(1..).unwrap_or("").split('/') {
        out.push((offset, seg));
        offset += seg.len() + 1;
    }
    out
}

/// The literal suffix after each parameter of `pattern` ("" for most).
fn route_params(pattern: &str) -> Vec<&str> {
    pattern[1..]
        .split('/')
        .filter(|seg| seg.starts_with('{'))
        .map(|seg| seg.rsplit_once('}').map_or("", |(_, s)| s))
        .collect()
}

/// Match `pattern[..]` against `segments[at..]`, recording each parameter
/// as the span of segments it took. Backtracks over `{name*}`.
fn match_from(
    pattern: &[&str],
    segments: &[(usize, &str)],
    at: usize,
    spans: &mut Vec<(usize, usize)>,
) -> bool {
    let Some((first, rest)) = pattern.split_first() else {
        return at == segments.len();
    };
    if at >= segments.len() {
        return false;
    }
    let seg = segments[at].1;
    match parse_segment(first) {
        Segment::Literal(lit) => lit == seg && match_from(rest, segments, at + 1, spans),
        Segment::Param { suffix } => {
            let ok = seg.len() > suffix.len() && seg.ends_with(suffix);
            if !ok {
                return false;
            }
            spans.push((at, at + 1));
            if match_from(rest, segments, at + 1, spans) {
                return true;
            }
            spans.pop();
            false
        }
        Segment::Rest => {
            // Longest first, so later literals anchor at the last match.
            for end in (at + 1..=segments.len()).rev() {
                if segments[at..end].iter().any(|(_, s)| s.is_empty()) {
                    continue;
                }
                spans.push((at, end));
                if match_from(rest, segments, end, spans) {
                    return true;
                }
                spans.pop();
            }
            false
        }
    }
}

enum Segment<'a> {
    Literal(&'a str),
    Param { suffix: &'a str },
    Rest,
}

fn parse_segment(seg: &str) -> Segment<'_> {
    if !seg.starts_with('{') {
        return Segment::Literal(seg);
    }
    match seg.rsplit_once('}') {
        Some((name, "")) if name.ends_with('*') => Segment::Rest,
        Some((_, suffix)) => Segment::Param { suffix },
        None => Segment::Literal(seg),
    }
}

/// A pattern as OpenAPI writes it: `{name*}` → `{name}`.
pub fn openapi_path(pattern: &str) -> String {
    pattern.replace("*}", "}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(path: &str) -> (Kind, Vec<String>) {
        let m = matching(path);
        assert!(!m.is_empty(), "{path} matches nothing");
        (
            m[0].route.kind,
            m[0].params.iter().map(|s| s.to_string()).collect(),
        )
    }

    #[test]
    fn parameters_are_captured() {
        let h = "a".repeat(64);
        assert_eq!(
            only(&format!("/api/v1/build/{h}")),
            (Kind::BuildStatus, vec![h.clone()])
        );
        assert_eq!(
            only(&format!("/api/v1/build/{h}/retry")),
            (Kind::BuildRetry, vec![h.clone()])
        );
        assert_eq!(
            only("/json/v1/releases/23.05.5/targets/x86/64/index.json"),
            (
                Kind::Json,
                vec!["releases/23.05.5".into(), "x86".into(), "64".into()]
            )
        );
        assert_eq!(
            only("/json/v1/snapshots/packages/x86_64-index.json").1,
            ["snapshots", "x86_64"]
        );
        assert_eq!(
            only("/json/v1/releases/1/targets/a/b/c.json").1,
            ["releases/1", "a", "b", "c"]
        );
        assert_eq!(only("/store/abc/x/y.bin").1, ["abc", "x/y.bin"]);
        assert_eq!(only("/").0, Kind::Page("overview"));
    }

    #[test]
    fn what_is_not_routed() {
        for path in [
            "/api/v1/build/",
            "/api/v1/build/x/y",
            "/stats/",
            "/json/v1/",
            "/json/v1/index.json",
            "/json/v1/nothing",
            "/json/v1/releases/1.2.3/profile.json",
            "/json/v1//targets/a/b/index.json",
            "/store/",
            "/store/only",
            "/static/a/b",
            "/api/v1/nope",
            "/api/v1/packages-index.json",
        ] {
            assert!(matching(path).is_empty(), "{path}");
        }
    }

    #[test]
    fn one_path_may_have_several_methods() {
        let kinds: Vec<(Verb, Kind)> = matching("/api/v1/build/abc")
            .iter()
            .map(|m| (m.route.verb, m.route.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                (Verb::Get, Kind::BuildStatus),
                (Verb::Delete, Kind::BuildCancel)
            ]
        );
    }

    #[test]
    fn every_statistics_endpoint_has_a_route() {
        for name in crate::api::stats::ENDPOINTS {
            let path = format!("/api/v1/{name}");
            let m = matching(&path);
            assert_eq!(m.len(), 1, "{name}");
            assert_eq!(m[0].route.kind, Kind::StatsApi(name));
        }
    }

    #[test]
    fn no_two_routes_share_path_and_method() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.pattern == b.pattern && a.verb == b.verb),
                    "{} {}",
                    a.verb.as_str(),
                    a.pattern
                );
            }
        }
    }
}
