//! Read-only metadata endpoints: `/json/v1/*` (overview, branches, latest,
//! package-index proxies, per-profile documents) and
//! `/api/v1/revision/{version}/{target}/{subtarget}`.
//!
//! Shapes follow the reference (asu/main.py, asu/routers/api.py), except
//! where docs/compatibility.md says otherwise: disabled or empty branches
//! never break overview or branches, per-profile documents resolve board
//! names, versions sort numerically.

use crate::api::response::{Body, Response};
use crate::config::{self, Branch, Config};
use crate::upstream::{Freshness, Upstream, UpstreamError, Versions, packages, versions};
use serde_json::{Map, Value, json};
use std::hash::Hasher;
use std::sync::{Arc, Mutex};

const PREFIX: &str = "/json/v1/";

/// Everything under `/json/v1/`; `None` when the path names no endpoint (the
/// router answers 404). `path` is the request path without the query.
pub fn route_json(
    config: &Config,
    upstream: &Upstream,
    docs: &BranchDocs,
    path: &str,
) -> Option<Response> {
    let rest = path.strip_prefix(PREFIX)?;
    match rest {
        "overview.json" => return Some(docs.answer(config, upstream, |d| &d.overview)),
        "branches.json" => return Some(docs.answer(config, upstream, |d| &d.branches)),
        "latest.json" => return Some(docs.answer(config, upstream, |d| &d.latest)),
        _ => {}
    }
    if !safe_path(rest) {
        return None;
    }
    // Same precedence as the reference's route order.
    if let Some(dir) = rest.strip_suffix("/index.json") {
        return Some(target_index_json(config, upstream, dir));
    }
    if let Some(stem) = rest.strip_suffix("-index.json") {
        let (dir, arch) = stem.rsplit_once('/')?;
        if arch.is_empty() {
            return None;
        }
        return Some(arch_index_json(config, upstream, dir, arch));
    }
    let stem = rest.strip_suffix(".json")?;
    let (before, profile) = stem.rsplit_once('/')?;
    let (version_path, target) = before.rsplit_once("/targets/")?;
    if profile.is_empty() || target.is_empty() || version_path.is_empty() {
        return None;
    }
    Some(profile_json(
        config,
        upstream,
        version_path,
        target,
        profile,
    ))
}

/// Client-chosen paths are appended to the upstream URL: only plain
/// segments, so nothing escapes the mirror tree or smuggles a query.
fn safe_path(path: &str) -> bool {
    !path.is_empty()
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._,+~-".contains(&b))
        })
}

fn upstream_error(err: &UpstreamError) -> Response {
    Response::error(err.http_status(), &err.to_string())
}

fn ok(value: Value) -> Response {
    Response::json(200, &value)
}

/// `overview.json`, `branches.json` and `latest.json`, rendered once per
/// state of what they show and served as shared bytes until that changes:
/// clients fetch them on every page load and poll, and rendering them
/// (every branch's targets) cost more than all the rest of the request.
///
/// Their inputs are the parsed versions and targets, which the upstream
/// cache hands out as the same `Arc` until upstream changes, and the
/// configuration they show (fingerprinted, so a reloaded configuration
/// re-renders them).
#[derive(Default)]
pub struct BranchDocs {
    last: Mutex<Option<Arc<Rendered>>>,
}

pub struct Rendered {
    versions: Arc<Versions>,
    targets: Vec<Option<Arc<Map<String, Value>>>>,
    config: u64,
    overview: Arc<[u8]>,
    branches: Arc<[u8]>,
    latest: Arc<[u8]>,
}

impl BranchDocs {
    fn answer(
        &self,
        config: &Config,
        upstream: &Upstream,
        which: impl Fn(&Rendered) -> &Arc<[u8]>,
    ) -> Response {
        match self.current(config, upstream) {
            Ok(docs) => Response {
                status: 200,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: Body::Shared(Arc::clone(which(&docs))),
            },
            Err(e) => upstream_error(&e),
        }
    }

    fn current(
        &self,
        config: &Config,
        upstream: &Upstream,
    ) -> Result<Arc<Rendered>, UpstreamError> {
        let versions = upstream.versions()?;
        let branches = branch_versions(config, &versions);
        let targets: Vec<Option<Arc<Map<String, Value>>>> = branches
            .iter()
            .map(|(_, mine)| {
                mine.first()
                    .and_then(|v| branch_targets(config, upstream, v))
            })
            .collect();
        let fingerprint = config_fingerprint(config);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(docs) = last.as_ref()
            && Arc::ptr_eq(&docs.versions, &versions)
            && docs.config == fingerprint
            && docs.targets.len() == targets.len()
            && docs
                .targets
                .iter()
                .zip(&targets)
                .all(|(a, b)| match (a, b) {
                    // A missing targets file is a fresh empty map each time.
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b) || (a.is_empty() && b.is_empty()),
                    (None, None) => true,
                    _ => false,
                })
        {
            return Ok(Arc::clone(docs));
        }
        let docs = Arc::new(render(config, versions, branches, targets, fingerprint));
        *last = Some(Arc::clone(&docs));
        Ok(docs)
    }
}

