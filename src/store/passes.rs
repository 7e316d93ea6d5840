//! Passes: one row per pass, with the root hash of the source's snapshot and its counts.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Error, Store, now};

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

impl Store {
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
