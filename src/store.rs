//! The job database: one SQLite file (WAL) holding jobs and passes, with schema migrations.
//!
//! A job is one change to one replica: (replica, object, change key, operation) is unique, so
//! the same change is recorded once. A job that succeeded and is needed again (the replica was
//! edited by hand since) is re-opened, not duplicated; its `runs` counts how often it ran.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: jobs and passes.
    "CREATE TABLE jobs (
        id          INTEGER PRIMARY KEY,
        replica     TEXT NOT NULL,
        kind        TEXT NOT NULL,
        namespace   TEXT NOT NULL,
        name        TEXT NOT NULL,
        operation   TEXT NOT NULL CHECK (operation IN ('apply', 'delete')),
        change_key  TEXT NOT NULL,
        action      TEXT NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        runs        INTEGER NOT NULL DEFAULT 1,
        error       TEXT,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        started_at  TEXT,
        finished_at TEXT,
        duration_ms INTEGER,
        UNIQUE (replica, kind, namespace, name, change_key, operation)
    );
    CREATE INDEX jobs_status ON jobs (status, replica);
    CREATE TABLE passes (
        id          INTEGER PRIMARY KEY,
        source      TEXT NOT NULL,
        root_hash   TEXT NOT NULL,
        objects     INTEGER NOT NULL,
        started_at  TEXT NOT NULL,
        finished_at TEXT,
        drifted     INTEGER NOT NULL DEFAULT 0,
        applied     INTEGER NOT NULL DEFAULT 0,
        failed      INTEGER NOT NULL DEFAULT 0
    );",
    // 2: API users (bcrypt hashes) and sessions (sha256 of bearer tokens, never the tokens).
    "CREATE TABLE users (
        name          TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        created_at    TEXT NOT NULL,
        updated_at    TEXT NOT NULL
    );
    CREATE TABLE sessions (
        token_sha256 TEXT PRIMARY KEY,
        user         TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
        created_at   TEXT NOT NULL,
        expires_at   INTEGER NOT NULL
    );
    CREATE INDEX sessions_expiry ON sessions (expires_at);",
];

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
}

/// The state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Recorded, not started (or interrupted).
    Pending,
    /// Being applied.
    Running,
    /// Applied.
    Succeeded,
    /// Gave up after retries.
    Failed,
}

impl Status {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
        }
    }

    /// Parses a stored or user-given name.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Status::Pending,
            Status::Running,
            Status::Succeeded,
            Status::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// Whether a job writes or deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// Server-side apply (create, update, recreate).
    Apply,
    /// Delete (prune).
    Delete,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "apply",
            Operation::Delete => "delete",
        }
    }
}

/// A new job: which change, to which object on which replica.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// The replica's name.
    pub replica: &'a str,
    /// The object's kind.
    pub kind: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Apply or delete.
    pub operation: Operation,
    /// The change key applied (or, for deletes, the one being deleted).
    pub change_key: &'a str,
    /// The plan's action, for people: create, update, recreate, prune, sync.
    pub action: &'a str,
}

/// A recorded job.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// Its id.
    pub id: i64,
    /// The replica's name.
    pub replica: String,
    /// The object's kind.
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Apply or delete.
    pub operation: String,
    /// The change key.
    pub change_key: String,
    /// The plan's action.
    pub action: String,
    /// Its state.
    pub status: Status,
    /// Requests made in its last run, retries included.
    pub attempts: i64,
    /// How many times it ran.
    pub runs: i64,
    /// The last error, if it failed.
    pub error: Option<String>,
    /// When it was first recorded.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// When its last run started.
    pub started_at: Option<String>,
    /// When its last run ended.
    pub finished_at: Option<String>,
    /// How long its last run took.
    pub duration_ms: Option<i64>,
}