fn render(
    config: &Config,
    versions: Arc<Versions>,
    branches: Vec<(String, Vec<String>)>,
    targets: Vec<Option<Arc<Map<String, Value>>>>,
    fingerprint: u64,
) -> Rendered {
    let objects: Vec<(String, Value)> = branches
        .into_iter()
        .zip(&targets)
        .map(|((name, mine), targets)| {
            let branch = &config.branches[&name];
            let targets = targets.as_deref().cloned().unwrap_or_default();
            let object = branch_object(&name, branch, mine, targets);
            (name, object)
        })
        .collect();
    let latest = json!({ "latest": versions.latest });
    let overview = json!({
        "latest": versions.latest,
        "branches": objects.iter().cloned().collect::<Map<String, Value>>(),
        "upstream_url": config.upstream_url,
        "server": {
            "version": env!("CARGO_PKG_VERSION"),
            "contact": "mail@aparcar.org",
            "allow_defaults": config.allow_defaults,
            "repository_allow_list": config.repository_allow_list,
            "max_custom_rootfs_size_mb": config.max_custom_rootfs_size_mb,
            "max_defaults_length": config.max_defaults_length,
        },
    });
    let list = Value::Array(objects.into_iter().map(|(_, b)| b).collect());
    let bytes = |v: &Value| Arc::from(serde_json::to_vec(v).unwrap_or_default());
    Rendered {
        overview: bytes(&overview),
        branches: bytes(&list),
        latest: bytes(&latest),
        versions,
        targets,
        config: fingerprint,
    }
}

