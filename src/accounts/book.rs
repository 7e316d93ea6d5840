//! The accounts as one document, as the shared Secret holds them: the same rules as the job
//! database's tables, on plain maps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{AuditEntry, Role, User, UserDeletion};

/// How many live sessions one user may have in a [`Book`]: a Secret holds at most 1 MiB, and
/// a script logging in in a loop must not fill it. The sessions closest to expiry go first.
pub const MAX_SESSIONS_PER_USER: usize = 64;

/// How many entries of the audit trail a [`Book`] keeps, the oldest dropped first: a Secret
/// holds at most 1 MiB. Each copy's job database keeps its own whole trail too.
pub const MAX_AUDIT_ENTRIES: usize = 1000;

/// Every user and session, and the newest of the audit trail, as one document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Book {
    /// Raised by every change, so that a copy never goes back to an older book than one it
    /// has seen (its own write may overtake the watch event of an earlier one).
    #[serde(default)]
    pub revision: u64,
    /// Users by name.
    #[serde(default)]
    pub users: BTreeMap<String, Account>,
    /// Sessions by the sha256 (hex) of their token.
    #[serde(default)]
    pub sessions: BTreeMap<String, SessionEntry>,
    /// The newest entries of the audit trail, oldest first.
    #[serde(default)]
    pub audit: Vec<AuditEntry>,
}

/// A user in a [`Book`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The bcrypt hash of the password.
    pub password_hash: String,
    /// What the user may do (books written before roles: every user an administrator).
    #[serde(default)]
    pub role: Role,
    /// When the user was added (RFC 3339).
    pub created_at: String,
}

/// A session in a [`Book`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEntry {
    /// Whose session it is.
    pub user: String,
    /// When it expires (unix seconds).
    pub expires_at: i64,
}

impl Book {
    /// Adds a user; false when the name is taken.
    pub fn add_user(&mut self, name: &str, password_hash: &str, role: Role) -> bool {
        if self.users.contains_key(name) {
            return false;
        }
        self.users.insert(
            name.to_string(),
            Account {
                password_hash: password_hash.to_string(),
                role,
                created_at: jiff::Timestamp::now().to_string(),
            },
        );
        true
    }

    /// Replaces a password hash and ends the user's sessions; false for no such user.
    pub fn set_password(&mut self, name: &str, password_hash: &str) -> bool {
        let Some(account) = self.users.get_mut(name) else {
            return false;
        };
        account.password_hash = password_hash.to_string();
        self.sessions.retain(|_, s| s.user != name);
        true
    }

    /// Deletes a user and their sessions, unless they are the last administrator.
    pub fn delete_user(&mut self, name: &str) -> UserDeletion {
        let Some(account) = self.users.get(name) else {
            return UserDeletion::NotFound;
        };
        let other_admins = self
            .users
            .iter()
            .filter(|(n, a)| *n != name && a.role == Role::Admin)
            .count();
        if account.role == Role::Admin && other_admins == 0 {
            return UserDeletion::LastAdmin;
        }
        self.users.remove(name);
        self.sessions.retain(|_, s| s.user != name);
        UserDeletion::Deleted
    }

    /// Ends every session of a user: `None` for no such user, else how many ended.
    pub fn revoke(&mut self, name: &str) -> Option<usize> {
        self.users.get(name)?;
        let before = self.sessions.len();
        self.sessions.retain(|_, s| s.user != name);
        Some(before - self.sessions.len())
    }

    /// Every user, by name.
    pub fn users(&self) -> Vec<User> {
        self.users
            .iter()
            .map(|(name, account)| User {
                name: name.clone(),
                role: account.role,
                created_at: account.created_at.clone(),
            })
            .collect()
    }

    /// Opens a session, forgetting those expired by `now` and the user's oldest beyond
    /// [`MAX_SESSIONS_PER_USER`].
    pub fn add_session(&mut self, token_sha256: &str, user: &str, expires_at: i64, now: i64) {
        self.sessions.retain(|_, s| s.expires_at > now);
        let mut own: Vec<(i64, String)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.user == user)
            .map(|(digest, s)| (s.expires_at, digest.clone()))
            .collect();
        own.sort();
        let excess = (own.len() + 1).saturating_sub(MAX_SESSIONS_PER_USER);
        for (_, digest) in own.into_iter().take(excess) {
            self.sessions.remove(&digest);
        }
        self.sessions.insert(
            token_sha256.to_string(),
            SessionEntry {
                user: user.to_string(),
                expires_at,
            },
        );
    }

    /// The user, and their role, of a session that has not expired by `now`.
    pub fn session_user(&self, token_sha256: &str, now: i64) -> Option<(String, Role)> {
        let session = self
            .sessions
            .get(token_sha256)
            .filter(|s| s.expires_at > now)?;
        let account = self.users.get(&session.user)?;
        Some((session.user.clone(), account.role))
    }

    /// Ends a session; false when there was none.
    pub fn delete_session(&mut self, token_sha256: &str) -> bool {
        self.sessions.remove(token_sha256).is_some()
    }

    /// Records a change, numbered after the last one, keeping the newest
    /// [`MAX_AUDIT_ENTRIES`].
    pub fn record_audit(&mut self, mut entry: AuditEntry) {
        entry.id = self.audit.last().map_or(1, |e| e.id + 1);
        entry.at = jiff::Timestamp::now().to_string();
        self.audit.push(entry);
        let excess = self.audit.len().saturating_sub(MAX_AUDIT_ENTRIES);
        self.audit.drain(..excess);
    }

    /// The newest `limit` entries, newest first.
    pub fn audit(&self, limit: u32) -> Vec<AuditEntry> {
        self.audit
            .iter()
            .rev()
            .take(limit as usize)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_keeps_at_most_the_newest_sessions() {
        let mut book = Book::default();
        book.add_user("ada", "h", Role::Admin);
        for n in 0..MAX_SESSIONS_PER_USER + 3 {
            book.add_session(&format!("t{n}"), "ada", 1000 + n as i64, 0);
        }
        assert_eq!(book.sessions.len(), MAX_SESSIONS_PER_USER);
        assert_eq!(book.session_user("t0", 0), None, "the oldest went first");
        let newest = format!("t{}", MAX_SESSIONS_PER_USER + 2);
        assert_eq!(
            book.session_user(&newest, 0),
            Some(("ada".to_string(), Role::Admin))
        );
    }

    #[test]
    fn reads_a_book_written_without_some_fields() {
        let book: Book = serde_json::from_str(r#"{"users": {}}"#).unwrap();
        assert_eq!(book, Book::default());
        let before_roles = r#"{"users": {"ada": {"password_hash": "h", "created_at": "t"}}}"#;
        let book: Book = serde_json::from_str(before_roles).unwrap();
        assert_eq!(
            book.users["ada"].role,
            Role::Admin,
            "users before roles are admins"
        );
    }
}
