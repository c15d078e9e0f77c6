//! The build request's field patterns, compiled once.

use regex::Regex;
use std::sync::LazyLock;

/// The field patterns, verbatim from the reference's request model. Its
/// model layer (pydantic v2) evaluates `pattern=` with the Rust `regex`
/// crate, so matching them with the same crate gives the reference's answers
/// byte for byte, `\w` and `\S` on non-ASCII text included (Python's own
/// `re` would differ: see `tests/fixtures/patterns/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// `STRING_PATTERN`: distro, version, version_code, profile, package names.
    String,
    /// `TARGET_PATTERN`.
    Target,
    /// asu-builder's package pattern: `STRING_PATTERN` with one optional
    /// leading `+`. The reference's hash and validation strip that prefix, so
    /// accepting it here loses nothing (docs/compatibility.md).
    Package,
    /// `PKG_VERSION_PATTERN`.
    PkgVersion,
    /// `REPO_NAME_PATTERN`.
    RepoName,
    /// `REPO_URL_PATTERN`.
    RepoUrl,
}

impl Pattern {
    pub const ALL: [Pattern; 6] = [
        Pattern::String,
        Pattern::Target,
        Pattern::Package,
        Pattern::PkgVersion,
        Pattern::RepoName,
        Pattern::RepoUrl,
    ];

    pub fn text(self) -> &'static str {
        match self {
            Pattern::String => r"^[\w.,-]*$",
            Pattern::Target => r"^[\w]*/[\w]*$",
            Pattern::Package => r"^\+?[\w.,-]*$",
            Pattern::PkgVersion => r"^[\w+.,~-]*$",
            Pattern::RepoName => r"^[\w.-]+$",
            Pattern::RepoUrl => r"^https?://\S+$",
        }
    }

    pub fn is_match(self, s: &str) -> bool {
        // Compiled once for the process, on first use.
        static COMPILED: LazyLock<Vec<Regex>> = LazyLock::new(|| {
            Pattern::ALL
                .iter()
                .map(|p| Regex::new(p.text()).expect("the field patterns are valid regexes"))
                .collect()
        });
        COMPILED[self as usize].is_match(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Every vector the reference's validator answered (pydantic, see
    /// `tests/fixtures/patterns/generate.py`), ASCII and non-ASCII alike.
    #[test]
    fn patterns_answer_like_the_reference() {
        let fixture: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/patterns/field-patterns.json"
        ))
        .unwrap();
        let name = |p: Pattern| match p {
            Pattern::String => "STRING_PATTERN",
            Pattern::Target => "TARGET_PATTERN",
            Pattern::Package => "PACKAGE_PATTERN",
            Pattern::PkgVersion => "PKG_VERSION_PATTERN",
            Pattern::RepoName => "REPO_NAME_PATTERN",
            Pattern::RepoUrl => "REPO_URL_PATTERN",
        };
        for p in Pattern::ALL {
            assert_eq!(fixture["patterns"][name(p)], p.text(), "verbatim");
        }
        let vectors = fixture["vectors"].as_array().unwrap();
        assert!(vectors.len() > 300, "{}", vectors.len());
        let mut checked = 0;
        for v in vectors {
            let input = v["input"].as_str().unwrap();
            for p in Pattern::ALL {
                let want = v["matches"][name(p)].as_bool().unwrap();
                assert_eq!(p.is_match(input), want, "{} on {input:?}", name(p));
                checked += 1;
            }
        }
        assert_eq!(checked, vectors.len() * Pattern::ALL.len());
    }

    /// Where Unicode's `\w` (the reference's) and Python's `str.isalnum`
    /// part: combining marks, connector punctuation and joiners are word
    /// characters, numbers that are not decimal digits are not.
    #[test]
    fn word_characters_are_unicode_word_characters() {
        for ok in [
            "e\u{301}",
            "a\u{203f}b",
            "a\u{200d}b",
            "日本",
            "\u{663}",
            "Ⅻ",
        ] {
            assert!(Pattern::String.is_match(ok), "{ok:?}");
        }
        for bad in ["²", "½", "a\u{bf0}", "a b", "a\u{a0}b", "abc\n", "😀"] {
            assert!(!Pattern::String.is_match(bad), "{bad:?}");
        }
        assert!(Pattern::RepoUrl.is_match("https://a\u{1c}b"));
        assert!(!Pattern::RepoUrl.is_match("https://a\u{2003}b"));
    }
}
