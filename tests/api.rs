//! The HTTP API over real HTTP: `k8s-sync serve` on 127.0.0.1:0, a raw HTTP/1.1 client. The
//! last tests re-run a failed job on the local control plane (skipped without one).

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use k8s_sync::store::{NewJob, Operation, Store};
use serde_json::{Value, json};
use support::TestDir;
use support::http::{ApiServer, Response, add_user, parse_response, run_with_stdin, send};

const PASSWORD: &str = "correct horse battery";

/// A directory with a user `ada` and a server over it.
fn server_with_user(args: &[&str]) -> (TestDir, ApiServer) {
    let dir = TestDir::new();
    add_user(&dir, "ada", PASSWORD);
    let mut server = ApiServer::start(&dir, args, &[]);
    server.login_as("ada", PASSWORD);
    (dir, server)
}

/// Records a job and its outcome in the job database of `dir`; returns its id.
fn seed_job(dir: &TestDir, replica: &str, kind: &str, name: &str, failed: bool) -> i64 {
    let store = Store::open(&dir.path().join("jobs.db")).unwrap();
    let key = format!("sha256:{:064x}", fastrand::u128(..));
    let id = store
        .begin(&NewJob {
            replica,
            kind,
            namespace: "shop",
            name,
            operation: Operation::Apply,
            change_key: &key,
            action: "create",
            options: None,
        })
        .unwrap();
    let outcome = if failed { Err("forbidden") } else { Ok(()) };
    store.finish(id, outcome, 1, Duration::ZERO).unwrap();
    id
}

#[track_caller]
fn expect(response: &Response, status: u16) {
    assert_eq!(response.status, status, "{response}");
}

#[test]
fn health_readiness_and_metrics_need_no_token() {
    let dir = TestDir::new();
    let server = ApiServer::start(&dir, &[], &[]);
    let health = server.get("/healthz");
    expect(&health, 200);
    assert_eq!(health.text().trim(), "ok");
    expect(&server.get("/readyz"), 200);
    let metrics = server.get("/metrics");
    expect(&metrics, 200);
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    // Without users, every /api route but login answers 401.
    expect(&server.get("/api/dashboard"), 401);
    assert!(server.log().contains("no API user yet"), "{}", server.log());
}

#[test]
fn unknown_routes_are_404_and_wrong_methods_405() {
    let (_dir, server) = server_with_user(&[]);
    let missing = server.get("/api/nope");
    expect(&missing, 404);
    assert_eq!(missing.header("content-type"), Some("application/json"));
    assert!(missing.error().contains("/api/nope"), "{missing}");
    let wrong = server.request("PUT", "/api/users", Some("{}"));
    expect(&wrong, 405);
    assert_eq!(wrong.header("allow"), Some("GET, POST"));
    let wrong = server.request("DELETE", "/healthz", None);
    expect(&wrong, 405);
    assert_eq!(wrong.header("allow"), Some("GET"));
}

#[test]
fn logs_in_and_refuses_wrong_passwords_and_unknown_users_alike() {
    let (_dir, mut server) = server_with_user(&[]);
    let token = server.token.clone().unwrap();
    assert_eq!(token.len(), 64, "256 bits in hex");
    let login = server.post(
        "/api/login",
        &json!({"username": "ada", "password": PASSWORD}),
    );
    let expires: jiff::Timestamp = login.json()["expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let hours = (expires.as_second() - jiff::Timestamp::now().as_second()) / 3600;
    assert!((11..=12).contains(&hours), "12h by default: {login}");
    expect(&server.get("/api/dashboard"), 200);

    server.token = None;
    let wrong = server.post(
        "/api/login",
        &json!({"username": "ada", "password": "wrong password!"}),
    );
    let unknown = server.post(
        "/api/login",
        &json!({"username": "nobody", "password": PASSWORD}),
    );
    expect(&wrong, 401);
    expect(&unknown, 401);
    assert_eq!(wrong.body, unknown.body, "the same answer");
    expect(&server.get("/api/dashboard"), 401);
    server.token = Some("0".repeat(64));
    let bad = server.get("/api/dashboard");
    expect(&bad, 401);
    assert_eq!(bad.header("www-authenticate"), Some("Bearer"));
    let basic = send(
        server.addr,
        "GET",
        "/api/dashboard",
        &[("Authorization".into(), format!("Basic {token}"))],
        None,
    );
    expect(&basic, 401);
}

#[test]
fn unknown_users_take_as_long_as_wrong_passwords() {
    let dir = TestDir::new();
    add_user(&dir, "ada", PASSWORD);
    // A cost where bcrypt takes tens of milliseconds, so that skipping it would show.
    let server = ApiServer::start(&dir, &[], &[("K8S_SYNC_BCRYPT_COST", "10")]);
    let time = |user: &str| {
        (0..3)
            .map(|_| {
                let started = Instant::now();
                let response = server.post(
                    "/api/login",
                    &json!({"username": user, "password": "wrong password!"}),
                );
                expect(&response, 401);
                started.elapsed()
            })
            .min()
            .unwrap()
    };
    let (known, unknown) = (time("ada"), time("nobody"));
    assert!(
        unknown * 3 > known,
        "unknown user {unknown:?}, wrong password {known:?}"
    );
}

#[test]
fn throttles_failed_logins_per_user_and_address() {
    let (_dir, mut server) = server_with_user(&[]);
    server.token = None;
    let attempt = |password: &str| {
        server.post(
            "/api/login",
            &json!({"username": "ada", "password": password}),
        )
    };
    for _ in 0..5 {
        expect(&attempt("wrong password!"), 401);
    }
    let throttled = attempt("wrong password!");
    expect(&throttled, 429);
    let wait: u64 = throttled.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=900).contains(&wait), "{throttled}");
    expect(&attempt(PASSWORD), 429);
    // Another user name from the same address is not affected.
    let other = server.post(
        "/api/login",
        &json!({"username": "bob", "password": "wrong password!"}),
    );
    expect(&other, 401);
}

