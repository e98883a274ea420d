//! # titok-tests
//!
//! Black-box tests: every test starts the real server binary on port 0 with its own data dir,
//! drives the Douyin HTTP API with reqwest, and asserts on the JSON replies. Run them with
//! `cargo test -p titok-tests` (or the README's test command, which runs everything).
//!
//! [`TestApp`] is the `spawn_app()` helper with typed request helpers.
//!
//! With `TITOK_TEST_TOPOLOGY=scaled` (scripts/test's third pass) a [`TestApp`] is the scaled-out
//! topology instead of one `titok serve`: two command APIs (node ids 1 and 2), two query APIs and
//! two projector instances sharing the services and the data dir (uploads), behind haproxy
//! ([`Balancer`]) routing the write endpoints to the command APIs and everything else to the query
//! APIs, round robin — so consecutive requests of a test land on different instances.
//!
//! **Size.** ~1,600 lines, 7 concerns: issue 24 turns it into a test kit (app/launch, API
//! helpers, cluster, injection, fault proxy, services, metrics).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub use titok_bench::topology::{Balancer, WRITE_PATHS};

/// The sample video (a real 1 s H.264 MP4).
pub const SAMPLE_MP4: &[u8] = include_bytes!("../../assets/sample.mp4");

/// A running server under test. Killed when dropped.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub data_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
    /// The server process, or every process of the scaled topology.
    children: Vec<Child>,
    /// The load balancer in front of the scaled topology.
    balancer: Option<Balancer>,
    /// Each process's own base URL, in [`Topology::roles`] order (one, unscaled): `/readyz` and
    /// `/metrics` are asked there, since the balancer does not route them.
    instances: Vec<String>,
    extra_args: Vec<String>,
    /// Extra environment of the server process.
    env: Vec<(String, String)>,
    log_name: String,
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

    /// GET a plain-text page (e.g. `/metrics`, asked of the server itself: see
    /// [`TestApp::admin_url`]), asserting HTTP 200.
    pub async fn get_text(&self, path: &str) -> String {
        let url = if path.starts_with("/metrics") {
            self.admin_url(path)
        } else {
            self.url(path)
        };
        let resp = self.client.get(url).send().await.expect("GET");
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.text().await.expect("text")
    }

    /// GET with query parameters; returns (HTTP status, JSON body).
    pub async fn get_raw(&self, path: &str, query: &[(&str, String)]) -> (u16, Value) {
        let (status, _, body) = self.get_full(path, query).await;
        (status, body)
    }

    /// A form POST carrying an `Idempotency-Key` header, ready to send (and send again).
    pub fn keyed_post(
        &self,
        path: &str,
        key: &str,
        form: &[(&str, String)],
    ) -> reqwest::RequestBuilder {
        self.client
            .post(self.url(path))
            .header("Idempotency-Key", key)
            .form(form)
    }

    /// `n` logins of `username` with a wrong password: each refused, the `n`-th (only) with HTTP
    /// 429 — the login quota is `n - 1`.
    pub async fn assert_nth_login_throttled(&self, username: &str, n: usize) {
        for attempt in 1..=n {
            let (status, body) = self
                .post_raw(
                    "/douyin/user/login/",
                    &[
                        ("username", username.into()),
                        ("password", "wrong-guess".into()),
                    ],
                )
                .await;
            assert_ne!(body["status_code"], 0, "{body}");
            assert_eq!(
                status == 429,
                attempt == n,
                "attempt {attempt}: HTTP {status} {body}"
            );
        }
    }

    /// GET with query parameters; returns (HTTP status, headers, JSON body).
    pub async fn get_full(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let resp = self
            .client
            .get(self.url(path))
            .query(query)
            .send()
            .await
            .expect("GET");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.json().await.unwrap_or(Value::Null))
    }

    /// POST a form body; returns (HTTP status, JSON body).
    pub async fn post_raw(&self, path: &str, form: &[(&str, String)]) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .expect("POST");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// GET, asserting HTTP 200 and a JSON envelope.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Value {
        let (status, body) = self.get_raw(path, query).await;
        assert_eq!(status, 200, "GET {path} {query:?} → HTTP {status}: {body}");
        assert!(
            body["status_code"].is_i64(),
            "GET {path}: not an envelope: {body}"
        );
        body
    }

    /// POST a form, asserting HTTP 200 and a JSON envelope.
    pub async fn post(&self, path: &str, form: &[(&str, String)]) -> Value {
        let (status, body) = self.post_raw(path, form).await;
        assert_eq!(status, 200, "POST {path} {form:?} → HTTP {status}: {body}");
        assert!(
            body["status_code"].is_i64(),
            "POST {path}: not an envelope: {body}"
        );
        body
    }

    /// Register and return (user_id, token), asserting success.
    pub async fn register(&self, username: &str, password: &str) -> User {
        let body = self
            .post(
                "/douyin/user/register/",
                &[("username", username.into()), ("password", password.into())],
            )
            .await;
        assert_ok(&body, "register");
        User {
            id: body["user_id"].as_i64().expect("user_id"),
            token: body["token"].as_str().expect("token").into(),
        }
    }

    /// Publish a video (multipart), returning the reply.
    pub async fn publish_raw(
        &self,
        token: &str,
        title: &str,
        data: Vec<u8>,
        file_name: &str,
    ) -> (u16, Value) {
        let form = reqwest::multipart::Form::new()
            .text("token", token.to_owned())
            .text("title", title.to_owned())
            .part(
                "data",
                reqwest::multipart::Part::bytes(data).file_name(file_name.to_owned()),
            );
        let resp = self
            .client
            .post(self.url("/douyin/publish/action/"))
            .multipart(form)
            .send()
            .await
            .expect("publish");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Publish the sample video and return its id (read back from the author's publish list).
    pub async fn publish(&self, user: &User, title: &str) -> i64 {
        let (status, body) = self
            .publish_raw(&user.token, title, SAMPLE_MP4.to_vec(), "clip.mp4")
            .await;
        assert_eq!(status, 200, "publish: {body}");
        assert_ok(&body, "publish");
        let list = self.publish_list(user, user.id).await;
        list.iter()
            .find(|v| v["title"] == title)
            .and_then(|v| v["id"].as_i64())
            .unwrap_or_else(|| {
                let logs = self.logs();
                let warnings: Vec<&str> = logs
                    .lines()
                    .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                    .collect();
                panic!(
                    "published video {title:?} not in the author's list: {list:?}\nwarnings:\n{}",
                    warnings.join("\n")
                )
            })
    }

    pub async fn publish_list(&self, viewer: &User, user_id: i64) -> Vec<Value> {
        let body = self
            .get(
                "/douyin/publish/list/",
                &viewer.with(&[("user_id", user_id.to_string())]),
            )
            .await;
        assert_ok(&body, "publish list");
        list(&body, "video_list")
    }

    pub async fn favorite_list(&self, viewer: &User, user_id: i64) -> Vec<Value> {
        let body = self
            .get(
                "/douyin/favorite/list/",
                &viewer.with(&[("user_id", user_id.to_string())]),
            )
            .await;
        assert_ok(&body, "favorite list");
        list(&body, "video_list")
    }

    pub async fn user_info(&self, viewer: &User, user_id: i64) -> Value {
        let body = self
            .get(
                "/douyin/user/",
                &viewer.with(&[("user_id", user_id.to_string())]),
            )
            .await;
        assert_ok(&body, "user info");
        body["user"].clone()
    }

    pub async fn like(&self, user: &User, video_id: i64, action: i64) {
        let body = self
            .post(
                "/douyin/favorite/action/",
                &user.with(&[
                    ("video_id", video_id.to_string()),
                    ("action_type", action.to_string()),
                ]),
            )
            .await;
        assert_ok(&body, "favorite action");
    }

    pub async fn follow(&self, user: &User, to: i64, action: i64) {
        let body = self
            .post(
                "/douyin/relation/action/",
                &user.with(&[
                    ("to_user_id", to.to_string()),
                    ("action_type", action.to_string()),
                ]),
            )
            .await;
        assert_ok(&body, "relation action");
    }

    pub async fn send_message(&self, user: &User, to: i64, content: &str) {
        let body = self
            .post(
                "/douyin/message/action/",
                &user.with(&[
                    ("to_user_id", to.to_string()),
                    ("action_type", "1".into()),
                    ("content", content.into()),
                ]),
            )
            .await;
        assert_ok(&body, "message action");
    }

    pub async fn chat(&self, user: &User, to: i64, pre_msg_time: i64) -> Vec<Value> {
        let body = self
            .get(
                "/douyin/message/chat/",
                &user.with(&[
                    ("to_user_id", to.to_string()),
                    ("pre_msg_time", pre_msg_time.to_string()),
                ]),
            )
            .await;
        assert_ok(&body, "chat");
        list(&body, "message_list")
    }

    pub async fn comment(&self, user: &User, video_id: i64, text: &str) -> Value {
        let body = self
            .post(
                "/douyin/comment/action/",
                &user.with(&[
                    ("video_id", video_id.to_string()),
                    ("action_type", "1".into()),
                    ("comment_text", text.into()),
                ]),
            )
            .await;
        assert_ok(&body, "comment action");
        body["comment"].clone()
    }

    pub async fn comments(&self, user: &User, video_id: i64) -> Vec<Value> {
        let body = self
            .get(
                "/douyin/comment/list/",
                &user.with(&[("video_id", video_id.to_string())]),
            )
            .await;
        assert_ok(&body, "comment list");
        list(&body, "comment_list")
    }

    pub async fn user_list(&self, path: &str, viewer: &User, user_id: i64) -> Vec<Value> {
        let body = self
            .get(path, &viewer.with(&[("user_id", user_id.to_string())]))
            .await;
        assert_ok(&body, path);
        list(&body, "user_list")
    }
}

/// Several processes (split roles) sharing one data dir (uploads) and one set of services.
pub struct Cluster {
    dir: tempfile::TempDir,
    service_args: Vec<String>,
    spawned: usize,
}

impl Cluster {
    /// A cluster on the real services of this run (see [`on_real_services`]).
    pub fn new() -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let service_args = service_args(dir.path());
        Cluster {
            dir,
            service_args,
            spawned: 0,
        }
    }

    /// Start `titok <role> <args…>` on the cluster's services.
    pub async fn spawn(&mut self, role: &str, args: &[&str]) -> TestApp {
        self.spawn_env(role, args, &[]).await
    }

    /// Like [`Cluster::spawn`], with extra environment variables (e.g. `FAILPOINTS`).
    pub async fn spawn_env(&mut self, role: &str, args: &[&str], env: &[(&str, &str)]) -> TestApp {
        self.spawned += 1;
        let log_name = format!("{role}-{}.log", self.spawned);
        let mut extra_args = vec![role.to_owned()];
        extra_args.extend(args.iter().map(|s| s.to_string()));
        extra_args.extend(self.service_args.iter().cloned());
        let data_dir = self.dir.path().to_path_buf();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let place = Placement::local(&data_dir);
        let (child, base) = launch(&place, &data_dir, &extra_args, &env, &log_name).await;
        TestApp {
            instances: vec![base.clone()],
            base,
            client: client(),
            data_dir,
            _dir: None,
            children: vec![child],
            balancer: None,
            extra_args,
            env,
            log_name,
        }
    }

    /// The value of a service argument (e.g. `--namespace`).
    pub fn arg(&self, name: &str) -> Option<&str> {
        let at = self.service_args.iter().position(|a| a == name)?;
        self.service_args.get(at + 1).map(String::as_str)
    }

    /// Run another `titok` command (e.g. `tap`) against the cluster's services; its stdout,
    /// asserting success.
    pub async fn cli(&self, args: &[&str]) -> String {
        let mut command = titok_command();
        command
            .args(args)
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(&self.service_args);
        let (ok, stdout, stderr) = output_of(command, Duration::from_secs(120)).await;
        assert!(ok, "titok {args:?} failed: {stderr}");
        stdout
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster::new()
    }
}

