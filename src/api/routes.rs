//! The route table and the handlers: which method and path does what, who may call it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::auth::Caller;
use super::http::{Failure, MAX_BODY, Method, Reply, Request, too_large};
use super::status;
use super::{Api, dashboard};
use accounts::{add_user, audit, delete_user, list_users, login, logout, revoke};

mod accounts;
use crate::store::{AuditEntry, Job, JobFilter, Role, Status};

/// The default `limit` of `GET /api/jobs`.
pub const JOBS_DEFAULT_LIMIT: u32 = 100;
/// The largest `limit` of `GET /api/jobs`.
pub const JOBS_MAX_LIMIT: u32 = 1000;

type Handler = fn(&Api, &mut Call<'_, '_>) -> Result<Reply, Failure>;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: no token.
    Public,
    /// A token of any user.
    Viewer,
    /// A token of an administrator.
    Admin,
}

/// One route: a method and a path pattern (`{name}` matches one segment).
pub struct Route {
    /// The method.
    pub method: Method,
    /// The path pattern, as `docs/openapi.yaml` spells it.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Whether it changes something, and so is recorded in the audit trail.
    pub audited: bool,
    handler: Handler,
}

impl Route {
    /// Whether a bearer token is needed.
    pub fn needs_token(&self) -> bool {
        self.access != Access::Public
    }
}

/// Every route the API serves.
pub fn routes() -> &'static [Route] {
    ROUTES
}

use Access::{Admin, Public, Viewer};

/// Reads are for viewers; every change is an administrator's and is audited (a login and a
/// logout too: they open and end sessions).
static ROUTES: &[Route] = &[
    route(Method::Post, "/api/login", Public, true, login),
    route(Method::Post, "/api/logout", Viewer, true, logout),
    route(Method::Get, "/api/dashboard", Viewer, false, dashboard),
    route(Method::Get, "/api/status", Viewer, false, |api, _| {
        status::status(api)
    }),
    route(Method::Get, "/api/users", Admin, false, list_users),
    route(Method::Post, "/api/users", Admin, true, add_user),
    route(
        Method::Delete,
        "/api/users/{name}",
        Admin,
        true,
        delete_user,
    ),
    route(
        Method::Delete,
        "/api/users/{name}/sessions",
        Admin,
        true,
        revoke,
    ),
    route(Method::Get, "/api/audit", Admin, false, audit),
    route(Method::Get, "/api/jobs", Viewer, false, list_jobs),
    route(Method::Get, "/api/jobs/{id}", Viewer, false, get_job),
    route(Method::Get, "/retry", Admin, true, retry),
    route(Method::Post, "/retry", Admin, true, retry),
    route(Method::Post, "/api/prunes/release", Admin, true, release),
    route(Method::Get, "/metrics", Public, false, metrics),
    route(Method::Get, "/healthz", Public, false, |_, _| {
        Ok(Reply::text(200, "text/plain; charset=utf-8", "ok\n"))
    }),
    route(Method::Get, "/readyz", Public, false, readyz),
    route(Method::Get, "/", Public, false, |_, _| {
        Ok(dashboard::index())
    }),
    route(Method::Get, "/assets/app.js", Public, false, |_, _| {
        Ok(dashboard::script())
    }),
    route(Method::Get, "/assets/app.css", Public, false, |_, _| {
        Ok(dashboard::style())
    }),
];

const fn route(
    method: Method,
    path: &'static str,
    access: Access,
    audited: bool,
    handler: Handler,
) -> Route {
    Route {
        method,
        path,
        access,
        audited,
        handler,
    }
}

/// A request being handled: the request, the path's `{parameters}`, the caller.
pub(crate) struct Call<'r, 'b> {
    request: &'r mut Request<'b>,
    params: Vec<String>,
    caller: Option<Caller>,
    /// Who the audit trail names when no token says it: the user name a login gave.
    subject: Option<String>,
}

