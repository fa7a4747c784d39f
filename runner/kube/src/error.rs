//! Errors of the cluster half. Each names the object or file it is about; hints are data
//! ([`KubeError::hint`]), chosen by variant, never by matching message text.

use std::path::PathBuf;
use std::time::Duration;

use rookery_stack::desired::ObjectRef;

/// One field another field manager owns, from the API server's conflict causes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldConflict {
    pub field: String,
    pub manager: String,
}

/// An immutable field the stack would change.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ImmutableChange {
    pub object: ObjectRef,
    pub field: String,
    pub live: serde_json::Value,
    pub desired: serde_json::Value,
    pub hint: String,
}

/// An object that was not ready when its stage failed or timed out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Blocker {
    pub object: ObjectRef,
    /// The last state seen (the controller's own message where it gave one).
    pub last: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("no kubeconfig: KUBECONFIG is not set and `{}` does not exist", .0.display())]
    NoKubeconfig(PathBuf),
    #[error("cannot load the kubeconfig `{path}`")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("cannot build a client for `{server}`")]
    Client {
        server: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot reach the API server `{server}`")]
    Unreachable {
        server: String,
        #[source]
        source: kube::Error,
    },
    #[error("the API server `{server}` did not answer within {} s", .after.as_secs())]
    ServerTimeout { server: String, after: Duration },
    /// The API server answered with an error Status (its message is the reason).
    #[error("{what} {object}: {message}")]
    ApiStatus {
        what: &'static str,
        object: String,
        code: u16,
        reason: String,
        message: String,
    },
    /// No answer: transport, TLS or decoding.
    #[error("{what} {object} failed")]
    Api {
        what: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("{what} {object} did not answer within {} s", .after.as_secs())]
    RequestTimeout {
        what: &'static str,
        object: String,
        after: Duration,
    },
    #[error(
        "{object}: the cluster does not serve {api_version} {kind}, and the stack does not install its CRD"
    )]
    UnknownKind {
        object: String,
        api_version: String,
        kind: String,
    },
    #[error("{object}: {} field(s) owned by another field manager: {}", .conflicts.len(), conflict_list(.conflicts))]
    Conflict {
        object: ObjectRef,
        conflicts: Vec<FieldConflict>,
    },
    #[error("the API server rejected {object}: {message}")]
    Invalid { object: ObjectRef, message: String },
    #[error("{} immutable field(s) would change; nothing was applied", .0.len())]
    Immutable(Vec<ImmutableChange>),
    #[error(
        "the stack's bundle is incomplete ({0} files missing or failing their hash); nothing was applied"
    )]
    IncompleteBundle(usize),
    #[error("{object}: {source}")]
    Credential {
        object: String,
        #[source]
        source: Box<rookery_stack::desired::ObjectError>,
    },
    #[error("stage `{stage}`: {object} failed: {reason}")]
    WaitFailed {
        stage: &'static str,
        object: ObjectRef,
        reason: String,
        hint: Option<String>,
    },
    #[error("stage `{stage}` timed out after {} s; not ready: {}", .after.as_secs(), blocker_list(.blockers))]
    WaitTimeout {
        stage: &'static str,
        after: Duration,
        blockers: Vec<Blocker>,
    },
    #[error("{} applied object(s) failed in stage `{stage}`", .errors.len())]
    StageFailed {
        stage: &'static str,
        errors: Vec<KubeError>,
    },
    #[error(
        "prune kept {} protected object(s) the stack no longer has: {}; {pruned} other object(s) were pruned",
        .refused.len(), .refused.join(", ")
    )]
    PruneProtected { refused: Vec<String>, pruned: usize },
    /// A Velero Backup or Restore ended in a phase other than Completed.
    #[error("{object} ended {phase}: {reason}")]
    VeleroFailed {
        object: String,
        phase: String,
        reason: String,
    },
    #[error("{object} is still {last} after {} s", .after.as_secs())]
    VeleroTimeout {
        object: String,
        after: Duration,
        last: String,
    },
    #[error("cannot store the kubeconfig at `{}`", .path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the kubeconfig read from `{origin}` is invalid: {reason}")]
    FetchedKubeconfig { origin: String, reason: String },
}

