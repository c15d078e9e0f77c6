//! Files the pipeline places in the container before building: repository
//! lists, repository keys and the first-boot defaults script. Pure: callers
//! upload the returned files.

use crate::allow_list;
use crate::container::FileToPut;

/// Where the defaults script goes, relative to `/builder`.
pub const DEFAULTS_PATH: &str = "asu-files/etc/uci-defaults/99-asu-defaults";
/// `make image` argument that adds the files above to the image.
pub const FILES_ARG: &str = "FILES=/builder/asu-files";

/// apk ImageBuilders read `repositories`, opkg ones `repositories.conf`.
pub fn repo_file_name(apk: bool) -> &'static str {
    if apk {
        "repositories"
    } else {
        "repositories.conf"
    }
}

/// A repository name goes into `src/gz {name} {url}`: refuse anything that
/// could split the line.
fn name_is_safe(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The allowed repositories, sorted by name (then URL), as the reference
/// writes them.
pub fn allowed_repositories(
    repositories: &[(&str, &str)],
    allow_list: &[String],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = repositories
        .iter()
        .filter(|(name, url)| {
            let ok = name_is_safe(name) && allow_list::url_allowed(url, allow_list);
            if !ok {
                log::warn!("repository {name} ({url}) is not allowed; skipped");
            }
            ok
        })
        .map(|(n, u)| (n.to_string(), u.to_string()))
        .collect();
    out.sort();
    out
}

/// New content of the repository file: the non-blank lines of `base`
/// (empty in `replace` mode), then the extra repositories; opkg files also
/// get the local feed and signature checking when missing.
pub fn merge_repositories(base: &str, extra: &[(String, String)], apk: bool) -> String {
    let mut lines: Vec<String> = base
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    for (name, url) in extra {
        lines.push(if apk {
            url.clone()
        } else {
            format!("src/gz {name} {url}")
        });
    }
    if !apk {
        if !lines
            .iter()
            .any(|l| l.contains("src imagebuilder file:packages"))
        {
            lines.push("src imagebuilder file:packages".into());
        }
        if !lines.iter().any(|l| l.contains("option check_signature")) {
            lines.push("option check_signature".into());
        }
    }
    lines.join("\n") + "\n"
}

/// Standard base64, skipping characters outside the alphabet like Python's
/// non-validating `b64decode`; stops at padding.
fn base64_decode(text: &str) -> Vec<u8> {
    let sextet = |c: u8| -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some((c - b'A') as u32),
            b'a'..=b'z' => Some((c - b'a' + 26) as u32),
            b'0'..=b'9' => Some((c - b'0' + 52) as u32),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().take_while(|&c| c != b'=') {
        if let Some(v) = sextet(c) {
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
                acc &= (1 << bits) - 1;
            }
        }
    }
    out
}

/// Fingerprint of a usign/signify public key: bytes 2..10 of its last
/// line, base64-decoded, in hex. `None` for text that is not such a key.
pub fn usign_fingerprint(pubkey: &str) -> Option<String> {
    let last = pubkey.lines().last()?;
    let raw = base64_decode(last);
    (raw.len() >= 10).then(|| crate::hash::hex(&raw[2..10]))
}

/// `keys/…` files for the repository keys: PEM keys (apk) as
/// `keys/custom-{index}.pem`, usign keys (opkg) under their fingerprint.
pub fn key_files(keys: &[String]) -> Vec<FileToPut> {
    let mut files = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        if key.trim().starts_with("-----BEGIN") {
            files.push(FileToPut {
                path: format!("keys/custom-{i}.pem"),
                data: key.as_bytes().to_vec(),
                mode: 0o644,
            });
        } else if let Some(fp) = usign_fingerprint(key) {
            files.push(FileToPut {
                path: format!("keys/{fp}"),
                data: format!("untrusted comment: {fp}\n{key}").into_bytes(),
                mode: 0o644,
            });
        } else {
            log::warn!("repository key #{i} is neither PEM nor usign; skipped");
        }
    }
    files
}

pub fn defaults_file(defaults: &str) -> FileToPut {
    FileToPut {
        path: DEFAULTS_PATH.to_owned(),
        data: defaults.as_bytes().to_vec(),
        mode: 0o644,
    }
}

