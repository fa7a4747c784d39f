//! The Velero harness (`rookery_tests::velero`), proven end to end.
//!
//! Real: etcd and kube-apiserver (an api-only cluster: no Deployment has to roll out), the
//! Velero server v1.18 out of cluster with its real AWS object-store plugin, and an S3 API
//! (gofakes3, in memory) on loopback. Velero validates the BSL, writes the backup to the bucket
//! and restores from it. Played by the test: nothing. Not available: volume data (no node-agent,
//! no CSI snapshots), so the backup is resource-only.

use std::time::{Duration, Instant};

use rookery_tests::kube::KubeCluster;
use rookery_tests::kube::objects;
use rookery_tests::require::prerequisite;
use rookery_tests::velero::{
    self, FakeS3, VeleroOptions, VeleroServer, missing_prerequisite, wait_completed,
};
use serde_json::json;

fn ready() -> bool {
    let missing = missing_prerequisite();
    prerequisite(missing.is_none(), missing.as_deref().unwrap_or(""))
}

/// Real: etcd, kube-apiserver, Velero server + AWS plugin, gofakes3. Played: none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn velero_backs_up_a_namespace_and_restores_it_under_another_name() {
    if !ready() {
        return;
    }
    let cluster = KubeCluster::builder().api_only().start().await.unwrap();
    eprintln!("api-only cluster ready in {:.1?}", cluster.started_in());
    let client = cluster.client().await.unwrap();
    let s3 = FakeS3::start("backups").await.unwrap();

    let t = Instant::now();
    velero::install_crds(&client).await.unwrap();
    eprintln!("Velero CRDs Established in {:.1?}", t.elapsed());
    velero::prepare_namespace(&client, "velero").await.unwrap();
    objects::apply(&client, &velero::bsl("velero", "default", &s3))
        .await
        .unwrap();

    let t = Instant::now();
    let mut server = VeleroServer::start(&cluster, &VeleroOptions::default())
        .await
        .unwrap();
    eprintln!("Velero server up in {:.1?}", server.started_in());
    let bsl = velero::wait_bsl_available(&client, "velero", "default", Duration::from_secs(90))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e:#}\n--- velero\n{}\n--- gofakes3\n{}",
                server.log_tail(40),
                s3.log_tail(20)
            )
        });
    assert!(
        bsl["status"]["lastValidationTime"].is_string(),
        "{}",
        bsl["status"]
    );
    eprintln!("Velero start → BSL Available in {:.1?}", t.elapsed());

    // The namespace to protect: a ConfigMap and a Secret with bytes that are not UTF-8.
    objects::apply(
        &client,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    )
    .await
    .unwrap();
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "shop"},
        "data": {"currency": "EUR", "motd": "line one\nline two\n"},
    });
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": "shop"},
        "type": "Opaque",
        // "rookery-test-password" and the bytes ff 00 fe, base64.
        "data": {"password": "cm9va2VyeS10ZXN0LXBhc3N3b3Jk", "raw": "/wD+"},
    });
    objects::apply(&client, &cm).await.unwrap();
    objects::apply(&client, &secret).await.unwrap();

    let t = Instant::now();
    objects::apply(
        &client,
        &velero::backup("velero", "shop-1", "default", &["shop"]),
    )
    .await
    .unwrap();
    let b = wait_completed(
        &client,
        "Backup",
        "velero",
        "shop-1",
        Duration::from_secs(120),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n--- velero\n{}", server.log_tail(60)));
    eprintln!(
        "Backup Completed in {:.1?} ({} items)",
        t.elapsed(),
        b["status"]["progress"]["itemsBackedUp"]
    );
    assert!(
        b["status"]["progress"]["itemsBackedUp"]
            .as_i64()
            .unwrap_or(0)
            >= 3,
        "namespace, ConfigMap and Secret at least: {}",
        b["status"]
    );

    let t = Instant::now();
    objects::apply(
        &client,
        &velero::restore(
            "velero",
            "shop-1-drill",
            "shop-1",
            &[("shop", "shop-drill")],
        ),
    )
    .await
    .unwrap();
    let r = wait_completed(
        &client,
        "Restore",
        "velero",
        "shop-1-drill",
        Duration::from_secs(120),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n--- velero\n{}", server.log_tail(60)));
    eprintln!(
        "Restore Completed in {:.1?} ({} items)",
        t.elapsed(),
        r["status"]["progress"]["itemsRestored"]
    );

    let got_cm = objects::get(&client, "v1", "ConfigMap", Some("shop-drill"), "settings")
        .await
        .unwrap()
        .expect("ConfigMap restored into shop-drill");
    assert_eq!(got_cm["data"], cm["data"]);
    let got_secret = objects::get(&client, "v1", "Secret", Some("shop-drill"), "db")
        .await
        .unwrap()
        .expect("Secret restored into shop-drill");
    // Compared without printing: a failure must not show secret data.
    assert!(
        got_secret["data"] == secret["data"],
        "restored Secret data differs (keys: {:?})",
        got_secret["data"]
            .as_object()
            .map(|o| o.keys().collect::<Vec<_>>())
    );
    assert_eq!(
        got_secret["metadata"]["labels"]["velero.io/restore-name"],
        "shop-1-drill"
    );
    server.ensure_running().unwrap();
}
