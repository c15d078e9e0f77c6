//! A property test of the build-request parser: random JSON documents with
//! the request's keys (every type, sizes up to past each bound) and byte
//! mutations of valid bodies. Whatever comes in, the parser never panics,
//! an accepted request respects every bound, and a 422 answer stays small.

mod common;

use asu_builder::models::bounds::*;
use asu_builder::models::{Limits, parse_build_request};
use common::rng::Rng;
use serde_json::{Map, Value, json};

const CASES: usize = 3_000;

/// The server's default body limit: bigger bodies never reach the parser.
const MAX_BODY: usize = 256 * 1024;

const LIMITS: Limits = Limits {
    max_defaults_length: 20480,
    max_custom_rootfs_size_mb: 1024,
};

const KEYS: &[&str] = &[
    "distro",
    "version",
    "version_code",
    "target",
    "profile",
    "packages",
    "packages_versions",
    "diff_packages",
    "defaults",
    "rootfs_size_mb",
    "filesystem",
    "repositories",
    "repositories_mode",
    "repository_keys",
    "client",
    "unknown",
];

fn string(rng: &mut Rng) -> String {
    let pieces = [
        "a",
        "vim",
        "1.2.3",
        "x86/64",
        "+luci",
        "a b",
        "é",
        "\u{0301}",
        ".",
        "-",
        ",",
        "/",
        "~",
        "https://x/y",
        "\\",
        "\"",
        "\0",
        "ü",
        "💥",
        "_",
    ];
    let n = match rng.below(40) {
        0 => rng.below(3000),
        1..=4 => rng.below(200),
        _ => rng.below(12),
    };
    (0..n).map(|_| *rng.pick(&pieces)).collect()
}

fn value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 2 { 6 } else { 9 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(50)),
        2 => json!(rng.next_u64() as i64),
        3 => json!((rng.next_u64() % 10_000) as f64 / 7.0),
        4 | 5 => Value::String(string(rng)),
        6 => {
            // Long lists only at the top, of scalars: nesting stays small.
            let n = match rng.below(8) {
                0 if depth == 0 => rng.below(1100),
                _ => rng.below(8),
            };
            Value::Array((0..n).map(|_| value(rng, depth + 2)).collect())
        }
        7 => {
            let n = match rng.below(8) {
                0 if depth == 0 => rng.below(1100),
                _ => rng.below(8),
            };
            let mut m = Map::new();
            for _ in 0..n {
                m.insert(string(rng), value(rng, depth + 2));
            }
            Value::Object(m)
        }
        // Past the list bounds, with names that look real.
        _ => Value::Array(
            (0..rng.below(1200))
                .map(|i| Value::String(format!("pkg-{i}")))
                .collect(),
        ),
    }
}

fn document(rng: &mut Rng) -> Vec<u8> {
    let mut obj = Map::new();
    obj.insert("version".into(), json!("1.2.3"));
    obj.insert("target".into(), json!("a/b"));
    obj.insert("profile".into(), json!("p"));
    for _ in 0..rng.below(6) {
        let key = *rng.pick(KEYS);
        obj.insert(key.into(), value(rng, 0));
    }
    let mut bytes = serde_json::to_vec(&Value::Object(obj)).unwrap();
    if rng.chance(30) && !bytes.is_empty() {
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len());
            match rng.below(3) {
                0 => bytes[at] = rng.byte(),
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, *rng.pick(b"{}[]\",:\\0")),
            }
        }
    }
    bytes
}

#[test]
fn any_body_parses_within_bounds_or_gets_a_small_422() {
    let mut rng = Rng::new(0xbad_1dea);
    let (mut accepted, mut refused) = (0, 0);
    let mut largest_422 = 0;
    for case in 0..CASES {
        let body = document(&mut rng);
        if body.len() > MAX_BODY {
            continue;
        }
        match parse_build_request(&body, LIMITS) {
            Ok(r) => {
                accepted += 1;
                assert!(r.packages.len() <= MAX_PACKAGES, "case {case}");
                assert!(
                    r.packages_versions.len() <= MAX_PACKAGE_VERSIONS,
                    "case {case}"
                );
                assert!(r.repositories.len() <= MAX_REPOSITORIES, "case {case}");
                assert!(
                    r.repository_keys.len() <= MAX_REPOSITORY_KEYS,
                    "case {case}"
                );
                for name in [
                    &r.version,
                    &r.target,
                    &r.profile,
                    &r.distro,
                    &r.version_code,
                ]
                .into_iter()
                .chain(&r.packages)
                {
                    assert!(name.chars().count() <= MAX_NAME_CHARS, "case {case}");
                }
                assert!(
                    r.defaults
                        .as_ref()
                        .is_none_or(|d| d.chars().count() <= LIMITS.max_defaults_length),
                    "case {case}"
                );
            }
            Err(e) => {
                refused += 1;
                assert!(e.errors.len() <= MAX_LISTED_ERRORS, "case {case}");
                assert!(!e.errors.is_empty(), "case {case}: a 422 without a reason");
                let size = serde_json::to_vec(&e.body()).unwrap().len();
                largest_422 = largest_422.max(size);
                assert!(size <= 8 * 1024, "case {case}: a {size}-byte 422");
            }
        }
    }
    eprintln!(
        "[measure] {CASES} bodies: {accepted} accepted, {refused} refused, largest 422 {largest_422} bytes"
    );
    assert!(
        accepted > CASES / 20,
        "the generator hardly ever makes a valid body"
    );
    assert!(refused > CASES / 20);
}
