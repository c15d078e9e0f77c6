//! The stored build result, made from the ImageBuilder's profiles.json,
//! and the finished-build answer around it.

use crate::models::{BuildRequest, Phase};
use serde_json::{Map, Value};
use std::path::Path;
use std::time::Duration;

pub use crate::store::{file_sha256, is_plain_file_name};

/// Image types a device can install (the reference signs exactly these).
pub const INSTALLABLE_TYPES: [&str; 5] = [
    "sysupgrade",
    "factory",
    "combined",
    "combined-efi",
    "sdcard",
];

/// `build_at` as the reference writes it: `%Y-%m-%dT%H:%M:%S.%fZ` of
/// `source_date_epoch` (a number or a numeric string; 0 when absent or
/// unreadable), in UTC.
pub fn build_at(source_date_epoch: Option<&Value>) -> String {
    let secs = match source_date_epoch {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f.trunc() as i64))
            .unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse::<i64>().unwrap_or(0),
        _ => 0,
    };
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}

/// The built profile's entry in profiles.json.
pub fn profile_entry<'a>(
    profiles_json: &'a Map<String, Value>,
    profile: &str,
) -> Option<&'a Map<String, Value>> {
    profiles_json.get("profiles")?.get(profile)?.as_object()
}

/// Names of the installable images of a profile entry that are plain file
/// names (nothing that could point outside the store directory).
pub fn installable_images(profile: &Map<String, Value>) -> Vec<String> {
    profile
        .get("images")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|img| {
            img.get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| INSTALLABLE_TYPES.contains(&t))
        })
        .filter_map(|img| img.get("name").and_then(Value::as_str))
        .filter(|n| is_plain_file_name(n))
        .map(str::to_owned)
        .collect()
}

/// Result map in the reference's key order: profiles.json top level (minus
/// `profiles`), `manifest`, the profile's keys, `id`, `bin_dir`,
/// `build_cmd_packages`, `build_at`, `detail`. `Err` carries the
/// reference's text when the profile is missing.
pub fn build_result(
    mut profiles_json: Map<String, Value>,
    profile: &str,
    manifest: Map<String, Value>,
    bin_dir: &str,
    build_cmd_packages: &[String],
) -> Result<Map<String, Value>, String> {
    let entry = profile_entry(&profiles_json, profile)
        .cloned()
        .ok_or_else(|| "Profile not found in JSON file".to_owned())?;
    profiles_json.insert("manifest".into(), Value::Object(manifest));
    for (k, v) in entry {
        profiles_json.insert(k, v);
    }
    profiles_json.insert("id".into(), profile.into());
    profiles_json.insert("bin_dir".into(), bin_dir.into());
    profiles_json.insert(
        "build_cmd_packages".into(),
        Value::Array(
            build_cmd_packages
                .iter()
                .cloned()
                .map(Value::String)
                .collect(),
        ),
    );
    // shift_remove keeps the order of the remaining keys.
    profiles_json.shift_remove("profiles");
    let at = build_at(profiles_json.get("source_date_epoch"));
    profiles_json.insert("build_at".into(), at.into());
    profiles_json.insert("detail".into(), "done".into());
    Ok(profiles_json)
}

/// Set every listed image's `sha256` to the hash of the file actually in
/// `store_dir`, so clients that verify downloads succeed even after
/// signing changed the file. `sha256_unsigned` is left as the ImageBuilder
/// wrote it. Returns how many images were re-hashed. (docs/compatibility.md,
/// "Image checksums after signing".)
pub fn refresh_checksums(result: &mut Map<String, Value>, store_dir: &Path) -> usize {
    let Some(images) = result.get_mut("images").and_then(Value::as_array_mut) else {
        return 0;
    };
    let mut count = 0;
    for image in images.iter_mut().filter_map(Value::as_object_mut) {
        let Some(name) = image.get("name").and_then(Value::as_str) else {
            continue;
        };
        if !is_plain_file_name(name) {
            log::warn!("image name {name:?} is not a plain file name; checksum kept");
            continue;
        }
        let path = store_dir.join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_file() => match file_sha256(&path) {
                Ok(sum) => {
                    image.insert("sha256".into(), sum.into());
                    count += 1;
                }
                Err(e) => log::warn!("cannot hash {}: {e}", path.display()),
            },
            _ => log::warn!("image {} is missing from the store", path.display()),
        }
    }
    count
}

/// What the finished-build answer is made of (a build's or an adoption's).
pub struct Done<'a> {
    /// The validated request, echoed as `request`.
    pub request: &'a BuildRequest,
    pub stdout: &'a str,
    pub stderr: &'a str,
    pub build_cmd: &'a [String],
    /// `build_result`'s map.
    pub result: &'a Map<String, Value>,
    pub enqueued_at: &'a str,
    pub request_hash: &'a str,
    /// Wall time this server spent producing the result.
    pub duration: Duration,
    /// When it was produced (RFC 3339, UTC).
    pub finished_at: &'a str,
}

/// The 200 body, keyed in the order the reference builds it: job meta,
/// status, the build's return value, then `enqueued_at` and `request_hash`;
/// after them the two keys the reference lacks, `build_duration` (seconds,
/// a number) and `finished_at` (RFC 3339, UTC). Clients that do not know
/// them ignore them; nothing else of the reference's shape changes.
pub fn done_body(d: &Done<'_>) -> Value {
    let mut body = Map::new();
    body.insert("detail".into(), "done".into());
    body.insert("imagebuilder_status".into(), Phase::Done.as_str().into());
    body.insert(
        "request".into(),
        serde_json::to_value(d.request).unwrap_or(Value::Null),
    );
    body.insert("stdout".into(), d.stdout.into());
    body.insert("stderr".into(), d.stderr.into());
    body.insert("build_cmd".into(), Value::from(d.build_cmd.to_vec()));
    body.insert("status".into(), 200.into());
    for (k, v) in d.result {
        body.insert(k.clone(), v.clone());
    }
    body.insert("enqueued_at".into(), d.enqueued_at.into());
    body.insert("request_hash".into(), d.request_hash.into());
    body.insert("build_duration".into(), duration_seconds(d.duration).into());
    body.insert("finished_at".into(), d.finished_at.into());
    Value::Object(body)
}