impl Job {
    /// The job as shown to people and API clients: a Secret's change key is left out, since a
    /// hash of a weak value can be reversed by guessing.
    pub fn shown(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).expect("a job serializes");
        if self.kind == "Secret" {
            value["change_key"] = serde_json::Value::Null;
        }
        value
    }

    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        let status: String = row.get("status")?;
        Ok(Job {
            id: row.get("id")?,
            replica: row.get("replica")?,
            kind: row.get("kind")?,
            namespace: row.get("namespace")?,
            name: row.get("name")?,
            operation: row.get("operation")?,
            change_key: row.get("change_key")?,
            action: row.get("action")?,
            status: Status::parse(&status).unwrap_or(Status::Failed),
            attempts: row.get("attempts")?,
            runs: row.get("runs")?,
            error: row.get("error")?,
            created_at: row.get("created_at")?,
            updated_at: row.get("updated_at")?,
            started_at: row.get("started_at")?,
            finished_at: row.get("finished_at")?,
            duration_ms: row.get("duration_ms")?,
        })
    }
}

/// Which jobs to list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub status: Option<Status>,
    /// Only jobs of this replica.
    pub replica: Option<String>,
    /// At most this many, newest first.
    pub limit: Option<u32>,
}

/// Counts of jobs by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// All jobs.
    pub total: u64,
    /// Running now.
    pub ongoing: u64,
    /// Failed.
    pub failed: u64,
    /// Pending.
    pub pending: u64,
    /// Succeeded.
    pub succeeded: u64,
}

/// An API user, without the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// The login name.
    pub name: String,
    /// When the user was added.
    pub created_at: String,
}

/// What deleting a user did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserDeletion {
    /// The user and their sessions are gone.
    Deleted,
    /// No such user.
    NotFound,
    /// Refused: without users nobody could log in again.
    LastUser,
}

impl Counts {
    /// Adds `count` jobs in the state named `status`.
    fn add(&mut self, status: &str, count: i64) {
        let count = u64::try_from(count).unwrap_or_default();
        self.total += count;
        match Status::parse(status) {
            Some(Status::Running) => self.ongoing += count,
            Some(Status::Failed) => self.failed += count,
            Some(Status::Pending) => self.pending += count,
            Some(Status::Succeeded) => self.succeeded += count,
            None => {}
        }
    }
}

/// A recorded pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pass {
    /// Its id.
    pub id: i64,
    /// The source's name.
    pub source: String,
    /// The root hash of the source's snapshot.
    pub root_hash: String,
    /// Objects in the source's snapshot.
    pub objects: i64,
    /// When it started.
    pub started_at: String,
    /// When it ended, if it did.
    pub finished_at: Option<String>,
    /// Objects out of step, over every replica.
    pub drifted: i64,
    /// Changes applied.
    pub applied: i64,
    /// Changes that failed.
    pub failed: i64,
}

/// The job database.
pub struct Store {
    connection: Mutex<Connection>,
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, Error> {
        Self::setup(Connection::open(path)?)
    }

