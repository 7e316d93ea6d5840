//! The kustomize bases in `deploy/`, rendered by the real kustomize (built by
//! `scripts/kustomize`) and proven on the local control plane without kubectl: their RBAC
//! objects created for real, the rest validated by server-side dry-run; ServiceAccount tokens
//! minted with `k8s-sync replica-credentials`; two `watch` copies that hold only those
//! credentials elect a leader and sync; a write the replica's role does not grant fails on its
//! own, with the object and the verb named.

mod support;

use std::path::Path;
use std::time::Duration;

use k8s_sync::kinds::TABLE;
use k8s_sync::rbac::{self, Part};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use support::TestDir;
use support::deploy::{Bases, credentials, install, render, render_with};
use support::http::ApiServer;
use support::objects::create;
use support::passes::{jobs, sample};
use support::testenv::{TestEnv, eventually};
use support::watch::{ADMIN_PASSWORD, DEADLINE, configmap, converges, data_of, start_watch_in};

fn only<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = objects.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} in the base");
    found[0]
}

#[test]
fn the_bases_grant_exactly_what_the_kind_table_derives() {
    if !Path::new(&support::repo_root().join("testenv/kustomize/go.mod")).exists() {
        panic!("testenv/kustomize is missing");
    }
    let primary = render("primary", None);
    let replica = render("replica", None);
    assert_eq!(
        rbac::granted(&only(&primary, "ClusterRole")["rules"]),
        rbac::permissions(Part::Primary, &TABLE),
        "deploy/primary's ClusterRole"
    );
    assert_eq!(
        rbac::granted(&only(&replica, "ClusterRole")["rules"]),
        rbac::permissions(Part::Replica, &TABLE),
        "deploy/replica's ClusterRole"
    );
    assert_eq!(
        rbac::granted(&only(&primary, "Role")["rules"]),
        rbac::leader_election(),
        "deploy/primary's Role"
    );
    // Secrets hold the replicas' write tokens: the Role reaches only the accounts' Secret,
    // but for `create`, which no name can limit.
    for rule in only(&primary, "Role")["rules"].as_array().unwrap() {
        if rule["resources"] == json!(["secrets"]) && rule["verbs"] != json!(["create"]) {
            assert_eq!(
                rule["resourceNames"],
                json!([k8s_sync::accounts::SECRET_NAME]),
                "{rule}"
            );
        }
    }

    // Every binding names the base's own ServiceAccount, in its namespace.
    for objects in [&primary, &replica] {
        let account = only(objects, "ServiceAccount");
        for binding in objects
            .iter()
            .filter(|o| o["kind"] == "ClusterRoleBinding" || o["kind"] == "RoleBinding")
        {
            let subject = &binding["subjects"][0];
            assert_eq!(subject["name"], account["metadata"]["name"], "{binding}");
            assert_eq!(
                subject["namespace"], account["metadata"]["namespace"],
                "{binding}"
            );
        }
    }

    let deployment = only(&primary, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    // Ready while serving: a primary outage must not take the API and metrics away. Probed on
    // the metrics port, plain HTTP whatever the API speaks.
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "metrics");
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--leader-elect"), "{args:?}");
    // The default address is loopback: the Pod's must be given.
    assert!(args.contains(&"--listen=0.0.0.0:8080"), "{args:?}");
    assert!(args.contains(&"--metrics-listen=0.0.0.0:9090"), "{args:?}");
    // The TLS component: the certificate from a Secret, mounted, named in the arguments.
    let tls = render_with("primary", None, &["tls"]);
    let pod = &only(&tls, "Deployment")["spec"]["template"]["spec"];
    let tls_args = pod["containers"][0]["args"].to_string();
    assert!(
        tls_args.contains("--tls-cert=/etc/k8s-sync/tls/tls.crt")
            && tls_args.contains("--tls-key=/etc/k8s-sync/tls/tls.key"),
        "{tls_args}"
    );
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["secret"]["secretName"] == "k8s-sync-tls"),
        "{pod}"
    );
    assert!(args.contains(&"--primary=in-cluster"), "{args:?}");
    let shutdown: u64 = args
        .iter()
        .find_map(|a| a.strip_prefix("--shutdown-timeout="))
        .and_then(|t| t.strip_suffix('s'))
        .and_then(|t| t.parse().ok())
        .expect("--shutdown-timeout=Ns");
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        grace > shutdown + 2,
        "grace {grace}s, shutdown {shutdown}s plus the lease"
    );
    let services: Vec<&Value> = primary.iter().filter(|o| o["kind"] == "Service").collect();
    let api = services
        .iter()
        .find(|s| s["metadata"]["name"] == "k8s-sync")
        .unwrap();
    assert_eq!(api["spec"]["selector"]["k8s-sync.io/leader"], "true");
    // Metrics of every copy, followers too.
    let metrics = services
        .iter()
        .find(|s| s["metadata"]["name"] == "k8s-sync-metrics")
        .unwrap();
    assert!(
        metrics["spec"]["selector"]["k8s-sync.io/leader"].is_null(),
        "{metrics}"
    );
    assert_eq!(metrics["spec"]["ports"][0]["port"], 9090);
    assert_eq!(
        only(&primary, "PodDisruptionBudget")["spec"]["minAvailable"],
        1
    );
}

