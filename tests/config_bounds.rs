//! Every numeric configuration key has a range: values outside it are
//! refused with the one-line error naming key, value, origin and range,
//! both ends are accepted, nothing beyond overflows, and README's table and
//! `etc/config.yaml` state the same ranges as the loader enforces.

use asu_builder::config::{BOUNDS, Bound, Config, ConfigError, load_from};
use std::path::{Path, PathBuf};

fn env_var(key: &str) -> String {
    format!("ASU_{}", key.to_uppercase())
}

/// Other keys a value at the edge of `key`'s range needs to be loadable:
/// the body limit must hold the longest defaults script.
fn companions(key: &str) -> Vec<(String, String)> {
    match key {
        "max_defaults_length" => vec![("ASU_SERVER_MAX_BODY_BYTES".into(), "16777216".into())],
        "server_max_body_bytes" => vec![("ASU_MAX_DEFAULTS_LENGTH".into(), "0".into())],
        _ => Vec::new(),
    }
}

fn load_env(key: &str, value: &str) -> Result<Config, ConfigError> {
    let mut env = companions(key);
    env.push((env_var(key), value.to_string()));
    load_from(None, &env)
}

fn top_level() -> impl Iterator<Item = &'static Bound> {
    BOUNDS.iter().filter(|b| !b.key.starts_with("branches."))
}

/// The loaded value of `key`, read back through the effective config.
fn value_of(config: &Config, key: &str) -> u64 {
    serde_json::to_value(config).unwrap()[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a number"))
}

#[test]
fn both_ends_of_every_range_are_accepted() {
    for b in top_level() {
        for n in [b.min, b.max] {
            let c = load_env(b.key, &n.to_string())
                .unwrap_or_else(|e| panic!("{}={n} refused: {e}", b.key));
            assert_eq!(value_of(&c, b.key), n, "{}", b.key);
        }
    }
}

#[test]
fn values_outside_every_range_are_refused_with_one_line() {
    for b in top_level() {
        let mut outside = vec![
            (b.max + 1).to_string(),
            u64::MAX.to_string(),
            // Beyond u64: must not wrap or saturate into the range.
            "18446744073709551616".to_string(),
        ];
        if b.min > 0 {
            outside.push((b.min - 1).to_string());
        }
        for v in outside {
            let e = load_env(b.key, &v)
                .map(|_| ())
                .expect_err(&format!("{}={v} accepted", b.key));
            assert_eq!(
                e.to_string(),
                format!(
                    "config: {}: invalid value {v:?} from environment {}: expected an integer {}-{}",
                    b.key,
                    env_var(b.key),
                    b.min,
                    b.max
                )
            );
        }
    }
}

#[test]
fn the_file_is_held_to_the_same_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    for b in top_level() {
        std::fs::write(&path, format!("{}: {}\n", b.key, b.max + 1)).unwrap();
        let e = load_from(Some(&path), &companions(b.key)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "config: {}: invalid value {} in {}: expected an integer {}-{}",
                b.key,
                b.max + 1,
                path.display(),
                b.min,
                b.max
            )
        );
    }
    std::fs::write(
        &path,
        "branches:\n  \"24.10\":\n    branch_off_rev: 4294967296\n",
    )
    .unwrap();
    let e = load_from(Some(&path), &[]).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "config: branches.24.10.branch_off_rev: invalid value 4294967296 in {}: \
             expected an integer 0-4294967295",
            path.display()
        )
    );
    std::fs::write(
        &path,
        "branches:\n  \"24.10\":\n    branch_off_rev: 4294967295\n",
    )
    .unwrap();
    let c = load_from(Some(&path), &[]).unwrap();
    assert_eq!(c.branches["24.10"].branch_off_rev, Some(4_294_967_295));
}

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

#[test]
fn readme_states_every_range() {
    let readme = std::fs::read_to_string(shipped("README.md")).unwrap();
    for b in BOUNDS {
        let range = format!("{}-{}", b.min, b.max);
        let row_key = match b.key.split_once(".*.") {
            Some((table, _)) => table,
            None => b.key,
        };
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{row_key}` |")))
            .unwrap_or_else(|| panic!("README has no row for {row_key}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // | key | default | range | meaning |
        assert!(
            cells[3].contains(&range),
            "README gives {row_key} the range {:?}, the loader {range}",
            cells[3]
        );
    }
}

/// `# some_key: value`, an example setting rather than prose.
fn is_commented_key(line: &str) -> bool {
    let text = line.trim_start_matches('#').trim_start();
    text.split_once(':').is_some_and(|(k, _)| {
        !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    })
}

#[test]
fn the_example_config_states_every_range_next_to_its_key() {
    let text = std::fs::read_to_string(shipped("etc/config.yaml")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for b in BOUNDS {
        let range = format!("{}-{}", b.min, b.max);
        let field = b.key.rsplit('.').next().unwrap();
        let at = lines
            .iter()
            .position(|l| {
                let l = l.trim_start_matches('#').trim_start();
                l.starts_with(&format!("{field}:"))
            })
            .unwrap_or_else(|| panic!("the example does not show {field}"));
        // The key's own line, or the comment block right above it.
        let mut block = vec![lines[at]];
        block.extend(
            lines[..at]
                .iter()
                .rev()
                .take_while(|l| l.starts_with('#') && !is_commented_key(l))
                .copied(),
        );
        assert!(
            block.iter().any(|l| l.contains(&range)),
            "no {range} next to {field} in the example: {block:?}"
        );
    }
}

#[test]
fn a_huge_pending_limit_no_longer_wraps() {
    // 2^63 used to become negative in SQLite and refuse every POST; it is
    // refused at start-up instead, by name.
    let e = load_env("max_pending_jobs", "9223372036854775808").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("config: max_pending_jobs: invalid value"),
        "{e}"
    );
}
