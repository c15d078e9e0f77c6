//! Whether a store directory holds a complete, consistent build of one
//! request. The one rule behind adopting builds found in the store
//! (`adopt`) and behind the warning the pipeline logs before it replaces a
//! directory.
//!
//! A finished build directory is the ImageBuilder's `BIN_DIR`, copied out
//! whole: by asu-builder, and by the reference server since it runs the
//! ImageBuilder in Podman (it extracts the container's `/builder/<bin_dir>`
//! into `store/`). It holds `profiles.json`, the images that file lists,
//! the image's `<image_prefix>.manifest`, `sha256sums` and whatever else the
//! target writes. Complete and consistent means all of:
//!
//! - `profiles.json` is for the request's target, version (and revision,
//!   when the request names one) and lists its profile with at least one
//!   image;
//! - every image it lists is a regular file here whose SHA-256 is the one
//!   listed, or which, signed after the ImageBuilder, is the listed image
//!   plus a signature chunk (`fwtool`); a missing, short or otherwise
//!   rewritten image fails this; `sha256sums`, when present, agrees;
//! - the manifest is there;
//! - nothing changed while it was read (a directory being written).
//!
//! Cost: one directory listing, bounded reads of the three small files, and
//! one streamed hash of each listed image.

pub mod fwtool;
mod read;
#[cfg(test)]
mod tests;

use read::{Listing, read_bounded};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

pub use read::{Seen, Stamp, unchanged};

/// Largest `profiles.json` read (a BIN_DIR lists one profile: kilobytes).
pub const MAX_PROFILES_JSON: u64 = 4 * 1024 * 1024;
/// Largest manifest and `sha256sums` read.
pub const MAX_TEXT_FILE: u64 = 4 * 1024 * 1024;
/// Most entries a build directory may have (real ones have a few dozen).
pub const MAX_ENTRIES: usize = 4096;
/// Most images one profile may list.
pub const MAX_IMAGES: usize = 256;

/// What the directory must be a build of: the validated request.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    pub target: &'a str,
    pub version: &'a str,
    /// Empty: any revision.
    pub version_code: &'a str,
    pub profile: &'a str,
}

/// A verified image: its name and the SHA-256 of the file as served
/// (profiles.json's, unless the image was signed afterwards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub name: String,
    pub sha256: String,
}

/// An image as profiles.json lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    name: String,
    sha256: String,
    sha256_unsigned: Option<String>,
}

/// A complete, consistent build.
#[derive(Debug, Clone)]
pub struct Complete {
    /// `profiles.json` as the ImageBuilder wrote it.
    pub profiles: Map<String, Value>,
    /// The manifest file's text.
    pub manifest: String,
    /// The listed images, each verified.
    pub images: Vec<Image>,
    /// What was looked at (the newest change among it, the bytes hashed).
    pub seen: Seen,
}

/// Why a directory is not a complete build of the request.
#[derive(Debug, Clone, PartialEq)]
pub enum Incomplete {
    Missing,
    NotADirectory,
    Unreadable(String, String),
    TooLarge(String),
    TooManyEntries,
    NoProfilesJson,
    BadProfilesJson(String),
    OtherTarget(String),
    OtherVersion(String),
    OtherRevision(String),
    NoProfile(String),
    NoImages,
    BadImageEntry(String),
    ImageMissing(String),
    NotAFile(String),
    Checksum(String),
    SumsDisagree(String),
    NoManifest,
    Changed(String),
}

