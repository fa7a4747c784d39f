//! `rookery apply` / `rookery diff` against a real control plane.
//!
//! Real: etcd, kube-apiserver (server-side apply, field managers, CRD schemas and CEL,
//! status subresources, RBAC), kube-controller-manager, kube-scheduler, kwok (pods Running on
//! fake nodes named after the inventory's hosts), and the `rookery` binary.
//! Played by the test (no container runtime here): the Rook operator and Ceph (CephCluster /
//! CephFilesystem status, the MDS Deployments) and Velero's validation (BackupStorageLocation
//! and Schedule phases) — see `rookery_tests::kube::fake`; they write the real status fields
//! of the real CRDs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rookery_tests::cli::{self, Run, lab_copy};
use rookery_tests::kube::fake::{Behaviour, Fake};
use rookery_tests::kube::objects;
use rookery_tests::kube::{KubeCluster, missing_prerequisite};
use rookery_tests::require::prerequisite;
use serde_json::Value;

fn ready() -> bool {
    let missing = missing_prerequisite();
    prerequisite(missing.is_none(), missing.as_deref().unwrap_or(""))
}

/// Every object the stack owns (by the ApplySet label), keyed by kind/ns/name, with its
/// resourceVersion.
/// `rookery CMD` on the stack directory against the cluster, then ARGS.
fn rookery(cmd: &str, stack_dir: &Path, kubeconfig: &Path, args: &[&str]) -> Run {
    cli::run(cli::with_stack(cmd, stack_dir, kubeconfig).args(args))
}