/// Whether `segments` match `pattern`; the `{parameters}`' values when they do.
fn matches(pattern: &str, segments: &[String]) -> Option<Vec<String>> {
    let parts: Vec<&str> = pattern.split('/').skip(1).collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut params = Vec::new();
    for (part, segment) in parts.iter().zip(segments) {
        if part.starts_with('{') && part.ends_with('}') {
            if segment.is_empty() {
                return None;
            }
            params.push(segment.clone());
        } else if part != segment {
            return None;
        }
    }
    Some(params)
}

/// Finds the route for a request: `Ok` with it and its parameters, or the 404 or 405 reply.
pub(crate) fn find(request: &Request<'_>) -> Result<(&'static Route, Vec<String>), Failure> {
    let mut allowed = Vec::new();
    for route in ROUTES {
        if let Some(params) = matches(route.path, &request.segments) {
            if route.method == request.method {
                return Ok((route, params));
            }
            allowed.push(route.method.as_str());
        }
    }
    if allowed.is_empty() {
        return Err(Failure::new(
            404,
            format!("no such route: {}", request.path),
        ));
    }
    Err(Failure::new(
        405,
        format!("{} is not allowed on {}", request.method, request.path),
    )
    .with_header("Allow", allowed.join(", ")))
}

/// Serves one request: size check, routing, authentication, the handler.
pub(crate) fn dispatch(api: &Api, request: &mut Request<'_>) -> (Option<&'static Route>, Reply) {
    match serve(api, request) {
        Ok((route, reply)) => (Some(route), reply),
        Err((route, failure)) => (route, failure.into_reply()),
    }
}

