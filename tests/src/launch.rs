//! Starting the binaries under test: `titok` commands run to their end ([`run_titok`],
//! [`run_bench`], [`run_titok_bare`]), and a [`crate::TestApp`]'s processes — one `titok serve`,
//! or the scaled or hosts topology behind haproxy — each started with the kit's
//! [`titok_kit::launch::spawn_listening`].

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use titok_kit::launch::{command_without_settings, spawn_listening};
use titok_kit::{host_of, Balancer, Topology};
use tokio::process::{Child, Command};

use crate::services::service_args;

/// Run `titok <args>` on its own (no server of the harness), with this pass's service arguments
/// and a scratch data dir; `(succeeded, stdout, stderr)`.
pub async fn run_titok(args: &[&str], timeout: Duration) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = titok_command();
    command
        .args(args)
        .arg("--data-dir")
        .arg(dir.path())
        .args(service_args(dir.path()));
    output_of(command, timeout).await
}

/// Run `titok-bench <args>` (the benchmark's own binary) with this pass's service arguments and a
/// scratch data dir; `(succeeded, stdout, stderr)`.
pub async fn run_bench(args: &[&str], timeout: Duration) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = command_without_settings(built_binary("titok-bench-under-test"));
    command
        .args(args)
        .arg("--server-bin")
        .arg(server_binary())
        .arg("--data-dir")
        .arg(dir.path())
        .args(service_args(dir.path()));
    output_of(command, timeout).await
}

/// Run `titok <args>` exactly as given (no service arguments of this pass) in a scratch data dir:
/// `(succeeded, stdout, stderr)`; for start-up refusals.
pub async fn run_titok_bare(args: &[&str], timeout: Duration) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = titok_command();
    command.args(args).arg("--data-dir").arg(dir.path());
    output_of(command, timeout).await
}

