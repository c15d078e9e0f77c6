//! A first, allocation-free pass over a build request body that counts the
//! items of its lists and dictionaries. A request over a count bound is
//! refused from the counts alone, before the body is turned into a JSON tree
//! of (say) forty thousand strings only to be thrown away.

use super::bounds::{MAX_PACKAGE_VERSIONS, MAX_PACKAGES, MAX_REPOSITORIES, MAX_REPOSITORY_KEYS};
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// The number of items of a list or dictionary; 0 for anything else (the
/// full parse reports the wrong type).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub usize);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Count, D::Error> {
        struct Counter;
        impl<'de> Visitor<'de> for Counter {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
                let mut n = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(n))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Count, A::Error> {
                let mut n = 0;
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(n))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_str<E>(self, _: &str) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_unit<E>(self) -> Result<Count, E> {
                Ok(Count(0))
            }
        }
        d.deserialize_any(Counter)
    }
}

/// The counted fields; every other key is skipped without allocation.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Sizes {
    packages: Count,
    packages_versions: Count,
    repositories: Count,
    repository_keys: Count,
}

/// (field, what, items, bound) of each field over its bound.
pub type Overflow = (&'static str, &'static str, usize, usize);

/// The fields of `body` over their count bounds, or `None` when the body
/// is not a JSON object of that shape (the full parse explains why).
pub fn overflows(body: &[u8]) -> Option<Vec<Overflow>> {
    let sizes: Sizes = serde_json::from_slice(body).ok()?;
    let all = [
        ("packages", "List", sizes.packages.0, MAX_PACKAGES),
        (
            "packages_versions",
            "Dictionary",
            sizes.packages_versions.0,
            MAX_PACKAGE_VERSIONS,
        ),
        (
            "repositories",
            "Dictionary",
            sizes.repositories.0,
            MAX_REPOSITORIES,
        ),
        (
            "repository_keys",
            "List",
            sizes.repository_keys.0,
            MAX_REPOSITORY_KEYS,
        ),
    ];
    Some(all.into_iter().filter(|(_, _, n, max)| n > max).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_without_building_the_values() {
        let many = format!("[{}]", vec!["\"a b\""; 5000].join(","));
        let body = format!(
            r#"{{"x": {{"deep": [1, 2]}}, "packages": {many}, "repositories": {{"a": "b"}}}}"#
        );
        let over = overflows(body.as_bytes()).unwrap();
        assert_eq!(over, vec![("packages", "List", 5000, MAX_PACKAGES)]);
        assert_eq!(overflows(br#"{"packages": "vim"}"#), Some(vec![]));
        // Not an object: nothing to refuse here, the full parse says why.
        assert!(overflows(b"[1, 2]").unwrap_or_default().is_empty());
        assert_eq!(overflows(b"{"), None);
    }
}
