//! The kind table: one row per built-in kind k8s-sync knows more of than discovery says. Each
//! row has a test against a real API server (`tests/e2e_kinds.rs`).

use super::{Kind, Stage};

/// The kinds synced when `--kinds` is not given: what k8s-sync was first asked for.
pub(super) const DEFAULT: [&str; 5] = [
    "configmaps",
    "secrets",
    "persistentvolumeclaims",
    "deployments",
    "statefulsets",
];

const fn row(
    kind: &'static str,
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    stage: Stage,
) -> Kind {
    let mut kind = Kind::discovered(kind, group, version, plural, true);
    kind.stage = stage;
    kind.in_table = true;
    kind.recreatable = true;
    kind
}

/// CustomResourceDefinitions, synced with `--sync-crds` (only those the synced custom resources
/// need), before everything else, and never pruned.
pub static CRD: Kind = {
    let mut crd = row(
        "CustomResourceDefinition",
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        Stage::Definitions,
    );
    crd.namespaced = false;
    crd.never_pruned = true;
    // The server refuses a change of scope, and of the group and names the CRD is named by.
    crd.immutable = &["spec.scope", "spec.group", "spec.names.plural"];
    crd.recreatable = false;
    crd
};

/// The rows, namespaced kinds all.
pub static TABLE: [Kind; 15] = [
    row(
        "ServiceAccount",
        "",
        "v1",
        "serviceaccounts",
        Stage::Foundations,
    ),
    {
        let mut role = row(
            "Role",
            "rbac.authorization.k8s.io",
            "v1",
            "roles",
            Stage::Foundations,
        );
        role.path_segment_names = true;
        role
    },
    {
        let mut binding = row(
            "RoleBinding",
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            Stage::Foundations,
        );
        // A binding's role cannot change: the server wants a new binding.
        binding.immutable = &["roleRef"];
        binding.path_segment_names = true;
        binding
    },
    row("ConfigMap", "", "v1", "configmaps", Stage::Foundations),
    {
        let mut secret = row("Secret", "", "v1", "secrets", Stage::Foundations);
        // The server rejects a change of type; data of `immutable: true` Secrets is handled by
        // the server's error, not predicted here.
        secret.immutable = &["type"];
        secret
    },
    {
        let mut pvc = row(
            "PersistentVolumeClaim",
            "",
            "v1",
            "persistentvolumeclaims",
            Stage::Foundations,
        );
        pvc.immutable = &["spec"];
        // Storage may grow (the server refuses shrinking); the attributes class may change.
        pvc.mutable_exceptions = &[
            "spec.resources.requests.storage",
            "spec.volumeAttributesClassName",
        ];
        pvc.recreatable = false;
        pvc.holds_data = true;
        pvc
    },
    {
        let mut service = row("Service", "", "v1", "services", Stage::Network);
        // Cluster IPs are allocated per cluster and stripped (`normalize`), but a headless
        // Service (`clusterIP: None`) cannot become a normal one, nor the reverse.
        service.immutable = &["spec.clusterIP", "spec.clusterIPs"];
        service
    },
    {
        let mut deployment = row("Deployment", "apps", "v1", "deployments", Stage::Workloads);
        deployment.immutable = &["spec.selector"];
        deployment
    },
    {
        let mut sts = row(
            "StatefulSet",
            "apps",
            "v1",
            "statefulsets",
            Stage::Workloads,
        );
        sts.immutable = &["spec"];
        // The fields `kubectl apply` may change on a StatefulSet, as the API server lists
        // them in its validation error.
        sts.mutable_exceptions = &[
            "spec.replicas",
            "spec.ordinals",
            "spec.template",
            "spec.updateStrategy",
            "spec.persistentVolumeClaimRetentionPolicy",
            "spec.minReadySeconds",
            "spec.revisionHistoryLimit",
        ];
        sts
    },
    {
        let mut daemon_set = row("DaemonSet", "apps", "v1", "daemonsets", Stage::Workloads);
        daemon_set.immutable = &["spec.selector"];
        daemon_set
    },
    {
        let mut cron_job = row("CronJob", "batch", "v1", "cronjobs", Stage::Workloads);
        cron_job.suspended_on_replicas = true;
        cron_job
    },
    row(
        "Ingress",
        "networking.k8s.io",
        "v1",
        "ingresses",
        Stage::Rest,
    ),
    row(
        "NetworkPolicy",
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        Stage::Rest,
    ),
    row(
        "PodDisruptionBudget",
        "policy",
        "v1",
        "poddisruptionbudgets",
        Stage::Rest,
    ),
    row(
        "HorizontalPodAutoscaler",
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        Stage::Rest,
    ),
];
