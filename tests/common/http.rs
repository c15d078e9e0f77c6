//! A small blocking HTTP client for tests (ureq, statuses as values).

use std::time::Duration;

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn collect(resp: ureq::http::Response<ureq::Body>) -> Reply {
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = resp
        .into_body()
        .with_config()
        .limit(512 * 1024 * 1024)
        .read_to_vec()
        .unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

pub fn get(url: &str) -> Reply {
    collect(agent().get(url).call().expect("GET failed"))
}

pub fn get_with(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = agent().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    collect(req.call().expect("GET failed"))
}

pub fn head(url: &str) -> Reply {
    head_with(url, &[])
}

pub fn head_with(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = agent().head(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    collect(req.call().expect("HEAD failed"))
}

pub fn post_json(url: &str, body: &str) -> Reply {
    post_with(url, body, &[("Content-Type", "application/json")])
}

pub fn post_with(url: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = agent().post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    collect(req.send(body.as_bytes()).expect("POST failed"))
}

pub fn options(url: &str) -> Reply {
    collect(agent().options(url).call().expect("OPTIONS failed"))
}

/// POST a build request to the service at `base`.
pub fn post_build(base: &str, body: &str) -> Reply {
    post_json(&format!("{base}/api/v1/build"), body)
}

/// The `request_hash` of a 200/202 answer to a build POST.
pub fn request_hash(r: &Reply) -> String {
    assert!(
        r.status == 202 || r.status == 200,
        "{} {}",
        r.status,
        r.text()
    );
    r.json()["request_hash"].as_str().unwrap().to_string()
}

pub fn poll(base: &str, hash: &str) -> Reply {
    get(&format!("{base}/api/v1/build/{hash}"))
}

/// Poll like a client until the answer is no longer 202.
pub fn wait_final(base: &str, hash: &str, limit: Duration) -> Reply {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let r = poll(base, hash);
        if r.status != 202 {
            return r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {}: {}",
            r.status,
            r.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
