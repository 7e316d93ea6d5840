//! The job lifecycle, on in-memory and file databases.

use super::*;
use rusqlite::Connection;
use std::time::Duration;

fn job<'a>(key: &'a str) -> NewJob<'a> {
    NewJob {
        replica: "r1",
        kind: "ConfigMap",
        namespace: "shop",
        name: "a",
        operation: Operation::Apply,
        change_key: key,
        action: "create",
        options: None,
    }
}

#[test]
fn records_a_job_through_its_life() {
    let store = Store::in_memory().unwrap();
    let id = store.begin(&job("sha256:1")).unwrap();
    assert_eq!(store.job(id).unwrap().unwrap().status, Status::Pending);
    store.start(id).unwrap();
    assert_eq!(store.counts(None).unwrap().ongoing, 1);
    store
        .finish(id, Err("boom"), 3, Duration::from_millis(12))
        .unwrap();
    let failed = store.job(id).unwrap().unwrap();
    assert_eq!(
        (failed.status, failed.attempts, failed.error.as_deref()),
        (Status::Failed, 3, Some("boom"))
    );
    assert_eq!(failed.duration_ms, Some(12));
}

#[test]
fn the_same_change_is_one_row() {
    let store = Store::in_memory().unwrap();
    let id = store.begin(&job("sha256:1")).unwrap();
    store.finish(id, Ok(()), 1, Duration::ZERO).unwrap();
    // Needed again (the replica was edited by hand): re-opened, not duplicated.
    let again = store
        .begin(&NewJob {
            action: "update",
            ..job("sha256:1")
        })
        .unwrap();
    assert_eq!(again, id);
    let row = store.job(id).unwrap().unwrap();
    assert_eq!(
        (row.status, row.runs, row.action.as_str()),
        (Status::Pending, 2, "update")
    );
    // A new change key is a new job.
    assert_ne!(store.begin(&job("sha256:2")).unwrap(), id);
    // Deleting the same key is a different operation.
    let delete = NewJob {
        operation: Operation::Delete,
        action: "prune",
        ..job("sha256:1")
    };
    assert_ne!(store.begin(&delete).unwrap(), id);
    assert_eq!(store.counts(None).unwrap().total, 3);
}

#[test]
fn settles_open_jobs_the_replica_already_has() {
    let store = Store::in_memory().unwrap();
    let id = store.begin(&job("sha256:1")).unwrap();
    store
        .finish(id, Err("unreachable"), 5, Duration::ZERO)
        .unwrap();
    assert_eq!(
        store
            .settle("r1", "ConfigMap", "shop", "a", "sha256:1")
            .unwrap(),
        1
    );
    assert_eq!(store.job(id).unwrap().unwrap().status, Status::Succeeded);
    assert_eq!(
        store
            .settle("r1", "ConfigMap", "shop", "a", "sha256:1")
            .unwrap(),
        0
    );
}

/// Three finished jobs, one on `r1` and two on `r2` (keys `sha256:0` to `sha256:2`); the
/// one numbered `failed` failed.
fn three_jobs(failed: usize) -> Store {
    let store = Store::in_memory().unwrap();
    for (i, replica) in ["r1", "r2", "r2"].iter().enumerate() {
        let key = format!("sha256:{i}");
        let id = store
            .begin(&NewJob {
                replica,
                ..job(&key)
            })
            .unwrap();
        let outcome = if i == failed { Err("x") } else { Ok(()) };
        store.finish(id, outcome, 1, Duration::ZERO).unwrap();
    }
    store
}

