//! Tar archives in both directions: building the small upload tar for
//! `put_files`, and extracting a container's build output entry by entry
//! into a local directory without letting any entry escape it.
//!
//! The container is not trusted: whatever runs in it may plant absolute
//! paths, `..`, links pointing outside, device nodes or an endless file.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use crate::container::{ContainerError, FileToPut};

/// The archive-relative `path` as a clean relative path: `.` components
/// dropped, absolute paths and `..` refused. An empty result means the
/// entry names the extraction root itself.
pub fn safe_relative_path(path: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(format!("'{}' contains '..'", path.display())),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("'{}' is absolute", path.display()));
            }
        }
    }
    Ok(out)
}

/// Whether a symlink at `link` (relative to the extraction root) pointing at
/// `target` resolves inside the root, judged lexically: absolute targets are
/// out, and `..` may never climb above the root.
pub fn symlink_stays_inside(link: &Path, target: &Path) -> bool {
    if target.as_os_str().is_empty() {
        return false;
    }
    let mut depth: usize = link
        .parent()
        .map(|p| {
            p.components()
                .filter(|c| matches!(c, Component::Normal(_)))
                .count()
        })
        .unwrap_or(0);
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// An uncompressed tar holding `files` (paths relative to the upload
/// directory). Podman creates missing parent directories itself.
pub fn build_tar(files: &[FileToPut]) -> Result<Vec<u8>, ContainerError> {
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut builder = tar::Builder::new(Vec::new());
    for f in files {
        let rel = safe_relative_path(Path::new(&f.path))
            .map_err(|e| ContainerError::UnsafeArchive(format!("refusing to upload {e}")))?;
        if rel.as_os_str().is_empty() {
            return Err(ContainerError::UnsafeArchive(format!(
                "refusing to upload '{}': no file name",
                f.path
            )));
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(f.data.len() as u64);
        header.set_mode(f.mode & 0o7777);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, &rel, f.data.as_slice())
            .map_err(|e| ContainerError::Io(format!("building upload tar: {e}")))?;
    }
    builder
        .into_inner()
        .map_err(|e| ContainerError::Io(format!("building upload tar: {e}")))
}

/// Remembers whether the underlying reader (the HTTP body) failed, so a
/// broken connection is not reported as a malformed archive.
pub struct TrackedReader<R> {
    inner: R,
    pub failure: Option<io::Error>,
}

impl<R> TrackedReader<R> {
    pub fn new(inner: R) -> Self {
        TrackedReader {
            inner,
            failure: None,
        }
    }
}

impl<R: Read> Read for TrackedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => Ok(n),
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                self.failure = Some(e);
                Err(copy)
            }
        }
    }
}

/// Why an extraction stopped.
#[derive(Debug)]
pub enum ExtractError {
    /// The archive is malicious or malformed.
    Unsafe(String),
    /// Writing locally failed (disk full, permissions, …), and the kind.
    Local(String, io::ErrorKind),
    /// Reading the archive failed (see [`TrackedReader`] to tell the
    /// transport's failures from tar parse errors).
    Read(io::Error),
}