/// The bases installed on the primary and replica-1 under a namespace of their own, and two
/// `watch` copies running with only the credentials minted for their ServiceAccounts, as
/// the Pods `copy-a` and `copy-b` would.
struct Deployment {
    /// k8s-sync's own namespace on the primary.
    home: String,
    /// The namespace the copies sync.
    app: String,
    primary: kube::Client,
    pods: Api<k8s_openapi::api::core::v1::Pod>,
    copies: Vec<(TestDir, ApiServer)>,
    _bases: Bases,
}

/// Where the Pod keeps its job database (deploy/primary's `--db`, on an emptyDir).
const DOCUMENTED_DB: &str = "/var/lib/k8s-sync/jobs.db";

impl Deployment {
    /// With `documented_db`, the first copy keeps its database where the Pod does (when the
    /// test runs as root, and so can make that directory the unprivileged user's); at most
    /// one test at a time may ask for it.
    async fn start(env: &TestEnv, extra: &[&str], documented_db: bool) -> Self {
        let bases = Bases::install(env, &["replica-1"]).await;
        let home = bases.home.clone();
        let primary = env.client("primary").await;
        let app = env.namespace("deployed-app", &["primary"]).await;
        let (read_primary, write_replica) = (&bases.primary, &bases.replicas[0]);
        let (primary_arg, replica_arg) = (bases.primary_arg(), bases.replica_args().remove(0));
        let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(primary.clone(), &home);
        let mut flags = vec!["--leader-elect"];
        flags.extend_from_slice(extra);
        let mut copies = Vec::new();
        for name in ["copy-a", "copy-b"] {
            let pod = serde_json::from_value(json!({"metadata": {"name": name},
                "spec": {"containers": [{"name": "k8s-sync", "image": "k8s-sync:test"}]}}))
            .unwrap();
            pods.create(&PostParams::default(), &pod).await.unwrap();
            // As the Pod runs it: an unprivileged user, its database in its own directory.
            let copy_dir = TestDir::unprivileged();
            copy_dir.share(read_primary);
            copy_dir.share(write_replica);
            let mut flags = flags.clone();
            if documented_db && name == "copy-a" && copy_dir.user().is_some() {
                let home = std::path::Path::new(DOCUMENTED_DB).parent().unwrap();
                let _ = std::fs::remove_dir_all(home);
                std::fs::create_dir_all(home).unwrap();
                let user = support::UNPRIVILEGED;
                std::os::unix::fs::chown(home, Some(user), Some(user)).unwrap();
                flags.extend(["--db", DOCUMENTED_DB]);
            }
            let daemon = start_watch_in(
                &copy_dir,
                env,
                &primary_arg,
                &[&replica_arg],
                &format!("{app},{home}"),
                "watch.log",
                &flags,
                &[("POD_NAME", name), ("POD_NAMESPACE", &home)],
            );
            let mut api = ApiServer::attach(daemon);
            api.login_as("admin", ADMIN_PASSWORD);
            copies.push((copy_dir, api));
        }
        Deployment {
            home,
            app,
            primary,
            pods,
            copies,
            _bases: bases,
        }
    }

