//! The one place that performs HTTP: a blocking GET with conditional
//! validators, mapped onto a small outcome type the cache understands.

use super::UpstreamError;
use std::sync::OnceLock;
use std::time::Duration;

/// Validators of a cached copy, sent so an unchanged file costs a 304.
#[derive(Debug, Clone, Default)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// What one GET produced, reduced to what the cache distinguishes.
#[derive(Debug)]
pub enum Reply {
    Ok {
        body: Vec<u8>,
        validators: Validators,
    },
    /// 304: the cached copy is still current.
    NotModified,
    /// 404/410: a definite "this file does not exist".
    NotFound,
}

/// Something that can GET a URL. The cache only sees this trait, so its
/// single-flight and staleness rules are unit-tested without sockets.
pub trait Fetcher: Send + Sync {
    fn fetch(&self, url: &str, validators: &Validators) -> Result<Reply, UpstreamError>;
}

/// ureq-backed fetcher with hard time limits: a slow upstream must not pin
/// handler threads for long. The agent (and with it the TLS stack) is made
/// at the first fetch: a server that has not been asked anything yet does
/// not carry it in memory.
pub struct HttpFetcher {
    agent: OnceLock<ureq::Agent>,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_body: u64,
}

impl HttpFetcher {
    pub fn new(connect_timeout: Duration, request_timeout: Duration, max_body: u64) -> Self {
        HttpFetcher {
            agent: OnceLock::new(),
            connect_timeout,
            request_timeout,
            max_body,
        }
    }

    fn agent(&self) -> &ureq::Agent {
        self.agent.get_or_init(|| {
            ureq::Agent::config_builder()
                .timeout_connect(Some(self.connect_timeout))
                .timeout_global(Some(self.request_timeout))
                // Statuses are data here (404 means "not there"), not errors.
                .http_status_as_error(false)
                .user_agent(concat!("asu-builder/", env!("CARGO_PKG_VERSION")))
                .build()
                .new_agent()
        })
    }
}

fn header(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn map_error(url: &str, err: ureq::Error, limit: u64) -> UpstreamError {
    let url = url.to_owned();
    match err {
        ureq::Error::Timeout(_) => UpstreamError::Timeout { url },
        ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            UpstreamError::Timeout { url }
        }
        ureq::Error::BodyExceedsLimit(_) => UpstreamError::TooLarge { url, limit },
        other => UpstreamError::Network {
            url,
            message: other.to_string(),
        },
    }
}

impl Fetcher for HttpFetcher {
    fn fetch(&self, url: &str, validators: &Validators) -> Result<Reply, UpstreamError> {
        let mut req = self.agent().get(url);
        if let Some(etag) = &validators.etag {
            req = req.header("If-None-Match", etag);
        }
        if let Some(lm) = &validators.last_modified {
            req = req.header("If-Modified-Since", lm);
        }
        let mut resp = req.call().map_err(|e| map_error(url, e, self.max_body))?;
        match resp.status().as_u16() {
            200 => {
                let validators = Validators {
                    etag: header(&resp, "etag"),
                    last_modified: header(&resp, "last-modified"),
                };
                let body = resp
                    .body_mut()
                    .with_config()
                    .limit(self.max_body)
                    .read_to_vec()
                    .map_err(|e| map_error(url, e, self.max_body))?;
                Ok(Reply::Ok { body, validators })
            }
            304 => Ok(Reply::NotModified),
            404 | 410 => Ok(Reply::NotFound),
            status => Err(UpstreamError::Http {
                url: url.to_owned(),
                status,
            }),
        }
    }
}