async fn resource_versions(client: &::kube::Client) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (api, kind, nss) in [
        (
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            vec![None],
        ),
        ("v1", "Namespace", vec![None]),
        ("rbac.authorization.k8s.io/v1", "ClusterRole", vec![None]),
        ("storage.k8s.io/v1", "StorageClass", vec![None]),
        (
            "apps/v1",
            "Deployment",
            vec![Some("rook-ceph"), Some("velero"), Some("kube-system")],
        ),
        ("v1", "Secret", vec![Some("velero")]),
        ("ceph.rook.io/v1", "CephCluster", vec![Some("rook-ceph")]),
        ("ceph.rook.io/v1", "CephFilesystem", vec![Some("rook-ceph")]),
        (
            "velero.io/v1",
            "BackupStorageLocation",
            vec![Some("velero")],
        ),
    ] {
        for ns in nss {
            // Kinds a stack without Velero never installs are simply absent.
            let Ok(list) = objects::list(
                client,
                api,
                kind,
                ns,
                Some("applyset.kubernetes.io/part-of"),
            )
            .await
            else {
                continue;
            };
            for o in list {
                out.insert(
                    format!(
                        "{kind}/{}/{}",
                        o["metadata"]["namespace"].as_str().unwrap_or(""),
                        o["metadata"]["name"].as_str().unwrap()
                    ),
                    o["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                );
            }
        }
    }
    out
}

fn secrets_of(stack_dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(stack_dir.join("secrets")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        for line in text.lines() {
            let secret = line.split_once('=').map(|(_, v)| v).unwrap_or(line).trim();
            if secret.len() >= 6 {
                v.push(secret.to_string());
            }
        }
    }
    v
}

fn assert_no_secrets(run: &Run, secrets: &[String], token: &str) {
    for s in secrets.iter().map(String::as_str).chain([token]) {
        assert!(
            !run.stdout.contains(s) && !run.stderr.contains(s),
            "a secret value appeared in the output"
        );
    }
}

/// The lab stack applies in order and waits to success; a second apply changes nothing
/// (every resourceVersion as it was); `diff` then reports no changes; a changed field shows
/// in `diff`, Secret values masked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_stack_applies_waits_and_converges() {
    if !ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let stack = lab_copy(tmp.path());
    let cluster = KubeCluster::start(&["lab-1", "lab-2", "lab-3"])
        .await
        .unwrap();
    let client = cluster.client().await.unwrap();
    let _fake = Fake::start(
        client.clone(),
        "rook-ceph",
        "velero",
        Behaviour {
            // A fresh v1.20.6 cluster with `aes` CSI keys: accepted, with its reason shown.
            ceph_health: "HEALTH_WARN".into(),
            ceph_details: serde_json::json!({"AUTH_INSECURE_KEYS_ALLOWED": {
                "severity": "HEALTH_WARN", "message": "insecure keys are allowed"}}),
            ..Behaviour::default()
        },
    );
    let secrets = secrets_of(&stack);

    let first = rookery("apply", &stack, cluster.kubeconfig(), &[]);
    assert_eq!(first.code, 0);
    assert!(first.stdout.contains("Apply complete"), "{}", first.stdout);
    assert!(first.stdout.contains("0 unchanged"), "{}", first.stdout);
    assert!(
        first
            .stdout
            .contains("HEALTH_WARN accepted: AUTH_INSECURE_KEYS_ALLOWED"),
        "{}",
        first.stdout
    );
    assert_no_secrets(&first, &secrets, cluster.token());
    // The stages ran in the seed's order.
    let order: Vec<usize> = [
        "CustomResourceDefinitions",
        "namespaces and cluster RBAC",
        "CSI snapshot controller",
        "Rook operator",
        "[5/9] CephCluster",
        "CephFilesystems",
        "StorageClasses and VolumeSnapshotClass",
        "[8/9] Velero",
        "backup schedules",
    ]
    .iter()
    .map(|s| {
        first
            .stderr
            .find(s)
            .unwrap_or_else(|| panic!("stage {s} not reported"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");

    // The Velero Secret carries the resolved credentials (never written anywhere else).
    let cloud = objects::get(&client, "v1", "Secret", Some("velero"), "cloud-credentials")
        .await
        .unwrap()
        .unwrap();
    assert!(
        cloud["data"]["cloud"]
            .as_str()
            .is_some_and(|s| s.len() > 10)
    );

    let before = resource_versions(&client).await;
    assert!(before.len() > 50, "{}", before.len());
    let second = rookery("apply", &stack, cluster.kubeconfig(), &[]);
    assert_eq!(second.code, 0);
    assert!(
        second.stdout.contains("0 created, 0 configured"),
        "{}",
        second.stdout
    );
    assert_eq!(
        resource_versions(&client).await,
        before,
        "a converged re-apply changed objects"
    );

    let diff = rookery("diff", &stack, cluster.kubeconfig(), &[]);
    assert_eq!(diff.code, 0, "no changes expected");
    assert!(
        diff.stdout.contains("0 to create, 0 to change"),
        "{}",
        diff.stdout
    );

    // A changed mutable field and a changed credential: diff shows both, values hidden.
    let text = std::fs::read_to_string(stack.join("stack.yaml")).unwrap();
    std::fs::write(
        stack.join("stack.yaml"),
        text.replace("allowVolumeExpansion: true", "allowVolumeExpansion: false"),
    )
    .unwrap();
    std::fs::write(
        stack.join("secrets/s3.ini"),
        "[default]\naws_access_key_id=ROTATEDKEY123\naws_secret_access_key=rotated-secret-value-xyz\n",
    )
    .unwrap();
    let diff = rookery("diff", &stack, cluster.kubeconfig(), &[]);
    assert_eq!(diff.code, 16, "changes pending");
    assert!(
        diff.stdout.contains("~ StorageClass shared-fs"),
        "{}",
        diff.stdout
    );
    assert!(
        diff.stdout.contains("+allowVolumeExpansion: false"),
        "{}",
        diff.stdout
    );
    assert!(
        diff.stdout.contains("~ Secret velero/cloud-credentials"),
        "{}",
        diff.stdout
    );
    assert!(diff.stdout.contains("<hidden, changed>"), "{}", diff.stdout);
    let mut all = secrets.clone();
    all.extend([
        "ROTATEDKEY123".to_string(),
        "rotated-secret-value-xyz".to_string(),
    ]);
    assert_no_secrets(&diff, &all, cluster.token());
    let json = rookery("diff", &stack, cluster.kubeconfig(), &["-o", "json"]);
    assert_eq!(json.code, 16);
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(doc["objects"].as_array().unwrap().len() > 50);
    assert_no_secrets(&json, &all, cluster.token());
}

/// Edit the stack file as YAML.
fn edit_stack(stack_dir: &Path, f: impl FnOnce(&mut serde_yaml::Value)) {
    let path = stack_dir.join("stack.yaml");
    let mut doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    f(&mut doc);
    std::fs::write(&path, serde_yaml::to_string(&doc).unwrap()).unwrap();
}

/// Stages up to and including the ones named, skipping the slow snapshot controller
/// (minReadySeconds 35) where a test does not need it.
fn stages(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .flat_map(|s| ["--stage".to_string(), s.to_string()])
        .collect()
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Immutable fields are refused before any request (nothing changes); `--prune` removes a
/// dropped StorageClass but refuses its CephFilesystem until it is named with
/// `--allow-delete`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immutable_fields_are_refused_and_prune_protects_filesystems() {
    if !ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let stack = lab_copy(tmp.path());
    // A second filesystem and class, to be dropped later.
    edit_stack(&stack, |doc| {
        let classes = doc["storageClasses"].as_sequence_mut().unwrap();
        let mut second = classes[0].clone();
        second["name"] = "scratch".into();
        second["isDefault"] = false.into();
        classes.push(second);
        // Velero is not what this test is about; it keeps the run short.
        doc.as_mapping_mut().unwrap().remove("backupStrategy");
        doc["security"]
            .as_mapping_mut()
            .unwrap()
            .remove("kopiaRepositoryPassword");
    });
    let cluster = KubeCluster::start(&["lab-1", "lab-2", "lab-3"])
        .await
        .unwrap();
    let client = cluster.client().await.unwrap();
    let _fake = Fake::start(client.clone(), "rook-ceph", "velero", Behaviour::default());
    let skip_snapshots = stages(&[
        "crds",
        "namespaces",
        "rook-operator",
        "ceph-cluster",
        "filesystems",
        "storage-classes",
    ]);
    let run = rookery(
        "apply",
        &stack,
        cluster.kubeconfig(),
        &args(&skip_snapshots),
    );
    assert_eq!(run.code, 0);
    let full = rookery("apply", &stack, cluster.kubeconfig(), &[]);
    assert_eq!(full.code, 0);
    let before = resource_versions(&client).await;

    // Immutable: a StorageClass's reclaimPolicy and the CephCluster's dataDirHostPath.
    let original = std::fs::read_to_string(stack.join("stack.yaml")).unwrap();
    edit_stack(&stack, |doc| {
        doc["storageClasses"][0]["reclaimPolicy"] = "Retain".into();
        doc["cephCluster"]["dataDirHostPath"] = "/srv/rook".into();
    });
    let refused = rookery("apply", &stack, cluster.kubeconfig(), &[]);
    assert_eq!(refused.code, 32);
    assert!(
        refused
            .stderr
            .contains("immutable field(s) would change; nothing was applied"),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains("`reclaimPolicy` is \"Delete\" on the cluster, the stack says \"Retain\""),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains("`spec.dataDirHostPath` is \"/var/lib/rook\""),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("hint: "), "{}", refused.stderr);
    assert_eq!(
        resource_versions(&client).await,
        before,
        "a refused apply changed something"
    );
    let diff = rookery("diff", &stack, cluster.kubeconfig(), &[]);
    assert_eq!(diff.code, 32, "diff says the server would refuse");
    assert!(
        diff.stdout
            .contains("! StorageClass shared-fs would be refused"),
        "{}",
        diff.stdout
    );
    std::fs::write(stack.join("stack.yaml"), &original).unwrap();

    // Drop the second class: its StorageClass goes, its filesystem is protected.
    edit_stack(&stack, |doc| {
        doc["storageClasses"].as_sequence_mut().unwrap().pop();
    });
    let diff = rookery("diff", &stack, cluster.kubeconfig(), &[]);
    assert_eq!(diff.code, 16);
    assert!(
        diff.stdout
            .contains("- StorageClass scratch (would be pruned by --prune)"),
        "{}",
        diff.stdout
    );
    assert!(
        diff.stdout
            .contains("- CephFilesystem rook-ceph/scratch (would be pruned, but it is protected"),
        "{}",
        diff.stdout
    );
    let without = rookery("apply", &stack, cluster.kubeconfig(), &["--prune"]);
    assert_eq!(without.code, 32);
    assert!(
        without
            .stderr
            .contains("CephFilesystem.ceph.rook.io/scratch"),
        "{}",
        without.stderr
    );
    assert!(
        without.stderr.contains("--allow-delete"),
        "{}",
        without.stderr
    );
    let sc = objects::get(
        &client,
        "storage.k8s.io/v1",
        "StorageClass",
        None,
        "scratch",
    )
    .await
    .unwrap();
    assert!(sc.is_none(), "the dropped StorageClass is pruned");
    let fs = objects::get(
        &client,
        "ceph.rook.io/v1",
        "CephFilesystem",
        Some("rook-ceph"),
        "scratch",
    )
    .await
    .unwrap();
    assert!(
        fs.is_some(),
        "the filesystem is kept without --allow-delete"
    );
    let allowed = rookery(
        "apply",
        &stack,
        cluster.kubeconfig(),
        &["--prune", "--allow-delete", "CephFilesystem/scratch"],
    );
    assert_eq!(allowed.code, 0);
    assert!(
        allowed
            .stderr
            .contains("pruned CephFilesystem rook-ceph/scratch"),
        "{}",
        allowed.stderr
    );
    let fs = objects::get(
        &client,
        "ceph.rook.io/v1",
        "CephFilesystem",
        Some("rook-ceph"),
        "scratch",
    )
    .await
    .unwrap();
    // Rook's finalizer may keep it a moment; it is being deleted either way.
    assert!(fs.is_none_or(|f| f["metadata"]["deletionTimestamp"].is_string()));
    let kept = objects::get(
        &client,
        "ceph.rook.io/v1",
        "CephFilesystem",
        Some("rook-ceph"),
        "shared-fs",
    )
    .await
    .unwrap();
    assert!(kept.is_some());
}

/// Terminal states fail fast with the operator's own words; a timeout names the object and
/// its last state; an operator that cannot run is named instead of waited on silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_fast_named_and_explained() {
    if !ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let stack = lab_copy(tmp.path());
    let cluster = KubeCluster::start(&["lab-1", "lab-2", "lab-3"])
        .await
        .unwrap();
    let client = cluster.client().await.unwrap();
    let fake = Fake::start(
        client.clone(),
        "rook-ceph",
        "velero",
        Behaviour {
            ceph_health: "HEALTH_ERR".into(),
            ceph_details: serde_json::json!({"OSD_FULL": {
                "severity": "HEALTH_ERR", "message": "1 full osd(s)"}}),
            filesystems: false,
            ..Behaviour::default()
        },
    );
    let through_cluster = stages(&["crds", "namespaces", "rook-operator", "ceph-cluster"]);

    // HEALTH_ERR: fails as soon as Rook reports it, with Ceph's detail.
    let err = rookery(
        "apply",
        &stack,
        cluster.kubeconfig(),
        &args(&through_cluster),
    );
    assert_eq!(err.code, 32);
    assert!(err.stderr.contains("stage `ceph-cluster`: CephCluster rook-ceph/rook-ceph failed: HEALTH_ERR: OSD_FULL: 1 full osd(s)"), "{}", err.stderr);
    assert!(err.stderr.contains("hint: Ceph health"), "{}", err.stderr);

    // A CephFilesystem Rook never reports on: the timeout names it and its last state.
    fake.set(|b| {
        b.ceph_health = "HEALTH_OK".into();
        b.ceph_details = serde_json::json!({});
    });
    let mut a = through_cluster.clone();
    a.extend(stages(&["filesystems"]));
    a.extend(["--stage-timeout".into(), "filesystems=6s".into()]);
    let timeout = rookery("apply", &stack, cluster.kubeconfig(), &args(&a));
    assert_eq!(timeout.code, 32);
    assert!(
        timeout
            .stderr
            .contains("stage `filesystems` timed out after 6 s"),
        "{}",
        timeout.stderr
    );
    assert!(
        timeout.stderr.contains(
            "not ready: CephFilesystem rook-ceph/shared-fs: no status from the Rook operator yet"
        ),
        "{}",
        timeout.stderr
    );

    // The operator cannot run (every node cordoned, its pod gone): the wait says so.
    fake.set(|b| b.rook = false);
    for n in ["lab-1", "lab-2", "lab-3"] {
        // As `kubectl cordon` would: its own field manager.
        objects::apply_as(
            &client,
            "cordon",
            &serde_json::json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": n}, "spec": {"unschedulable": true}}),
        )
        .await
        .unwrap();
    }
    for pod in objects::list(
        &client,
        "v1",
        "Pod",
        Some("rook-ceph"),
        Some("app=rook-ceph-operator"),
    )
    .await
    .unwrap()
    {
        objects::delete(
            &client,
            "v1",
            "Pod",
            Some("rook-ceph"),
            pod["metadata"]["name"].as_str().unwrap(),
        )
        .await
        .unwrap();
    }
    // A new generation Rook has to act on.
    edit_stack(&stack, |doc| {
        doc["cephCluster"]["allowMultiplePerNode"] = true.into()
    });
    let mut a = stages(&["ceph-cluster"]);
    a.extend(["--stage-timeout".into(), "ceph-cluster=15s".into()]);
    let down = rookery("apply", &stack, cluster.kubeconfig(), &args(&a));
    assert_eq!(down.code, 32);
    assert!(down.stderr.contains("the controller that should act is not running: Deployment rook-ceph/rook-ceph-operator is not available"), "{}", down.stderr);
    assert!(
        down.stderr.contains("cannot be scheduled"),
        "{}",
        down.stderr
    );

    // And the operator's own stage, with its pods unschedulable, times out naming why.
    let mut a = stages(&["rook-operator"]);
    a.extend(["--stage-timeout".into(), "rook-operator=8s".into()]);
    let op = rookery("apply", &stack, cluster.kubeconfig(), &args(&a));
    assert_eq!(op.code, 32);
    assert!(
        op.stderr
            .contains("not ready: Deployment rook-ceph/rook-ceph-operator"),
        "{}",
        op.stderr
    );
    assert!(op.stderr.contains("cannot be scheduled"), "{}", op.stderr);
}

/// A field owned by another field manager is a conflict naming the field and the manager;
/// `--force-conflicts` takes it over. A BackupStorageLocation Velero calls Unavailable fails
/// the stage with Velero's message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_and_unavailable_backup_locations() {
    if !ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let stack = lab_copy(tmp.path());
    let cluster = KubeCluster::start(&["lab-1", "lab-2", "lab-3"])
        .await
        .unwrap();
    let client = cluster.client().await.unwrap();
    let fake = Fake::start(client.clone(), "rook-ceph", "velero", Behaviour::default());
    let velero = stages(&["crds", "namespaces", "velero"]);
    let ok = rookery("apply", &stack, cluster.kubeconfig(), &args(&velero));
    assert_eq!(ok.code, 0);

    // Someone scales Velero with their own field manager.
    objects::apply_as(
        &client,
        "ops-team",
        &serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "velero", "namespace": "velero"}, "spec": {"replicas": 2}}),
    )
    .await
    .unwrap();
    let conflict = rookery("apply", &stack, cluster.kubeconfig(), &args(&velero));
    assert_eq!(conflict.code, 32);
    assert!(conflict.stderr.contains("Deployment velero/velero: 1 field(s) owned by another field manager: .spec.replicas (manager `ops-team`)"), "{}", conflict.stderr);
    assert!(
        conflict.stderr.contains("--force-conflicts"),
        "{}",
        conflict.stderr
    );
    let mut forced = velero.clone();
    forced.push("--force-conflicts".into());
    let taken = rookery("apply", &stack, cluster.kubeconfig(), &args(&forced));
    assert_eq!(taken.code, 0);
    let d = objects::get(&client, "apps/v1", "Deployment", Some("velero"), "velero")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d["spec"]["replicas"], 1);

    // Velero says the location is unavailable: the stage fails with its message.
    fake.set(|b| {
        b.bsl_unavailable = Some(
            "BackupStorageLocation \"default\" is unavailable: rpc error: code = Unknown desc = operation error S3: HeadBucket, StatusCode: 404, NoSuchBucket".into(),
        )
    });
    let unavailable = rookery("apply", &stack, cluster.kubeconfig(), &args(&velero));
    assert_eq!(unavailable.code, 32);
    assert!(
        unavailable
            .stderr
            .contains("BackupStorageLocation velero/default failed: Velero says Unavailable"),
        "{}",
        unavailable.stderr
    );
    assert!(
        unavailable.stderr.contains("NoSuchBucket"),
        "{}",
        unavailable.stderr
    );
    assert!(
        unavailable.stderr.contains("hint: backup location"),
        "{}",
        unavailable.stderr
    );
    assert!(
        unavailable.took < Duration::from_secs(60),
        "fails within the grace, not the 5 min timeout"
    );
}