impl fmt::Display for Incomplete {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Incomplete::Missing => write!(f, "no such directory"),
            Incomplete::NotADirectory => write!(f, "not a directory"),
            Incomplete::Unreadable(what, e) => write!(f, "cannot read {what}: {e}"),
            Incomplete::TooLarge(what) => write!(f, "{what} is too large"),
            Incomplete::TooManyEntries => write!(f, "more than {MAX_ENTRIES} entries"),
            Incomplete::NoProfilesJson => write!(f, "no profiles.json"),
            Incomplete::BadProfilesJson(e) => write!(f, "profiles.json is not valid: {e}"),
            Incomplete::OtherTarget(t) => write!(f, "profiles.json is for target {t:?}"),
            Incomplete::OtherVersion(v) => write!(f, "profiles.json is for version {v:?}"),
            Incomplete::OtherRevision(r) => write!(f, "profiles.json is for revision {r:?}"),
            Incomplete::NoProfile(p) => write!(f, "profiles.json does not list profile {p:?}"),
            Incomplete::NoImages => write!(f, "profiles.json lists no images"),
            Incomplete::BadImageEntry(why) => write!(f, "profiles.json: {why}"),
            Incomplete::ImageMissing(n) => write!(f, "image {n} is missing"),
            Incomplete::NotAFile(n) => write!(f, "{n} is not a regular file"),
            Incomplete::Checksum(n) => write!(
                f,
                "image {n} does not have the sha256 profiles.json lists (short or rewritten)"
            ),
            Incomplete::SumsDisagree(n) => {
                write!(f, "sha256sums and profiles.json disagree about {n}")
            }
            Incomplete::NoManifest => write!(f, "no .manifest file"),
            Incomplete::Changed(what) => write!(f, "{what} changed while it was read"),
        }
    }
}

/// Why, and what was looked at before the verdict (to tell later whether
/// anything changed since, without hashing again).
#[derive(Debug, Clone)]
pub struct Refused {
    pub reason: Incomplete,
    pub seen: Box<Seen>,
}

/// Judge `dir` against `expect`.
pub fn check(dir: &Path, expect: &Expect<'_>) -> Result<Complete, Refused> {
    let mut seen = Seen::default();
    match inspect(dir, expect, &mut seen) {
        Ok((profiles, manifest, images)) => Ok(Complete {
            profiles,
            manifest,
            images,
            seen,
        }),
        Err(reason) => Err(Refused {
            reason,
            seen: Box::new(seen),
        }),
    }
}

type Inspected = (Map<String, Value>, String, Vec<Image>);

fn inspect(dir: &Path, expect: &Expect<'_>, seen: &mut Seen) -> Result<Inspected, Incomplete> {
    let listing = Listing::read(dir, seen)?;
    let profiles_text = read_bounded(dir, &listing, "profiles.json", MAX_PROFILES_JSON, seen)?
        .ok_or(Incomplete::NoProfilesJson)?;
    let profiles: Map<String, Value> = serde_json::from_slice(&profiles_text)
        .map_err(|e| Incomplete::BadProfilesJson(e.to_string()))?;
    let entry = identify(&profiles, expect)?;
    let listed = listed_images(entry)?;
    let sums = match read_bounded(dir, &listing, "sha256sums", MAX_TEXT_FILE, seen)? {
        Some(text) => parse_sums(&String::from_utf8_lossy(&text)),
        None => BTreeMap::new(),
    };
    for image in &listed {
        if sums.get(&image.name).is_some_and(|s| *s != image.sha256) {
            return Err(Incomplete::SumsDisagree(image.name.clone()));
        }
    }
    let manifest_name = manifest_name(entry, &listing).ok_or(Incomplete::NoManifest)?;
    let mut images = Vec::with_capacity(listed.len());
    for image in &listed {
        let hashes = read::hash_image(dir, &listing, &image.name, seen)?;
        let resigned = hashes
            .unsigned
            .as_ref()
            .is_some_and(|u| *u == image.sha256 || image.sha256_unsigned.as_ref() == Some(u));
        if hashes.file != image.sha256 && !resigned {
            return Err(Incomplete::Checksum(image.name.clone()));
        }
        images.push(Image {
            name: image.name.clone(),
            sha256: hashes.file,
        });
    }
    let manifest = read_bounded(dir, &listing, &manifest_name, MAX_TEXT_FILE, seen)?
        .ok_or(Incomplete::NoManifest)?;
    seen.recheck_dir(dir)?;
    Ok((
        profiles,
        String::from_utf8_lossy(&manifest).into_owned(),
        images,
    ))
}

