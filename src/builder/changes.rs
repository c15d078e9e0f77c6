//! Package changes: adjust the requested package list for the release being
//! built (renamed packages, firmware that became separate packages, …).
//!
//! Two sources: an external service (`package_changes_url`, `POST /apply`)
//! and the built-in rules in `etc/package-changes.yaml`. The service wins when
//! it answers in time; any failure falls back to the built-in rules. A build
//! never fails because of package changes.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

const BUILTIN_YAML: &str = include_str!("../../etc/package-changes.yaml");

/// How long the package changes service may take before we use the
/// built-in rules; it sits on the build's critical path.
pub const REMOTE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub version_prefix: Option<String>,
    #[serde(default)]
    pub min_revision: Option<u64>,
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub profiles: Vec<String>,
    #[serde(default)]
    pub replace: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
    #[serde(default)]
    pub add: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguagePack {
    pub since: String,
    /// Old prefix → new prefix. A map keeps the file's order irrelevant:
    /// each prefix is checked against the package's original name.
    pub rename_prefix: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub language_packs: Vec<LanguagePack>,
    #[serde(default)]
    pub drop_english_translations: bool,
}

/// What the rules look at.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub version: &'a str,
    pub target: &'a str,
    pub profile: &'a str,
    /// Numeric ImageBuilder revision, when known.
    pub revision: Option<u64>,
}

impl Rules {
    pub fn parse(yaml: &str) -> Result<Rules, serde_norway::Error> {
        serde_norway::from_str(yaml)
    }

    /// The rules shipped in the binary.
    pub fn builtin() -> &'static Rules {
        static RULES: OnceLock<Rules> = OnceLock::new();
        RULES.get_or_init(|| {
            Rules::parse(BUILTIN_YAML).unwrap_or_else(|e| {
                // Unreachable in practice: a unit test parses the same text.
                log::error!("built-in package changes do not parse: {e}");
                Rules::default()
            })
        })
    }

    /// Apply every matching rule to `packages`, in place.
    pub fn apply(&self, ctx: &Context, packages: &mut Vec<String>) {
        for rule in self.rules.iter().filter(|r| r.matches(ctx)) {
            for (old, new) in &rule.replace {
                if remove_if_present(packages, old) {
                    add_if_missing(packages, new);
                }
            }
            for p in &rule.remove {
                remove_if_present(packages, p);
            }
            for p in &rule.add {
                add_if_missing(packages, p);
            }
        }
        for pack in &self.language_packs {
            if ctx.version < pack.since.as_str() {
                continue;
            }
            for package in packages.iter_mut() {
                let original = package.clone();
                for (old, new) in &pack.rename_prefix {
                    if original.starts_with(old.as_str()) {
                        // The reference drops every occurrence of the old prefix.
                        *package = format!("{new}{}", original.replace(old.as_str(), ""));
                    }
                }
            }
        }
        if self.drop_english_translations {
            packages.retain(|p| !(p.starts_with("luci-i18n-") && p.ends_with("-en")));
        }
    }
}

impl Rule {
    fn matches(&self, ctx: &Context) -> bool {
        self.version.as_deref().is_none_or(|v| v == ctx.version)
            && self
                .version_prefix
                .as_deref()
                .is_none_or(|p| ctx.version.starts_with(p))
            && self
                .min_revision
                .is_none_or(|min| ctx.revision.is_some_and(|r| r >= min))
            && (self.targets.is_empty() || self.targets.iter().any(|t| t == ctx.target))
            && (self.profiles.is_empty() || self.profiles.iter().any(|p| p == ctx.profile))
    }
}

fn add_if_missing(packages: &mut Vec<String>, package: &str) {
    if !packages.iter().any(|p| p == package) {
        packages.push(package.to_owned());
    }
}

fn remove_if_present(packages: &mut Vec<String>, package: &str) -> bool {
    match packages.iter().position(|p| p == package) {
        Some(i) => {
            packages.remove(i);
            true
        }
        None => false,
    }
}

/// Body of `POST {package_changes_url}/apply`.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteRequest<'a> {
    pub version: &'a str,
    pub target: &'a str,
    pub profile: &'a str,
    pub packages: &'a [String],
    pub default_packages: &'a [String],
    pub diff_packages: bool,
}

#[derive(Debug, Deserialize)]
struct RemoteResponse {
    packages: Vec<String>,
}

