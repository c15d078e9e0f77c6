//! Build request body → `BuildRequest`, with the reference model's types,
//! patterns and bounds. Violations become a readable 422
//! (docs/compatibility.md, "422 bodies"); unknown keys are ignored like
//! pydantic does.

use super::BuildRequest;
use super::patterns::Pattern;
use serde_json::{Map, Value, json};

/// Limits that come from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_defaults_length: usize,
    pub max_custom_rootfs_size_mb: u64,
}

/// Filesystems the ImageBuilder knows; anything else is ignored
/// (docs/compatibility.md, "Lenient fields").
pub const FILESYSTEMS: &[&str] = &[
    "squashfs",
    "ext4",
    "ubifs",
    "erofs",
    "jffs2",
    "jffs2-nand",
    "targz",
    "cpiogz",
];

/// One field problem, in pydantic's vocabulary so existing tooling that
/// reads `errors[].type` keeps working.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub loc: Vec<Value>,
    pub msg: String,
    pub kind: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Unprocessable {
    pub errors: Vec<FieldError>,
}

impl Unprocessable {
    fn single(loc: Vec<Value>, msg: impl Into<String>, kind: &'static str) -> Self {
        Unprocessable {
            errors: vec![FieldError {
                loc,
                msg: msg.into(),
                kind,
            }],
        }
    }

    /// One human sentence naming the first field and its rule.
    pub fn detail(&self) -> String {
        let Some(first) = self.errors.first() else {
            return "Invalid request body.".into();
        };
        let field: Vec<String> = first
            .loc
            .iter()
            .skip(1)
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        let mut s = if field.is_empty() {
            format!("Invalid request body: {}", first.msg)
        } else {
            format!("Invalid value for '{}': {}", field.join("."), first.msg)
        };
        if self.errors.len() > 1 {
            s.push_str(&format!(" (and {} more errors)", self.errors.len() - 1));
        }
        s.push('.');
        s
    }

    pub fn body(&self) -> Value {
        let errors: Vec<Value> = self
            .errors
            .iter()
            .map(|e| json!({"loc": e.loc, "msg": e.msg, "type": e.kind}))
            .collect();
        json!({
            "status": 422,
            "title": "Unprocessable Entity",
            "detail": self.detail(),
            "errors": errors,
        })
    }
}

struct Collector<'a> {
    obj: &'a Map<String, Value>,
    errors: Vec<FieldError>,
}

fn loc(parts: &[&str]) -> Vec<Value> {
    std::iter::once("body")
        .chain(parts.iter().copied())
        .map(|p| Value::String(p.to_string()))
        .collect()
}

impl Collector<'_> {
    fn push(&mut self, loc: Vec<Value>, msg: impl Into<String>, kind: &'static str) {
        self.errors.push(FieldError {
            loc,
            msg: msg.into(),
            kind,
        });
    }

    fn pattern(&mut self, l: Vec<Value>, pattern: Pattern, s: &str) -> bool {
        if pattern.is_match(s) {
            return true;
        }
        self.push(
            l,
            format!("String should match pattern '{}'", pattern.text()),
            "string_pattern_mismatch",
        );
        false
    }

    /// A string field; `None` when absent, null (for optional fields) or invalid.
    fn string(
        &mut self,
        key: &str,
        pattern: Option<Pattern>,
        required: bool,
        nullable: bool,
    ) -> Option<String> {
        match self.obj.get(key) {
            None if required => {
                self.push(loc(&[key]), "Field required", "missing");
                None
            }
            None => None,
            Some(Value::Null) if nullable => None,
            Some(Value::String(s)) => {
                if let Some(p) = pattern
                    && !self.pattern(loc(&[key]), p, s)
                {
                    return None;
                }
                Some(s.clone())
            }
            Some(_) => {
                self.push(loc(&[key]), "Input should be a valid string", "string_type");
                None
            }
        }
    }

    fn string_list(&mut self, key: &str, pattern: Option<Pattern>) -> Vec<String> {
        match self.obj.get(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let l = vec![Value::from("body"), Value::from(key), Value::from(i)];
                    match item {
                        Value::String(s) => {
                            if pattern.is_none_or(|p| self.pattern(l, p, s)) {
                                out.push(s.clone());
                            }
                        }
                        _ => self.push(l, "Input should be a valid string", "string_type"),
                    }
                }
                out
            }
            Some(_) => {
                self.push(loc(&[key]), "Input should be a valid list", "list_type");
                Vec::new()
            }
        }
    }

    fn string_map(
        &mut self,
        key: &str,
        key_pattern: Pattern,
        value_pattern: Pattern,
    ) -> Map<String, Value> {
        match self.obj.get(key) {
            None => Map::new(),
            Some(Value::Object(m)) => {
                let mut out = Map::new();
                for (k, v) in m {
                    let ok_key = self.pattern(
                        vec![
                            Value::from("body"),
                            Value::from(key),
                            Value::from(k.as_str()),
                            Value::from("[key]"),
                        ],
                        key_pattern,
                        k,
                    );
                    let l = vec![
                        Value::from("body"),
                        Value::from(key),
                        Value::from(k.as_str()),
                    ];
                    match v {
                        Value::String(s) => {
                            if self.pattern(l, value_pattern, s) && ok_key {
                                out.insert(k.clone(), v.clone());
                            }
                        }
                        _ => self.push(l, "Input should be a valid string", "string_type"),
                    }
                }
                out
            }
            Some(_) => {
                self.push(
                    loc(&[key]),
                    "Input should be a valid dictionary",
                    "dict_type",
                );
                Map::new()
            }
        }
    }

    /// pydantic's lax bool: true/false, 0/1 and the usual words.
    fn boolean(&mut self, key: &str) -> bool {
        let parsed = match self.obj.get(key) {
            None => return false,
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(0.0) => Some(false),
                Some(1.0) => Some(true),
                _ => None,
            },
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "y" | "on" | "t" => Some(true),
                "false" | "0" | "no" | "n" | "off" | "f" => Some(false),
                _ => None,
            },
            Some(_) => None,
        };
        parsed.unwrap_or_else(|| {
            self.push(
                loc(&[key]),
                "Input should be a valid boolean",
                "bool_parsing",
            );
            false
        })
    }

    fn rootfs_size(&mut self, max: u64) -> Option<u64> {
        let l = loc(&["rootfs_size_mb"]);
        let n: i128 = match self.obj.get("rootfs_size_mb") {
            None | Some(Value::Null) => return None,
            // LuCI sends the UCI option as a string, "" when unset
            // (docs/compatibility.md, "Lenient fields").
            Some(Value::String(s)) if s.trim().is_empty() => return None,
            Some(Value::String(s)) => match s.trim().parse::<i128>() {
                Ok(n) => n,
                Err(_) => {
                    self.push(
                        l,
                        "Input should be a valid integer, unable to parse string as an integer",
                        "int_parsing",
                    );
                    return None;
                }
            },
            Some(Value::Number(num)) => {
                if let Some(i) = num.as_i64() {
                    i as i128
                } else if let Some(u) = num.as_u64() {
                    u as i128
                } else {
                    match num.as_f64() {
                        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => f as i128,
                        _ => {
                            self.push(
                                l,
                                "Input should be a valid integer, got a number with a fractional part",
                                "int_from_float",
                            );
                            return None;
                        }
                    }
                }
            }
            Some(_) => {
                self.push(l, "Input should be a valid integer", "int_type");
                return None;
            }
        };
        if n < 1 {
            self.push(
                l,
                "Input should be greater than or equal to 1",
                "greater_than_equal",
            );
            None
        } else if n > max as i128 {
            self.push(
                l,
                format!("Input should be less than or equal to {max}"),
                "less_than_equal",
            );
            None
        } else {
            Some(n as u64)
        }
    }
}

