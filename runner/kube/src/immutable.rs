//! Fields that cannot change once an object exists. Changing them is refused before any
//! request is sent, with the old and new value and what to do instead — rather than the API
//! server failing half-way through a stage with "Forbidden: updates to parameters are
//! forbidden", or Rook quietly creating a second pool.

use rookery_stack::desired::ObjectRef;
use serde_json::Value;

use crate::error::ImmutableChange;

struct Rule {
    group: &'static str,
    kind: &'static str,
    /// JSON pointers; a `*` segment walks every element of an array present on both sides.
    fields: &'static [&'static str],
    hint: &'static str,
}

const RULES: &[Rule] = &[
    // k8s-facts §4: ValidateStorageClassUpdate.
    Rule {
        group: "storage.k8s.io",
        kind: "StorageClass",
        fields: &[
            "/provisioner",
            "/parameters",
            "/reclaimPolicy",
            "/volumeBindingMode",
        ],
        hint: "a StorageClass's provisioner, parameters, reclaimPolicy and volumeBindingMode \
               cannot change in place: delete the StorageClass (existing volumes are not \
               affected) with `kubectl delete storageclass NAME`, then apply again",
    },
    // R:crds.yaml:1789-1795 (CEL `self == oldSelf`, "DataDirHostPath is immutable").
    Rule {
        group: "ceph.rook.io",
        kind: "CephCluster",
        fields: &["/spec/dataDirHostPath"],
        hint: "dataDirHostPath holds the mons' data on every host and cannot move; keep the \
               old value in the stack (moving it means tearing down the cluster and cleaning \
               the old path on every host)",
    },
    // A renamed pool is a *new* pool to Rook (k8s-facts §3 "Pool naming"): the data stays in
    // the old one and the StorageClass's `pool` (itself immutable) would point elsewhere.
    Rule {
        group: "ceph.rook.io",
        kind: "CephFilesystem",
        fields: &[
            "/spec/metadataPool/name",
            "/spec/dataPools/*/name",
            "/spec/preservePoolNames",
        ],
        hint: "renaming a pool makes Rook create a new, empty pool while the data stays in \
               the old one; keep the pool names in the stack, and add a new data pool at the \
               end of `dataPools` instead",
    },
    // apps/v1: the label selector of a Deployment/DaemonSet is immutable.
    Rule {
        group: "apps",
        kind: "Deployment",
        fields: &["/spec/selector"],
        hint: "a Deployment's selector cannot change: delete the Deployment, then apply again",
    },
    Rule {
        group: "apps",
        kind: "DaemonSet",
        fields: &["/spec/selector"],
        hint: "a DaemonSet's selector cannot change: delete the DaemonSet, then apply again",
    },
];

/// Every value at `pointer` (with `*` expanded over arrays) in `v`, keyed by concrete pointer.
fn values_at(v: &Value, pointer: &str) -> Vec<(String, Option<Value>)> {
    let Some((head, rest)) = pointer.split_once("/*") else {
        return vec![(pointer.to_string(), v.pointer(pointer).cloned())];
    };
    let Some(items) = v.pointer(head).and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .flat_map(|(i, item)| {
            values_at(item, rest)
                .into_iter()
                .map(move |(p, val)| (format!("{head}/{i}{p}"), val))
        })
        .collect()
}

/// The immutable fields `desired` would change on `live`. A field absent from `desired`
/// is left to the server (server-side apply does not touch fields it does not send).
pub fn changes(id: &ObjectRef, desired: &Value, live: &Value) -> Vec<ImmutableChange> {
    let Some(rule) = RULES
        .iter()
        .find(|r| r.group == id.group() && r.kind == id.kind)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for field in rule.fields {
        let live_values = values_at(live, field);
        for (path, want) in values_at(desired, field) {
            let Some(want) = want else { continue };
            let Some((_, Some(have))) = live_values.iter().find(|(p, _)| *p == path) else {
                continue;
            };
            if *have != want {
                out.push(ImmutableChange {
                    object: id.clone(),
                    field: path.trim_start_matches('/').replace('/', "."),
                    live: have.clone(),
                    desired: want,
                    hint: rule.hint.to_string(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(api: &str, kind: &str) -> ObjectRef {
        ObjectRef {
            api_version: api.into(),
            kind: kind.into(),
            name: "x".into(),
            namespace: None,
        }
    }

    #[test]
    fn storage_class_parameters() {
        let live =
            json!({"provisioner": "p", "parameters": {"pool": "a"}, "allowVolumeExpansion": false});
        let want =
            json!({"provisioner": "p", "parameters": {"pool": "b"}, "allowVolumeExpansion": true});
        let c = changes(&id("storage.k8s.io/v1", "StorageClass"), &want, &live);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "parameters");
        assert_eq!(c[0].live, json!({"pool": "a"}));
    }

    #[test]
    fn data_pool_names_index_wise_and_new_pools_allowed() {
        let live = json!({"spec": {"dataPools": [{"name": "data"}]}});
        let added = json!({"spec": {"dataPools": [{"name": "data"}, {"name": "more"}]}});
        assert!(changes(&id("ceph.rook.io/v1", "CephFilesystem"), &added, &live).is_empty());
        let renamed = json!({"spec": {"dataPools": [{"name": "bulk"}]}});
        let c = changes(&id("ceph.rook.io/v1", "CephFilesystem"), &renamed, &live);
        assert_eq!(c[0].field, "spec.dataPools.0.name");
    }

    #[test]
    fn data_dir_host_path() {
        let c = changes(
            &id("ceph.rook.io/v1", "CephCluster"),
            &json!({"spec": {"dataDirHostPath": "/srv/rook"}}),
            &json!({"spec": {"dataDirHostPath": "/var/lib/rook"}}),
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].desired, json!("/srv/rook"));
    }
}
