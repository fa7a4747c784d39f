//! `status::build` and `doctor::checks` over snapshots shaped like what Rook, Velero, the
//! snapshot controller and K3s write (fields from rook-velero-facts-2 §6 and the CRDs in
//! `../shared/upstream`). No cluster: the functions are pure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rookery_health::doctor::{Area, Severity, checks};
use rookery_health::snapshot::{Listed, Namespaces, PlannedOsd, SecretKeys, Snapshot, epoch};
use rookery_health::{exit_code, render, status};
use serde_json::{Value, json};

const NOW: &str = "2026-12-06T12:00:00Z";

fn now() -> i64 {
    epoch(NOW).unwrap()
}

fn deployment(name: &str, labels: Value, ready: i64, env: Option<(&str, &str)>) -> Value {
    let env = env
        .map(|(k, v)| json!([{"name": k, "value": v}]))
        .unwrap_or(json!([]));
    json!({"metadata": {"name": name, "namespace": "rook-ceph", "labels": labels},
           "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "env": env}]}}},
           "status": {"readyReplicas": ready}})
}

fn healthy() -> Snapshot {
    let sc = json!({
    "metadata": {"name": "shared-fs", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
    "provisioner": "rook-ceph.cephfs.csi.ceph.com",
    "reclaimPolicy": "Delete",
    "parameters": {
        "clusterID": "rook-ceph", "fsName": "shared-fs",
        "csi.storage.k8s.io/provisioner-secret-name": "rook-csi-cephfs-provisioner",
        "csi.storage.k8s.io/provisioner-secret-namespace": "rook-ceph",
        "csi.storage.k8s.io/node-stage-secret-name": "rook-csi-cephfs-node",
        "csi.storage.k8s.io/node-stage-secret-namespace": "rook-ceph",
    }});
    let mut deployments = vec![];
    for (i, m) in ["a", "b", "c"].iter().enumerate() {
        deployments.push(deployment(
            &format!("rook-ceph-mon-{m}"),
            json!({"app": "rook-ceph-mon", "mon": m, "topology-location-host": format!("lab-{}", i + 1)}),
            1,
            None,
        ));
        deployments.push(deployment(
            &format!("rook-ceph-osd-{i}"),
            json!({"app": "rook-ceph-osd", "ceph-osd-id": i.to_string(), "device-class": "nvme",
                   "topology-location-host": format!("lab-{}", i + 1)}),
            1,
            Some(("ROOK_BLOCK_PATH", "/dev/nvme0n1")),
        ));
    }
    for l in ["a", "b"] {
        deployments.push(deployment(
            &format!("rook-ceph-mds-shared-fs-{l}"),
            json!({"app": "rook-ceph-mds", "rook_file_system": "shared-fs"}),
            1,
            None,
        ));
    }
    Snapshot {
        now: now(),
        server: "https://127.0.0.1:6443/".into(),
        namespaces: Some(Namespaces {
            cluster: "rook-ceph".into(),
            operator: "rook-ceph".into(),
            velero: "velero".into(),
        }),
        velero_expected: true,
        ceph_clusters: Listed::Items(vec![json!({
            "metadata": {"name": "rook-ceph", "namespace": "rook-ceph", "generation": 1},
            "status": {"phase": "Ready", "state": "Created", "message": "Cluster created successfully",
                       "ceph": {"health": "HEALTH_OK", "details": {}, "lastChecked": NOW,
                                "capacity": {"bytesTotal": 3_000_000_000_000u64, "bytesUsed": 300_000_000_000u64,
                                             "bytesAvailable": 2_700_000_000_000u64},
                                "versions": {"osd": {"ceph version 20.2.4": 3}}},
                       "storage": {"deviceClasses": [{"name": "nvme"}]}}})]),
        ceph_filesystems: Listed::Items(vec![json!({
            "metadata": {"name": "shared-fs", "namespace": "rook-ceph"},
            "spec": {"metadataServer": {"activeCount": 1, "activeStandby": true}},
            "status": {"phase": "Ready"}})]),
        ceph_deployments: Listed::Items(deployments),
        snapshot_controllers: Listed::Items(vec![json!({
            "metadata": {"name": "snapshot-controller", "namespace": "kube-system"},
            "spec": {"replicas": 2}, "status": {"readyReplicas": 2}})]),
        storage_classes: Listed::Items(vec![
            sc,
            json!({"metadata": {"name": "local-path"}, "provisioner": "rancher.io/local-path"}),
        ]),
        snapshot_classes: Listed::Items(vec![json!({
            "metadata": {"name": "csi-cephfsplugin-snapclass",
                         "labels": {"velero.io/csi-volumesnapshot-class": "true"}},
            "driver": "rook-ceph.cephfs.csi.ceph.com", "deletionPolicy": "Delete"})]),
        crds: Listed::Items(
            rookery_health::snapshot::SNAPSHOT_CRDS
                .iter()
                .map(|n| json!({"metadata": {"name": n}}))
                .collect(),
        ),
        csi_drivers: Listed::Items(vec![
            json!({"metadata": {"name": "rook-ceph.cephfs.csi.ceph.com"}}),
        ]),
        rook_drivers: Listed::Items(vec![
            json!({"metadata": {"name": "rook-ceph.cephfs.csi.ceph.com", "namespace": "rook-ceph"}}),
        ]),
        secrets: vec![
            SecretKeys {
                namespace: "velero".into(),
                name: "cloud-credentials".into(),
                keys: Some(vec!["cloud".into()]),
            },
            SecretKeys {
                namespace: "rook-ceph".into(),
                name: "rook-csi-cephfs-provisioner".into(),
                keys: Some(vec!["adminID".into(), "adminKey".into()]),
            },
            SecretKeys {
                namespace: "rook-ceph".into(),
                name: "rook-csi-cephfs-node".into(),
                keys: Some(vec!["adminID".into(), "adminKey".into()]),
            },
        ],
        backup_storage_locations: Listed::Items(vec![json!({
            "metadata": {"name": "default", "namespace": "velero"},
            "spec": {"default": true, "objectStorage": {"bucket": "lab-backups"},
                     "config": {"s3Url": "http://10.0.2.2:9000"},
                     "credential": {"name": "cloud-credentials", "key": "cloud"}},
            "status": {"phase": "Available", "lastValidationTime": "2026-12-06T11:59:30Z"}})]),
        schedules: Listed::Items(vec![json!({
            "metadata": {"name": "nightly", "namespace": "velero", "creationTimestamp": "2026-11-01T00:00:00Z"},
            "spec": {"schedule": "0 3 * * *"},
            "status": {"phase": "Enabled", "lastBackup": "2026-12-06T03:00:00Z"}})]),
        backups: Listed::Items(vec![json!({
            "metadata": {"name": "nightly-20261206030000", "namespace": "velero",
                         "labels": {"velero.io/schedule-name": "nightly"}},
            "status": {"phase": "Completed", "startTimestamp": "2026-12-06T03:00:00Z",
                       "expiration": "2026-12-13T03:00:00Z",
                       "progress": {"itemsBackedUp": 42, "totalItems": 42}}})]),
        planned_osds: vec![PlannedOsd {
            node: "lab-1".into(),
            requested: "/dev/nvme0n1".into(),
            kernel_name: Some("nvme0n1".into()),
            stable_id: "/dev/disk/by-id/nvme-Samsung_SSD_980_S64ANS0T1".into(),
            device_class: Some("nvme".into()),
        }],
        nodes: None,
    }
}

fn set(listed: &mut Listed, i: usize, pointer: &str, v: Value) {
    if let Listed::Items(items) = listed {
        *items[i].pointer_mut(pointer).unwrap() = v;
    }
}

#[test]
fn a_healthy_cluster_is_all_ok() {
    let s = healthy();
    let f = checks(&s);
    let bad: Vec<_> = f.iter().filter(|x| x.severity != Severity::Ok).collect();
    assert!(bad.is_empty(), "{bad:#?}");
    assert_eq!(exit_code(&f), 0);
    for area in [
        Area::Backups,
        Area::Snapshots,
        Area::Ceph,
        Area::StorageClasses,
    ] {
        assert!(f.iter().any(|x| x.area == area), "{area:?} has no check");
    }
    let r = status::build(&s);
    assert!(r.missing.is_empty(), "{:?}", r.missing);
    let c = r.ceph.as_ref().unwrap();
    assert_eq!(
        c.quorum.as_deref(),
        Some(&["a".to_string(), "b".into(), "c".into()][..])
    );
    assert_eq!(c.osds_reporting, Some(3));
    // osd.0 on lab-1 maps back to the probe's stable id; the others are not in the facts.
    assert_eq!(
        c.osds[0].stable_id.as_deref(),
        Some("/dev/disk/by-id/nvme-Samsung_SSD_980_S64ANS0T1")
    );
    assert_eq!(c.osds[1].stable_id, None);
    assert_eq!(r.filesystems[0].mds_running, 2);
    assert_eq!(r.default_classes, vec!["shared-fs"]);
    let sched = &r.backups.schedules[0];
    assert_eq!(sched.last_backup.as_ref().unwrap().age_secs, Some(9 * 3600));
    let text = render::status(&r);
    assert!(text.contains("HEALTH_OK"), "{text}");
    assert!(text.contains("in quorum: a,b,c"), "{text}");
    assert!(
        text.contains("/dev/nvme0n1 = /dev/disk/by-id/nvme-Samsung_SSD_980_S64ANS0T1"),
        "{text}"
    );
    assert!(
        text.contains("location default (default): Available"),
        "{text}"
    );
    assert!(
        text.contains("last nightly-20261206030000 Completed 9h ago, 42 items"),
        "{text}"
    );
}

#[test]
fn an_unavailable_location_fails_with_veleros_message() {
    let mut s = healthy();
    set(
        &mut s.backup_storage_locations,
        0,
        "/status",
        json!({
        "phase": "Unavailable",
        "message": "BackupStorageLocation \"default\" is unavailable: rpc error: code = Unknown desc = dial tcp 10.0.2.2:9000: connect: connection refused",
        "lastValidationTime": "2026-12-06T11:59:30Z"}),
    );
    let f = checks(&s);
    let bsl = f.iter().find(|x| x.check == "backup-location").unwrap();
    assert_eq!(bsl.severity, Severity::Fail);
    assert_eq!(bsl.object, "BackupStorageLocation velero/default");
    assert!(bsl.evidence[0].contains("connection refused"), "{bsl:?}");
    assert!(bsl.hint.as_ref().unwrap().contains("http://10.0.2.2:9000"));
    assert_eq!(exit_code(&f), 32);
    let text = render::findings(&f, false);
    assert!(
        text.contains(
            "FAIL BackupStorageLocation velero/default: Unavailable: Velero cannot use it"
        ),
        "{text}"
    );
    assert!(
        text.contains("hint: check that the endpoint http://10.0.2.2:9000 is reachable"),
        "{text}"
    );
    assert!(
        render::status(&status::build(&s))
            .contains("Velero: BackupStorageLocation \"default\" is unavailable")
    );
}

#[test]
fn credentials_secret_missing_or_without_the_key() {
    let mut s = healthy();
    s.secrets[0].keys = Some(vec!["aws".into()]);
    let f = checks(&s);
    let c = f.iter().find(|x| x.check == "backup-credentials").unwrap();
    assert_eq!(c.severity, Severity::Fail, "{c:?}");
    assert!(c.summary.contains("has no key `cloud`"), "{c:?}");
    assert_eq!(c.evidence, vec!["keys present: aws"]);
    s.secrets[0].keys = None;
    let f = checks(&s);
    let c = f.iter().find(|x| x.check == "backup-credentials").unwrap();
    assert_eq!(c.severity, Severity::Fail);
    assert!(c.summary.contains("does not exist"), "{c:?}");
}

#[test]
fn schedules_whose_last_backup_failed_or_is_too_old() {
    let mut s = healthy();
    set(
        &mut s.backups,
        0,
        "/status",
        json!({
        "phase": "FailedValidation", "startTimestamp": "2026-12-06T03:00:00Z",
        "validationErrors": ["backup can't be created because BackupStorageLocation default is in Unavailable status."]}),
    );
    let f = checks(&s);
    let sc = f.iter().find(|x| x.check == "schedule").unwrap();
    assert_eq!(sc.severity, Severity::Fail);
    assert!(sc.summary.contains("ended FailedValidation"), "{sc:?}");
    assert!(sc.evidence[0].contains("Unavailable status"), "{sc:?}");
    let r = status::build(&s);
    assert_eq!(r.backups.failed.len(), 1);

    let mut s = healthy();
    set(
        &mut s.backups,
        0,
        "/status/startTimestamp",
        json!("2026-12-03T03:00:00Z"),
    );
    let f = checks(&s);
    let sc = f.iter().find(|x| x.check == "schedule").unwrap();
    assert_eq!(sc.severity, Severity::Fail);
    assert!(
        sc.summary
            .contains("3d9h old, more than twice its period (1d"),
        "{sc:?}"
    );

    // No backup at all, 36 days after the schedule was created.
    let mut s = healthy();
    s.backups = Listed::Items(vec![]);
    let f = checks(&s);
    let sc = f.iter().find(|x| x.check == "schedule").unwrap();
    assert_eq!(sc.severity, Severity::Fail, "{sc:?}");
}

#[test]
fn ceph_health_checks_are_explained() {
    let mut s = healthy();
    set(
        &mut s.ceph_clusters,
        0,
        "/status/ceph/health",
        json!("HEALTH_WARN"),
    );
    set(
        &mut s.ceph_clusters,
        0,
        "/status/ceph/details",
        json!({
        "OSD_DOWN": {"severity": "HEALTH_WARN", "message": "1 osds down"},
        "MON_DOWN": {"severity": "HEALTH_WARN", "message": "1/3 mons down, quorum a,b"},
        "OSD_NEARFULL": {"severity": "HEALTH_WARN", "message": "1 nearfull osd(s)"}}),
    );
    set(
        &mut s.ceph_deployments,
        1,
        "/status/readyReplicas",
        json!(0),
    );
    let r = status::build(&s);
    let c = r.ceph.as_ref().unwrap();
    assert_eq!(
        c.quorum.as_deref(),
        Some(&["a".to_string(), "b".into()][..])
    );
    assert_eq!(c.osd_down, vec!["OSD_DOWN: 1 osds down"]);
    assert!(!c.osds[0].running);
    let text = render::status(&r);
    assert!(text.contains("HEALTH_WARN OSD_DOWN: 1 osds down"), "{text}");
    assert!(text.contains("osd.0   lab-1      nvme   DOWN"), "{text}");

    let f = checks(&s);
    let codes: Vec<_> = f
        .iter()
        .filter(|x| x.check == "ceph-health-check")
        .collect();
    assert_eq!(codes.len(), 3);
    let osd = codes
        .iter()
        .find(|x| x.object.ends_with("OSD_DOWN"))
        .unwrap();
    assert!(osd.summary.contains("marked down"), "{osd:?}");
    assert!(osd.evidence[0].contains("1 osds down"));
    assert!(osd.hint.is_some());
    let mons = f.iter().find(|x| x.check == "ceph-mons").unwrap();
    assert_eq!(mons.severity, Severity::Fail);
    let osds = f.iter().find(|x| x.check == "ceph-osds").unwrap();
    assert_eq!(osds.severity, Severity::Fail);
    assert!(osds.evidence[0].contains("osd.0 on lab-1"));
    assert_eq!(exit_code(&f), 32);

    // Rook's own HEALTH_ERR when `ceph status` fails.
    let mut s = healthy();
    set(
        &mut s.ceph_clusters,
        0,
        "/status/ceph/health",
        json!("HEALTH_ERR"),
    );
    set(
        &mut s.ceph_clusters,
        0,
        "/status/ceph/details",
        json!({
        "error": {"severity": "Urgent", "message": "failed to get status. timed out"}}),
    );
    let f = checks(&s);
    let e = f.iter().find(|x| x.object.ends_with(" error")).unwrap();
    assert_eq!(e.severity, Severity::Fail);
    assert!(e.summary.contains("Rook could not run `ceph status`"));
    assert_eq!(status::build(&s).ceph.unwrap().quorum, None);
}

#[test]
fn two_default_classes_and_local_path() {
    let mut s = healthy();
    set(
        &mut s.storage_classes,
        1,
        "/metadata",
        json!({"name": "local-path",
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}),
    );
    let r = status::build(&s);
    assert!(r.local_path_default);
    assert_eq!(r.default_classes.len(), 2);
    let f = checks(&s);
    let d = f.iter().find(|x| x.check == "default-class").unwrap();
    assert_eq!(d.severity, Severity::Fail);
    assert!(
        d.hint
            .as_ref()
            .unwrap()
            .contains("kubectl patch storageclass local-path")
    );
}

#[test]
fn storage_class_parameters_are_checked_against_the_cluster() {
    let mut s = healthy();
    set(
        &mut s.storage_classes,
        0,
        "/parameters/clusterID",
        json!("storage-system"),
    );
    s.secrets.retain(|x| x.name != "rook-csi-cephfs-node");
    let f = checks(&s);
    let sc = f.iter().find(|x| x.check == "storage-class").unwrap();
    assert_eq!(sc.severity, Severity::Fail);
    assert!(
        sc.evidence
            .iter()
            .any(|e| e.contains("clusterID `storage-system`")),
        "{sc:?}"
    );
    assert!(
        sc.evidence
            .iter()
            .any(|e| e.contains("rook-ceph/rook-csi-cephfs-node")),
        "{sc:?}"
    );
}

#[test]
fn snapshot_class_without_velero_label_or_wrong_driver() {
    let mut s = healthy();
    set(&mut s.snapshot_classes, 0, "/metadata/labels", json!({}));
    let f = checks(&s);
    let v = f.iter().find(|x| x.check == "snapshot-class").unwrap();
    assert_eq!(v.severity, Severity::Fail);
    assert!(
        v.hint
            .as_ref()
            .unwrap()
            .contains("kubectl label volumesnapshotclass")
    );

    let mut s = healthy();
    set(
        &mut s.snapshot_classes,
        0,
        "/driver",
        json!("storage-system.cephfs.csi.ceph.com"),
    );
    s.csi_drivers = Listed::Items(vec![]);
    let f = checks(&s);
    let v = f.iter().find(|x| x.check == "snapshot-class").unwrap();
    assert_eq!(v.severity, Severity::Fail);
    assert!(
        v.evidence[0].contains("storage-system.cephfs.csi.ceph.com"),
        "{v:?}"
    );
    let d = f.iter().find(|x| x.check == "csi-driver").unwrap();
    assert_eq!(d.severity, Severity::Fail);
}

#[test]
fn missing_pieces_are_shown_not_skipped() {
    let mut s = healthy();
    s.backup_storage_locations = Listed::NotServed;
    s.schedules = Listed::NotServed;
    s.backups = Listed::NotServed;
    s.snapshot_controllers = Listed::Items(vec![]);
    s.crds = Listed::Items(vec![]);
    s.ceph_clusters = Listed::Items(vec![]);
    let r = status::build(&s);
    let text = render::status(&r);
    for m in [
        "BackupStorageLocation: the cluster does not serve this kind",
        "snapshot controller: no Deployment",
        "snapshot CRDs: volumesnapshotclasses",
        "CephCluster: none in namespace `rook-ceph`",
        "MISSING: no CephCluster",
        "controller: MISSING",
    ] {
        assert!(text.contains(m), "{m} not in\n{text}");
    }
    let f = checks(&s);
    assert!(
        f.iter()
            .any(|x| x.check == "crd" && x.object == "BackupStorageLocation")
    );
    assert!(
        f.iter()
            .any(|x| x.check == "snapshot-controller" && x.severity == Severity::Fail)
    );
    let json = serde_json::to_value(&r).unwrap();
    assert!(json["missing"].as_array().unwrap().len() >= 5);
}

#[test]
fn unreachable_nodes_are_a_warning_and_agent_checks_become_findings() {
    use rookery_health::snapshot::{NodeCheck, NodeReport};
    let mut s = healthy();
    s.nodes = Some(vec![
        NodeReport {
            host: "lab-1".into(),
            error: None,
            checks: vec![
                NodeCheck {
                    id: "kernel-module-rbd".into(),
                    status: "fail".into(),
                    message: "rbd module not loadable".into(),
                    hint: Some("apt install linux-modules-extra".into()),
                },
                NodeCheck {
                    id: "time-sync".into(),
                    status: "pass".into(),
                    message: "NTP synchronised".into(),
                    hint: None,
                },
            ],
        },
        NodeReport {
            host: "lab-2".into(),
            error: Some("connect timed out".into()),
            checks: vec![],
        },
    ]);
    let f = checks(&s);
    let n: Vec<_> = f.iter().filter(|x| x.area == Area::Nodes).collect();
    assert_eq!(n.len(), 3);
    assert_eq!(n[0].severity, Severity::Fail);
    assert_eq!(n[0].object, "lab-1 kernel-module-rbd");
    assert_eq!(n[2].severity, Severity::Warn);
    assert_eq!(exit_code(&f), 32);
}
