//! Jobs: one row per change to one replica.
//!
//! (replica, object, change key, operation) is unique, so the same change is recorded once. A
//! job that succeeded and is needed again (the replica was edited by hand since) is re-opened,
//! not duplicated; its `runs` counts how often it ran. A prune may be `held` (over
//! `--max-prune`, until released or forced), `delayed` (by `--prune-delay`, until its due time),
//! or `cancelled` (the object came back on the primary first).

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

use super::{Error, Store, now};

/// The state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Recorded, not started (or interrupted, or waiting for its replica to come back).
    Pending,
    /// Being applied.
    Running,
    /// Applied.
    Succeeded,
    /// Gave up after retries.
    Failed,
    /// A prune over `--max-prune`: waits for an operator's release or `--force-prune`.
    Held,
    /// A prune waiting for `--prune-delay` to pass (`due_at`).
    Delayed,
    /// A held or delayed prune whose object came back on the primary: never run.
    Cancelled,
}

impl Status {
    /// Every status, in the order people read them.
    pub const ALL: [Status; 7] = [
        Status::Pending,
        Status::Running,
        Status::Succeeded,
        Status::Failed,
        Status::Held,
        Status::Delayed,
        Status::Cancelled,
    ];

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Held => "held",
            Status::Delayed => "delayed",
            Status::Cancelled => "cancelled",
        }
    }

    /// Parses a stored or user-given name.
    pub fn parse(text: &str) -> Option<Self> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
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
    /// The options of the pass that made the job (JSON), so that a retry runs with them.
    pub options: Option<&'a str>,
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
    /// A delayed prune's due time.
    pub due_at: Option<String>,
    /// The options of the pass that made it (JSON), when recorded.
    #[serde(skip)]
    pub options: Option<String>,
}

impl Job {
    /// The job as shown to people and API clients: a Secret's change key is left out, since a
    /// hash of a weak value can be reversed by guessing; the pass options are a JSON object.
    pub fn shown(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).expect("a job serializes");
        if self.kind == "Secret" {
            value["change_key"] = serde_json::Value::Null;
        }
        value["options"] = self
            .options
            .as_deref()
            .and_then(|o| serde_json::from_str(o).ok())
            .unwrap_or_default();
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
            due_at: row.get("due_at")?,
            options: row.get("options")?,
        })
    }
}

/// A prune recorded as held or delayed, as a pass's safety rules need to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeferredPrune {
    /// The object's kind.
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `Held` or `Delayed`.
    pub status: Status,
    /// When a delayed prune is due.
    pub due_at: Option<jiff::Timestamp>,
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
    /// Prunes held over `--max-prune`.
    pub held: u64,
    /// Prunes waiting for `--prune-delay`.
    pub delayed: u64,
    /// Held or delayed prunes that were never run.
    pub cancelled: u64,
}

impl Counts {
    /// Adds `count` jobs in the state named `status`.
    fn add(&mut self, status: &str, count: i64) {
        let count = u64::try_from(count).unwrap_or_default();
        self.total += count;
        let Some(status) = Status::parse(status) else {
            return;
        };
        *match status {
            Status::Running => &mut self.ongoing,
            Status::Failed => &mut self.failed,
            Status::Pending => &mut self.pending,
            Status::Succeeded => &mut self.succeeded,
            Status::Held => &mut self.held,
            Status::Delayed => &mut self.delayed,
            Status::Cancelled => &mut self.cancelled,
        } += count;
    }
}

/// The statement that records a job in a given state: a new row, or the existing row for the
/// same change re-opened (its `runs` bumped when it had finished).
const UPSERT: &str = "INSERT INTO jobs (replica, kind, namespace, name, operation, change_key,
                                        action, status, options, due_at, created_at, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)
     ON CONFLICT (replica, kind, namespace, name, change_key, operation) DO UPDATE SET
         action = excluded.action,
         runs = runs + (status IN ('succeeded', 'failed', 'cancelled')),
         due_at = CASE WHEN status = 'delayed' AND excluded.status = 'delayed' THEN due_at
                       ELSE excluded.due_at END,
         status = excluded.status,
         options = COALESCE(excluded.options, options),
         updated_at = excluded.updated_at
     RETURNING id";

impl Store {
    fn upsert(&self, job: &NewJob<'_>, status: Status, due_at: Option<&str>) -> Result<i64, Error> {
        let now = now();
        // Statements run per job are prepared once: parsing the SQL was a third of the time a
        // job spent in SQLite.
        let id = self.lock().prepare_cached(UPSERT)?.query_row(
            params![
                job.replica,
                job.kind,
                job.namespace,
                job.name,
                job.operation.as_str(),
                job.change_key,
                job.action,
                status.as_str(),
                job.options,
                due_at,
                now
            ],
            |row| row.get(0),
        )?;
        Ok(id)
    }

    /// Records a job as pending and returns its id. An existing row for the same change is
    /// re-opened (and its `runs` bumped if it had finished).
    pub fn begin(&self, job: &NewJob<'_>) -> Result<i64, Error> {
        self.upsert(job, Status::Pending, None)
    }

    /// Records a prune as held over `--max-prune`.
    pub fn hold(&self, job: &NewJob<'_>) -> Result<i64, Error> {
        self.upsert(job, Status::Held, None)
    }

    /// Records a prune as delayed until `due`; a prune already delayed keeps its first due time.
    pub fn delay(&self, job: &NewJob<'_>, due: jiff::Timestamp) -> Result<i64, Error> {
        self.upsert(job, Status::Delayed, Some(&due.to_string()))
    }

