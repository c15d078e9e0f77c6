//! The store directory, `{store_path}`: its layout has one owner, here.
//!
//! - `{store}/{bin_dir}/` holds one finished build, served under `/store/`;
//!   `bin_dir` is a request hash (lowercase hex).
//! - `{store}/.staging/{worker}/` holds the build a worker is running. Images
//!   are copied out of the container into it and only renamed into
//!   `{store}/{bin_dir}` once the build succeeded, so clients never download
//!   from a half-written or failed build, and two builds that resolve to the
//!   same `bin_dir` (an alias and its canonical profile) replace each other
//!   whole instead of interleaving files. It is never served.

use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Directory under the store root that holds builds in progress.
const STAGING_DIR: &str = ".staging";

/// Where the finished build `bin_dir` lives.
pub fn build_dir(store: &Path, bin_dir: &str) -> PathBuf {
    store.join(bin_dir)
}

/// A worker name as a directory name.
fn staging_name(worker: &str) -> String {
    worker
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Where a worker stages its builds: one directory per worker thread.
pub fn staging_dir(store: &Path, worker: &str) -> PathBuf {
    store.join(STAGING_DIR).join(staging_name(worker))
}

/// At start-up: remove what the workers of `worker_id` (`worker_id/N`)
/// staged in a previous life that was killed mid-copy, however large.
/// Other processes' staging directories are left alone.
pub fn clear_staging(store: &Path, worker_id: &str) {
    let prefix = format!("{}_", staging_name(worker_id));
    let Ok(entries) = std::fs::read_dir(store.join(STAGING_DIR)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let ours = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            // `N`, or `N.replaced-PID` left by the fallback in `publish`.
            .and_then(|n| n.split('.').next())
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if ours {
            discard(&entry.path());
        }
    }
}

/// Rename `staging` to `dest`, replacing an existing `dest` whole.
pub fn publish(staging: &Path, dest: &Path) -> io::Result<()> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::rename(staging, dest) {
        Ok(()) => return Ok(()),
        Err(e) if !dest.exists() => return Err(e),
        Err(_) => {}
    }
    // Another build of this bin_dir is already there (an alias and its
    // profile, or a rebuild after a crash): exchange the two in one step,
    // so `dest` is never missing, not even to a process killed here; the
    // old build, now in `staging`, is deleted (or cleared at the next
    // start-up). Downloads that opened a file keep reading the old inode.
    let cwd = rustix::fs::CWD;
    match rustix::fs::renameat_with(cwd, staging, cwd, dest, rustix::fs::RenameFlags::EXCHANGE) {
        Ok(()) => {
            if let Err(e) = std::fs::remove_dir_all(staging) {
                log::warn!("could not remove replaced build {}: {e}", staging.display());
            }
            return Ok(());
        }
        // A file system without RENAME_EXCHANGE: move the old one aside.
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {}
        Err(e) => return Err(e.into()),
    }
    let old = staging.with_extension(format!("replaced-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&old);
    std::fs::rename(dest, &old)?;
    let moved = std::fs::rename(staging, dest);
    if let Err(e) = std::fs::remove_dir_all(&old) {
        log::warn!("could not remove replaced build {}: {e}", old.display());
    }
    moved
}

/// Whether `path` may be downloaded: a file strictly inside the store and
/// outside the staging area. Both paths must already be canonical (so `..`
/// and symlinks are resolved); `starts_with` compares whole components, so
/// `/store-evil` is not inside `/store`.
pub fn is_servable(canonical_store: &Path, canonical_path: &Path) -> bool {
    canonical_path.starts_with(canonical_store)
        && canonical_path != canonical_store
        && !canonical_path.starts_with(canonical_store.join(STAGING_DIR))
}

/// Delete an expired build. Only a plain hash-named directory directly under
/// the store is removed, whatever the database says.
pub fn remove_build(store: &Path, bin_dir: &str) {
    if bin_dir.is_empty() || !bin_dir.chars().all(|c| c.is_ascii_hexdigit()) {
        log::warn!("refusing to remove odd store directory name {bin_dir:?}");
        return;
    }
    let path = build_dir(store, bin_dir);
    match std::fs::remove_dir_all(&path) {
        Ok(()) => log::debug!("expired {}", path.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => log::warn!("could not remove {}: {e}", path.display()),
    }
}

/// Whether `name` may name a file inside a build directory: one plain
/// component, nothing that could point outside it.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// SHA-256 of a file as lowercase hex, streamed.
pub fn file_sha256(path: &Path) -> io::Result<String> {
    sha256_of(&mut std::fs::File::open(path)?).map(|(sum, _)| sum)
}

/// SHA-256 (lowercase hex) and length of everything `reader` yields.
pub fn sha256_of(reader: &mut impl Read) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        len += n as u64;
        hasher.update(&buf[..n]);
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((hex, len))
}

/// Remove a staging directory; a missing one is fine.
pub fn discard(staging: &Path) {
    match std::fs::remove_dir_all(staging) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => log::warn!(
            "could not remove staging directory {}: {e}",
            staging.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_moves_and_replaces_whole() {
        let root = tempfile::tempdir().unwrap();
        let store = root.path().join("store");
        let dest = store.join("abc");
        let staging = staging_dir(&store, "worker-1/2");
        assert!(staging.ends_with(".staging/worker-1_2"));

        std::fs::create_dir_all(&staging).unwrap();
        std::fs::write(staging.join("a.bin"), b"one").unwrap();
        std::fs::write(staging.join("old-only.bin"), b"x").unwrap();
        publish(&staging, &dest).unwrap();
        assert_eq!(std::fs::read(dest.join("a.bin")).unwrap(), b"one");
        assert!(!staging.exists());

        std::fs::create_dir_all(&staging).unwrap();
        std::fs::write(staging.join("a.bin"), b"two").unwrap();
        publish(&staging, &dest).unwrap();
        assert_eq!(std::fs::read(dest.join("a.bin")).unwrap(), b"two");
        assert!(
            !dest.join("old-only.bin").exists(),
            "no files mixed from two builds"
        );
        let leftovers: Vec<_> = std::fs::read_dir(store.join(STAGING_DIR))
            .unwrap()
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        discard(&staging);
    }

    #[test]
    fn a_previous_life_s_staging_is_cleared_and_no_one_else_s() {
        let root = tempfile::tempdir().unwrap();
        let store = root.path();
        for worker in ["w/1", "w/12", "w/3.replaced-77", "w_b/1", "other/1", "w/x"] {
            let dir = staging_dir(store, worker);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("image.bin"), b"partial").unwrap();
        }
        clear_staging(store, "w");
        let left: std::collections::BTreeSet<String> = std::fs::read_dir(store.join(STAGING_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            left.into_iter().collect::<Vec<_>>(),
            ["other_1", "w_b_1", "w_x"]
        );
        // Nothing staged at all is fine.
        clear_staging(&store.join("missing"), "w");
    }

    #[test]
    fn staging_is_never_servable() {
        let store = Path::new("/srv/store");
        assert!(is_servable(store, Path::new("/srv/store/abc/x.bin")));
        assert!(!is_servable(store, store));
        assert!(!is_servable(store, Path::new("/srv/store-evil/x")));
        assert!(!is_servable(
            store,
            Path::new("/srv/store/.staging/w/x.bin")
        ));
        assert!(!is_servable(store, Path::new("/srv/other/x.bin")));
    }

    #[test]
    fn only_hash_named_builds_are_removed() {
        let root = tempfile::tempdir().unwrap();
        for name in ["abc123", "keep", ".staging"] {
            std::fs::create_dir_all(root.path().join(name)).unwrap();
        }
        remove_build(root.path(), "abc123");
        remove_build(root.path(), "keep");
        remove_build(root.path(), "../x");
        remove_build(root.path(), "");
        assert!(!root.path().join("abc123").exists());
        assert!(root.path().join("keep").exists());
        remove_build(root.path(), "abc123");
    }
}
