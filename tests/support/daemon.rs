//! A long-running `k8s-sync` (watch, serve) started in a test directory, its output captured
//! to files, stopped by signal.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running k8s-sync process.
pub struct Daemon {
    child: Child,
    log: PathBuf,
    args: String,
}

impl Daemon {
    /// Starts `k8s-sync ARGS` in `dir` with `env` (and the test bcrypt cost, no admin password
    /// unless given), stdout and stderr going to `dir/<log_name>`.
    pub fn start(
        dir: &super::TestDir,
        log_name: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let log = dir.path().join(log_name);
        let file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_k8s-sync"));
        if let Some(user) = dir.user() {
            use std::os::unix::process::CommandExt as _;
            command.uid(user).gid(user);
        }
        let child = command
            .current_dir(dir.path())
            .args(args)
            // The log a user sees: the daemons' own defaults.
            .env_remove("RUST_LOG")
            .env("K8S_SYNC_BCRYPT_COST", "4")
            .env_remove("K8S_SYNC_ADMIN_PASSWORD")
            .env_remove("POD_NAMESPACE")
            .env_remove("POD_NAME")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start k8s-sync");
        Daemon {
            child,
            log,
            args: args.join(" "),
        }
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until its output contains `text`; panics with the output after `limit`.
    pub fn wait_for(&mut self, text: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.output().contains(text) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "k8s-sync {} exited ({status}) before printing {text:?}\n{}",
                    self.args,
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} after {limit:?}\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address the API listener printed after `listening on http(s)://`, waiting for it
    /// at most `limit`.
    pub fn address(&mut self, limit: Duration) -> std::net::SocketAddr {
        self.wait_for("(api)", limit);
        let output = self.output();
        let line = output
            .lines()
            .find(|l| l.contains("listening on ") && l.contains("(api)"))
            .expect("waited for it");
        let rest = line.split("://").nth(1).expect("a scheme");
        let addr: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
            .collect();
        addr.parse().expect("an address after `listening on`")
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills it with SIGKILL, as a crash or the OOM killer would, and reaps it.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for it to exit, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {limit:?}\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- k8s-sync {} ---\n{}", self.args, self.output());
        }
    }
}
