//! Users and sessions of the HTTP API: bcrypt hashes of passwords, sha256 of bearer tokens.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{Error, Store, now};

/// What a user may do through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads the dashboard, the status and the jobs.
    Viewer,
    /// Also manages users, retries jobs and releases held prunes; reads the audit trail.
    #[default]
    Admin,
}

impl Role {
    /// Its name: `admin` or `viewer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    /// The role named `text`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An API user, without the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// The login name.
    pub name: String,
    /// What they may do.
    pub role: Role,
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
    /// Refused: without an administrator nobody could manage users again.
    LastAdmin,
}

/// A change made through the API, as the audit trail keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Its number, in order.
    pub id: i64,
    /// When (RFC 3339).
    pub at: String,
    /// Who: the caller, or for a login the name given.
    pub user: String,
    /// What: the method and route (`POST /api/users`).
    pub action: String,
    /// On what: the route's parameters and query, never a body.
    pub target: String,
    /// From where: the client's address.
    pub remote: Option<String>,
    /// The answer's status code.
    pub status: u16,
}

/// Whether user `name` exists.
fn exists(transaction: &rusqlite::Transaction<'_>, name: &str) -> rusqlite::Result<bool> {
    transaction.query_row(
        "SELECT EXISTS (SELECT 1 FROM users WHERE name = ?1)",
        [name],
        |r| r.get(0),
    )
}

/// Users and sessions of the HTTP API.
impl Store {
    /// Adds a user with a password hash and a role. Returns false when the name is taken.
    pub fn add_user(&self, name: &str, password_hash: &str, role: Role) -> Result<bool, Error> {
        let now = now();
        let added = self.lock().execute(
            "INSERT INTO users (name, password_hash, role, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?4)
             ON CONFLICT (name) DO NOTHING",
            params![name, password_hash, role.as_str(), now],
        )?;
        Ok(added == 1)
    }

    /// Ends every session of a user; `None` for no such user, else how many ended.
    pub fn revoke(&self, name: &str) -> Result<Option<usize>, Error> {
        let mut connection = self.lock();
        let transaction = connection.transaction()?;
        if !exists(&transaction, name)? {
            return Ok(None);
        }
        let ended = transaction.execute("DELETE FROM sessions WHERE user = ?1", [name])?;
        transaction.commit()?;
        Ok(Some(ended))
    }

    /// Records a change made through the API.
    pub fn record_audit(
        &self,
        user: &str,
        action: &str,
        target: &str,
        remote: Option<&str>,
        status: u16,
    ) -> Result<(), Error> {
        self.lock().execute(
            "INSERT INTO audit (at, user, action, target, remote, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![now(), user, action, target, remote, status],
        )?;
        Ok(())
    }

    /// The newest `limit` entries of the audit trail, newest first.
    pub fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>, Error> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "SELECT id, at, user, action, target, remote, status FROM audit ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = statement.query_map([limit], |r| {
            Ok(AuditEntry {
                id: r.get(0)?,
                at: r.get(1)?,
                user: r.get(2)?,
                action: r.get(3)?,
                target: r.get(4)?,
                remote: r.get(5)?,
                status: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
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
        if !exists(&transaction, name)? {
            return Ok(UserDeletion::NotFound);
        }
        let others: i64 = transaction.query_row(
            "SELECT COUNT(*) FROM users WHERE role = 'admin' AND name <> ?1",
            [name],
            |r| r.get(0),
        )?;
        let role: String =
            transaction.query_row("SELECT role FROM users WHERE name = ?1", [name], |r| {
                r.get(0)
            })?;
        if role == "admin" && others == 0 {
            return Ok(UserDeletion::LastAdmin);
        }
        transaction.execute("DELETE FROM users WHERE name = ?1", [name])?;
        transaction.commit()?;
        Ok(UserDeletion::Deleted)
    }

    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<User>, Error> {
        let connection = self.lock();
        let mut statement =
            connection.prepare_cached("SELECT name, role, created_at FROM users ORDER BY name")?;
        let rows = statement.query_map([], |r| {
            let role: String = r.get(1)?;
            Ok(User {
                name: r.get(0)?,
                role: Role::parse(&role).unwrap_or(Role::Viewer),
                created_at: r.get(2)?,
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

    /// The user (and their role) of a session that has not expired by `now` (unix seconds).
    pub fn session_user(
        &self,
        token_sha256: &str,
        now: i64,
    ) -> Result<Option<(String, Role)>, Error> {
        Ok(self
            .lock()
            .query_row(
                "SELECT s.user, u.role FROM sessions s JOIN users u ON u.name = s.user
                 WHERE s.token_sha256 = ?1 AND s.expires_at > ?2",
                params![token_sha256, now],
                |r| {
                    let role: String = r.get(1)?;
                    Ok((r.get(0)?, Role::parse(&role).unwrap_or(Role::Viewer)))
                },
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
