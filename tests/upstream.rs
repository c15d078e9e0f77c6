//! Upstream metadata: fetching, caching (memory + SQLite), single-flight,
//! stale-on-error, request validation texts, and the `/json/v1` and
//! revision endpoints — all against a real HTTP fake of downloads.openwrt.org.

#[path = "common/fake_upstream.rs"]
mod fake_upstream;
#[path = "common/testapp.rs"]
#[allow(dead_code)]
mod testapp;

use asu_builder::api::metadata;
use asu_builder::api::response::{Body, Response};
use asu_builder::config::Config;
use asu_builder::models::BuildRequest;
use asu_builder::upstream::{Freshness, Upstream, UpstreamError, UpstreamOptions};
use asu_builder::validate::{ValidationError, check_request, validate_request};
use fake_upstream::FakeUpstream;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::Duration;
use tempfile::TempDir;

const VERSIONS: &str = ".versions.json";
const T123: &str = "releases/1.2.3/.targets.json";
const P123: &str = "releases/1.2.3/targets/testtarget/testsubtarget/profiles.json";

/// Default config plus the `1.2` branch the fixtures use (as the reference
/// tests add it).
fn test_config(url: &str) -> Config {
    let mut c = Config {
        upstream_url: url.to_owned(),
        ..Config::default()
    };
    c.branches.insert("1.2".into(), testapp::test_branch());
    c
}

struct Env {
    fake: FakeUpstream,
    _dir: TempDir,
    db: PathBuf,
    config: Arc<Config>,
    up: Upstream,
    docs: metadata::BranchDocs,
}

impl Env {
    fn new() -> Env {
        Env::with(|_| {}, UpstreamOptions::default())
    }

    fn with(tweak: impl FnOnce(&mut Config), options: UpstreamOptions) -> Env {
        let fake = FakeUpstream::start_fixtures();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("data/builder.db");
        asu_builder::db::open_and_migrate(&db).unwrap();
        let mut config = test_config(fake.url());
        tweak(&mut config);
        let config = Arc::new(config);
        let up = Upstream::with_options(Arc::clone(&config), Some(&db), options).unwrap();
        Env {
            fake,
            _dir: dir,
            db,
            config,
            up,
            docs: metadata::BranchDocs::default(),
        }
    }

    /// Adds release 1.2.4 to the fake's `.versions.json`; returns the file.
    fn fake_versions_with_new_release(&self) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/upstream/{VERSIONS}",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        v["versions_list"]
            .as_array_mut()
            .unwrap()
            .insert(0, json!("1.2.4"));
        let body = serde_json::to_vec(&v).unwrap();
        self.fake.set_file(VERSIONS, body.clone());
        body
    }

    fn reopen(&self) -> Upstream {
        Upstream::new(Arc::clone(&self.config), &self.db).unwrap()
    }

    fn validate(&self, req: &mut BuildRequest) -> Result<(), ValidationError> {
        check_request(&self.config, &self.up, req)
    }

    fn json(&self, path: &str) -> (u16, Value) {
        body_json(self.route(path))
    }

    fn route(&self, path: &str) -> Response {
        metadata::route_json(&self.config, &self.up, &self.docs, path)
            .unwrap_or_else(|| panic!("{path} is not routed"))
    }
}

fn body_json(resp: Response) -> (u16, Value) {
    assert_eq!(resp.header("Content-Type"), Some("application/json"));
    let bytes = match resp.body {
        Body::Bytes(b) => b,
        Body::Shared(b) => b.to_vec(),
        _ => panic!("expected a byte body"),
    };
    (resp.status, serde_json::from_slice(&bytes).unwrap())
}

fn request(version: &str, target: &str, profile: &str) -> BuildRequest {
    BuildRequest {
        version: version.into(),
        target: target.into(),
        profile: profile.into(),
        packages: vec!["test1".into(), "test2".into()],
        ..BuildRequest::default()
    }
}

fn invalid(detail: &str) -> Result<(), ValidationError> {
    Err(ValidationError::Invalid(detail.to_owned()))
}

// ---- fetching and caching ----

#[test]
fn versions_are_fetched_once_then_served_from_memory() {
    let env = Env::new();
    let v = env.up.versions().unwrap();
    assert_eq!(v.latest, ["24.10.0-rc6", "23.05.5", "22.03.7"]);
    assert!(v.contains("1.2.3"));
    env.up.versions().unwrap();
    assert_eq!(env.fake.hits(VERSIONS), 1);
    assert_eq!(env.up.fetch_count_for(VERSIONS), 1);
}

