use super::*;
use serde_json::json;

const LIMITS: Limits = Limits {
    max_defaults_length: 20480,
    max_custom_rootfs_size_mb: 1024,
};

fn parse(s: &str) -> Result<BuildRequest, Unprocessable> {
    parse_build_request(s.as_bytes(), LIMITS)
}

fn first_loc(e: &Unprocessable) -> Vec<Value> {
    e.errors[0].loc.clone()
}

#[test]
fn minimal_request_gets_reference_defaults() {
    let r = parse(r#"{"version":"1.2.3","target":"a/b","profile":"p","bogus":1}"#).unwrap();
    assert_eq!(r.distro, "openwrt");
    assert_eq!(r.repositories_mode, "replace");
    assert!(!r.diff_packages);
    assert_eq!(r.rootfs_size_mb, None);
}

#[test]
fn missing_required_fields_are_listed() {
    let e = parse(r#"{"version":"1.2.3"}"#).unwrap_err();
    assert_eq!(e.errors.len(), 2);
    assert_eq!(first_loc(&e), vec![json!("body"), json!("target")]);
    assert_eq!(
        e.detail(),
        "Invalid value for 'target': Field required (and 1 more errors)."
    );
    assert_eq!(e.body()["status"], 422);
}

#[test]
fn patterns_are_enforced() {
    for bad in [
        r#"{"version":"1.2.3;rm","target":"a/b","profile":"p"}"#,
        r#"{"version":"1","target":"ab","profile":"p"}"#,
        r#"{"version":"1","target":"a/b/c","profile":"p"}"#,
        r#"{"version":"1","target":"a/b","profile":"p q"}"#,
        r#"{"version":"1","target":"a/b","profile":"p","packages":["a b"]}"#,
        r#"{"version":"1","target":"a/b","profile":"p","packages_versions":{"a":"1 2"}}"#,
        r#"{"version":"1","target":"a/b","profile":"p","repositories":{"x":"ftp://a"}}"#,
        r#"{"version":"1","target":"a/b","profile":"p","repositories":{"x y":"http://a"}}"#,
        r#"{"version":"1","target":"a/b","profile":"p","repositories_mode":"merge"}"#,
        r#"{"version":"1","target":"a/b","profile":"p","packages":"vim"}"#,
        r#"{"version":1,"target":"a/b","profile":"p"}"#,
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn lenient_fields_rootfs_size_and_filesystem() {
    let r = parse(
        r#"{"version":"1","target":"a/b","profile":"p","rootfs_size_mb":"","filesystem":"tmpfs"}"#,
    )
    .unwrap();
    assert_eq!(r.rootfs_size_mb, None);
    assert_eq!(r.filesystem, None);
    let r = parse(r#"{"version":"1","target":"a/b","profile":"p","rootfs_size_mb":"256","filesystem":"ext4"}"#)
        .unwrap();
    assert_eq!(r.rootfs_size_mb, Some(256));
    assert_eq!(r.filesystem.as_deref(), Some("ext4"));
}

#[test]
fn rootfs_bounds() {
    for (v, ok) in [
        ("0", false),
        ("1", true),
        ("1024", true),
        ("1025", false),
        ("\"x\"", false),
        ("2.5", false),
        ("256.0", true),
    ] {
        let body =
            format!(r#"{{"version":"1","target":"a/b","profile":"p","rootfs_size_mb":{v}}}"#);
        assert_eq!(parse(&body).is_ok(), ok, "{v}");
    }
}

#[test]
fn defaults_length_limit() {
    let long = "x".repeat(20481);
    let body = format!(r#"{{"version":"1","target":"a/b","profile":"p","defaults":"{long}"}}"#);
    let e = parse(&body).unwrap_err();
    assert_eq!(e.errors[0].kind, "string_too_long");
    let ok = format!(
        r#"{{"version":"1","target":"a/b","profile":"p","defaults":"{}"}}"#,
        &long[1..]
    );
    assert!(parse(&ok).is_ok());
}

#[test]
fn too_many_items_is_one_error_not_one_per_item() {
    let many: Vec<String> = (0..MAX_PACKAGES + 1).map(|i| format!("\"p{i}\"")).collect();
    let body = format!(
        r#"{{"version":"1","target":"a/b","profile":"p","packages":[{}]}}"#,
        many.join(",")
    );
    let e = parse(&body).unwrap_err();
    assert_eq!(e.count(), 1);
    assert_eq!(e.errors[0].kind, "too_long");
    assert_eq!(first_loc(&e), vec![json!("body"), json!("packages")]);
    let ok: Vec<String> = (0..MAX_PACKAGES).map(|i| format!("\"p{i}\"")).collect();
    let body = format!(
        r#"{{"version":"1","target":"a/b","profile":"p","packages":[{}]}}"#,
        ok.join(",")
    );
    assert_eq!(parse(&body).unwrap().packages.len(), MAX_PACKAGES);
}

#[test]
fn errors_are_listed_up_to_the_limit_and_counted_beyond() {
    let bad: Vec<&str> = vec!["\"a b\""; 500];
    let body = format!(
        r#"{{"version":"1","target":"a/b","profile":"p","packages":[{}]}}"#,
        bad.join(",")
    );
    let e = parse(&body).unwrap_err();
    assert_eq!(e.errors.len(), MAX_LISTED_ERRORS);
    assert_eq!(e.count(), 500);
    assert!(
        e.detail().ends_with("(and 499 more errors)."),
        "{}",
        e.detail()
    );
    let rendered = e.body();
    assert_eq!(rendered["errors_not_listed"], 480);
    assert!(serde_json::to_vec(&rendered).unwrap().len() < 8 * 1024);
}

#[test]
fn long_strings_and_keys_are_refused_and_quoted_short() {
    let long = "k".repeat(10_000);
    let body = format!(
        r#"{{"version":"1","target":"a/b","profile":"p","packages_versions":{{"{long}":"1"}}}}"#
    );
    let e = parse(&body).unwrap_err();
    assert_eq!(e.errors[0].kind, "string_too_long");
    let quoted = e.errors[0].loc[2].as_str().unwrap();
    assert_eq!(quoted.chars().count(), MAX_QUOTED_CHARS + 1);
    assert!(serde_json::to_vec(&e.body()).unwrap().len() < 1024);
    let body = format!(
        r#"{{"version":"{}","target":"a/b","profile":"p"}}"#,
        "1".repeat(129)
    );
    assert_eq!(parse(&body).unwrap_err().errors[0].kind, "string_too_long");
    let url = format!("https://x/{}", "a".repeat(MAX_URL_CHARS));
    let body =
        format!(r#"{{"version":"1","target":"a/b","profile":"p","repositories":{{"r":"{url}"}}}}"#);
    assert_eq!(parse(&body).unwrap_err().errors[0].kind, "string_too_long");
}

#[test]
fn not_json_or_not_object_or_empty() {
    assert_eq!(parse("").unwrap_err().errors[0].kind, "missing");
    assert_eq!(parse("{").unwrap_err().errors[0].kind, "json_invalid");
    assert_eq!(
        parse("[1]").unwrap_err().errors[0].kind,
        "model_attributes_type"
    );
}

#[test]
fn repositories_keep_order_and_bool_is_lax() {
    let r = parse(r#"{"version":"1","target":"a/b","profile":"p","diff_packages":"true","repositories":{"z":"http://z","a":"https://a"}}"#)
        .unwrap();
    assert!(r.diff_packages);
    let names: Vec<&String> = r.repositories.keys().collect();
    assert_eq!(names, ["z", "a"]);
}
