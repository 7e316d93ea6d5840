//! Users and sessions of the HTTP API: bcrypt hashes of passwords, sha256 of bearer tokens.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Error, Store, now};

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
}
