//! The seed's own layout — everything in `storage-system` — applied to a real control plane.
//!
//! Real: etcd, kube-apiserver (schemas, RBAC objects, server-side apply), kcm, scheduler,
//! kwok, and the `rookery` binary. Played by the test (no container runtime here): the Rook
//! operator and Ceph (CephCluster / CephFilesystem status, MDS Deployments) and Velero's
//! validation of its locations — `rookery_tests::kube::fake` writes the real status fields of
//! the real CRDs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rookery_tests::cli::{self, Run};
use rookery_tests::kube::fake::{Behaviour, Fake};
use rookery_tests::kube::objects;
use rookery_tests::kube::{KubeCluster, missing_prerequisite};
use rookery_tests::require::prerequisite;
use serde_json::{Value, json};

const NS: &str = "storage-system";
const DRIVER: &str = "storage-system.cephfs.csi.ceph.com";

fn ready() -> bool {
    let missing = missing_prerequisite();
    prerequisite(missing.is_none(), missing.as_deref().unwrap_or(""))
}

/// The lab stack moved to `storage-system` (cluster and operator), Velero in `velero`.
fn stack_in_storage_system(dir: &Path) -> PathBuf {
    let to = cli::lab_copy(dir);
    let path = to.join("stack.yaml");
    let mut doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    doc["namespace"] = NS.into();
    std::fs::write(&path, serde_yaml::to_string(&doc).unwrap()).unwrap();
    to
}

fn rookery(cmd: &str, stack_dir: &Path, kubeconfig: &Path, args: &[&str]) -> Run {
    cli::run(cli::with_stack(cmd, stack_dir, kubeconfig).args(args))
}

/// Every object the stack applied (ApplySet member label), across kinds, in every namespace.
async fn applied(client: &::kube::Client) -> Vec<Value> {
    let mut out = Vec::new();
    for (api, kind) in [
        ("v1", "Namespace"),
        ("v1", "ServiceAccount"),
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "Service"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "DaemonSet"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("storage.k8s.io/v1", "StorageClass"),
        ("snapshot.storage.k8s.io/v1", "VolumeSnapshotClass"),
        ("csi.ceph.io/v1", "Driver"),
        ("csi.ceph.io/v1", "OperatorConfig"),
        ("ceph.rook.io/v1", "CephCluster"),
        ("ceph.rook.io/v1", "CephFilesystem"),
        ("velero.io/v1", "BackupStorageLocation"),
        ("velero.io/v1", "Schedule"),
    ] {
        let list = objects::list(
            client,
            api,
            kind,
            None,
            Some("applyset.kubernetes.io/part-of"),
        )
        .await
        .unwrap_or_else(|e| panic!("listing {kind}: {e:#}"));
        out.extend(list.into_iter().map(|mut o| {
            o["kind"] = kind.into();
            o
        }));
    }
    out
}

fn ns_of(o: &Value) -> Option<&str> {
    o["metadata"]["namespace"].as_str()
}

fn name_of(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or("")
}

