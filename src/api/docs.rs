//! `GET /api/v1/openapi.json` and `GET /docs`: the hand-maintained OpenAPI
//! 3.1 document (`openapi.yaml`, compiled in) as JSON, and the same
//! document rendered once into a plain HTML page in the house style: no
//! script, nothing fetched from elsewhere.

use super::pages;
use super::request::Request;
use super::response::Response;
use serde_json::{Map, Value};
use std::fmt::Write as _;
use std::sync::OnceLock;

const SOURCE: &str = include_str!("openapi.yaml");

/// The document with `info.version` set to this binary's version.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        // The YAML is compiled in and checked by the tests; should it ever
        // not parse, the endpoint says so instead of panicking.
        let mut doc: Value = serde_norway::from_str(SOURCE)
            .unwrap_or_else(|e| serde_json::json!({"error": format!("openapi.yaml: {e}")}));
        if let Some(info) = doc.get_mut("info").and_then(Value::as_object_mut) {
            info.insert("version".into(), env!("CARGO_PKG_VERSION").into());
        }
        doc
    })
}

struct Rendered {
    body: Vec<u8>,
    etag: String,
}

fn json_body() -> &'static Rendered {
    static JSON: OnceLock<Rendered> = OnceLock::new();
    JSON.get_or_init(|| {
        let body = serde_json::to_vec_pretty(document()).unwrap_or_default();
        let etag = pages::etag_of(&body);
        Rendered { body, etag }
    })
}

fn html_body() -> &'static Rendered {
    static HTML: OnceLock<Rendered> = OnceLock::new();
    HTML.get_or_init(|| {
        let body = render(document()).into_bytes();
        let etag = pages::etag_of(&body);
        Rendered { body, etag }
    })
}

/// `GET /api/v1/openapi.json`.
pub fn openapi(req: &Request) -> Response {
    let r = json_body();
    pages::answer(req, &r.etag, pages::PAGE_CACHE, "application/json", &r.body)
}

/// `GET /docs`.
pub fn page(req: &Request) -> Response {
    let r = html_body();
    pages::answer(
        req,
        &r.etag,
        pages::PAGE_CACHE,
        "text/html; charset=utf-8",
        &r.body,
    )
    .with_header("Content-Security-Policy", pages::CSP)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Escaped text with `code` spans, paragraphs on blank lines.
fn prose(text: &str) -> String {
    let mut out = String::new();
    for para in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        let mut html = String::new();
        for (i, part) in esc(para).split('`').enumerate() {
            if i % 2 == 1 {
                let _ = write!(html, "<code>{part}</code>");
            } else {
                html.push_str(part);
            }
        }
        let _ = write!(out, "<p>{}</p>", html.replace('\n', " "));
    }
    out
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Follows a local `$ref` (`#/components/...`) once.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix("#/")
            .map(|p| p.split('/').fold(doc, |node, key| &node[key]))
            .unwrap_or(v),
        None => v,
    }
}

/// A schema in one line: `string`, `array of Branch`, `integer 0–60`…
fn type_of(v: &Value) -> String {
    if let Some(r) = v.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("<a href=\"#schema-{0}\">{0}</a>", esc(name));
    }
    let ty = match v.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "any".into(),
    };
    let mut out = esc(&ty);
    if ty == "array"
        && let Some(items) = v.get("items")
    {
        out = format!("array of {}", type_of(items));
    }
    if let Some(e) = v.get("enum").and_then(Value::as_array) {
        let names: Vec<String> = e.iter().map(|x| esc(&x.to_string())).collect();
        let _ = write!(out, ": {}", names.join(", "));
    }
    if let Some(c) = v.get("const") {
        let _ = write!(out, " = {}", esc(&c.to_string()));
    }
    let (min, max) = (v.get("minimum"), v.get("maximum"));
    match (min, max) {
        (Some(a), Some(b)) => {
            let _ = write!(out, " {a}–{b}");
        }
        (Some(a), None) => {
            let _ = write!(out, " ≥ {a}");
        }
        _ => {}
    }
    if let Some(n) = v.get("maxLength").or_else(|| v.get("maxItems")) {
        let _ = write!(out, " (at most {n})");
    }
    if let Some(d) = v.get("default") {
        let _ = write!(out, ", default {}", esc(&d.to_string()));
    }
    out
}