#[test]
fn persisted_cache_survives_a_new_upstream_on_the_same_db() {
    let env = Env::new();
    env.validate(&mut request(
        "1.2.3",
        "testtarget/testsubtarget",
        "testprofile",
    ))
    .unwrap();
    let total = env.fake.total_hits();
    assert_eq!(total, 3);

    let again = env.reopen();
    assert!(again.versions().unwrap().contains("1.2.3"));
    let mut req = request("1.2.3", "testtarget/testsubtarget", "testprofile");
    validate_request(&env.config, &again, &mut req).unwrap();
    assert_eq!(req.profile, "testprofile");
    assert_eq!(env.fake.total_hits(), total, "served from metadata_cache");
    assert_eq!(again.fetch_count(), 0);
}

#[test]
fn twenty_concurrent_validations_fetch_each_file_once() {
    let env = Env::new();
    env.fake.set_delay(Duration::from_millis(300));
    let env = Arc::new(env);
    let workers: Vec<_> = (0..20)
        .map(|_| {
            let env = Arc::clone(&env);
            thread::spawn(move || {
                let mut req = request("1.2.3", "testtarget/testsubtarget", "testprofile");
                env.validate(&mut req).map(|_| req.profile)
            })
        })
        .collect();
    for w in workers {
        assert_eq!(w.join().unwrap().unwrap(), "testprofile");
    }
    assert_eq!(env.fake.hits(VERSIONS), 1);
    assert_eq!(env.fake.hits(T123), 1);
    assert_eq!(env.fake.hits(P123), 1);
}

fn expiring() -> UpstreamOptions {
    UpstreamOptions {
        versions_ttl: Duration::ZERO,
        snapshot_ttl: Duration::ZERO,
        release_ttl: Duration::ZERO,
        error_backoff: Duration::from_secs(60),
        ..UpstreamOptions::default()
    }
}

#[test]
fn stale_copy_is_served_when_upstream_fails() {
    // Everything expires at once, so every call after the first wants a refetch.
    let env = Env::with(|_| {}, expiring());
    let (status, before) = env.json("/json/v1/overview.json");
    assert_eq!(status, 200);
    env.validate(&mut request(
        "1.2.3",
        "testtarget/testsubtarget",
        "testprofile",
    ))
    .unwrap();
    env.fake.set_failing(true);
    let (status, after) = env.json("/json/v1/overview.json");
    assert_eq!(status, 200);
    assert_eq!(after, before);
    let hits = env.fake.total_hits();
    let mut req = request("1.2.3", "testtarget/testsubtarget", "testprofile");
    env.validate(&mut req).unwrap();
    assert_eq!(req.profile, "testprofile");
    let (status, _) = env.json("/json/v1/latest.json");
    assert_eq!(status, 200);
    // profiles.json was asked once (failed → stale copy); everything the
    // failing overview already tried is inside its back-off and not asked.
    assert_eq!(env.fake.hits(P123), 2);
    assert_eq!(env.fake.total_hits(), hits + 1);
}

#[test]
fn unchanged_files_are_revalidated_with_etags() {
    let env = Env::with(|_| {}, expiring());
    env.up.versions().unwrap();
    env.up.versions().unwrap();
    assert_eq!(env.fake.hits(VERSIONS), 2);
    assert_eq!(env.fake.not_modified_count(), 1);
    assert!(env.up.versions().unwrap().contains("23.05.5"));
}

#[test]
fn failure_without_a_copy_is_a_clear_upstream_error() {
    let env = Env::new();
    env.fake.set_failing(true);
    let (status, body) = env.json("/json/v1/overview.json");
    assert_eq!(status, 502);
    assert_eq!(body["status"], 502);
    assert!(body["detail"].as_str().unwrap().contains("503"));
    let err = env
        .validate(&mut request(
            "1.2.3",
            "testtarget/testsubtarget",
            "testprofile",
        ))
        .unwrap_err();
    assert!(matches!(
        err,
        ValidationError::Upstream(UpstreamError::Http { status: 503, .. })
    ));
    assert_eq!(err.status(), 502);
    assert_eq!(Response::from(&err).status, 502);
}

