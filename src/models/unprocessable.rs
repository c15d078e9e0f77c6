//! The 422 answer: the problems a build request has, in pydantic's
//! vocabulary, listed up to `MAX_LISTED_ERRORS` and counted beyond.

use serde_json::{Value, json};

/// One field problem, in pydantic's vocabulary so existing tooling that
/// reads `errors[].type` keeps working.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub loc: Vec<Value>,
    pub msg: String,
    pub kind: &'static str,
}

/// A 422: the first problems, and how many more there were.
#[derive(Debug, Clone, PartialEq)]
pub struct Unprocessable {
    /// At most `MAX_LISTED_ERRORS`.
    pub errors: Vec<FieldError>,
    /// Problems found beyond those listed.
    pub omitted: usize,
}

impl Unprocessable {
    pub(super) fn single(loc: Vec<Value>, msg: impl Into<String>, kind: &'static str) -> Self {
        Unprocessable {
            errors: vec![FieldError {
                loc,
                msg: msg.into(),
                kind,
            }],
            omitted: 0,
        }
    }

    /// Every problem found, listed or not.
    pub fn count(&self) -> usize {
        self.errors.len() + self.omitted
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
        if self.count() > 1 {
            s.push_str(&format!(" (and {} more errors)", self.count() - 1));
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
        let mut body = json!({
            "status": 422,
            "title": "Unprocessable Entity",
            "detail": self.detail(),
            "errors": errors,
        });
        if self.omitted > 0 {
            body["errors_not_listed"] = self.omitted.into();
        }
        body
    }
}
