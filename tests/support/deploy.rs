//! The kustomize bases of `deploy/` on the local control plane: rendered by the real
//! kustomize (`scripts/kustomize`), created through the API (RBAC for real, the rest by
//! server-side dry-run), and credentials minted for their ServiceAccounts with
//! `k8s-sync replica-credentials`, so that tests run k8s-sync with only what the bases grant.

use std::path::{Path, PathBuf};
use std::process::Command;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::Value;

use super::TestDir;
use super::testenv::{TestEnv, eventually};
use super::watch::DEADLINE;

/// `deploy/primary` in the primary and `deploy/replica` in some replicas, under a namespace
/// and a name prefix of their own, with kubeconfigs holding only their ServiceAccounts'
/// tokens.
pub struct Bases {
    /// k8s-sync's own namespace on the primary (and the replicas' ServiceAccount's).
    pub home: String,
    /// The prefix of every name.
    pub tag: String,
    /// The primary's ServiceAccount: read across namespaces, its Lease and accounts at home.
    pub primary: PathBuf,
    /// Each replica's ServiceAccount, as `replicas/<cluster>.kubeconfig`.
    pub replicas: Vec<PathBuf>,
    /// Where the kubeconfigs are.
    pub dir: TestDir,
}

impl Bases {
    /// Installs the bases in the primary and in `replicas`, and mints their credentials.
    pub async fn install(env: &TestEnv, replicas: &[&str]) -> Self {
        let tag = format!("{:08x}", fastrand::u32(..));
        let home = format!("k8s-sync-{tag}");
        install(
            &env.client("primary").await,
            &render("primary", Some((&home, &tag))),
        )
        .await;
        let replica_objects = render("replica", Some((&home, &tag)));
        for replica in replicas {
            install(&env.client(replica).await, &replica_objects).await;
        }
        let dir = TestDir::new();
        let primary = credentials(
            &dir,
            &env.kubeconfig("primary"),
            &format!("{home}/{tag}-k8s-sync"),
            "primary.kubeconfig",
        );
        std::fs::create_dir(dir.path().join("replicas")).unwrap();
        let replicas = replicas
            .iter()
            .map(|replica| {
                credentials(
                    &dir,
                    &env.kubeconfig(replica),
                    &format!("{home}/{tag}-k8s-sync-replica"),
                    &format!("replicas/{replica}.kubeconfig"),
                )
            })
            .collect();
        Bases {
            home,
            tag,
            primary,
            replicas,
            dir,
        }
    }

    /// The primary's kubeconfig, as an argument.
    pub fn primary_arg(&self) -> String {
        self.primary.display().to_string()
    }

    /// The replicas' kubeconfigs, as arguments.
    pub fn replica_args(&self) -> Vec<String> {
        self.replicas
            .iter()
            .map(|p| p.display().to_string())
            .collect()
    }
}

/// `deploy/<base>` rendered by kustomize, through an overlay putting it in `namespace` with
/// `prefix` on every name when given.
pub fn render(base: &str, overlay: Option<(&str, &str)>) -> Vec<Value> {
    render_with(base, overlay, &[])
}

/// [`render`] with `deploy/components/<name>` for each of `components`.
pub fn render_with(base: &str, overlay: Option<(&str, &str)>, components: &[&str]) -> Vec<Value> {
    let root = super::repo_root();
    let dir = TestDir::new();
    let target = if overlay.is_none() && components.is_empty() {
        root.join("deploy").join(base)
    } else {
        // kustomize takes bases by relative path only.
        let up = "../".repeat(dir.path().components().count() - 1);
        let relative =
            |path: PathBuf| format!("{up}{}", path.display().to_string().trim_start_matches('/'));
        let mut text = format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\n",
            relative(root.join("deploy").join(base))
        );
        if let Some((namespace, prefix)) = overlay {
            text.push_str(&format!("namespace: {namespace}\nnamePrefix: {prefix}-\n"));
        }
        if !components.is_empty() {
            text.push_str("components:\n");
            for component in components {
                let path = root.join("deploy/components").join(component);
                text.push_str(&format!("  - {}\n", relative(path)));
            }
        }
        dir.write("kustomization.yaml", &text);
        dir.path().to_path_buf()
    };
    let output = Command::new(root.join("scripts/kustomize"))
        .args(["build", "--load-restrictor", "LoadRestrictionsNone"])
        .arg(&target)
        .output()
        .expect("run scripts/kustomize");
    assert!(
        output.status.success(),
        "kustomize build {}: {}",
        target.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| serde::Deserialize::deserialize(document).unwrap())
        .collect()
}

/// Creates every object of a rendered base on `cluster`: RBAC, ServiceAccounts and
/// Namespaces for real, the rest (workloads, Services, budgets) with server-side dry-run.
pub async fn install(client: &kube::Client, objects: &[Value]) {
    for object in objects {
        let kind = object["kind"].as_str().unwrap();
        let (group, version) = match object["apiVersion"].as_str().unwrap().split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", object["apiVersion"].as_str().unwrap()),
        };
        let plural = match kind {
            "Namespace" => "namespaces",
            "ServiceAccount" => "serviceaccounts",
            "ClusterRole" => "clusterroles",
            "ClusterRoleBinding" => "clusterrolebindings",
            "Role" => "roles",
            "RoleBinding" => "rolebindings",
            "Deployment" => "deployments",
            "Service" => "services",
            "PodDisruptionBudget" => "poddisruptionbudgets",
            other => panic!("no plural for {other}"),
        };
        let resource =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
            Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let real = matches!(
            kind,
            "Namespace"
                | "ServiceAccount"
                | "ClusterRole"
                | "ClusterRoleBinding"
                | "Role"
                | "RoleBinding"
        );
        let params = PostParams {
            dry_run: !real,
            ..PostParams::default()
        };
        let dynamic: DynamicObject = serde_json::from_value(object.clone()).unwrap();
        api.create(&params, &dynamic)
            .await
            .unwrap_or_else(|e| panic!("create {kind} {}: {e}", object["metadata"]["name"]));
    }
}

/// `k8s-sync replica-credentials` for `account` with `admin`'s rights, written to `out`.
pub fn credentials(dir: &TestDir, admin: &Path, account: &str, out: &str) -> std::path::PathBuf {
    let admin = admin.display().to_string();
    let run = dir.cmd(&[
        "replica-credentials",
        "--kubeconfig",
        &admin,
        "--service-account",
        account,
        "--duration",
        "2h",
        "--out",
        out,
    ]);
    run.expect_code(0);
    assert!(
        run.stderr().contains("token expires at"),
        "{}",
        run.stderr()
    );
    let path = dir.path().join(out);
    wait_for_rbac(&path);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains("client-key-data"),
        "only the token, not the admin's key"
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    path
}

/// Waits until the API server's RBAC cache knows the bindings just made: a list of
/// namespaces with `kubeconfig`'s token succeeds.
fn wait_for_rbac(kubeconfig: &Path) {
    let kubeconfig = kubeconfig.to_path_buf();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let client = super::testenv::client_from(&kubeconfig).await;
            let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
            eventually(DEADLINE, "the new bindings in force", || async {
                namespaces.list_metadata(&Default::default()).await.is_ok()
            })
            .await;
        });
    })
    .join()
    .unwrap();
}