type Served = (&'static Route, Reply);

fn serve(
    api: &Api,
    request: &mut Request<'_>,
) -> Result<Served, (Option<&'static Route>, Failure)> {
    let declared = request.content_length().map_err(|f| (None, f))?;
    if declared.is_some_and(|length| length > MAX_BODY as u64) {
        return Err((None, too_large()));
    }
    let (route, params) = find(request).map_err(|f| (None, f))?;
    let caller = if route.needs_token() {
        let caller = api
            .auth
            .authenticate(api.accounts.as_ref(), request.header("authorization"))
            .map_err(|e| (Some(route), Failure::from(e)))?;
        let Some(caller) = caller else {
            let failure = Failure::new(401, "a valid bearer token is needed: POST /api/login")
                .with_header("WWW-Authenticate", "Bearer");
            return Err((Some(route), failure));
        };
        if route.access == Access::Admin && caller.role != Role::Admin {
            let failure = Failure::new(
                403,
                format!(
                    "{} {} needs the admin role; {} is a {}",
                    route.method, route.path, caller.user, caller.role
                ),
            );
            return Err((Some(route), failure));
        }
        Some(caller)
    } else {
        None
    };
    let mut call = Call {
        request,
        params,
        caller,
        subject: None,
    };
    let answer = (route.handler)(api, &mut call);
    if route.audited {
        let status = match &answer {
            Ok(reply) => reply.status,
            Err(failure) => failure.status,
        };
        record(api, route, &call, status);
    }
    answer
        .map(|reply| (route, reply))
        .map_err(|f| (Some(route), f))
}

/// Records a change (or an attempt at one) in the audit trail: who, what, on what (the
/// route's parameters and query, never a body: passwords travel there), from where, and the
/// answer. A trail that cannot be written is logged; the answer stands.
fn record(api: &Api, route: &Route, call: &Call<'_, '_>, status: u16) {
    let user = call
        .caller
        .as_ref()
        .map(|c| c.user.as_str())
        .or(call.subject.as_deref())
        .unwrap_or("-");
    let mut target: Vec<String> = call.params.clone();
    target.extend(call.request.query.iter().map(|(k, v)| format!("{k}={v}")));
    let entry = AuditEntry {
        id: 0,
        at: String::new(),
        user: user.to_string(),
        action: format!("{} {}", route.method, route.path),
        target: target.join(" "),
        remote: call.request.remote.map(|ip| ip.to_string()),
        status,
    };
    // Shared accounts keep the newest of the trail where every copy finds it; this copy's
    // database keeps all of its own too.
    if api.shared_accounts
        && let Err(error) =
            crate::accounts::Accounts::record_audit(api.store.as_ref(), entry.clone())
    {
        tracing::error!("the audit trail: {}", crate::error_chain(&error));
    }
    if let Err(error) = api.accounts.record_audit(entry) {
        tracing::error!("the audit trail: {}", crate::error_chain(&error));
    }
}

/// How long dashboard counts are reused. Each count scans the index of the jobs' states, and
/// viewers polling the dashboard at once need not each repeat that.
pub const DASHBOARD_TTL: Duration = Duration::from_secs(1);

/// The last dashboard and when it was counted.
#[derive(Default)]
pub(crate) struct DashboardCache(Mutex<Option<(Instant, Value)>>);

fn dashboard(api: &Api, _: &mut Call<'_, '_>) -> Result<Reply, Failure> {
    // Held while counting: concurrent requests wait for one count instead of each making one.
    let mut cache = api.dashboard.0.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((at, body)) = &*cache
        && at.elapsed() < DASHBOARD_TTL
    {
        return Ok(Reply::json(200, body));
    }
    let counts = api.store.counts(None)?;
    let mut replicas = api.store.counts_by_replica()?;
    for name in api.replica_names() {
        replicas.entry(name.clone()).or_default();
    }
    let mut body = serde_json::to_value(counts).expect("counts serialize");
    body["replicas"] = serde_json::to_value(replicas).expect("counts serialize");
    let reply = Reply::json(200, &body);
    *cache = Some((Instant::now(), body));
    Ok(reply)
}

fn list_jobs(api: &Api, call: &mut Call<'_, '_>) -> Result<Reply, Failure> {
    let request = &call.request;
    let status = match request.param("status") {
        None => None,
        Some(text) => Some(Status::parse(text).ok_or_else(|| {
            Failure::new(
                400,
                format!(
                    "status {text:?}: expected pending, running, succeeded, failed, held, delayed or cancelled"
                ),
            )
        })?),
    };
    let limit = match request.param("limit") {
        None => JOBS_DEFAULT_LIMIT,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=JOBS_MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                Failure::new(
                    400,
                    format!("limit {text:?}: expected a number from 1 to {JOBS_MAX_LIMIT}"),
                )
            })?,
    };
    let filter = JobFilter {
        status,
        replica: request
            .param("replica")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        limit: Some(limit),
    };
    let jobs: Vec<Value> = api.store.jobs(&filter)?.iter().map(Job::shown).collect();
    Ok(Reply::json(200, &json!({"jobs": jobs})))
}

fn job_id(text: &str) -> Result<i64, Failure> {
    text.parse()
        .map_err(|_| Failure::new(400, format!("job id {text:?}: expected a number")))
}

fn get_job(api: &Api, call: &mut Call<'_, '_>) -> Result<Reply, Failure> {
    let id = job_id(&call.params[0])?;
    match api.store.job(id)? {
        Some(job) => Ok(Reply::json(200, &job.shown())),
        None => Err(Failure::new(404, format!("job {id}: no such job"))),
    }
}

fn retry(api: &Api, call: &mut Call<'_, '_>) -> Result<Reply, Failure> {
    let request = &call.request;
    let id = request
        .param("jobid")
        .ok_or_else(|| Failure::new(400, "missing query parameter jobid"))?;
    let id = job_id(id)?;
    let replica = request.param("replica").filter(|s| !s.is_empty());
    status::retry(api, id, replica)
}

fn release(api: &Api, call: &mut Call<'_, '_>) -> Result<Reply, Failure> {
    let replica = call
        .request
        .param("replica")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Failure::new(400, "missing query parameter replica"))?
        .to_string();
    let caller = call.caller.as_ref().expect("an authenticated route");
    status::release(api, &replica, &format!("api ({})", caller.user))
}