    /// Which copy leads, once exactly one does.
    async fn leader(&self) -> usize {
        let mut found = None;
        eventually(DEADLINE, "exactly one copy leads", || {
            let leading: Vec<usize> = (0..self.copies.len())
                .filter(|i| {
                    let status = self.copies[*i].1.get("/api/status");
                    status.status == 200 && status.json()["leader"]["leading"] == true
                })
                .collect();
            found = (leading.len() == 1).then(|| leading[0]);
            async move { leading.len() == 1 }
        })
        .await;
        found.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_copies_with_only_the_bases_credentials_elect_a_leader_and_sync() {
    let Some(env) = TestEnv::get() else { return };
    let deployment = Deployment::start(&env, &[], true).await;
    let (primary, app, home, pods) = (
        &deployment.primary,
        &deployment.app,
        &deployment.home,
        &deployment.pods,
    );
    create(primary, app, configmap("settings", json!({"n": "1"}))).await;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token"},
        "stringData": {"value": "not-for-the-log"}});
    create(primary, app, secret).await;
    // The namespace k8s-sync runs in holds the replicas' write tokens: never synced, even
    // when named.
    let own = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k8s-sync-replicas"},
        "stringData": {"replica-1": "a kubeconfig"}});
    create(primary, home, own).await;
    let copies = &deployment.copies;
    converges(&env, "replica-1", app, "settings", json!({"n": "1"})).await;
    let leading: Vec<bool> = copies
        .iter()
        .map(|(_, api)| api.get("/api/status").json()["leader"]["leading"] == true)
        .collect();
    assert_eq!(leading.iter().filter(|l| **l).count(), 1, "{leading:?}");
    let leader = &copies[leading.iter().position(|l| *l).unwrap()];
    let replica = env.client("replica-1").await;
    eventually(DEADLINE, "the Secret synced", || async {
        support::objects::get(&replica, app, "secrets", "token")
            .await
            .is_some()
    })
    .await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(replica.clone());
    let copied = support::objects::get(&replica, home, "secrets", "k8s-sync-replicas").await;
    assert!(copied.is_none(), "k8s-sync's own namespace was synced");
    assert!(
        namespaces.get_opt(home).await.unwrap().is_some(),
        "the replica base made it"
    );
    let metrics = leader.1.get("/metrics").text();
    let left = sample(
        &metrics,
        "k8s_sync_credentials_expiry_seconds{replica=\"replica-1\"}",
    )
    .expect("the token's expiry is a gauge");
    assert!(left > 3600.0 && left <= 7200.0, "{left}");
    eventually(DEADLINE, "the leader labelled its Pod", || async {
        let name = leader.1.get("/api/status").json()["leader"]["identity"].clone();
        let pod = pods.get(name.as_str().unwrap()).await.unwrap();
        pod.metadata
            .labels
            .is_some_and(|l| l.get("k8s-sync.io/leader").map(String::as_str) == Some("true"))
    })
    .await;
    assert!(data_of(&replica, app, "settings").await.is_some());
    for (index, (dir, api)) in copies.iter().enumerate() {
        assert!(!api.log().contains("not-for-the-log"), "{}", api.log());
        if let Some(user) = dir.user() {
            // copy-a keeps its database where the Pod does; copy-b in its own directory.
            let path = if index == 0 {
                std::path::PathBuf::from(DOCUMENTED_DB)
            } else {
                dir.path().join("jobs.db")
            };
            use std::os::unix::fs::MetadataExt as _;
            let db = std::fs::metadata(&path).unwrap();
            assert_eq!(
                db.uid(),
                user,
                "{} is the unprivileged user's",
                path.display()
            );
            assert_eq!(db.mode() & 0o777, 0o600, "{}", path.display());
        }
    }
    let documented = copies[0].0.user().is_some();
    drop(deployment);
    if documented {
        let _ = std::fs::remove_dir_all(std::path::Path::new(DOCUMENTED_DB).parent().unwrap());
    }
}

