//! The OpenAPI document against the code: every route of the route table
//! (`api::routes::ROUTES`, which the router walks) is in the document with
//! its method, and every path and method of the document is a route; path
//! parameters are declared; the document served at /api/v1/openapi.json
//! passes openapi-spec-validator (PyPI, installed by tests/tools/install.sh);
//! /docs serves it as a page.

mod common;

use asu_builder::api::docs;
use asu_builder::api::routes::{ROUTES, Verb, openapi_path};
use common::fake_upstream::FakeUpstream;
use common::http;
use common::testapp::{self, TestApp};
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;

const METHODS: [&str; 7] = ["get", "post", "delete", "put", "patch", "head", "options"];

fn verb(v: Verb) -> &'static str {
    match v {
        Verb::Get => "get",
        Verb::Post => "post",
        Verb::Delete => "delete",
    }
}

#[test]
fn the_document_and_the_route_table_name_the_same_operations() {
    let from_code: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (openapi_path(r.pattern), verb(r.verb).to_string()))
        .collect();
    let doc = docs::document();
    let mut from_doc = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            if METHODS.contains(&method.as_str()) {
                from_doc.insert((path.clone(), method.clone()));
            }
        }
    }
    let undocumented: Vec<_> = from_code.difference(&from_doc).collect();
    let unrouted: Vec<_> = from_doc.difference(&from_code).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routes missing from openapi.yaml: {undocumented:?}\npaths in openapi.yaml without a route: {unrouted:?}"
    );
}

#[test]
fn every_path_parameter_is_declared() {
    let doc = docs::document();
    let resolve = |p: &Value| -> Value {
        match p.get("$ref").and_then(Value::as_str) {
            Some(r) => r
                .trim_start_matches("#/")
                .split('/')
                .fold(doc, |n, k| &n[k])
                .clone(),
            None => p.clone(),
        }
    };
    for (path, item) in doc["paths"].as_object().unwrap() {
        let names: Vec<&str> = path
            .split('{')
            .skip(1)
            .filter_map(|s| s.split('}').next())
            .collect();
        for (method, op) in item.as_object().unwrap() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let declared: Vec<String> = item["parameters"]
                .as_array()
                .into_iter()
                .chain(op["parameters"].as_array())
                .flatten()
                .map(resolve)
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect();
            for n in &names {
                assert!(
                    declared.iter().any(|d| d == n),
                    "{method} {path}: {{{n}}} undeclared"
                );
            }
        }
    }
}

fn validator() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/install.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg("validator")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "installing the validator failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn the_served_document_validates_and_docs_renders_it() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = FakeUpstream::start_fixtures();
    let mut config = testapp::config(dir.path(), upstream.url());
    config.worker_concurrent = 0;
    let runtime = Arc::new(asu_builder::container::podman::Podman::new(
        &dir.path().join("absent.sock"),
    ));
    let app = TestApp::start(config, runtime);

    let r = http::get(&app.url("/api/v1/openapi.json"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let served = r.json();
    assert_eq!(served["openapi"], "3.1.0");
    assert_eq!(served["info"]["version"], env!("CARGO_PKG_VERSION"));
    let etag = r.header("ETag").unwrap().to_string();
    let again = http::get_with(
        &app.url("/api/v1/openapi.json"),
        &[("If-None-Match", &etag)],
    );
    assert_eq!(again.status, 304);

    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &r.body).unwrap();
    let out = Command::new(validator()).arg(&file).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openapi-spec-validator: {text}");
    assert!(text.contains(": OK"), "{text}");

    // A broken document is refused by the same validator, so it does check.
    let mut broken = served.clone();
    broken["paths"]["/health"]["get"]["responses"] = Value::String("nope".into());
    std::fs::write(&file, serde_json::to_vec(&broken).unwrap()).unwrap();
    let out = Command::new(validator()).arg(&file).output().unwrap();
    assert!(!out.status.success(), "a broken document passed");

    let page = http::get(&app.url("/docs"));
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        page.header("Content-Security-Policy")
            .unwrap()
            .contains("default-src 'self'")
    );
    let html = page.text();
    assert!(html.contains("<code>/api/v1/build/{request_hash}</code>"));
    assert!(html.contains("href=\"/static/asu.css?v="));
    let css = html.split("href=\"/static/asu.css?v=").nth(1).unwrap();
    let css = &css[..css.find('"').unwrap()];
    assert_eq!(
        http::get(&app.url(&format!("/static/asu.css?v={css}"))).status,
        200
    );
}