#[test]
fn slow_upstream_times_out_with_504() {
    let env = Env::with(
        |_| {},
        UpstreamOptions {
            request_timeout: Duration::from_millis(300),
            ..UpstreamOptions::default()
        },
    );
    // Upstream does not answer until the test says so: only the client's
    // own deadline can end the call (a 200 would mean it waited).
    env.fake.hold(VERSIONS);
    let (status, body) = env.json("/json/v1/latest.json");
    assert_eq!(status, 504, "{body}");
    assert!(env.fake.is_holding(VERSIONS), "upstream never answered");
    env.fake.release(VERSIONS);
}

#[test]
fn a_slow_url_does_not_block_other_urls() {
    const SLOW: &str = "snapshots/.targets.json";
    let env = Arc::new(Env::new());
    env.fake.hold(SLOW);
    let slow = {
        let env = Arc::clone(&env);
        thread::spawn(move || env.up.targets("snapshots").map(|t| t.len()))
    };
    // The slow request is in flight before the others start.
    assert!(
        env.fake.wait_held(SLOW, 1, Duration::from_secs(30)),
        "the slow request never reached upstream"
    );
    env.up.versions().unwrap();
    env.up.targets("releases/1.2.3").unwrap();
    // Both were answered while the slow one was still waiting upstream.
    assert!(env.fake.is_holding(SLOW));
    env.fake.release(SLOW);
    assert_eq!(slow.join().unwrap().unwrap(), 1);
}

#[test]
fn a_miss_rechecks_upstream_once_the_copy_is_old_enough() {
    let env = Env::with(
        |_| {},
        UpstreamOptions {
            recheck_after: Duration::ZERO,
            ..UpstreamOptions::default()
        },
    );
    env.validate(&mut request(
        "1.2.3",
        "testtarget/testsubtarget",
        "testprofile",
    ))
    .unwrap();
    env.fake.set_file(
        VERSIONS,
        r#"{"stable_version": "1.2.4", "versions_list": ["1.2.3", "1.2.4"]}"#,
    );
    env.fake.set_file(
        "releases/1.2.4/.targets.json",
        r#"{"testtarget/testsubtarget": "testarch"}"#,
    );
    env.fake.set_file(
        "releases/1.2.4/targets/testtarget/testsubtarget/profiles.json",
        std::fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/upstream")
                .join(P123),
        )
        .unwrap(),
    );
    // A known version does not cause a refetch …
    env.validate(&mut request(
        "1.2.3",
        "testtarget/testsubtarget",
        "testprofile",
    ))
    .unwrap();
    assert_eq!(env.fake.hits(VERSIONS), 1);
    // … an unknown one does, and then it is accepted.
    env.validate(&mut request(
        "1.2.4",
        "testtarget/testsubtarget",
        "testprofile",
    ))
    .unwrap();
    assert_eq!(env.fake.hits(VERSIONS), 2);
}

#[test]
fn a_fresh_copy_is_not_refetched_for_junk() {
    let env = Env::new();
    for _ in 0..5 {
        assert!(
            env.validate(&mut request("1.2.3", "testtarget/nope", "testprofile"))
                .is_err()
        );
        assert!(
            env.validate(&mut request("1.2.3", "testtarget/testsubtarget", "nope"))
                .is_err()
        );
    }
    assert_eq!(env.fake.hits(T123), 1);
    assert_eq!(env.fake.hits(P123), 1);
}

// ---- validation: reference texts, in reference order ----

#[test]
fn defaults_need_permission() {
    let env = Env::with(|c| c.allow_defaults = false, UpstreamOptions::default());
    let mut req = request("1.2.3", "testtarget/testsubtarget", "testprofile");
    req.defaults = Some("echo".into());
    assert_eq!(
        env.validate(&mut req),
        invalid("Handling `defaults` not enabled on server")
    );
    assert_eq!(env.fake.total_hits(), 0, "rejected before any fetch");
    req.defaults = Some(String::new());
    env.validate(&mut req).unwrap();

    let allowed = Env::new();
    let mut req = request("1.2.3", "testtarget/testsubtarget", "testprofile");
    req.defaults = Some("echo".into());
    allowed.validate(&mut req).unwrap();
}

