//! The job database: one SQLite file (WAL) holding jobs, passes, users and sessions, with
//! schema migrations.

mod jobs;
mod migrations;
mod owner;
mod passes;
mod users;
mod verdicts;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::Connection;

pub use jobs::{Counts, DeferredPrune, Job, JobFilter, NewJob, Operation, Status};
pub use passes::Pass;
pub use users::{AuditEntry, Role, User, UserDeletion};
pub use verdicts::{Verdict, VerdictRecord};

use migrations::MIGRATIONS;
use owner::Owner;

/// A job database that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite refused.
    #[error("job database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file was written by a newer k8s-sync.
    #[error("job database has schema version {found}; this k8s-sync knows up to {known}")]
    TooNew {
        /// The file's version.
        found: usize,
        /// The newest this build knows.
        known: usize,
    },
    /// The database file could not be created.
    #[error("job database: cannot create {path}")]
    Create {
        /// The database file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The lock that marks this process as the owner of its jobs could not be taken.
    #[error("job database: cannot register this process beside {path}")]
    Owner {
        /// The database file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The job database.
pub struct Store {
    connection: Mutex<Connection>,
    owner: Owner,
}

/// Creates the database file, readable and writable by its owner only (it holds password
/// hashes and the audit trail), unless it exists. SQLite gives its WAL and shared-memory
/// files the database file's mode.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// How many migrations the database ran; an error when it ran more than this build knows.
fn schema_version(connection: &Connection) -> Result<usize, Error> {
    let version: i64 = connection.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(Error::TooNew {
            found: version,
            known: MIGRATIONS.len(),
        });
    }
    Ok(version)
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

impl Store {
    /// Opens (creating if needed) the database at `path`, brings its schema up to date, and
    /// registers this process as the owner of the jobs it will run.
    pub fn open(path: &Path) -> Result<Self, Error> {
        create_private(path).map_err(|source| Error::Create {
            path: path.to_path_buf(),
            source,
        })?;
        let connection = Connection::open(path)?;
        let owner = Owner::register(path).map_err(|source| Error::Owner {
            path: path.to_path_buf(),
            source,
        })?;
        Self::setup(connection, owner)
    }

    /// Opens the database at `path` for reading only, when it exists and has the current
    /// schema; `None` otherwise (nothing recorded yet). Creates nothing.
    pub fn open_existing(path: &Path) -> Result<Option<Self>, Error> {
        if !path.exists() {
            return Ok(None);
        }
        let connection = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        if schema_version(&connection)? < MIGRATIONS.len() {
            // Written before held and delayed prunes existed: it records none.
            return Ok(None);
        }
        Ok(Some(Store {
            connection: Mutex::new(connection),
            owner: Owner::in_memory(),
        }))
    }

    /// An in-memory database, for tests and dry runs.
    pub fn in_memory() -> Result<Self, Error> {
        Self::setup(Connection::open_in_memory()?, Owner::in_memory())
    }

    fn setup(connection: Connection, owner: Owner) -> Result<Self, Error> {
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        let version = schema_version(&connection)?;
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(version) {
            connection.execute_batch(&format!(
                "BEGIN; {migration}; PRAGMA user_version = {}; COMMIT;",
                index + 1
            ))?;
        }
        Ok(Store {
            connection: Mutex::new(connection),
            owner,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written: every statement is
        // atomic. Keep using the connection.
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }
}
