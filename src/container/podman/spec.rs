//! Request bodies and query values for libpod, built from our plain types.
//! Pure functions, so the exact JSON podman receives is unit-tested.

use std::io::{BufRead, Read};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};

use crate::container::{ContainerSpec, ExecRequest};

/// Resource limits for `r_limits`. Podman replaces containers.conf's
/// `default_ulimits` wholesale when `r_limits` is present and fills any
/// limit left out with 1048576, which fails to start on hosts whose hard
/// limits are lower; so either both are given or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RLimits {
    pub nofile: u64,
    pub nproc: u64,
}

/// libpod SpecGenerator for `POST /containers/create`. Hardening that is
/// not a per-build choice is always applied here: all capabilities
/// dropped, no_new_privileges, an init process (signals, zombies), and the
/// image's volumes ignored.
pub fn create_body(spec: &ContainerSpec, rlimits: Option<RLimits>) -> Value {
    let mounts: Vec<Value> = spec
        .tmpfs
        .iter()
        .map(|dest| {
            json!({
                "destination": dest,
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["rw", "nosuid", "nodev"],
            })
        })
        .collect();
    let mut body = json!({
        "name": spec.name,
        "image": spec.image,
        "command": spec.command,
        "env": spec.env,
        "labels": spec.labels,
        "mounts": mounts,
        "cap_drop": ["ALL"],
        "no_new_privileges": true,
        "privileged": false,
        "init": true,
        "image_volume_mode": "ignore",
    });
    let Some(obj) = body.as_object_mut() else {
        return body;
    };
    match &spec.network {
        Some(net) => {
            let mut nets = Map::new();
            nets.insert(net.clone(), json!({}));
            obj.insert("netns".into(), json!({"nsmode": "bridge"}));
            obj.insert("networks".into(), Value::Object(nets));
        }
        None => {
            obj.insert("netns".into(), json!({"nsmode": "none"}));
        }
    }
    if spec.timeout_seconds > 0 {
        obj.insert("timeout".into(), json!(spec.timeout_seconds));
    }
    if let Some(l) = rlimits {
        obj.insert(
            "r_limits".into(),
            json!([
                {"type": "nofile", "soft": l.nofile, "hard": l.nofile},
                {"type": "nproc", "soft": l.nproc, "hard": l.nproc},
            ]),
        );
    }
    body
}

/// Body for `POST /containers/{id}/exec`. No stdin and no TTY: the output
/// arrives as a multiplexed stream with stdout and stderr kept apart.
pub fn exec_create_body(req: &ExecRequest) -> Value {
    let env: Vec<String> = req.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut body = json!({
        "AttachStdin": false,
        "AttachStdout": true,
        "AttachStderr": true,
        "Tty": false,
        "Cmd": req.cmd,
        "Env": env,
    });
    if let Some(obj) = body.as_object_mut() {
        if let Some(w) = &req.workdir {
            obj.insert("WorkingDir".into(), json!(w));
        }
        if let Some(u) = &req.user {
            obj.insert("User".into(), json!(u));
        }
    }
    body
}

/// `filters` query value selecting containers by one label (`key` or `key=value`).
pub fn label_filter(label: &str) -> String {
    json!({ "label": [label] }).to_string()
}

/// Percent-encodes one URL path segment (container ids and names, image
/// references, network names), so a `/`, `?` or `#` in a value can never
/// change which endpoint is called. Podman decodes `%2F` in image names.
pub fn path_segment(s: &str) -> String {
    utf8_percent_encode(s, PATH_SEGMENT_ESCAPES).to_string()
}

/// Everything but RFC 3986 unreserved characters, `:` and `@` (tags and
/// digests stay readable in podman's logs).
const PATH_SEGMENT_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':')
    .remove(b'@');

/// The end of an image pull, as reported in podman's JSON-lines stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullOutcome {
    Pulled { id: String },
    Failed(String),
}

/// Longest pull-stream line we look at; anything beyond is skipped.
const MAX_PULL_LINE: u64 = 1 << 20;

