//! [`TestApp`]: one server under test — started (in a fresh data dir, with this run's services
//! and topology), stopped, killed, restarted, asked whether it is ready, and its own `titok`
//! commands run against its data dir. Its HTTP helpers are in `api.rs`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use titok_kit::{Balancer, Topology};
use tokio::process::Child;

use crate::launch::{client, launch_topology, output_of, titok_command};
use crate::services::service_args;

/// A running server under test. Killed when dropped.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub data_dir: PathBuf,
    pub(crate) _dir: Option<tempfile::TempDir>,
    /// The server process, or every process of the scaled topology.
    pub(crate) children: Vec<Child>,
    /// The load balancer in front of the scaled topology.
    pub(crate) balancer: Option<Balancer>,
    /// Each process's own base URL, in [`Topology::roles`] order (one, unscaled): `/readyz` and
    /// `/metrics` are asked there, since the balancer does not route them.
    pub(crate) instances: Vec<String>,
    pub(crate) extra_args: Vec<String>,
    /// Extra environment of the server process.
    pub(crate) env: Vec<(String, String)>,
    pub(crate) log_name: String,
}

/// Start a server with no sample content.
pub async fn spawn_app() -> TestApp {
    TestApp::start(&["--no-sample"]).await
}

impl TestApp {
    /// Start a server in a fresh data dir with extra CLI arguments.
    pub async fn start(args: &[&str]) -> TestApp {
        TestApp::start_with(args, &[]).await
    }

    /// Like [`TestApp::start`], replacing service arguments of this run (e.g. `--redis-url` of a
    /// private Redis that the test stops and starts).
    pub async fn start_with(args: &[&str], overrides: &[(&str, String)]) -> TestApp {
        TestApp::start_full(args, overrides, &[], None).await
    }

    /// Like [`TestApp::start`], with extra environment variables for the server process (e.g.
    /// `LD_PRELOAD` of libfaketime).
    pub async fn start_env(args: &[&str], env: &[(&str, String)]) -> TestApp {
        TestApp::start_full(args, &[], env, None).await
    }

    /// Like [`TestApp::start`], in a data dir the caller provides (and removes).
    pub async fn start_in(data_dir: PathBuf, args: &[&str]) -> TestApp {
        TestApp::start_full(args, &[], &[], Some(data_dir)).await
    }

