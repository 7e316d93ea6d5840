//! The accounts shared by copies that elect a leader: one Secret in their namespace on the
//! primary, changed with optimistic concurrency (a write carries the resourceVersion it
//! read; a conflict reads again) and watched by every copy, so that reads — a token checked
//! on every request — never wait on the primary.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use futures::StreamExt as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Accounts, AuditEntry, Book, Error, Role, User, UserDeletion};
use crate::endpoint::cluster::Error as ClusterError;
use crate::retry::RetryPolicy;

/// The Secret's name, in the namespace of the election's Lease. Shards share it: one set of
/// users for every Deployment of a fleet.
pub const SECRET_NAME: &str = "k8s-sync-accounts";

/// The Secret's key holding the [`Book`] as JSON.
pub const SECRET_DATA_KEY: &str = "accounts.json";

/// How many times a change is tried while other copies change the Secret too.
const ATTEMPTS: usize = 8;

/// Accounts in a Secret on the primary, with this copy's view of it.
pub struct SecretAccounts {
    secrets: Api<Secret>,
    id: String,
    /// The Secret's uid and book as last seen; `None` until first read.
    seen: RwLock<Option<(Option<String>, Book)>>,
    loaded: tokio::sync::watch::Sender<bool>,
    runtime: tokio::runtime::Handle,
}

impl SecretAccounts {
    /// Accounts in [`SECRET_NAME`] in `namespace`; changes block on `runtime`, from threads
    /// that are not its own (the HTTP workers).
    pub fn new(client: kube::Client, namespace: &str, runtime: tokio::runtime::Handle) -> Self {
        SecretAccounts {
            secrets: Api::namespaced(client, namespace),
            id: format!("{namespace}/{SECRET_NAME}"),
            seen: RwLock::new(None),
            loaded: tokio::sync::watch::Sender::new(false),
            runtime,
        }
    }

    /// `namespace/name` of the Secret.
    pub fn secret(&self) -> &str {
        &self.id
    }

    /// Waits until the Secret (or its absence) has been read once.
    pub async fn loaded(&self) {
        let mut loaded = self.loaded.subscribe();
        let _ = loaded.wait_for(|l| *l).await;
    }

    /// Keeps this copy's view current from a watch of the Secret, until `shutdown`; a failed
    /// watch is started again, the last view kept meanwhile.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let config = watcher::Config::default().fields(&format!("metadata.name={SECRET_NAME}"));
        let mut failures = 0;
        loop {
            let events = watcher(self.secrets.clone(), config.clone());
            futures::pin_mut!(events);
            let mut listed = false;
            let error = loop {
                let event = tokio::select! {
                    event = events.next() => event,
                    () = shutdown.cancelled() => return,
                };
                match event {
                    None => break "the watch stream ended".to_string(),
                    Some(Err(error)) => break error.to_string(),
                    Some(Ok(watcher::Event::Init)) => listed = false,
                    Some(Ok(watcher::Event::InitApply(secret) | watcher::Event::Apply(secret))) => {
                        listed = true;
                        self.saw(&secret);
                    }
                    Some(Ok(watcher::Event::InitDone)) => {
                        if !listed {
                            self.reset();
                        }
                        if failures > 0 {
                            info!(secret = %self.id, "the API's accounts are read again");
                        }
                        failures = 0;
                        self.loaded.send_replace(true);
                    }
                    Some(Ok(watcher::Event::Delete(_))) => self.reset(),
                }
            };
            if failures == 0 {
                warn!(secret = %self.id, "watching the API's accounts: {error}; the last view is kept");
            }
            failures += 1;
            let pause = RetryPolicy::WATCH_RESTART.delay(failures, None);
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Takes a watched version of the Secret into the view, unless it is older than the view.
    fn saw(&self, secret: &Secret) {
        match self.parse(secret) {
            Ok(book) => self.remember(secret.metadata.uid.clone(), book),
            Err(error) => warn!("{}", crate::error_chain(&error)),
        }
    }

    /// The Secret is gone (or never was): no users.
    fn reset(&self) {
        *self.seen.write().unwrap_or_else(|e| e.into_inner()) = Some((None, Book::default()));
    }

    fn remember(&self, uid: Option<String>, book: Book) {
        let mut seen = self.seen.write().unwrap_or_else(|e| e.into_inner());
        let newer = match &*seen {
            // Another uid: the Secret was deleted and made again, its revisions start over.
            Some((seen_uid, seen_book)) => *seen_uid != uid || book.revision >= seen_book.revision,
            None => true,
        };
        if newer {
            *seen = Some((uid, book));
        }
    }

    fn parse(&self, secret: &Secret) -> Result<Book, Error> {
        let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(SECRET_DATA_KEY)) else {
            return Ok(Book::default());
        };
        serde_json::from_slice(&bytes.0).map_err(|source| Error::Invalid {
            secret: self.id.clone(),
            source,
        })
    }