/// Ask the package changes service. Any error (connect, timeout, status,
/// body shape) comes back as text for the log.
pub fn apply_remote(base_url: &str, body: &RemoteRequest) -> Result<Vec<String>, String> {
    let url = format!("{}/apply", base_url.trim_end_matches('/'));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(REMOTE_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .post(&url)
        .send_json(body)
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(format!("{url}: HTTP {status}"));
    }
    let parsed: RemoteResponse = response
        .body_mut()
        .with_config()
        .limit(1024 * 1024)
        .read_json()
        .map_err(|e| format!("{url}: bad response: {e}"))?;
    Ok(parsed.packages)
}

/// Which path produced the final package list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Remote,
    Builtin,
}

/// The package list after package changes. Uses the service when
/// `package_changes_url` is set, the built-in rules otherwise or when the
/// service fails; logs which path was taken.
pub fn apply_package_changes(
    package_changes_url: &str,
    ctx: &Context,
    packages: &[String],
    default_packages: &[String],
    diff_packages: bool,
) -> (Vec<String>, Source) {
    if !package_changes_url.is_empty() {
        let body = RemoteRequest {
            version: ctx.version,
            target: ctx.target,
            profile: ctx.profile,
            packages,
            default_packages,
            diff_packages,
        };
        match apply_remote(package_changes_url, &body) {
            Ok(list) => {
                log::info!("package changes: applied by service {package_changes_url}");
                return (list, Source::Remote);
            }
            Err(e) => log::warn!("package changes: service failed ({e}); using built-in rules"),
        }
    }
    let mut list = packages.to_vec();
    Rules::builtin().apply(ctx, &mut list);
    log::info!("package changes: applied built-in rules");
    (list, Source::Builtin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(version: &'a str, target: &'a str, profile: &'a str) -> Context<'a> {
        Context {
            version,
            target,
            profile,
            revision: None,
        }
    }
    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }
    fn builtin(c: &Context, packages: &[&str]) -> Vec<String> {
        let mut p = list(packages);
        Rules::builtin().apply(c, &mut p);
        p
    }

    #[test]
    fn builtin_rules_parse() {
        let rules = Rules::parse(BUILTIN_YAML).unwrap();
        assert_eq!(rules.rules.len(), 20);
        assert!(rules.drop_english_translations);
        assert_eq!(rules.language_packs[0].since, "24.10");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(Rules::parse("rules:\n  - verison: x\n").is_err());
    }

    #[test]
    fn adds_switch_driver_once() {
        let c = ctx("23.05", "ath79/generic", "buffalo_wzr-hp-g300nh-s");
        assert!(builtin(&c, &["kmod-ath9k-htc"]).contains(&"kmod-switch-rtl8366s".into()));
        assert_eq!(
            builtin(&c, &["kmod-ath9k-htc", "kmod-switch-rtl8366s"]),
            ["kmod-ath9k-htc", "kmod-switch-rtl8366s"]
        );
        let rb = ctx("23.05.5", "ath79/generic", "buffalo_wzr-hp-g300nh-rb");
        assert_eq!(builtin(&rb, &[]), ["kmod-switch-rtl8366rb"]);
    }

    #[test]
    fn replace_and_snapshot_removals() {
        let c = ctx("24.10", "ath79/generic", "buffalo_wzr-hp-g300nh-s");
        assert_eq!(builtin(&c, &["auc"]), ["owut"]);
        assert_eq!(builtin(&c, &["x"]), ["x"]);
        let s = ctx("SNAPSHOT", "ath79/generic", "x");
        assert_eq!(
            builtin(
                &s,
                &[
                    "a",
                    "b",
                    "kmod-nf-conntrack",
                    "c",
                    "kmod-nf-conntrack6",
                    "d",
                    "e"
                ]
            ),
            ["a", "b", "kmod-nf-conntrack", "c", "d", "e"]
        );
    }

    #[test]
    fn releases_without_rules_are_untouched() {
        let c = ctx("21.02.0-rc1", "ath79/generic", "buffalo_wzr-hp-g300nh-s");
        assert_eq!(builtin(&c, &["kmod-ath9k-htc"]), ["kmod-ath9k-htc"]);
    }

    #[test]
    fn language_packs_like_the_reference_test() {
        let start = [
            "luci-i18n-english-en",
            "luci-i18n-opkg-ko",
            "luci-i18n-xinetd-lt",
            "luci-i18n-opkg-en",
            "luci-i18n-opkg-zh-cn",
        ];
        let c = ctx("23.05.5", "mediatek/mt7622", "foobar");
        let step1 = builtin(&c, &start);
        assert_eq!(
            step1,
            [
                "luci-i18n-opkg-ko",
                "luci-i18n-xinetd-lt",
                "luci-i18n-opkg-zh-cn",
                "kmod-mt7622-firmware"
            ]
        );
        let c2 = ctx("24.10.0-rc5", "mediatek/mt7622", "foobar");
        let mut step2 = step1.clone();
        Rules::builtin().apply(&c2, &mut step2);
        assert_eq!(
            step2,
            [
                "luci-i18n-package-manager-ko",
                "luci-i18n-xinetd-lt",
                "luci-i18n-package-manager-zh-cn",
                "kmod-mt7622-firmware",
                "fitblk"
            ]
        );
    }

    #[test]
    fn lantiq_gets_dsa_and_firmware() {
        let c = ctx("25.12.0", "lantiq/xrx200", "avm_fritz7490");
        assert_eq!(
            builtin(&c, &["luci"]),
            [
                "luci",
                "kmod-dsa-gswip",
                "xrx200-rev1.1-phy11g-firmware",
                "xrx200-rev1.2-phy11g-firmware"
            ]
        );
    }

    #[test]
    fn min_revision_needs_a_known_revision() {
        let rules = Rules::parse("rules:\n  - min_revision: 100\n    add: [x]\n").unwrap();
        let mut p = Vec::new();
        rules.apply(&ctx("1.0.0", "t/s", "p"), &mut p);
        assert!(p.is_empty());
        let c = Context {
            revision: Some(100),
            ..ctx("1.0.0", "t/s", "p")
        };
        rules.apply(&c, &mut p);
        assert_eq!(p, ["x"]);
    }

    /// A one-shot HTTP server on 127.0.0.1 answering with `status`/`body`;
    /// returns its base URL and the request body it received.
    fn serve_once(status: u16, body: &'static str) -> (String, std::thread::JoinHandle<String>) {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let url = format!("http://{}", server.server_addr().to_ip().unwrap());
        let handle = std::thread::spawn(move || {
            let mut req = server.recv().unwrap();
            let mut got = String::new();
            req.as_reader().read_to_string(&mut got).unwrap();
            let got = format!("{} {}\n{got}", req.method(), req.url());
            req.respond(tiny_http::Response::from_string(body).with_status_code(status))
                .unwrap();
            got
        });
        (url, handle)
    }

    #[test]
    fn remote_service_is_used_when_it_answers() {
        let (url, handle) = serve_once(200, r#"{"packages": ["remote-a", "remote-b"]}"#);
        let c = ctx("24.10.0", "ath79/generic", "p");
        let (list, source) =
            apply_package_changes(&url, &c, &list(&["auc"]), &list(&["base-files"]), true);
        assert_eq!(source, Source::Remote);
        assert_eq!(list, ["remote-a", "remote-b"]);
        let seen = handle.join().unwrap();
        assert!(seen.starts_with("POST /apply\n"), "{seen}");
        let body: serde_json::Value =
            serde_json::from_str(seen.split_once('\n').unwrap().1).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"version": "24.10.0", "target": "ath79/generic", "profile": "p",
                "packages": ["auc"], "default_packages": ["base-files"], "diff_packages": true})
        );
    }

    #[test]
    fn remote_failures_fall_back_to_builtin_rules() {
        let c = ctx("24.10.0", "ath79/generic", "p");
        for (status, body) in [(500, "{}"), (200, "not json"), (200, r#"{"pkgs": []}"#)] {
            let (url, handle) = serve_once(status, body);
            let (list, source) = apply_package_changes(&url, &c, &list(&["auc"]), &[], false);
            assert_eq!(source, Source::Builtin, "{status} {body}");
            assert_eq!(list, ["owut"]);
            handle.join().unwrap();
        }
        // Nothing listening.
        let (list, source) =
            apply_package_changes("http://127.0.0.1:9", &c, &list(&["auc"]), &[], false);
        assert_eq!((list, source), (vec!["owut".to_string()], Source::Builtin));
        // Not configured.
        assert_eq!(
            apply_package_changes("", &c, &[], &[], false).1,
            Source::Builtin
        );
    }
}
