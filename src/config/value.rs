//! One configuration value, from the file (typed YAML) or the environment
//! (text), parsed for its key. Every parser reports the key, the value and
//! its origin on failure.

use super::PackageChange;
use super::bounds::bound_of;
use super::error::{ConfigError, Origin};
use serde_norway::Value;
use std::path::PathBuf;

/// A raw value from either source. File values keep their YAML type;
/// environment values are always text and get parsed per key.
#[derive(Clone, Copy)]
pub(super) enum Raw<'a> {
    Yaml(&'a Value),
    Text(&'a str),
}

pub(super) fn invalid(key: &str, raw: Raw<'_>, origin: &Origin, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: match raw {
            Raw::Yaml(v) => render_value(v),
            Raw::Text(s) => shorten(&format!("{s:?}")),
        },
        origin: origin.clone(),
        expected: expected.to_string(),
    }
}

/// A YAML value as a short single line: strings quoted, collections as JSON.
pub(super) fn render_value(v: &Value) -> String {
    let text = match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => {
            serde_json::to_string(v).unwrap_or_else(|_| "(a YAML structure)".into())
        }
    };
    shorten(&text)
}

fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        return s.to_string();
    }
    let cut: String = s.chars().take(MAX).collect();
    format!("{cut}…")
}

/// One value being parsed for one key; knows how to report itself.
pub(super) struct Field<'a> {
    pub key: &'a str,
    pub raw: Raw<'a>,
    pub origin: &'a Origin,
}