/// The seed's `storage-system` applies and converges; every object is where it must be, every
/// binding names a ServiceAccount that exists, the classes point at the Driver, no namespace
/// field says `rook-ceph`; a second apply changes nothing. Then another installation's Driver
/// holding our Driver's name in a different namespace is refused before any request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_namespace_applies_and_a_driver_name_collision_is_refused() {
    if !ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let stack = stack_in_storage_system(tmp.path());
    let cluster = KubeCluster::start(&["lab-1", "lab-2", "lab-3"])
        .await
        .unwrap();
    let client = cluster.client().await.unwrap();
    let _fake = Fake::start(client.clone(), NS, "velero", Behaviour::default());

    // Only the CRDs first: then a Driver of our name can exist in another namespace.
    let crds = rookery(
        "apply",
        &stack,
        cluster.kubeconfig(),
        &["--stage", "crds", "--no-wait"],
    );
    assert_eq!(crds.code, 0);
    objects::apply(
        &client,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other-rook"}}),
    )
    .await
    .unwrap();
    let squatter = json!({"apiVersion": "csi.ceph.io/v1", "kind": "Driver",
        "metadata": {"name": DRIVER, "namespace": "other-rook"}, "spec": {}});
    objects::apply(&client, &squatter).await.unwrap();
    let refused = rookery("apply", &stack, cluster.kubeconfig(), &[]);
    assert_eq!(refused.code, 32, "a collision is a cluster error");
    assert!(
        refused.stderr.contains(&format!(
            "{DRIVER} is already used by a Driver in namespace `other-rook`; nothing was applied"
        )),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("operatorNamespace"),
        "{}",
        refused.stderr
    );
    let ns = objects::get(&client, "v1", "Namespace", None, NS)
        .await
        .unwrap();
    assert!(ns.is_none(), "a refused apply created the namespace");
    let diff = rookery("diff", &stack, cluster.kubeconfig(), &[]);
    assert_eq!(diff.code, 32, "diff says the server side would refuse");
    assert!(
        diff.stdout.contains("unique in the whole cluster"),
        "{}",
        diff.stdout
    );
    objects::delete(
        &client,
        "csi.ceph.io/v1",
        "Driver",
        Some("other-rook"),
        DRIVER,
    )
    .await
    .unwrap();

    let first = rookery("apply", &stack, cluster.kubeconfig(), &[]);
    assert_eq!(first.code, 0);
    let all = applied(&client).await;
    assert!(all.len() > 40, "{}", all.len());

    // Where each object must be: Rook's and CSI's in storage-system, Velero's in velero,
    // the snapshot controller in kube-system; nothing in rook-ceph.
    for o in &all {
        if let Some(ns) = ns_of(o) {
            assert!(
                [NS, "velero", "kube-system"].contains(&ns),
                "{} {} is in {ns}",
                o["kind"],
                name_of(o)
            );
        }
    }
    assert!(
        !all.iter()
            .any(|o| o["kind"] == "Namespace" && name_of(o) == "rook-ceph"),
        "rook-ceph was created"
    );
    for kind in ["CephCluster", "CephFilesystem", "Driver", "OperatorConfig"] {
        assert!(
            all.iter()
                .any(|o| o["kind"] == kind && ns_of(o) == Some(NS)),
            "no {kind} in {NS}"
        );
    }
    let operator = objects::get(
        &client,
        "apps/v1",
        "Deployment",
        Some(NS),
        "rook-ceph-operator",
    )
    .await
    .unwrap();
    assert!(operator.is_some(), "the operator runs in {NS}");

    // Every binding's ServiceAccount subject exists, in the namespace the binding names.
    let accounts: BTreeSet<(String, String)> = all
        .iter()
        .filter(|o| o["kind"] == "ServiceAccount")
        .map(|o| (ns_of(o).unwrap_or("").to_string(), name_of(o).to_string()))
        .collect();
    let mut checked = 0;
    for b in all
        .iter()
        .filter(|o| o["kind"] == "RoleBinding" || o["kind"] == "ClusterRoleBinding")
    {
        for s in b["subjects"].as_array().into_iter().flatten() {
            if s["kind"] != "ServiceAccount" {
                continue;
            }
            let ns = s["namespace"].as_str().or(ns_of(b)).unwrap_or("");
            let name = s["name"].as_str().unwrap_or("");
            assert!(
                accounts.contains(&(ns.to_string(), name.to_string())),
                "{} {} names ServiceAccount {ns}/{name}, which does not exist",
                b["kind"],
                name_of(b)
            );
            checked += 1;
        }
    }
    assert!(checked > 10, "{checked} subjects checked");

    // The classes point at the Driver and the cluster.
    let drivers: BTreeSet<&str> = all
        .iter()
        .filter(|o| o["kind"] == "Driver")
        .map(name_of)
        .collect();
    assert!(drivers.contains(DRIVER), "{drivers:?}");
    let sc = all
        .iter()
        .find(|o| o["kind"] == "StorageClass" && name_of(o) == "shared-fs")
        .unwrap();
    assert_eq!(sc["provisioner"], DRIVER);
    assert_eq!(sc["parameters"]["clusterID"], NS);
    let params = sc["parameters"].as_object().unwrap();
    let secret_namespaces: Vec<_> = params
        .iter()
        .filter(|(k, _)| k.ends_with("secret-namespace"))
        .collect();
    assert!(!secret_namespaces.is_empty());
    for (k, v) in secret_namespaces {
        assert_eq!(v, NS, "{k}");
    }
    let vsc = all
        .iter()
        .find(|o| o["kind"] == "VolumeSnapshotClass")
        .unwrap();
    assert_eq!(vsc["driver"], DRIVER);
    assert_eq!(vsc["parameters"]["clusterID"], NS);

    // No `rook-ceph` where a namespace is meant (names and labels may keep it).
    fn namespace_fields<'a>(v: &'a Value, key: &str, out: &mut Vec<(String, &'a str)>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    if (k == "namespace" || k.ends_with("-namespace") || k == "clusterID")
                        && let Some(s) = v.as_str()
                    {
                        out.push((format!("{key}.{k}"), s));
                    }
                    namespace_fields(v, &format!("{key}.{k}"), out);
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    namespace_fields(v, &format!("{key}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    for o in &all {
        let mut fields = Vec::new();
        namespace_fields(o, "", &mut fields);
        for (path, value) in fields {
            assert_ne!(value, "rook-ceph", "{} {}: {path}", o["kind"], name_of(o));
        }
    }

    // Converged: nothing changes on a second apply.
    let second = rookery("apply", &stack, cluster.kubeconfig(), &[]);
    assert_eq!(second.code, 0);
    assert!(
        second.stdout.contains("0 created, 0 configured"),
        "{}",
        second.stdout
    );
}