#[test]
fn repositories_must_be_on_the_allow_list() {
    let env = Env::with(
        |c| c.repository_allow_list = vec!["https://allowed.example.com/".into()],
        UpstreamOptions::default(),
    );
    let mut req = request("1.2.3", "testtarget/testsubtarget", "testprofile");
    req.repositories
        .insert("ok".into(), json!("https://allowed.example.com/feed"));
    req.repositories.insert(
        "bad".into(),
        json!("https://allowed.example.com.evil.com/feed"),
    );
    assert_eq!(
        env.validate(&mut req),
        invalid("Repository not allowed: https://allowed.example.com.evil.com/feed")
    );
    req.repositories.shift_remove("bad");
    env.validate(&mut req).unwrap();

    let closed = Env::new();
    let mut req = request("1.2.3", "testtarget/testsubtarget", "testprofile");
    req.repositories
        .insert("x".into(), json!("https://downloads.openwrt.org/x"));
    assert_eq!(
        closed.validate(&mut req),
        invalid("Repository not allowed: https://downloads.openwrt.org/x")
    );
}

#[test]
fn distro_branch_and_version_texts() {
    let env = Env::with(
        |c| c.branches.get_mut("21.02").unwrap().enabled = false,
        UpstreamOptions::default(),
    );
    let mut req = request("1.2.3", "testtarget/testsubtarget", "testprofile");
    req.distro = "Foobar".into();
    assert_eq!(
        env.validate(&mut req),
        invalid("Unsupported distro: Foobar")
    );

    for v in ["10.10.10", "99.99.99"] {
        assert_eq!(
            env.validate(&mut request(v, "testtarget/testsubtarget", "testprofile")),
            invalid(&format!("Unsupported branch: {v}"))
        );
    }
    // Configured branch, version unknown upstream.
    assert_eq!(
        env.validate(&mut request(
            "1.2.9",
            "testtarget/testsubtarget",
            "testprofile"
        )),
        invalid("Unsupported version: 1.2.9")
    );
    // A disabled branch has no versions.
    assert_eq!(
        env.validate(&mut request("21.02-SNAPSHOT", "x/y", "p")),
        invalid("Unsupported version: 21.02-SNAPSHOT")
    );
}

#[test]
fn validate_request_returns_the_detail_text() {
    let env = Env::new();
    let mut req = request("1.2.3", "testtarget/testsubtarget", "Foobar");
    assert_eq!(
        validate_request(&env.config, &env.up, &mut req),
        Err(
            "Unsupported profile: Foobar. The requested profile was either dropped or \
             never existed. Please check the forums for more information."
                .to_owned()
        )
    );
    let mut req = request("23.05.5", "ath79/generic", "8dev,carambola2");
    validate_request(&env.config, &env.up, &mut req).unwrap();
    assert_eq!(req.profile, "8dev_carambola2");
}

#[test]
fn target_and_profile_texts() {
    let env = Env::new();
    assert_eq!(
        env.validate(&mut request(
            "1.2.3",
            "testtarget/testsubtargetbad",
            "testvendor,testprofile"
        )),
        invalid(
            "Unsupported target: testtarget/testsubtargetbad. The requested target was \
             either dropped, is still being built or is not supported by the selected \
             version. Please check the forums or try again later."
        )
    );
    assert_eq!(
        env.validate(&mut request("1.2.3", "testtarget/testsubtarget", "Foobar")),
        invalid(
            "Unsupported profile: Foobar. The requested profile was either dropped or \
             never existed. Please check the forums for more information."
        )
    );
}

#[test]
fn aliases_and_generic_fallback_set_the_canonical_profile() {
    let env = Env::new();
    for alias in ["8dev,carambola2", "8dev_carambola2", "carambola2"] {
        let mut req = request("23.05.5", "ath79/generic", alias);
        env.validate(&mut req).unwrap();
        assert_eq!(req.profile, "8dev_carambola2", "{alias}");
    }
    let mut req = request(
        "23.05.5",
        "x86/64",
        "some_random_cpu_which_doesnt_exists_as_profile",
    );
    env.validate(&mut req).unwrap();
    assert_eq!(req.profile, "generic");

    let mut req = request("SNAPSHOT", "testtarget/testsubtarget", "whatever");
    env.validate(&mut req).unwrap();
    assert_eq!(req.profile, "generic");
}

