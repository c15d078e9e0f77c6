//! Sizes a build request may have. The reference has none; a public server
//! needs them so that no request can make it allocate, validate or answer
//! without bound. Each is generous for real requests: an OpenWrt image has
//! at most a few hundred packages, names and versions are short, and
//! repository keys are a few hundred bytes. README lists them.

/// Items in `packages`.
pub const MAX_PACKAGES: usize = 1024;
/// Entries in `packages_versions`.
pub const MAX_PACKAGE_VERSIONS: usize = 1024;
/// Entries in `repositories`.
pub const MAX_REPOSITORIES: usize = 32;
/// Items in `repository_keys`.
pub const MAX_REPOSITORY_KEYS: usize = 32;

/// Characters in a name or version: distro, version, version_code, target,
/// profile, client, package names and versions, repository names.
pub const MAX_NAME_CHARS: usize = 128;
/// Characters in a repository URL.
pub const MAX_URL_CHARS: usize = 2048;
/// Characters in one repository key.
pub const MAX_KEY_CHARS: usize = 8192;

/// Problems listed in a 422 answer; the rest are counted, not listed, so no
/// answer to a bad request is larger than a few KiB.
pub const MAX_LISTED_ERRORS: usize = 20;
/// Characters of a client-chosen key (a dictionary key) quoted in an error
/// location; longer keys are cut with an ellipsis.
pub const MAX_QUOTED_CHARS: usize = 64;
