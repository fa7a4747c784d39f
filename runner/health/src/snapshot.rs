//! What `status` and `doctor` look at: the cluster's objects as read at one moment, plus what
//! the control machine knows (the stack's namespaces, the probe's stable device ids, the
//! agents' node checks). `rookery-kube` fills it (the only code that talks to the API server);
//! everything else in this crate is plain functions over it.
//!
//! Secrets are represented by the names of their keys only: the reader drops the values
//! before a [`Snapshot`] exists, so nothing built from one can leak them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The objects of one kind, or why there are none to show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state", content = "items")]
pub enum Listed {
    /// The API server does not serve the kind: its CRD is not installed.
    NotServed,
    /// Reading failed (permissions, timeout); the text says why.
    Error(String),
    Items(Vec<Value>),
}

impl Listed {
    pub fn items(&self) -> &[Value] {
        match self {
            Listed::Items(v) => v,
            _ => &[],
        }
    }

    /// Why nothing can be shown, or None when the kind was read (possibly empty).
    pub fn missing_reason(&self, what: &str) -> Option<String> {
        match self {
            Listed::NotServed => Some(format!(
                "{what}: the cluster does not serve this kind (CRD not installed)"
            )),
            Listed::Error(e) => Some(format!("{what}: cannot be read: {e}")),
            Listed::Items(_) => None,
        }
    }
}

impl Default for Listed {
    fn default() -> Self {
        Listed::Items(Vec::new())
    }
}

/// Where the stack put each part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Namespaces {
    /// The CephCluster's namespace (also `clusterID` and the CSI secrets' namespace).
    pub cluster: String,
    /// The Rook operator's (the CSI `Driver` CRs live here).
    pub operator: String,
    pub velero: String,
}

/// A Secret as far as `status` and `doctor` may know it: that it exists, and its key names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeys {
    pub namespace: String,
    pub name: String,
    /// None: the Secret does not exist. Some: the names of its `data` keys (never values).
    pub keys: Option<Vec<String>>,
}

/// An OSD device as the plan resolved it from the probe: how Rook may name it, and its
/// stable id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedOsd {
    pub node: String,
    /// What the stack named (`/dev/sda`, a by-id link, a serial ...).
    pub requested: String,
    /// `sda`, `nvme0n1` when the probe saw it.
    pub kernel_name: Option<String>,
    /// The `/dev/disk/by-id` link (or what the stack named when no facts were given).
    pub stable_id: String,
    pub device_class: Option<String>,
}

/// One agent readiness check of one host (kernel modules, kernel, lvm2, time sync ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCheck {
    pub id: String,
    /// `pass`, `warn` or `fail`, as the agent said.
    pub status: String,
    pub message: String,
    pub hint: Option<String>,
}

/// The node-readiness answers of one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeReport {
    pub host: String,
    /// None when the host answered; else why not (unreachable, failed).
    pub error: Option<String>,
    pub checks: Vec<NodeCheck>,
}

/// Everything read at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Seconds since the Unix epoch when the reading started (ages are relative to it).
    pub now: i64,
    pub server: String,
    pub namespaces: Option<Namespaces>,
    /// The stack installs Velero (so missing Velero objects are a problem, not a choice).
    pub velero_expected: bool,
    pub ceph_clusters: Listed,
    pub ceph_filesystems: Listed,
    /// Deployments in the CephCluster's namespace (mons, mgrs, OSDs, MDSs).
    pub ceph_deployments: Listed,
    /// Deployments of the CSI snapshot controller, any namespace.
    pub snapshot_controllers: Listed,
    pub storage_classes: Listed,
    pub snapshot_classes: Listed,
    /// CustomResourceDefinitions the checks look for (snapshot CRDs), by name.
    pub crds: Listed,
    /// `storage.k8s.io/v1` CSIDriver objects.
    pub csi_drivers: Listed,
    /// Rook's `csi.ceph.io/v1` Driver CRs in the operator namespace.
    pub rook_drivers: Listed,
    pub secrets: Vec<SecretKeys>,
    pub backup_storage_locations: Listed,
    pub schedules: Listed,
    pub backups: Listed,
    pub planned_osds: Vec<PlannedOsd>,
    /// None: node checks were not run (`--no-nodes`, or no inventory).
    pub nodes: Option<Vec<NodeReport>>,
}

/// The snapshot controller's CRDs (external-snapshotter v8.6.0 `client/config/crd`).
pub const SNAPSHOT_CRDS: [&str; 3] = [
    "volumesnapshotclasses.snapshot.storage.k8s.io",
    "volumesnapshotcontents.snapshot.storage.k8s.io",
    "volumesnapshots.snapshot.storage.k8s.io",
];