    async fn start_full(
        args: &[&str],
        overrides: &[(&str, String)],
        env: &[(&str, String)],
        data_dir: Option<PathBuf>,
    ) -> TestApp {
        let (dir, data_dir) = match data_dir {
            Some(path) => (None, path),
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().to_path_buf();
                (Some(dir), path)
            }
        };
        let mut extra_args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut services = service_args(&data_dir);
        for (name, value) in overrides {
            match services.iter().position(|a| a == name) {
                Some(at) => services[at + 1] = value.clone(),
                None => services.extend([name.to_string(), value.clone()]),
            }
        }
        extra_args.extend(services);
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let log_name = "server.log".to_owned();
        let started = launch_topology(&data_dir, &extra_args, &env, &log_name).await;
        TestApp {
            base: started.base,
            client: client(),
            data_dir,
            _dir: dir,
            children: started.children,
            balancer: started.balancer,
            instances: started.instances,
            extra_args,
            env,
            log_name,
        }
    }

    /// SIGTERM the server (every process of it) and wait for it to exit; returns whether it
    /// exited successfully.
    pub async fn terminate(&mut self) -> bool {
        let mut all_ok = true;
        for child in &mut self.children {
            let pid = child.id().expect("running").to_string();
            let sent = std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .expect("kill");
            assert!(sent.success(), "cannot signal the server");
        }
        for child in &mut self.children {
            let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
                .await
                .expect("server did not stop within 30 s of SIGTERM")
                .expect("wait");
            all_ok &= status.success();
        }
        all_ok
    }

    /// SIGKILL the server, every process of it (no graceful anything).
    pub async fn kill(&mut self) {
        for child in &mut self.children {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// SIGKILL instance `instance` (1-based) of `role` (`command-api`, `query-api`,
    /// `projectors`) of the scaled topology; the load balancer notices by its health checks.
    pub fn kill_one(&self, role: &str, instance: usize) {
        assert!(self.is_scaled(), "kill_one needs the scaled topology");
        let mut at = 0;
        for &(r, n) in Topology::of_this_run().roles() {
            if r == role {
                assert!((1..=n).contains(&instance), "{role} has {n} instances");
                let pid = self.children[at + instance - 1].id().expect("running");
                let sent = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status()
                    .expect("kill");
                assert!(sent.success(), "cannot kill {role} {instance}");
                return;
            }
            at += n;
        }
        panic!("no role {role}");
    }

    /// Whether every process of this app has exited (without waiting).
    pub fn exited(&mut self) -> bool {
        self.children
            .iter_mut()
            .all(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// Whether this app is the scaled-out topology behind a load balancer.
    pub fn is_scaled(&self) -> bool {
        self.balancer.is_some()
    }

    /// Kill the server and start a new one on the same data dir (possibly on another port), then
    /// wait until it is ready (its projections applied everything acknowledged before the kill).
    pub async fn restart(&mut self) {
        self.kill().await;
        self.respawn().await;
        let started = std::time::Instant::now();
        self.wait_ready().await;
        eprintln!("restart: ready after {:?}", started.elapsed());
    }

    /// Start the (killed) server again with the same arguments, without waiting for readiness.
    pub async fn respawn(&mut self) {
        self.balancer = None;
        let started =
            launch_topology(&self.data_dir, &self.extra_args, &self.env, &self.log_name).await;
        self.children = started.children;
        self.balancer = started.balancer;
        self.instances = started.instances;
        self.base = started.base;
    }

    /// The URL of an operator's endpoint (`/readyz`, `/metrics`) on the server itself: the
    /// balancer of the scaled topology refuses them, so there the first query API's.
    pub fn admin_url(&self, path: &str) -> String {
        let at = self.instance_at("query-api", 1).unwrap_or(0);
        format!("{}{}", self.instances[at], path)
    }

    /// The own base URL of instance `instance` (1-based) of `role` of a scaled or hosts
    /// topology (not the balancer's).
    pub fn instance_url(&self, role: &str, instance: usize) -> String {
        let at = self
            .instance_at(role, instance)
            .unwrap_or_else(|| panic!("no {role} {instance} in this topology"));
        self.instances[at].clone()
    }

    /// Index of instance `instance` (1-based) of `role` in [`Topology::roles`] order, when scaled.
    fn instance_at(&self, role: &str, instance: usize) -> Option<usize> {
        if !self.is_scaled() {
            return None;
        }
        let mut at = 0;
        for &(r, n) in Topology::of_this_run().roles() {
            if r == role && (1..=n).contains(&instance) {
                return Some(at + instance - 1);
            }
            at += n;
        }
        None
    }

    /// `/readyz` once: (HTTP status, body).
    pub async fn readyz(&self) -> (u16, Value) {
        let resp = self
            .client
            .get(self.admin_url("/readyz"))
            .send()
            .await
            .expect("readyz");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("readyz JSON"))
    }

    /// Poll `/readyz` until it answers 200: 60 s at most, 180 s for the scaled topology, whose
    /// restarted projector instances wait for the broker to give up the killed members' places in
    /// every consumer group (each up to the 20 s rebalance timeout; ~6 s alone, ~20 s beside
    /// another scaled test, over 60 s once in CI on a loaded 2-core machine).
    /// Every process of the scaled topology is asked itself, one after the other.
    pub async fn wait_ready(&self) {
        let limit = if self.is_scaled() { 180 } else { 60 };
        let mut last = String::new();
        let mut ready = 0;
        for _ in 0..limit * 10 {
            let url = format!("{}/readyz?max_lag=0", self.instances[ready]);
            if let Ok(resp) = self.client.get(url).send().await {
                if resp.status() == 200 {
                    ready += 1;
                    if ready == self.instances.len() {
                        return;
                    }
                    continue;
                }
                last = resp.text().await.unwrap_or_default();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "server not ready within {limit} s; log:\n{}\nlast /readyz (not ready within {limit} s): {last}",
            self.logs()
        );
    }

    /// The value of one of the server's arguments (e.g. `--namespace`).
    pub fn arg(&self, name: &str) -> Option<&str> {
        let at = self.extra_args.iter().position(|a| a == name)?;
        self.extra_args.get(at + 1).map(String::as_str)
    }

    /// Run another `titok` command (e.g. `tap`) against this server's data dir and services;
    /// returns its stdout, asserting success.
    pub async fn cli(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.cli_result(args).await;
        assert!(ok, "titok {args:?} failed: {stderr}");
        stdout
    }

    /// Like [`TestApp::cli`], without asserting success: `(succeeded, stdout, stderr)`. Killed
    /// after 120 s (counted as a failure), so a command that should have refused cannot hang a test.
    pub async fn cli_result(&self, args: &[&str]) -> (bool, String, String) {
        let mut command = titok_command();
        command
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra_args);
        output_of(command, Duration::from_secs(120)).await
    }

    /// Like [`TestApp::cli_result`], with extra environment variables for the command (e.g.
    /// `FAILPOINTS`).
    pub async fn cli_result_env(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (bool, String, String) {
        let mut command = titok_command();
        command
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra_args)
            .envs(env.iter().copied());
        output_of(command, Duration::from_secs(120)).await
    }

    /// Replace (or add) one of the server's arguments for the next [`TestApp::respawn`].
    pub fn set_arg(&mut self, name: &str, value: &str) {
        match self.extra_args.iter().position(|a| a == name) {
            Some(at) => self.extra_args[at + 1] = value.to_owned(),
            None => self.extra_args.extend([name.to_owned(), value.to_owned()]),
        }
    }

    /// A writable connection pool to this server's read store (SQLite file or MySQL database), for
    /// tests that inspect or damage the views directly.
    pub async fn view_db(&self) -> sqlx::AnyPool {
        match self.arg("--mysql-url") {
            Some(url) => titok_adapters::store::mysql_any(url, 2)
                .await
                .expect("mysql"),
            None => {
                titok_adapters::store::ViewStore::open_sqlite(&self.data_dir.join("views.db"))
                    .await
                    .expect("views.db")
                    .write
            }
        }
    }

    /// The server's blob store (`--blob-store`, or the data dir's `blobs/`), as the server opens it.
    pub fn blobs(&self) -> titok_adapters::blobs::ObjectBlobs {
        titok_adapters::blobs::ObjectBlobs::open(
            self.arg("--blob-store"),
            self.data_dir.join("blobs"),
        )
        .expect("the blob store")
    }

    /// The server's stderr log so far (every process's, one after the other, when scaled).
    pub fn logs(&self) -> String {
        if self.balancer.is_none() {
            return std::fs::read_to_string(self.data_dir.join(&self.log_name)).unwrap_or_default();
        }
        Topology::of_this_run()
            .roles()
            .iter()
            .flat_map(|(role, n)| (1..=*n).map(move |i| format!("{role}-{i}.log")))
            .map(|name| std::fs::read_to_string(self.data_dir.join(name)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}
