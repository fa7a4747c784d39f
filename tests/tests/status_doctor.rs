//! `rookery status` and `rookery doctor` against a real control plane and a real Velero.
//!
//! Real: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok (pods Running on
//! fake nodes named after the lab inventory's hosts), the lab stack applied by `rookery apply`,
//! the Velero server v1.18 out of cluster with its AWS plugin and gofakes3 — Velero validates
//! every BackupStorageLocation (Available, or Unavailable with its own message) and runs every
//! Backup (Completed, or FailedValidation against an Unavailable location).
//! Played by the test (no container runtime here), writing the real fields of the real
//! objects: the Rook operator (CephCluster status incl. `status.ceph` health and its details,
//! via `rookery_tests::kube::fake`; the mon/OSD Deployments with Rook's labels and
//! ROOK_BLOCK_PATH; the CSI secrets `rook-csi-cephfs-provisioner`/`-node`) and
//! ceph-csi-operator (the CSIDriver object). The failing schedule's backup is created the way
//! `velero backup create --from-schedule` does (its template and the schedule label) rather
//! than waiting for its cron.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rookery_tests::bins;
use rookery_tests::cli::{self, Run, lab_copy};
use rookery_tests::kube::KubeCluster;
use rookery_tests::kube::fake::{Behaviour, Fake};
use rookery_tests::kube::objects;
use rookery_tests::require::prerequisite;
use rookery_tests::sshd::free_port;
use rookery_tests::velero::{self, FakeS3, VeleroOptions, VeleroServer};
use serde_json::{Value, json};

fn ready() -> bool {
    let missing = velero::missing_prerequisite();
    prerequisite(missing.is_none(), missing.as_deref().unwrap_or(""))
}

fn rookery(cmd: &str, stack_dir: &Path, kubeconfig: &Path, args: &[&str]) -> Run {
    cli::run(cli::with_stack(cmd, stack_dir, kubeconfig).args(args))
}

fn assert_no_secrets(run: &Run, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !run.stdout.contains(s) && !run.stderr.contains(s),
            "a secret value appeared in the output"
        );
    }
}

fn rook_deployment(name: &str, labels: Value, env: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "rook-ceph", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"rook-test": name}},
            "template": {
                "metadata": {"labels": {"rook-test": name}},
                "spec": {"containers": [{"name": "daemon", "image": "quay.io/ceph/ceph:v20.2.4", "env": env}]},
            },
        },
    })
}

/// What the Rook operator and ceph-csi-operator create once Ceph runs: mon and OSD
/// Deployments (labels of rook `osd/labels.go`, ROOK_BLOCK_PATH of `osd/envs.go`), the CSI
/// secrets, and the CSIDriver of Rook's CephFS `Driver` CR.
async fn play_rook_daemons(client: &::kube::Client) {
    for (i, mon) in ["a", "b", "c"].iter().enumerate() {
        let d = rook_deployment(
            &format!("rook-ceph-mon-{mon}"),
            json!({"app": "rook-ceph-mon", "mon": mon, "topology-location-host": format!("lab-{}", i + 1)}),
            json!([]),
        );
        objects::apply_as(client, "rook-ceph-operator", &d)
            .await
            .unwrap();
    }
    let mut id = 0;
    for host in ["lab-1", "lab-2", "lab-3"] {
        for (dev, class) in [("/dev/nvme0n1", "nvme"), ("/dev/sda", "hdd")] {
            let d = rook_deployment(
                &format!("rook-ceph-osd-{id}"),
                json!({"app": "rook-ceph-osd", "ceph-osd-id": id.to_string(), "osd": id.to_string(),
                       "device-class": class, "failure-domain": host, "portable": "false",
                       "topology-location-host": host, "topology-location-root": "default"}),
                json!([{"name": "ROOK_BLOCK_PATH", "value": dev}, {"name": "ROOK_CV_MODE", "value": "raw"}]),
            );
            objects::apply_as(client, "rook-ceph-operator", &d)
                .await
                .unwrap();
            id += 1;
        }
    }
    for name in ["rook-csi-cephfs-provisioner", "rook-csi-cephfs-node"] {
        let s = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "rook-ceph"},
            // "csi-cephfs-test-userkey", base64.
            "data": {"adminID": "Y3NpLWNlcGhmcw==", "adminKey": "Y3NpLWNlcGhmcy10ZXN0LXVzZXJrZXk="}});
        objects::apply_as(client, "rook-ceph-operator", &s)
            .await
            .unwrap();
    }
    let driver = json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
        "metadata": {"name": "rook-ceph.cephfs.csi.ceph.com"},
        "spec": {"attachRequired": false, "podInfoOnMount": false}});
    objects::apply_as(client, "ceph-csi-operator", &driver)
        .await
        .unwrap();
}

