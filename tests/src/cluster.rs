//! [`Cluster`]: several processes of split roles (`titok command-api`, `query-api`,
//! `projectors`) that a test starts itself on one data dir and one set of services.

use std::time::Duration;

use crate::launch::{client, launch, output_of, titok_command, Placement};
use crate::services::service_args;
use crate::TestApp;

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