fn conflict_list(c: &[FieldConflict]) -> String {
    c.iter()
        .map(|c| format!("{} (manager `{}`)", c.field, c.manager))
        .collect::<Vec<_>>()
        .join(", ")
}

fn blocker_list(b: &[Blocker]) -> String {
    b.iter()
        .map(|b| format!("{} ({})", b.object, b.last))
        .collect::<Vec<_>>()
        .join("; ")
}

impl KubeError {
    /// What the user can do about it, when Rookery knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            KubeError::NoKubeconfig(_) => Some(
                "pass --kubeconfig FILE, set KUBECONFIG, or fetch it from the K3s server with \
                 --kubeconfig-from HOST (or `kubeconfig: {fromHost: HOST}` in the stack)"
                    .into(),
            ),
            KubeError::ApiStatus { code: 401, .. } => Some(
                "the API server does not accept these credentials: refresh the kubeconfig \
                 (for K3s: --kubeconfig-from HOST)"
                    .into(),
            ),
            KubeError::ApiStatus { code: 403, .. } => Some(
                "the kubeconfig's user lacks permission for this; Rookery needs cluster-admin \
                 rights to install CRDs and cluster RBAC"
                    .into(),
            ),
            KubeError::Unreachable { .. } | KubeError::ServerTimeout { .. } => Some(
                "check that the API server is up and reachable from here (port 6443 for K3s); \
                 a certificate error means the kubeconfig's CA does not match the server, or \
                 the address is not in the server certificate (K3s: --tls-san ADDRESS)"
                    .into(),
            ),
            KubeError::Conflict { .. } => Some(
                "another tool or person manages these fields; re-run with --force-conflicts to \
                 take them over (the other manager will lose them), or change the stack to \
                 agree with the live value"
                    .into(),
            ),
            KubeError::Immutable(changes) => changes.first().map(|c| c.hint.clone()),
            KubeError::UnknownKind { .. } => Some(
                "install the CRD for this kind first, or remove the object from the stack".into(),
            ),
            KubeError::WaitFailed { hint, .. } => hint.clone(),
            KubeError::WaitTimeout { .. } => Some(
                "re-run the same command to continue (nothing is locked); give slow steps more \
                 time with --stage-timeout STAGE=DURATION or --timeout; `rookery status` shows \
                 the details"
                    .into(),
            ),
            KubeError::PruneProtected { .. } => Some(
                "review them, then name each one to delete with --allow-delete KIND/NAME \
                 (e.g. --allow-delete CephFilesystem.ceph.rook.io/old-fs)"
                    .into(),
            ),
            KubeError::StageFailed { errors, .. } => errors.iter().find_map(KubeError::hint),
            KubeError::VeleroFailed { .. } => Some(
                "`rookery doctor` checks the backup storage location and its credentials; \
                 Velero's server log has the per-item errors"
                    .into(),
            ),
            KubeError::VeleroTimeout { .. } => Some(
                "check that the Velero server runs (its Deployment in Velero's namespace) and \
                 that the backup storage location is Available; give it more time with --timeout"
                    .into(),
            ),
            _ => None,
        }
    }
}

impl KubeError {
    /// From a failed call: an API Status becomes [`KubeError::ApiStatus`] with its own
    /// message, anything else keeps the transport error as its source.
    pub fn from_kube(what: &'static str, object: String, source: kube::Error) -> KubeError {
        match source {
            kube::Error::Api(s) => KubeError::ApiStatus {
                what,
                object,
                code: s.code,
                reason: s.reason.clone(),
                message: s.message.clone(),
            },
            source => KubeError::Api {
                what,
                object,
                source,
            },
        }
    }

    /// A 404 from the API server.
    pub fn is_not_found(&self) -> bool {
        matches!(self, KubeError::ApiStatus { code: 404, .. })
    }
}