/// The profile's entry, once target, version and revision match.
fn identify<'a>(
    profiles: &'a Map<String, Value>,
    expect: &Expect<'_>,
) -> Result<&'a Map<String, Value>, Incomplete> {
    let text = |key: &str| profiles.get(key).and_then(Value::as_str).unwrap_or("");
    if text("target") != expect.target {
        return Err(Incomplete::OtherTarget(text("target").into()));
    }
    if text("version_number") != expect.version {
        return Err(Incomplete::OtherVersion(text("version_number").into()));
    }
    if !expect.version_code.is_empty() && text("version_code") != expect.version_code {
        return Err(Incomplete::OtherRevision(text("version_code").into()));
    }
    profiles
        .get("profiles")
        .and_then(|p| p.get(expect.profile))
        .and_then(Value::as_object)
        .ok_or_else(|| Incomplete::NoProfile(expect.profile.into()))
}

/// Every image the profile lists, with a plain name and a SHA-256.
fn listed_images(entry: &Map<String, Value>) -> Result<Vec<Listed>, Incomplete> {
    let images = entry
        .get("images")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or(Incomplete::NoImages)?;
    if images.len() > MAX_IMAGES {
        return Err(Incomplete::BadImageEntry(format!(
            "more than {MAX_IMAGES} images"
        )));
    }
    images
        .iter()
        .map(|img| {
            let name = img.get("name").and_then(Value::as_str).unwrap_or("");
            if !crate::store::is_plain_file_name(name) {
                return Err(Incomplete::BadImageEntry(format!(
                    "image name {name:?} is not a plain file name"
                )));
            }
            let sha256 = img
                .get("sha256")
                .and_then(Value::as_str)
                .filter(|s| is_sha256(s))
                .ok_or_else(|| Incomplete::BadImageEntry(format!("image {name} has no sha256")))?;
            let unsigned = img
                .get("sha256_unsigned")
                .and_then(Value::as_str)
                .filter(|s| is_sha256(s))
                .map(str::to_ascii_lowercase);
            Ok(Listed {
                name: name.to_owned(),
                sha256: sha256.to_ascii_lowercase(),
                sha256_unsigned: unsigned,
            })
        })
        .collect()
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `sha256sums` lines, `<hex> *<name>` (binary mode, as the ImageBuilder
/// writes them) or `<hex>  <name>`; other lines are skipped.
pub fn parse_sums(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let (sum, rest) = line.split_once(' ')?;
            let name = rest.strip_prefix('*').or_else(|| rest.strip_prefix(' '))?;
            is_sha256(sum).then(|| (name.to_owned(), sum.to_ascii_lowercase()))
        })
        .collect()
}

/// `<image_prefix>.manifest`, else the directory's only `*.manifest`.
fn manifest_name(entry: &Map<String, Value>, listing: &Listing) -> Option<String> {
    if let Some(prefix) = entry.get("image_prefix").and_then(Value::as_str) {
        let name = format!("{prefix}.manifest");
        if listing.has(&name) {
            return Some(name);
        }
    }
    let mut manifests = listing.names().filter(|n| n.ends_with(".manifest"));
    match (manifests.next(), manifests.next()) {
        (Some(only), None) => Some(only.to_owned()),
        _ => None,
    }
}

/// Why a rebuild is about to replace `existing`, a complete build, with
/// different images: the first image whose name or checksum differs.
/// `None` when the new build has the same images, byte for byte.
pub fn replaced_image(existing: &[Image], new: &[Image]) -> Option<String> {
    let old: BTreeMap<&str, &str> = existing
        .iter()
        .map(|i| (i.name.as_str(), i.sha256.as_str()))
        .collect();
    let new_map: BTreeMap<&str, &str> = new
        .iter()
        .map(|i| (i.name.as_str(), i.sha256.as_str()))
        .collect();
    if old == new_map {
        return None;
    }
    old.iter()
        .find(|(name, sum)| new_map.get(*name) != Some(*sum))
        .map(|(name, _)| name.to_string())
        .or_else(|| {
            new_map
                .keys()
                .find(|name| !old.contains_key(*name))
                .map(|n| n.to_string())
        })
}
