//! Build request body → `BuildRequest`, with the reference model's types,
//! patterns and bounds. Violations become a readable 422
//! (docs/compatibility.md, "422 bodies"); unknown keys are ignored like
//! pydantic does.

use super::BuildRequest;
use super::bounds::*;
use super::patterns::Pattern;
use super::unprocessable::{FieldError, Unprocessable};
use serde_json::{Map, Value};

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

struct Collector<'a> {
    obj: &'a Map<String, Value>,
    /// The first `MAX_LISTED_ERRORS` problems; the rest are only counted.
    errors: Vec<FieldError>,
    omitted: usize,
}

fn loc(parts: &[&str]) -> Vec<Value> {
    std::iter::once("body")
        .chain(parts.iter().copied())
        .map(|p| Value::String(p.to_string()))
        .collect()
}

/// A client-chosen dictionary key as quoted in an error location: cut to
/// `MAX_QUOTED_CHARS`, so the answer stays small whatever the key.
fn quoted_key(k: &str) -> Value {
    match k.char_indices().nth(MAX_QUOTED_CHARS) {
        None => Value::from(k),
        Some((cut, _)) => Value::from(format!("{}…", &k[..cut])),
    }
}

fn chars_over(s: &str, max: usize) -> bool {
    // Bytes bound characters from above: most strings skip the count.
    s.len() > max && s.chars().count() > max
}

impl Collector<'_> {
    fn push(&mut self, loc: Vec<Value>, msg: impl Into<String>, kind: &'static str) {
        if self.errors.len() >= MAX_LISTED_ERRORS {
            self.omitted += 1;
            return;
        }
        self.errors.push(FieldError {
            loc,
            msg: msg.into(),
            kind,
        });
    }

    /// pydantic's `string_too_long`; false (and an error) when `s` is longer.
    fn length(&mut self, l: Vec<Value>, s: &str, max: usize) -> bool {
        if !chars_over(s, max) {
            return true;
        }
        self.push(
            l,
            format!("String should have at most {max} characters"),
            "string_too_long",
        );
        false
    }

    /// pydantic's `too_long` for a list or dictionary of `n` items.
    fn too_many(&mut self, key: &str, what: &str, n: usize, max: usize) -> bool {
        if n <= max {
            return false;
        }
        self.push(
            loc(&[key]),
            format!("{what} should have at most {max} items after validation, not {n}"),
            "too_long",
        );
        true
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

    /// A string field of at most `MAX_NAME_CHARS`; `None` when absent, null
    /// (for optional fields) or invalid.
    fn string(
        &mut self,
        key: &str,
        pattern: Option<Pattern>,
        required: bool,
        nullable: bool,
    ) -> Option<String> {
        self.string_within(key, pattern, required, nullable, MAX_NAME_CHARS)
    }

    fn string_within(
        &mut self,
        key: &str,
        pattern: Option<Pattern>,
        required: bool,
        nullable: bool,
        max_chars: usize,
    ) -> Option<String> {
        match self.obj.get(key) {
            None if required => {
                self.push(loc(&[key]), "Field required", "missing");
                None
            }
            None => None,
            Some(Value::Null) if nullable => None,
            Some(Value::String(s)) => {
                if !self.length(loc(&[key]), s, max_chars) {
                    return None;
                }
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

    /// A list of at most `max_items` strings of at most `max_chars` each.
    fn string_list(
        &mut self,
        key: &str,
        pattern: Option<Pattern>,
        max_items: usize,
        max_chars: usize,
    ) -> Vec<String> {
        match self.obj.get(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => {
                // Too many: one error for the list, not one per item.
                if self.too_many(key, "List", items.len(), max_items) {
                    return Vec::new();
                }
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let l = || vec![Value::from("body"), Value::from(key), Value::from(i)];
                    match item {
                        Value::String(s) => {
                            if self.length(l(), s, max_chars)
                                && pattern.is_none_or(|p| self.pattern(l(), p, s))
                            {
                                out.push(s.clone());
                            }
                        }
                        _ => self.push(l(), "Input should be a valid string", "string_type"),
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

    /// A dictionary of at most `max_items` string entries; keys of at most
    /// `MAX_NAME_CHARS`, values of at most `max_value_chars`.
    fn string_map(
        &mut self,
        key: &str,
        key_pattern: Pattern,
        value_pattern: Pattern,
        max_items: usize,
        max_value_chars: usize,
    ) -> Map<String, Value> {
        match self.obj.get(key) {
            None => Map::new(),
            Some(Value::Object(m)) => {
                if self.too_many(key, "Dictionary", m.len(), max_items) {
                    return Map::new();
                }
                let mut out = Map::new();
                for (k, v) in m {
                    let key_loc = vec![
                        Value::from("body"),
                        Value::from(key),
                        quoted_key(k),
                        Value::from("[key]"),
                    ];
                    let ok_key = self.length(key_loc.clone(), k, MAX_NAME_CHARS)
                        && self.pattern(key_loc, key_pattern, k);
                    let l = || vec![Value::from("body"), Value::from(key), quoted_key(k)];
                    match v {
                        Value::String(s) => {
                            if self.length(l(), s, max_value_chars)
                                && self.pattern(l(), value_pattern, s)
                                && ok_key
                            {
                                out.insert(k.clone(), v.clone());
                            }
                        }
                        _ => self.push(l(), "Input should be a valid string", "string_type"),
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
    // Lists over their bounds are refused from a counting pass alone.
    if let Some(over) = super::sizes::overflows(body)
        && !over.is_empty()
    {
        let errors = over
            .into_iter()
            .map(|(key, what, n, max)| FieldError {
                loc: loc(&[key]),
                msg: format!("{what} should have at most {max} items after validation, not {n}"),
                kind: "too_long",
            })
            .collect();
        return Err(Unprocessable { errors, omitted: 0 });
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
        omitted: 0,
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
    let packages = c.string_list(
        "packages",
        Some(Pattern::Package),
        MAX_PACKAGES,
        MAX_NAME_CHARS,
    );
    let packages_versions = c.string_map(
        "packages_versions",
        Pattern::String,
        Pattern::PkgVersion,
        MAX_PACKAGE_VERSIONS,
        MAX_NAME_CHARS,
    );
    let diff_packages = c.boolean("diff_packages");
    let defaults = c.string_within("defaults", None, false, true, limits.max_defaults_length);
    let rootfs_size_mb = c.rootfs_size(limits.max_custom_rootfs_size_mb);
    // Routers pass their current rootfs type through, whatever it is.
    let filesystem = match obj.get("filesystem") {
        Some(Value::String(s)) if FILESYSTEMS.contains(&s.as_str()) => Some(s.clone()),
        _ => None,
    };
    let repositories = c.string_map(
        "repositories",
        Pattern::RepoName,
        Pattern::RepoUrl,
        MAX_REPOSITORIES,
        MAX_URL_CHARS,
    );
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
    let repository_keys =
        c.string_list("repository_keys", None, MAX_REPOSITORY_KEYS, MAX_KEY_CHARS);
    let client = c.string("client", None, false, true);

    if !c.errors.is_empty() {
        return Err(Unprocessable {
            errors: c.errors,
            omitted: c.omitted,
        });
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
mod tests;