/// An object's properties as a table (nested objects inline, one level).
fn schema_table(doc: &Value, schema: &Value, depth: usize) -> String {
    let schema = resolve(doc, schema);
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return format!("<p class=\"muted\">{}</p>", type_of(schema));
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = String::from(
        "<table class=\"fields\"><thead><tr><th>field</th><th>type</th><th>notes</th></tr></thead><tbody>",
    );
    for (name, p) in props {
        let mark = if required.contains(&name.as_str()) {
            " <span class=\"req\">required</span>"
        } else {
            ""
        };
        let mut notes = prose(str_of(p, "description"));
        if depth < 2 && p.get("properties").is_some() {
            notes.push_str(&schema_table(doc, p, depth + 1));
        }
        let _ = write!(
            out,
            "<tr><td><code>{}</code>{mark}</td><td>{}</td><td>{notes}</td></tr>",
            esc(name),
            type_of(p)
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn parameters(doc: &Value, params: &[&Value]) -> String {
    if params.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<h4>Parameters</h4><table class=\"fields\"><thead><tr><th>name</th><th>in</th><th>type</th><th>notes</th></tr></thead><tbody>",
    );
    for p in params {
        let p = resolve(doc, p);
        let req = if p.get("required") == Some(&Value::Bool(true)) {
            " <span class=\"req\">required</span>"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<tr><td><code>{}</code>{req}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(str_of(p, "name")),
            esc(str_of(p, "in")),
            type_of(&p["schema"]),
            prose(str_of(p, "description"))
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn content_schema(holder: &Value) -> Option<(String, Value)> {
    let content = holder.get("content")?.as_object()?;
    let (media, body) = content.iter().next()?;
    Some((
        media.clone(),
        body.get("schema").cloned().unwrap_or(Value::Null),
    ))
}

fn operation(doc: &Value, path: &str, method: &str, op: &Value, shared: &[Value]) -> String {
    let mut out = String::new();
    let id = str_of(op, "operationId");
    let _ = write!(
        out,
        "<details class=\"op\" id=\"op-{id}\"><summary><span class=\"verb verb-{method}\">{}</span> <code>{}</code> <span class=\"muted\">{}</span></summary>",
        method.to_uppercase(),
        esc(path),
        esc(str_of(op, "summary"))
    );
    out.push_str(&prose(str_of(op, "description")));
    if op.get("security").is_some() {
        out.push_str("<p><span class=\"req\">Authorization: Bearer &lt;admin_token&gt;</span></p>");
    }
    let own = op.get("parameters").and_then(Value::as_array);
    let params: Vec<&Value> = shared.iter().chain(own.into_iter().flatten()).collect();
    out.push_str(&parameters(doc, &params));
    if let Some(body) = op.get("requestBody")
        && let Some((media, schema)) = content_schema(body)
    {
        let _ = write!(out, "<h4>Request body <code>{}</code></h4>", esc(&media));
        out.push_str(&schema_table(doc, &schema, 0));
    }
    out.push_str("<h4>Responses</h4><dl class=\"responses\">");
    if let Some(responses) = op.get("responses").and_then(Value::as_object) {
        for (status, r) in responses {
            let r = resolve(doc, r);
            let schema = content_schema(r)
                .map(|(media, s)| format!(" <code>{}</code> {}", esc(&media), type_of(&s)))
                .unwrap_or_default();
            let _ = write!(
                out,
                "<dt>{}</dt><dd>{}{schema}</dd>",
                esc(status),
                esc(str_of(r, "description"))
            );
        }
    }
    out.push_str("</dl></details>");
    out
}

/// The whole page.
pub fn render(doc: &Value) -> String {
    let info = &doc["info"];
    let empty = Map::new();
    let paths = doc["paths"].as_object().unwrap_or(&empty);
    let mut body = String::new();
    let _ = write!(
        body,
        "<section class=\"card wide\"><h2>{} {}</h2>{}<p><a href=\"/api/v1/openapi.json\">OpenAPI 3.1 document (JSON)</a></p></section>",
        esc(str_of(info, "title")),
        esc(str_of(info, "version")),
        prose(str_of(info, "description"))
    );
    let tags = doc["tags"].as_array().cloned().unwrap_or_default();
    for tag in &tags {
        let name = str_of(tag, "name");
        let _ = write!(
            body,
            "<section class=\"card wide\" id=\"tag-{0}\"><h2>{0}</h2>{1}",
            esc(name),
            prose(str_of(tag, "description"))
        );
        for (path, item) in paths {
            let shared: Vec<Value> = item
                .get("parameters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for method in ["get", "post", "delete", "put", "patch"] {
                let Some(op) = item.get(method) else { continue };
                let in_tag = op["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t.as_str() == Some(name)));
                if in_tag {
                    body.push_str(&operation(doc, path, method, op, &shared));
                }
            }
        }
        body.push_str("</section>");
    }
    body.push_str("<section class=\"card wide\"><h2>Schemas</h2>");
    if let Some(schemas) = doc["components"]["schemas"].as_object() {
        for (name, schema) in schemas {
            let _ = write!(
                body,
                "<h3 id=\"schema-{0}\">{0}</h3>{1}",
                esc(name),
                schema_table(doc, schema, 0)
            );
        }
    }
    body.push_str("</section>");
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"color-scheme\" content=\"light dark\">\n<link rel=\"icon\" href=\"data:,\">\n\
         <title>asu-builder — API</title>\n<link rel=\"stylesheet\" href=\"{css}\">\n</head>\n<body>\n\
         <header><div class=\"bar\">\n  <h1>asu-builder</h1>\n  <nav><a href=\"/\">Overview</a><a href=\"/stats\">Statistics</a>\
         <a href=\"/docs\" aria-current=\"page\">API</a><a href=\"/metrics\">Metrics</a></nav>\n</div></header>\n\
         <main class=\"docs\">\n{body}\n</main>\n</body>\n</html>\n",
        css = pages::asset_url("asu.css")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_parses_and_carries_our_version() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert!(doc["paths"].as_object().is_some_and(|p| p.len() > 20));
    }

    #[test]
    fn the_page_shows_every_operation_and_schema() {
        let doc = document();
        let html = render(doc);
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                let id = op["operationId"].as_str().unwrap();
                assert!(html.contains(&format!("id=\"op-{id}\"")), "{method} {path}");
            }
        }
        for name in doc["components"]["schemas"].as_object().unwrap().keys() {
            assert!(html.contains(&format!("id=\"schema-{name}\"")), "{name}");
        }
        // Links to schemas resolve to anchors on the page.
        for part in html.split("href=\"#schema-").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            assert!(html.contains(&format!("id=\"schema-{name}\"")), "{name}");
        }
        assert!(!html.contains("<script"), "no script on the docs page");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "nothing from elsewhere"
        );
    }
}
