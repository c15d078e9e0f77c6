//! Configuration loading: precedence, validation errors, branches merge,
//! and the `--check-config` rendering.

use asu_builder::config::*;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

fn write(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Loads `yaml` from a temp file with `vars`; returns the file path too so
/// error tests can check that it is named.
fn load_yaml(yaml: &str, vars: &[(&str, &str)]) -> (Result<Config, ConfigError>, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "config.yaml", yaml);
    (load_from(Some(&path), &env(vars)), path)
}

fn err_of(yaml: &str, vars: &[(&str, &str)]) -> (String, PathBuf) {
    let (res, path) = load_yaml(yaml, vars);
    let err = res.expect_err("config should be rejected");
    let text = err.to_string();
    assert!(!text.contains('\n'), "error must be one line: {text:?}");
    assert!(text.starts_with("config: "), "{text}");
    (text, path)
}

fn env_err(vars: &[(&str, &str)]) -> String {
    let err = load_from(None, &env(vars)).expect_err("env should be rejected");
    let text = err.to_string();
    assert!(!text.contains('\n'), "error must be one line: {text:?}");
    text
}

// ---------------------------------------------------------------- precedence

#[test]
fn no_file_no_env_gives_defaults() {
    let c = load_from(None, &[]).unwrap();
    let d = Config::default();
    assert_eq!(render_effective(&c), render_effective(&d));
    assert_eq!(c.server_port, 8080);
    assert_eq!(c.store_path, Path::new("./public/store"));
}

#[test]
fn file_overrides_defaults_and_env_overrides_file() {
    let yaml = "server_port: 9000\nworker_concurrent: 2\nlog_level: debug\n\
                upstream_url: https://mirror.example/openwrt/\nallow_defaults: false\n\
                worker_id: file-worker\n";
    let (c, _) = load_yaml(
        yaml,
        &[
            ("ASU_SERVER_PORT", "9100"),
            ("ASU_ALLOW_DEFAULTS", "yes"),
            ("ASU_WORKER_POLL_SECONDS", "9"),
        ],
    );
    let c = c.unwrap();
    // env beats file
    assert_eq!(c.server_port, 9100);
    assert!(c.allow_defaults);
    // file beats default
    assert_eq!(c.worker_concurrent, 2);
    assert_eq!(c.log_level, "debug");
    assert_eq!(c.worker_id, "file-worker");
    // trailing slash dropped so `{upstream_url}/{path}` joins cleanly
    assert_eq!(c.upstream_url, "https://mirror.example/openwrt");
    // env beats default
    assert_eq!(c.worker_poll_seconds, 9);
    // untouched keys keep their defaults
    assert_eq!(c.max_pending_jobs, 200);
    assert_eq!(c.container_network, "asu-build");
}

#[test]
fn env_without_asu_prefix_is_ignored() {
    let c = load_from(None, &env(&[("SERVER_PORT", "1"), ("PATH", "/bin")])).unwrap();
    assert_eq!(c.server_port, 8080);
}

#[test]
fn env_bools_accept_common_spellings() {
    for (text, want) in [
        ("true", true),
        ("1", true),
        ("YES", true),
        ("false", false),
        ("0", false),
        ("No", false),
    ] {
        let c = load_from(None, &env(&[("ASU_ALLOW_DEFAULTS", text)])).unwrap();
        assert_eq!(c.allow_defaults, want, "{text}");
    }
    let e = env_err(&[("ASU_ALLOW_DEFAULTS", "maybe")]);
    assert!(
        e.contains("allow_defaults") && e.contains("ASU_ALLOW_DEFAULTS"),
        "{e}"
    );
}

#[test]
fn env_lists_are_comma_separated() {
    let c = load_from(
        None,
        &env(&[(
            "ASU_REPOSITORY_ALLOW_LIST",
            "https://a.example/feed/, http://b.example/x ,",
        )]),
    )
    .unwrap();
    assert_eq!(
        c.repository_allow_list,
        vec!["https://a.example/feed/", "http://b.example/x"]
    );
    let c = load_from(None, &env(&[("ASU_REPOSITORY_ALLOW_LIST", "")])).unwrap();
    assert!(c.repository_allow_list.is_empty());
}

#[test]
fn env_overrides_file_list() {
    let (c, _) = load_yaml(
        "repository_allow_list:\n  - https://file.example/\n",
        &[("ASU_REPOSITORY_ALLOW_LIST", "https://env.example/")],
    );
    assert_eq!(
        c.unwrap().repository_allow_list,
        vec!["https://env.example/"]
    );
}

