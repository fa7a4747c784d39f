//! What Rookery applied, recorded on the cluster the ApplySet way (KEP-3659, the one
//! cross-tool standard: apply-anchors §6): every object carries the label
//! `applyset.kubernetes.io/part-of=<id>`, and a parent Secret carries the id, the tooling and
//! the group-kinds and namespaces to look in when pruning. The parent also records the last
//! run (stages, result, times) for `status`. Nothing here is a lock: an interrupted run is
//! simply run again.

use base64::Engine as _;
use rookery_stack::desired::ObjectRef;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const PART_OF: &str = "applyset.kubernetes.io/part-of";
pub const ID: &str = "applyset.kubernetes.io/id";
pub const TOOLING: &str = "applyset.kubernetes.io/tooling";
pub const GROUP_KINDS: &str = "applyset.kubernetes.io/contains-group-kinds";
pub const NAMESPACES: &str = "applyset.kubernetes.io/additional-namespaces";
pub const LAST_RUN: &str = "rookery.dev/last-apply";

/// The parent lives in `kube-system`, which exists before anything is applied, so the record
/// is written before the first member.
pub const PARENT_NAMESPACE: &str = "kube-system";

/// The parent Secret of the stack whose Rook cluster lives in `cluster_namespace`.
pub fn parent_name(cluster_namespace: &str) -> String {
    format!("rookery-{cluster_namespace}")
}

/// `applyset-<base64url(sha256(<name>.<namespace>.<kind>.<group>))>-v1` (KEP-3659).
pub fn applyset_id(name: &str, namespace: &str, kind: &str, group: &str) -> String {
    let digest = Sha256::digest(format!("{name}.{namespace}.{kind}.{group}").as_bytes());
    format!(
        "applyset-{}-v1",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    )
}

pub fn tooling() -> String {
    format!("rookery/v{}", env!("CARGO_PKG_VERSION"))
}

/// `Kind.group` as the annotation spells it (`Kind` alone for the core group).
pub fn group_kind(id: &ObjectRef) -> String {
    match id.group() {
        "" => id.kind.clone(),
        g => format!("{}.{g}", id.kind),
    }
}

/// Label `body` as a member of the set.
pub fn label_member(body: &mut Value, id: &str) {
    if let Some(map) = body.as_object_mut() {
        let meta = map
            .entry("metadata")
            .or_insert_with(|| json!({}))
            .as_object_mut();
        if let Some(meta) = meta {
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(labels) = labels.as_object_mut() {
                labels.insert(PART_OF.into(), Value::String(id.into()));
            }
        }
    }
}

/// The parent object: a Secret with no data (kubectl's default parent kind).
pub fn parent(
    name: &str,
    id: &str,
    group_kinds: &[String],
    namespaces: &[String],
    last_run: Option<&Value>,
) -> Value {
    let mut annotations = serde_json::Map::new();
    annotations.insert(TOOLING.into(), Value::String(tooling()));
    annotations.insert(GROUP_KINDS.into(), Value::String(group_kinds.join(",")));
    annotations.insert(NAMESPACES.into(), Value::String(namespaces.join(",")));
    if let Some(run) = last_run {
        annotations.insert(LAST_RUN.into(), Value::String(run.to_string()));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": PARENT_NAMESPACE,
            "labels": { ID: id },
            "annotations": annotations,
        },
        "type": "Opaque",
    })
}

/// What a parent records: the group-kinds and namespaces of its members.
pub fn recorded(parent: &Value) -> (Vec<String>, Vec<String>) {
    let split = |key: &str| -> Vec<String> {
        parent
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    (split(GROUP_KINDS), split(NAMESPACES))
}

/// Sorted, de-duplicated union.
pub fn union(a: &[String], b: &[String]) -> Vec<String> {
    let mut v: Vec<String> = a.iter().chain(b).cloned().collect();
    v.sort();
    v.dedup();
    v
}

/// Kinds whose deletion loses data or takes data with it; a prune deletes them only when
/// each is named with `--allow-delete`.
pub fn is_protected(group_kind: &str) -> bool {
    matches!(
        group_kind,
        "CephCluster.ceph.rook.io"
            | "CephFilesystem.ceph.rook.io"
            | "CephBlockPool.ceph.rook.io"
            | "CephFilesystemSubVolumeGroup.ceph.rook.io"
            | "CephObjectStore.ceph.rook.io"
            | "PersistentVolumeClaim"
            | "PersistentVolume"
            | "CustomResourceDefinition.apiextensions.k8s.io"
            | "BackupStorageLocation.velero.io"
            | "Namespace"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_matches_the_kep_encoding() {
        // kubectl's own example in KEP-3659 uses a Secret parent; the id is url-safe base64
        // without padding of the sha256 of name.namespace.kind.group.
        let id = applyset_id("rookery-rook-ceph", "kube-system", "Secret", "");
        assert!(id.starts_with("applyset-") && id.ends_with("-v1"));
        assert!(!id.contains('=') && !id.contains('+') && !id.contains('/'));
        assert_eq!(id.len(), "applyset-".len() + 43 + "-v1".len());
    }

    #[test]
    fn parent_round_trips_its_record() {
        let p = parent(
            "p",
            "i",
            &["CephCluster.ceph.rook.io".into(), "Secret".into()],
            &["rook-ceph".into()],
            None,
        );
        let (gk, ns) = recorded(&p);
        assert_eq!(gk, vec!["CephCluster.ceph.rook.io", "Secret"]);
        assert_eq!(ns, vec!["rook-ceph"]);
    }
}