/// The label Velero picks a VolumeSnapshotClass by (one per driver).
pub const VELERO_VSC_LABEL: &str = "velero.io/csi-volumesnapshot-class";
/// The default-class annotation (StorageClass).
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
/// Velero's label on a Backup its Schedule created.
pub const SCHEDULE_LABEL: &str = "velero.io/schedule-name";

/// The Secrets the checks need to know about: each BSL's `spec.credential` (or Velero's
/// default `cloud-credentials` when it names none), and every `*-secret-name` /
/// `*-secret-namespace` pair of Ceph CSI StorageClasses and VolumeSnapshotClasses.
pub fn secret_refs(s: &Snapshot) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut push = |ns: &str, name: &str| {
        let k = (ns.to_string(), name.to_string());
        if !ns.is_empty() && !name.is_empty() && !out.contains(&k) {
            out.push(k);
        }
    };
    for b in s.backup_storage_locations.items() {
        let ns = str_at(b, "/metadata/namespace").unwrap_or_default();
        match str_at(b, "/spec/credential/name") {
            Some(name) => push(ns, name),
            None => push(ns, "cloud-credentials"),
        }
    }
    for obj in s
        .storage_classes
        .items()
        .iter()
        .chain(s.snapshot_classes.items())
    {
        for (name, ns) in csi_secret_params(obj) {
            push(&ns, &name);
        }
    }
    out
}

/// `(name, namespace)` of each `csi.storage.k8s.io/*-secret-name` parameter with its
/// `*-secret-namespace` partner.
pub fn csi_secret_params(obj: &Value) -> Vec<(String, String)> {
    let Some(params) = obj.get("parameters").and_then(Value::as_object) else {
        return Vec::new();
    };
    params
        .iter()
        .filter_map(|(k, v)| {
            let prefix = k.strip_suffix("-secret-name")?;
            let name = v.as_str()?;
            let ns = params
                .get(&format!("{prefix}-secret-namespace"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            Some((name.to_string(), ns.to_string()))
        })
        .collect()
}

impl Snapshot {
    pub fn secret(&self, namespace: &str, name: &str) -> Option<&SecretKeys> {
        self.secrets
            .iter()
            .find(|s| s.namespace == namespace && s.name == name)
    }
}

pub(crate) fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

pub(crate) fn i64_at(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

pub(crate) fn name_of(v: &Value) -> &str {
    str_at(v, "/metadata/name").unwrap_or("?")
}

/// An RFC 3339 time as seconds since the epoch.
pub fn epoch(t: &str) -> Option<i64> {
    let st = humantime::parse_rfc3339_weak(t).ok()?;
    let d = st.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_secs()).ok()
}

/// `2d4h`, `3h12m`, `5m`, `40s`: ages and periods at a glance.
pub fn short_duration(secs: i64) -> String {
    let s = secs.unsigned_abs();
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    let text = if d > 0 {
        if h > 0 {
            format!("{d}d{h}h")
        } else {
            format!("{d}d")
        }
    } else if h > 0 {
        if m > 0 {
            format!("{h}h{m}m")
        } else {
            format!("{h}h")
        }
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{s}s")
    };
    if secs < 0 { format!("-{text}") } else { text }
}

/// Bytes for people (binary units, as Ceph reports them).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_refs_from_locations_and_classes() {
        let s = Snapshot {
            backup_storage_locations: Listed::Items(vec![
                json!({"metadata": {"name": "a", "namespace": "velero"},
                       "spec": {"credential": {"name": "s3", "key": "cloud"}}}),
                json!({"metadata": {"name": "b", "namespace": "velero"}, "spec": {}}),
            ]),
            storage_classes: Listed::Items(vec![json!({"parameters": {
                "csi.storage.k8s.io/provisioner-secret-name": "rook-csi-cephfs-provisioner",
                "csi.storage.k8s.io/provisioner-secret-namespace": "rook-ceph",
                "csi.storage.k8s.io/node-stage-secret-name": "rook-csi-cephfs-node",
                "csi.storage.k8s.io/node-stage-secret-namespace": "rook-ceph"}})]),
            ..Snapshot::default()
        };
        let refs = secret_refs(&s);
        assert_eq!(
            refs,
            vec![
                ("velero".into(), "s3".into()),
                ("velero".into(), "cloud-credentials".into()),
                ("rook-ceph".into(), "rook-csi-cephfs-provisioner".into()),
                ("rook-ceph".into(), "rook-csi-cephfs-node".into()),
            ]
        );
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(short_duration(40), "40s");
        assert_eq!(short_duration(3 * 3600 + 12 * 60), "3h12m");
        assert_eq!(short_duration(2 * 86_400 + 4 * 3600), "2d4h");
        assert_eq!(bytes(3_000_000_000_000), "2.7 TiB");
        assert_eq!(epoch("1970-01-01T00:01:00Z"), Some(60));
    }
}