/// `sed` command that sends repository downloads through the caching proxy:
/// `https://host/path` becomes `{cache_url}/host/path`.
pub fn cache_rewrite_cmd(cache_url: &str, repo_file: &str) -> Vec<String> {
    vec![
        "sed".into(),
        "-i".into(),
        format!("s|https://|{}/|g", cache_url.trim_end_matches('/')),
        repo_file.into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_opkg_like_the_reference() {
        let base = "src/gz base https://example.com/base\noption check_signature\n";
        let extra = vec![(
            "custom".to_string(),
            "https://example.com/custom".to_string(),
        )];
        assert_eq!(
            merge_repositories(base, &extra, false),
            "src/gz base https://example.com/base\noption check_signature\n\
             src/gz custom https://example.com/custom\nsrc imagebuilder file:packages\n"
        );
        let two = allowed_repositories(
            &[
                ("foo", "https://example.com/foo"),
                ("bar", "https://example.com/bar"),
            ],
            &["https://example.com".to_string()],
        );
        assert_eq!(
            merge_repositories("", &two, false),
            "src/gz bar https://example.com/bar\nsrc/gz foo https://example.com/foo\n\
             src imagebuilder file:packages\noption check_signature\n"
        );
    }

    #[test]
    fn merge_apk_like_the_reference() {
        let extra = vec![("x".to_string(), "https://example.com/c".to_string())];
        assert_eq!(
            merge_repositories(
                "https://example.com/a\n\nhttps://example.com/b\n",
                &extra,
                true
            ),
            "https://example.com/a\nhttps://example.com/b\nhttps://example.com/c\n"
        );
        assert_eq!(
            merge_repositories("", &extra, true),
            "https://example.com/c\n"
        );
    }

    #[test]
    fn disallowed_and_unsafe_repositories_are_dropped() {
        let got = allowed_repositories(
            &[
                ("ok", "https://example.com/a"),
                ("evil", "https://evil.com/a"),
                ("bad name", "https://example.com/b"),
            ],
            &["https://example.com".to_string()],
        );
        assert_eq!(
            got,
            [("ok".to_string(), "https://example.com/a".to_string())]
        );
    }

    #[test]
    fn usign_fingerprint_like_the_reference() {
        let key = "RWSrHfFmlHslUcLbXFIRp+eEikWF9z1N77IJiX5Bt/nJd1a/x+L+SU89";
        assert_eq!(usign_fingerprint(key).as_deref(), Some("ab1df166947b2551"));
        let with_comment = format!("untrusted comment: public key ab1df166947b2551\n{key}");
        assert_eq!(
            usign_fingerprint(&with_comment).as_deref(),
            Some("ab1df166947b2551")
        );
        assert_eq!(usign_fingerprint("AAAA"), None);
        assert_eq!(usign_fingerprint(""), None);
    }

    #[test]
    fn key_files_for_usign_and_pem() {
        let usign = "RWSrHfFmlHslUcLbXFIRp+eEikWF9z1N77IJiX5Bt/nJd1a/x+L+SU89".to_string();
        let pem =
            "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZI...\n-----END PUBLIC KEY-----\n".to_string();
        let files = key_files(&[pem.clone(), usign.clone(), "%%%".into()]);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].path, "keys/custom-0.pem");
        assert_eq!(files[0].data, pem.as_bytes());
        assert_eq!(files[1].path, "keys/ab1df166947b2551");
        assert_eq!(
            String::from_utf8(files[1].data.clone()).unwrap(),
            format!("untrusted comment: ab1df166947b2551\n{usign}")
        );
        // Zero key from the reference test: 42 zero bytes.
        let zero = "A".repeat(56);
        assert_eq!(key_files(&[zero])[0].path, "keys/0000000000000000");
    }

    #[test]
    fn defaults_and_cache_rewrite() {
        let f = defaults_file("echo hello");
        assert_eq!(f.path, "asu-files/etc/uci-defaults/99-asu-defaults");
        assert_eq!(f.data, b"echo hello");
        assert_eq!(
            cache_rewrite_cmd("http://cache:3128/", "repositories.conf"),
            [
                "sed",
                "-i",
                "s|https://|http://cache:3128/|g",
                "repositories.conf"
            ]
        );
    }
}