/// Extracts `reader` (a tar stream) into `dest`, created when missing.
/// Regular files get mode 0644 and directories 0755 whatever the archive
/// says; owners are not restored. Returns the bytes written into files.
///
/// The whole copy is refused at the first unsafe entry; files extracted
/// before it stay in `dest`, so the caller should discard `dest` on error.
pub fn extract<R: Read>(reader: R, dest: &Path, max_bytes: u64) -> Result<u64, ExtractError> {
    let local = |what: &str, p: &Path, e: io::Error| {
        ExtractError::Local(format!("{what} {}: {e}", p.display()), e.kind())
    };
    fs::create_dir_all(dest).map_err(|e| local("creating", dest, e))?;
    let mut archive = tar::Archive::new(reader);
    let mut written: u64 = 0;
    for entry in archive.entries().map_err(ExtractError::Read)? {
        let mut entry = entry.map_err(ExtractError::Read)?;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            continue; // metadata the tar crate already applied
        }
        let raw = entry.path().map_err(ExtractError::Read)?.into_owned();
        let rel = safe_relative_path(&raw).map_err(ExtractError::Unsafe)?;
        if rel.as_os_str().is_empty() {
            if kind.is_dir() {
                continue; // "./": the root itself
            }
            return Err(ExtractError::Unsafe(format!(
                "entry '{}' has no name",
                raw.display()
            )));
        }
        let target = dest.join(&rel);
        ensure_parents(dest, &rel).map_err(|e| match e {
            ParentError::Unsafe(m) => ExtractError::Unsafe(m),
            ParentError::Io(p, e) => local("creating", &p, e),
        })?;
        match kind {
            tar::EntryType::Directory => {
                match fs::symlink_metadata(&target) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        return Err(ExtractError::Unsafe(format!(
                            "directory '{}' would replace a file or link",
                            rel.display()
                        )));
                    }
                    Err(_) => fs::create_dir(&target).map_err(|e| local("creating", &target, e))?,
                }
                fs::set_permissions(&target, fs::Permissions::from_mode(0o755))
                    .map_err(|e| local("chmod", &target, e))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_non_dir(&target).map_err(|e| local("replacing", &target, e))?;
                let mut file =
                    fs::File::create(&target).map_err(|e| local("creating", &target, e))?;
                // The entry reader ends at the size in its header; the
                // budget stops an archive that is simply too big.
                let budget = max_bytes.saturating_sub(written);
                let n =
                    copy_bounded(&mut entry, &mut file, budget.saturating_add(1)).map_err(|e| {
                        match e {
                            CopyError::Read(e) => ExtractError::Read(e),
                            CopyError::Write(e) => local("writing", &target, e),
                        }
                    })?;
                if n > budget {
                    return Err(ExtractError::Unsafe(format!(
                        "archive holds more than the limit of {max_bytes} bytes"
                    )));
                }
                written += n;
                fs::set_permissions(&target, fs::Permissions::from_mode(0o644))
                    .map_err(|e| local("chmod", &target, e))?;
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(ExtractError::Read)?
                    .ok_or_else(|| {
                        ExtractError::Unsafe(format!("symlink '{}' has no target", rel.display()))
                    })?
                    .into_owned();
                if !symlink_stays_inside(&rel, &link) {
                    return Err(ExtractError::Unsafe(format!(
                        "symlink '{}' -> '{}' leaves the directory",
                        rel.display(),
                        link.display()
                    )));
                }
                remove_non_dir(&target).map_err(|e| local("replacing", &target, e))?;
                std::os::unix::fs::symlink(&link, &target)
                    .map_err(|e| local("creating symlink", &target, e))?;
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(ExtractError::Read)?
                    .ok_or_else(|| {
                        ExtractError::Unsafe(format!("hard link '{}' has no target", rel.display()))
                    })?
                    .into_owned();
                // Hard link names are relative to the archive root.
                let src_rel = safe_relative_path(&link).map_err(|e| {
                    ExtractError::Unsafe(format!("hard link '{}' -> {e}", rel.display()))
                })?;
                let src = dest.join(&src_rel);
                let is_plain_file = !src_rel.as_os_str().is_empty()
                    && ensure_parents(dest, &src_rel).is_ok()
                    && fs::symlink_metadata(&src)
                        .map(|m| m.is_file())
                        .unwrap_or(false);
                if !is_plain_file {
                    return Err(ExtractError::Unsafe(format!(
                        "hard link '{}' -> '{}' does not name a file extracted earlier",
                        rel.display(),
                        link.display()
                    )));
                }
                remove_non_dir(&target).map_err(|e| local("replacing", &target, e))?;
                fs::hard_link(&src, &target).map_err(|e| local("linking", &target, e))?;
            }
            other => {
                return Err(ExtractError::Unsafe(format!(
                    "'{}' is a {other:?} entry (devices, fifos and the like are refused)",
                    rel.display()
                )));
            }
        }
    }
    Ok(written)
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies at most `limit` bytes, telling read failures (the archive or the
/// connection) from write failures (the local disk).
fn copy_bounded<R: Read, W: io::Write>(r: &mut R, w: &mut W, limit: u64) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    while total < limit {
        let want = (limit - total).min(buf.len() as u64) as usize;
        let n = match r.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        w.write_all(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
    }
    Ok(total)
}

enum ParentError {
    Unsafe(String),
    Io(PathBuf, io::Error),
}

/// Creates the parent directories of `rel` under `root`, refusing to pass
/// through anything that is not a real directory (a symlink planted by an
/// earlier entry must not redirect later writes).
fn ensure_parents(root: &Path, rel: &Path) -> Result<(), ParentError> {
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
    let mut at = root.to_path_buf();
    for c in parent.components() {
        at.push(c);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(ParentError::Unsafe(format!(
                    "'{}' passes through '{}', which is not a directory",
                    rel.display(),
                    at.strip_prefix(root).unwrap_or(&at).display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&at).map_err(|e| ParentError::Io(at.clone(), e))?;
                fs::set_permissions(&at, fs::Permissions::from_mode(0o755))
                    .map_err(|e| ParentError::Io(at.clone(), e))?;
            }
            Err(e) => return Err(ParentError::Io(at.clone(), e)),
        }
    }
    Ok(())
}

/// Removes a file or symlink at `p` so a new entry replaces it instead of
/// writing through it; a directory there is left for the caller to trip on.
fn remove_non_dir(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if !m.is_dir() => fs::remove_file(p),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn relative_paths_are_cleaned() {
        assert_eq!(safe_relative_path(&p("./x")).unwrap(), p("x"));
        assert_eq!(
            safe_relative_path(&p("a/./b/c.bin")).unwrap(),
            p("a/b/c.bin")
        );
        assert_eq!(safe_relative_path(&p("./")).unwrap(), p(""));
        assert_eq!(safe_relative_path(&p(".")).unwrap(), p(""));
    }

    #[test]
    fn absolute_and_parent_paths_are_refused() {
        assert!(safe_relative_path(&p("/etc/passwd")).is_err());
        assert!(safe_relative_path(&p("../x")).is_err());
        assert!(safe_relative_path(&p("a/../../x")).is_err());
        assert!(safe_relative_path(&p("a/..")).is_err());
    }

    #[test]
    fn symlink_targets_are_judged_from_the_link_location() {
        assert!(symlink_stays_inside(&p("a.bin"), &p("b.bin")));
        assert!(symlink_stays_inside(&p("sub/a"), &p("../b")));
        assert!(symlink_stays_inside(&p("sub/deeper/a"), &p("../../b")));
        assert!(symlink_stays_inside(&p("a"), &p("./sub/../b")));
        assert!(!symlink_stays_inside(&p("a"), &p("../b")));
        assert!(!symlink_stays_inside(&p("sub/a"), &p("../../b")));
        assert!(!symlink_stays_inside(&p("a"), &p("/etc/passwd")));
        assert!(!symlink_stays_inside(&p("a"), &p("sub/../../x")));
        assert!(!symlink_stays_inside(&p("a"), &p("")));
    }

    enum E<'a> {
        File(&'a str, &'a [u8]),
        Dir(&'a str),
        Sym(&'a str, &'a str),
        Hard(&'a str, &'a str),
        Special(&'a str, tar::EntryType),
    }

    /// Builds a tar with raw names (bypassing the tar crate's own checks,
    /// which refuse `..` when writing) so hostile archives can be tested.
    fn tar_of(entries: &[E]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o4755);
            let (name, data, link): (&str, &[u8], Option<&str>) = match e {
                E::File(n, d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    (n, d, None)
                }
                E::Dir(n) => {
                    h.set_entry_type(tar::EntryType::Directory);
                    (n, b"", None)
                }
                E::Sym(n, t) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    (n, b"", Some(t))
                }
                E::Hard(n, t) => {
                    h.set_entry_type(tar::EntryType::Link);
                    (n, b"", Some(t))
                }
                E::Special(n, k) => {
                    h.set_entry_type(*k);
                    (n, b"", None)
                }
            };
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name = [0; 100];
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(t) = link {
                gnu.linkname = [0; 100];
                gnu.linkname[..t.len()].copy_from_slice(t.as_bytes());
            }
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn extract_into(entries: &[E]) -> (tempfile::TempDir, Result<u64, ExtractError>) {
        let dir = tempfile::tempdir().unwrap();
        let data = tar_of(entries);
        let r = extract(&data[..], &dir.path().join("out"), 1 << 20);
        (dir, r)
    }

    #[test]
    fn extracts_nested_dirs_and_files_with_sane_modes() {
        let (dir, r) = extract_into(&[
            E::Dir("./"),
            E::File("./profiles.json", b"{}"),
            E::Dir("./sub"),
            E::File("./sub/deep/x.bin", b"12345"),
        ]);
        assert_eq!(r.unwrap(), 7);
        let out = dir.path().join("out");
        assert_eq!(fs::read(out.join("profiles.json")).unwrap(), b"{}");
        assert_eq!(fs::read(out.join("sub/deep/x.bin")).unwrap(), b"12345");
        let mode = fs::metadata(out.join("profiles.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o644, "setuid bit must not survive");
        let mode = fs::metadata(out.join("sub")).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o755);
    }

    #[test]
    fn refuses_parent_and_absolute_entries() {
        let (dir, r) = extract_into(&[E::File("../evil", b"x")]);
        assert!(matches!(r, Err(ExtractError::Unsafe(_))), "{r:?}");
        assert!(!dir.path().join("evil").exists());
        let (_d, r) = extract_into(&[E::File("/tmp/evil-abs", b"x")]);
        assert!(matches!(r, Err(ExtractError::Unsafe(_))), "{r:?}");
    }

    #[test]
    fn refuses_symlink_escaping_and_keeps_symlink_within() {
        let (dir, r) = extract_into(&[E::File("a.bin", b"A"), E::Sym("link", "a.bin")]);
        assert_eq!(r.unwrap(), 1);
        let out = dir.path().join("out");
        assert_eq!(fs::read_link(out.join("link")).unwrap(), p("a.bin"));

        let (_d, r) = extract_into(&[E::Sym("passwd", "/etc/passwd")]);
        assert!(
            matches!(r, Err(ExtractError::Unsafe(ref m)) if m.contains("leaves")),
            "{r:?}"
        );
        let (_d, r) = extract_into(&[E::Sym("sub/up", "../../x")]);
        assert!(matches!(r, Err(ExtractError::Unsafe(_))), "{r:?}");
    }

    #[test]
    fn never_writes_through_a_planted_symlink() {
        // "d" -> "." is inside, but a later "d/x" must not be written
        // through the link (and a file over a link replaces the link).
        let (dir, r) = extract_into(&[E::Sym("d", "."), E::File("d/x", b"x")]);
        assert!(matches!(r, Err(ExtractError::Unsafe(_))), "{r:?}");
        assert!(!dir.path().join("out/x").exists());

        let (dir, r) = extract_into(&[
            E::File("real", b"real"),
            E::Sym("f", "real"),
            E::File("f", b"new"),
        ]);
        r.unwrap();
        let out = dir.path().join("out");
        assert_eq!(fs::read(out.join("real")).unwrap(), b"real");
        assert_eq!(fs::read(out.join("f")).unwrap(), b"new");
    }

    #[test]
    fn hard_links_only_to_files_inside() {
        let (dir, r) = extract_into(&[E::File("a", b"AA"), E::Hard("b", "a")]);
        assert_eq!(r.unwrap(), 2);
        assert_eq!(fs::read(dir.path().join("out/b")).unwrap(), b"AA");
        let (_d, r) = extract_into(&[E::Hard("b", "/etc/passwd")]);
        assert!(matches!(r, Err(ExtractError::Unsafe(_))), "{r:?}");
        let (_d, r) = extract_into(&[E::Hard("b", "../x")]);
        assert!(matches!(r, Err(ExtractError::Unsafe(_))), "{r:?}");
        let (_d, r) = extract_into(&[E::Hard("b", "not-there")]);
        assert!(matches!(r, Err(ExtractError::Unsafe(_))), "{r:?}");
    }

    #[test]
    fn refuses_devices_and_fifos() {
        for k in [
            tar::EntryType::Char,
            tar::EntryType::Block,
            tar::EntryType::Fifo,
        ] {
            let (_d, r) = extract_into(&[E::Special("dev", k)]);
            assert!(matches!(r, Err(ExtractError::Unsafe(_))), "{k:?}: {r:?}");
        }
    }

    #[test]
    fn enforces_the_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let data = tar_of(&[E::File("a", &[0u8; 600]), E::File("b", &[0u8; 600])]);
        let r = extract(&data[..], dir.path(), 1000);
        assert!(
            matches!(r, Err(ExtractError::Unsafe(ref m)) if m.contains("limit")),
            "{r:?}"
        );
        let r = extract(&data[..], &dir.path().join("ok"), 1200);
        assert_eq!(r.unwrap(), 1200);
    }

    #[test]
    fn garbage_is_a_read_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let r = extract(&[0x41u8; 700][..], dir.path(), 1000);
        assert!(matches!(r, Err(ExtractError::Read(_))), "{r:?}");
    }

    #[test]
    fn build_tar_round_trips_and_refuses_escapes() {
        let files = vec![
            FileToPut {
                path: "keys/abc".into(),
                data: b"key".to_vec(),
                mode: 0o644,
            },
            FileToPut {
                path: "asu-files/etc/uci-defaults/99-asu-defaults".into(),
                data: b"uci set x=y\n".to_vec(),
                mode: 0o755,
            },
        ];
        let data = build_tar(&files).unwrap();
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(extract(&data[..], dir.path(), 1000).unwrap(), 15);
        assert_eq!(
            fs::read(
                dir.path()
                    .join("asu-files/etc/uci-defaults/99-asu-defaults")
            )
            .unwrap(),
            b"uci set x=y\n"
        );
        let mut archive = tar::Archive::new(&data[..]);
        let modes: Vec<u32> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().header().mode().unwrap())
            .collect();
        assert_eq!(modes, vec![0o644, 0o755]);

        for bad in ["../x", "/etc/passwd", ""] {
            let f = FileToPut {
                path: bad.into(),
                data: vec![],
                mode: 0o644,
            };
            assert!(matches!(
                build_tar(&[f]),
                Err(ContainerError::UnsafeArchive(_))
            ));
        }
    }
}