/// Arguments that put a test server on the real services named by `TITOK_TEST_MYSQL_URL`,
/// `TITOK_TEST_REDIS_URL`, `TITOK_TEST_KAFKA_BROKERS` and `TITOK_TEST_BLOB_STORE` (set by
/// `scripts/test`), each test in its own database, Redis key namespace, Kafka topics and bucket
/// prefix. Empty when none is set (embedded default).
fn service_args(data_dir: &std::path::Path) -> Vec<String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (mysql, redis, kafka) = (
        var("TITOK_TEST_MYSQL_URL"),
        var("TITOK_TEST_REDIS_URL"),
        var("TITOK_TEST_KAFKA_BROKERS"),
    );
    let blob_store = var("TITOK_TEST_BLOB_STORE");
    if mysql.is_none() && redis.is_none() && kafka.is_none() && blob_store.is_none() {
        return Vec::new();
    }
    let unique = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_APP.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    let secret = format!("test-secret-{unique}-0123456789abcdef0123456789");
    std::fs::write(data_dir.join("token-secret"), &secret).expect("write secret");
    let mut args = vec![
        "--namespace".to_owned(),
        unique.clone(),
        "--token-secret".to_owned(),
        secret,
    ];
    if let Some(url) = mysql {
        args.extend([
            "--mysql-url".to_owned(),
            format!("{}/{unique}", url.trim_end_matches('/')),
        ]);
        for replica in var("TITOK_TEST_MYSQL_READ_URLS")
            .iter()
            .flat_map(|urls| urls.split(','))
        {
            args.extend([
                "--mysql-read-url".to_owned(),
                format!("{}/{unique}", replica.trim_end_matches('/')),
            ]);
        }
    }
    if let Some(url) = redis {
        args.extend(["--redis-url".to_owned(), url]);
    }
    // Videos on S3 (scripts/test: SeaweedFS), each test under its own prefix of the bucket.
    if let Some(store) = blob_store {
        args.extend([
            "--blob-store".to_owned(),
            format!("{}/{unique}", store.trim_end_matches('/')),
        ]);
    }
    if let Some(brokers) = kafka {
        args.extend([
            "--kafka-brokers".to_owned(),
            brokers,
            "--kafka-session-timeout-ms".to_owned(),
            "6000".to_owned(),
        ]);
    }
    args
}

