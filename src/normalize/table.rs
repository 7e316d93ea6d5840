//! The normalization rules, applied in this order: what each strips, folds, defaults or spells
//! canonically, and for which kinds. Each row has a test (`tests.rs`).

use super::rules::{Action, Applies, Empty, Rule};
use super::{ANNOTATION_PREFIX, MANAGED_LABEL};

const WORKLOADS: Applies = Applies::To(&["Deployment", "StatefulSet", "DaemonSet"]);
const SERVICES: Applies = Applies::To(&["Service"]);
const STATEFUL_SETS: Applies = Applies::To(&["StatefulSet"]);
const PVC: Applies = Applies::To(&["PersistentVolumeClaim"]);

/// The normalization rules, applied in order.
pub static RULES: &[Rule] = &[
    // Server-written identity, versioning and bookkeeping: differs on every cluster.
    strip("uid", "metadata.uid"),
    strip("resource-version", "metadata.resourceVersion"),
    strip("generation", "metadata.generation"),
    strip("creation-timestamp", "metadata.creationTimestamp"),
    strip("deletion-timestamp", "metadata.deletionTimestamp"),
    strip(
        "deletion-grace-period",
        "metadata.deletionGracePeriodSeconds",
    ),
    strip("self-link", "metadata.selfLink"),
    strip("managed-fields", "metadata.managedFields"),
    // Owners are objects of the source cluster; their uids mean nothing on a replica.
    strip("owner-references", "metadata.ownerReferences"),
    strip("status", "status"),
    Rule {
        name: "last-applied-configuration",
        applies: Applies::All,
        // It holds a whole copy of the object, Secret values included.
        action: Action::RemoveAnnotation("kubectl.kubernetes.io/last-applied-configuration"),
    },
    Rule {
        name: "own-annotations",
        applies: Applies::All,
        action: Action::RemoveAnnotationPrefix(ANNOTATION_PREFIX),
    },
    Rule {
        name: "own-label",
        applies: Applies::All,
        action: Action::RemoveLabel(MANAGED_LABEL),
    },
    Rule {
        name: "deployment-revision",
        applies: WORKLOADS,
        action: Action::RemoveAnnotation("deployment.kubernetes.io/revision"),
    },
    Rule {
        name: "claim-template-type-meta",
        applies: Applies::To(&["StatefulSet"]),
        action: Action::DefaultTypeMeta {
            list: "spec.volumeClaimTemplates",
            api_version: "v1",
            kind: "PersistentVolumeClaim",
        },
    },
    Rule {
        name: "claim-template-status",
        applies: Applies::To(&["StatefulSet"]),
        // The server stores `status: {phase: Pending}` in every claim template.
        action: Action::RemoveField("spec.volumeClaimTemplates[].status"),
    },
    Rule {
        name: "pvc-volume-name",
        applies: PVC,
        // The bound volume is a fact of the cluster the claim lives in.
        action: Action::RemoveField("spec.volumeName"),
    },
    pvc_annotation("pvc-bind-completed", "pv.kubernetes.io/bind-completed"),
    pvc_annotation(
        "pvc-bound-by-controller",
        "pv.kubernetes.io/bound-by-controller",
    ),
    pvc_annotation(
        "pvc-storage-provisioner",
        "volume.kubernetes.io/storage-provisioner",
    ),
    pvc_annotation(
        "pvc-beta-storage-provisioner",
        "volume.beta.kubernetes.io/storage-provisioner",
    ),
    pvc_annotation("pvc-selected-node", "volume.kubernetes.io/selected-node"),
    Rule {
        name: "pvc-protection-finalizer",
        applies: PVC,
        action: Action::RemoveFinalizer("kubernetes.io/pvc-protection"),
    },
    // A Service's addresses and ports are allocated by each cluster from its own ranges: a
    // copied cluster IP is outside the replica's range, or taken there.
    Rule {
        name: "service-cluster-ip",
        applies: SERVICES,
        action: Action::RemoveAllocatedAddress("spec.clusterIP"),
    },
    Rule {
        name: "service-cluster-ips",
        applies: SERVICES,
        action: Action::RemoveAllocatedAddress("spec.clusterIPs"),
    },
    Rule {
        name: "service-node-ports",
        applies: SERVICES,
        action: Action::RemoveField("spec.ports[].nodePort"),
    },
    Rule {
        name: "service-health-check-node-port",
        applies: SERVICES,
        action: Action::RemoveField("spec.healthCheckNodePort"),
    },
    Rule {
        name: "service-single-stack",
        applies: SERVICES,
        // The families a single-stack Service gets are the cluster's own (IPv4 on one, IPv6
        // on another); a dual-stack policy is the user's choice and stays.
        action: Action::RemoveDefault {
            path: "spec.ipFamilyPolicy",
            value: "SingleStack",
            also: &["spec.ipFamilies"],
        },
    },
    Rule {
        name: "service-account-token-secrets",
        applies: Applies::To(&["ServiceAccount"]),
        action: Action::RemoveOwnTokenSecrets,
    },
    Rule {
        name: "secret-string-data",
        applies: Applies::To(&["Secret"]),
        action: Action::FoldStringData,
    },
    Rule {
        name: "null-fields",
        applies: Applies::All,
        // `creationTimestamp: null` in pod templates, `labels: null` in hand-written YAML:
        // the server treats a null as absent, so the canonical form does too.
        action: Action::RemoveNulls,
    },
    // Quantities, where the API holds them (never in ConfigMap data or env values): the server
    // stores them canonically, so `cpu: .5` in a manifest is `500m` on every cluster.
    quantity(
        "container-requests",
        WORKLOADS,
        "spec.template.spec.containers[].resources.requests.*",
    ),
    quantity(
        "container-limits",
        WORKLOADS,
        "spec.template.spec.containers[].resources.limits.*",
    ),
    quantity(
        "init-container-requests",
        WORKLOADS,
        "spec.template.spec.initContainers[].resources.requests.*",
    ),
    quantity(
        "init-container-limits",
        WORKLOADS,
        "spec.template.spec.initContainers[].resources.limits.*",
    ),
    quantity(
        "pod-requests",
        WORKLOADS,
        "spec.template.spec.resources.requests.*",
    ),
    quantity(
        "pod-limits",
        WORKLOADS,
        "spec.template.spec.resources.limits.*",
    ),
    quantity("pod-overhead", WORKLOADS, "spec.template.spec.overhead.*"),
    quantity(
        "empty-dir-size-limit",
        WORKLOADS,
        "spec.template.spec.volumes[].emptyDir.sizeLimit",
    ),
    quantity(
        "ephemeral-volume-requests",
        WORKLOADS,
        "spec.template.spec.volumes[].ephemeral.volumeClaimTemplate.spec.resources.requests.*",
    ),
    quantity(
        "claim-template-requests",
        STATEFUL_SETS,
        "spec.volumeClaimTemplates[].spec.resources.requests.*",
    ),
    quantity(
        "claim-template-limits",
        STATEFUL_SETS,
        "spec.volumeClaimTemplates[].spec.resources.limits.*",
    ),
    quantity("pvc-requests", PVC, "spec.resources.requests.*"),
    quantity("pvc-limits", PVC, "spec.resources.limits.*"),
    // Empty values the server drops (`omitempty`, no meaning when empty) or replaces with its
    // default. Pointer fields, where `false`, `0` or `""` mean something
    // (`automountServiceAccountToken: false`, `replicas: 0`, `storageClassName: ""`), have no
    // rule and reach the replica as written.
    omitted(
        "pod-service-account-alias",
        WORKLOADS,
        "spec.template.spec.serviceAccount",
        Empty::String,
    ),
    omitted(
        "pod-service-account",
        WORKLOADS,
        "spec.template.spec.serviceAccountName",
        Empty::String,
    ),
    omitted(
        "pod-node-name",
        WORKLOADS,
        "spec.template.spec.nodeName",
        Empty::String,
    ),
    omitted(
        "pod-hostname",
        WORKLOADS,
        "spec.template.spec.hostname",
        Empty::String,
    ),
    omitted(
        "pod-subdomain",
        WORKLOADS,
        "spec.template.spec.subdomain",
        Empty::String,
    ),
    omitted(
        "pod-priority-class",
        WORKLOADS,
        "spec.template.spec.priorityClassName",
        Empty::String,
    ),
    omitted(
        "pod-scheduler",
        WORKLOADS,
        "spec.template.spec.schedulerName",
        Empty::String,
    ),
    omitted(
        "pod-restart-policy",
        WORKLOADS,
        "spec.template.spec.restartPolicy",
        Empty::String,
    ),
    omitted(
        "pod-dns-policy",
        WORKLOADS,
        "spec.template.spec.dnsPolicy",
        Empty::String,
    ),
    omitted(
        "pod-host-network",
        WORKLOADS,
        "spec.template.spec.hostNetwork",
        Empty::False,
    ),
    omitted(
        "pod-host-pid",
        WORKLOADS,
        "spec.template.spec.hostPID",
        Empty::False,
    ),
    omitted(
        "pod-host-ipc",
        WORKLOADS,
        "spec.template.spec.hostIPC",
        Empty::False,
    ),
    omitted(
        "container-working-dir",
        WORKLOADS,
        "spec.template.spec.containers[].workingDir",
        Empty::String,
    ),
    omitted(
        "container-pull-policy",
        WORKLOADS,
        "spec.template.spec.containers[].imagePullPolicy",
        Empty::String,
    ),
    omitted(
        "container-termination-message-path",
        WORKLOADS,
        "spec.template.spec.containers[].terminationMessagePath",
        Empty::String,
    ),
    omitted(
        "container-stdin",
        WORKLOADS,
        "spec.template.spec.containers[].stdin",
        Empty::False,
    ),
    omitted(
        "container-stdin-once",
        WORKLOADS,
        "spec.template.spec.containers[].stdinOnce",
        Empty::False,
    ),
    omitted(
        "container-tty",
        WORKLOADS,
        "spec.template.spec.containers[].tty",
        Empty::False,
    ),
    omitted(
        "env-value",
        WORKLOADS,
        "spec.template.spec.containers[].env[].value",
        Empty::String,
    ),
    omitted(
        "mount-read-only",
        WORKLOADS,
        "spec.template.spec.containers[].volumeMounts[].readOnly",
        Empty::False,
    ),
    omitted(
        "mount-sub-path",
        WORKLOADS,
        "spec.template.spec.containers[].volumeMounts[].subPath",
        Empty::String,
    ),
    omitted(
        "mount-sub-path-expr",
        WORKLOADS,
        "spec.template.spec.containers[].volumeMounts[].subPathExpr",
        Empty::String,
    ),
    omitted(
        "port-name",
        WORKLOADS,
        "spec.template.spec.containers[].ports[].name",
        Empty::String,
    ),
    omitted(
        "port-host-port",
        WORKLOADS,
        "spec.template.spec.containers[].ports[].hostPort",
        Empty::Zero,
    ),
    omitted(
        "port-host-ip",
        WORKLOADS,
        "spec.template.spec.containers[].ports[].hostIP",
        Empty::String,
    ),
    omitted(
        "port-protocol",
        WORKLOADS,
        "spec.template.spec.containers[].ports[].protocol",
        Empty::String,
    ),
    omitted(
        "workload-min-ready",
        WORKLOADS,
        "spec.minReadySeconds",
        Empty::Zero,
    ),
    omitted(
        "deployment-paused",
        Applies::To(&["Deployment"]),
        "spec.paused",
        Empty::False,
    ),
    omitted(
        "stateful-set-pod-management",
        STATEFUL_SETS,
        "spec.podManagementPolicy",
        Empty::String,
    ),
    omitted(
        "secret-type",
        Applies::To(&["Secret"]),
        "type",
        Empty::String,
    ),
    empty_list("container-env", "spec.template.spec.containers[].env"),
    empty_list(
        "container-env-from",
        "spec.template.spec.containers[].envFrom",
    ),
    empty_list(
        "container-mounts",
        "spec.template.spec.containers[].volumeMounts",
    ),
    empty_list("container-ports", "spec.template.spec.containers[].ports"),
    empty_list(
        "container-command",
        "spec.template.spec.containers[].command",
    ),
    empty_list("container-args", "spec.template.spec.containers[].args"),
    empty_list("pod-volumes", "spec.template.spec.volumes"),
    empty_list("pod-init-containers", "spec.template.spec.initContainers"),
    empty_list(
        "pod-image-pull-secrets",
        "spec.template.spec.imagePullSecrets",
    ),
    empty_list("pod-tolerations", "spec.template.spec.tolerations"),
    empty_list("pod-node-selector", "spec.template.spec.nodeSelector"),
    Rule {
        name: "empty-annotations",
        applies: Applies::All,
        action: Action::RemoveIfEmpty("metadata.annotations"),
    },
    Rule {
        name: "empty-labels",
        applies: Applies::All,
        action: Action::RemoveIfEmpty("metadata.labels"),
    },
    Rule {
        name: "empty-finalizers",
        applies: Applies::All,
        action: Action::RemoveIfEmpty("metadata.finalizers"),
    },
];

const fn strip(name: &'static str, path: &'static str) -> Rule {
    Rule {
        name,
        applies: Applies::All,
        action: Action::RemoveField(path),
    }
}

const fn pvc_annotation(name: &'static str, key: &'static str) -> Rule {
    Rule {
        name,
        applies: PVC,
        action: Action::RemoveAnnotation(key),
    }
}

const fn quantity(name: &'static str, applies: Applies, path: &'static str) -> Rule {
    Rule {
        name,
        applies,
        action: Action::CanonicalQuantity(path),
    }
}

const fn omitted(name: &'static str, applies: Applies, path: &'static str, empty: Empty) -> Rule {
    Rule {
        name,
        applies,
        action: Action::RemoveIfEqual(path, empty),
    }
}

const fn empty_list(name: &'static str, path: &'static str) -> Rule {
    Rule {
        name,
        applies: WORKLOADS,
        action: Action::RemoveIfEmpty(path),
    }
}
