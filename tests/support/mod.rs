//! Test harness: runs the real `k8s-sync` binary in a temporary directory and, when an
//! assertion fails, prints the command with everything it wrote.

#![allow(dead_code)] // each test crate uses its own part of the harness

pub mod daemon;
pub mod deploy;
pub mod http;
pub mod objects;
pub mod passes;
pub mod proxy;
pub mod testenv;
pub mod watch;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root, where `fixtures/` lives.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A path under `fixtures/`.
pub fn fixture(relative: &str) -> PathBuf {
    repo_root().join("fixtures").join(relative)
}

/// The uid and gid the deploy base runs k8s-sync as (`runAsUser` in deploy/primary).
pub const UNPRIVILEGED: u32 = 65532;

/// A temporary working directory that disappears with the test.
pub struct TestDir {
    dir: tempfile::TempDir,
    /// The user the daemons started in it run as, when not the test's own.
    user: Option<u32>,
}

impl TestDir {
    pub fn new() -> Self {
        TestDir {
            dir: tempfile::Builder::new()
                .prefix("k8s-sync-test")
                .tempdir()
                .expect("create temp dir"),
            user: None,
        }
    }

    /// A directory owned by [`UNPRIVILEGED`], whose daemons run as that user, as in the
    /// deploy base's Pod. Tests running as another user than root run as themselves, which is
    /// unprivileged already.
    pub fn unprivileged() -> Self {
        let mut dir = Self::new();
        let root = std::fs::metadata("/proc/self").is_ok_and(|m| {
            use std::os::unix::fs::MetadataExt as _;
            m.uid() == 0
        });
        if root {
            std::os::unix::fs::chown(dir.path(), Some(UNPRIVILEGED), Some(UNPRIVILEGED)).unwrap();
            dir.user = Some(UNPRIVILEGED);
        }
        dir
    }

    /// The user daemons started here run as, if not the test's.
    pub fn user(&self) -> Option<u32> {
        self.user
    }

    /// Lets the directory's user read `file` (a kubeconfig made by the test's user).
    pub fn share(&self, file: &Path) {
        if let Some(user) = self.user {
            std::os::unix::fs::chown(file, Some(user), Some(user)).unwrap();
            let mut at = file.parent();
            while let Some(dir) = at.filter(|d| d.starts_with(std::env::temp_dir())) {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = std::fs::metadata(dir).unwrap().permissions().mode();
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o711))
                    .unwrap();
                at = dir.parent();
            }
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (creating parents) and returns its path.
    pub fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Copies a fixture tree into the temp dir, so tests can modify it.
    pub fn copy_fixture(&self, fixture_dir: &str, to: &str) -> PathBuf {
        let from = fixture(fixture_dir);
        let target = self.path().join(to);
        for entry in walkdir::WalkDir::new(&from) {
            let entry = entry.unwrap();
            let dest = target.join(entry.path().strip_prefix(&from).unwrap());
            if entry.file_type().is_dir() {
                std::fs::create_dir_all(&dest).unwrap();
            } else {
                std::fs::copy(entry.path(), &dest).unwrap();
            }
        }
        target
    }

    /// A `k8s-sync` command running in this directory.
    pub fn cmd(&self, args: &[&str]) -> Run {
        self.cmd_with_env(args, &[])
    }

    /// [`TestDir::cmd`] with environment `vars`. A Pod's downward API variables of the machine
    /// running the tests are never passed on.
    pub fn cmd_with_env(&self, args: &[&str], vars: &[(&str, &str)]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_k8s-sync"));
        command
            .current_dir(self.path())
            .args(args)
            .env_remove("NO_COLOR")
            .env_remove("POD_NAMESPACE")
            .env_remove("POD_NAME")
            .envs(vars.iter().copied());
        Run::from(command)
    }
}

/// A finished run of the binary.
pub struct Run {
    pub args: String,
    pub output: Output,
}

impl From<Command> for Run {
    fn from(mut command: Command) -> Self {
        let args = format!("{command:?}");
        let output = command.output().expect("run k8s-sync");
        Run { args, output }
    }
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    /// Asserts the exit code, printing everything on failure.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code(), Some(code), "unexpected exit code\n{self}");
        self
    }

    /// Parses stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.output.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON: {e}\n{self}"))
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "command: {}", self.args)?;
        writeln!(f, "status: {}", self.output.status)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout())?;
        writeln!(f, "--- stderr ---\n{}", self.stderr())
    }
}
