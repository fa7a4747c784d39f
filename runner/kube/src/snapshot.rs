//! Read what `rookery status` and `rookery doctor` judge, into a
//! [`rookery_health::Snapshot`]: every list at once, each under the request deadline. A kind
//! the server does not serve becomes [`Listed::NotServed`] and a failed read
//! [`Listed::Error`] — shown as missing, never dropped. Secrets are read only for the names of
//! their keys; the values are dropped here, before anything else sees them.
//!
//! Velero's kinds are resolved through [`crate::velero::Kind`] (the views there drop fields the
//! checks need, such as a Backup's labels and the BSL's config, in their raw form; this reads the
//! same objects raw).

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::discovery::Scope;
use rookery_health::snapshot::{Namespaces, SNAPSHOT_CRDS, SecretKeys, secret_refs};
use rookery_health::{Listed, Snapshot};
use serde_json::{Value, json};

use crate::connect::Cluster;
use crate::resolve::Resolver;
use crate::velero;

/// Rook's daemon Deployments (the `app` label values of rook's mon/osd/mds/mgr specs).
const ROOK_DAEMONS: &str = "app in (rook-ceph-mon,rook-ceph-osd,rook-ceph-mds,rook-ceph-mgr)";

fn without_noise(mut v: Value) -> Value {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
        if let Some(a) = m.get_mut("annotations").and_then(Value::as_object_mut) {
            // kubectl's copy of the whole object (a Secret's would hold its data).
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
    v
}

async fn list(
    resolver: &Resolver,
    gvk: GroupVersionKind,
    namespace: Option<&str>,
    params: ListParams,
) -> Listed {
    let label = format!("{} {}", gvk.api_version(), gvk.kind);
    let (ar, caps) = match resolver.resolve(&gvk).await {
        Ok(Some(found)) => found,
        Ok(None) => return Listed::NotServed,
        Err(e) => return Listed::Error(line(&e)),
    };
    let api: Api<DynamicObject> = match (&caps.scope, namespace) {
        (Scope::Namespaced, Some(ns)) => {
            Api::namespaced_with(resolver.cluster().client.clone(), ns, &ar)
        }
        _ => Api::all_with(resolver.cluster().client.clone(), &ar),
    };
    let what = match namespace {
        Some(ns) => format!("{label} in {ns}"),
        None => label,
    };
    match resolver
        .cluster()
        .call("listing", what, api.list(&params))
        .await
    {
        Ok(l) => Listed::Items(
            l.items
                .into_iter()
                .filter_map(|o| serde_json::to_value(o).ok())
                .map(without_noise)
                .collect(),
        ),
        Err(e) if e.is_not_found() => Listed::NotServed,
        Err(e) => Listed::Error(line(&e)),
    }
}

/// The error and its causes on one line.
fn line(e: &crate::KubeError) -> String {
    let mut s = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn gvk(api_version: &str, kind: &str) -> GroupVersionKind {
    match api_version.split_once('/') {
        Some((g, v)) => GroupVersionKind::gvk(g, v, kind),
        None => GroupVersionKind::gvk("", api_version, kind),
    }
}

fn velero_gvk(kind: velero::Kind) -> GroupVersionKind {
    GroupVersionKind::gvk(velero::GROUP, velero::VERSION, kind.name())
}

/// The snapshot CRDs that exist, each as `{"metadata": {"name": ...}}` (the CRDs themselves
/// are large and nothing else of them is needed).
async fn crds(cluster: &Cluster) -> Listed {
    let api: Api<DynamicObject> = Api::all_with(
        cluster.client.clone(),
        &ApiResource::from_gvk_with_plural(
            &gvk("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let mut found = Vec::new();
    for name in SNAPSHOT_CRDS {
        match cluster
            .call(
                "reading",
                format!("CustomResourceDefinition {name}"),
                api.get_opt(name),
            )
            .await
        {
            Ok(Some(_)) => found.push(json!({"metadata": {"name": name}})),
            Ok(None) => {}
            Err(e) => return Listed::Error(line(&e)),
        }
    }
    Listed::Items(found)
}

/// A Secret's key names; `keys: None` when it does not exist or cannot be read.
async fn secret_keys(cluster: &Cluster, namespace: &str, name: &str) -> SecretKeys {
    let api: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(cluster.client.clone(), namespace);
    let keys = match cluster
        .call(
            "reading",
            format!("Secret {namespace}/{name}"),
            api.get_opt(name),
        )
        .await
    {
        Ok(Some(s)) => {
            let mut keys: Vec<String> = s.data.unwrap_or_default().into_keys().collect();
            keys.extend(s.string_data.unwrap_or_default().into_keys());
            keys.sort();
            keys.dedup();
            Some(keys)
        }
        _ => None,
    };
    SecretKeys {
        namespace: namespace.to_string(),
        name: name.to_string(),
        keys,
    }
}

/// Read everything the checks look at. Never fails: what cannot be read is recorded as such.
pub async fn gather(cluster: &Cluster, ns: &Namespaces, velero_expected: bool) -> Snapshot {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let resolver = Resolver::new(cluster.clone());
    let r = &resolver;
    let all = ListParams::default;
    let (
        ceph_clusters,
        ceph_filesystems,
        ceph_deployments,
        snapshot_controllers,
        storage_classes,
        snapshot_classes,
        crds,
        csi_drivers,
        rook_drivers,
    ) = futures::join!(
        list(
            r,
            gvk("ceph.rook.io/v1", "CephCluster"),
            Some(&ns.cluster),
            all()
        ),
        list(
            r,
            gvk("ceph.rook.io/v1", "CephFilesystem"),
            Some(&ns.cluster),
            all()
        ),
        list(
            r,
            gvk("apps/v1", "Deployment"),
            Some(&ns.cluster),
            all().labels(ROOK_DAEMONS)
        ),
        // external-snapshotter's Deployment, wherever it was installed.
        list(
            r,
            gvk("apps/v1", "Deployment"),
            None,
            all().fields("metadata.name=snapshot-controller")
        ),
        list(r, gvk("storage.k8s.io/v1", "StorageClass"), None, all()),
        list(
            r,
            gvk("snapshot.storage.k8s.io/v1", "VolumeSnapshotClass"),
            None,
            all()
        ),
        crds(cluster),
        list(r, gvk("storage.k8s.io/v1", "CSIDriver"), None, all()),
        list(
            r,
            gvk("csi.ceph.io/v1", "Driver"),
            Some(&ns.operator),
            all()
        ),
    );
    let (bsls, schedules, backups) = futures::join!(
        list(
            r,
            velero_gvk(velero::Kind::BackupStorageLocation),
            Some(&ns.velero),
            all()
        ),
        list(
            r,
            velero_gvk(velero::Kind::Schedule),
            Some(&ns.velero),
            all()
        ),
        list(r, velero_gvk(velero::Kind::Backup), Some(&ns.velero), all()),
    );
    let mut snapshot = Snapshot {
        now,
        server: cluster.server.clone(),
        namespaces: Some(ns.clone()),
        velero_expected,
        ceph_clusters,
        ceph_filesystems,
        ceph_deployments,
        snapshot_controllers,
        storage_classes,
        snapshot_classes,
        crds,
        csi_drivers,
        rook_drivers,
        secrets: Vec::new(),
        backup_storage_locations: bsls,
        schedules,
        backups,
        planned_osds: Vec::new(),
        nodes: None,
    };
    let refs = secret_refs(&snapshot);
    snapshot.secrets = futures::future::join_all(
        refs.iter()
            .map(|(namespace, name)| secret_keys(cluster, namespace, name)),
    )
    .await;
    snapshot
}
