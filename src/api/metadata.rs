//! Read-only metadata endpoints: `/json/v1/*` (overview, branches, latest,
//! package-index proxies, per-profile documents) and
//! `/api/v1/revision/{version}/{target}/{subtarget}`.
//!
//! Shapes follow the reference (asu/main.py, asu/routers/api.py), except
//! where docs/compatibility.md says otherwise: disabled or empty branches
//! never break overview or branches, per-profile documents resolve board
//! names, versions sort numerically.

use crate::api::response::Response;
use crate::config::{self, Branch, Config};
use crate::upstream::{Freshness, Upstream, UpstreamError, Versions, packages, versions};
use serde_json::{Map, Value, json};

const PREFIX: &str = "/json/v1/";

/// Everything under `/json/v1/`; `None` when the path names no endpoint (the
/// router answers 404). `path` is the request path without the query.
pub fn route_json(config: &Config, upstream: &Upstream, path: &str) -> Option<Response> {
    let rest = path.strip_prefix(PREFIX)?;
    match rest {
        "overview.json" => return Some(overview_json(config, upstream)),
        "branches.json" => return Some(branches_json(config, upstream)),
        "latest.json" => return Some(latest_json(config, upstream)),
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

/// `/json/v1/overview.json`.
pub fn overview_json(config: &Config, upstream: &Upstream) -> Response {
    let versions = match upstream.versions() {
        Ok(v) => v,
        Err(e) => return upstream_error(&e),
    };
    let branches: Map<String, Value> = branch_objects(config, upstream, &versions)
        .into_iter()
        .collect();
    ok(json!({
        "latest": versions.latest,
        "branches": branches,
        "upstream_url": config.upstream_url,
        "server": {
            "version": env!("CARGO_PKG_VERSION"),
            "contact": "mail@aparcar.org",
            "allow_defaults": config.allow_defaults,
            "repository_allow_list": config.repository_allow_list,
            "max_custom_rootfs_size_mb": config.max_custom_rootfs_size_mb,
            "max_defaults_length": config.max_defaults_length,
        },
    }))
}

/// `/json/v1/branches.json`: the branch objects as a list.
pub fn branches_json(config: &Config, upstream: &Upstream) -> Response {
    match upstream.versions() {
        Ok(versions) => ok(Value::Array(
            branch_objects(config, upstream, &versions)
                .into_iter()
                .map(|(_, b)| b)
                .collect(),
        )),
        Err(e) => upstream_error(&e),
    }
}

/// `/json/v1/latest.json`.
pub fn latest_json(_config: &Config, upstream: &Upstream) -> Response {
    match upstream.versions() {
        Ok(versions) => ok(json!({ "latest": versions.latest })),
        Err(e) => upstream_error(&e),
    }
}

/// Branch objects in the reference's order (snapshots first, then releases
/// newest first), each with its versions and its first version's targets.
fn branch_objects(config: &Config, upstream: &Upstream, all: &Versions) -> Vec<(String, Value)> {
    let mut names: Vec<&String> = config.branches.keys().collect();
    names.sort_by(|a, b| versions::cmp_versions(b, a));
    names
        .into_iter()
        .map(|name| {
            let branch = &config.branches[name];
            let mine: Vec<String> = all
                .versions
                .iter()
                .filter(|v| config::branch_name(&config.branches, v) == *name)
                .cloned()
                .collect();
            let targets = mine
                .first()
                .map(|newest| branch_targets(config, upstream, newest))
                .unwrap_or_default();
            (name.clone(), branch_object(name, branch, mine, targets))
        })
        .collect()
}

/// A branch's targets never fail the whole overview: without them the
/// branch is listed with `{}` (clients skip it).
fn branch_targets(config: &Config, upstream: &Upstream, version: &str) -> Map<String, Value> {
    let Some(path) = config::version_path(&config.branches, version) else {
        return Map::new();
    };
    match upstream.targets(&path) {
        Ok(t) => (*t).clone(),
        Err(e) => {
            log::warn!("targets of {version} unavailable: {e}");
            Map::new()
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
