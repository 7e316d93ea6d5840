//! Users, passwords and bearer tokens: the password policy, bcrypt hashing, random tokens stored
//! only as their sha256, and the throttle on failed logins.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::accounts::{self, Accounts};

/// The environment variable that sets the bcrypt cost of new password hashes (default 12).
/// Only tests should lower it.
pub const COST_VAR: &str = "K8S_SYNC_BCRYPT_COST";
/// The environment variable `serve` reads to create the user `admin` when there is no user.
pub const ADMIN_PASSWORD_VAR: &str = "K8S_SYNC_ADMIN_PASSWORD";
/// The bcrypt cost used unless [`COST_VAR`] says otherwise.
pub const DEFAULT_COST: u32 = 12;
/// The shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The longest password accepted, in bytes: bcrypt ignores what follows.
pub const MAX_PASSWORD_BYTES: usize = 72;
/// Failed logins allowed per user name and client address within [`THROTTLE_WINDOW`].
pub const THROTTLE_LIMIT: usize = 5;
/// The window of the login throttle.
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The bcrypt cost from [`COST_VAR`], clamped to what bcrypt accepts (4 to 31).
pub fn bcrypt_cost() -> Result<u32, String> {
    cost_from(std::env::var(COST_VAR).ok().as_deref())
}

fn cost_from(value: Option<&str>) -> Result<u32, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(DEFAULT_COST),
        Some(text) => text
            .parse::<u32>()
            .map(|cost| cost.clamp(4, 31))
            .map_err(|_| format!("{COST_VAR}={text:?} is not a number (bcrypt cost, 4 to 31)")),
    }
}

/// Checks a user name: 1 to 63 of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn check_username(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if first_ok && rest_ok && name.len() <= 63 {
        Ok(())
    } else {
        Err(format!(
            "invalid user name {name:?}: 1 to 63 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
        ))
    }
}

/// Checks a new password: at least [`MIN_PASSWORD_CHARS`] characters, at most
/// [`MAX_PASSWORD_BYTES`] bytes.
pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "the password must have at most {MAX_PASSWORD_BYTES} bytes"
        ));
    }
    Ok(())
}

/// Hashes a password with bcrypt at `cost`.
pub fn hash_password(password: &str, cost: u32) -> Result<String, bcrypt::BcryptError> {
    bcrypt::non_truncating_hash(password, cost)
}

/// A new bearer token: 256 random bits, hex.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// What the database keeps of a token: the hex sha256 of its text.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whose failed logins are counted together: a user name and a client address.
type ThrottleKey = (String, Option<IpAddr>);

/// What [`create_first_user`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstUser {
    /// There were users already.
    Existing,
    /// `admin` was created from [`ADMIN_PASSWORD_VAR`].
    Created,
    /// No user, and no password to create one with.
    Missing,
}

