//! `rookery backup`, `rookery restore` and `rookery drill` against a real Velero.
//!
//! Real: etcd, kube-apiserver, kube-controller-manager and kube-scheduler (namespaces get
//! their `default` ServiceAccount and `kube-root-ca.crt`, and deleted namespaces go away),
//! the Velero server v1.18 out of cluster with its real AWS object-store plugin, an S3 API
//! (gofakes3, in memory) on loopback, and the `rookery` binary. Velero validates the location,
//! writes and reads the backups, serves DownloadRequests and restores. Played by the test:
//! nothing — except the tampering, which stands for a restore that went wrong. Not available:
//! volume data (no node-agent, no CSI snapshots), so backups are resource-only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use rookery_tests::cli::{self, Run};
use rookery_tests::kube::KubeCluster;
use rookery_tests::kube::objects;
use rookery_tests::require::prerequisite;
use rookery_tests::velero::{self, FakeS3, VeleroOptions, VeleroServer, missing_prerequisite};
use serde_json::{Value, json};

fn ready() -> bool {
    let missing = missing_prerequisite();
    prerequisite(missing.is_none(), missing.as_deref().unwrap_or(""))
}

/// What must never appear in any output: the Secret's value (plain and base64), the
/// tampered value, the S3 secret key, and a pre-signed URL's signature.
const SECRETS: [&str; 6] = [
    "rookery-test-password",
    "cm9va2VyeS10ZXN0LXBhc3N3b3Jk",
    "tampered-value",
    "dGFtcGVyZWQtdmFsdWU=",
    "rookery-test-secret",
    "X-Amz-Signature",
];

fn rookery(kubeconfig: &Path, args: &[&str]) -> Run {
    let run = cli::run(
        cli::rookery()
            .args(args)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--velero-namespace", "velero"]),
    );
    for s in SECRETS {
        assert!(
            !run.stdout.contains(s) && !run.stderr.contains(s),
            "a secret value appeared in the output of rookery {args:?}"
        );
    }
    run
}

async fn seed_namespace(client: &::kube::Client, ns: &str) {
    objects::apply(
        client,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )
    .await
    .unwrap();
    for (name, data) in [
        (
            "settings",
            json!({"currency": "EUR", "motd": "line one\nline two\n"}),
        ),
        ("features", json!({"checkout": "on"})),
    ] {
        objects::apply(
            client,
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": ns}, "data": data}),
        )
        .await
        .unwrap();
    }
    objects::apply(
        client,
        &json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": ns},
            "type": "Opaque",
            // "rookery-test-password" and the bytes ff 00 fe, base64.
            "data": {"password": "cm9va2VyeS10ZXN0LXBhc3N3b3Jk", "raw": "/wD+"},
        }),
    )
    .await
    .unwrap();
}

