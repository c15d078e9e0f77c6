//! `/store` file serving: headers, HEAD, ranges, and every way out of the
//! store root we could think of.

use asu_builder::api::response::{Body, Response};
use asu_builder::api::store::serve_store;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// A public dir with `store/` inside, and a secret file next to the store.
struct Fixture {
    _dir: TempDir,
    store: PathBuf,
    outside: PathBuf,
}

const CONTENT: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir_all(store.join("bin1")).unwrap();
    std::fs::write(store.join("bin1/image.bin"), CONTENT).unwrap();
    let outside = dir.path().join("secret.txt");
    std::fs::write(&outside, b"top secret").unwrap();
    Fixture {
        _dir: dir,
        store,
        outside,
    }
}

fn get(store: &Path, path: &str) -> Response {
    serve_store(store, path, None)
}

/// The bytes the response would send.
fn body_bytes(resp: Response) -> Vec<u8> {
    match resp.body {
        Body::Empty => Vec::new(),
        Body::Bytes(b) => b,
        Body::Shared(b) => b.to_vec(),
        Body::Static(b) => b.to_vec(),
        Body::File {
            mut file,
            offset,
            len,
        } => {
            file.seek(SeekFrom::Start(offset)).unwrap();
            let mut out = Vec::new();
            file.take(len).read_to_end(&mut out).unwrap();
            assert_eq!(out.len() as u64, len, "file shorter than announced");
            out
        }
    }
}

fn assert_not_found(resp: Response, what: &str) {
    assert_eq!(resp.status, 404, "{what}");
    assert!(!matches!(resp.body, Body::File { .. }), "{what}");
    let body: serde_json::Value = serde_json::from_slice(&body_bytes(resp)).unwrap();
    assert_eq!(body, serde_json::json!({"detail": "Not found"}), "{what}");
}