/// The first user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum FirstUserError {
    /// The password in the environment is refused.
    #[error("{ADMIN_PASSWORD_VAR}: {0}")]
    Password(String),
    /// bcrypt failed.
    #[error("hashing the admin password: {0}")]
    Hash(#[from] bcrypt::BcryptError),
    /// The accounts could not be read or changed.
    #[error(transparent)]
    Accounts(#[from] accounts::Error),
}

/// With no user yet, creates `admin` with the password in [`ADMIN_PASSWORD_VAR`] when it is
/// set, and logs what it did (never the password).
pub fn create_first_user(accounts: &dyn Accounts, cost: u32) -> Result<FirstUser, FirstUserError> {
    if !accounts.users()?.is_empty() {
        return Ok(FirstUser::Existing);
    }
    let password = std::env::var(ADMIN_PASSWORD_VAR).unwrap_or_default();
    if password.is_empty() {
        tracing::warn!(
            "no API user yet: set {ADMIN_PASSWORD_VAR}, or add one with `k8s-sync users add \
             NAME --password-stdin` to a copy's own database (until then every /api route but \
             login answers 401)"
        );
        return Ok(FirstUser::Missing);
    }
    check_password(&password).map_err(FirstUserError::Password)?;
    if !accounts.add_user(
        "admin",
        &hash_password(&password, cost)?,
        accounts::Role::Admin,
    )? {
        // Another copy sharing the accounts made it first, from the same Secret.
        return Ok(FirstUser::Existing);
    }
    tracing::info!("created user admin from {ADMIN_PASSWORD_VAR}");
    Ok(FirstUser::Created)
}

/// Counts failed logins per (user name, client address) and says when to refuse more.
pub struct Throttle {
    failures: Mutex<HashMap<ThrottleKey, Vec<Instant>>>,
    limit: usize,
    window: Duration,
    capacity: usize,
}

impl Throttle {
    /// A throttle allowing `limit` failures per key within `window`.
    pub fn new(limit: usize, window: Duration) -> Self {
        Throttle {
            failures: Mutex::default(),
            limit,
            window,
            capacity: 10_000,
        }
    }

    fn key(user: &str, client: Option<IpAddr>) -> ThrottleKey {
        // Bounded, whatever the client sends.
        let mut end = user.len().min(64);
        while !user.is_char_boundary(end) {
            end -= 1;
        }
        (user[..end].to_string(), client)
    }

    /// `Err(wait)` when the key had `limit` failures within the window; `wait` is how long
    /// until the oldest of them leaves it.
    pub fn check(&self, user: &str, client: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let Some(times) = failures.get(&Self::key(user, client)) else {
            return Ok(());
        };
        let recent: Vec<&Instant> = times
            .iter()
            .filter(|t| now.duration_since(**t) < self.window)
            .collect();
        if recent.len() < self.limit {
            return Ok(());
        }
        let oldest = recent.into_iter().min().expect("at least `limit` entries");
        Err(self.window.saturating_sub(now.duration_since(*oldest)))
    }

    /// Records a failure.
    pub fn fail(&self, user: &str, client: Option<IpAddr>, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let window = self.window;
        if failures.len() >= self.capacity {
            failures.retain(|_, times| {
                times.retain(|t| now.duration_since(*t) < window);
                !times.is_empty()
            });
            if failures.len() >= self.capacity {
                // Still full of recent failures: forget the key whose last failure is oldest.
                let stalest = failures
                    .iter()
                    .min_by_key(|(_, times)| times.last().copied())
                    .map(|(key, _)| key.clone());
                if let Some(key) = stalest {
                    failures.remove(&key);
                }
            }
        }
        let times = failures.entry(Self::key(user, client)).or_default();
        times.retain(|t| now.duration_since(*t) < window);
        times.push(now);
    }

    /// Forgets a key's failures (after a successful login).
    pub fn clear(&self, user: &str, client: Option<IpAddr>) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&Self::key(user, client));
    }
}

/// A login that was refused.
#[derive(Debug)]
pub enum LoginError {
    /// Wrong user name or password (the same answer for both).
    Invalid,
    /// Too many failures lately for this user name and address; retry after.
    Throttled(Duration),
    /// Too many logins being checked at once; retry in a moment.
    Busy,
    /// The accounts could not be read or changed.
    Accounts(accounts::Error),
    /// No random token could be made.
    Random(getrandom::Error),
}

impl From<accounts::Error> for LoginError {
    fn from(error: accounts::Error) -> Self {
        LoginError::Accounts(error)
    }
}

/// A session granted by a login.
#[derive(Debug, Clone)]
pub struct Session {
    /// The bearer token, given to the client once and stored only as its digest.
    pub token: String,
    /// When it expires (unix seconds).
    pub expires_at: i64,
}

/// The caller of an authenticated request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Their user name.
    pub user: String,
    /// What they may do.
    pub role: accounts::Role,
    /// The digest of the token they sent.
    pub token_digest: String,
}

