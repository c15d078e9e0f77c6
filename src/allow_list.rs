//! Which repository URLs clients may add to a build: the operator's
//! `repository_allow_list`, a little stricter than the reference's
//! (docs/compatibility.md). One policy, applied twice, as the reference
//! does: `validate` refuses a request naming any other URL (400), and the
//! builder filters again before it writes repository files (defence in
//! depth, e.g. for a job queued under an older configuration).

/// Whether `url` is allowed by `allow_list`: same scheme (http or https),
/// same host and port, no user info, and its path lies below an allowed
/// path on a segment boundary (`/releases` allows `/releases/23.05`, not
/// `/releases2`). An empty list allows nothing. Raw whitespace and control
/// characters are refused because the URL is written into config files.
pub fn url_allowed(url: &str, allow_list: &[String]) -> bool {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    if !matches!(parsed.scheme(), "http" | "https")
        || !parsed.username().is_empty()
        || parsed.password().is_some()
        || parsed.host_str().is_none()
    {
        return false;
    }
    allow_list.iter().any(|allowed| {
        let Ok(a) = url::Url::parse(allowed) else {
            return false;
        };
        let prefix = format!("{}/", a.path().trim_end_matches('/'));
        a.scheme() == parsed.scheme()
            && a.host_str() == parsed.host_str()
            && a.port_or_known_default() == parsed.port_or_known_default()
            && parsed.path().starts_with(&prefix)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn allow_list_like_the_reference() {
        let a = allow(&["https://downloads.openwrt.org"]);
        assert!(!url_allowed("https://example.com/repo", &[]));
        assert!(url_allowed(
            "https://downloads.openwrt.org/releases/23.05",
            &a
        ));
        assert!(!url_allowed(
            "https://downloads.openwrt.org.evil.com/packages",
            &a
        ));
        assert!(!url_allowed(
            "https://downloads.openwrt.org@evil.com/packages",
            &a
        ));
        assert!(!url_allowed("http://downloads.openwrt.org/releases", &a));
        let r = allow(&["https://downloads.openwrt.org/releases"]);
        assert!(!url_allowed("https://downloads.openwrt.org/snapshots", &r));
        assert!(url_allowed(
            "https://downloads.openwrt.org/releases/23.05",
            &r
        ));
    }

    #[test]
    fn allow_list_is_strict_about_the_rest() {
        let r = allow(&["https://downloads.openwrt.org/releases/"]);
        assert!(!url_allowed(
            "https://downloads.openwrt.org/releases2/x",
            &r
        ));
        assert!(!url_allowed("https://downloads.openwrt.org/releases", &r));
        assert!(!url_allowed(
            "https://downloads.openwrt.org/releases/../snapshots/x",
            &r
        ));
        assert!(!url_allowed(
            "https://user@downloads.openwrt.org/releases/x",
            &r
        ));
        assert!(!url_allowed(
            "https://downloads.openwrt.org:8443/releases/x",
            &r
        ));
        assert!(url_allowed(
            "https://downloads.openwrt.org:443/releases/x",
            &r
        ));
        assert!(!url_allowed(
            "https://downloads.openwrt.org/releases/x\nsrc/gz evil http://e",
            &r
        ));
        assert!(!url_allowed(
            "ftp://downloads.openwrt.org/releases/x",
            &allow(&["ftp://downloads.openwrt.org"])
        ));
        assert!(!url_allowed("not a url", &r));
        assert!(!url_allowed(
            "https://downloads.openwrt.org/releases/x",
            &allow(&["::garbage"])
        ));
    }
}
