//! Names that must be unique across the whole cluster although their objects live in a
//! namespace. ceph-csi-operator rejects a second CSI `Driver` of the same name in another
//! namespace ("Desired name already in use by a different CSI Driver",
//! csiop@v1.0.4 `driver_controller.go:301-306`, rook-velero-facts-2 §1) — but only after the
//! apply succeeded, in a status nobody waits on. A stack whose operator namespace would reuse
//! the Driver names of another Rook on the same cluster is refused before the first request.

use kube::api::{Api, ListParams};
use rookery_stack::desired::{DesiredObject, ObjectRef};

use crate::error::{KubeError, NameCollision};
use crate::resolve::{Resolver, gvk_of};

/// Kinds whose `metadata.name` is unique cluster-wide although they are namespaced.
const CLUSTER_UNIQUE: &[(&str, &str)] = &[("csi.ceph.io", "Driver")];

fn cluster_unique(id: &ObjectRef) -> bool {
    CLUSTER_UNIQUE
        .iter()
        .any(|(g, k)| id.group() == *g && id.kind == *k)
}

/// The desired objects whose name is already taken in another namespace. `existing` is every
/// live object of the same kinds: (kind, namespace, name).
pub fn collisions(
    desired: &[&DesiredObject],
    existing: &[(String, Option<String>, String)],
) -> Vec<NameCollision> {
    desired
        .iter()
        .filter(|o| cluster_unique(&o.id))
        .flat_map(|o| {
            existing
                .iter()
                .filter(|(kind, ns, name)| {
                    *kind == o.id.kind && *name == o.id.name && *ns != o.id.namespace
                })
                .map(|(_, ns, _)| NameCollision {
                    object: o.id.clone(),
                    existing_namespace: ns.clone().unwrap_or_default(),
                })
        })
        .collect()
}

/// Live objects of the cluster-unique kinds the desired objects use (none when the kind is
/// not served yet: then nothing can collide).
pub async fn live_names(
    resolver: &Resolver,
    desired: &[&DesiredObject],
) -> Result<Vec<(String, Option<String>, String)>, KubeError> {
    let mut kinds: Vec<&ObjectRef> = desired
        .iter()
        .map(|o| &o.id)
        .filter(|id| cluster_unique(id))
        .collect();
    kinds.sort_by(|a, b| (&a.api_version, &a.kind).cmp(&(&b.api_version, &b.kind)));
    kinds.dedup_by(|a, b| a.api_version == b.api_version && a.kind == b.kind);
    let mut out = Vec::new();
    for id in kinds {
        let Some((ar, _)) = resolver.resolve(&gvk_of(id)).await? else {
            continue;
        };
        let api: Api<kube::api::DynamicObject> =
            Api::all_with(resolver.cluster().client.clone(), &ar);
        let list = resolver
            .cluster()
            .call(
                "listing",
                format!("{} in every namespace", id.kind),
                api.list(&ListParams::default()),
            )
            .await?;
        out.extend(list.items.into_iter().map(|item| {
            (
                id.kind.clone(),
                item.metadata.namespace,
                item.metadata.name.unwrap_or_default(),
            )
        }));
    }
    Ok(out)
}

/// Refuse the desired objects when one of their cluster-unique names is taken elsewhere.
pub async fn check(resolver: &Resolver, desired: &[&DesiredObject]) -> Result<(), KubeError> {
    let found = collisions(desired, &live_names(resolver, desired).await?);
    if found.is_empty() {
        Ok(())
    } else {
        Err(KubeError::NameCollision(found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_stack::desired::{Source, Stage};
    use rookery_stack::readiness::Readiness;
    use serde_json::json;

    fn driver(ns: &str, name: &str) -> DesiredObject {
        DesiredObject {
            id: ObjectRef {
                api_version: "csi.ceph.io/v1".into(),
                kind: "Driver".into(),
                name: name.into(),
                namespace: Some(ns.into()),
            },
            stage: Stage::RookOperator,
            source: Source::Template {
                template: "operator.yaml".into(),
            },
            body: json!({}),
            secret_data: Vec::new(),
            readiness: Readiness::Exists,
            skip_unless_served: None,
        }
    }

    #[test]
    fn a_driver_name_used_by_another_namespace_collides() {
        let ours = driver("storage-system", "rook-ceph.cephfs.csi.ceph.com");
        let existing = vec![(
            "Driver".to_string(),
            Some("rook-ceph".to_string()),
            "rook-ceph.cephfs.csi.ceph.com".to_string(),
        )];
        let found = collisions(&[&ours], &existing);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].existing_namespace, "rook-ceph");
    }

    #[test]
    fn our_own_driver_and_other_names_do_not_collide() {
        let ours = driver("storage-system", "storage-system.cephfs.csi.ceph.com");
        let existing = vec![
            (
                "Driver".to_string(),
                Some("storage-system".to_string()),
                "storage-system.cephfs.csi.ceph.com".to_string(),
            ),
            (
                "Driver".to_string(),
                Some("rook-ceph".to_string()),
                "rook-ceph.cephfs.csi.ceph.com".to_string(),
            ),
        ];
        assert!(collisions(&[&ours], &existing).is_empty());
    }
}