/// Parse and field-validate a POST body.
pub fn parse_build_request(body: &[u8], limits: Limits) -> Result<BuildRequest, Unprocessable> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Unprocessable::single(
            vec![Value::from("body")],
            "Field required",
            "missing",
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Unprocessable::single(
            vec![Value::from("body"), Value::from(e.column())],
            format!("JSON decode error: {e}"),
            "json_invalid",
        )
    })?;
    let Value::Object(obj) = value else {
        return Err(Unprocessable::single(
            vec![Value::from("body")],
            "Input should be a valid dictionary or object to extract fields from",
            "model_attributes_type",
        ));
    };
    let mut c = Collector {
        obj: &obj,
        errors: Vec::new(),
    };

    let distro = c
        .string("distro", Some(Pattern::String), false, false)
        .unwrap_or_else(|| "openwrt".into());
    let version = c.string("version", Some(Pattern::String), true, false);
    let version_code = c
        .string("version_code", Some(Pattern::String), false, false)
        .unwrap_or_default();
    let target = c.string("target", Some(Pattern::Target), true, false);
    let profile = c.string("profile", Some(Pattern::String), true, false);
    let packages = c.string_list("packages", Some(Pattern::Package));
    let packages_versions = c.string_map("packages_versions", Pattern::String, Pattern::PkgVersion);
    let diff_packages = c.boolean("diff_packages");
    let defaults = c.string("defaults", None, false, true);
    if let Some(d) = &defaults
        && d.chars().count() > limits.max_defaults_length
    {
        c.push(
            loc(&["defaults"]),
            format!(
                "String should have at most {} characters",
                limits.max_defaults_length
            ),
            "string_too_long",
        );
    }
    let rootfs_size_mb = c.rootfs_size(limits.max_custom_rootfs_size_mb);
    // Routers pass their current rootfs type through, whatever it is.
    let filesystem = match obj.get("filesystem") {
        Some(Value::String(s)) if FILESYSTEMS.contains(&s.as_str()) => Some(s.clone()),
        _ => None,
    };
    let repositories = c.string_map("repositories", Pattern::RepoName, Pattern::RepoUrl);
    let repositories_mode = match obj.get("repositories_mode") {
        None => "replace".to_string(),
        Some(Value::String(s)) if s == "append" || s == "replace" => s.clone(),
        Some(_) => {
            c.push(
                loc(&["repositories_mode"]),
                "Input should be 'append' or 'replace'",
                "literal_error",
            );
            String::new()
        }
    };
    let repository_keys = c.string_list("repository_keys", None);
    let client = c.string("client", None, false, true);

    if !c.errors.is_empty() {
        return Err(Unprocessable { errors: c.errors });
    }
    Ok(BuildRequest {
        distro,
        version: version.unwrap_or_default(),
        version_code,
        target: target.unwrap_or_default(),
        profile: profile.unwrap_or_default(),
        packages,
        packages_versions,
        diff_packages,
        defaults,
        rootfs_size_mb,
        filesystem,
        repositories,
        repositories_mode,
        repository_keys,
        client,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let r = parse(r#"{"version":"1","target":"a/b","profile":"p","rootfs_size_mb":"","filesystem":"tmpfs"}"#)
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
}
