//! The API against its own contract: schemathesis fuzzes every operation of
//! `docs/openapi.yaml` against the real `serve` with all of its checks (no 5xx, every response
//! in the schema, schema-valid requests accepted and invalid ones refused, no route answering
//! without its token, ...), a fixed number of examples per operation and a fixed seed.
//! `scripts/schemathesis` installs it; `scripts/test` passes its path.

mod support;

use std::process::Command;

use k8s_sync::store::{NewJob, Operation, Store};
use support::TestDir;
use support::http::{ApiServer, add_user};

const EXAMPLES: &str = "20";
const SEED: &str = "1";

fn schemathesis() -> Option<String> {
    let path = std::env::var("K8S_SYNC_SCHEMATHESIS").ok();
    if path.is_none() {
        eprintln!(
            "K8S_SYNC_SCHEMATHESIS is not set (scripts/test sets it): the fuzz test is skipped"
        );
    }
    path
}

/// Runs schemathesis over the operations `paths` selects, as the holder of `token`.
fn fuzz(command: &str, server: &ApiServer, token: &str, paths: &[&str]) -> (bool, String) {
    let spec = support::repo_root().join("docs/openapi.yaml");
    let url = format!("http://{}", server.addr);
    let auth = format!("Authorization: Bearer {token}");
    let output = Command::new(command)
        .arg("run")
        .arg(&spec)
        .args(["--url", &url, "--checks", "all", "-H", &auth])
        .args(["--max-examples", EXAMPLES, "--seed", SEED, "--workers", "1"])
        .args(paths)
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .output()
        .expect("run schemathesis");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn every_operation_keeps_to_the_openapi_document() {
    let Some(command) = schemathesis() else {
        return;
    };
    let dir = TestDir::new();
    // Jobs to list, show and (failing, with no clusters given) retry.
    let store = Store::open(&dir.path().join("jobs.db")).unwrap();
    for (kind, failed) in [("ConfigMap", true), ("Secret", false)] {
        let id = store
            .begin(&NewJob {
                replica: "r1",
                kind,
                namespace: "shop",
                name: "web",
                operation: Operation::Apply,
                change_key: "sha256:0000000000000000000000000000000000000000000000000000000000000000",
                action: "create",
                options: None,
            })
            .unwrap();
        let outcome = if failed { Err("forbidden") } else { Ok(()) };
        store
            .finish(id, outcome, 1, std::time::Duration::ZERO)
            .unwrap();
    }
    drop(store);
    add_user(&dir, "ada", "a long fuzzing password");
    add_user(&dir, "eve", "another fuzzing password");
    let mut server = ApiServer::start(&dir, &[], &[]);
    let ada = server.login_as("ada", "a long fuzzing password");

    // Everything but the routes that end sessions (a logout, a revoke, a user deleted once the
    // fuzzer has made another admin), which would end the fuzzer's own.
    let (passed, output) = fuzz(
        &command,
        &server,
        &ada,
        &[
            "--exclude-path",
            "/api/logout",
            "--exclude-path",
            "/api/users/{name}",
            "--exclude-path",
            "/api/users/{name}/sessions",
        ],
    );
    assert!(passed, "{output}");
    assert!(
        !output.contains("Authentication failed"),
        "the fuzzer's token stopped working:\n{output}"
    );
    // Then those, as another admin whose sessions may end.
    let eve = server.login_as("eve", "another fuzzing password");
    let (passed, output) = fuzz(
        &command,
        &server,
        &eve,
        &[
            "--include-path",
            "/api/logout",
            "--include-path",
            "/api/users/{name}",
            "--include-path",
            "/api/users/{name}/sessions",
        ],
    );
    assert!(passed, "{output}");
    server.token = None;
    assert_eq!(server.get("/healthz").status, 200, "{}", server.log());
}