#[test]
fn logout_ends_the_session() {
    let (_dir, server) = server_with_user(&[]);
    expect(&server.get("/api/users"), 200);
    expect(&server.request("POST", "/api/logout", None), 204);
    expect(&server.get("/api/users"), 401);
    expect(&server.request("POST", "/api/logout", None), 401);
}

#[test]
fn tokens_expire() {
    let (_dir, server) = server_with_user(&["--token-ttl", "2s"]);
    expect(&server.get("/api/dashboard"), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.get("/api/dashboard").status != 401 {
        assert!(Instant::now() < deadline, "the token still works after 10s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn bodies_are_bounded_and_must_be_json() {
    let (_dir, server) = server_with_user(&[]);
    let malformed = server.request("POST", "/api/login", Some("{\"username\": "));
    expect(&malformed, 400);
    assert!(malformed.error().contains("JSON"), "{malformed}");
    expect(
        &server.request("POST", "/api/users", Some(r#"{"username": "x"}"#)),
        400,
    );
    // Declared too large: refused before reading, and the connection closed.
    let mut stream = TcpStream::connect(server.addr).unwrap();
    write!(
        stream,
        "POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{{\"username\"",
        (1 << 20) + 1
    )
    .unwrap();
    let refused = support::http::read_response(&mut stream);
    expect(&refused, 413);
    assert_eq!(refused.header("connection"), Some("close"), "{refused}");
    // Sent in chunks without a length: refused once past the limit.
    let mut stream = TcpStream::connect(server.addr).unwrap();
    let token = server.token.as_deref().unwrap();
    write!(
        stream,
        "POST /api/users HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..17 {
        write!(stream, "{:x}\r\n", chunk.len()).unwrap();
        stream.write_all(&chunk).unwrap();
        stream.write_all(b"\r\n").unwrap();
    }
    stream.write_all(b"0\r\n\r\n").unwrap();
    expect(&support::http::read_response(&mut stream), 413);
}

#[test]
fn a_huge_declared_body_does_not_bring_the_server_down() {
    let (_dir, server) = server_with_user(&[]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .write_all(
            b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n{}",
        )
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buffer = [0u8; 64];
    let _ = stream.read(&mut buffer);
    drop(stream);
    expect(&server.get("/healthz"), 200);
    expect(&server.get("/api/dashboard"), 200);
}

#[test]
fn manages_users() {
    let (_dir, mut server) = server_with_user(&[]);
    let add = |server: &ApiServer, name: &str, password: &str| {
        server.post(
            "/api/users",
            &json!({"username": name, "password": password}),
        )
    };
    let added = add(&server, "bob", "another long password");
    expect(&added, 201);
    assert_eq!(added.json()["name"], "bob");
    expect(&add(&server, "bob", "another long password"), 409);
    let short = add(&server, "carol", "short pass1");
    expect(&short, 400);
    assert!(short.error().contains("12 characters"), "{short}");
    expect(&add(&server, "Carol!", "another long password"), 400);
    expect(&add(&server, "-carol", "another long password"), 400);

    let list = server.get("/api/users");
    expect(&list, 200);
    let users = list.json()["users"].as_array().unwrap().clone();
    let names: Vec<&str> = users.iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["ada", "bob"]);
    assert!(!list.text().contains("$2"), "no bcrypt hash: {list}");
    assert!(list.json()["users"][0]["created_at"].is_string());

    expect(&server.request("DELETE", "/api/users/nobody", None), 404);
    // Bob can log in, then ada deletes bob: bob's session ends with him.
    let ada = server.token.clone();
    server.login_as("bob", "another long password");
    let bob = server.token.replace(ada.unwrap());
    expect(&server.request("DELETE", "/api/users/bob", None), 204);
    server.token = bob;
    expect(&server.get("/api/users"), 401);
    server.login_as("ada", PASSWORD);
    let last = server.request("DELETE", "/api/users/ada", None);
    expect(&last, 409);
    assert!(last.error().contains("last admin"), "{last}");
}

#[test]
fn viewers_read_admins_change_and_every_change_is_audited() {
    let (dir, mut server) = server_with_user(&[]);
    let failed = seed_job(&dir, "r1", "ConfigMap", "web", true);
    let ada = server.token.clone().unwrap();
    let viewer = json!({"username": "val", "password": "a viewer's long password"});
    expect(&server.post("/api/users", &viewer), 201);
    let listed = server.get("/api/users").json();
    let roles: Vec<(&str, &str)> = listed["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["name"].as_str().unwrap(), u["role"].as_str().unwrap()))
        .collect();
    assert_eq!(roles, [("ada", "admin"), ("val", "viewer")], "{listed}");
    let unknown = json!({"username": "x", "password": "a long enough one", "rights": "all"});
    expect(&server.post("/api/users", &unknown), 400);

    // A viewer reads the dashboard, the status and the jobs; every change is refused, 403.
    let val = server.login_as("val", "a viewer's long password");
    for (method, target) in [
        ("GET", "/api/dashboard"),
        ("GET", "/api/status"),
        ("GET", "/api/jobs"),
    ] {
        expect(&server.request(method, target, None), 200);
    }
    expect(&server.get(&format!("/api/jobs/{failed}")), 200);
    for (method, target) in [
        ("GET", "/api/users".to_string()),
        ("GET", "/api/audit".to_string()),
        ("POST", "/api/users".to_string()),
        ("DELETE", "/api/users/ada".to_string()),
        ("DELETE", "/api/users/ada/sessions".to_string()),
        ("POST", format!("/retry?jobid={failed}")),
        ("GET", format!("/retry?jobid={failed}")),
        ("POST", "/api/prunes/release?replica=r1".to_string()),
    ] {
        let refused = server.request(method, &target, Some("{}"));
        expect(&refused, 403);
        assert!(
            refused.error().contains("needs the admin role"),
            "{refused}"
        );
        assert!(refused.error().contains("val is a viewer"), "{refused}");
    }

    // The last admin cannot go, not even with a viewer left.
    server.token = Some(ada.clone());
    let last = server.request("DELETE", "/api/users/ada", None);
    expect(&last, 409);
    assert!(last.error().contains("last admin"), "{last}");
    // Revoked: the viewer's token stops working at once.
    let revoked = server.request("DELETE", "/api/users/val/sessions", None);
    expect(&revoked, 200);
    assert_eq!(revoked.json()["sessions_ended"], 1, "{revoked}");
    expect(
        &server.request("DELETE", "/api/users/nobody/sessions", None),
        404,
    );
    server.token = Some(val);
    expect(&server.get("/api/dashboard"), 401);

    // The trail: who, what, on what, from where, the answer; never a password or a token.
    server.token = Some(ada.clone());
    let trail = server.get("/api/audit?limit=1000");
    expect(&trail, 200);
    let entries = trail.json()["entries"].as_array().unwrap().clone();
    let seen: Vec<(String, String, String, u64)> = entries
        .iter()
        .rev()
        .map(|e| {
            (
                e["user"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
                e["target"].as_str().unwrap().to_string(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected = |user: &str, action: &str, target: &str, status: u64| {
        (
            user.to_string(),
            action.to_string(),
            target.to_string(),
            status,
        )
    };
    assert!(
        seen.contains(&expected("ada", "POST /api/login", "", 200)),
        "{seen:?}"
    );
    assert!(
        seen.contains(&expected("ada", "POST /api/users", "", 201)),
        "{seen:?}"
    );
    assert!(
        seen.contains(&expected("val", "POST /api/login", "", 200)),
        "{seen:?}"
    );
    assert!(
        seen.contains(&expected("ada", "DELETE /api/users/{name}", "ada", 409)),
        "{seen:?}"
    );
    assert!(
        seen.contains(&expected(
            "ada",
            "DELETE /api/users/{name}/sessions",
            "val",
            200
        )),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .filter(|(user, ..)| user == "val")
            .all(|(_, action, ..)| action == "POST /api/login"),
        "a viewer's refused attempts changed nothing: {seen:?}"
    );
    assert!(
        entries.iter().all(|e| e["remote"] == "127.0.0.1"),
        "{trail}"
    );
    let text = trail.text();
    for secret in [PASSWORD, "a viewer's long password", ada.as_str()] {
        assert!(!text.contains(secret), "the trail holds a secret: {text}");
    }
    let db = std::fs::read(dir.path().join("jobs.db")).unwrap();
    assert!(
        !db.windows(ada.len()).any(|w| w == ada.as_bytes()),
        "a token in the database"
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir.path().join("jobs.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the database is its owner's only");
}

#[test]
fn lists_jobs_and_hides_the_change_keys_of_secrets() {
    let dir = TestDir::new();
    let failed = seed_job(&dir, "r1", "ConfigMap", "web", true);
    let secret = seed_job(&dir, "r2", "Secret", "db", false);
    add_user(&dir, "ada", PASSWORD);
    let mut server = ApiServer::start(&dir, &[], &[]);
    server.login_as("ada", PASSWORD);

    let all = server.get("/api/jobs");
    expect(&all, 200);
    let jobs = all.json()["jobs"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0]["id"], secret, "newest first");
    assert_eq!(
        jobs[0]["change_key"],
        Value::Null,
        "a Secret's key is hidden"
    );
    assert!(
        jobs[1]["change_key"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let ids = |target: &str| -> Vec<i64> {
        let response = server.get(target);
        expect(&response, 200);
        response.json()["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids("/api/jobs?status=failed"), [failed]);
    assert_eq!(ids("/api/jobs?replica=r2"), [secret]);
    assert_eq!(ids("/api/jobs?limit=1"), [secret]);
    assert_eq!(
        ids("/api/jobs?status=succeeded&replica=r1"),
        Vec::<i64>::new()
    );
    for bad in ["status=bogus", "limit=0", "limit=1001", "limit=many"] {
        expect(&server.get(&format!("/api/jobs?{bad}")), 400);
    }
    assert_eq!(ids("/api/jobs?limit=1000").len(), 2);

    let one = server.get(&format!("/api/jobs/{secret}"));
    expect(&one, 200);
    assert_eq!(one.json()["change_key"], Value::Null);
    assert_eq!(one.json()["status"], "succeeded");
    let one = server.get(&format!("/api/jobs/{failed}"));
    assert_eq!(one.json()["error"], "forbidden");
    expect(&server.get("/api/jobs/999999"), 404);
    expect(&server.get("/api/jobs/abc"), 400);
}

#[test]
fn the_dashboard_counts_in_all_and_per_replica() {
    let dir = TestDir::new();
    seed_job(&dir, "r1", "ConfigMap", "a", true);
    seed_job(&dir, "r1", "ConfigMap", "b", false);
    seed_job(&dir, "r2", "ConfigMap", "a", false);
    add_user(&dir, "ada", PASSWORD);
    let primary = support::fixture("snapshots/primary").display().to_string();
    let replica = format!("r1={}", support::fixture("snapshots/replica").display());
    let mut server = ApiServer::start(&dir, &["--primary", &primary, "--replica", &replica], &[]);
    server.login_as("ada", PASSWORD);
    let dashboard = server.get("/api/dashboard");
    expect(&dashboard, 200);
    assert_eq!(
        dashboard.json(),
        json!({"total": 3, "ongoing": 0, "failed": 1, "pending": 0, "succeeded": 2,
               "held": 0, "delayed": 0, "cancelled": 0,
               "replicas": {"r1": {"total": 2, "ongoing": 0, "failed": 1, "pending": 0, "succeeded": 1,
                                   "held": 0, "delayed": 0, "cancelled": 0},
                            "r2": {"total": 1, "ongoing": 0, "failed": 0, "pending": 0, "succeeded": 1,
                                   "held": 0, "delayed": 0, "cancelled": 0}}})
    );

    let status = server.get("/api/status");
    expect(&status, 200);
    let status = status.json();
    assert_eq!(status["primary"]["kind"], "directory");
    assert_eq!(status["primary"]["reachable"], true);
    assert_eq!(status["replicas"][0]["name"], "r1");
    assert_eq!(status["replicas"][0]["reachable"], true);
    assert_eq!(
        status["replicas"][0]["drifted"],
        Value::Null,
        "no pass here yet"
    );
}

#[test]
fn status_without_a_primary_is_empty() {
    let (_dir, server) = server_with_user(&[]);
    let status = server.get("/api/status");
    expect(&status, 200);
    assert_eq!(status.json(), json!({"primary": null, "replicas": []}));
}

#[test]
fn retry_refuses_what_it_cannot_run() {
    let dir = TestDir::new();
    let failed = seed_job(&dir, "r1", "ConfigMap", "a", true);
    let done = seed_job(&dir, "r1", "ConfigMap", "b", false);
    let elsewhere = seed_job(&dir, "r9", "ConfigMap", "c", true);
    add_user(&dir, "ada", PASSWORD);
    let mut plain = ApiServer::start(&dir, &[], &[]);
    expect(
        &plain.post(&format!("/retry?jobid={failed}"), &json!({})),
        401,
    );
    plain.login_as("ada", PASSWORD);
    let no_context = plain.request("POST", &format!("/retry?jobid={failed}"), None);
    expect(&no_context, 409);
    assert!(no_context.error().contains("--primary"), "{no_context}");

    let primary = support::fixture("snapshots/primary").display().to_string();
    let replica = format!("r1={}", support::fixture("snapshots/replica").display());
    let mut server = ApiServer::start(&dir, &["--primary", &primary, "--replica", &replica], &[]);
    server.login_as("ada", PASSWORD);
    let retry = |target: String| server.request("POST", &target, None);
    expect(&retry("/retry".into()), 400);
    expect(&retry("/retry?jobid=x".into()), 400);
    expect(&retry("/retry?jobid=999999".into()), 404);
    let not_failed = retry(format!("/retry?jobid={done}"));
    expect(&not_failed, 409);
    assert!(not_failed.error().contains("succeeded"), "{not_failed}");
    let mismatch = retry(format!("/retry?jobid={failed}&replica=r2"));
    expect(&mismatch, 409);
    assert!(mismatch.error().contains("r1"), "{mismatch}");
    let unknown_replica = retry(format!("/retry?jobid={elsewhere}"));
    expect(&unknown_replica, 409);
    assert!(unknown_replica.error().contains("r9"), "{unknown_replica}");
    // The original form: GET.
    expect(&server.get(&format!("/retry?jobid={done}&replica=r1")), 409);
}

/// The `(METHOD, path)` pairs of `docs/openapi.yaml`.
fn documented_routes() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(support::repo_root().join("docs/openapi.yaml")).unwrap();
    let document: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut routes = BTreeSet::new();
    for (path, item) in document["paths"].as_mapping().unwrap() {
        for (method, _) in item.as_mapping().unwrap() {
            let method = method.as_str().unwrap();
            if matches!(method, "get" | "post" | "put" | "patch" | "delete") {
                routes.insert((
                    method.to_ascii_uppercase(),
                    path.as_str().unwrap().to_string(),
                ));
            }
        }
    }
    routes
}

#[test]
fn the_openapi_document_lists_exactly_the_routes_served() {
    let served: BTreeSet<(String, String)> = k8s_sync::api::routes()
        .iter()
        .map(|r| (r.method.as_str().to_string(), r.path.to_string()))
        .collect();
    assert_eq!(documented_routes(), served);

    // And every documented route is served: none answers 404 for want of a route.
    let dir = TestDir::new();
    let job = seed_job(&dir, "r1", "ConfigMap", "a", true);
    add_user(&dir, "ada", PASSWORD);
    add_user(&dir, "bob", PASSWORD);
    let mut server = ApiServer::start(&dir, &[], &[]);
    server.login_as("ada", PASSWORD);
    for (method, path) in documented_routes() {
        if path == "/api/logout" {
            continue; // would end the session the other requests use; checked below
        }
        let target = path
            .replace("{id}", &job.to_string())
            .replace("{name}", "bob")
            .replace("/retry", &format!("/retry?jobid={job}"));
        let body = (method == "POST")
            .then_some(r#"{"username": "carol", "password": "long enough password"}"#);
        let response = server.request(&method, &target, body);
        // A 404 of a thing (bob deleted before his sessions are) is an answer of the route.
        let unrouted = response.status == 405
            || (response.status == 404 && response.error().starts_with("no such route"));
        assert!(!unrouted, "{method} {target}: {response}");
    }
    expect(&server.request("POST", "/api/logout", None), 204);
}

#[test]
fn metrics_parse_as_prometheus_text_and_count_requests() {
    let (_dir, server) = server_with_user(&[]);
    expect(&server.get("/api/dashboard"), 200);
    let text = server.get("/metrics").text();
    let samples = parse_prometheus(&text);
    let requests = samples
        .iter()
        .find(|(name, labels, _)| {
            name == "k8s_sync_http_requests_total"
                && labels.contains("route=\"/api/dashboard\"")
                && labels.contains("code=\"200\"")
        })
        .unwrap_or_else(|| panic!("no request counter\n{text}"));
    assert_eq!(requests.2, 1.0);
}

/// Checks every line of a Prometheus text exposition and returns its samples as
/// `(name, labels, value)`.
fn parse_prometheus(text: &str) -> Vec<(String, String, f64)> {
    let mut samples = Vec::new();
    let mut typed = BTreeSet::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            assert!(rest.split_once(' ').is_some(), "HELP without text: {line}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            typed.insert(name.to_string());
        } else {
            assert!(!line.starts_with('#'), "unknown comment: {line}");
            let (series, value) = line.rsplit_once(' ').expect("series value");
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {line}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => {
                    assert!(labels.ends_with('}'), "{line}");
                    (name, labels.trim_end_matches('}'))
                }
                None => (series, ""),
            };
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "{line}"
            );
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|base| typed.contains(*base))
                .unwrap_or(name);
            assert!(typed.contains(family), "sample before its TYPE: {line}");
            samples.push((name.to_string(), labels.to_string(), value));
        }
    }
    samples
}

#[test]
fn no_password_or_token_is_stored_or_logged_in_clear() {
    let dir = TestDir::new();
    let admin_password = "admin password from env";
    let mut server = ApiServer::start(&dir, &[], &[("K8S_SYNC_ADMIN_PASSWORD", admin_password)]);
    assert!(
        server
            .log()
            .contains("created user admin from K8S_SYNC_ADMIN_PASSWORD"),
        "{}",
        server.log()
    );
    let token = server.login_as("admin", admin_password);
    let other_password = "the second user's password";
    expect(
        &server.post(
            "/api/users",
            &json!({"username": "bob", "password": other_password}),
        ),
        201,
    );
    let mut bytes = Vec::new();
    for file in ["jobs.db", "jobs.db-wal"] {
        if let Ok(content) = std::fs::read(dir.path().join(file)) {
            bytes.extend(content);
        }
    }
    assert!(!bytes.is_empty());
    let log = server.log();
    for secret in [admin_password, other_password, token.as_str()] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret:?} is in the database"
        );
        assert!(!log.contains(secret), "{secret:?} is in the log\n{log}");
    }
}

#[test]
fn a_short_admin_password_stops_the_server() {
    let dir = TestDir::new();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_k8s-sync"))
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--db", "jobs.db"])
        .env("K8S_SYNC_ADMIN_PASSWORD", "too short")
        .env("K8S_SYNC_BCRYPT_COST", "4")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("K8S_SYNC_ADMIN_PASSWORD"), "{stderr}");
    assert!(!stderr.contains("too short"), "{stderr}");
}

#[test]
fn users_are_managed_from_the_command_line() {
    let dir = TestDir::new();
    let users = |args: &[&str], stdin: &str| {
        let mut all = vec!["users"];
        all.extend(args);
        all.extend(["--db", "jobs.db"]);
        run_with_stdin(&dir, &all, stdin)
    };
    let short = users(&["add", "ada", "--password-stdin"], "short pass\n");
    short.expect_code(2);
    assert_eq!(short.stderr().lines().count(), 1, "{short}");
    assert!(short.stderr().contains("at least 12 characters"), "{short}");
    users(&["add", "ada", "--password-stdin"], "").expect_code(2);
    users(
        &["add", "Ada", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    )
    .expect_code(2);
    users(
        &["add", "ada", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    )
    .expect_code(0);
    users(
        &["add", "ada", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    )
    .expect_code(2);
    users(
        &["add", "bob", "--password-stdin"],
        &format!("{PASSWORD}\r\n"),
    )
    .expect_code(0);
    let list = users(&["list", "-o", "json"], "");
    list.expect_code(0);
    let names: Vec<String> = list
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["ada", "bob"]);
    users(
        &["passwd", "bob", "--password-stdin"],
        "a new long password\n",
    )
    .expect_code(0);
    users(
        &["passwd", "nobody", "--password-stdin"],
        "a new long password\n",
    )
    .expect_code(2);
    users(&["delete", "nobody"], "").expect_code(2);
    // Revoked from the command line: bob's token stops working at once.
    {
        let mut server = ApiServer::start(&dir, &[], &[]);
        server.login_as("bob", "a new long password");
        expect(&server.get("/api/dashboard"), 200);
        let revoked = users(&["revoke", "bob"], "");
        revoked.expect_code(0);
        assert!(
            revoked.stderr().contains("ended 1 session(s) of bob"),
            "{revoked}"
        );
        expect(&server.get("/api/dashboard"), 401);
    }
    users(&["revoke", "nobody"], "").expect_code(2);
    let viewer = users(
        &["add", "vic", "--password-stdin", "--role", "viewer"],
        &format!("{PASSWORD}\n"),
    );
    viewer.expect_code(0);
    let roles = users(&["list", "-o", "json"], "").json();
    assert!(
        roles
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["name"] == "vic" && u["role"] == "viewer"),
        "{roles}"
    );
    users(
        &["add", "x", "--password-stdin", "--role", "root"],
        &format!("{PASSWORD}\n"),
    )
    .expect_code(2);
    users(&["delete", "vic"], "").expect_code(0);
    users(&["delete", "bob"], "").expect_code(0);
    let last = users(&["delete", "ada"], "");
    last.expect_code(2);
    assert!(last.stderr().contains("last admin"), "{last}");

    // The password read is the line without its ending, "\r\n" too.
    users(
        &["add", "dave", "--password-stdin"],
        "dave's long password\r\n",
    )
    .expect_code(0);
    let mut server = ApiServer::start(&dir, &[], &[]);
    server.login_as("dave", "dave's long password");
    server.login_as("ada", PASSWORD);

    // Hashed at the cost K8S_SYNC_BCRYPT_COST says (the harness: 4), else 12.
    let store = Store::open(&dir.path().join("jobs.db")).unwrap();
    assert!(
        store
            .password_hash("ada")
            .unwrap()
            .unwrap()
            .starts_with("$2b$04$")
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_k8s-sync"))
        .current_dir(dir.path())
        .args([
            "users",
            "add",
            "erin",
            "--password-stdin",
            "--db",
            "jobs.db",
        ])
        .env_remove("K8S_SYNC_BCRYPT_COST")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"erin's long password\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(
        store
            .password_hash("erin")
            .unwrap()
            .unwrap()
            .starts_with("$2b$12$")
    );
}

#[test]
fn slow_bodies_do_not_hold_the_workers() {
    let (_dir, server) = server_with_user(&[]);
    // More clients than workers, each in a handler waiting for a body that never comes.
    let stalled: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut stream = TcpStream::connect(server.addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            stream
                .write_all(
                    b"POST /api/login HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4096\r\n\r\n",
                )
                .unwrap();
            // "100 Continue" comes when the handler starts reading the body.
            assert!(read_head(&mut stream).starts_with("HTTP/1.1 100"));
            stream.write_all(b"{\"user").unwrap();
            stream
        })
        .collect();
    let started = Instant::now();
    expect(&server.get("/api/dashboard"), 200);
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(stalled);
}

/// Reads a response head (status line and headers) byte by byte.
fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_then_exits_0() {
    let (_dir, mut server) = server_with_user(&[]);
    let body = br#"{"username": "ada", "password": "wrong password!"}"#;
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "POST /api/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    // "100 Continue" comes when the handler starts reading the body: the request is in flight.
    let interim = read_head(&mut stream);
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim}");
    server.terminate();
    std::thread::sleep(Duration::from_millis(200)); // let the signal land before the body
    stream.write_all(body).unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    let response =
        parse_response(&rest).unwrap_or_else(|| panic!("{:?}", String::from_utf8_lossy(&rest)));
    assert_eq!(response.status, 401, "{response}");
    let status = server.wait(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", server.log());
}

mod e2e {
    use super::*;
    use support::objects::{create, get};
    use support::testenv::TestEnv;

    fn configmap(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
               "data": {"greeting": "hello"}})
    }

    fn jobs_total(server: &ApiServer) -> f64 {
        let text = server.get("/metrics").text();
        parse_prometheus(&text)
            .iter()
            .filter(|(name, labels, _)| {
                name == "k8s_sync_jobs_total" && labels.contains("replica=\"ro\"")
            })
            .map(|(_, _, value)| value)
            .sum()
    }

    #[tokio::test]
    async fn retry_reapplies_a_failed_job_end_to_end() {
        let Some(env) = TestEnv::get() else { return };
        let ns = env.namespace("api-retry", &["primary"]).await;
        create(&env.client("primary").await, &ns, configmap("settings")).await;
        let dir = TestDir::new();
        // Applied as the read-only user, the replica refuses: a failed job for replica "ro".
        let run = support::passes::apply_as_readonly(&dir, &env, &ns);
        run.expect_code(1);
        let primary = env.arg("primary");
        let store = Store::open(&dir.path().join("jobs.db")).unwrap();
        let failed = store
            .jobs(&k8s_sync::store::JobFilter {
                status: Some(k8s_sync::store::Status::Failed),
                ..Default::default()
            })
            .unwrap();
        let job = failed
            .iter()
            .find(|j| j.name == "settings")
            .unwrap_or_else(|| panic!("no failed job\n{run}"))
            .clone();
        drop(store);
        add_user(&dir, "ada", PASSWORD);

        // Served with an admin kubeconfig under the same replica name, the retry succeeds.
        let admin = format!("ro={}", env.kubeconfig("replica-2").display());
        let mut server = ApiServer::start(
            &dir,
            &[
                "--primary",
                &primary,
                "--source-name",
                "primary",
                "--replica",
                &admin,
            ],
            &[],
        );
        server.login_as("ada", PASSWORD);
        let before = jobs_total(&server);
        let retried = server.request("POST", &format!("/retry?jobid={}&replica=ro", job.id), None);
        expect(&retried, 200);
        assert_eq!(retried.json()["job"]["status"], "succeeded", "{retried}");
        assert_eq!(retried.json()["job"]["id"], job.id);
        let object = get(
            &env.client("replica-2").await,
            &ns,
            "configmaps",
            "settings",
        )
        .await;
        let object = object.expect("the ConfigMap is on the replica");
        assert_eq!(object["data"]["greeting"], "hello");
        assert!(jobs_total(&server) > before, "k8s_sync_jobs_total moved");

        // Done: a second retry has nothing to re-run.
        expect(
            &server.request("POST", &format!("/retry?jobid={}", job.id), None),
            409,
        );
        let status = server.get("/api/status");
        expect(&status, 200);
        let status = status.json();
        assert_eq!(status["primary"]["reachable"], true, "{status}");
        assert!(
            status["primary"]["version"]
                .as_str()
                .unwrap()
                .starts_with('v'),
            "{status}"
        );
        assert_eq!(status["replicas"][0]["name"], "ro");
        assert_eq!(status["replicas"][0]["reachable"], true);
        // A retry is about one object: it says nothing of the whole replica's drift.
        assert!(status["replicas"][0]["drifted"].is_null(), "{status}");
    }

    #[tokio::test]
    async fn retry_runs_with_the_options_of_the_pass_that_made_the_job() {
        let Some(env) = TestEnv::get() else { return };
        let ns = env
            .namespace("api-recorded", &["primary", "replica-2"])
            .await;
        let primary_client = env.client("primary").await;
        create(&primary_client, &ns, configmap("theirs")).await;
        create(&primary_client, &ns, configmap("mine")).await;
        let dir = TestDir::new();
        let readonly = format!("ro={}", env.readonly_kubeconfig("replica-2").display());
        let primary = env.arg("primary");
        // Both creates are refused: two failed jobs made with --no-adopt, as source "custom".
        let run = dir.cmd(&[
            "apply",
            "--primary",
            &primary,
            "--source-name",
            "custom",
            "--no-adopt",
            "--replica",
            &readonly,
            "--sync-namespaces",
            &ns,
            "--db",
            "jobs.db",
        ]);
        run.expect_code(1);
        let store = Store::open(&dir.path().join("jobs.db")).unwrap();
        let failed = store
            .jobs(&k8s_sync::store::JobFilter {
                status: Some(k8s_sync::store::Status::Failed),
                ..Default::default()
            })
            .unwrap();
        drop(store);
        let id_of = |name: &str| failed.iter().find(|j| j.name == name).unwrap().id;
        // Meanwhile someone makes their own copy of one of them on the replica.
        let replica = env.client("replica-2").await;
        let local = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "theirs"},
            "data": {"greeting": "made on the replica"}});
        create(&replica, &ns, local).await;
        add_user(&dir, "ada", PASSWORD);
        let admin = format!("ro={}", env.kubeconfig("replica-2").display());
        // Served with no --source-name and adoption on by default.
        let mut server = ApiServer::start(&dir, &["--primary", &primary, "--replica", &admin], &[]);
        server.login_as("ada", PASSWORD);

        let retried = server.request("POST", &format!("/retry?jobid={}", id_of("theirs")), None);
        expect(&retried, 200);
        assert_eq!(retried.json()["report"]["conflicts"], 1, "{retried}");
        let theirs = get(&replica, &ns, "configmaps", "theirs").await.unwrap();
        assert_eq!(
            theirs["data"]["greeting"], "made on the replica",
            "not adopted"
        );

        let retried = server.request("POST", &format!("/retry?jobid={}", id_of("mine")), None);
        expect(&retried, 200);
        let mine = get(&replica, &ns, "configmaps", "mine").await.unwrap();
        assert_eq!(
            mine["metadata"]["annotations"]["k8s-sync.io/source"], "custom",
            "{mine}"
        );
    }
}

#[test]
fn a_server_out_of_file_descriptors_serves_again_once_its_clients_go() {
    // Few file descriptors: connections that stay open exhaust them, and accepting fails.
    let dir = TestDir::new();
    let log = dir.path().join("serve.log");
    let mut child = std::process::Command::new("sh")
        .current_dir(dir.path())
        .args([
            "-c",
            "ulimit -n 48 && exec \"$0\" serve --listen 127.0.0.1:0 --db jobs.db",
            env!("CARGO_BIN_EXE_k8s-sync"),
        ])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr: std::net::SocketAddr = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if let Some(rest) = text.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
        assert!(Instant::now() < deadline, "not listening\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut open = Vec::new();
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("Too many open files")
    {
        assert!(Instant::now() < deadline, "never ran out of descriptors");
        if open.len() < 200 {
            open.push(TcpStream::connect(addr).unwrap());
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    drop(open);
    let healthy = loop {
        let response = support::http::send(addr, "GET", "/healthz", &[], None);
        if response.status == 200 || Instant::now() > deadline {
            break response;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    expect(&healthy, 200);
    let metrics = support::http::send(addr, "GET", "/metrics", &[], None).text();
    let errors = support::passes::sample(
        &metrics,
        "k8s_sync_http_listener_errors_total{listener=\"api\"}",
    );
    assert!(errors.is_some_and(|n| n >= 1.0), "{metrics}");
    assert!(child.try_wait().unwrap().is_none(), "the server exited");
    let _ = child.kill();
    let _ = child.wait();
}