#[test]
fn filters_and_counts() {
    let store = three_jobs(0);
    let failed = store
        .jobs(&JobFilter {
            status: Some(Status::Failed),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(failed.len(), 1);
    let r2 = store
        .jobs(&JobFilter {
            replica: Some("r2".into()),
            limit: Some(1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r2.len(), 1);
    let counts = store.counts(Some("r2")).unwrap();
    assert_eq!((counts.total, counts.succeeded, counts.failed), (2, 2, 0));
}

#[test]
fn migrates_a_file_once_and_refuses_newer_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let id = Store::open(&path).unwrap().begin(&job("sha256:1")).unwrap();
    let reopened = Store::open(&path).unwrap();
    assert_eq!(reopened.job(id).unwrap().unwrap().change_key, "sha256:1");
    drop(reopened);
    let connection = Connection::open(&path).unwrap();
    connection.pragma_update(None, "user_version", 99).unwrap();
    drop(connection);
    assert!(matches!(
        Store::open(&path),
        Err(Error::TooNew { found: 99, .. })
    ));
}

#[test]
fn shows_no_change_key_of_a_secret() {
    let store = Store::in_memory().unwrap();
    let config = store.begin(&job("sha256:1")).unwrap();
    let secret = store
        .begin(&NewJob {
            kind: "Secret",
            ..job("sha256:2")
        })
        .unwrap();
    let shown = |id| store.job(id).unwrap().unwrap().shown();
    assert_eq!(shown(config)["change_key"], "sha256:1");
    assert!(shown(secret)["change_key"].is_null());
}

#[test]
fn counts_every_replica_in_one_scan_and_finds_the_last_pass() {
    let store = three_jobs(2);
    assert_eq!(store.last_pass().unwrap(), None);
    let all = store.counts_by_replica().unwrap();
    assert_eq!((all["r1"].total, all["r1"].succeeded), (1, 1));
    assert_eq!((all["r2"].total, all["r2"].failed), (2, 1));
    store.begin_pass("primary", "sha256:a", 3).unwrap();
    let id = store.begin_pass("primary", "sha256:b", 4).unwrap();
    store.finish_pass(id, 2, 1, 1).unwrap();
    let last = store.last_pass().unwrap().unwrap();
    assert_eq!(
        (last.id, last.root_hash.as_str(), last.applied),
        (id, "sha256:b", 1)
    );
    assert!(last.finished_at.is_some());
}

#[test]
fn running_jobs_of_a_live_process_stay_and_those_of_a_gone_one_become_pending() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let gone = Store::open(&path).unwrap();
    let live = Store::open(&path).unwrap();
    let mine = Store::open(&path).unwrap();
    let of_gone = gone.begin(&job("sha256:1")).unwrap();
    gone.start(of_gone).unwrap();
    let of_live = live.begin(&job("sha256:2")).unwrap();
    live.start(of_live).unwrap();
    let of_mine = mine.begin(&job("sha256:3")).unwrap();
    mine.start(of_mine).unwrap();
    drop(gone);
    assert_eq!(mine.settle_abandoned().unwrap(), 1);
    let status = |id| mine.job(id).unwrap().unwrap().status;
    assert_eq!(status(of_gone), Status::Pending);
    assert_eq!(
        status(of_live),
        Status::Running,
        "another live process's work"
    );
    assert_eq!(status(of_mine), Status::Running, "this process's own work");
    drop(live);
    assert_eq!(mine.settle_abandoned().unwrap(), 1);
    assert_eq!(status(of_live), Status::Pending);
}

#[test]
fn prunes_are_held_delayed_and_cancelled() {
    let store = Store::in_memory().unwrap();
    let prune = |name: &'static str, key: &'static str| NewJob {
        name,
        operation: Operation::Delete,
        action: "prune",
        ..job(key)
    };
    let held = store.hold(&prune("a", "sha256:1")).unwrap();
    let due: jiff::Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
    let delayed = store.delay(&prune("b", "sha256:2"), due).unwrap();
    // Seen again later: the first due time stays.
    let later: jiff::Timestamp = "2026-12-01T11:00:00Z".parse().unwrap();
    assert_eq!(
        store.delay(&prune("b", "sha256:2"), later).unwrap(),
        delayed
    );
    let deferred = store.deferred_prunes("r1", None).unwrap();
    assert_eq!(deferred.len(), 2);
    let b = deferred.iter().find(|d| d.name == "b").unwrap();
    assert_eq!((b.status, b.due_at), (Status::Delayed, Some(due)));
    let one = store
        .deferred_prunes("r1", Some(("ConfigMap", "shop", "a")))
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].status, Status::Held);
    let counts = store.counts(None).unwrap();
    assert_eq!((counts.held, counts.delayed), (1, 1));

    assert_eq!(
        store.cancel_prunes("r1", "ConfigMap", "shop", "a").unwrap(),
        1
    );
    assert_eq!(store.job(held).unwrap().unwrap().status, Status::Cancelled);
    // A prune needed again after its cancellation is held again, as a new run.
    store.hold(&prune("a", "sha256:1")).unwrap();
    let again = store.job(held).unwrap().unwrap();
    assert_eq!((again.status, again.runs), (Status::Held, 2));
    assert_eq!(store.record_release("r1", "cli", 1).unwrap(), 1);
}

#[test]
fn migrates_a_version_2_database_keeping_its_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let connection = Connection::open(&path).unwrap();
    for migration in &super::super::migrations::MIGRATIONS[..2] {
        connection.execute_batch(migration).unwrap();
    }
    connection.pragma_update(None, "user_version", 2).unwrap();
    connection
        .execute(
            "INSERT INTO jobs (replica, kind, namespace, name, operation, change_key, action,
                               status, created_at, updated_at)
             VALUES ('r1', 'ConfigMap', 'shop', 'a', 'apply', 'sha256:1', 'create', 'failed',
                     't', 't')",
            [],
        )
        .unwrap();
    drop(connection);
    let store = Store::open(&path).unwrap();
    let jobs = store.jobs(&JobFilter::default()).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!((jobs[0].status, jobs[0].runs), (Status::Failed, 1));
    let id = store
        .hold(&NewJob {
            operation: Operation::Delete,
            ..job("sha256:1")
        })
        .unwrap();
    assert_eq!(store.job(id).unwrap().unwrap().status, Status::Held);
}

#[test]
fn a_job_keeps_the_options_of_the_pass_that_made_it() {
    let store = Store::in_memory().unwrap();
    let options = r#"{"adopt":false,"prune":true}"#;
    let id = store
        .begin(&NewJob {
            options: Some(options),
            ..job("sha256:1")
        })
        .unwrap();
    assert_eq!(
        store.job(id).unwrap().unwrap().shown()["options"]["adopt"],
        false
    );
    // Re-opened without options (a settle, say): the recorded ones stay.
    store.begin(&job("sha256:1")).unwrap();
    assert_eq!(
        store.job(id).unwrap().unwrap().options.as_deref(),
        Some(options)
    );
}

#[test]
fn users_made_before_roles_are_admins_after_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let connection = Connection::open(&path).unwrap();
    for migration in &super::super::migrations::MIGRATIONS[..4] {
        connection.execute_batch(migration).unwrap();
    }
    connection.pragma_update(None, "user_version", 4).unwrap();
    connection
        .execute(
            "INSERT INTO users (name, password_hash, created_at, updated_at)
             VALUES ('ada', '$2b$04$hash', 't', 't')",
            [],
        )
        .unwrap();
    drop(connection);
    let store = Store::open(&path).unwrap();
    let users = store.users().unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].role, crate::store::Role::Admin);
    use std::os::unix::fs::PermissionsExt as _;
    let fresh = dir.path().join("fresh.db");
    drop(Store::open(&fresh).unwrap());
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "a new database is its owner's only");
}