    /// An in-memory database, for tests and dry runs.
    pub fn in_memory() -> Result<Self, Error> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(connection: Connection) -> Result<Self, Error> {
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = connection.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        if version > MIGRATIONS.len() {
            return Err(Error::TooNew {
                found: version,
                known: MIGRATIONS.len(),
            });
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(version) {
            connection.execute_batch(&format!(
                "BEGIN; {migration}; PRAGMA user_version = {}; COMMIT;",
                index + 1
            ))?;
        }
        Ok(Store {
            connection: Mutex::new(connection),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written: every statement is
        // atomic. Keep using the connection.
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a job as pending and returns its id. An existing row for the same change is
    /// re-opened (and its `runs` bumped if it had finished).
    pub fn begin(&self, job: &NewJob<'_>) -> Result<i64, Error> {
        let now = now();
        // Statements run per job are prepared once: parsing the SQL was a third of the time a
        // job spent in SQLite.
        let id = self
            .lock()
            .prepare_cached(
                "INSERT INTO jobs (replica, kind, namespace, name, operation, change_key, action,
                               status, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?8)
             ON CONFLICT (replica, kind, namespace, name, change_key, operation) DO UPDATE SET
                 action = excluded.action,
                 runs = runs + (status IN ('succeeded', 'failed')),
                 status = 'pending',
                 updated_at = excluded.updated_at
             RETURNING id",
            )?
            .query_row(
                params![
                    job.replica,
                    job.kind,
                    job.namespace,
                    job.name,
                    job.operation.as_str(),
                    job.change_key,
                    job.action,
                    now
                ],
                |row| row.get(0),
            )?;
        Ok(id)
    }

    /// Marks a job running.
    pub fn start(&self, id: i64) -> Result<(), Error> {
        let now = now();
        self.lock()
            .prepare_cached(
                "UPDATE jobs SET status = 'running', started_at = ?2, updated_at = ?2, error = NULL
             WHERE id = ?1",
            )?
            .execute(params![id, now])?;
        Ok(())
    }

    /// Records how a job's run ended.
    pub fn finish(
        &self,
        id: i64,
        outcome: Result<(), &str>,
        attempts: u32,
        duration: std::time::Duration,
    ) -> Result<(), Error> {
        let now = now();
        let (status, error) = match outcome {
            Ok(()) => (Status::Succeeded, None),
            Err(message) => (Status::Failed, Some(message)),
        };
        self.lock()
            .prepare_cached(
                "UPDATE jobs SET status = ?2, error = ?3, attempts = ?4, finished_at = ?5,
                             updated_at = ?5, duration_ms = ?6
             WHERE id = ?1",
            )?
            .execute(params![
                id,
                status.as_str(),
                error,
                attempts,
                now,
                i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
            ])?;
        Ok(())
    }

    /// Marks jobs left running by an interrupted process as pending again. Returns how many.
    pub fn reset_running(&self) -> Result<usize, Error> {
        let now = now();
        Ok(self.lock().execute(
            "UPDATE jobs SET status = 'pending', updated_at = ?1 WHERE status = 'running'",
            [now],
        )?)
    }

    /// Closes open (pending or failed) apply jobs for a change the replica already has.
    pub fn settle(
        &self,
        replica: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        change_key: &str,
    ) -> Result<usize, Error> {
        let now = now();
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "UPDATE jobs SET status = 'succeeded', error = NULL, finished_at = ?6, updated_at = ?6
             WHERE replica = ?1 AND kind = ?2 AND namespace = ?3 AND name = ?4
               AND change_key = ?5 AND operation = 'apply' AND status IN ('pending', 'failed')",
        )?;
        Ok(statement.execute(params![replica, kind, namespace, name, change_key, now])?)
    }

    /// One job.
    pub fn job(&self, id: i64) -> Result<Option<Job>, Error> {
        Ok(self
            .lock()
            .query_row("SELECT * FROM jobs WHERE id = ?1", [id], Job::from_row)
            .optional()?)
    }

    /// Jobs matching a filter, newest first.
    pub fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, Error> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "SELECT * FROM jobs
             WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR replica = ?2)
             ORDER BY id DESC LIMIT ?3",
        )?;
        let limit = filter.limit.map_or(-1, i64::from);
        let rows = statement.query_map(
            params![filter.status.map(Status::as_str), filter.replica, limit],
            Job::from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Counts of jobs by state, for one replica or all.
    pub fn counts(&self, replica: Option<&str>) -> Result<Counts, Error> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "SELECT status, COUNT(*) FROM jobs WHERE (?1 IS NULL OR replica = ?1) GROUP BY status",
        )?;
        let mut counts = Counts::default();
        let rows = statement.query_map([replica], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (status, count) = row?;
            counts.add(&status, count);
        }
        Ok(counts)
    }

    /// Counts of jobs by state for every replica that has jobs, in one scan.
    pub fn counts_by_replica(&self) -> Result<BTreeMap<String, Counts>, Error> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "SELECT replica, status, COUNT(*) FROM jobs GROUP BY replica, status",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?;
        let mut all = BTreeMap::new();
        for row in rows {
            let (replica, status, count) = row?;
            all.entry(replica)
                .or_insert_with(Counts::default)
                .add(&status, count);
        }
        Ok(all)
    }

    /// The most recent pass, if any.
    pub fn last_pass(&self) -> Result<Option<Pass>, Error> {
        Ok(self
            .lock()
            .query_row(
                "SELECT id, source, root_hash, objects, started_at, finished_at, drifted, applied, failed
                 FROM passes ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok(Pass {
                        id: r.get(0)?,
                        source: r.get(1)?,
                        root_hash: r.get(2)?,
                        objects: r.get(3)?,
                        started_at: r.get(4)?,
                        finished_at: r.get(5)?,
                        drifted: r.get(6)?,
                        applied: r.get(7)?,
                        failed: r.get(8)?,
                    })
                },
            )
            .optional()?)
    }

    /// Records the start of a pass and returns its id.
    pub fn begin_pass(&self, source: &str, root_hash: &str, objects: usize) -> Result<i64, Error> {
        let now = now();
        Ok(self.lock().query_row(
            "INSERT INTO passes (source, root_hash, objects, started_at) VALUES (?1, ?2, ?3, ?4)
             RETURNING id",
            params![source, root_hash, objects as i64, now],
            |row| row.get(0),
        )?)
    }

    /// Records how a pass ended.
    pub fn finish_pass(
        &self,
        id: i64,
        drifted: usize,
        applied: usize,
        failed: usize,
    ) -> Result<(), Error> {
        let now = now();
        self.lock().execute(
            "UPDATE passes SET finished_at = ?2, drifted = ?3, applied = ?4, failed = ?5 WHERE id = ?1",
            params![id, now, drifted as i64, applied as i64, failed as i64],
        )?;
        Ok(())
    }
}

