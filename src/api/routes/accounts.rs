//! The routes of sessions, users and the audit trail.

use serde::Deserialize;
use serde_json::json;

use super::Call;
use crate::api::Api;
use crate::api::auth::{self, LoginError};
use crate::api::http::{Failure, Reply};
use crate::store::{Role, UserDeletion};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: String,
}

/// A new user: credentials and a role (default viewer: the least a user may do).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    username: String,
    password: String,
    #[serde(default = "viewer")]
    role: Role,
}

fn viewer() -> Role {
    Role::Viewer
}

pub(super) fn login(api: &Api, call: &mut Call<'_, '_>) -> Result<Reply, Failure> {
    let credentials: Credentials = call.request.json()?;
    call.subject = Some(credentials.username.clone());
    let remote = call.request.remote;
    match api.auth.login(
        api.accounts.as_ref(),
        &credentials.username,
        &credentials.password,
        remote,
    ) {
        Ok(session) => {
            let expires_at = jiff::Timestamp::from_second(session.expires_at)
                .map(|t| t.to_string())
                .unwrap_or_default();
            let role = api
                .accounts
                .session_user(&auth::token_digest(&session.token), auth::unix_now())?
                .map_or(Role::Viewer, |(_, role)| role);
            Ok(Reply::json(
                200,
                &json!({"token": session.token, "expires_at": expires_at,
                        "user": credentials.username, "role": role}),
            ))
        }
        Err(LoginError::Invalid) => Err(Failure::new(401, "invalid user name or password")),
        Err(LoginError::Throttled(wait)) => {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            Err(Failure::new(429, "too many failed logins; try again later")
                .with_header("Retry-After", seconds.max(1).to_string()))
        }
        Err(LoginError::Busy) => Err(Failure::new(
            503,
            "too many logins being checked; try again in a moment",
        )
        .with_header("Retry-After", "1")),
        Err(LoginError::Accounts(e)) => Err(e.into()),
        Err(LoginError::Random(e)) => Err(Failure::new(500, format!("no random token: {e}"))),
    }
}

pub(super) fn logout(api: &Api, call: &mut Call<'_, '_>) -> Result<Reply, Failure> {
    let caller = call.caller.as_ref().expect("an authenticated route");
    api.accounts.delete_session(&caller.token_digest)?;
    Ok(Reply::empty(204))
}

pub(super) fn list_users(api: &Api, _: &mut Call<'_, '_>) -> Result<Reply, Failure> {
    Ok(Reply::json(200, &json!({"users": api.accounts.users()?})))
}

pub(super) fn add_user(api: &Api, call: &mut Call<'_, '_>) -> Result<Reply, Failure> {
    let credentials: NewUser = call.request.json()?;
    auth::check_username(&credentials.username).map_err(|e| Failure::new(400, e))?;
    auth::check_password(&credentials.password).map_err(|e| Failure::new(400, e))?;
    let hash = auth::hash_password(&credentials.password, api.auth.cost())
        .map_err(|e| Failure::new(500, format!("hashing the password: {e}")))?;
    if !api
        .accounts
        .add_user(&credentials.username, &hash, credentials.role)?
    {
        return Err(Failure::new(
            409,
            format!("user {} already exists", credentials.username),
        ));
    }
    let user = api
        .accounts
        .users()?
        .into_iter()
        .find(|u| u.name == credentials.username);
    Ok(Reply::json(201, &user))
}

pub(super) fn delete_user(api: &Api, call: &mut Call<'_, '_>) -> Result<Reply, Failure> {
    let name = &call.params[0];
    match api.accounts.delete_user(name)? {
        UserDeletion::Deleted => Ok(Reply::empty(204)),
        UserDeletion::NotFound => Err(Failure::new(404, format!("user {name}: no such user"))),
        UserDeletion::LastAdmin => Err(Failure::new(
            409,
            format!("user {name} is the last admin: add another admin before deleting it"),
        )),
    }
}

pub(super) fn revoke(api: &Api, call: &mut Call<'_, '_>) -> Result<Reply, Failure> {
    let name = &call.params[0];
    match api.accounts.revoke(name)? {
        Some(ended) => Ok(Reply::json(
            200,
            &json!({"user": name, "sessions_ended": ended}),
        )),
        None => Err(Failure::new(404, format!("user {name}: no such user"))),
    }
}

/// The default and largest `limit` of `GET /api/audit`.
pub const AUDIT_LIMITS: (u32, u32) = (100, 1000);

pub(super) fn audit(api: &Api, call: &mut Call<'_, '_>) -> Result<Reply, Failure> {
    let (default, max) = AUDIT_LIMITS;
    let limit = match call.request.param("limit") {
        None => default,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                Failure::new(
                    400,
                    format!("limit {text:?}: expected a number from 1 to {max}"),
                )
            })?,
    };
    Ok(Reply::json(
        200,
        &json!({"entries": api.accounts.audit(limit)?}),
    ))
}