#[test]
fn packages_are_normalised() {
    let env = Env::new();
    let mut req = request("1.2.3", "testtarget/testsubtarget", "testprofile");
    req.packages = vec!["+zzz".into(), "aaa".into(), "++x".into()];
    env.validate(&mut req).unwrap();
    assert_eq!(req.packages, ["zzz", "aaa", "+x"]);

    let mut req = request("1.2.3", "testtarget/testsubtarget", "testprofile");
    req.packages = vec!["ignored".into()];
    req.packages_versions.insert("+test1".into(), json!("1.0"));
    req.packages_versions.insert("test2".into(), json!("2.0"));
    env.validate(&mut req).unwrap();
    assert_eq!(req.packages, ["test1", "test2"]);
}

// ---- /json/v1 endpoints ----

fn shared(resp: Response) -> std::sync::Arc<[u8]> {
    match resp.body {
        Body::Shared(b) => b,
        _ => panic!("the branch documents are served as shared bytes"),
    }
}

#[test]
fn branch_documents_render_once_until_upstream_changes() {
    let env = Env::with(|_| {}, expiring());
    let first = shared(env.route("/json/v1/overview.json"));
    let again = shared(env.route("/json/v1/overview.json"));
    // Nothing changed upstream: the very same bytes, not a new rendering.
    assert!(std::sync::Arc::ptr_eq(&first, &again));
    let text = String::from_utf8(env.fake_versions_with_new_release()).unwrap();
    assert!(text.contains("1.2.4"));
    let changed = shared(env.route("/json/v1/overview.json"));
    assert!(!std::sync::Arc::ptr_eq(&first, &changed));
    let o: Value = serde_json::from_slice(&changed).unwrap();
    assert!(
        o["branches"]["1.2"]["versions"]
            .to_string()
            .contains("1.2.4"),
        "{o}"
    );
}

#[test]
fn overview_shape() {
    let env = Env::with(
        |c| {
            c.branches.get_mut("21.02").unwrap().enabled = false;
            c.repository_allow_list = vec!["https://example.com/".into()];
        },
        UpstreamOptions::default(),
    );
    let (status, o) = env.json("/json/v1/overview.json");
    assert_eq!(status, 200);
    let keys: Vec<&str> = o.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["latest", "branches", "upstream_url", "server"]);
    assert_eq!(o["latest"], json!(["24.10.0-rc6", "23.05.5", "22.03.7"]));
    assert_eq!(o["upstream_url"], env.fake.url());
    let server = o["server"].as_object().unwrap();
    let keys: Vec<&str> = server.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "version",
            "contact",
            "allow_defaults",
            "repository_allow_list",
            "max_custom_rootfs_size_mb",
            "max_defaults_length"
        ]
    );
    assert_eq!(
        server["repository_allow_list"],
        json!(["https://example.com/"])
    );
    assert_eq!(server["max_custom_rootfs_size_mb"], 1024);
    assert_eq!(server["max_defaults_length"], 20480);

    let branches = o["branches"].as_object().unwrap();
    let names: Vec<&str> = branches.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "SNAPSHOT", "25.12", "24.10", "23.05", "22.03", "21.02", "1.2"
        ]
    );

    let b = &branches["23.05"];
    let keys: Vec<&str> = b.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "path",
            "enabled",
            "snapshot",
            "path_packages",
            "branch_off_rev",
            "package_changes",
            "versions",
            "name",
            "targets"
        ]
    );
    assert_eq!(b["path"], "releases/{version}");
    assert_eq!(b["path_packages"], "DEPRECATED");
    assert_eq!(b["branch_off_rev"], 23069);
    assert_eq!(b["versions"], json!(["23.05.5", "23.05-SNAPSHOT"]));
    assert_eq!(b["targets"]["ath79/generic"], "mips_24kc");
    assert_eq!(
        b["package_changes"][0],
        json!({"source": "firewall", "target": "firewall4", "revision": 18611})
    );
    assert_eq!(
        b["package_changes"][1],
        json!({"source": "kmod-nft-nat6", "revision": 20282, "mandatory": true})
    );

    let snap = &branches["SNAPSHOT"];
    assert!(snap.get("branch_off_rev").is_none());
    assert_eq!(snap["versions"], json!(["SNAPSHOT"]));
    assert_eq!(
        snap["targets"],
        json!({"testtarget/testsubtarget": "testarch"})
    );
    assert_eq!(
        branches["24.10"]["versions"],
        json!(["24.10.0-rc6", "24.10-SNAPSHOT"])
    );
    assert_eq!(
        branches["1.2"]["targets"],
        json!({"testtarget/testsubtarget": "testarch"})
    );
    // A disabled branch is listed, empty, and breaks nothing
    // (docs/compatibility.md, "Branches that are disabled or empty").
    assert_eq!(branches["21.02"]["enabled"], false);
    assert_eq!(branches["21.02"]["versions"], json!([]));
    assert_eq!(branches["21.02"]["targets"], json!({}));
    // A branch whose newest version has no .targets.json upstream.
    assert_eq!(branches["22.03"]["targets"], json!({}));
}