#[test]
fn serves_a_file_with_download_headers() {
    let f = fixture();
    let resp = get(&f.store, "bin1/image.bin");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        resp.header("Content-Length"),
        Some(CONTENT.len().to_string().as_str())
    );
    assert_eq!(
        resp.header("Content-Disposition"),
        Some("attachment; filename=\"image.bin\"")
    );
    assert_eq!(resp.header("X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(resp.header("Accept-Ranges"), Some("bytes"));
    let lm = resp.header("Last-Modified").expect("Last-Modified");
    assert!(lm.ends_with(" GMT") && lm.len() == 29, "{lm}");
    assert!(resp.header("Content-Range").is_none());
    assert!(matches!(resp.body, Body::File { offset: 0, .. }));
    assert_eq!(body_bytes(resp), CONTENT);
}

#[test]
fn ranges_return_the_right_slice() {
    let f = fixture();
    let total = CONTENT.len();
    let cases: [(&str, usize, usize); 5] = [
        ("bytes=0-9", 0, 9),
        ("bytes=30-", 30, total - 1),
        ("bytes=-6", total - 6, total - 1),
        ("bytes=20-1000", 20, total - 1),
        ("bytes=-1000", 0, total - 1),
    ];
    for (range, start, end) in cases {
        let resp = serve_store(&f.store, "bin1/image.bin", Some(range));
        assert_eq!(resp.status, 206, "{range}");
        assert_eq!(
            resp.header("Content-Range"),
            Some(format!("bytes {start}-{end}/{total}").as_str()),
            "{range}"
        );
        assert_eq!(
            resp.header("Content-Length"),
            Some((end - start + 1).to_string().as_str()),
            "{range}"
        );
        assert_eq!(body_bytes(resp), &CONTENT[start..=end], "{range}");
    }
}

#[test]
fn unsatisfiable_range_is_416() {
    let f = fixture();
    for range in ["bytes=36-", "bytes=100-200", "bytes=-0"] {
        let resp = serve_store(&f.store, "bin1/image.bin", Some(range));
        assert_eq!(resp.status, 416, "{range}");
        assert_eq!(resp.header("Content-Range"), Some("bytes */36"), "{range}");
        assert!(matches!(resp.body, Body::Empty), "{range}");
    }
}

#[test]
fn malformed_or_multiple_ranges_send_the_whole_file() {
    let f = fixture();
    for range in [
        "bytes=0-1,4-5",
        "bytes=5-2",
        "bytes=x-y",
        "lines=1-2",
        "garbage",
    ] {
        let resp = serve_store(&f.store, "bin1/image.bin", Some(range));
        assert_eq!(resp.status, 200, "{range}");
        assert!(resp.header("Content-Range").is_none(), "{range}");
        assert_eq!(body_bytes(resp), CONTENT, "{range}");
    }
}

#[test]
fn traversal_attempts_are_404() {
    let f = fixture();
    // secret.txt sits right next to the store directory.
    assert!(f.outside.exists());
    for path in [
        "../secret.txt",
        "bin1/../../secret.txt",
        "%2e%2e/secret.txt",
        "%2E%2E%2Fsecret.txt",
        "..%2fsecret.txt",
        "..%2Fsecret.txt",
        "bin1/%2e%2e/%2e%2e/secret.txt",
        "..\\secret.txt",
        "..%5csecret.txt",
        "bin1%2f..%2f..%2fsecret.txt",
        "%2fetc%2fpasswd",
        "/etc/passwd",
        "bin1/image.bin%00.txt",
        "%252e%252e/secret.txt",
        "%252e%252e%252fsecret.txt",
        "",
        "bin1/..",
    ] {
        assert_not_found(get(&f.store, path), path);
    }
}

#[test]
fn double_encoding_is_decoded_only_once() {
    let f = fixture();
    // A directory literally named "%2e%2e" inside the store: the
    // double-encoded request must find it, not the parent directory.
    let literal = f.store.join("%2e%2e");
    std::fs::create_dir(&literal).unwrap();
    std::fs::write(literal.join("secret.txt"), b"inside").unwrap();
    let resp = get(&f.store, "%252e%252e/secret.txt");
    assert_eq!(resp.status, 200);
    assert_eq!(body_bytes(resp), b"inside");
}

#[test]
fn symlink_leading_outside_is_404() {
    let f = fixture();
    std::os::unix::fs::symlink(&f.outside, f.store.join("bin1/escape")).unwrap();
    std::os::unix::fs::symlink(f.outside.parent().unwrap(), f.store.join("updir")).unwrap();
    assert_not_found(get(&f.store, "bin1/escape"), "file symlink");
    assert_not_found(get(&f.store, "updir/secret.txt"), "dir symlink");
}

#[test]
fn symlink_inside_the_store_is_served() {
    let f = fixture();
    std::os::unix::fs::symlink(f.store.join("bin1/image.bin"), f.store.join("latest.bin")).unwrap();
    let resp = get(&f.store, "latest.bin");
    assert_eq!(resp.status, 200);
    // The canonical target's name is what the client saves.
    assert_eq!(
        resp.header("Content-Disposition"),
        Some("attachment; filename=\"image.bin\"")
    );
    assert_eq!(body_bytes(resp), CONTENT);
}

#[test]
fn store_root_reached_through_a_symlink_still_works() {
    let f = fixture();
    let link = f.store.parent().unwrap().join("store-link");
    std::os::unix::fs::symlink(&f.store, &link).unwrap();
    assert_eq!(get(&link, "bin1/image.bin").status, 200);
    assert_not_found(get(&link, "../secret.txt"), "via link root");
}

#[test]
fn directories_and_missing_files_are_404() {
    let f = fixture();
    assert_not_found(get(&f.store, "bin1"), "dir");
    assert_not_found(get(&f.store, "bin1/"), "dir with slash");
    assert_not_found(get(&f.store, "."), "root");
    assert_not_found(get(&f.store, "bin1/missing.bin"), "missing");
    assert_not_found(get(&f.store, "nobin/image.bin"), "missing dir");
    // A store root that does not exist yet.
    assert_not_found(
        get(&f.store.join("not-there"), "bin1/image.bin"),
        "absent root",
    );
}

#[test]
fn sibling_directory_with_common_prefix_is_outside() {
    let f = fixture();
    // /tmp/x/store-evil starts with the string "/tmp/x/store" but is not in it.
    let evil = f.store.parent().unwrap().join("store-evil");
    std::fs::create_dir(&evil).unwrap();
    std::fs::write(evil.join("f.bin"), b"x").unwrap();
    std::os::unix::fs::symlink(&evil, f.store.join("evil")).unwrap();
    assert_not_found(get(&f.store, "evil/f.bin"), "prefix sibling");
}

#[test]
fn names_with_spaces_and_quotes() {
    let f = fixture();
    std::fs::write(f.store.join("bin1/my image.bin"), b"spaced").unwrap();
    let resp = get(&f.store, "bin1/my%20image.bin");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("Content-Disposition"),
        Some("attachment; filename=\"my image.bin\"")
    );
    assert_eq!(body_bytes(resp), b"spaced");
    // A raw space (some clients do not encode) reaches the same file.
    assert_eq!(get(&f.store, "bin1/my image.bin").status, 200);

    // A literal "%20" in the file name needs "%2520" on the wire.
    std::fs::write(f.store.join("bin1/a%20b.bin"), b"literal").unwrap();
    let resp = get(&f.store, "bin1/a%2520b.bin");
    assert_eq!(resp.status, 200);
    assert_eq!(body_bytes(resp), b"literal");

    std::fs::write(f.store.join("bin1/q\"uote.bin"), b"q").unwrap();
    let resp = get(&f.store, "bin1/q%22uote.bin");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("Content-Disposition"),
        Some("attachment; filename=\"q\\\"uote.bin\"")
    );
}

#[test]
fn empty_file_is_served_and_any_range_is_416() {
    let f = fixture();
    std::fs::write(f.store.join("bin1/empty"), b"").unwrap();
    let resp = get(&f.store, "bin1/empty");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("Content-Length"), Some("0"));
    let resp = serve_store(&f.store, "bin1/empty", Some("bytes=0-"));
    assert_eq!(resp.status, 416);
    assert_eq!(resp.header("Content-Range"), Some("bytes */0"));
}

#[test]
fn builds_in_progress_are_never_served() {
    let f = fixture();
    let staging = f.store.join(".staging/worker-1_1");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("half.bin"), b"partial").unwrap();
    assert_not_found(
        get(&f.store, ".staging/worker-1_1/half.bin"),
        "staging file",
    );
    assert_not_found(
        get(&f.store, "%2estaging/worker-1_1/half.bin"),
        "encoded staging",
    );
    assert_not_found(
        get(&f.store, "abc/../.staging/worker-1_1/half.bin"),
        "dotted staging",
    );
}