fn json_of(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

/// Real: control plane, Velero + AWS plugin, gofakes3, rookery. Played: the tampering only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_restore_and_drill_against_real_velero() {
    if !ready() {
        return;
    }
    let t_all = Instant::now();
    let cluster = KubeCluster::builder().start().await.unwrap();
    eprintln!("control plane ready in {:.1?}", cluster.started_in());
    let client = cluster.client().await.unwrap();
    let kc = cluster.kubeconfig().to_path_buf();
    let s3 = FakeS3::start("backups").await.unwrap();
    velero::install_crds(&client).await.unwrap();
    velero::prepare_namespace(&client, "velero").await.unwrap();
    objects::apply(&client, &velero::bsl("velero", "default", &s3))
        .await
        .unwrap();
    let mut server = VeleroServer::start(&cluster, &VeleroOptions::default())
        .await
        .unwrap();
    velero::wait_bsl_available(&client, "velero", "default", Duration::from_secs(90))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n--- velero\n{}", server.log_tail(40)));
    seed_namespace(&client, "shop").await;
    eprintln!("setup done in {:.1?}", t_all.elapsed());

    // backup create --wait: Velero's progress, then Completed.
    let r = rookery(&kc, &["backup", "create", "shop-1", "-n", "shop", "--wait"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("Backup shop-1 Completed"), "{}", r.stdout);
    assert!(
        r.stderr.contains("Backup shop-1: "),
        "progress: {}",
        r.stderr
    );

    // describe: phase, counts, expiry and the objects it holds (Velero's resource list,
    // fetched from the bucket through a DownloadRequest).
    let r = rookery(&kc, &["backup", "describe", "shop-1"]);
    assert_eq!(r.code, 0);
    for want in [
        "Phase:         Completed",
        "Namespaces:    shop",
        "v1/ConfigMap:",
        "- shop/settings",
        "- shop/features",
        "v1/Secret:",
        "- shop/db",
        "v1/Namespace:",
        "Expires:",
    ] {
        assert!(r.stdout.contains(want), "missing {want:?} in\n{}", r.stdout);
    }
    let d = json_of(&rookery(
        &kc,
        &["backup", "describe", "shop-1", "-o", "json"],
    ));
    assert_eq!(d["phase"], "Completed");
    assert!(d["itemsBackedUp"].as_i64().unwrap() >= 4, "{d}");
    assert!(
        d["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["kind"] == "Secret" && i["name"] == "db" && i["namespace"] == "shop")
    );

    let r = rookery(&kc, &["backup", "list"]);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("shop-1 ") && l.contains("Completed")),
        "{}",
        r.stdout
    );
    let list = json_of(&rookery(&kc, &["backup", "list", "-o", "json"]));
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == "shop-1" && b["phase"] == "Completed")
    );

    // Velero's own reason for a backup it refuses.
    let r = rookery(
        &kc,
        &[
            "backup",
            "create",
            "bad-1",
            "-n",
            "shop",
            "--storage-location",
            "nowhere",
            "--wait",
            "--timeout",
            "60s",
        ],
    );
    assert_eq!(r.code, 32);
    assert!(
        r.stderr.contains("ended FailedValidation") && r.stderr.contains("nowhere"),
        "{}",
        r.stderr
    );

    // restore into a mapped namespace.
    let r = rookery(
        &kc,
        &[
            "restore",
            "create",
            "shop-1-restore",
            "--from",
            "shop-1",
            "--namespace-mapping",
            "shop:shop-restored",
            "--wait",
        ],
    );
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains("Restore shop-1-restore Completed"),
        "{}",
        r.stdout
    );
    let cm = objects::get(
        &client,
        "v1",
        "ConfigMap",
        Some("shop-restored"),
        "settings",
    )
    .await
    .unwrap()
    .expect("ConfigMap restored into shop-restored");
    assert_eq!(cm["data"]["currency"], "EUR");
    let r = rookery(&kc, &["restore", "create", "--from", "no-such-backup"]);
    assert_eq!(r.code, 32);

    // drill: back up now, restore into scratch, verify, measure, clean up.
    let t = Instant::now();
    let r = rookery(
        &kc,
        &[
            "drill", "-n", "shop", "--rto", "5m", "--rpo", "1h", "-o", "json",
        ],
    );
    eprintln!("drill took {:.1?}", t.elapsed());
    assert_eq!(r.code, 0);
    let rep = json_of(&r);
    assert_eq!(rep["passed"], true, "{rep}");
    assert_eq!(rep["rto"]["passed"], true);
    assert_eq!(rep["rpo"]["passed"], true);
    let checks = rep["verification"]["checks"].as_array().unwrap();
    let outcome = |kind: &str, name: &str| {
        checks
            .iter()
            .find(|c| c["kind"] == kind && c["name"] == name)
            .map(|c| c["result"].clone())
    };
    assert_eq!(outcome("Secret", "db"), Some(json!("identical")), "{rep}");
    assert_eq!(outcome("ConfigMap", "settings"), Some(json!("identical")));
    assert_eq!(outcome("ConfigMap", "features"), Some(json!("identical")));
    let scratch = rep["namespaceMapping"]["shop"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(rep["scratchNamespacesDeleted"], json!([scratch]));
    // The controller-manager finishes the deletion.
    let gone = Instant::now();
    while objects::get(&client, "v1", "Namespace", None, &scratch)
        .await
        .unwrap()
        .is_some()
    {
        assert!(
            gone.elapsed() < Duration::from_secs(60),
            "{scratch} not deleted"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // drill --keep, then tamper with the restored copy: the verification must fail.
    let r = rookery(&kc, &["drill", "-n", "shop", "--keep"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("Drill PASSED."), "{}", r.stdout);
    assert!(r.stdout.contains("RTO "), "{}", r.stdout);
    let restore = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Restore  "))
        .and_then(|l| l.split(':').next())
        .unwrap()
        .to_string();
    let r = rookery(
        &kc,
        &["drill", "verify", "--restore", &restore, "-o", "json"],
    );
    assert_eq!(r.code, 0, "untouched restore verifies");
    let scratch = json_of(&r)["namespaceMapping"]["shop"]
        .as_str()
        .unwrap()
        .to_string();

    // "tampered-value", base64, over the restored password. `raw` is applied unchanged: the
    // restored copy keeps the source's managed fields, so this field manager owns it.
    objects::apply(
        &client,
        &json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "db", "namespace": scratch},
                "data": {"password": "dGFtcGVyZWQtdmFsdWU=", "raw": "/wD+"}}),
    )
    .await
    .unwrap();
    objects::delete(&client, "v1", "ConfigMap", Some(&scratch), "features")
        .await
        .unwrap();

    let r = rookery(&kc, &["drill", "verify", "--restore", &restore]);
    assert_eq!(r.code, 32, "a tampered restore must fail the drill");
    assert!(r.stdout.contains("Drill FAILED"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains(&format!("Secret {scratch}/db: data key `password` differs")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!(
            "ConfigMap {scratch}/features: missing from the restore"
        )),
        "{}",
        r.stdout
    );
    let rep = json_of(&rookery(
        &kc,
        &["drill", "verify", "--restore", &restore, "-o", "json"],
    ));
    assert_eq!(rep["passed"], false);
    assert_eq!(
        rep["verification"]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == "Secret" && c["name"] == "db")
            .unwrap()["what"],
        json!(["data key `password` differs"])
    );

    // A namespace that does not exist: Velero fails the backup, and its own error message
    // (from the backup's results in the bucket) is shown.
    let r = rookery(&kc, &["drill", "-n", "no-such-ns"]);
    assert_eq!(r.code, 32);
    assert!(r.stderr.contains("ended PartiallyFailed"), "{}", r.stderr);
    assert!(r.stderr.contains("  Velero: "), "{}", r.stderr);

    // An RPO target the backup cannot meet fails the drill too.
    let r = rookery(&kc, &["drill", "-n", "shop", "--rpo", "0s"]);
    assert_eq!(r.code, 32);
    assert!(
        r.stdout.contains("RPO") && r.stdout.contains("FAIL"),
        "{}",
        r.stdout
    );

    // The newest completed backup of a Schedule. Velero's scheduler would not run within
    // the test's time (cron granularity), so the test creates the Backup the way the
    // scheduler does (its label names the Schedule); Velero itself backs it up.
    for name in ["shop-hourly-1", "shop-hourly-2"] {
        let mut b = velero::backup("velero", name, "default", &["shop"]);
        b["metadata"]["labels"] = json!({"velero.io/schedule-name": "shop-hourly"});
        objects::apply(&client, &b).await.unwrap();
        velero::wait_completed(&client, "Backup", "velero", name, Duration::from_secs(60))
            .await
            .unwrap();
    }
    let r = rookery(&kc, &["drill", "--schedule", "shop-hourly", "--rpo", "1h"]);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout
            .contains("Backup   shop-hourly-2 (schedule shop-hourly)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("Drill PASSED."), "{}", r.stdout);

    server.ensure_running().unwrap();
    eprintln!("whole test {:.1?}", t_all.elapsed());
}
