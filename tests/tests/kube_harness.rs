//! The control-plane harness itself (`rookery_tests::kube`), proven against the real thing.
//!
//! Real: etcd, kube-apiserver, kube-controller-manager (Deployment → ReplicaSet → Pod, node
//! lifecycle, ServiceAccounts), kube-scheduler, kwok (node and pod status in place of a
//! kubelet). Played by the test, to prove the status helper: the Rook operator (a CephCluster's
//! status) and Velero (a BackupStorageLocation's status).

use std::process::Command;
use std::time::{Duration, Instant};

use rookery_tests::kube::objects::{self, condition_true, deployment_rolled_out};
use rookery_tests::kube::{KubeCluster, client_from_kubeconfig, missing_prerequisite};
use rookery_tests::require::prerequisite;
use rookery_tests::velero;
use serde_json::json;

fn ready() -> bool {
    let missing = missing_prerequisite();
    prerequisite(missing.is_none(), missing.as_deref().unwrap_or(""))
}

fn deployment(replicas: i64) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "harness"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                // kwok never pulls or runs the image: any reference does.
                "spec": {"containers": [{"name": "web", "image": "registry.invalid/web:1"}]},
            },
        },
    })
}

/// Real: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok. Played: none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_rolls_out_on_three_kwok_nodes() {
    if !ready() {
        return;
    }
    let names = ["node-a", "node-b", "node-c"];
    let cluster = KubeCluster::start(&names).await.unwrap();
    eprintln!("cluster with 3 nodes Ready in {:.1?}", cluster.started_in());
    let client = cluster.client().await.unwrap();

    for n in names {
        let node = objects::get(&client, "v1", "Node", None, n)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("node {n} missing"));
        assert!(
            condition_true(&node, "Ready"),
            "{n} not Ready: {}",
            node["status"]
        );
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], n);
        assert_eq!(node["spec"]["providerID"], format!("kwok://{n}"));
        assert_eq!(node["status"]["allocatable"]["cpu"], "4");
    }

    objects::apply(
        &client,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "harness"}}),
    )
    .await
    .unwrap();
    // Pods are refused until the controller-manager has made the namespace's ServiceAccount.
    objects::wait_for(
        &client,
        "v1",
        "ServiceAccount",
        Some("harness"),
        "default",
        "created",
        Duration::from_secs(60),
        |_| true,
    )
    .await
    .unwrap();

    let t = Instant::now();
    let applied = objects::apply(&client, &deployment(2)).await.unwrap();
    assert_eq!(applied["metadata"]["generation"], 1);
    let d = objects::wait_for(
        &client,
        "apps/v1",
        "Deployment",
        Some("harness"),
        "web",
        "rolled out (2 replicas)",
        Duration::from_secs(120),
        deployment_rolled_out,
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\n--- kube-controller-manager\n{}\n--- kube-scheduler\n{}\n--- kwok\n{}",
            cluster.log_tail("kube-controller-manager", 20),
            cluster.log_tail("kube-scheduler", 20),
            cluster.log_tail("kwok", 20)
        )
    });
    assert_eq!(d["status"]["observedGeneration"], 1);
    assert_eq!(d["status"]["availableReplicas"], 2);
    eprintln!("Deployment (2 replicas) Available in {:.1?}", t.elapsed());

    // A changed spec is a new generation; the wait must see the controller catch up to it.
    let t = Instant::now();
    let applied = objects::apply(&client, &deployment(3)).await.unwrap();
    assert_eq!(applied["metadata"]["generation"], 2);
    let d = objects::wait_for(
        &client,
        "apps/v1",
        "Deployment",
        Some("harness"),
        "web",
        "rolled out (3 replicas)",
        Duration::from_secs(120),
        deployment_rolled_out,
    )
    .await
    .unwrap();
    assert_eq!(d["status"]["observedGeneration"], 2);
    eprintln!("scaled to 3 in {:.1?}", t.elapsed());

    let pods = objects::list(&client, "v1", "Pod", Some("harness"), Some("app=web"))
        .await
        .unwrap();
    assert_eq!(pods.len(), 3, "pods: {pods:?}");
    for p in &pods {
        assert_eq!(
            p["status"]["phase"], "Running",
            "pod {}",
            p["metadata"]["name"]
        );
        let node = p["spec"]["nodeName"].as_str().unwrap_or_default();
        assert!(names.contains(&node), "pod bound to {node:?}");
    }
}

