//! `asu-builder doctor`: one line per check, `OK` or `FAIL`, every failure
//! with what to do about it. Read-only: it creates nothing (not even the
//! build network, which the first build creates).

use crate::config::{Config, ConfigError, ConfigSource};
use crate::container::ContainerRuntime;
use crate::container::podman::Podman;
use crate::db;
use std::path::Path;
use std::time::Duration;

/// Below this much free space in the store a build may not fit: the
/// ImageBuilder unpacks and writes its images there (and Podman's storage
/// often shares the disk).
const MIN_FREE_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// How long the upstream check may take.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
    /// What to do when it failed.
    pub fix: String,
}

fn ok(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        ok: true,
        detail: detail.into(),
        fix: String::new(),
    }
}

fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        ok: false,
        detail: detail.into(),
        fix: fix.into(),
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.ok {
            write!(f, "OK    {:<9} {}", self.name, self.detail)
        } else {
            write!(
                f,
                "FAIL  {:<9} {} — fix: {}",
                self.name, self.detail, self.fix
            )
        }
    }
}

/// Every check; a configuration that does not load is the only one then.
pub fn run(loaded: &Result<(Config, ConfigSource), ConfigError>) -> Vec<Check> {
    let (config, source) = match loaded {
        Ok(c) => c,
        Err(e) => {
            return vec![fail(
                "config",
                e.to_string(),
                "correct the key named above (asu-builder --check-config shows the result)",
            )];
        }
    };
    let runtime = Podman::new(&config.container_socket_path);
    vec![
        ok("config", format!("loaded from {source}")),
        database(&config.database_path),
        podman(&runtime, &config.container_socket_path),
        network(&runtime, &config.container_network),
        store(&config.store_path),
        upstream(&config.upstream_url),
    ]
}

fn database(path: &Path) -> Check {
    const NAME: &str = "database";
    if !path.is_file() {
        return fail(
            NAME,
            format!("{} does not exist", path.display()),
            "start the server once (it creates and migrates the database), or correct database_path",
        );
    }
    let conn = match db::open(path) {
        Ok(c) => c,
        Err(e) => {
            return fail(
                NAME,
                e.to_string(),
                "check the file's owner and mode (the service user must write it and its directory)",
            );
        }
    };
    let check: Result<String, _> = conn.query_row("PRAGMA quick_check", [], |r| r.get(0));
    let version: Result<i64, _> = conn.pragma_query_value(None, "user_version", |r| r.get(0));
    match (check, version) {
        (Ok(c), Ok(v)) if c == "ok" && v == db::SCHEMA_VERSION => {
            ok(NAME, format!("{} is intact, schema {v}", path.display()))
        }
        (Ok(c), Ok(_)) if c != "ok" => fail(
            NAME,
            format!("integrity check: {c}"),
            "stop the server, keep a copy, then `sqlite3 builder.db .recover | sqlite3 new.db` or start afresh (builds are caches)",
        ),
        (Ok(_), Ok(v)) => fail(
            NAME,
            format!("schema {v}, this asu-builder uses {}", db::SCHEMA_VERSION),
            "start the server of this version once: it migrates the database",
        ),
        (Err(e), _) | (_, Err(e)) => fail(NAME, e.to_string(), "check the file and its directory"),
    }
}

fn podman(runtime: &Podman, socket: &Path) -> Check {
    match runtime.ping() {
        Ok(version) => ok(
            "podman",
            format!("answers at {} (version {version})", socket.display()),
        ),
        Err(e) => fail(
            "podman",
            e.to_string(),
            format!(
                "systemctl enable --now podman.socket, and let the service user use {} (see README, Production)",
                socket.display()
            ),
        ),
    }
}

fn network(runtime: &Podman, name: &str) -> Check {
    match runtime.network_exists(name) {
        Ok(true) => ok("network", format!("{name} exists")),
        Ok(false) => fail(
            "network",
            format!("{name} does not exist"),
            format!("the first build creates it; or now: podman network create {name}"),
        ),
        Err(e) => fail(
            "network",
            format!("cannot ask Podman: {e}"),
            "fix the podman check first",
        ),
    }
}

fn store(path: &Path) -> Check {
    const NAME: &str = "store";
    if !path.is_dir() {
        return fail(
            NAME,
            format!("{} does not exist", path.display()),
            "start the server once (it creates store_path), or correct store_path",
        );
    }
    let free = match rustix::fs::statvfs(path) {
        Ok(s) => s.f_bavail.saturating_mul(s.f_frsize),
        Err(e) => return fail(NAME, format!("statvfs: {e}"), "check store_path"),
    };
    let gib = |b: u64| b as f64 / (1024.0 * 1024.0 * 1024.0);
    let probe = path.join(".doctor-write-test");
    let writable = std::fs::write(&probe, b"x").and_then(|()| std::fs::remove_file(&probe));
    if let Err(e) = writable {
        return fail(
            NAME,
            format!("{} is not writable: {e}", path.display()),
            "chown it to the service user (systemd: StateDirectory does this for /var/lib/asu-builder)",
        );
    }
    if free < MIN_FREE_BYTES {
        return fail(
            NAME,
            format!("{:.1} GiB free in {}", gib(free), path.display()),
            format!(
                "free at least {:.0} GiB (asu-builder purge --expired; podman image prune)",
                gib(MIN_FREE_BYTES)
            ),
        );
    }
    ok(
        NAME,
        format!("{:.1} GiB free in {}", gib(free), path.display()),
    )
}

fn upstream(base: &str) -> Check {
    let url = format!("{}/.versions.json", base.trim_end_matches('/'));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(UPSTREAM_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let fix = "check upstream_url, DNS and the outbound network (or a proxy) of this host";
    match agent.get(&url).call() {
        Ok(resp) if resp.status() == 200 => {
            let body = resp
                .into_body()
                .with_config()
                .limit(1024 * 1024)
                .read_to_vec()
                .unwrap_or_default();
            match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(v) if v.get("stable_version").is_some() => ok(
                    "upstream",
                    format!("{url} answers (stable {})", v["stable_version"]),
                ),
                _ => fail("upstream", format!("{url} is not a versions file"), fix),
            }
        }
        Ok(resp) => fail("upstream", format!("{url} answered {}", resp.status()), fix),
        Err(e) => fail("upstream", format!("{url}: {e}"), fix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_ok_or_fail_with_a_fix() {
        assert_eq!(
            ok("store", "9 GiB free").to_string(),
            "OK    store     9 GiB free"
        );
        let f = fail("podman", "no socket", "start it");
        assert_eq!(f.to_string(), "FAIL  podman    no socket — fix: start it");
    }
}