static NEXT_APP: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

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
/// `(succeeded, stdout, stderr)`.
async fn output_of(mut command: Command, timeout: Duration) -> (bool, String, String) {
    command.env("RUST_LOG", "warn").kill_on_drop(true);
    match tokio::time::timeout(timeout, command.output()).await {
        Ok(output) => {
            let output = output.expect("run titok");
            (
                output.status.success(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        }
        Err(_) => (false, String::new(), format!("timed out after {timeout:?}")),
    }
}

impl TestApp {
    /// Append raw records (`(key, payload)`) to a topic of the server's log, as a foreign producer
    /// would: with Kafka through a producer of its own; on the embedded log the server is stopped
    /// for it (the log file has one writer), and started again when all are written.
    pub async fn inject(&mut self, topic: titok_events::Topic, records: &[(String, Vec<u8>)]) {
        use titok_events::partition_for;
        match self.arg("--namespace").filter(|_| on_real_services()) {
            Some(namespace) => {
                use rdkafka::producer::{FutureProducer, FutureRecord};
                let producer: FutureProducer = rdkafka::ClientConfig::new()
                    .set(
                        "bootstrap.servers",
                        std::env::var("TITOK_TEST_KAFKA_BROKERS").expect("brokers"),
                    )
                    .create()
                    .expect("producer");
                let name = format!("{namespace}.{}", topic.name().trim_start_matches("titok."));
                let mut ends: std::collections::HashMap<u32, i64> = Default::default();
                for (key, payload) in records {
                    let partition = partition_for(key, 4);
                    let record = FutureRecord::to(&name)
                        .key(key)
                        .payload(payload)
                        .partition(partition as i32);
                    let delivered = producer
                        .send(record, Duration::from_secs(10))
                        .await
                        .map_err(|(e, _)| e)
                        .expect("produce");
                    let end = ends.entry(partition).or_default();
                    *end = (*end).max(delivered.offset + 1);
                }
                // Acknowledge them as a command API would, so that reads wait for them.
                let redis = self.arg("--redis-url").expect("--redis-url").to_owned();
                let positions = titok_adapters::redis_store::RedisPositions::new(
                    titok_adapters::redis_store::connect(&redis)
                        .await
                        .expect("redis"),
                    namespace,
                );
                let ends: Vec<titok_ports::log::Position> = ends
                    .into_iter()
                    .map(|(partition, offset)| titok_ports::log::Position {
                        topic,
                        partition,
                        offset,
                    })
                    .collect();
                titok_ports::progress::Positions::record_acked(&positions, &ends)
                    .await
                    .expect("record acked");
            }
            None => {
                assert!(self.terminate().await, "clean stop");
                let log = sqlx::SqlitePool::connect(&format!(
                    "sqlite://{}",
                    self.data_dir.join("log.db").display()
                ))
                .await
                .expect("log.db");
                for (key, payload) in records {
                    let partition = i64::from(partition_for(key, 4));
                    sqlx::query(
                        "INSERT INTO log (topic, partition, offset, key, payload, appended_ms) \
                         SELECT ?, ?, COALESCE(MAX(offset) + 1, 0), ?, ?, 0 FROM log \
                         WHERE topic = ? AND partition = ?",
                    )
                    .bind(topic.name())
                    .bind(partition)
                    .bind(key)
                    .bind(payload)
                    .bind(topic.name())
                    .bind(partition)
                    .execute(&log)
                    .await
                    .expect("append");
                }
                log.close().await;
                self.respawn().await;
                self.wait_ready().await;
            }
        }
    }
}

/// What a [`FaultyProxy`] does to the bytes it forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward as they come.
    None,
    /// Hold every chunk this long before forwarding it (each direction).
    Latency(Duration),
    /// Forward nothing (connections stay open, bytes wait) until the fault changes.
    Stall,
    /// Reset every open connection (TCP RST) and every new one, until the fault changes.
    Reset,
}

/// A TCP proxy on loopback in front of one service, with a fault that can change at any time:
/// the test harness's slow and broken network.
pub struct FaultyProxy {
    pub port: u16,
    fault: tokio::sync::watch::Sender<Fault>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultyProxy {
    /// A proxy on a free port forwarding to `127.0.0.1:target`.
    pub async fn start(target: u16) -> FaultyProxy {
        FaultyProxy::start_on(free_port(), target).await
    }

    /// A proxy on `port` forwarding to `127.0.0.1:target`.
    pub async fn start_on(port: u16, target: u16) -> FaultyProxy {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("proxy bind");
        let (fault, watch) = tokio::sync::watch::channel(Fault::None);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let watch = watch.clone();
                tokio::spawn(proxy_connection(client, target, watch));
            }
        });
        FaultyProxy { port, fault, task }
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn proxy_connection(
    client: tokio::net::TcpStream,
    target: u16,
    mut watch: tokio::sync::watch::Receiver<Fault>,
) {
    // RST instead of FIN when dropped: a reset looks like a broken network, not a clean close.
    // (Deprecated because a non-zero linger blocks on drop; a zero one does not.)
    #[allow(deprecated)]
    let _ = client.set_linger(Some(Duration::ZERO));
    if *watch.borrow() == Fault::Reset {
        return;
    }
    let Ok(upstream) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
        return;
    };
    #[allow(deprecated)]
    let _ = upstream.set_linger(Some(Duration::ZERO));
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let watch_up = watch.clone();
    let watch_down = watch.clone();
    let reset = async {
        loop {
            if *watch.borrow_and_update() == Fault::Reset {
                return;
            }
            if watch.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = pump(client_read, upstream_write, watch_up) => {}
        _ = pump(upstream_read, client_write, watch_down) => {}
        _ = reset => {}
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut fault: tokio::sync::watch::Receiver<Fault>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        loop {
            let now = *fault.borrow_and_update();
            match now {
                Fault::None | Fault::Reset => break,
                Fault::Latency(delay) => {
                    tokio::time::sleep(delay).await;
                    break;
                }
                Fault::Stall => {
                    if fault.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Whether this run drives the real services (scripts/test's second pass).
pub fn on_real_services() -> bool {
    std::env::var("TITOK_TEST_MYSQL_URL").is_ok_and(|v| !v.is_empty())
}

/// The server binary: `TITOK_TEST_BIN` if set, else `titok-under-test` built next to the test
/// executable.
fn server_binary() -> PathBuf {
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
fn titok_command() -> Command {
    command_without_settings(server_binary())
}

fn command_without_settings(binary: PathBuf) -> Command {
    let mut command = Command::new(binary);
    for (key, _) in std::env::vars() {
        if key.starts_with("TITOK_") {
            command.env_remove(key);
        }
    }
    command
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// The processes of the scaled topology: role and count.
const SCALED: [(&str, usize); 3] = [("projectors", 2), ("command-api", 2), ("query-api", 2)];

/// The processes of the hosts topology: one of each role, each on a host of its own, and a second
/// query API (so that the balancer has somewhere to go when one query host is cut off).
const HOSTS: [(&str, usize); 3] = [("projectors", 1), ("command-api", 1), ("query-api", 2)];

/// The host (network namespace, address) of instance `i` (1-based) of a role in the hosts
/// topology, as `scripts/hosts.sh` makes them; anything else is the client host, where the test
/// process and the balancer run.
pub fn host_of(role: &str, i: usize) -> (&'static str, &'static str) {
    match (role, i) {
        ("command-api", 1) => ("titok-command", "10.77.0.11"),
        ("query-api", 1) => ("titok-query", "10.77.0.12"),
        ("query-api", 2) => ("titok-query2", "10.77.0.14"),
        ("projectors", 1) => ("titok-projector", "10.77.0.13"),
        _ => ("titok-client", "10.77.0.10"),
    }
}

/// How this run starts every [`TestApp`] (`TITOK_TEST_TOPOLOGY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// One `titok serve` (the default).
    Single,
    /// Two of each role behind haproxy, on one host (scripts/test pass 3).
    Scaled,
    /// One of each role, each on a host of its own with its own data dir, behind haproxy on the
    /// client host (scripts/test pass 4; scripts/hosts.sh makes the hosts).
    Hosts,
}

impl Topology {
    pub fn of_this_run() -> Topology {
        match std::env::var("TITOK_TEST_TOPOLOGY").as_deref() {
            Ok("scaled") => Topology::Scaled,
            Ok("hosts") => Topology::Hosts,
            _ => Topology::Single,
        }
    }

    /// The roles it starts and how many of each, in start order (empty: one `serve`).
    fn roles(self) -> &'static [(&'static str, usize)] {
        match self {
            Topology::Single => &[],
            Topology::Scaled => &SCALED,
            Topology::Hosts => &HOSTS,
        }
    }
}

/// Whether this run starts every [`TestApp`] as several processes behind a balancer (the scaled
/// or the hosts topology).
pub fn scaled_topology() -> bool {
    Topology::of_this_run() != Topology::Single
}

/// Where one process runs: a network namespace and an address of its host (the hosts topology)
/// or loopback, and the data dir it is given.
struct Placement {
    netns: Option<&'static str>,
    ip: &'static str,
    data_dir: PathBuf,
}

impl Placement {
    fn local(data_dir: &std::path::Path) -> Placement {
        Placement {
            netns: None,
            ip: "127.0.0.1",
            data_dir: data_dir.to_path_buf(),
        }
    }
}

/// One `titok serve`, or several processes behind haproxy (see [`Topology`]).
async fn launch_topology(
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
struct Started {
    children: Vec<Child>,
    balancer: Option<Balancer>,
    /// Each process's own base URL.
    instances: Vec<String>,
    /// Where clients go: the balancer, or the one process.
    base: String,
}

/// Start one `titok` process at `place`, its stderr in `log_dir/log_name`; waits for its
/// "listening on" line: `(process, base URL)`.
async fn launch(
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
    let mut child = command
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
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("start the server binary");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("server did not start within 60 s")
        .expect("read stdout")
        .unwrap_or_else(|| {
            panic!(
                "server exited; log:\n{}",
                std::fs::read_to_string(log_dir.join(log_name)).unwrap_or_default()
            )
        });
    let base = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    (child, base)
}

/// A registered user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub token: String,
}

impl User {
    /// The form of a new comment by this user (token, video, action 1, text).
    pub fn comment_form(&self, video_id: i64, text: &str) -> Vec<(&'static str, String)> {
        self.with(&[
            ("video_id", video_id.to_string()),
            ("action_type", "1".into()),
            ("comment_text", text.into()),
        ])
    }

    /// `params` plus this user's token.
    pub fn with(&self, params: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
        let mut all = vec![("token", self.token.clone())];
        all.extend_from_slice(params);
        all
    }
}

/// Assert `status_code == 0`.
pub fn assert_ok(body: &Value, what: &str) {
    assert_eq!(body["status_code"], 0, "{what} failed: {body}");
}

/// Assert a failure envelope: `status_code != 0` and a non-empty `status_msg`.
pub fn assert_refused(body: &Value, what: &str) {
    let code = body["status_code"]
        .as_i64()
        .unwrap_or_else(|| panic!("{what}: not an envelope: {body}"));
    assert_ne!(code, 0, "{what} should have been refused: {body}");
    let msg = body["status_msg"].as_str().unwrap_or_default();
    assert!(
        !msg.is_empty(),
        "{what}: refusal without a status_msg: {body}"
    );
}

/// A JSON array field, asserting it is an array (never null).
pub fn list(body: &Value, field: &str) -> Vec<Value> {
    body[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} must be an array: {body}"))
        .clone()
}

/// Ids of a list of objects.
pub fn ids(items: &[Value]) -> Vec<i64> {
    items
        .iter()
        .map(|v| v["id"].as_i64().expect("id"))
        .collect()
}

impl TestApp {
    /// POST `form` to `path` and assert a clear refusal: HTTP 200, `status_code != 0`, and a
    /// `status_msg` containing `expect` (case-insensitive). Returns the body.
    pub async fn refused_post(&self, path: &str, form: &[(&str, String)], expect: &str) -> Value {
        let (status, body) = self.post_raw(path, form).await;
        check_refusal(status, &body, path, expect);
        body
    }

    /// GET variant of [`TestApp::refused_post`].
    pub async fn refused_get(&self, path: &str, query: &[(&str, String)], expect: &str) -> Value {
        let (status, body) = self.get_raw(path, query).await;
        check_refusal(status, &body, path, expect);
        body
    }

    /// A token signed with this server's own secret, for any user id and expiry (epoch seconds).
    pub fn sign_token(&self, user_id: i64, exp: u64) -> String {
        let secret = std::fs::read(self.data_dir.join("token-secret")).expect("token secret");
        sign(&secret, user_id, exp)
    }
}

/// An HS256 token with the server's claim layout.
pub fn sign(secret: &[u8], user_id: i64, exp: u64) -> String {
    let claims = serde_json::json!({ "uid": user_id, "iat": 0, "exp": exp });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

fn check_refusal(status: u16, body: &Value, path: &str, expect: &str) {
    assert_eq!(
        status, 200,
        "{path}: business refusals are HTTP 200 with an envelope, got {status}: {body}"
    );
    assert_refused(body, path);
    let msg = body["status_msg"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        msg.contains(&expect.to_lowercase()),
        "{path}: status_msg {msg:?} should mention {expect:?}"
    );
}

/// A private service process (Redis, tansu) that a fault test may stop and start again on the
/// same port and data directory.
pub struct PrivateService {
    program: PathBuf,
    args: Vec<String>,
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<std::process::Child>,
}

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn installed(name: &str) -> PathBuf {
    let home = PathBuf::from(std::env::var("HOME").unwrap_or_default())
        .join(".cargo/bin")
        .join(name);
    if home.exists() {
        return home;
    }
    PathBuf::from(name)
}

impl PrivateService {
    /// A Redis server without persistence.
    pub async fn redis() -> PrivateService {
        PrivateService::redis_with(&[]).await
    }

    /// A Redis server without persistence, with more arguments (e.g. cluster mode).
    pub async fn redis_with(extra: &[&str]) -> PrivateService {
        let port = free_port();
        let args: Vec<String> = ["--port", &port.to_string(), "--bind", "127.0.0.1"]
            .iter()
            .chain(&["--save", "", "--appendonly", "no"])
            .chain(extra)
            .map(|s| s.to_string())
            .collect();
        PrivateService::launch(installed("redis-server"), args, port).await
    }

    /// A tansu Kafka-API broker with SQLite storage in its own directory.
    pub async fn tansu() -> PrivateService {
        let port = free_port();
        PrivateService::tansu_advertising(port, port).await
    }

    /// A tansu broker listening on `port` that tells clients to connect to `advertised` (a
    /// [`FaultyProxy`] in front of it, so that every connection goes through the proxy).
    pub async fn tansu_advertising(port: u16, advertised: u16) -> PrivateService {
        let args = vec![
            "broker".to_owned(),
            "--listener-url".to_owned(),
            format!("tcp://127.0.0.1:{port}"),
            "--advertised-listener-url".to_owned(),
            format!("tcp://127.0.0.1:{advertised}"),
            "--storage-engine".to_owned(),
            "sqlite://tansu.db".to_owned(),
        ];
        PrivateService::launch(installed("tansu"), args, port).await
    }

    /// A MariaDB server with a `titok`/`titok` user; its URL is [`PrivateService::mysql_url`].
    pub async fn mariadb() -> PrivateService {
        let dir = tempfile::tempdir().expect("temp dir");
        let datadir = dir.path().join("data");
        let status = std::process::Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .arg(format!("--datadir={}", datadir.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("mariadb-install-db");
        assert!(status.success(), "mariadb-install-db failed");
        let port = free_port();
        let socket = dir.path().join("sock");
        let args = vec![
            "--no-defaults".to_owned(),
            format!("--datadir={}", datadir.display()),
            format!("--socket={}", socket.display()),
            format!("--port={port}"),
            "--bind-address=127.0.0.1".to_owned(),
            "--user=root".to_owned(),
            "--skip-log-bin".to_owned(),
        ];
        let mut service = PrivateService {
            program: PathBuf::from("mariadbd"),
            args,
            dir,
            port,
            child: None,
        };
        service.start().await;
        let status = std::process::Command::new("mariadb")
            .arg(format!("--socket={}", socket.display()))
            .args(["-e", "CREATE USER 'titok'@'127.0.0.1' IDENTIFIED BY 'titok'; GRANT ALL ON *.* TO 'titok'@'127.0.0.1';"])
            .status()
            .expect("mariadb client");
        assert!(status.success(), "cannot create the titok user");
        service
    }

    /// The URL of a private MariaDB's `titok` database.
    pub fn mysql_url(&self) -> String {
        format!("mysql://titok:titok@127.0.0.1:{}/titok", self.port)
    }

    async fn launch(program: PathBuf, args: Vec<String>, port: u16) -> PrivateService {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut service = PrivateService {
            program,
            args,
            dir,
            port,
            child: None,
        };
        service.start().await;
        service
    }

    /// Start (again), and wait until the port accepts connections.
    pub async fn start(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("service.log")).expect("log");
        let child = std::process::Command::new(&self.program)
            .args(&self.args)
            .current_dir(self.dir.path())
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program.display()));
        self.child = Some(child);
        for _ in 0..300 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{} did not start on port {}",
            self.program.display(),
            self.port
        );
    }

    /// The service's working directory (its data and `service.log`).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
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
        let status = std::process::Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli --cluster create");
        assert!(status.success(), "redis-cli --cluster create failed");
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
            .filter(|n| n.child.is_some())
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
            let ok = self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
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
            .find(|n| n.child.is_some())
            .map_or(0, |n| n.port);
        panic!(
            "the Redis Cluster did not become healthy within 60 s:\n{}",
            redis_cli(port, &["cluster", "nodes"])
        );
    }
}

/// Guard of a real-service test (marked `#[ignore = "needs …"]`; scripts/test runs it in its
/// real-service pass with `--include-ignored`): run without the services, it fails instead of passing vacuously.
#[macro_export]
macro_rules! needs_real_services {
    () => {
        assert!(
            $crate::on_real_services(),
            "this test needs Kafka/MySQL/Redis (TITOK_TEST_*); scripts/test runs it on real services"
        );
    };
}

/// A handle on this run's Kafka-API broker (`TITOK_TEST_KAFKA_BROKERS`) for the topics of
/// `namespace`, so a test can append to or read the log directly.
pub async fn kafka_log(namespace: &str) -> titok_adapters::kafka_log::KafkaLog {
    titok_adapters::kafka_log::KafkaLog::connect(titok_adapters::kafka_log::KafkaSettings {
        brokers: std::env::var("TITOK_TEST_KAFKA_BROKERS").expect("TITOK_TEST_KAFKA_BROKERS"),
        namespace: namespace.to_owned(),
        partitions: 4,
        replication: 1,
        session_timeout_ms: 6000,
        fetch_wait_ms: 10,
        idempotence: true,
        linger_ms: 5,
    })
    .await
    .expect("connect to the test broker")
}

/// The value of a Prometheus sample `name{labels}` (labels as written, e.g. `topic="titok.users"`),
/// summed over every series that has all the given labels.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{') | Some(b' '))
        })
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// Poll `check` every 100 ms until it returns `Some`, for at most `timeout`; panics with `what`
/// when it never does. The one poll loop of the tests.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("not within {timeout:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