/// Run a `titok` command to its end (killed after `timeout`, counted as a failure):
/// `(succeeded, stdout, stderr)`. The command runs in a process group of its own, killed whole on
/// a timeout: what it started (the bench's role processes and balancer) must not outlive it and
/// load the machine and the broker for the tests that follow.
pub(crate) async fn output_of(mut command: Command, timeout: Duration) -> (bool, String, String) {
    command
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = command.spawn().expect("run titok");
    let group = child.id();
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(output) => {
            let output = output.expect("run titok");
            (
                output.status.success(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        }
        Err(_) => {
            if let Some(group) = group {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", "--", &format!("-{group}")])
                    .status();
            }
            (false, String::new(), format!("timed out after {timeout:?}"))
        }
    }
}

/// The server binary: `TITOK_TEST_BIN` if set, else `titok-under-test` built next to the test
/// executable.
pub(crate) fn server_binary() -> PathBuf {
    if let Ok(path) = std::env::var("TITOK_TEST_BIN") {
        return PathBuf::from(path);
    }
    built_binary("titok-under-test")
}

/// A binary of this crate, built next to the test executable (`target/<profile>/`, the parent of
/// the test's `deps/` directory).
fn built_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let bin = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p titok-tests --bins`",
        bin.display()
    );
    bin
}

/// The binary under test, without the TITOK_* settings of this environment: the server reads them,
/// and only the arguments a test gives must count.
pub(crate) fn titok_command() -> Command {
    command_without_settings(server_binary())
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Where one process runs: a network namespace and an address of its host (the hosts topology)
/// or loopback, and the data dir it is given.
pub(crate) struct Placement {
    pub(crate) netns: Option<&'static str>,
    pub(crate) ip: &'static str,
    pub(crate) data_dir: PathBuf,
}

impl Placement {
    pub(crate) fn local(data_dir: &std::path::Path) -> Placement {
        Placement {
            netns: None,
            ip: "127.0.0.1",
            data_dir: data_dir.to_path_buf(),
        }
    }
}

/// One `titok serve`, or several processes behind haproxy (see [`Topology`]).
pub(crate) async fn launch_topology(
    data_dir: &std::path::Path,
    extra: &[String],
    env: &[(String, String)],
    log_name: &str,
) -> Started {
    let topology = Topology::of_this_run();
    if topology == Topology::Single {
        let place = Placement::local(data_dir);
        let (child, base) = launch(&place, data_dir, extra, env, log_name).await;
        return Started {
            children: vec![child],
            balancer: None,
            instances: vec![base.clone()],
            base,
        };
    }
    let mut launches = Vec::new();
    for &(role, n) in topology.roles() {
        for i in 1..=n {
            let mut args = vec![role.to_owned()];
            if role == "command-api" {
                args.extend(["--node-id".to_owned(), i.to_string()]);
                // One instance seeds the sample (when the test wants it), not both.
                if i > 1 && !extra.iter().any(|a| a == "--no-sample") {
                    args.push("--no-sample".to_owned());
                }
            }
            let (place, proxy) = match topology {
                // Each on its host, with a data dir of its own; the balancer is on the client host.
                Topology::Hosts => {
                    let (netns, ip) = host_of(role, i);
                    let own = data_dir.join(format!("{role}-{i}"));
                    std::fs::create_dir_all(&own).expect("a data dir of the host");
                    let place = Placement {
                        netns: Some(netns),
                        ip,
                        data_dir: own,
                    };
                    (place, host_of("client", 1).1)
                }
                _ => (Placement::local(data_dir), "127.0.0.1"),
            };
            args.extend(["--trusted-proxy".to_owned(), proxy.to_owned()]);
            // Two projector instances joining one consumer group together take seconds on tansu
            // before either is given partitions; reads of a test's first writes wait for that
            // instead of answering stale (the default 2 s bound is for a running deployment).
            if topology == Topology::Scaled
                && !extra.iter().any(|a| a == "--consistency-timeout-ms")
            {
                args.extend(["--consistency-timeout-ms".to_owned(), "15000".to_owned()]);
            }
            args.extend(extra.iter().cloned());
            launches.push(async move {
                let log = format!("{role}-{i}.log");
                let (child, base) = launch(&place, data_dir, &args, env, &log).await;
                (role, child, base)
            });
        }
    }
    let started = futures::future::join_all(launches).await;
    let backends = |which: &str| -> Vec<String> {
        started
            .iter()
            .filter(|(role, _, _)| *role == which)
            .map(|(_, _, base)| base.trim_start_matches("http://").to_owned())
            .collect()
    };
    let balancer = Balancer::start(data_dir, &backends("command-api"), &backends("query-api"))
        .await
        .expect("haproxy in front of the instances");
    let base = format!("http://127.0.0.1:{}", balancer.port);
    let instances = started.iter().map(|(_, _, base)| base.clone()).collect();
    let children = started.into_iter().map(|(_, child, _)| child).collect();
    Started {
        children,
        balancer: Some(balancer),
        instances,
        base,
    }
}

/// What [`launch_topology`] started.
pub(crate) struct Started {
    pub(crate) children: Vec<Child>,
    pub(crate) balancer: Option<Balancer>,
    /// Each process's own base URL.
    pub(crate) instances: Vec<String>,
    /// Where clients go: the balancer, or the one process.
    pub(crate) base: String,
}

/// Start one `titok` process at `place`, its stderr in `log_dir/log_name`; waits for its
/// "listening on" line: `(process, base URL)`.
pub(crate) async fn launch(
    place: &Placement,
    log_dir: &std::path::Path,
    extra: &[String],
    env: &[(String, String)],
    log_name: &str,
) -> (Child, String) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_dir.join(log_name))
        .expect("log file");
    let mut command = match place.netns {
        // `ip netns exec` execs the binary in the host's namespace: the child is titok itself.
        Some(netns) => {
            let mut command = command_without_settings(PathBuf::from("ip"));
            command.args(["netns", "exec", netns]).arg(server_binary());
            command
        }
        None => titok_command(),
    };
    command
        .arg("--listen")
        .arg(format!("{}:0", place.ip))
        .arg("--data-dir")
        .arg(&place.data_dir)
        .args(extra)
        .env("RUST_LOG", "info,sqlx=warn,titok_projectors=debug")
        // Tests register users by the hundred from 127.0.0.1; the sign-up quota's own test sets
        // its quota with the flag (or this variable), which wins.
        .env("TITOK_REGISTERS_PER_ADDRESS", "1000000")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stderr(Stdio::from(log));
    spawn_listening(command, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the server {e:#}; log:\n{}",
                std::fs::read_to_string(log_dir.join(log_name)).unwrap_or_default()
            )
        })
}
