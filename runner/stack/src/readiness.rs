//! What "ready" means for each kind Rookery applies: a table, as data, that the apply engine
//! interprets and tests can read.
//!
//! Generic readiness (kstatus and everything built on it) calls an object with no status
//! "current", which is exactly wrong for a fresh CephCluster, CephFilesystem or
//! BackupStorageLocation (shared/notes/apply-anchors.md §2.3). So there is no default: a kind
//! missing from [`rule_for`] is a plan error, never "ready by default".

use serde::Serialize;

/// How the apply engine decides an object is ready after it was applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "rule")]
pub enum Readiness {
    /// Configuration objects: ready once the API server accepted them.
    Exists,
    /// `Established` and `NamesAccepted` both True (Velero's installer requires both,
    /// k8s-facts §1); then discovery is refreshed before anything uses the kind.
    CrdEstablished,
    /// `observedGeneration` current; updated, available and total replicas equal the spec.
    DeploymentAvailable,
    /// `observedGeneration` current; updated and available equal `desiredNumberScheduled`.
    DaemonSetAvailable,
    /// `phase: Ready` with `observedGeneration` current, `state` not `Error`, and
    /// `ceph.health` HEALTH_OK — or HEALTH_WARN whose every check is accepted here
    /// (rook-velero-facts-2 §6).
    CephClusterReady {
        accepted_warnings: Vec<AcceptedWarning>,
    },
    /// `phase: Ready` with `observedGeneration` current, and the MDS Deployments Rook
    /// creates available (Rook's Ready does not look at the MDS pods, facts-2 §6).
    CephFilesystemReady {
        /// `rook-ceph-mds-<fs>-a`, `-b`, ... (k8s-facts §8).
        mds_deployments: Vec<String>,
    },
    /// `phase: Available` (facts-2 §6, BSL controller).
    BackupStorageLocationAvailable,
    /// `phase: Enabled` (k8s-facts §7); `FailedValidation` fails with Velero's reasons.
    ScheduleEnabled,
}

impl Readiness {
    /// A short description for plans and progress lines.
    pub fn describe(&self) -> &'static str {
        match self {
            Readiness::Exists => "exists",
            Readiness::CrdEstablished => "Established",
            Readiness::DeploymentAvailable => "available",
            Readiness::DaemonSetAvailable => "available on every node",
            Readiness::CephClusterReady { .. } => "Ready and healthy",
            Readiness::CephFilesystemReady { .. } => "Ready with its MDS",
            Readiness::BackupStorageLocationAvailable => "Available",
            Readiness::ScheduleEnabled => "Enabled",
        }
    }
}

/// A Ceph health check (`status.ceph.details` key) that may be in HEALTH_WARN while the
/// cluster still counts as healthy, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedWarning {
    pub code: String,
    pub reason: String,
}

/// The rule for a kind (`group` is empty for the core API group), or `None` when Rookery does
/// not know how to tell that kind is ready.
pub fn rule_for(group: &str, kind: &str) -> Option<Readiness> {
    let rule = match (group, kind) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => Readiness::CrdEstablished,
        ("apps", "Deployment") => Readiness::DeploymentAvailable,
        ("apps", "DaemonSet") => Readiness::DaemonSetAvailable,
        ("ceph.rook.io", "CephCluster") => Readiness::CephClusterReady {
            accepted_warnings: Vec::new(),
        },
        ("ceph.rook.io", "CephFilesystem") => Readiness::CephFilesystemReady {
            mds_deployments: Vec::new(),
        },
        ("velero.io", "BackupStorageLocation") => Readiness::BackupStorageLocationAvailable,
        ("velero.io", "Schedule") => Readiness::ScheduleEnabled,
        // Configuration: nothing reconciles them into a state worth waiting for.
        (
            "",
            "Namespace" | "ServiceAccount" | "ConfigMap" | "Secret" | "Service"
            | "ResourceQuota" | "LimitRange",
        )
        | (
            "rbac.authorization.k8s.io",
            "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding",
        )
        | ("storage.k8s.io", "StorageClass" | "CSIDriver")
        | ("snapshot.storage.k8s.io", "VolumeSnapshotClass")
        | ("groupsnapshot.storage.k8s.io", "VolumeGroupSnapshotClass")
        | ("velero.io", "VolumeSnapshotLocation")
        | ("scheduling.k8s.io", "PriorityClass")
        | ("policy", "PodDisruptionBudget")
        | ("monitoring.coreos.com", "PrometheusRule")
        // ceph-csi-operator's configuration objects (Rook's operator.yaml): the operator
        // turns them into Deployments/DaemonSets that the CephCluster's readiness covers.
        | ("csi.ceph.io", "OperatorConfig" | "Driver" | "CephConnection" | "ClientProfile") => {
            Readiness::Exists
        }
        _ => return None,
    };
    Some(rule)
}

/// `group` of an `apiVersion` (`apps/v1` → `apps`, `v1` → ``).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kinds_have_no_rule() {
        assert_eq!(rule_for("example.com", "Widget"), None);
        assert_eq!(rule_for("", "Pod"), None);
    }

    #[test]
    fn group_of_core_and_named_groups() {
        assert_eq!(group_of("v1"), "");
        assert_eq!(group_of("apps/v1"), "apps");
        assert_eq!(group_of("ceph.rook.io/v1"), "ceph.rook.io");
    }
}