    fn read<R>(&self, question: impl FnOnce(&Book) -> R) -> Result<R, Error> {
        let seen = self.seen.read().unwrap_or_else(|e| e.into_inner());
        match &*seen {
            Some((_, book)) => Ok(question(book)),
            None => Err(Error::NotLoaded {
                secret: self.id.clone(),
            }),
        }
    }

    fn cluster_error(&self, verb: &str, error: kube::Error) -> Error {
        Error::Cluster {
            secret: self.id.clone(),
            source: ClusterError::from_kube(format!("{verb} secret {}", self.id), error),
        }
    }

    /// Applies `edit` to the Secret's current book and writes it back, read again and
    /// retried when another copy wrote in between; nothing is written when `edit` changes
    /// nothing.
    async fn change<R>(&self, edit: impl Fn(&mut Book) -> R) -> Result<R, Error> {
        for _ in 0..ATTEMPTS {
            let current = self
                .secrets
                .get_opt(SECRET_NAME)
                .await
                .map_err(|e| self.cluster_error("get", e))?;
            let before = match &current {
                Some(secret) => self.parse(secret)?,
                None => Book::default(),
            };
            let mut book = before.clone();
            let answer = edit(&mut book);
            if book == before {
                return Ok(answer);
            }
            book.revision = before.revision + 1;
            let json = serde_json::to_vec(&book).expect("a book serializes");
            let written = match current {
                Some(mut secret) => {
                    secret
                        .data
                        .get_or_insert_with(BTreeMap::new)
                        .insert(SECRET_DATA_KEY.into(), ByteString(json));
                    self.secrets
                        .replace(SECRET_NAME, &PostParams::default(), &secret)
                        .await
                }
                None => {
                    let secret = Secret {
                        metadata: ObjectMeta {
                            name: Some(SECRET_NAME.into()),
                            labels: Some(BTreeMap::from([(
                                "app.kubernetes.io/managed-by".to_string(),
                                "k8s-sync".to_string(),
                            )])),
                            ..ObjectMeta::default()
                        },
                        data: Some(BTreeMap::from([(
                            SECRET_DATA_KEY.to_string(),
                            ByteString(json),
                        )])),
                        ..Secret::default()
                    };
                    self.secrets.create(&PostParams::default(), &secret).await
                }
            };
            match written {
                Ok(secret) => {
                    self.remember(secret.metadata.uid, book);
                    return Ok(answer);
                }
                // Changed (409 Conflict) or made (409 AlreadyExists) by another copy.
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(error) => return Err(self.cluster_error("write", error)),
            }
        }
        Err(Error::Contended {
            secret: self.id.clone(),
            attempts: ATTEMPTS,
        })
    }

    fn write<R>(&self, edit: impl Fn(&mut Book) -> R) -> Result<R, Error> {
        self.runtime.block_on(self.change(edit))
    }
}

impl Accounts for SecretAccounts {
    fn add_user(&self, name: &str, password_hash: &str, role: Role) -> Result<bool, Error> {
        self.write(|book| book.add_user(name, password_hash, role))
    }

    fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, Error> {
        self.write(|book| book.set_password(name, password_hash))
    }

    fn delete_user(&self, name: &str) -> Result<UserDeletion, Error> {
        self.write(|book| book.delete_user(name))
    }

    fn revoke(&self, name: &str) -> Result<Option<usize>, Error> {
        self.write(|book| book.revoke(name))
    }

    fn users(&self) -> Result<Vec<User>, Error> {
        self.read(Book::users)
    }

    fn password_hash(&self, name: &str) -> Result<Option<String>, Error> {
        self.read(|book| book.users.get(name).map(|a| a.password_hash.clone()))
    }

    fn add_session(
        &self,
        token_sha256: &str,
        user: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), Error> {
        self.write(|book| book.add_session(token_sha256, user, expires_at, now))
    }

    fn session_user(&self, token_sha256: &str, now: i64) -> Result<Option<(String, Role)>, Error> {
        self.read(|book| book.session_user(token_sha256, now))
    }

    fn delete_session(&self, token_sha256: &str) -> Result<bool, Error> {
        self.write(|book| book.delete_session(token_sha256))
    }

    fn record_audit(&self, entry: AuditEntry) -> Result<(), Error> {
        self.write(|book| book.record_audit(entry.clone()))
    }

    fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>, Error> {
        self.read(|book| book.audit(limit))
    }
}
