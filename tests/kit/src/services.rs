//! Private services for the tests that stop and start one (Redis, tansu, MariaDB) or fail a Redis
//! Cluster master over. How each server is started is scripts/services.sh's, which starts a run's
//! shared services too: its `redis_run`, `tansu_run`, `mariadb_install`, `mariadb_run`,
//! `mariadb_titok_user` and `redis_cluster_create` functions. A [`PrivateService`] runs such a
//! function (`bash -c 'source scripts/services.sh && FUNCTION ARGS…'`), which execs the server,
//! as its own child process in a temp dir of its own — so that it can SIGKILL the server and start
//! it again on the same port and data. What stays here: the process's lifecycle, the wait for its
//! port ([`wait_for_port`]), and the cluster's checks (roles, health, keys).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::ports::{free_port, wait_for_port};

/// scripts/services.sh of this checkout.
pub fn services_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/services.sh")
}

/// A function of scripts/services.sh with its arguments, as a command.
fn services_function(function: &str, args: &[String]) -> std::process::Command {
    let mut command = std::process::Command::new("bash");
    command
        .arg("-c")
        .arg(r#"source "$0" && "$@""#)
        .arg(services_script())
        .arg(function)
        .args(args);
    command
}

/// Run a function of scripts/services.sh to its end, asserting success.
fn run_services_function(function: &str, args: &[String]) {
    let status = services_function(function, args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run bash for {function}: {e}"));
    assert!(status.success(), "{function} {args:?} failed");
}

/// A private service process (Redis, tansu, MariaDB) that a fault test may stop and start again on
/// the same port and data directory.
pub struct PrivateService {
    /// The scripts/services.sh function that execs the server, then its arguments.
    run: Vec<String>,
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<std::process::Child>,
}

impl PrivateService {
    /// A Redis server without persistence.
    pub async fn redis() -> PrivateService {
        PrivateService::redis_with(&[]).await
    }

    /// A Redis server without persistence, with more arguments (e.g. cluster mode).
    pub async fn redis_with(extra: &[&str]) -> PrivateService {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut run = vec![
            "redis_run".to_owned(),
            dir.path().display().to_string(),
            "127.0.0.1".to_owned(),
            port.to_string(),
        ];
        run.extend(extra.iter().map(|s| s.to_string()));
        PrivateService::launch(dir, run, port).await
    }

    /// A tansu Kafka-API broker with SQLite storage in its own directory.
    pub async fn tansu() -> PrivateService {
        let port = free_port();
        PrivateService::tansu_advertising(port, port).await
    }

    /// A tansu broker listening on `port` that tells clients to connect to `advertised` (a
    /// fault proxy in front of it, so that every connection goes through the proxy).
    pub async fn tansu_advertising(port: u16, advertised: u16) -> PrivateService {
        let dir = tempfile::tempdir().expect("temp dir");
        let run = vec![
            "tansu_run".to_owned(),
            dir.path().display().to_string(),
            "127.0.0.1".to_owned(),
            port.to_string(),
            advertised.to_string(),
        ];
        PrivateService::launch(dir, run, port).await
    }

    /// A MariaDB server with a `titok`/`titok` user; its URL is [`PrivateService::mysql_url`].
    pub async fn mariadb() -> PrivateService {
        let dir = tempfile::tempdir().expect("temp dir");
        let datadir = dir.path().join("data").display().to_string();
        run_services_function("mariadb_install", std::slice::from_ref(&datadir));
        let port = free_port();
        let socket = dir.path().join("sock").display().to_string();
        let run = vec![
            "mariadb_run".to_owned(),
            datadir,
            socket.clone(),
            "127.0.0.1".to_owned(),
            port.to_string(),
            "--skip-log-bin".to_owned(),
        ];
        let service = PrivateService::launch(dir, run, port).await;
        run_services_function("mariadb_titok_user", &[socket, "127.0.0.1".to_owned()]);
        service
    }

    /// The URL of a private MariaDB's `titok` database.
    pub fn mysql_url(&self) -> String {
        format!("mysql://titok:titok@127.0.0.1:{}/titok", self.port)
    }

    async fn launch(dir: tempfile::TempDir, run: Vec<String>, port: u16) -> PrivateService {
        let mut service = PrivateService {
            run,
            dir,
            port,
            child: None,
        };
        service.start().await;
        service
    }

    /// Start (again), and wait until the port accepts connections.
    pub async fn start(&mut self) {
        let log_path = self.dir.path().join("service.log");
        let log = std::fs::File::create(&log_path).expect("log");
        let child = services_function(&self.run[0], &self.run[1..])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.run[0]));
        self.child = Some(child);
        let started = wait_for_port(self.port, Duration::from_secs(15), self.child.as_mut()).await;
        if let Err(e) = started {
            panic!(
                "{} {e}; its log:\n{}",
                self.run[0],
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
    }

    /// The service's working directory (its data and `service.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether it runs (started, and not stopped since).
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateService {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A private Redis Cluster on loopback (Debian's `redis-server`): three masters and three
/// replicas, made with `redis-cli --cluster create`, node timeout 1 s — for a test that fails a
/// master over.
pub struct RedisCluster {
    pub nodes: Vec<PrivateService>,
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl RedisCluster {
    pub async fn start() -> RedisCluster {
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let bus = free_port().to_string();
            nodes.push(
                PrivateService::redis_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus,
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                    // A replica may take over however long ago it last heard from its master
                    // (on a loaded test machine the default validity check can veto it).
                    "--cluster-replica-validity-factor",
                    "0",
                ])
                .await,
            );
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        run_services_function("redis_cluster_create", &addrs);
        let cluster = RedisCluster { nodes };
        cluster.wait_healthy().await;
        cluster
    }

    /// `redis+cluster://` URL naming every node.
    pub fn url(&self) -> String {
        let addrs: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", addrs.join(","))
    }

    /// The running nodes that are masters now.
    pub fn masters(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.running())
            .filter(|n| redis_cli(n.port, &["role"]).starts_with("master"))
            .map(|n| n.port)
            .collect()
    }

    /// Keys matching `pattern` on one node.
    pub fn keys_on(&self, port: u16, pattern: &str) -> Vec<String> {
        redis_cli(port, &["--scan", "--pattern", pattern])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// SIGKILL the node on `port`.
    pub fn kill(&mut self, port: u16) {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node of the cluster")
            .stop();
    }

    /// Wait (60 s at most) until every running node reports `cluster_state:ok` with three masters.
    pub async fn wait_healthy(&self) {
        for _ in 0..600 {
            let ok = self.nodes.iter().filter(|n| n.running()).all(|n| {
                let info = redis_cli(n.port, &["cluster", "info"]);
                info.contains("cluster_state:ok") && info.contains("cluster_size:3")
            });
            if ok && self.masters().len() == 3 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let port = self
            .nodes
            .iter()
            .find(|n| n.running())
            .map_or(0, |n| n.port);
        panic!(
            "the Redis Cluster did not become healthy within 60 s:\n{}",
            redis_cli(port, &["cluster", "nodes"])
        );
    }
}