/// Users and sessions of the HTTP API.
impl Store {
    /// Adds a user with a password hash. Returns false when the name is taken.
    pub fn add_user(&self, name: &str, password_hash: &str) -> Result<bool, Error> {
        let now = now();
        let added = self.lock().execute(
            "INSERT INTO users (name, password_hash, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (name) DO NOTHING",
            params![name, password_hash, now],
        )?;
        Ok(added == 1)
    }

    /// Replaces a user's password hash and ends their sessions. Returns false for no such user.
    pub fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, Error> {
        let now = now();
        let mut connection = self.lock();
        let transaction = connection.transaction()?;
        let changed = transaction.execute(
            "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE name = ?1",
            params![name, password_hash, now],
        )?;
        transaction.execute("DELETE FROM sessions WHERE user = ?1", [name])?;
        transaction.commit()?;
        Ok(changed == 1)
    }

    /// Deletes a user (and their sessions), unless they are the last one.
    pub fn delete_user(&self, name: &str) -> Result<UserDeletion, Error> {
        let mut connection = self.lock();
        let transaction = connection.transaction()?;
        let exists: bool = transaction.query_row(
            "SELECT EXISTS (SELECT 1 FROM users WHERE name = ?1)",
            [name],
            |r| r.get(0),
        )?;
        if !exists {
            return Ok(UserDeletion::NotFound);
        }
        let count: i64 = transaction.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?;
        if count <= 1 {
            return Ok(UserDeletion::LastUser);
        }
        transaction.execute("DELETE FROM users WHERE name = ?1", [name])?;
        transaction.commit()?;
        Ok(UserDeletion::Deleted)
    }

    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<User>, Error> {
        let connection = self.lock();
        let mut statement =
            connection.prepare_cached("SELECT name, created_at FROM users ORDER BY name")?;
        let rows = statement.query_map([], |r| {
            Ok(User {
                name: r.get(0)?,
                created_at: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A user's password hash, if the user exists.
    pub fn password_hash(&self, name: &str) -> Result<Option<String>, Error> {
        Ok(self
            .lock()
            .query_row(
                "SELECT password_hash FROM users WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Records a session: the sha256 (hex) of its token, its user, and its expiry (unix seconds).
    pub fn add_session(
        &self,
        token_sha256: &str,
        user: &str,
        expires_at: i64,
    ) -> Result<(), Error> {
        let now = now();
        self.lock().execute(
            "INSERT INTO sessions (token_sha256, user, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![token_sha256, user, now, expires_at],
        )?;
        Ok(())
    }

    /// The user of a session that has not expired by `now` (unix seconds).
    pub fn session_user(&self, token_sha256: &str, now: i64) -> Result<Option<String>, Error> {
        Ok(self
            .lock()
            .query_row(
                "SELECT user FROM sessions WHERE token_sha256 = ?1 AND expires_at > ?2",
                params![token_sha256, now],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Ends a session. Returns false when there was none.
    pub fn delete_session(&self, token_sha256: &str) -> Result<bool, Error> {
        Ok(self.lock().execute(
            "DELETE FROM sessions WHERE token_sha256 = ?1",
            [token_sha256],
        )? == 1)
    }

    /// Forgets sessions that expired by `now` (unix seconds).
    pub fn delete_expired_sessions(&self, now: i64) -> Result<usize, Error> {
        Ok(self
            .lock()
            .execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn manages_users_and_sessions() {
        let store = Store::in_memory().unwrap();
        assert!(store.add_user("ada", "$2b$04$hash").unwrap());
        assert!(!store.add_user("ada", "other").unwrap(), "names are unique");
        assert_eq!(
            store.password_hash("ada").unwrap().as_deref(),
            Some("$2b$04$hash")
        );
        assert_eq!(store.delete_user("ada").unwrap(), UserDeletion::LastUser);
        assert!(store.add_user("bob", "h").unwrap());
        store.add_session("t1", "ada", 100).unwrap();
        assert_eq!(
            store.session_user("t1", 99).unwrap().as_deref(),
            Some("ada")
        );
        assert_eq!(store.session_user("t1", 100).unwrap(), None, "expired");
        assert!(store.set_password("ada", "new").unwrap());
        assert_eq!(
            store.session_user("t1", 0).unwrap(),
            None,
            "a new password ends sessions"
        );
        store.add_session("t2", "ada", 100).unwrap();
        assert_eq!(store.delete_user("ada").unwrap(), UserDeletion::Deleted);
        assert_eq!(
            store.session_user("t2", 0).unwrap(),
            None,
            "sessions go with their user"
        );
        assert_eq!(store.delete_user("ada").unwrap(), UserDeletion::NotFound);
        let names: Vec<_> = store.users().unwrap().into_iter().map(|u| u.name).collect();
        assert_eq!(names, ["bob"]);
        store.add_session("t3", "bob", 5).unwrap();
        assert_eq!(store.delete_expired_sessions(10).unwrap(), 1);
        assert!(!store.delete_session("t3").unwrap());
    }

    fn job<'a>(key: &'a str) -> NewJob<'a> {
        NewJob {
            replica: "r1",
            kind: "ConfigMap",
            namespace: "shop",
            name: "a",
            operation: Operation::Apply,
            change_key: key,
            action: "create",
        }
    }

    #[test]
    fn records_a_job_through_its_life() {
        let store = Store::in_memory().unwrap();
        let id = store.begin(&job("sha256:1")).unwrap();
        assert_eq!(store.job(id).unwrap().unwrap().status, Status::Pending);
        store.start(id).unwrap();
        assert_eq!(store.counts(None).unwrap().ongoing, 1);
        store
            .finish(id, Err("boom"), 3, Duration::from_millis(12))
            .unwrap();
        let failed = store.job(id).unwrap().unwrap();
        assert_eq!(
            (failed.status, failed.attempts, failed.error.as_deref()),
            (Status::Failed, 3, Some("boom"))
        );
        assert_eq!(failed.duration_ms, Some(12));
    }

    #[test]
    fn the_same_change_is_one_row() {
        let store = Store::in_memory().unwrap();
        let id = store.begin(&job("sha256:1")).unwrap();
        store.finish(id, Ok(()), 1, Duration::ZERO).unwrap();
        // Needed again (the replica was edited by hand): re-opened, not duplicated.
        let again = store
            .begin(&NewJob {
                action: "update",
                ..job("sha256:1")
            })
            .unwrap();
        assert_eq!(again, id);
        let row = store.job(id).unwrap().unwrap();
        assert_eq!(
            (row.status, row.runs, row.action.as_str()),
            (Status::Pending, 2, "update")
        );
        // A new change key is a new job.
        assert_ne!(store.begin(&job("sha256:2")).unwrap(), id);
        // Deleting the same key is a different operation.
        let delete = NewJob {
            operation: Operation::Delete,
            action: "prune",
            ..job("sha256:1")
        };
        assert_ne!(store.begin(&delete).unwrap(), id);
        assert_eq!(store.counts(None).unwrap().total, 3);
    }

    #[test]
    fn settles_open_jobs_the_replica_already_has() {
        let store = Store::in_memory().unwrap();
        let id = store.begin(&job("sha256:1")).unwrap();
        store
            .finish(id, Err("unreachable"), 5, Duration::ZERO)
            .unwrap();
        assert_eq!(
            store
                .settle("r1", "ConfigMap", "shop", "a", "sha256:1")
                .unwrap(),
            1
        );
        assert_eq!(store.job(id).unwrap().unwrap().status, Status::Succeeded);
        assert_eq!(
            store
                .settle("r1", "ConfigMap", "shop", "a", "sha256:1")
                .unwrap(),
            0
        );
    }

    /// Three finished jobs, one on `r1` and two on `r2` (keys `sha256:0` to `sha256:2`); the
    /// one numbered `failed` failed.
    fn three_jobs(failed: usize) -> Store {
        let store = Store::in_memory().unwrap();
        for (i, replica) in ["r1", "r2", "r2"].iter().enumerate() {
            let key = format!("sha256:{i}");
            let id = store
                .begin(&NewJob {
                    replica,
                    ..job(&key)
                })
                .unwrap();
            let outcome = if i == failed { Err("x") } else { Ok(()) };
            store.finish(id, outcome, 1, Duration::ZERO).unwrap();
        }
        store
    }

    #[test]
    fn filters_and_counts() {
        let store = three_jobs(0);
        let failed = store
            .jobs(&JobFilter {
                status: Some(Status::Failed),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(failed.len(), 1);
        let r2 = store
            .jobs(&JobFilter {
                replica: Some("r2".into()),
                limit: Some(1),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(r2.len(), 1);
        let counts = store.counts(Some("r2")).unwrap();
        assert_eq!((counts.total, counts.succeeded, counts.failed), (2, 2, 0));
    }

    #[test]
    fn migrates_a_file_once_and_refuses_newer_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.db");
        let id = Store::open(&path).unwrap().begin(&job("sha256:1")).unwrap();
        let reopened = Store::open(&path).unwrap();
        assert_eq!(reopened.job(id).unwrap().unwrap().change_key, "sha256:1");
        drop(reopened);
        let connection = Connection::open(&path).unwrap();
        connection.pragma_update(None, "user_version", 99).unwrap();
        drop(connection);
        assert!(matches!(
            Store::open(&path),
            Err(Error::TooNew { found: 99, .. })
        ));
    }

    #[test]
    fn interrupted_jobs_become_pending() {
        let store = Store::in_memory().unwrap();
        let id = store.begin(&job("sha256:1")).unwrap();
        store.start(id).unwrap();
        assert_eq!(store.reset_running().unwrap(), 1);
        assert_eq!(store.job(id).unwrap().unwrap().status, Status::Pending);
    }

    #[test]
    fn shows_no_change_key_of_a_secret() {
        let store = Store::in_memory().unwrap();
        let config = store.begin(&job("sha256:1")).unwrap();
        let secret = store
            .begin(&NewJob {
                kind: "Secret",
                ..job("sha256:2")
            })
            .unwrap();
        let shown = |id| store.job(id).unwrap().unwrap().shown();
        assert_eq!(shown(config)["change_key"], "sha256:1");
        assert!(shown(secret)["change_key"].is_null());
    }

    #[test]
    fn counts_every_replica_in_one_scan_and_finds_the_last_pass() {
        let store = three_jobs(2);
        assert_eq!(store.last_pass().unwrap(), None);
        let all = store.counts_by_replica().unwrap();
        assert_eq!((all["r1"].total, all["r1"].succeeded), (1, 1));
        assert_eq!((all["r2"].total, all["r2"].failed), (2, 1));
        store.begin_pass("primary", "sha256:a", 3).unwrap();
        let id = store.begin_pass("primary", "sha256:b", 4).unwrap();
        store.finish_pass(id, 2, 1, 1).unwrap();
        let last = store.last_pass().unwrap().unwrap();
        assert_eq!(
            (last.id, last.root_hash.as_str(), last.applied),
            (id, "sha256:b", 1)
        );
        assert!(last.finished_at.is_some());
    }
}