    /// Marks a job running, owned by this process.
    pub fn start(&self, id: i64) -> Result<(), Error> {
        let now = now();
        self.lock()
            .prepare_cached(
                "UPDATE jobs SET status = 'running', started_at = ?2, updated_at = ?2, error = NULL,
                             owner = ?3
                 WHERE id = ?1",
            )?
            .execute(params![id, now, self.owner.id])?;
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
        let (status, error) = match outcome {
            Ok(()) => (Status::Succeeded, None),
            Err(message) => (Status::Failed, Some(message)),
        };
        self.end(id, status, error, attempts, duration)
    }

    /// Records a run that was cut off before its replica answered (the replica went down):
    /// the job is pending again, with the reason, and counts as neither failed nor done.
    pub fn interrupt(&self, id: i64, reason: &str, attempts: u32) -> Result<(), Error> {
        self.end(
            id,
            Status::Pending,
            Some(reason),
            attempts,
            std::time::Duration::ZERO,
        )
    }

    fn end(
        &self,
        id: i64,
        status: Status,
        error: Option<&str>,
        attempts: u32,
        duration: std::time::Duration,
    ) -> Result<(), Error> {
        let now = now();
        self.lock()
            .prepare_cached(
                "UPDATE jobs SET status = ?2, error = ?3, attempts = ?4, finished_at = ?5,
                             updated_at = ?5, duration_ms = ?6, due_at = NULL
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

    /// Makes the `running` jobs of processes that are gone pending again, and returns how many.
    /// Jobs a live process runs (this one, or another on the same database) are left alone.
    pub fn settle_abandoned(&self) -> Result<usize, Error> {
        let owners: Vec<Option<String>> = {
            let connection = self.lock();
            let mut statement = connection
                .prepare_cached("SELECT DISTINCT owner FROM jobs WHERE status = 'running'")?;
            statement
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()?
        };
        let now = now();
        let mut settled = 0;
        for owner in owners {
            if owner.as_deref().is_some_and(|o| self.owner.is_alive(o)) {
                continue;
            }
            settled += self.lock().execute(
                "UPDATE jobs SET status = 'pending', updated_at = ?1, owner = NULL
                 WHERE status = 'running' AND owner IS ?2",
                params![now, owner],
            )?;
        }
        Ok(settled)
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
        self.settle_all(replica, [(kind, namespace, name, change_key)])
    }

    /// [`Store::settle`] for many objects of one replica at once, `(kind, namespace, name,
    /// change key)` each, in one transaction: a pass over 100,000 objects in step settles them
    /// all, and a transaction each would cost more than the pass's reads.
    pub fn settle_all<'a>(
        &self,
        replica: &str,
        objects: impl IntoIterator<Item = (&'a str, &'a str, &'a str, &'a str)>,
    ) -> Result<usize, Error> {
        let now = now();
        let mut connection = self.lock();
        let transaction = connection.transaction()?;
        let mut settled = 0;
        {
            let mut statement = transaction.prepare_cached(
                "UPDATE jobs SET status = 'succeeded', error = NULL, finished_at = ?6, updated_at = ?6
                 WHERE replica = ?1 AND kind = ?2 AND namespace = ?3 AND name = ?4
                   AND change_key = ?5 AND operation = 'apply' AND status IN ('pending', 'failed')",
            )?;
            for (kind, namespace, name, change_key) in objects {
                settled +=
                    statement.execute(params![replica, kind, namespace, name, change_key, now])?;
            }
        }
        transaction.commit()?;
        Ok(settled)
    }

    /// Cancels the held or delayed prunes of an object that is on the primary again.
    pub fn cancel_prunes(
        &self,
        replica: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<usize, Error> {
        let now = now();
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "UPDATE jobs SET status = 'cancelled', due_at = NULL, finished_at = ?5, updated_at = ?5,
                             error = 'the object is on the primary again'
             WHERE replica = ?1 AND kind = ?2 AND namespace = ?3 AND name = ?4
               AND operation = 'delete' AND status IN ('held', 'delayed')",
        )?;
        Ok(statement.execute(params![replica, kind, namespace, name, now])?)
    }

    /// The held and delayed prunes of a replica (of one object, when `object` names it as
    /// kind, namespace and name).
    pub fn deferred_prunes(
        &self,
        replica: &str,
        object: Option<(&str, &str, &str)>,
    ) -> Result<Vec<DeferredPrune>, Error> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "SELECT kind, namespace, name, status, due_at FROM jobs
             WHERE replica = ?1 AND operation = 'delete' AND status IN ('held', 'delayed')
               AND (?2 IS NULL OR (kind = ?2 AND namespace = ?3 AND name = ?4))",
        )?;
        let (kind, namespace, name) = match object {
            Some((k, ns, n)) => (Some(k), Some(ns), Some(n)),
            None => (None, None, None),
        };
        let rows = statement.query_map(params![replica, kind, namespace, name], |row| {
            let status: String = row.get(3)?;
            let due: Option<String> = row.get(4)?;
            Ok(DeferredPrune {
                kind: row.get(0)?,
                namespace: row.get(1)?,
                name: row.get(2)?,
                status: Status::parse(&status).unwrap_or(Status::Held),
                due_at: due.and_then(|d| d.parse().ok()),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records that `by` released the prunes held on `replica` (`jobs` of them) and returns
    /// the release's id.
    pub fn record_release(&self, replica: &str, by: &str, jobs: usize) -> Result<i64, Error> {
        let now = now();
        Ok(self.lock().query_row(
            "INSERT INTO releases (replica, released_by, released_at, jobs) VALUES (?1, ?2, ?3, ?4)
             RETURNING id",
            params![replica, by, now, jobs as i64],
            |row| row.get(0),
        )?)
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
}

#[cfg(test)]
mod tests;