/// Start the real Velero server and wait until it has validated `default` Available. Velero's
/// controller manager binds `:8080` for its metrics with no flag to move it, so a second Velero
/// on this machine (another test binary running at the same time) makes it exit "address
/// already in use": then it is started again, a few times.
async fn start_velero(cluster: &KubeCluster, client: &::kube::Client) -> VeleroServer {
    let opts = VeleroOptions {
        extra_args: vec!["--store-validation-frequency=5s".into()],
        ..VeleroOptions::default()
    };
    for attempt in 1..=5 {
        let mut server = VeleroServer::start(cluster, &opts).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let bsl = objects::get(
                client,
                velero::API,
                "BackupStorageLocation",
                Some("velero"),
                "default",
            )
            .await
            .unwrap();
            if bsl.is_some_and(|b| b["status"]["phase"] == "Available") {
                return server;
            }
            if let Err(e) = server.ensure_running() {
                let busy = format!("{e:#}").contains("address already in use");
                assert!(busy && attempt < 5, "{e:#}");
                eprintln!(
                    "Velero could not bind its controller metrics port (attempt {attempt}); starting it again"
                );
                tokio::time::sleep(Duration::from_secs(3)).await;
                break;
            }
            assert!(
                Instant::now() < deadline,
                "BSL default not Available within 60 s\n{}",
                server.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    unreachable!("the loop returns or panics")
}

/// Real control plane + real Velero: `status` shows an Available location and a completed
/// scheduled backup, `doctor` fails on a wrong S3 endpoint and a credential key the Secret
/// lacks (Velero's message and the hint), a schedule whose backups fail shows up in both,
/// Ceph health states written as the Rook operator appear with their details, and no secret
/// value appears anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_doctor_tell_the_truth_about_ceph_and_velero() {
    if !ready() {
        return;
    }
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let stack = lab_copy(tmp.path());
    let s3 = FakeS3::start("lab-backups").await.unwrap();
    let closed = free_port().unwrap();
    let stack_file = stack.join("stack.yaml");
    let mut doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&stack_file).unwrap()).unwrap();
    doc["backupStrategy"]["backupStorageLocations"] = serde_yaml::from_str(&format!(
        r#"
- {{name: default, provider: aws, bucket: lab-backups, region: us-east-1, s3Url: "{good}", default: true,
    credential: {{file: secrets/s3.ini}}}}
- {{name: offsite, provider: aws, bucket: lab-backups, region: us-east-1, s3Url: "http://127.0.0.1:{closed}",
    credential: {{file: secrets/s3.ini}}}}
- {{name: wrongkey, provider: aws, bucket: lab-backups, region: us-east-1, s3Url: "{good}",
    credential: {{secret: {{name: cloud-credentials, key: aws}}}}}}
"#,
        good = s3.url()
    ))
    .unwrap();
    std::fs::write(&stack_file, serde_yaml::to_string(&doc).unwrap()).unwrap();

    let cluster = KubeCluster::start(&["lab-1", "lab-2", "lab-3"])
        .await
        .unwrap();
    let client = cluster.client().await.unwrap();
    eprintln!("control plane up in {:.1?}", t0.elapsed());
    // The Rook operator as played; Velero's part is the real server below.
    let fake = Fake::start(
        client.clone(),
        "rook-ceph",
        "velero",
        Behaviour {
            velero: false,
            ..Behaviour::default()
        },
    );
    let apply = rookery("apply", &stack, cluster.kubeconfig(), &["--no-wait"]);
    assert_eq!(apply.code, 0);
    play_rook_daemons(&client).await;
    eprintln!("{:.1?}: applied, Rook daemons played", t0.elapsed());

    // `apply --no-wait` waited for the CRDs to be Established; the harness's install also
    // waits until each is served, the state its Velero start was proven in.
    velero::install_crds(&client).await.unwrap();
    eprintln!("{:.1?}: starting Velero", t0.elapsed());
    let mut server = start_velero(&cluster, &client).await;
    eprintln!("{:.1?}: BSL default Available", t0.elapsed());
    for bsl in ["offsite", "wrongkey"] {
        objects::wait_for(
            &client,
            velero::API,
            "BackupStorageLocation",
            Some("velero"),
            bsl,
            "Unavailable",
            Duration::from_secs(60),
            |b| b["status"]["phase"] == "Unavailable",
        )
        .await
        .unwrap();
    }
    eprintln!("{:.1?}: offsite and wrongkey Unavailable", t0.elapsed());
    // The failing backup first, and the next one only after it ended: created together, the
    // second one waited about a minute in Velero's queue here (measured, cause not traced).
    // A completed backup of the stack's schedule, and a schedule whose backups fail.
    objects::apply(
        &client,
        &json!({"apiVersion": velero::API, "kind": "Schedule",
            "metadata": {"name": "offsite-hourly", "namespace": "velero"},
            "spec": {"schedule": "0 * * * *", "template": {"storageLocation": "offsite",
                     "includedNamespaces": ["default"], "snapshotVolumes": false}}}),
    )
    .await
    .unwrap();
    let mut bad = velero::backup("velero", "offsite-hourly-manual", "offsite", &["default"]);
    bad["metadata"]["labels"] = json!({"velero.io/schedule-name": "offsite-hourly"});
    objects::apply(&client, &bad).await.unwrap();
    let failed = objects::wait_for(
        &client,
        velero::API,
        "Backup",
        Some("velero"),
        "offsite-hourly-manual",
        "failed",
        Duration::from_secs(60),
        |b| b["status"]["phase"] == "FailedValidation",
    )
    .await
    .unwrap();
    eprintln!(
        "{:.1?}: offsite-hourly-manual FailedValidation",
        t0.elapsed()
    );
    let mut ok = velero::backup("velero", "nightly-manual", "default", &["default"]);
    ok["metadata"]["labels"] = json!({"velero.io/schedule-name": "nightly"});
    objects::apply(&client, &ok).await.unwrap();
    velero::wait_completed(
        &client,
        "Backup",
        "velero",
        "nightly-manual",
        Duration::from_secs(60),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", server.log_tail(40)));
    eprintln!("{:.1?}: nightly-manual Completed", t0.elapsed());
    let velero_says = failed["status"]["validationErrors"][0]
        .as_str()
        .unwrap()
        .to_string();
    let offsite = objects::get(
        &client,
        velero::API,
        "BackupStorageLocation",
        Some("velero"),
        "offsite",
    )
    .await
    .unwrap()
    .unwrap();
    let offsite_msg = offsite["status"]["message"].as_str().unwrap().to_string();
    let wrongkey = objects::get(
        &client,
        velero::API,
        "BackupStorageLocation",
        Some("velero"),
        "wrongkey",
    )
    .await
    .unwrap()
    .unwrap();
    let wrongkey_msg = wrongkey["status"]["message"].as_str().unwrap().to_string();
    eprintln!("Velero: offsite: {offsite_msg}\nwrongkey: {wrongkey_msg}\nbackup: {velero_says}");
    // Wait until the played Rook operator has written the health and kwok runs the daemons.
    objects::wait_for(
        &client,
        "ceph.rook.io/v1",
        "CephCluster",
        Some("rook-ceph"),
        "rook-ceph",
        "HEALTH_OK",
        Duration::from_secs(30),
        |c| c["status"]["ceph"]["health"] == "HEALTH_OK",
    )
    .await
    .unwrap();
    objects::wait_for(
        &client,
        "apps/v1",
        "Deployment",
        Some("rook-ceph"),
        "rook-ceph-osd-5",
        "rolled out",
        Duration::from_secs(60),
        objects::deployment_rolled_out,
    )
    .await
    .unwrap();

    let secrets: Vec<String> = {
        let mut v = vec![
            cluster.token().to_string(),
            "rookery-test-secret".to_string(),
            "csi-cephfs-test-userkey".to_string(),
        ];
        for f in ["s3.ini", "kopia-password"] {
            let text = std::fs::read_to_string(stack.join("secrets").join(f)).unwrap();
            // Values only: `[default]` is the file's section header, not a secret.
            for line in text.lines().filter(|l| !l.starts_with('[')) {
                let value = line.split_once('=').map(|(_, v)| v).unwrap_or(line).trim();
                if value.len() >= 6 {
                    v.push(value.to_string());
                }
            }
        }
        v
    };
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();

    // status: one screen.
    let t = Instant::now();
    let st = rookery("status", &stack, cluster.kubeconfig(), &[]);
    eprintln!("status took {:.1?}", t.elapsed());
    assert_eq!(st.code, 0);
    for want in [
        "rook-ceph/rook-ceph: HEALTH_OK (phase Ready, state Created",
        "mons: 3 running of 3 (in quorum: a,b,c)",
        "osds: 6 running of 6 Deployments",
        "/dev/nvme0n1 = /dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_LABNVME0100_1",
        "/dev/sda = /dev/disk/by-id/ata-LAB_HDD_7200_LABHDD0300",
        "shared-fs: Ready · MDS 2/2 running (active 1 + standby)",
        "shared-fs            rook-ceph.cephfs.csi.ceph.com          default Delete",
        "VolumeSnapshotClass csi-cephfsplugin-snapclass: driver rook-ceph.cephfs.csi.ceph.com, used by Velero",
        "location default (default): Available",
        "location offsite: Unavailable",
        "schedule offsite-hourly `0 * * * *`: Enabled",
        "last offsite-hourly-manual FailedValidation",
        "last nightly-manual Completed",
        "FAILED backup offsite-hourly-manual: FailedValidation",
    ] {
        assert!(st.stdout.contains(want), "`{want}` not in status");
    }
    assert!(
        st.stdout.contains(&offsite_msg),
        "Velero's message not in status"
    );
    assert_no_secrets(&st, &secrets);
    let js = rookery("status", &stack, cluster.kubeconfig(), &["-o", "json"]);
    assert_eq!(js.code, 0);
    let report: Value = serde_json::from_str(&js.stdout).unwrap();
    assert_eq!(report["ceph"]["health"], "HEALTH_OK");
    assert_eq!(report["ceph"]["osds"].as_array().unwrap().len(), 6);
    assert_eq!(report["defaultClasses"], json!(["shared-fs"]));
    let locations = report["backups"]["locations"].as_array().unwrap();
    assert_eq!(locations.len(), 3);
    assert!(locations.iter().any(|l| l["name"] == "default"
        && l["phase"] == "Available"
        && l["lastValidation"].is_string()));
    assert_no_secrets(&js, &secrets);
    // --watch -o json: one document per reading.
    let mut watch = Command::new(bins::rookery())
        .args(["status", "--watch", "--interval", "1s", "-o", "json", "-i"])
        .arg(stack.join("inventory.yaml"))
        .arg("--stack")
        .arg(stack.join("stack.yaml"))
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .env_remove("KUBECONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(watch.stdout.take().unwrap()).lines();
        for _ in 0..2 {
            let doc: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
            assert_eq!(doc["ceph"]["health"], "HEALTH_OK");
        }
    }
    watch.kill().unwrap();
    watch.wait().unwrap();

    // doctor: the wrong endpoint and the wrong key fail with Velero's words and a hint.
    let t = Instant::now();
    let dr = rookery("doctor", &stack, cluster.kubeconfig(), &["--no-nodes"]);
    eprintln!("doctor took {:.1?}", t.elapsed());
    assert_eq!(dr.code, 32, "a failing check exits 32");
    for want in [
        "ok   BackupStorageLocation velero/default: Available",
        "FAIL BackupStorageLocation velero/offsite: Unavailable: Velero cannot use it",
        "hint: Velero cannot read the credentials it names: the Secret velero/cloud-credentials its `spec.credential` names has no key `aws`; fix that first",
        &format!(
            "hint: check that the endpoint http://127.0.0.1:{closed} is reachable from Velero"
        ),
        "FAIL BackupStorageLocation velero/wrongkey: credentials: the Secret velero/cloud-credentials its `spec.credential` names has no key `aws`",
        "keys present: cloud",
        "FAIL Schedule velero/offsite-hourly: its last backup offsite-hourly-manual ended FailedValidation",
        "ok   Schedule velero/nightly: last backup nightly-manual Completed",
        "ok   CephCluster rook-ceph/rook-ceph: HEALTH_OK",
        "ok   StorageClass shared-fs: the only default class",
    ] {
        assert!(dr.stdout.contains(want), "`{want}` not in doctor");
    }
    assert!(dr.stdout.contains(&format!("Velero: {offsite_msg}")));
    assert!(dr.stdout.contains(&format!("Velero: {wrongkey_msg}")));
    assert!(dr.stdout.contains(&format!("Velero: {velero_says}")));
    assert_no_secrets(&dr, &secrets);

    // Ceph degrades: one OSD down, one mon out of quorum, an OSD near full (as Rook writes
    // Ceph's health checks into status.ceph.details).
    fake.set(|b| {
        b.ceph_health = "HEALTH_WARN".into();
        b.ceph_details = json!({
            "OSD_DOWN": {"severity": "HEALTH_WARN", "message": "1 osds down"},
            "MON_DOWN": {"severity": "HEALTH_WARN", "message": "1/3 mons down, quorum a,b"},
            "OSD_NEARFULL": {"severity": "HEALTH_WARN", "message": "1 nearfull osd(s)"},
        });
    });
    objects::wait_for(
        &client,
        "ceph.rook.io/v1",
        "CephCluster",
        Some("rook-ceph"),
        "rook-ceph",
        "HEALTH_WARN",
        Duration::from_secs(30),
        |c| c["status"]["ceph"]["health"] == "HEALTH_WARN",
    )
    .await
    .unwrap();
    let st = rookery("status", &stack, cluster.kubeconfig(), &[]);
    for want in [
        "HEALTH_WARN OSD_DOWN: 1 osds down",
        "(one or more OSDs are marked down",
        "HEALTH_WARN MON_DOWN: 1/3 mons down, quorum a,b",
        "(in quorum: a,b)",
        "OSD_DOWN: 1 osds down",
    ] {
        assert!(st.stdout.contains(want), "`{want}` not in status");
    }
    let dr = rookery(
        "doctor",
        &stack,
        cluster.kubeconfig(),
        &["--no-nodes", "-o", "json"],
    );
    assert_eq!(dr.code, 32);
    let found: Value = serde_json::from_str(&dr.stdout).unwrap();
    let findings = found["findings"].as_array().unwrap();
    let by_object = |o: &str| {
        findings
            .iter()
            .find(|f| f["object"] == o)
            .unwrap_or_else(|| panic!("{o}"))
    };
    let osd = by_object("CephCluster rook-ceph/rook-ceph OSD_DOWN");
    assert_eq!(osd["severity"], "warn");
    assert_eq!(osd["evidence"][0], "Ceph (HEALTH_WARN): 1 osds down");
    assert!(osd["hint"].as_str().unwrap().contains("app=rook-ceph-osd"));
    let mons = findings.iter().find(|f| f["check"] == "ceph-mons").unwrap();
    assert_eq!(mons["severity"], "fail");
    assert_eq!(mons["evidence"][0], "Ceph: 1/3 mons down, quorum a,b");
    assert_no_secrets(&dr, &secrets);

    // Node readiness without reachable hosts: skipped with a warning per host, not fatal.
    let dr = rookery(
        "doctor",
        &stack,
        cluster.kubeconfig(),
        &["--connect-timeout", "2"],
    );
    assert_eq!(dr.code, 32);
    assert!(
        dr.stdout.contains("warn lab-1: node readiness not checked"),
        "{}",
        dr.stdout
    );
    assert_no_secrets(&dr, &secrets);
    server.ensure_running().unwrap();
    eprintln!("whole test {:.1?}", t0.elapsed());
}