/// A hash of what the branch documents show of the configuration.
fn config_fingerprint(config: &Config) -> u64 {
    struct HashWriter(std::collections::hash_map::DefaultHasher);
    impl std::io::Write for HashWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.write(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut h = HashWriter(Default::default());
    let shown = (
        &config.branches,
        &config.upstream_url,
        config.allow_defaults,
        &config.repository_allow_list,
        config.max_custom_rootfs_size_mb,
        config.max_defaults_length,
    );
    // Serializing plain config data cannot fail; if it did, the fingerprint
    // would only stay the same and the documents would not re-render.
    let _ = serde_json::to_writer(&mut h, &shown);
    h.0.finish()
}

/// Each branch in the reference's order (snapshots first, then releases
/// newest first) with its versions, newest first.
fn branch_versions(config: &Config, all: &Versions) -> Vec<(String, Vec<String>)> {
    let mut names: Vec<&String> = config.branches.keys().collect();
    names.sort_by(|a, b| versions::cmp_versions(b, a));
    names
        .into_iter()
        .map(|name| {
            let mine: Vec<String> = all
                .versions
                .iter()
                .filter(|v| config::branch_name(&config.branches, v) == *name)
                .cloned()
                .collect();
            (name.clone(), mine)
        })
        .collect()
}

/// A branch's targets never fail the whole overview: without them (`None`)
/// the branch is listed with `{}` (clients skip it).
fn branch_targets(
    config: &Config,
    upstream: &Upstream,
    version: &str,
) -> Option<Arc<Map<String, Value>>> {
    let path = config::version_path(&config.branches, version)?;
    match upstream.targets(&path) {
        Ok(t) => Some(t),
        Err(e) => {
            log::warn!("targets of {version} unavailable: {e}");
            None
        }
    }
}

fn branch_object(
    name: &str,
    branch: &Branch,
    versions: Vec<String>,
    targets: Map<String, Value>,
) -> Value {
    let mut o = Map::new();
    o.insert("path".into(), json!(branch.path));
    o.insert("enabled".into(), json!(branch.enabled));
    o.insert("snapshot".into(), json!(branch.snapshot));
    // auc still requires the key.
    o.insert("path_packages".into(), json!("DEPRECATED"));
    if let Some(rev) = branch.branch_off_rev {
        o.insert("branch_off_rev".into(), json!(rev));
    }
    o.insert("package_changes".into(), json!(branch.package_changes));
    o.insert("versions".into(), json!(versions));
    o.insert("name".into(), json!(name));
    o.insert("targets".into(), Value::Object(targets));
    Value::Object(o)
}

/// `GET /api/v1/revision/{version}/{target}/{subtarget}`: the revision of
/// the current upstream build, from its profiles.json `version_code`.
pub fn revision(
    config: &Config,
    upstream: &Upstream,
    version: &str,
    target: &str,
    subtarget: &str,
) -> Response {
    let Some(version_path) = config::version_path(&config.branches, version) else {
        return Response::error(400, &format!("Unsupported version: {version}"));
    };
    let failed = |status: u16| {
        Response::error(
            status,
            &format!("Failed to fetch revision for {version}/{target}/{subtarget}"),
        )
    };
    if !safe_path(&version_path) || !safe_path(target) || !safe_path(subtarget) {
        return failed(404);
    }
    match upstream.profiles(&version_path, &format!("{target}/{subtarget}")) {
        Ok(Some(idx)) => match idx.version_code() {
            Some(code) => ok(json!({ "revision": code })),
            None => failed(502),
        },
        Ok(None) => failed(404),
        // Like the reference, pass upstream's own status through.
        Err(UpstreamError::Http { status, .. }) => failed(status),
        Err(e) => failed(e.http_status()),
    }
}

/// `/json/v1/{dir}/index.json` (dir like `snapshots/targets/ath79/generic`):
/// `{architecture, packages}` of the target's packages, with the kmods of
/// the running kernel merged in for post-split releases.
pub fn target_index_json(_config: &Config, upstream: &Upstream, dir: &str) -> Response {
    let mut index = match upstream.package_index(&format!("{dir}/packages")) {
        Ok(i) => i,
        Err(e) => return upstream_error(&e),
    };
    if packages::is_post_kmod_split(dir) {
        let kernel = match upstream.get(&format!("{dir}/profiles.json"), Freshness::Cached) {
            Ok(doc) if doc.found => doc
                .parsed(crate::upstream::ProfilesIndex::parse)
                .ok()
                .and_then(|p| p.kernel_dir()),
            Ok(_) => None,
            Err(e) => return upstream_error(&e),
        };
        if let Some(kernel) = kernel {
            let kmods = match upstream.package_index(&format!("{dir}/kmods/{kernel}")) {
                Ok(k) => k,
                Err(e) => return upstream_error(&e),
            };
            if let Some(Value::Object(extra)) = kmods.get("packages") {
                let slot = index
                    .entry("packages")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(pkgs) = slot {
                    for (k, v) in extra {
                        pkgs.insert(k.clone(), v.clone());
                    }
                }
            }
        }
    }
    ok(Value::Object(index))
}

/// `/json/v1/{dir}/{arch}-index.json` (dir like `releases/24.10.0/packages`):
/// a flat `{name: version}` over every feed in `{dir}/{arch}/feeds.conf`.
pub fn arch_index_json(_config: &Config, upstream: &Upstream, dir: &str, arch: &str) -> Response {
    let feed_dir = format!("{dir}/{arch}");
    let feeds = match upstream.feeds(&feed_dir) {
        Ok(f) => f,
        Err(e) => return upstream_error(&e),
    };
    let mut merged = Map::new();
    for feed in feeds.iter().filter(|f| safe_path(f)) {
        match upstream.package_index(&format!("{feed_dir}/{feed}")) {
            Ok(index) => {
                if let Some(Value::Object(pkgs)) = index.get("packages") {
                    for (k, v) in pkgs {
                        merged.insert(k.clone(), v.clone());
                    }
                }
            }
            Err(e) => return upstream_error(&e),
        }
    }
    ok(Value::Object(merged))
}

/// `/json/v1/{version_path}/targets/{target}/{profile}.json`: profiles.json
/// metadata merged with one profile, plus `id` and `build_at`. Board names
/// (`,` or `_`) resolve through `supported_devices` (the reference answers
/// `{}` for them; docs/compatibility.md); unknown profiles give `{}` with
/// 200, like the reference.
pub fn profile_json(
    _config: &Config,
    upstream: &Upstream,
    version_path: &str,
    target: &str,
    profile: &str,
) -> Response {
    let lookup = |f| {
        upstream
            .profiles_with(version_path, target, f)
            .map(|idx| idx.and_then(|i| i.resolve(profile).map(|id| (i.clone(), id.to_owned()))))
    };
    let found = match lookup(Freshness::Cached) {
        Ok(Some(hit)) => Some(hit),
        Ok(None) => match lookup(Freshness::Recheck) {
            Ok(hit) => hit,
            Err(e) => return upstream_error(&e),
        },
        Err(e) => return upstream_error(&e),
    };
    let doc = found
        .and_then(|(idx, id)| idx.profile_document(&id))
        .unwrap_or_default();
    ok(Value::Object(doc))
}

#[cfg(test)]
mod tests {
    use super::safe_path;

    #[test]
    fn client_paths_are_plain_segments() {
        assert!(safe_path("releases/24.10.0/targets/ath79/generic"));
        assert!(safe_path("snapshots/packages/aarch64_cortex-a53"));
        assert!(!safe_path(""));
        assert!(!safe_path("releases/../../etc"));
        assert!(!safe_path("releases//x"));
        assert!(!safe_path("releases/x?y=1"));
        assert!(!safe_path("releases/%2e%2e"));
        assert!(!safe_path("releases/a b"));
    }
}