#[test]
fn branches_is_a_list_of_the_overview_objects() {
    let env = Env::new();
    let (_, overview) = env.json("/json/v1/overview.json");
    let (status, list) = env.json("/json/v1/branches.json");
    assert_eq!(status, 200);
    let list = list.as_array().unwrap();
    let from_overview: Vec<&Value> = overview["branches"].as_object().unwrap().values().collect();
    assert_eq!(list.iter().collect::<Vec<_>>(), from_overview);
    assert!(list.iter().all(|b| b["path_packages"] == "DEPRECATED"));
}

#[test]
fn latest_is_newest_first() {
    let env = Env::new();
    env.fake.set_file(
        VERSIONS,
        r#"{"stable_version": "22.03.7", "oldstable_version": "21.02.7",
            "upcoming_version": "23.05.5", "versions_list": ["21.02.7", "22.03.7", "23.05.5"]}"#,
    );
    let (status, body) = env.json("/json/v1/latest.json");
    assert_eq!(status, 200);
    assert_eq!(body, json!({"latest": ["23.05.5", "22.03.7", "21.02.7"]}));
}

#[test]
fn revision_endpoint() {
    let env = Env::new();
    let (status, body) = body_json(metadata::revision(
        &env.config,
        &env.up,
        "23.05.5",
        "ath79",
        "generic",
    ));
    assert_eq!(
        (status, body),
        (200, json!({"revision": "r24106-10cc5fcd00"}))
    );

    let (status, body) = body_json(metadata::revision(
        &env.config,
        &env.up,
        "invalid-version",
        "ath79",
        "generic",
    ));
    assert_eq!(
        (status, body),
        (
            400,
            json!({"detail": "Unsupported version: invalid-version", "status": 400})
        )
    );

    let (status, body) = body_json(metadata::revision(
        &env.config,
        &env.up,
        "23.05.5",
        "nope",
        "none",
    ));
    assert_eq!(
        (status, body),
        (
            404,
            json!({"detail": "Failed to fetch revision for 23.05.5/nope/none", "status": 404})
        )
    );

    env.fake.set_fail_status(500);
    let (status, body) = body_json(metadata::revision(
        &env.config,
        &env.up,
        "SNAPSHOT",
        "ath79",
        "generic",
    ));
    assert_eq!(status, 500);
    assert_eq!(
        body["detail"],
        "Failed to fetch revision for SNAPSHOT/ath79/generic"
    );
}

#[test]
fn target_index_from_opkg_packages() {
    let env = Env::new();
    let (status, body) = env.json("/json/v1/snapshots/targets/testtarget/testsubtarget/index.json");
    assert_eq!(status, 200);
    assert_eq!(body["architecture"], "mips_mips32");
    assert_eq!(body["packages"]["base-files"], "214-r12467-5ea1b1ecd1");
    assert_eq!(body["packages"]["blockd"], "2020-01-21-deb745f8-1");
}

#[test]
fn target_index_v2_with_kmods_merged() {
    let env = Env::new();
    let dir = "snapshots/targets/ath79/generic";
    env.fake.set_file(
        &format!("{dir}/packages/index.json"),
        r#"{"version": 2, "architecture": "mips_24kc", "packages": {"base-files": "1", "kmod-old": "0"}}"#,
    );
    env.fake.set_file(
        &format!("{dir}/kmods/6.6.74-1-75d549fb5cfabb78b8a91bec585e5ecb/index.json"),
        r#"{"version": 2, "architecture": "mips_24kc", "packages": {"kmod-ath9k": "6.6.74-r1", "kmod-old": "1"}}"#,
    );
    let (status, body) = env.json(&format!("/json/v1/{dir}/index.json"));
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"architecture": "mips_24kc",
               "packages": {"base-files": "1", "kmod-old": "1", "kmod-ath9k": "6.6.74-r1"}})
    );
    assert_eq!(env.fake.hits(&format!("{dir}/packages/Packages")), 0);
}

