//! Bearer-token check of the build-control endpoints. Pure: the handler
//! decides what each answer means for HTTP.

use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No `admin_token` is configured: the endpoints do not exist.
    Disabled,
    /// The header names the configured token.
    Granted,
    /// Missing, malformed or wrong.
    Denied,
}

/// `authorization` is the request's `Authorization` header, if any.
pub fn check(configured: Option<&str>, authorization: Option<&str>) -> Access {
    let Some(token) = configured else {
        return Access::Disabled;
    };
    let presented = authorization
        .and_then(|h| {
            let (scheme, value) = h.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| value.trim())
        })
        .unwrap_or("");
    if equal_secret(presented.as_bytes(), token.as_bytes()) {
        Access::Granted
    } else {
        Access::Denied
    }
}

/// Constant-time equality: both sides are hashed first, so the comparison
/// runs over 32 bytes whatever the lengths, and every byte is looked at.
fn equal_secret(a: &[u8], b: &[u8]) -> bool {
    let (da, db) = (Sha256::digest(a), Sha256::digest(b));
    let diff = da
        .iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "s3cret-token-0123456789";

    #[test]
    fn access() {
        assert_eq!(check(None, Some(&format!("Bearer {T}"))), Access::Disabled);
        assert_eq!(
            check(Some(T), Some(&format!("Bearer {T}"))),
            Access::Granted
        );
        assert_eq!(
            check(Some(T), Some(&format!("bearer  {T} "))),
            Access::Granted
        );
        for bad in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer "),
            Some(T),
            Some("Basic czNjcmV0"),
            Some("Bearer s3cret-token-012345678"),
            Some("Bearer s3cret-token-01234567890"),
        ] {
            assert_eq!(check(Some(T), bad), Access::Denied, "{bad:?}");
        }
    }
}
