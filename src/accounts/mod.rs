//! Who may use the HTTP API and what they did through it: users (bcrypt hashes of their
//! passwords, their roles), their sessions (sha256 of their bearer tokens) and the audit trail
//! of the changes made through the API.
//!
//! A single copy keeps them in its job database ([`Store`]). Copies that elect a leader share
//! them in a Secret in their own namespace on the primary ([`SecretAccounts`]): each copy has
//! its own database, and a login, a user added through the leader or the trail of what was
//! done must still hold after a change of leader or the loss of a Pod's volume.

mod book;
mod secret;

pub use book::Book;
pub use secret::{SECRET_DATA_KEY, SECRET_NAME, SecretAccounts};

use crate::endpoint::cluster::Error as ClusterError;
use crate::retry::Transience;
use crate::store::{self, Store};
pub use crate::store::{AuditEntry, Role, User, UserDeletion};

/// The accounts could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The job database failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The Secret has not been read since this copy started (the primary unreachable).
    #[error("the API's accounts in Secret {secret} are not read yet")]
    NotLoaded {
        /// `namespace/name` of the Secret.
        secret: String,
    },
    /// The primary refused or did not answer.
    #[error("the API's accounts in Secret {secret}")]
    Cluster {
        /// `namespace/name` of the Secret.
        secret: String,
        /// The request that failed.
        #[source]
        source: ClusterError,
    },
    /// The Secret holds something that is not k8s-sync's accounts.
    #[error("the API's accounts in Secret {secret}: {SECRET_DATA_KEY} is not valid")]
    Invalid {
        /// `namespace/name` of the Secret.
        secret: String,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// Other copies changed the Secret at every attempt.
    #[error("the API's accounts in Secret {secret} kept changing during {attempts} attempts")]
    Contended {
        /// `namespace/name` of the Secret.
        secret: String,
        /// How many attempts were made.
        attempts: usize,
    },
}

impl Error {
    /// Whether the accounts may answer later (a 503 rather than a 500).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::NotLoaded { .. } | Error::Contended { .. } => true,
            Error::Cluster { source, .. } => {
                matches!(source.transience(), Transience::Transient { .. })
            }
            Error::Store(_) | Error::Invalid { .. } => false,
        }
    }
}

/// Users and sessions of the HTTP API, wherever they are kept.
pub trait Accounts: Send + Sync {
    /// Adds a user with a password hash and a role. Returns false when the name is taken.
    fn add_user(&self, name: &str, password_hash: &str, role: Role) -> Result<bool, Error>;
    /// Replaces a user's password hash and ends their sessions. Returns false for no such user.
    fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, Error>;
    /// Deletes a user and their sessions, unless they are the last administrator.
    fn delete_user(&self, name: &str) -> Result<UserDeletion, Error>;
    /// Ends every session of a user: `None` for no such user, else how many ended.
    fn revoke(&self, name: &str) -> Result<Option<usize>, Error>;
    /// Every user, by name.
    fn users(&self) -> Result<Vec<User>, Error>;
    /// A user's password hash, if the user exists.
    fn password_hash(&self, name: &str) -> Result<Option<String>, Error>;
    /// Opens a session: the sha256 (hex) of its token, its user and its expiry (unix
    /// seconds); sessions expired by `now` are forgotten.
    fn add_session(
        &self,
        token_sha256: &str,
        user: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), Error>;
    /// The user, and their role, of a session that has not expired by `now` (unix seconds).
    fn session_user(&self, token_sha256: &str, now: i64) -> Result<Option<(String, Role)>, Error>;
    /// Ends a session. Returns false when there was none.
    fn delete_session(&self, token_sha256: &str) -> Result<bool, Error>;
    /// Records a change made through the API (`id` and `at` are filled in).
    fn record_audit(&self, entry: AuditEntry) -> Result<(), Error>;
    /// The newest `limit` entries of the audit trail, newest first.
    fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>, Error>;
}

/// One copy's accounts, in its job database.
impl Accounts for Store {
    fn add_user(&self, name: &str, password_hash: &str, role: Role) -> Result<bool, Error> {
        Ok(Store::add_user(self, name, password_hash, role)?)
    }

    fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, Error> {
        Ok(Store::set_password(self, name, password_hash)?)
    }

    fn delete_user(&self, name: &str) -> Result<UserDeletion, Error> {
        Ok(Store::delete_user(self, name)?)
    }

    fn revoke(&self, name: &str) -> Result<Option<usize>, Error> {
        Ok(Store::revoke(self, name)?)
    }

    fn users(&self) -> Result<Vec<User>, Error> {
        Ok(Store::users(self)?)
    }

    fn password_hash(&self, name: &str) -> Result<Option<String>, Error> {
        Ok(Store::password_hash(self, name)?)
    }

    fn add_session(
        &self,
        token_sha256: &str,
        user: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), Error> {
        Store::delete_expired_sessions(self, now)?;
        Ok(Store::add_session(self, token_sha256, user, expires_at)?)
    }

    fn session_user(&self, token_sha256: &str, now: i64) -> Result<Option<(String, Role)>, Error> {
        Ok(Store::session_user(self, token_sha256, now)?)
    }

    fn delete_session(&self, token_sha256: &str) -> Result<bool, Error> {
        Ok(Store::delete_session(self, token_sha256)?)
    }

    fn record_audit(&self, entry: AuditEntry) -> Result<(), Error> {
        Ok(Store::record_audit(
            self,
            &entry.user,
            &entry.action,
            &entry.target,
            entry.remote.as_deref(),
            entry.status,
        )?)
    }

    fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>, Error> {
        Ok(Store::audit(self, limit)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What every kind of accounts must do, run against each.
    fn behaves_as_accounts(accounts: &dyn Accounts) {
        let user = |token: &str, now: i64| accounts.session_user(token, now).unwrap();
        assert!(
            accounts
                .add_user("ada", "$2b$04$hash", Role::Admin)
                .unwrap()
        );
        assert!(
            !accounts.add_user("ada", "other", Role::Viewer).unwrap(),
            "names are unique"
        );
        assert_eq!(
            accounts.password_hash("ada").unwrap().as_deref(),
            Some("$2b$04$hash")
        );
        assert_eq!(
            accounts.delete_user("ada").unwrap(),
            UserDeletion::LastAdmin
        );
        assert!(accounts.add_user("bob", "h", Role::Viewer).unwrap());
        assert_eq!(
            accounts.delete_user("ada").unwrap(),
            UserDeletion::LastAdmin,
            "a viewer cannot stand in for the last administrator"
        );
        accounts.add_session("t1", "ada", 100, 0).unwrap();
        assert_eq!(user("t1", 99), Some(("ada".into(), Role::Admin)));
        assert_eq!(user("t1", 100), None, "expired");
        assert!(accounts.set_password("ada", "new").unwrap());
        assert!(!accounts.set_password("nobody", "new").unwrap());
        assert_eq!(user("t1", 0), None, "a new password ends sessions");
        accounts.add_session("t2", "bob", 100, 0).unwrap();
        accounts.add_session("t3", "bob", 100, 0).unwrap();
        assert_eq!(user("t2", 0), Some(("bob".into(), Role::Viewer)));
        assert_eq!(accounts.revoke("bob").unwrap(), Some(2));
        assert_eq!(user("t3", 0), None, "revoked");
        assert_eq!(accounts.revoke("nobody").unwrap(), None);
        accounts.add_session("t4", "bob", 100, 0).unwrap();
        assert_eq!(accounts.delete_user("bob").unwrap(), UserDeletion::Deleted);
        assert_eq!(user("t4", 0), None, "sessions go with their user");
        assert_eq!(accounts.delete_user("bob").unwrap(), UserDeletion::NotFound);
        let users: Vec<_> = accounts
            .users()
            .unwrap()
            .into_iter()
            .map(|u| (u.name, u.role))
            .collect();
        assert_eq!(users, [("ada".to_string(), Role::Admin)]);
        accounts.add_session("t5", "ada", 5, 0).unwrap();
        accounts.add_session("t6", "ada", 50, 10).unwrap();
        assert!(
            !accounts.delete_session("t5").unwrap(),
            "expired sessions are forgotten at the next login"
        );
        assert!(accounts.delete_session("t6").unwrap());
        assert_eq!(user("t6", 0), None);

        let entry = |user: &str, status| AuditEntry {
            id: 0,
            at: String::new(),
            user: user.into(),
            action: "POST /api/users".into(),
            target: String::new(),
            remote: Some("127.0.0.1".into()),
            status,
        };
        accounts.record_audit(entry("ada", 201)).unwrap();
        accounts.record_audit(entry("bob", 403)).unwrap();
        let trail = accounts.audit(10).unwrap();
        let seen: Vec<(&str, u16)> = trail.iter().map(|e| (e.user.as_str(), e.status)).collect();
        assert_eq!(seen, [("bob", 403), ("ada", 201)], "newest first");
        assert!(trail[0].id > trail[1].id && !trail[0].at.is_empty());
        assert_eq!(accounts.audit(1).unwrap().len(), 1);
    }

    #[test]
    fn the_job_database_keeps_accounts() {
        behaves_as_accounts(&Store::in_memory().unwrap());
    }

    /// A book in memory, as the shared Secret holds it.
    struct InMemory(std::sync::Mutex<Book>);

    impl Accounts for InMemory {
        fn add_user(&self, name: &str, hash: &str, role: Role) -> Result<bool, Error> {
            Ok(self.0.lock().unwrap().add_user(name, hash, role))
        }
        fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, Error> {
            Ok(self.0.lock().unwrap().set_password(name, password_hash))
        }
        fn delete_user(&self, name: &str) -> Result<UserDeletion, Error> {
            Ok(self.0.lock().unwrap().delete_user(name))
        }
        fn revoke(&self, name: &str) -> Result<Option<usize>, Error> {
            Ok(self.0.lock().unwrap().revoke(name))
        }
        fn users(&self) -> Result<Vec<User>, Error> {
            Ok(self.0.lock().unwrap().users())
        }
        fn password_hash(&self, name: &str) -> Result<Option<String>, Error> {
            let book = self.0.lock().unwrap();
            Ok(book.users.get(name).map(|a| a.password_hash.clone()))
        }
        fn add_session(
            &self,
            token: &str,
            user: &str,
            expires: i64,
            now: i64,
        ) -> Result<(), Error> {
            self.0
                .lock()
                .unwrap()
                .add_session(token, user, expires, now);
            Ok(())
        }
        fn session_user(&self, token: &str, now: i64) -> Result<Option<(String, Role)>, Error> {
            Ok(self.0.lock().unwrap().session_user(token, now))
        }
        fn delete_session(&self, token: &str) -> Result<bool, Error> {
            Ok(self.0.lock().unwrap().delete_session(token))
        }
        fn record_audit(&self, entry: AuditEntry) -> Result<(), Error> {
            self.0.lock().unwrap().record_audit(entry);
            Ok(())
        }
        fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>, Error> {
            Ok(self.0.lock().unwrap().audit(limit))
        }
    }

    #[test]
    fn a_book_keeps_accounts_as_the_job_database_does() {
        behaves_as_accounts(&InMemory(Default::default()));
    }
}
