//! The load balancer of the scaled-out topology (docs/scaling-out.md): haproxy (Debian's package)
//! routing the write endpoints to the command APIs and everything else to the query APIs, round
//! robin, with its health checks, retries and refusals — the configuration, and the process. The
//! suites' scaled and hosts passes run every black-box test behind it; the bench's topology
//! scenario measures through it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;

use crate::ports::{free_port, wait_for_port};

/// The write endpoints, which the load balancer sends to the command APIs (everything else —
/// reads, `/static`, `/healthz` — goes to the query APIs; `/metrics` and `/readyz` are refused,
/// see [`ADMIN_PATHS`]).
pub const WRITE_PATHS: [&str; 7] = [
    "/douyin/user/register/",
    "/douyin/user/login/",
    "/douyin/publish/action/",
    "/douyin/favorite/action/",
    "/douyin/comment/action/",
    "/douyin/relation/action/",
    "/douyin/message/action/",
];

/// The operators' endpoints, which the load balancer does not route: it answers them itself with
/// a 404 envelope. Scrapers and orchestrators reach each instance directly (best on its
/// `--admin-listen` address).
pub const ADMIN_PATHS: [&str; 2] = ["/metrics", "/readyz"];

/// The envelope the balancer answers [`ADMIN_PATHS`] with.
pub const ADMIN_REFUSAL: &str =
    r#"{"status_code":404,"status_msg":"not served here: ask the instance itself"}"#;

/// haproxy's own replies — no instance up (503), an instance that failed mid-reply (502), no reply
/// in time (504) — as Douyin envelopes, so a client sees `status_code != 0` and a message, never
/// an HTML page.
fn balancer_errors() -> String {
    [
        (502, "an instance failed while answering; try again"),
        (503, "no instance is available; try again shortly"),
        (504, "no instance answered in time; try again"),
    ]
    .iter()
    .map(|(status, msg)| {
        format!(
            "    http-error status {status} content-type application/json string '{{\"status_code\":{status},\"status_msg\":\"{msg}\"}}'\n"
        )
    })
    .collect()
}

/// The haproxy configuration of docs/scaling-out.md: writes to the command APIs, the rest to the
/// query APIs, round robin (a read that an instance took and then failed or did not answer within
/// 20 s is sent to another); `/metrics` and `/readyz` refused with a 404 envelope; `/healthz` checked every 250 ms (down after 2 failures); a request
/// whose connection failed is retried on another instance (never one that reached an instance:
/// clients retry those with an `Idempotency-Key`); `X-Forwarded-For` added for the login limits.
pub fn haproxy_config(port: u16, commands: &[String], queries: &[String]) -> String {
    let servers = |prefix: &str, addrs: &[String]| -> String {
        addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("    server {prefix}{} {a} check\n", i + 1))
            .collect()
    };
    format!(
        "global
    maxconn 8192
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    option forwardfor
    retries 2
    option redispatch 1
    retry-on conn-failure
    default-server inter 250ms fall 2 rise 1
{errors}frontend api
    bind 127.0.0.1:{port}
    acl admin path {admin}
    http-request return status 404 content-type application/json string '{refusal}' if admin
    acl write path {writes}
    use_backend commands if write
    acl stream path_beg /douyin/stream
    use_backend streams if stream
    default_backend queries
backend commands
    balance roundrobin
    option httpchk GET /healthz
{c}backend queries
    balance roundrobin
    option httpchk GET /healthz
    # Reads are safe to send again: also when an instance took the request and then failed or
    # went silent (a reused connection to a host cut off), on another instance.
    retry-on conn-failure empty-response junk-response response-timeout
    timeout server 20s
{q}backend streams
    # Server-sent events: one response for as long as the client stays, quiet but for a
    # keep-alive comment every 15 s.
    balance leastconn
    option httpchk GET /healthz
    timeout server 1h
    timeout tunnel 1h
{s}",
        errors = balancer_errors(),
        admin = ADMIN_PATHS.join(" "),
        refusal = ADMIN_REFUSAL,
        writes = WRITE_PATHS.join(" "),
        c = servers("c", commands),
        q = servers("q", queries),
        s = servers("s", queries),
    )
}

/// haproxy (Debian's package) on a free loopback port; stopped when dropped.
pub struct Balancer {
    child: std::process::Child,
    pub port: u16,
}

impl Balancer {
    /// Start haproxy in front of `commands` and `queries` (`host:port` each), its config written
    /// to `dir/haproxy.cfg` and its log to `dir/haproxy.log`; waits until it accepts connections.
    pub async fn start(
        dir: &Path,
        commands: &[String],
        queries: &[String],
    ) -> anyhow::Result<Balancer> {
        let port = free_port();
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, haproxy_config(port, commands, queries))?;
        let log = std::fs::File::create(dir.join("haproxy.log"))?;
        let child = std::process::Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context(
                "cannot start haproxy (Debian package haproxy; scripts/services.sh installs it)",
            )?;
        let mut balancer = Balancer { child, port };
        match wait_for_port(port, Duration::from_secs(5), Some(&mut balancer.child)).await {
            Ok(()) => Ok(balancer),
            Err(e) => anyhow::bail!(
                "haproxy {e}: {}",
                std::fs::read_to_string(dir.join("haproxy.log")).unwrap_or_default()
            ),
        }
    }

    /// The haproxy process id (for its CPU share).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether haproxy is installed.
pub fn haproxy_available() -> bool {
    std::process::Command::new("haproxy")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_routes_every_write_path_to_the_command_apis() {
        let config = haproxy_config(
            9000,
            &["127.0.0.1:1".into()],
            &["127.0.0.1:2".into(), "127.0.0.1:3".into()],
        );
        for path in WRITE_PATHS {
            assert!(config.contains(path), "{path}");
        }
        assert!(config.contains("server c1 127.0.0.1:1 check"));
        assert!(config.contains("server q2 127.0.0.1:3 check"));
        assert!(config.contains("bind 127.0.0.1:9000"));
    }
}