#[test]
fn log_level_is_case_insensitive_and_normalised() {
    let c = load_from(None, &env(&[("ASU_LOG_LEVEL", "WARN")])).unwrap();
    assert_eq!(c.log_level, "warn");
}

#[test]
fn public_path_moves_the_store_unless_store_path_is_set() {
    let (c, _) = load_yaml("public_path: /srv/asu/public\n", &[]);
    assert_eq!(c.unwrap().store_path, Path::new("/srv/asu/public/store"));

    let c = load_from(None, &env(&[("ASU_PUBLIC_PATH", "pub")])).unwrap();
    assert_eq!(c.public_path, Path::new("pub"));
    assert_eq!(c.store_path, Path::new("pub/store"));

    let (c, _) = load_yaml(
        "public_path: /srv/public\nstore_path: /mnt/store\n",
        &[("ASU_PUBLIC_PATH", "/other")],
    );
    let c = c.unwrap();
    assert_eq!(c.public_path, Path::new("/other"));
    assert_eq!(c.store_path, Path::new("/mnt/store"));
}

#[test]
fn relative_paths_stay_as_given() {
    let (c, _) = load_yaml(
        "database_path: data/x.db\ncontainer_socket_path: ./data/podman/podman.sock\n",
        &[],
    );
    let c = c.unwrap();
    assert_eq!(c.database_path, Path::new("data/x.db"));
    assert_eq!(
        c.container_socket_path,
        Path::new("./data/podman/podman.sock")
    );
}

#[test]
fn json_file_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "config.json",
        r#"{"server_port": 8181, "repository_allow_list": ["https://x.example/"],
            "branches": {"24.10": {"enabled": false}}}"#,
    );
    let c = load_from(Some(&path), &[]).unwrap();
    assert_eq!(c.server_port, 8181);
    assert_eq!(c.repository_allow_list, vec!["https://x.example/"]);
    assert!(!c.branches["24.10"].enabled);
}

#[test]
fn empty_file_means_defaults() {
    let (c, _) = load_yaml("# only a comment\n", &[]);
    assert_eq!(c.unwrap().server_port, 8080);
}

// ----------------------------------------------------------------- rejections

#[test]
fn unknown_key_names_key_and_file() {
    let (e, path) = err_of("server_port: 8080\nbogus: 1\n", &[]);
    assert_eq!(
        e,
        format!("config: unknown key \"bogus\" in {}", path.display())
    );
}

#[test]
fn unknown_env_key_names_variable() {
    let e = env_err(&[("ASU_SERVER_PROT", "1")]);
    assert!(e.contains("\"server_prot\""), "{e}");
    assert!(e.contains("ASU_SERVER_PROT"), "{e}");
}

#[test]
fn wrong_type_in_file_is_rejected() {
    let (e, path) = err_of("server_port: \"8080\"\n", &[]);
    assert!(e.contains("server_port"), "{e}");
    assert!(e.contains(&path.display().to_string()), "{e}");

    let (e, _) = err_of("worker_concurrent: [1, 2]\n", &[]);
    assert!(
        e.contains("worker_concurrent") && e.contains("[1,2]"),
        "{e}"
    );

    let (e, _) = err_of("worker_id: 7\n", &[]);
    assert!(
        e.contains("worker_id") && e.contains("expected a string"),
        "{e}"
    );

    let (e, _) = err_of("repository_allow_list: https://a.example/\n", &[]);
    assert!(e.contains("repository_allow_list"), "{e}");

    let (e, _) = err_of("allow_defaults: sometimes\n", &[]);
    assert!(e.contains("allow_defaults"), "{e}");

    let (e, _) = err_of("job_timeout_seconds: 1.5\n", &[]);
    assert!(e.contains("job_timeout_seconds"), "{e}");
}

#[test]
fn port_zero_is_rejected() {
    let (e, path) = err_of("server_port: 0\n", &[]);
    assert_eq!(
        e,
        format!(
            "config: server_port: invalid value 0 in {}: expected an integer 1-65535",
            path.display()
        )
    );
    let (e, _) = err_of("server_port: 65536\n", &[]);
    assert!(e.contains("server_port"), "{e}");
}

#[test]
fn env_port_abc_names_key_and_variable() {
    let e = env_err(&[("ASU_SERVER_PORT", "abc")]);
    assert_eq!(
        e,
        "config: server_port: invalid value \"abc\" from environment ASU_SERVER_PORT: \
         expected an integer 1-65535"
    );
    let e = env_err(&[("ASU_SERVER_PORT", "+80")]);
    assert!(e.contains("server_port"), "{e}");
}