/// Real: etcd and kube-apiserver only (an api-only cluster). Played: the Rook operator
/// (CephCluster status) and Velero (BackupStorageLocation status).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubeconfig_verifies_the_ca_and_status_is_a_subresource() {
    if !ready() {
        return;
    }
    let cluster = KubeCluster::builder().api_only().start().await.unwrap();
    eprintln!("api-only cluster ready in {:.1?}", cluster.started_in());

    // The harness's kubeconfig trusts the apiserver's own certificate.
    let client = client_from_kubeconfig(cluster.kubeconfig()).await.unwrap();
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.git_version, "v1.35.4");
    let kc = std::fs::read_to_string(cluster.kubeconfig()).unwrap();
    assert!(kc.contains("certificate-authority-data: "), "{kc}");
    assert!(!kc.contains("insecure-skip-tls-verify"), "{kc}");

    // The same server and token, but another CA: the TLS handshake must fail.
    let key = cluster.dir().join("wrong-ca.key");
    let crt = cluster.dir().join("wrong-ca.crt");
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=not-the-apiserver-ca", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wrong = cluster
        .kubeconfig_with_ca("wrong-ca.kubeconfig", &std::fs::read(&crt).unwrap())
        .unwrap();
    let wrong_client = client_from_kubeconfig(&wrong).await.unwrap();
    let err = wrong_client.apiserver_version().await.unwrap_err();
    let chain = format!("{:?}", anyhow::Error::from(err));
    assert!(
        chain.contains("UnknownIssuer") || chain.to_lowercase().contains("certificate"),
        "expected a TLS certificate error, got: {chain}"
    );

    // The right CA and a wrong token: TLS works, authentication does not.
    let bad_token = cluster.dir().join("bad-token.kubeconfig");
    rookery_tests::kube::write_kubeconfig(
        &bad_token,
        &cluster.server(),
        &std::fs::read(cluster.ca_path()).unwrap(),
        "not-the-token",
    )
    .unwrap();
    let err = client_from_kubeconfig(&bad_token)
        .await
        .unwrap()
        .list_api_groups()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 401),
        "expected 401, got {err:?}"
    );

    // Two upstream CRDs (read from ../shared/upstream): Rook's CephCluster has a status
    // subresource; Velero's BackupStorageLocation declares `subresources: {}`, so Velero writes
    // its status with the object. patch_status must do what each owner does.
    let t = Instant::now();
    let shared = rookery_tests::bins::shared_dir().join("upstream");
    let rook = shared.join("rook-v1.20.6/deploy/examples");
    let ceph_crd =
        objects::crd_from_file(&rook.join("crds.yaml"), "cephclusters.ceph.rook.io").unwrap();
    let bsl_crd = velero::crd_file("backupstoragelocations").unwrap();
    let mut crds = objects::read_yaml_documents(&bsl_crd).unwrap();
    crds.push(ceph_crd);
    objects::install_crd_objects(&client, &crds, Duration::from_secs(60))
        .await
        .unwrap();
    eprintln!("2 CRDs Established and served in {:.1?}", t.elapsed());
    assert!(
        objects::has_status_subresource(&client, "ceph.rook.io/v1", "CephCluster")
            .await
            .unwrap()
    );
    assert!(
        !objects::has_status_subresource(&client, "velero.io/v1", "BackupStorageLocation")
            .await
            .unwrap()
    );
    for ns in ["rook-ceph", "velero"] {
        objects::apply(
            &client,
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await
        .unwrap();
    }

    // Rook's own test CephCluster; the test plays the Rook operator.
    let cluster_obj = objects::read_yaml_documents(&rook.join("cluster-test.yaml"))
        .unwrap()
        .into_iter()
        .find(|d| d["kind"] == "CephCluster")
        .unwrap();
    let ns = cluster_obj["metadata"]["namespace"]
        .as_str()
        .unwrap()
        .to_string();
    let name = cluster_obj["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let created = objects::apply(&client, &cluster_obj).await.unwrap();
    assert!(created["status"].is_null(), "{}", created["status"]);
    let patched = objects::patch_status(
        &client,
        "ceph.rook.io/v1",
        "CephCluster",
        Some(&ns),
        &name,
        json!({
            "phase": "Ready",
            "state": "Created",
            "message": "Cluster created successfully",
            "ceph": {"health": "HEALTH_OK"},
        }),
    )
    .await
    .unwrap();
    assert_eq!(patched["status"]["phase"], "Ready");
    assert_eq!(patched["status"]["ceph"]["health"], "HEALTH_OK");
    assert_eq!(patched["spec"], created["spec"]);
    // Status sent with the object itself is dropped: it really is a subresource.
    let mut with_status = cluster_obj.clone();
    with_status["status"] = json!({"phase": "Progressing"});
    objects::apply(&client, &with_status).await.unwrap();
    let got = objects::get(&client, "ceph.rook.io/v1", "CephCluster", Some(&ns), &name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got["status"]["phase"], "Ready");

    // The BSL; the test plays Velero.
    let bsl = json!({
        "apiVersion": "velero.io/v1",
        "kind": "BackupStorageLocation",
        "metadata": {"name": "default", "namespace": "velero"},
        "spec": {
            "provider": "aws",
            "objectStorage": {"bucket": "backups"},
            "config": {"region": "us-east-1"},
        },
    });
    let created = objects::apply(&client, &bsl).await.unwrap();
    let patched = objects::patch_status(
        &client,
        "velero.io/v1",
        "BackupStorageLocation",
        Some("velero"),
        "default",
        json!({"phase": "Unavailable", "message": "played by the test"}),
    )
    .await
    .unwrap();
    assert_eq!(patched["status"]["phase"], "Unavailable");
    assert_eq!(patched["status"]["message"], "played by the test");
    assert_eq!(patched["spec"], created["spec"]);

    // The CRD's schema is enforced on status (phase is an enum).
    let err = objects::patch_status(
        &client,
        "velero.io/v1",
        "BackupStorageLocation",
        Some("velero"),
        "default",
        json!({"phase": "Sideways"}),
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("Sideways"), "{err:#}");
}

/// Real: etcd and a kube-apiserver that cannot start. Played: none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_dies_fails_the_start_with_its_log() {
    if !ready() {
        return;
    }
    let t = Instant::now();
    let err = match KubeCluster::builder()
        .api_only()
        .arg("kube-apiserver", "--no-such-flag-rookery")
        .start()
        .await
    {
        Ok(_) => panic!("an apiserver with an unknown flag started"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("kube-apiserver exited"), "{err}");
    assert!(
        err.contains("no-such-flag-rookery"),
        "the log tail is missing: {err}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "took {:?}",
        t.elapsed()
    );
}