/// Seconds with millisecond resolution, as a JSON number.
pub fn duration_seconds(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// `finished_at` for a result produced now: RFC 3339, UTC, whole seconds.
pub fn finished_at_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PROFILES: &str = include_str!("../../tests/fixtures/imagebuilder/profiles.json");

    fn manifest() -> Map<String, Value> {
        json!({"base-files": "1553-r15666-8019c54d8a", "busybox": "1.36.1-1"})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn build_at_formats() {
        assert_eq!(
            build_at(Some(&json!(1612136917))),
            "2021-01-31T23:48:37.000000Z"
        );
        assert_eq!(
            build_at(Some(&json!("1612136917"))),
            "2021-01-31T23:48:37.000000Z"
        );
        assert_eq!(build_at(None), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            build_at(Some(&json!("soon"))),
            "1970-01-01T00:00:00.000000Z"
        );
    }

    #[test]
    fn result_shape_and_key_order() {
        let profiles: Map<String, Value> = serde_json::from_str(PROFILES).unwrap();
        let result = build_result(
            profiles,
            "testprofile",
            manifest(),
            "abc",
            &["-ppp".to_string(), "vim".to_string()],
        )
        .unwrap();
        let keys: Vec<&str> = result.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "arch_packages",
                "default_packages",
                "linux_kernel",
                "metadata_version",
                "source_date_epoch",
                "target",
                "version_code",
                "version_number",
                "manifest",
                "device_packages",
                "image_prefix",
                "images",
                "supported_devices",
                "titles",
                "id",
                "bin_dir",
                "build_cmd_packages",
                "build_at",
                "detail"
            ]
        );
        assert_eq!(result["id"], "testprofile");
        assert_eq!(result["bin_dir"], "abc");
        assert_eq!(result["build_cmd_packages"], json!(["-ppp", "vim"]));
        assert_eq!(result["build_at"], "2024-09-23T12:34:46.000000Z");
        assert_eq!(result["detail"], "done");
        assert_eq!(result["manifest"]["busybox"], "1.36.1-1");
    }

    #[test]
    fn the_done_body_keeps_the_reference_keys_then_adds_two() {
        let request = BuildRequest {
            version: "1.2.3".into(),
            ..BuildRequest::default()
        };
        let result = json!({"id": "p", "bin_dir": "abc", "detail": "done"});
        let body = done_body(&Done {
            request: &request,
            stdout: "out",
            stderr: "",
            build_cmd: &["make".to_string(), "image".to_string()],
            result: result.as_object().unwrap(),
            enqueued_at: "2024-01-01T00:00:00.000000Z",
            request_hash: "h",
            duration: Duration::from_micros(12_345_678),
            finished_at: "2024-01-01T00:00:13Z",
        });
        let keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "detail",
                "imagebuilder_status",
                "request",
                "stdout",
                "stderr",
                "build_cmd",
                "status",
                "id",
                "bin_dir",
                "enqueued_at",
                "request_hash",
                "build_duration",
                "finished_at"
            ]
        );
        assert_eq!(body["build_duration"], json!(12.346));
        assert_eq!(body["request"]["version"], "1.2.3");
        assert_eq!(body["status"], 200);
        let at = finished_at_now();
        assert!(chrono::DateTime::parse_from_rfc3339(&at).is_ok(), "{at}");
        assert!(at.ends_with('Z'), "{at}");
    }

    #[test]
    fn missing_profile_is_the_reference_error() {
        let profiles: Map<String, Value> = serde_json::from_str(PROFILES).unwrap();
        assert_eq!(
            build_result(profiles, "nope", manifest(), "abc", &[]).unwrap_err(),
            "Profile not found in JSON file"
        );
        assert!(build_result(Map::new(), "p", Map::new(), "x", &[]).is_err());
    }

    #[test]
    fn installable_images_skip_kernels_and_paths() {
        let entry = json!({"images": [
            {"type": "sysupgrade", "name": "a.bin"},
            {"type": "kernel", "name": "k.bin"},
            {"type": "factory", "name": "../evil.bin"},
            {"type": "combined-efi", "name": "c.img.gz"},
            {"type": "sdcard"}
        ]});
        assert_eq!(
            installable_images(entry.as_object().unwrap()),
            ["a.bin", "c.img.gz"]
        );
    }

    #[test]
    fn checksums_come_from_the_stored_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.bin"), b"test").unwrap();
        let mut result = json!({"images": [
            {"name": "a.bin", "sha256": "stale", "sha256_unsigned": "orig"},
            {"name": "missing.bin", "sha256": "keep"},
            {"name": "../a.bin", "sha256": "keep"}
        ]})
        .as_object()
        .unwrap()
        .clone();
        assert_eq!(refresh_checksums(&mut result, dir.path()), 1);
        assert_eq!(
            result["images"][0]["sha256"],
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert_eq!(result["images"][0]["sha256_unsigned"], "orig");
        assert_eq!(result["images"][1]["sha256"], "keep");
        assert_eq!(result["images"][2]["sha256"], "keep");
    }
}