impl Field<'_> {
    pub(super) fn invalid(&self, expected: &str) -> ConfigError {
        invalid(self.key, self.raw, self.origin, expected)
    }

    pub(super) fn invalid_item(&self, item: &str, expected: &str) -> ConfigError {
        invalid(self.key, Raw::Text(item), self.origin, expected)
    }

    /// Text as given. A YAML number is refused rather than converted: `1.10`
    /// would silently become "1.1".
    pub(super) fn string(&self) -> Result<String, ConfigError> {
        match self.raw {
            Raw::Text(s) => Ok(s.to_string()),
            Raw::Yaml(Value::String(s)) => Ok(s.clone()),
            Raw::Yaml(_) => Err(self.invalid("expected a string (quote it)")),
        }
    }

    pub(super) fn nonempty_string(&self) -> Result<String, ConfigError> {
        let s = self.string()?;
        if s.trim().is_empty() || s.chars().any(char::is_control) {
            return Err(self.invalid("expected a non-empty string"));
        }
        Ok(s)
    }

    /// A name without spaces (worker id, image registry): these end up in
    /// container names, labels and image references.
    pub(super) fn token(&self) -> Result<String, ConfigError> {
        let s = self.string()?;
        if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(self.invalid("expected a non-empty string without spaces"));
        }
        Ok(s)
    }

    /// Relative paths stay relative (to the working directory at startup).
    pub(super) fn path(&self) -> Result<PathBuf, ConfigError> {
        let s = self.string()?;
        if s.trim().is_empty() || s.contains('\0') {
            return Err(self.invalid("expected a non-empty path"));
        }
        Ok(PathBuf::from(s))
    }

    /// Unset (`null` or empty) means `None`: the feature is off.
    pub(super) fn optional_path(&self) -> Result<Option<PathBuf>, ConfigError> {
        match self.raw {
            Raw::Yaml(Value::Null) => Ok(None),
            Raw::Yaml(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Raw::Text(s) if s.trim().is_empty() => Ok(None),
            _ => self.path().map(Some),
        }
    }

    /// A secret such as a bearer token: unset (`null`/empty) is `None`;
    /// otherwise at least `min_len` visible ASCII characters, no spaces, so
    /// it can travel in an `Authorization` header as it is.
    pub(super) fn optional_secret(&self, min_len: usize) -> Result<Option<String>, ConfigError> {
        let s = match self.raw {
            Raw::Yaml(Value::Null) => return Ok(None),
            _ => self.string()?,
        };
        if s.is_empty() {
            return Ok(None);
        }
        if s.len() < min_len || !s.bytes().all(|b| b.is_ascii_graphic()) {
            // The value itself stays out of the message: it is a secret.
            return Err(ConfigError::Invalid {
                key: self.key.to_string(),
                value: "(hidden)".into(),
                origin: self.origin.clone(),
                expected: format!(
                    "expected at least {min_len} visible ASCII characters without spaces"
                ),
            });
        }
        Ok(Some(s))
    }

    pub(super) fn integer(&self, min: u64, max: u64, expected: &str) -> Result<u64, ConfigError> {
        let n = match self.raw {
            Raw::Yaml(Value::Number(n)) => n.as_u64(),
            Raw::Yaml(_) => None,
            Raw::Text(s) => {
                let s = s.trim();
                // `u64::from_str` accepts a leading '+'; a setting should not.
                if s.bytes().all(|b| b.is_ascii_digit()) {
                    s.parse().ok()
                } else {
                    None
                }
            }
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.invalid(expected)),
        }
    }

    pub(super) fn ranged(&self, min: u64, max: u64) -> Result<u64, ConfigError> {
        self.integer(min, max, &format!("expected an integer {min}-{max}"))
    }

    /// An integer within the key's range in `bounds::BOUNDS`.
    pub(super) fn bounded(&self) -> Result<u64, ConfigError> {
        match bound_of(self.key) {
            Some(b) => self.ranged(b.min, b.max),
            // Only a key added without its range gets here; a unit test in
            // `bounds` holds every numeric key to the table.
            None => Err(self.invalid("a number, but no range is known for this key")),
        }
    }

    /// `bounded`, for a count or size held in a `usize`.
    pub(super) fn bounded_size(&self) -> Result<usize, ConfigError> {
        let n = self.bounded()?;
        usize::try_from(n).map_err(|_| self.invalid("a number too large for this machine"))
    }

    /// YAML booleans, and the spellings people use in env files and in
    /// YAML 1.1 habits (`yes`/`no`, `1`/`0`).
    pub(super) fn boolean(&self) -> Result<bool, ConfigError> {
        let text = match self.raw {
            Raw::Yaml(Value::Bool(b)) => return Ok(*b),
            Raw::Yaml(Value::String(s)) => s.as_str(),
            Raw::Yaml(Value::Number(n)) => match n.as_u64() {
                Some(0) => "0",
                Some(1) => "1",
                _ => "",
            },
            Raw::Yaml(_) => "",
            Raw::Text(s) => s,
        };
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(self.invalid("expected true or false (also yes/no, 1/0)")),
        }
    }

    pub(super) fn http_url(&self) -> Result<String, ConfigError> {
        let s = self.string()?;
        check_http_url(s.trim())
            .map_err(|why| self.invalid(&format!("expected an http(s) URL ({why})")))
    }

    /// Empty disables the feature; otherwise an http(s) URL.
    pub(super) fn optional_http_url(&self) -> Result<String, ConfigError> {
        let s = self.string()?;
        if s.trim().is_empty() {
            return Ok(String::new());
        }
        check_http_url(s.trim()).map_err(|why| {
            self.invalid(&format!(
                "expected an http(s) URL or an empty string ({why})"
            ))
        })
    }

    /// A list of http(s) URLs: a YAML sequence of strings in the file,
    /// comma-separated in the environment.
    pub(super) fn url_list(&self) -> Result<Vec<String>, ConfigError> {
        let items: Vec<String> = match self.raw {
            Raw::Text(s) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            Raw::Yaml(Value::Sequence(seq)) => {
                let mut items = Vec::with_capacity(seq.len());
                for item in seq {
                    match item {
                        Value::String(s) => items.push(s.trim().to_string()),
                        other => {
                            return Err(invalid(
                                self.key,
                                Raw::Yaml(other),
                                self.origin,
                                "expected a list of http(s) URLs",
                            ));
                        }
                    }
                }
                items
            }
            Raw::Yaml(_) => return Err(self.invalid("expected a list of http(s) URLs")),
        };
        for item in &items {
            // Entries are prefixes matched against client repository URLs,
            // so keep them exactly as given (trailing slash included).
            if let Err(why) = check_http_url(item) {
                return Err(self.invalid_item(item, &format!("expected http(s) URLs ({why})")));
            }
        }
        Ok(items)
    }

    /// Podman network names: the value is put into libpod URL paths, so it
    /// must not carry `/`, `?` or spaces.
    pub(super) fn network_name(&self) -> Result<String, ConfigError> {
        let s = self.string()?;
        let mut chars = s.chars();
        let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok {
            return Err(self.invalid("expected a network name of letters, digits, '_', '.', '-'"));
        }
        Ok(s)
    }

    /// Goes out verbatim as a response header, so it must be one visible line.
    pub(super) fn header_value(&self) -> Result<String, ConfigError> {
        let s = self.string()?;
        let s = s.trim();
        if s.is_empty() || s.chars().any(|c| c.is_control() || !c.is_ascii()) {
            return Err(self.invalid("expected a non-empty single-line ASCII string"));
        }
        Ok(s.to_string())
    }

    pub(super) fn package_changes(&self) -> Result<Vec<PackageChange>, ConfigError> {
        const SHAPE: &str = "expected a list of {source, target, revision, mandatory}";
        let Raw::Yaml(value) = self.raw else {
            return Err(self.invalid(SHAPE));
        };
        let changes: Vec<PackageChange> = serde_norway::from_value(value.clone())
            .map_err(|e| self.invalid(&format!("{SHAPE} ({e})")))?;
        if let Some(bad) = changes
            .iter()
            .find(|c| c.source.is_none() && c.target.is_none())
        {
            return Err(self.invalid(&format!(
                "{SHAPE}: the change at revision {} has neither source nor target",
                bad.revision
            )));
        }
        Ok(changes)
    }
}

/// Accepts an absolute http(s) URL with a host; returns it without trailing
/// `/` because everyone joins paths onto it with `{url}/{path}`.
fn check_http_url(s: &str) -> Result<String, &'static str> {
    let url = url::Url::parse(s).map_err(|_| "does not parse")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("scheme must be http or https");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("no host");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("no query or fragment allowed");
    }
    Ok(s.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_trimmed() {
        assert_eq!(
            check_http_url("https://downloads.openwrt.org/").unwrap(),
            "https://downloads.openwrt.org"
        );
        assert_eq!(
            check_http_url("http://mirror.example/openwrt").unwrap(),
            "http://mirror.example/openwrt"
        );
        assert!(check_http_url("ftp://x.example").is_err());
        assert!(check_http_url("downloads.openwrt.org").is_err());
        assert!(check_http_url("http://").is_err());
        assert!(check_http_url("https://x.example/?a=b").is_err());
        assert!(check_http_url("file:///etc/passwd").is_err());
    }

    #[test]
    fn rendered_values_are_one_short_line() {
        let v: Value = serde_norway::from_str("[1, \"a\\nb\"]").unwrap();
        assert_eq!(render_value(&v), "[1,\"a\\nb\"]");
        let long = Value::String("x".repeat(500));
        let shown = render_value(&long);
        assert!(shown.chars().count() <= 81, "{shown}");
        assert!(!shown.contains('\n'));
    }
}