#[tokio::test]
async fn a_write_the_replica_role_does_not_grant_fails_alone_naming_the_object_and_the_verb() {
    let Some(env) = TestEnv::get() else { return };
    let tag = format!("{:08x}", fastrand::u32(..));
    let home = format!("k8s-sync-{tag}");
    let mut replica_objects = render("replica", Some((&home, &tag)));
    // The replica's role with Secrets read-only, as a cluster administrator might narrow it.
    for object in &mut replica_objects {
        if object["kind"] == "ClusterRole" {
            let rules = object["rules"].as_array_mut().unwrap();
            for rule in rules.iter_mut() {
                let resources = rule["resources"].as_array_mut().unwrap();
                resources.retain(|r| r != "secrets");
            }
            rules.push(json!({"apiGroups": [""], "resources": ["secrets"],
                "verbs": ["get", "list", "watch"]}));
        }
    }
    install(&env.client("replica-2").await, &replica_objects).await;
    let app = env.namespace("narrow-app", &["primary", "replica-2"]).await;
    let primary = env.client("primary").await;
    create(&primary, &app, configmap("settings", json!({"n": "1"}))).await;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token"},
        "stringData": {"value": "not-for-the-log"}});
    create(&primary, &app, secret).await;

    let dir = TestDir::new();
    std::fs::create_dir(dir.path().join("replicas")).unwrap();
    let limited = credentials(
        &dir,
        &env.kubeconfig("replica-2"),
        &format!("{home}/{tag}-k8s-sync-replica"),
        "replicas/replica-2.kubeconfig",
    );
    let limited = limited.display().to_string();
    let run = dir.cmd(&[
        "apply",
        "--primary",
        &env.arg("primary"),
        "--replica",
        &limited,
        "--sync-namespaces",
        &app,
        "--db",
        "jobs.db",
    ]);
    run.expect_code(1);
    let replica = env.client("replica-2").await;
    assert!(
        data_of(&replica, &app, "settings").await.is_some(),
        "the other objects proceed\n{}",
        run.stderr()
    );
    let failed = jobs(&dir, &["--status", "failed"]);
    assert_eq!(failed.len(), 1, "{failed:?}");
    let error = failed[0]["error"].as_str().unwrap();
    assert!(!error.contains('\n'), "{error}");
    assert!(error.contains(&format!("{app}/Secret/token")), "{error}");
    assert!(error.contains("403 Forbidden"), "{error}");
    assert!(
        error.contains("cannot patch resource \"secrets\""),
        "{error}"
    );
    assert!(!run.stderr().contains("not-for-the-log"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_kubeconfig_is_read_again_once_the_old_token_is_revoked() {
    let Some(env) = TestEnv::get() else { return };
    let tag = format!("{:08x}", fastrand::u32(..));
    let home = format!("k8s-sync-{tag}");
    install(
        &env.client("replica-2").await,
        &render("replica", Some((&home, &tag))),
    )
    .await;
    let app = env.namespace("rotated-app", &["primary"]).await;
    let primary = env.client("primary").await;
    create(&primary, &app, configmap("one", json!({"n": "1"}))).await;

    let dir = TestDir::new();
    std::fs::create_dir(dir.path().join("replicas")).unwrap();
    let account = format!("{home}/{tag}-k8s-sync-replica");
    let kubeconfig = credentials(
        &dir,
        &env.kubeconfig("replica-2"),
        &account,
        "replicas/replica-2.kubeconfig",
    );
    let old = dir.path().join("old.kubeconfig");
    std::fs::copy(&kubeconfig, &old).unwrap();
    let replica_arg = kubeconfig.display().to_string();
    let daemon = start_watch_in(
        &dir,
        &env,
        "primary",
        &[&replica_arg],
        &app,
        "watch.log",
        &[],
        &[],
    );
    let api = ApiServer::attach(daemon);
    converges(&env, "replica-2", &app, "one", json!({"n": "1"})).await;
    // Minted for two hours: within the warning's 48.
    assert!(
        api.log().contains("the replica's token expires soon"),
        "{}",
        api.log()
    );

    // Revoked: a token dies with the ServiceAccount it was minted for.
    let replica = env.client("replica-2").await;
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(replica.clone(), &home);
    let name = format!("{tag}-k8s-sync-replica");
    accounts.delete(&name, &Default::default()).await.unwrap();
    let again = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    accounts
        .create(&PostParams::default(), &again)
        .await
        .unwrap();
    let revoked = support::testenv::client_from(&old).await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(revoked);
    eventually(DEADLINE, "the old token refused", || async {
        matches!(namespaces.list_metadata(&Default::default()).await,
            Err(kube::Error::Api(status)) if status.code == 401)
    })
    .await;
    // Rotated: the new kubeconfig replaces the old one at once (written aside, renamed).
    credentials(
        &dir,
        &env.kubeconfig("replica-2"),
        &account,
        "replicas/replica-2.kubeconfig",
    );
    create(&primary, &app, configmap("two", json!({"n": "2"}))).await;
    converges(&env, "replica-2", &app, "two", json!({"n": "2"})).await;
    assert!(
        api.log()
            .contains("kubeconfig changed: credentials re-read"),
        "{}",
        api.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_keeps_the_users_the_sessions_and_the_held_prunes() {
    let Some(env) = TestEnv::get() else { return };
    let deployment = Deployment::start(&env, &["--max-prune", "2"], false).await;
    let (primary, app) = (&deployment.primary, &deployment.app);
    let names: Vec<String> = (0..5).map(|n| format!("cm-{n}")).collect();
    for name in &names {
        create(primary, app, configmap(name, json!({"n": "1"}))).await;
    }
    for name in &names {
        converges(&env, "replica-1", app, name, json!({"n": "1"})).await;
    }
    let first = deployment.leader().await;
    let (_, leader) = &deployment.copies[first];
    let added = leader.post(
        "/api/users",
        &json!({"username": "ada", "password": "a long passphrase of ada"}),
    );
    assert_eq!(added.status, 201, "{added}");
    let token = leader.token.clone().unwrap();

    // Four deletions against a limit of two prunes in the window: two are pruned, two held.
    for name in &names[..4] {
        support::objects::delete(primary, app, "configmaps", name).await;
    }
    let held = |api: &ApiServer| {
        let listed = api.get("/api/jobs?status=held").json();
        listed["jobs"].as_array().map_or(0, Vec::len)
    };
    eventually(DEADLINE, "two prunes held", || {
        let seen = held(leader);
        async move { seen == 2 }
    })
    .await;
    let replica = env.client("replica-1").await;
    let left = || async {
        let mut left = Vec::new();
        for name in &names {
            if data_of(&replica, app, name).await.is_some() {
                left.push(name.clone());
            }
        }
        left
    };
    let kept = left().await;
    assert_eq!(kept.len(), 3, "{kept:?}");

    let mut copies = deployment.copies;
    copies[first].1.kill();
    create(primary, app, configmap("meanwhile", json!({"n": "1"}))).await;
    let (_, next) = &mut copies[1 - first];
    // Within the lease duration (15 s), plus 5 s.
    eventually(Duration::from_secs(15 + 5), "the other copy leads", || {
        let status = next.get("/api/status");
        async move { status.status == 200 && status.json()["leader"]["leading"] == true }
    })
    .await;
    // The session opened on the old leader holds on the new one, and the user added there.
    next.token = Some(token);
    let users = next.get("/api/users");
    assert_eq!(users.status, 200, "{users}");
    assert!(users.text().contains("\"ada\""), "{users}");
    // So is the trail of what was done through the old leader.
    let trail = next.get("/api/audit").json();
    let added_on_the_old_leader =
        trail["entries"].as_array().unwrap().iter().any(|e| {
            e["action"] == "POST /api/users" && e["user"] == "admin" && e["status"] == 201
        });
    assert!(added_on_the_old_leader, "{trail}");
    // The new leader's window is empty, yet it holds the same two prunes again: the replica's
    // objects carry the hold.
    eventually(DEADLINE, "the prunes held again by the new leader", || {
        let seen = held(next);
        async move { seen == 2 }
    })
    .await;
    assert_eq!(left().await, kept, "pruned without a release");
    converges(&env, "replica-1", app, "meanwhile", json!({"n": "1"})).await;
    let released = next.request("POST", "/api/prunes/release?replica=replica-1", None);
    assert_eq!(released.status, 200, "{released}");
    assert_eq!(released.json()["report"]["pruned"], 2, "{released}");
    assert_eq!(left().await, ["cm-4"]);
    next.login_as("ada", "a long passphrase of ada");
}

#[tokio::test]
async fn the_bases_credentials_sync_every_kind_of_the_table_rbac_included() {
    let Some(env) = TestEnv::get() else { return };
    let bases = Bases::install(&env, &["replica-2"]).await;
    let ns = env.namespace("deployed-kinds", &["primary"]).await;
    let primary = env.client("primary").await;
    // A Role granting more than k8s-sync's own ServiceAccount holds (escalate), a binding of
    // it and one of a ClusterRole (bind), beside an object of every other row.
    let manifests = [
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "everything"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "everything"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "everything"},
            "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": ns}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "admin"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": ns}]}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1.37"}]}}}}}}),
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1.37"}]}}}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}),
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}}),
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 3}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
            "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}}),
    ];
    support::objects::apply_manifests(&primary, &ns, &manifests).await;
    let kinds: Vec<&str> = TABLE.iter().map(|k| k.plural).collect();
    let replica = bases.replica_args().remove(0);
    let run = bases.dir.cmd(&[
        "apply",
        "--primary",
        &bases.primary_arg(),
        "--replica",
        &replica,
        "--sync-namespaces",
        &ns,
        "--db",
        "jobs.db",
        "--kinds",
        &kinds.join(","),
        "-o",
        "json",
    ]);
    run.expect_code(0);
    assert_eq!(
        run.json()["replicas"][0]["created"],
        manifests.len(),
        "{run}"
    );
    let copy = support::objects::get_any(
        &env.client("replica-2").await,
        &ns,
        "roles.rbac.authorization.k8s.io",
        "everything",
    )
    .await
    .expect("the Role on the replica");
    assert_eq!(copy["rules"][0]["verbs"], json!(["*"]));
    bases
        .dir
        .cmd(&[
            "diff",
            "--primary",
            &bases.primary_arg(),
            "--replica",
            &replica,
            "--sync-namespaces",
            &ns,
            "--kinds",
            &kinds.join(","),
        ])
        .expect_code(0);
}
