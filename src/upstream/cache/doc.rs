//! One cached answer and its bytes, parsed at most once per body.

use super::super::http::Validators;
use std::any::Any;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

type Parsed = Result<Arc<dyn Any + Send + Sync>, String>;

/// The bytes of one upstream file plus what was derived from them. Shared
/// between successive `Doc`s when upstream answers 304.
pub struct Content {
    pub body: Vec<u8>,
    pub validators: Validators,
    /// Parsed form, computed once per body (profiles.json is large and read
    /// on every build request).
    parsed: OnceLock<Parsed>,
}

impl Content {
    pub fn new(body: Vec<u8>, validators: Validators) -> Content {
        Content {
            body,
            validators,
            parsed: OnceLock::new(),
        }
    }
}

/// One cached answer for a URL.
pub struct Doc {
    /// `false` when upstream said 404/410 (cached briefly, never persisted).
    pub found: bool,
    pub content: Arc<Content>,
    /// Unix milliseconds.
    pub fetched_at: i64,
    pub expires_at: i64,
}

impl Doc {
    pub fn body(&self) -> &[u8] {
        &self.content.body
    }

    pub(super) fn fresh(&self, now: i64, max_age: Option<Duration>) -> bool {
        now < self.expires_at
            && max_age.is_none_or(|m| now.saturating_sub(self.fetched_at) <= m.as_millis() as i64)
    }

    /// The body parsed as `T`, parsed at most once per body. Each URL is
    /// only ever parsed into one type; if a caller asks for another type the
    /// body is parsed again without caching rather than failing.
    pub fn parsed<T, F>(&self, parse: F) -> Result<Arc<T>, String>
    where
        T: Send + Sync + 'static,
        F: Fn(&[u8]) -> Result<T, String>,
    {
        let cached = self.content.parsed.get_or_init(|| {
            parse(&self.content.body).map(|v| Arc::new(v) as Arc<dyn Any + Send + Sync>)
        });
        match cached {
            Ok(any) => match Arc::clone(any).downcast::<T>() {
                Ok(v) => Ok(v),
                Err(_) => parse(&self.content.body).map(Arc::new),
            },
            Err(e) => Err(e.clone()),
        }
    }
}
