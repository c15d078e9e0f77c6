//! The request hash must equal the reference server's for every vector, so
//! existing stores and clients keep working.

use asu_builder::hash::request_hash;
use asu_builder::models::{Limits, parse_build_request, sanitize_profile};
use serde_json::Value;

const LIMITS: Limits = Limits {
    max_defaults_length: 20480,
    max_custom_rootfs_size_mb: 1024,
};

fn hash_of(body: &str) -> String {
    let mut req = parse_build_request(body.as_bytes(), LIMITS).expect("vector parses");
    req.profile = sanitize_profile(&req.profile);
    request_hash(&req)
}

#[test]
fn shared_vectors_match() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/request-hash-vectors.json"
    ))
    .unwrap();
    let vectors: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert!(vectors.len() >= 8);
    for v in vectors {
        let body = serde_json::to_string(&v["request"]).unwrap();
        assert_eq!(
            hash_of(&body),
            v["request_hash"].as_str().unwrap(),
            "{body}"
        );
    }
}

#[test]
fn reference_api_vectors_match() {
    let base = r#""version":"1.2.3","target":"testtarget/testsubtarget","profile":"testprofile","packages":["test1","zzz","test2","aaa"]"#;
    let t = hash_of(&format!("{{{base},\"diff_packages\":true}}"));
    assert!(t.starts_with("1c4a79c6") && t.ends_with("fbc"), "{t}");
    let f = hash_of(&format!("{{{base},\"diff_packages\":false}}"));
    assert!(f.starts_with("c5a849e0") && f.ends_with("7b7"), "{f}");
}

#[test]
fn lenient_fields_hash_like_unset() {
    let plain = hash_of(r#"{"version":"1.2.3","target":"a/b","profile":"p"}"#);
    assert_eq!(
        hash_of(
            r#"{"version":"1.2.3","target":"a/b","profile":"p","filesystem":"btrfs","rootfs_size_mb":"","defaults":""}"#
        ),
        plain
    );
}
