//! The stack file format: seed-shaped keys, defaults, located errors, credential references.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use rookery_stack::credential::CredentialRef;
use rookery_stack::model::{KeyTypeChoice, ReclaimPolicy, Stack, VolumeBindingMode};
use rookery_stack::yaml::{YamlError, parse};

const MINIMAL: &str = "\
cephCluster:
  storage:
    nodes:
      - name: n1
        devices: [{ name: /dev/sdb }]
storageClasses:
  - name: fs
    isDefault: true
    filesystem:
      metadataPool: { replication: { size: 3 } }
      dataPools: [{ replication: { size: 3 } }]
      metadataServer: {}
";

fn err(yaml: &str) -> (usize, usize, String, String) {
    match parse::<Stack>(yaml, Path::new("s.yaml")).unwrap_err() {
        YamlError::Parse {
            location,
            key_path,
            detail,
            ..
        } => (location.line, location.col, key_path, detail),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn defaults_are_documented_values() {
    let s: Stack = parse(MINIMAL, Path::new("s.yaml")).unwrap();
    assert_eq!(s.namespace, "rook-ceph");
    assert_eq!(s.ceph_cluster.cluster_name, "rook-ceph");
    assert_eq!(s.ceph_cluster.ceph_image, "quay.io/ceph/ceph:v20.2.4");
    assert_eq!(s.ceph_cluster.data_dir_host_path, "/var/lib/rook");
    assert_eq!(s.ceph_cluster.monitor_count, 3);
    assert!(!s.ceph_cluster.allow_multiple_per_node);
    assert!(!s.ceph_cluster.storage.use_all_nodes);
    assert!(!s.ceph_cluster.storage.use_all_devices);
    let sc = &s.storage_classes[0];
    assert_eq!(sc.reclaim_policy, ReclaimPolicy::Delete);
    assert_eq!(sc.volume_binding_mode, VolumeBindingMode::Immediate);
    assert!(sc.allow_volume_expansion);
    assert_eq!(sc.filesystem.metadata_server.active_count, 1);
    assert!(sc.filesystem.metadata_server.active_standby);
    assert_eq!(sc.filesystem.data_pools[0].failure_domain(), "host");
    assert_eq!(sc.data_pool_ceph_name(0), "fs-data0");
    assert_eq!(sc.metadata_pool_ceph_name(), "fs-metadata");
    assert!(s.backup_strategy.is_none());
    assert_eq!(s.security.cephx_csi_key_type, KeyTypeChoice::Auto);
    assert!(!s.monitoring.enabled);
    assert_eq!(s.operator_namespace, None);
    assert_eq!(s.namespaces(), rookery_stack::Namespaces::upstream());
}

#[test]
fn namespaces_derive_from_the_stack() {
    let yaml = format!(
        "namespace: storage-system\n{MINIMAL}backupStrategy:\n  enableSnapshotBackups: true\n  \
         enableFilesystemBackups: false\n  backupStorageLocations: []\n"
    );
    let s: Stack = parse(&yaml, Path::new("s.yaml")).unwrap();
    let n = s.namespaces();
    assert_eq!(
        (n.cluster.as_str(), n.operator.as_str(), n.velero.as_str()),
        ("storage-system", "storage-system", "velero")
    );
    assert_eq!(n.cephfs_driver(), "storage-system.cephfs.csi.ceph.com");

    let yaml = yaml
        .replace(
            "namespace: storage-system\n",
            "namespace: storage-system\noperatorNamespace: rook-operator\n",
        )
        .replace(
            "backupStrategy:\n",
            "backupStrategy:\n  namespace: backups\n",
        );
    let n = parse::<Stack>(&yaml, Path::new("s.yaml"))
        .unwrap()
        .namespaces();
    assert_eq!(
        (n.cluster.as_str(), n.operator.as_str(), n.velero.as_str()),
        ("storage-system", "rook-operator", "backups")
    );
    assert!(n.separate_operator());
    assert_eq!(n.cephfs_driver(), "rook-operator.cephfs.csi.ceph.com");
}

#[test]
fn unknown_key_reports_file_line_column_and_key_path() {
    let yaml = MINIMAL.replace("        devices:", "        devcies:");
    let (line, col, path, detail) = err(&yaml);
    assert_eq!((line, col), (5, 9), "{detail}");
    assert_eq!(path, "cephCluster.storage.nodes[0].devcies");
    assert!(detail.contains("unknown field `devcies`"), "{detail}");
    let msg = parse::<Stack>(&yaml, Path::new("stacks/x.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("stacks/x.yaml:5:9: cephCluster.storage.nodes[0].devcies: unknown field"),
        "{msg}"
    );
}

#[test]
fn unknown_device_config_key_is_an_error_unlike_rook() {
    let yaml = MINIMAL.replace(
        "{ name: /dev/sdb }",
        "{ name: /dev/sdb, config: { deviceClas: hdd } }",
    );
    let (_, _, path, _) = err(&yaml);
    assert_eq!(
        path,
        "cephCluster.storage.nodes[0].devices[0].config.deviceClas"
    );
}

#[test]
fn wrong_type_and_enum_values_are_located() {
    let (line, _, path, detail) = err(&MINIMAL.replace(
        "size: 3 } }\n      dataPools",
        "size: three } }\n      dataPools",
    ));
    assert_eq!(line, 10);
    assert_eq!(
        path,
        "storageClasses[0].filesystem.metadataPool.replication.size"
    );
    assert!(detail.contains("invalid type"), "{detail}");
    let (_, _, path, _) = err(&format!("{MINIMAL}storageImplementation: longhorn\n"));
    assert_eq!(path, "storageImplementation");
}

#[test]
fn credentials_are_references_never_literals() {
    let base = format!(
        "{MINIMAL}backupStrategy:\n  enableSnapshotBackups: true\n  enableFilesystemBackups: false\n  backupStorageLocations:\n    - name: default\n      provider: aws\n      bucket: b\n      credential: CRED\n"
    );
    let s: Stack = parse(&base.replace("CRED", "{ env: S3_CREDS }"), Path::new("s")).unwrap();
    let l = &s.backup_strategy.unwrap().backup_storage_locations[0];
    assert_eq!(l.credential, Some(CredentialRef::Env("S3_CREDS".into())));
    for ok in [
        "{ file: creds.ini }",
        "{ secret: { name: s3, key: cloud } }",
    ] {
        parse::<Stack>(&base.replace("CRED", ok), Path::new("s")).unwrap();
    }
    let literal = base.replace("CRED", "AKIAEXAMPLESECRET123");
    let (_, _, path, detail) = err(&literal);
    assert_eq!(path, "backupStrategy.backupStorageLocations[0].credential");
    assert!(detail.contains("never literal values"), "{detail}");
    assert!(
        !detail.contains("AKIAEXAMPLESECRET123"),
        "the value must not be echoed"
    );
    let (_, _, _, detail) = err(&base.replace("CRED", "{ env: A, file: b }"));
    assert!(detail.contains("exactly one"), "{detail}");
}

#[test]
fn every_example_stack_parses() {
    for entry in std::fs::read_dir(common::repo_root().join("stacks")).unwrap() {
        let dir = entry.unwrap().path();
        if dir.join("stack.yaml").exists() {
            common::load_stack(&dir.join("stack.yaml"));
            rookery_stack::hosts::load_probe_report(&dir.join("facts.json")).unwrap();
        }
    }
}

#[test]
fn facts_file_errors_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("facts.json");
    std::fs::write(&p, "{\"hosts\": [{\"host\": \"a\", \"status\": 3}]}").unwrap();
    let e = rookery_stack::hosts::load_probe_report(&p)
        .unwrap_err()
        .to_string();
    assert!(e.contains(":1:"), "{e}");
    assert!(e.contains("hosts[0].status"), "{e}");
}
