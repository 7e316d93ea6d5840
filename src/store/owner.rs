//! Which process runs a job. Every process that opens a job database file holds an exclusive
//! lock on a file of its own beside the database (`<db>-owners/<owner>.lock`) for as long as
//! it lives; the kernel drops the lock when the process ends, however it ends. A `running` row
//! whose owner's lock can be taken belongs to a process that is gone (killed, crashed), and only
//! such rows are settled: an `apply` next to a live `watch` on the same database never touches
//! the watch's work.

use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

/// This process, as the owner of the jobs it runs.
pub(super) struct Owner {
    /// The owner id recorded in the jobs it runs: `<pid>-<random>`.
    pub(super) id: String,
    /// The directory of lock files, for a database file.
    dir: Option<PathBuf>,
    /// The lock, held until the process ends.
    lock: Option<File>,
}

impl Owner {
    /// Registers this process beside the database file at `db`.
    pub(super) fn register(db: &Path) -> io::Result<Self> {
        let mut dir = db.as_os_str().to_owned();
        dir.push("-owners");
        let dir = PathBuf::from(dir);
        fs::create_dir_all(&dir)?;
        let id = new_id();
        let file = File::create(dir.join(format!("{id}.lock")))?;
        file.lock()?;
        Ok(Owner {
            id,
            dir: Some(dir),
            lock: Some(file),
        })
    }

    /// An owner for an in-memory database, which no other process can see.
    pub(super) fn in_memory() -> Self {
        Owner {
            id: new_id(),
            dir: None,
            lock: None,
        }
    }

    /// Whether the process that recorded `owner` may still run. When in doubt (the lock file
    /// cannot be read), it counts as alive: its rows stay as they are.
    pub(super) fn is_alive(&self, owner: &str) -> bool {
        if owner == self.id {
            return true;
        }
        let Some(dir) = &self.dir else {
            return false;
        };
        if owner.is_empty()
            || !owner
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            // Not an id this program writes (or written before owners were recorded).
            return false;
        }
        let path = dir.join(format!("{owner}.lock"));
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return false,
            Err(_) => return true,
        };
        match file.try_lock() {
            Ok(()) => {
                // Gone: its lock file is left over from a kill.
                let _ = fs::remove_file(&path);
                false
            }
            Err(TryLockError::WouldBlock) => true,
            Err(TryLockError::Error(_)) => true,
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        if let (Some(dir), Some(_)) = (&self.dir, &self.lock) {
            let _ = fs::remove_file(dir.join(format!("{}.lock", self.id)));
        }
    }
}

fn new_id() -> String {
    format!("{}-{:08x}", std::process::id(), fastrand::u32(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_owner_is_alive_and_a_dropped_one_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("jobs.db");
        let me = Owner::register(&db).unwrap();
        let other = Owner::register(&db).unwrap();
        assert!(me.is_alive(&me.id));
        assert!(me.is_alive(&other.id), "another holder of a lock is alive");
        let gone = other.id.clone();
        drop(other);
        assert!(!me.is_alive(&gone));
        assert!(!me.is_alive("../../etc/passwd"), "not an owner id");
        assert!(!me.is_alive(""), "rows from before owners were recorded");
    }

    #[test]
    fn a_lock_file_left_by_a_killed_process_counts_as_gone() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("jobs.db");
        let me = Owner::register(&db).unwrap();
        // A killed process leaves its file without a lock on it.
        let killed = "4242-deadbeef";
        File::create(
            dir.path()
                .join("jobs.db-owners")
                .join(format!("{killed}.lock")),
        )
        .unwrap();
        assert!(!me.is_alive(killed));
        assert!(
            !dir.path()
                .join("jobs.db-owners")
                .join(format!("{killed}.lock"))
                .exists(),
            "the stale file is removed"
        );
    }
}
