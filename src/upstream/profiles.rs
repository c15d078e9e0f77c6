//! A target's `profiles.json`, with the lookup table the reference builds in
//! `reload_profiles`: every profile id and every `supported_devices` name
//! (`,` → `_`) maps to the canonical profile id.

use crate::models::sanitize_profile;
use serde_json::{Map, Value};
use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub struct ProfilesIndex {
    raw: Map<String, Value>,
    aliases: HashMap<String, String>,
}

/// Python's `%Y-%m-%dT%H:%M:%S.%fZ` of a Unix time, as the reference renders
/// `build_at` (UTC, microseconds always shown).
pub fn format_build_at(epoch_seconds: i64) -> String {
    chrono::DateTime::from_timestamp(epoch_seconds, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// `source_date_epoch` arrives as a string in older files and as a number in
/// newer ones.
fn epoch_of(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

impl ProfilesIndex {
    pub fn parse(body: &[u8]) -> Result<ProfilesIndex, String> {
        let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let Value::Object(raw) = value else {
            return Err("not a JSON object".into());
        };
        let mut aliases = HashMap::new();
        if let Some(Value::Object(profiles)) = raw.get("profiles") {
            for (id, data) in profiles {
                let devices = data
                    .get("supported_devices")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str);
                // The id goes last so it wins over another profile's alias
                // only when it comes later, exactly like the reference dict.
                for name in devices.chain(std::iter::once(id.as_str())) {
                    aliases.insert(sanitize_profile(name), id.clone());
                }
            }
        }
        Ok(ProfilesIndex { raw, aliases })
    }

    /// The whole file as upstream sent it.
    pub fn raw(&self) -> &Map<String, Value> {
        &self.raw
    }

    /// Canonical id for an exact profile id or supported device name.
    pub fn lookup(&self, name: &str) -> Option<&str> {
        self.aliases
            .get(&sanitize_profile(name))
            .map(String::as_str)
    }

    /// Canonical id as the build will use it: an alias lookup, or `generic`
    /// on targets whose only profile is `generic` (x86, armsr, …), whatever
    /// board name was sent.
    pub fn resolve(&self, name: &str) -> Option<&str> {
        self.lookup(name).or_else(|| {
            if self.aliases.len() == 1 {
                self.aliases.get("generic").map(String::as_str)
            } else {
                None
            }
        })
    }

    pub fn profile(&self, id: &str) -> Option<&Map<String, Value>> {
        self.raw.get("profiles")?.get(id)?.as_object()
    }

    pub fn version_code(&self) -> Option<&str> {
        self.raw.get("version_code").and_then(Value::as_str)
    }

    /// `kmods/<dir>` of post-split releases: `version-release-vermagic`.
    pub fn kernel_dir(&self) -> Option<String> {
        let k = self.raw.get("linux_kernel")?;
        let part = |key: &str| match k.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Some(format!(
            "{}-{}-{}",
            part("version")?,
            part("release")?,
            part("vermagic")?
        ))
    }

    /// The per-profile document: top-level metadata without `profiles`,
    /// then the profile's own keys, then `id` and `build_at`.
    pub fn profile_document(&self, id: &str) -> Option<Map<String, Value>> {
        let profile = self.profile(id)?;
        let mut out: Map<String, Value> = self
            .raw
            .iter()
            .filter(|(k, _)| k.as_str() != "profiles")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in profile {
            out.insert(k.clone(), v.clone());
        }
        out.insert("id".into(), Value::String(id.to_owned()));
        let epoch = epoch_of(self.raw.get("source_date_epoch"));
        out.insert("build_at".into(), Value::String(format_build_at(epoch)));
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ATH79: &[u8] = br#"{
        "arch_packages": "mips_24kc",
        "linux_kernel": {"release": "1", "vermagic": "abc", "version": "6.6.74"},
        "profiles": {
            "8dev_carambola2": {"supported_devices": ["8dev,carambola2", "carambola2"], "titles": []},
            "tplink_x": {"supported_devices": ["tplink,x"]}
        },
        "source_date_epoch": 1737902564,
        "target": "ath79/generic",
        "version_code": "r28695-22d1e6cd26"
    }"#;

    #[test]
    fn aliases_resolve_to_canonical_ids() {
        let idx = ProfilesIndex::parse(ATH79).unwrap();
        assert_eq!(idx.resolve("8dev_carambola2"), Some("8dev_carambola2"));
        assert_eq!(idx.resolve("8dev,carambola2"), Some("8dev_carambola2"));
        assert_eq!(idx.resolve("carambola2"), Some("8dev_carambola2"));
        assert_eq!(idx.resolve("tplink_x"), Some("tplink_x"));
        assert_eq!(idx.resolve("nope"), None);
        assert_eq!(idx.version_code(), Some("r28695-22d1e6cd26"));
        assert_eq!(idx.kernel_dir().as_deref(), Some("6.6.74-1-abc"));
    }

    #[test]
    fn single_generic_profile_takes_any_name() {
        let idx = ProfilesIndex::parse(
            br#"{"profiles": {"generic": {"supported_devices": []}}, "source_date_epoch": "1612136917"}"#,
        )
        .unwrap();
        assert_eq!(idx.resolve("some_random_cpu"), Some("generic"));
        assert_eq!(idx.lookup("some_random_cpu"), None);
        assert_eq!(idx.kernel_dir(), None);
        let doc = idx.profile_document("generic").unwrap();
        assert_eq!(doc["build_at"], "2021-01-31T23:48:37.000000Z");
        assert_eq!(doc["id"], "generic");
    }

    #[test]
    fn generic_fallback_needs_a_single_entry() {
        let idx =
            ProfilesIndex::parse(br#"{"profiles": {"generic": {"supported_devices": ["pc"]}}}"#)
                .unwrap();
        assert_eq!(idx.resolve("pc"), Some("generic"));
        assert_eq!(idx.resolve("other"), None);
    }

    #[test]
    fn profile_document_key_order() {
        let idx = ProfilesIndex::parse(ATH79).unwrap();
        let doc = idx.profile_document("8dev_carambola2").unwrap();
        let keys: Vec<&str> = doc.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "arch_packages",
                "linux_kernel",
                "source_date_epoch",
                "target",
                "version_code",
                "supported_devices",
                "titles",
                "id",
                "build_at"
            ]
        );
        assert_eq!(doc["build_at"], "2025-01-26T14:42:44.000000Z");
    }

    #[test]
    fn malformed_files() {
        assert!(ProfilesIndex::parse(b"not json").is_err());
        let empty = ProfilesIndex::parse(b"{}").unwrap();
        assert_eq!(empty.resolve("generic"), None);
    }
}