#[test]
fn target_index_v1_json_without_packages_is_passed_through() {
    let env = Env::new();
    let dir = "releases/23.05.5/targets/x86/64";
    env.fake.set_file(
        &format!("{dir}/packages/index.json"),
        r#"{"architecture": "x86_64", "packages": {"libfoo1": "1.0"}}"#,
    );
    let (_, body) = env.json(&format!("/json/v1/{dir}/index.json"));
    assert_eq!(
        body,
        json!({"architecture": "x86_64", "packages": {"libfoo1": "1.0"}})
    );
    let (status, body) = env.json("/json/v1/releases/23.05.5/targets/nope/none/index.json");
    assert_eq!((status, body), (200, json!({})));
}

#[test]
fn arch_index_merges_feeds() {
    let env = Env::new();
    env.fake.set_file(
        "snapshots/packages/testarch/feeds.conf",
        "src-git base https://git.openwrt.org/openwrt/openwrt.git^abc\n\
         src-git luci https://git.openwrt.org/project/luci.git^def\n",
    );
    env.fake.set_file(
        "snapshots/packages/testarch/luci/index.json",
        r#"{"version": 2, "architecture": "testarch", "packages": {"luci": "25.1"}}"#,
    );
    let (status, body) = env.json("/json/v1/snapshots/packages/testarch-index.json");
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"base-files": "214-r12467-5ea1b1ecd1", "block-mount": "2020-01-21-deb745f8-1",
               "blockd": "2020-01-21-deb745f8-1", "luci": "25.1"})
    );
    let (_, empty) = env.json("/json/v1/releases/1.2.3/packages/none-index.json");
    assert_eq!(empty, json!({}));
}

#[test]
fn per_profile_json_resolves_board_names() {
    let env = Env::new();
    let base = "/json/v1/releases/23.05.5/targets/ath79/generic";
    let (status, doc) = env.json(&format!("{base}/8dev_carambola2.json"));
    assert_eq!(status, 200);
    assert_eq!(doc["id"], "8dev_carambola2");
    assert_eq!(doc["metadata_version"], 1);
    assert_eq!(doc["arch_packages"], "mips_24kc");
    assert_eq!(doc["target"], "ath79/generic");
    assert_eq!(doc["version_code"], "r24106-10cc5fcd00");
    assert_eq!(doc["build_at"], "2024-09-23T12:34:46.000000Z");
    assert!(doc.get("profiles").is_none());
    assert!(doc["images"].is_array());
    for alias in ["8dev,carambola2", "carambola2"] {
        let (_, aliased) = env.json(&format!("{base}/{alias}.json"));
        assert_eq!(aliased, doc, "{alias}");
    }
    let (status, unknown) = env.json(&format!("{base}/no_such_board.json"));
    assert_eq!((status, unknown), (200, json!({})));

    let (_, generic) = env.json("/json/v1/releases/23.05.5/targets/x86/64/any_board.json");
    assert_eq!(generic["id"], "generic");
    let (_, missing) = env.json("/json/v1/releases/9.9.9/targets/a/b/c.json");
    assert_eq!(missing, json!({}));
}

#[test]
fn unknown_or_unsafe_paths_are_not_routed() {
    let env = Env::new();
    for path in [
        "/json/v1/nothing",
        "/json/v1/",
        "/json/v1/index.json",
        "/json/v1/../secret/index.json",
        "/json/v1/releases/%2e%2e/index.json",
        "/api/v1/overview",
        "/json/v1/releases/1.2.3/profile.json",
    ] {
        assert!(
            metadata::route_json(&env.config, &env.up, &env.docs, path).is_none(),
            "{path}"
        );
    }
    assert_eq!(env.fake.total_hits(), 0);
}

#[test]
fn typed_accessors() {
    let env = Env::new();
    let targets = env.up.targets("releases/23.05.5").unwrap();
    assert_eq!(
        targets.keys().next().map(String::as_str),
        Some("kirkwood/generic")
    );
    assert!(env.up.targets("releases/9.9.9").unwrap().is_empty());
    let idx = env
        .up
        .profiles("releases/23.05.5", "ath79/generic")
        .unwrap()
        .unwrap();
    assert_eq!(idx.resolve("8dev,carambola2"), Some("8dev_carambola2"));
    assert!(env.up.profiles("releases/9.9.9", "a/b").unwrap().is_none());
    let doc = env.up.get(VERSIONS, Freshness::Cached).unwrap();
    assert!(doc.found);
}