#[test]
fn env_error_wins_over_valid_file() {
    // The file is fine; the env var is what must be blamed.
    let (res, _) = load_yaml("server_port: 9000\n", &[("ASU_SERVER_PORT", "0")]);
    let e = res.unwrap_err().to_string();
    assert!(e.contains("from environment ASU_SERVER_PORT"), "{e}");
}

#[test]
fn zero_counts_are_rejected() {
    for key in [
        "worker_concurrent",
        "server_threads",
        "max_pending_jobs",
        "job_timeout_seconds",
        "worker_poll_seconds",
    ] {
        let (e, _) = err_of(&format!("{key}: 0\n"), &[]);
        assert!(
            e.starts_with(&format!("config: {key}: invalid value 0 in ")),
            "{e}"
        );
        let var = format!("ASU_{}", key.to_uppercase());
        let e = env_err(&[(&var, "0")]);
        assert!(e.contains(&var), "{e}");
    }
}

#[test]
fn upstream_url_must_be_http() {
    for bad in [
        "ftp://downloads.openwrt.org",
        "downloads.openwrt.org",
        "http://",
        "",
    ] {
        let e = env_err(&[("ASU_UPSTREAM_URL", bad)]);
        assert!(
            e.starts_with("config: upstream_url: invalid value"),
            "{bad}: {e}"
        );
        assert!(e.contains("ASU_UPSTREAM_URL"), "{e}");
    }
    let (e, _) = err_of("upstream_url: file:///etc\n", &[]);
    assert!(e.contains("upstream_url") && e.contains("http(s)"), "{e}");
}

#[test]
fn bad_log_level_is_rejected() {
    let (e, path) = err_of("log_level: verbose\n", &[]);
    assert_eq!(
        e,
        format!(
            "config: log_level: invalid value \"verbose\" in {}: \
             expected one of error, warn, info, debug, trace",
            path.display()
        )
    );
}

#[test]
fn bad_allow_list_entry_is_rejected() {
    let (e, _) = err_of(
        "repository_allow_list:\n  - https://ok.example/\n  - ftp://bad.example/\n",
        &[],
    );
    assert!(e.contains("repository_allow_list"), "{e}");
    assert!(e.contains("ftp://bad.example/"), "{e}");

    let e = env_err(&[("ASU_REPOSITORY_ALLOW_LIST", "https://ok.example,not a url")]);
    assert!(
        e.contains("repository_allow_list") && e.contains("\"not a url\""),
        "{e}"
    );
}

#[test]
fn other_impossible_values_are_rejected() {
    let cases = [
        ("worker_id: \"\"\n", "worker_id"),
        ("cors_allow_origin: \"\"\n", "cors_allow_origin"),
        ("cors_allow_origin: \"a\\r\\nX: y\"\n", "cors_allow_origin"),
        ("container_runtime: docker\n", "container_runtime"),
        ("container_network: \"../x\"\n", "container_network"),
        ("package_changes_url: gopher://x\n", "package_changes_url"),
        ("cache_url: nope\n", "cache_url"),
        ("database_path: \"\"\n", "database_path"),
        ("build_ttl_seconds: -1\n", "build_ttl_seconds"),
        ("server_threads: 100000\n", "server_threads"),
    ];
    for (yaml, key) in cases {
        let (e, _) = err_of(yaml, &[]);
        assert!(e.starts_with(&format!("config: {key}: ")), "{yaml}: {e}");
    }
    // Empty disables these two; it is not an error.
    let (c, _) = load_yaml("package_changes_url: \"\"\ncache_url: \"\"\n", &[]);
    assert!(c.is_ok());
}

#[test]
fn build_key_path_is_unset_by_default_and_set_like_any_path() {
    assert_eq!(Config::default().build_key_path, None);
    let (c, _) = load_yaml("build_key_path: /etc/asu-builder/key-build\n", &[]);
    assert_eq!(
        c.unwrap().build_key_path.as_deref(),
        Some(Path::new("/etc/asu-builder/key-build"))
    );
    // Unset again: null or empty, in the file or the environment.
    for yaml in [
        "build_key_path: null\n",
        "build_key_path: \"\"\n",
        "build_key_path:\n",
    ] {
        assert_eq!(
            load_yaml(yaml, &[]).0.unwrap().build_key_path,
            None,
            "{yaml}"
        );
    }
    let (c, _) = load_yaml("build_key_path: /a/key\n", &[("ASU_BUILD_KEY_PATH", "")]);
    assert_eq!(c.unwrap().build_key_path, None);
    let c = load_from(None, &env(&[("ASU_BUILD_KEY_PATH", "./key-build")])).unwrap();
    assert_eq!(c.build_key_path.as_deref(), Some(Path::new("./key-build")));
    let (e, _) = err_of("build_key_path: 12\n", &[]);
    assert!(e.contains("build_key_path"), "{e}");
}