/// Reads a pull stream line by line. Podman answers 200 even when the
/// pull fails: failure shows only as an `error` line, success as a line
/// with `id`/`images`.
pub fn read_pull_stream<R: BufRead>(mut r: R) -> std::io::Result<PullOutcome> {
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut r).take(MAX_PULL_LINE).read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(PullOutcome::Failed(
                "pull stream ended without a result".into(),
            ));
        }
        if line.last() != Some(&b'\n') && n as u64 == MAX_PULL_LINE {
            // Overlong line: discard the rest of it.
            let mut sink = Vec::new();
            while !sink.ends_with(b"\n") {
                sink.clear();
                if (&mut r).take(MAX_PULL_LINE).read_until(b'\n', &mut sink)? == 0 {
                    break;
                }
            }
            continue;
        }
        let Ok(v) = serde_json::from_slice::<Value>(&line) else {
            continue;
        };
        if let Some(e) = v.get("error").and_then(Value::as_str) {
            return Ok(PullOutcome::Failed(e.trim().to_string()));
        }
        if let Some(id) = v.get("id").and_then(Value::as_str) {
            return Ok(PullOutcome::Pulled { id: id.to_string() });
        }
        if let Some(id) = v
            .get("images")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
        {
            return Ok(PullOutcome::Pulled { id: id.to_string() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "asu-job-1".into(),
            image: "ghcr.io/openwrt/imagebuilder:x86-64-v23.05.5".into(),
            command: vec!["sleep".into(), "600".into()],
            env: BTreeMap::from([("TARGET".into(), "x86/64".into())]),
            labels: BTreeMap::from([("asu.builder".into(), "1".into())]),
            tmpfs: vec!["/builder/abc".into()],
            network: Some("asu-build".into()),
            timeout_seconds: 900,
        }
    }

    #[test]
    fn create_body_is_hardened_and_complete() {
        let b = create_body(&spec(), None);
        assert_eq!(b["name"], "asu-job-1");
        assert_eq!(b["command"], json!(["sleep", "600"]));
        assert_eq!(b["env"], json!({"TARGET": "x86/64"}));
        assert_eq!(b["labels"], json!({"asu.builder": "1"}));
        assert_eq!(b["cap_drop"], json!(["ALL"]));
        assert_eq!(b["no_new_privileges"], true);
        assert_eq!(b["init"], true);
        assert_eq!(b["timeout"], 900);
        assert_eq!(b["networks"], json!({"asu-build": {}}));
        assert_eq!(b["netns"], json!({"nsmode": "bridge"}));
        assert_eq!(b["mounts"][0]["destination"], "/builder/abc");
        assert_eq!(b["mounts"][0]["type"], "tmpfs");
        assert!(
            b.get("r_limits").is_none(),
            "containers.conf defaults must apply"
        );
    }

    #[test]
    fn no_network_means_no_netns_and_limits_come_in_pairs() {
        let mut s = spec();
        s.network = None;
        s.timeout_seconds = 0;
        let b = create_body(
            &s,
            Some(RLimits {
                nofile: 1024,
                nproc: 512,
            }),
        );
        assert_eq!(b["netns"], json!({"nsmode": "none"}));
        assert!(b.get("networks").is_none());
        assert!(b.get("timeout").is_none());
        assert_eq!(
            b["r_limits"],
            json!([{"type":"nofile","soft":1024,"hard":1024},{"type":"nproc","soft":512,"hard":512}])
        );
    }

    #[test]
    fn exec_body_has_env_list_and_optional_fields() {
        let req = ExecRequest {
            cmd: vec!["make".into(), "info".into()],
            env: vec![("A".into(), "1 2".into())],
            workdir: None,
            user: Some("buildbot".into()),
        };
        let b = exec_create_body(&req);
        assert_eq!(b["Cmd"], json!(["make", "info"]));
        assert_eq!(b["Env"], json!(["A=1 2"]));
        assert_eq!(b["User"], "buildbot");
        assert!(b.get("WorkingDir").is_none());
        assert_eq!(b["AttachStdout"], true);
        assert_eq!(b["Tty"], false);
    }

    #[test]
    fn filters_and_path_segments_are_encoded() {
        assert_eq!(label_filter("asu.builder"), r#"{"label":["asu.builder"]}"#);
        assert_eq!(
            path_segment("ghcr.io/openwrt/imagebuilder:x86-64-v1.2.3"),
            "ghcr.io%2Fopenwrt%2Fimagebuilder:x86-64-v1.2.3"
        );
        assert_eq!(path_segment("a b?#"), "a%20b%3F%23");
        assert_eq!(
            path_segment("x/y%z@sha256:1~_.-ü"),
            "x%2Fy%25z@sha256:1~_.-%C3%BC"
        );
    }

    #[test]
    fn pull_stream_error_in_a_200_is_a_failure() {
        let s = "{\"stream\":\"Trying to pull x...\\n\"}\n{\"error\":\"pinging container registry ghcr.io: no such host\"}\n";
        assert_eq!(
            read_pull_stream(s.as_bytes()).unwrap(),
            PullOutcome::Failed("pinging container registry ghcr.io: no such host".into())
        );
    }

    #[test]
    fn pull_stream_success_and_truncation() {
        let s = "{\"stream\":\"Trying\\n\"}\nnot json\n{\"images\":[\"abc\"],\"id\":\"abc\"}\n";
        assert_eq!(
            read_pull_stream(s.as_bytes()).unwrap(),
            PullOutcome::Pulled { id: "abc".into() }
        );
        assert!(matches!(
            read_pull_stream("{\"stream\":\"Trying\\n\"}\n".as_bytes()).unwrap(),
            PullOutcome::Failed(_)
        ));
    }
}