fn metrics(api: &Api, _: &mut Call<'_, '_>) -> Result<Reply, Failure> {
    Ok(Reply::text(
        200,
        "text/plain; version=0.0.4",
        api.metrics.render(),
    ))
}

fn readyz(api: &Api, _: &mut Call<'_, '_>) -> Result<Reply, Failure> {
    // A primary-key lookup: cheap, and it fails when the database does.
    if let Err(e) = api.store.job(0) {
        return Err(Failure::new(503, format!("not ready: {e}")));
    }
    if let Err(reason) = (api.readiness)() {
        return Err(Failure::new(503, format!("not ready: {reason}")));
    }
    Ok(Reply::text(200, "text/plain; charset=utf-8", "ok\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn request<'a>(method: Method, target: &str, body: &'a mut Cursor<Vec<u8>>) -> Request<'a> {
        Request::new(method, target, Vec::new(), None, body)
    }

    #[test]
    fn matches_paths_and_parameters() {
        let segments =
            |path: &str| -> Vec<String> { path.split('/').skip(1).map(str::to_string).collect() };
        assert_eq!(
            matches("/api/users/{name}", &segments("/api/users/ada")),
            Some(vec!["ada".to_string()])
        );
        assert_eq!(matches("/api/users/{name}", &segments("/api/users/")), None);
        assert_eq!(matches("/api/users/{name}", &segments("/api/users")), None);
        assert_eq!(matches("/api/jobs", &segments("/api/jobs/1")), None);
        assert_eq!(matches("/healthz", &segments("/healthz")), Some(vec![]));
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405() {
        let mut body = Cursor::new(Vec::new());
        let error = find(&request(Method::Get, "/nope", &mut body))
            .err()
            .unwrap();
        assert_eq!(error.status, 404);
        let error = find(&request(Method::Put, "/api/users", &mut body))
            .err()
            .unwrap();
        assert_eq!(error.status, 405);
        assert_eq!(error.headers, [("Allow", "GET, POST".to_string())]);
        let (route, params) = find(&request(Method::Delete, "/api/users/ada", &mut body)).unwrap();
        assert_eq!(
            (route.path, params),
            ("/api/users/{name}", vec!["ada".into()])
        );
    }

    #[test]
    fn every_route_is_unique_and_all_but_a_few_need_a_token() {
        let mut seen = std::collections::BTreeSet::new();
        for route in routes() {
            assert!(seen.insert((route.method, route.path)), "{}", route.path);
            let public = matches!(
                route.path,
                "/api/login"
                    | "/metrics"
                    | "/healthz"
                    | "/readyz"
                    | "/"
                    | "/assets/app.js"
                    | "/assets/app.css"
            );
            assert_eq!(
                route.needs_token(),
                !public,
                "{} {}",
                route.method,
                route.path
            );
            // A change is an administrator's, and is recorded.
            let change = route.method != Method::Get || route.path == "/retry";
            if change && route.path != "/api/login" && route.path != "/api/logout" {
                assert_eq!(
                    route.access,
                    Access::Admin,
                    "{} {}",
                    route.method,
                    route.path
                );
            }
            assert_eq!(route.audited, change, "{} {}", route.method, route.path);
        }
    }

    #[test]
    fn hides_the_change_keys_of_secrets() {
        let job = |kind: &str| Job {
            id: 1,
            replica: "r".into(),
            kind: kind.into(),
            namespace: "ns".into(),
            name: "n".into(),
            operation: "apply".into(),
            change_key: "sha256:abc".into(),
            action: "create".into(),
            status: Status::Failed,
            attempts: 1,
            runs: 1,
            error: None,
            created_at: String::new(),
            updated_at: String::new(),
            started_at: None,
            finished_at: None,
            duration_ms: None,
            due_at: None,
            options: None,
        };
        assert_eq!(job("Secret").shown()["change_key"], Value::Null);
        assert_eq!(job("ConfigMap").shown()["change_key"], "sha256:abc");
    }
}