#[test]
fn branches_from_env_are_refused_with_reason() {
    let e = env_err(&[("ASU_BRANCHES", "{}")]);
    assert!(e.contains("branches"), "{e}");
    assert!(e.contains("ASU_BRANCHES"), "{e}");
    assert!(e.contains("config file"), "{e}");
}

#[test]
fn explicit_missing_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.yaml");
    let e = load(Some(&missing)).unwrap_err().to_string();
    assert!(e.contains("absent.yaml"), "{e}");
}

#[test]
fn explicit_file_reports_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "c.yaml", "server_port: 8099\n");
    // The process env of the test runner has no ASU_* variables.
    let (c, source) = load(Some(&path)).unwrap();
    assert_eq!(c.server_port, 8099);
    assert_eq!(source, ConfigSource::File(path.clone()));
    assert_eq!(source.file(), Some(path.as_path()));
}

#[test]
fn syntax_errors_name_the_file_on_one_line() {
    let (e, path) = err_of("server_port: [8080\nlog_level: info\n", &[]);
    assert!(e.contains(&path.display().to_string()), "{e}");
    let (e, _) = err_of("- a\n- b\n", &[]);
    assert!(e.contains("mapping"), "{e}");
    let (e, _) = err_of("server_port: 1\nserver_port: 2\n", &[]);
    assert!(e.contains("server_port"), "{e}");
}

// ------------------------------------------------------------------- branches

#[test]
fn branches_merge_over_builtin_table() {
    let yaml = r#"
branches:
  24.10:
    enabled: false
  "26.01":
    path: releases/{version}
    branch_off_rev: 30000
"#;
    let (c, _) = load_yaml(yaml, &[]);
    let c = c.unwrap();
    let builtin = default_branches();

    // The unquoted key 24.10 stays "24.10" (not the float 24.1), and only
    // the overridden field changes.
    let b = &c.branches["24.10"];
    assert!(!b.enabled);
    assert_eq!(b.path, builtin["24.10"].path);
    assert_eq!(b.branch_off_rev, Some(27990));
    assert_eq!(b.package_changes, builtin["24.10"].package_changes);
    assert!(!c.branches.contains_key("24.1"));

    // New branch: defaults filled in, package changes up to its fork point.
    let n = &c.branches["26.01"];
    assert_eq!(n.path, "releases/{version}");
    assert!(n.enabled);
    assert!(!n.snapshot);
    assert_eq!(n.branch_off_rev, Some(30000));
    assert!(!n.package_changes.is_empty());
    assert!(n.package_changes.iter().all(|p| p.revision <= 30000));

    // Built-ins not mentioned are kept unchanged.
    for name in ["SNAPSHOT", "25.12", "23.05", "22.03", "21.02"] {
        assert_eq!(c.branches[name], builtin[name], "{name}");
    }
    assert_eq!(c.branches.len(), builtin.len() + 1);
}

#[test]
fn branch_entry_can_replace_package_changes() {
    let yaml = r#"
branches:
  SNAPSHOT:
    package_changes:
      - {source: a, target: b, revision: 5}
      - {target: gone, revision: 6, mandatory: true}
"#;
    let (c, _) = load_yaml(yaml, &[]);
    let s = &c.unwrap().branches["SNAPSHOT"];
    assert_eq!(s.package_changes.len(), 2);
    assert_eq!(s.package_changes[1].target.as_deref(), Some("gone"));
    assert_eq!(s.package_changes[1].mandatory, Some(true));
    assert!(s.snapshot);
}

