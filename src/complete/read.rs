//! The file system side of `complete`: one directory listing, bounded reads
//! and streamed hashes that notice a file changing underneath, and the
//! stamps that tell later whether anything changed since.

use super::{Incomplete, MAX_ENTRIES, fwtool};
use std::collections::BTreeMap;
use std::fs::{File, FileType, Metadata};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// What `stat` says about a file: any write, rename over or metadata change
/// moves at least one of these (the change time cannot be set back).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp {
    pub ino: u64,
    pub len: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl Stamp {
    pub fn of(m: &Metadata) -> Stamp {
        Stamp {
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// The directory and the files a check looked at, as they were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    pub dir: Option<Stamp>,
    pub files: Vec<(String, Stamp)>,
    /// Image bytes hashed.
    pub hashed_bytes: u64,
}

impl Seen {
    /// Unix seconds of the newest change (ctime) among what was looked at.
    pub fn newest_change(&self) -> i64 {
        self.dir
            .iter()
            .chain(self.files.iter().map(|(_, s)| s))
            .map(|s| s.ctime.0)
            .max()
            .unwrap_or(0)
    }

    /// The directory itself must not have changed since it was listed (an
    /// entry added, removed or renamed: a build being written).
    pub(super) fn recheck_dir(&self, dir: &Path) -> Result<(), Incomplete> {
        let now = std::fs::symlink_metadata(dir).map(|m| Stamp::of(&m)).ok();
        if now != self.dir {
            return Err(Incomplete::Changed("the directory".into()));
        }
        Ok(())
    }
}

/// Whether the directory and every file `seen` records are still as they
/// were: `stat` calls only, no reading.
pub fn unchanged(dir: &Path, seen: &Seen) -> bool {
    let stamp = |p: &Path| std::fs::symlink_metadata(p).ok().map(|m| Stamp::of(&m));
    seen.dir.is_some()
        && stamp(dir) == seen.dir
        && seen
            .files
            .iter()
            .all(|(name, s)| stamp(&dir.join(name)) == Some(*s))
}

/// The directory's entries (names that are not UTF-8 are left out: no
/// image of ours or the reference's has one).
pub(super) struct Listing {
    entries: BTreeMap<String, FileType>,
}

impl Listing {
    /// Stat the directory, then list it once.
    pub(super) fn read(dir: &Path, seen: &mut Seen) -> Result<Listing, Incomplete> {
        let meta = match std::fs::symlink_metadata(dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Incomplete::Missing),
            Err(e) => {
                return Err(Incomplete::Unreadable(
                    "the directory".into(),
                    e.to_string(),
                ));
            }
        };
        if !meta.is_dir() {
            return Err(Incomplete::NotADirectory);
        }
        seen.dir = Some(Stamp::of(&meta));
        let unreadable =
            |e: std::io::Error| Incomplete::Unreadable("the directory".into(), e.to_string());
        let mut entries = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(unreadable)? {
            let entry = entry.map_err(unreadable)?;
            if entries.len() >= MAX_ENTRIES {
                return Err(Incomplete::TooManyEntries);
            }
            // DirEntry::file_type does not follow symlinks.
            let kind = entry.file_type().map_err(unreadable)?;
            if let Ok(name) = entry.file_name().into_string() {
                entries.insert(name, kind);
            }
        }
        Ok(Listing { entries })
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    pub(super) fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Open a listed regular file without following symlinks; `None` when
    /// it is not listed.
    fn open(&self, dir: &Path, name: &str) -> Result<Option<(File, Stamp)>, Incomplete> {
        let Some(kind) = self.entries.get(name) else {
            return Ok(None);
        };
        if !kind.is_file() {
            return Err(Incomplete::NotAFile(name.into()));
        }
        let unreadable = |e: std::io::Error| Incomplete::Unreadable(name.into(), e.to_string());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(dir.join(name))
            .map_err(unreadable)?;
        let meta = file.metadata().map_err(unreadable)?;
        if !meta.is_file() {
            return Err(Incomplete::NotAFile(name.into()));
        }
        Ok(Some((file, Stamp::of(&meta))))
    }
}

/// The file must be as it was when opened, and `len` long.
fn same_after(file: &File, name: &str, before: Stamp, len: u64) -> Result<(), Incomplete> {
    let after = file
        .metadata()
        .map_err(|e| Incomplete::Unreadable(name.into(), e.to_string()))?;
    if Stamp::of(&after) != before || len != before.len {
        return Err(Incomplete::Changed(name.into()));
    }
    Ok(())
}

/// A listed file's content, at most `limit` bytes; `None` when it is not
/// listed.
pub(super) fn read_bounded(
    dir: &Path,
    listing: &Listing,
    name: &str,
    limit: u64,
    seen: &mut Seen,
) -> Result<Option<Vec<u8>>, Incomplete> {
    let Some((file, stamp)) = listing.open(dir, name)? else {
        return Ok(None);
    };
    seen.files.push((name.to_owned(), stamp));
    if stamp.len > limit {
        return Err(Incomplete::TooLarge(name.into()));
    }
    let mut data = Vec::with_capacity(stamp.len as usize);
    (&file)
        .take(limit + 1)
        .read_to_end(&mut data)
        .map_err(|e| Incomplete::Unreadable(name.into(), e.to_string()))?;
    same_after(&file, name, stamp, data.len() as u64)?;
    Ok(Some(data))
}

/// What an image hashes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Hashes {
    /// The whole file, as served.
    pub(super) file: String,
    /// The file without the fwtool signature chunk that ends it, if one does.
    pub(super) unsigned: Option<String>,
}

/// SHA-256 of a listed image, and of the image without its signature
/// chunk, in one streamed pass.
pub(super) fn hash_image(
    dir: &Path,
    listing: &Listing,
    name: &str,
    seen: &mut Seen,
) -> Result<Hashes, Incomplete> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::FileExt;
    let (mut file, stamp) = listing
        .open(dir, name)?
        .ok_or_else(|| Incomplete::ImageMissing(name.into()))?;
    seen.files.push((name.to_owned(), stamp));
    let unreadable = |e: std::io::Error| Incomplete::Unreadable(name.into(), e.to_string());
    let mut trailer = [0u8; fwtool::TRAILER_LEN as usize];
    let chunk = if stamp.len >= fwtool::TRAILER_LEN {
        file.read_exact_at(&mut trailer, stamp.len - fwtool::TRAILER_LEN)
            .map_err(unreadable)?;
        fwtool::signature_chunk_len(&trailer, stamp.len)
    } else {
        None
    };
    let split = chunk.map(|c| stamp.len - c);
    let mut hasher = Sha256::new();
    let mut unsigned = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    loop {
        // Stop reads at the split, to take the unsigned digest there.
        let want = match split {
            Some(at) if len < at => buf.len().min((at - len) as usize),
            _ => buf.len(),
        };
        if split == Some(len) && unsigned.is_none() {
            unsigned = Some(crate::hash::hex(&hasher.clone().finalize()));
        }
        let n = file.read(&mut buf[..want]).map_err(unreadable)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    seen.hashed_bytes += len;
    same_after(&file, name, stamp, len)?;
    Ok(Hashes {
        file: crate::hash::hex(&hasher.finalize()),
        unsigned,
    })
}