/// Checks passwords and tokens.
pub struct Authenticator {
    cost: u32,
    token_ttl: Duration,
    dummy_hash: String,
    throttle: Throttle,
    verifying: AtomicUsize,
    max_verifying: usize,
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl Authenticator {
    /// An authenticator hashing at `cost` and granting tokens valid for `token_ttl`.
    pub fn new(cost: u32, token_ttl: Duration) -> Result<Self, bcrypt::BcryptError> {
        // Logins for unknown users are checked against this hash, so that they take as long as
        // logins for known users and do not tell which names exist.
        let dummy_hash = hash_password("no user has this password", cost)?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Authenticator {
            cost,
            token_ttl,
            dummy_hash,
            throttle: Throttle::new(THROTTLE_LIMIT, THROTTLE_WINDOW),
            verifying: AtomicUsize::new(0),
            max_verifying: cores.clamp(1, 4),
        })
    }

    /// The bcrypt cost of new hashes.
    pub fn cost(&self) -> u32 {
        self.cost
    }

    /// Checks a user name and password and opens a session.
    pub fn login(
        &self,
        accounts: &dyn Accounts,
        user: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Session, LoginError> {
        let now = Instant::now();
        self.throttle
            .check(user, client, now)
            .map_err(LoginError::Throttled)?;
        // bcrypt takes the better part of a second of CPU: a burst of logins must not take
        // every HTTP worker.
        let _permit = self.permit().ok_or(LoginError::Busy)?;
        let stored = accounts.password_hash(user)?;
        let hash = stored.as_deref().unwrap_or(&self.dummy_hash);
        let matches = bcrypt::non_truncating_verify(password, hash).unwrap_or(false);
        if !(matches && stored.is_some()) {
            self.throttle.fail(user, client, now);
            return Err(LoginError::Invalid);
        }
        self.throttle.clear(user, client);
        let token = new_token().map_err(LoginError::Random)?;
        let ttl = i64::try_from(self.token_ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let ttl = if self.token_ttl.subsec_nanos() > 0 {
            ttl + 1
        } else {
            ttl.max(1)
        };
        let now = unix_now();
        let expires_at = now.saturating_add(ttl);
        accounts.add_session(&token_digest(&token), user, expires_at, now)?;
        Ok(Session { token, expires_at })
    }

    /// The caller named by an `Authorization: Bearer TOKEN` header, if its session is valid.
    pub fn authenticate(
        &self,
        accounts: &dyn Accounts,
        authorization: Option<&str>,
    ) -> Result<Option<Caller>, accounts::Error> {
        let Some(token) = authorization.and_then(bearer_token) else {
            return Ok(None);
        };
        let digest = token_digest(token);
        Ok(accounts
            .session_user(&digest, unix_now())?
            .map(|(user, role)| Caller {
                user,
                role,
                token_digest: digest,
            }))
    }

    fn permit(&self) -> Option<Permit<'_>> {
        let previous = self.verifying.fetch_add(1, Ordering::SeqCst);
        let permit = Permit(&self.verifying);
        (previous < self.max_verifying).then_some(permit)
    }
}

/// One of the bounded number of password checks in progress.
struct Permit<'a>(&'a AtomicUsize);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The token of an `Authorization: Bearer TOKEN` header.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn reads_the_cost_and_clamps_it() {
        assert_eq!(cost_from(None), Ok(12));
        assert_eq!(cost_from(Some("")), Ok(12));
        assert_eq!(cost_from(Some("4")), Ok(4));
        assert_eq!(cost_from(Some("1")), Ok(4));
        assert_eq!(cost_from(Some("99")), Ok(31));
        assert!(cost_from(Some("fast")).unwrap_err().contains(COST_VAR));
    }

    #[test]
    fn checks_names_and_passwords() {
        for good in ["ada", "a", "0ps", "ada.lovelace_1-x", &"a".repeat(63)] {
            assert_eq!(check_username(good), Ok(()), "{good}");
        }
        for bad in ["", "Ada", "-ada", ".a", "a b", "a/b", "é", &"a".repeat(64)] {
            assert!(check_username(bad).is_err(), "{bad:?}");
        }
        assert!(check_password("short-pass1").is_err(), "11 characters");
        assert_eq!(check_password("long-enough1"), Ok(()));
        assert_eq!(
            check_password("ééééééééééé1"),
            Ok(()),
            "characters, not bytes"
        );
        assert!(
            check_password(&"x".repeat(73)).is_err(),
            "bcrypt ignores byte 73 on"
        );
    }

    #[test]
    fn tokens_are_random_and_stored_as_digests() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!(a.len(), 64, "256 bits in hex");
        assert_ne!(a, b);
        assert_eq!(token_digest(&a).len(), 64);
        assert_ne!(token_digest(&a), a);
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }

    #[test]
    fn throttles_per_user_and_address_within_the_window() {
        let throttle = Throttle::new(5, Duration::from_secs(900));
        let ip: Option<IpAddr> = Some([127, 0, 0, 1].into());
        let other: Option<IpAddr> = Some([10, 0, 0, 1].into());
        let start = Instant::now();
        for i in 0..5 {
            assert!(throttle.check("ada", ip, start).is_ok());
            throttle.fail("ada", ip, start + Duration::from_secs(i));
        }
        let now = start + Duration::from_secs(10);
        let wait = throttle.check("ada", ip, now).unwrap_err();
        assert_eq!(
            wait,
            Duration::from_secs(890),
            "until the first failure ages out"
        );
        assert!(throttle.check("ada", other, now).is_ok(), "per address");
        assert!(throttle.check("bob", ip, now).is_ok(), "per user");
        assert!(
            throttle
                .check("ada", ip, start + Duration::from_secs(901))
                .is_ok(),
            "the window slides"
        );
        throttle.clear("ada", ip);
        assert!(throttle.check("ada", ip, now).is_ok());
    }

    #[test]
    fn the_throttle_stays_bounded() {
        let mut throttle = Throttle::new(5, Duration::from_secs(900));
        throttle.capacity = 3;
        let now = Instant::now();
        for user in ["a", "b", "c", "d", "e"] {
            throttle.fail(user, None, now);
        }
        assert_eq!(throttle.failures.lock().unwrap().len(), 3);
    }

    #[test]
    fn bounds_the_password_checks_in_progress() {
        let store = Store::in_memory().unwrap();
        let mut auth = Authenticator::new(4, Duration::from_secs(60)).unwrap();
        auth.max_verifying = 1;
        let held = auth.permit().unwrap();
        assert!(matches!(
            auth.login(&store, "ada", "whatever password", None),
            Err(LoginError::Busy)
        ));
        drop(held);
        assert!(matches!(
            auth.login(&store, "ada", "whatever password", None),
            Err(LoginError::Invalid)
        ));
        assert_eq!(
            auth.verifying.load(Ordering::SeqCst),
            0,
            "permits are returned"
        );
    }

    #[test]
    fn logs_in_and_refuses_alike_for_unknown_users() {
        let store = Store::in_memory().unwrap();
        let auth = Authenticator::new(4, Duration::from_secs(60)).unwrap();
        store
            .add_user(
                "ada",
                &hash_password("correct horse battery", 4).unwrap(),
                crate::store::Role::Admin,
            )
            .unwrap();
        let session = auth
            .login(&store, "ada", "correct horse battery", None)
            .unwrap();
        let caller = auth
            .authenticate(&store, Some(&format!("Bearer {}", session.token)))
            .unwrap()
            .unwrap();
        assert_eq!(caller.user, "ada");
        assert!(matches!(
            auth.login(&store, "ada", "wrong password!", None),
            Err(LoginError::Invalid)
        ));
        assert!(matches!(
            auth.login(&store, "nobody", "no user has this password", None),
            Err(LoginError::Invalid)
        ));
        assert!(
            auth.authenticate(&store, Some("Bearer nope"))
                .unwrap()
                .is_none()
        );
        assert!(auth.authenticate(&store, None).unwrap().is_none());
    }
}