#[test]
fn branch_errors_name_the_branch_field() {
    let (e, path) = err_of("branches:\n  \"30.01\":\n    enabled: true\n", &[]);
    assert!(e.contains("branches.30.01.path"), "{e}");
    assert!(e.contains(&path.display().to_string()), "{e}");

    let (e, _) = err_of("branches:\n  24.10:\n    colour: blue\n", &[]);
    assert!(e.contains("unknown key \"branches.24.10.colour\""), "{e}");

    let (e, _) = err_of("branches:\n  24.10:\n    enabled: perhaps\n", &[]);
    assert!(e.starts_with("config: branches.24.10.enabled: "), "{e}");

    let (e, _) = err_of("branches:\n  24.10:\n    branch_off_rev: -3\n", &[]);
    assert!(
        e.starts_with("config: branches.24.10.branch_off_rev: "),
        "{e}"
    );

    let (e, _) = err_of(
        "branches:\n  24.10:\n    package_changes: [{revision: 1}]\n",
        &[],
    );
    assert!(
        e.starts_with("config: branches.24.10.package_changes: "),
        "{e}"
    );

    let (e, _) = err_of(
        "branches:\n  24.10:\n    package_changes: [{source: a, revision: 1, x: 2}]\n",
        &[],
    );
    assert!(
        e.starts_with("config: branches.24.10.package_changes: "),
        "{e}"
    );

    let (e, _) = err_of("branches: [24.10]\n", &[]);
    assert!(e.starts_with("config: branches: "), "{e}");

    let (e, _) = err_of("branches:\n  24.10: true\n", &[]);
    assert!(e.starts_with("config: branches.24.10: "), "{e}");
}

// ------------------------------------------------------------------ rendering

#[test]
fn render_effective_round_trips() {
    let yaml = r#"
server_port: 8181
public_path: /srv/pub
repository_allow_list: ["https://a.example/", "http://b.example"]
log_level: TRACE
cors_allow_origin: "https://luci.example"
build_key_path: /srv/keys/key-build
branches:
  24.10: {enabled: false}
  "26.01": {path: "releases/{version}", branch_off_rev: 30000}
"#;
    let (c, _) = load_yaml(yaml, &[("ASU_WORKER_ID", "w2")]);
    let c = c.unwrap();
    let rendered = render_effective(&c);

    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "effective.yaml", &rendered);
    let back = load_from(Some(&path), &[]).unwrap_or_else(|e| panic!("{e}\n{rendered}"));
    assert_eq!(render_effective(&back), rendered);
    assert_eq!(back.server_port, 8181);
    assert_eq!(back.store_path, Path::new("/srv/pub/store"));
    assert_eq!(back.log_level, "trace");
    assert_eq!(back.repository_allow_list, c.repository_allow_list);
    assert_eq!(back.branches, c.branches);
    assert_eq!(back.server_threads, c.server_threads);
    assert_eq!(back.build_key_path, c.build_key_path);
}

#[test]
fn render_effective_of_defaults_round_trips() {
    let d = Config::default();
    let rendered = render_effective(&d);
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "d.yaml", &rendered);
    let back = load_from(Some(&path), &[]).unwrap_or_else(|e| panic!("{e}\n{rendered}"));
    assert_eq!(render_effective(&back), rendered);
    assert_eq!(back.branches, default_branches());
}

// ------------------------------------------------------------- shipped files

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("etc").join(name)
}

#[test]
fn production_config_is_the_defaults_with_state_under_var_lib() {
    let c = load_from(Some(&shipped("config.yaml")), &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.database_path,
        Path::new("/var/lib/asu-builder/builder.db")
    );
    assert_eq!(c.public_path, Path::new("/var/lib/asu-builder/public"));
    assert_eq!(c.store_path, Path::new("/var/lib/asu-builder/public/store"));
    // Everything else documents the defaults; it must not drift from them.
    let expected = Config {
        database_path: c.database_path.clone(),
        public_path: c.public_path.clone(),
        store_path: c.store_path.clone(),
        ..Config::default()
    };
    assert_eq!(render_effective(&c), render_effective(&expected));
    // Every key is there, set or (for the few without a fixed default)
    // commented out.
    let text = std::fs::read_to_string(shipped("config.yaml")).unwrap();
    let keys = serde_json::to_value(Config::default()).unwrap();
    for key in keys.as_object().unwrap().keys() {
        assert!(
            text.lines().any(|l| {
                let l = l.trim_start_matches('#').trim_start();
                l.starts_with(&format!("{key}:"))
            }),
            "{key} is not in etc/config.yaml"
        );
    }
}

#[test]
fn development_config_loads() {
    let c = load_from(Some(&shipped("asu-builder.yaml")), &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.server_port, 8080);
    assert_eq!(c.worker_concurrent, 4);
    assert_eq!(c.upstream_url, "https://downloads.openwrt.org");
    assert_eq!(
        c.container_socket_path,
        Path::new("./data/podman/podman.sock")
    );
    assert!(c.database_path.starts_with("./data"));
    assert!(c.store_path.starts_with("./public"));
}
