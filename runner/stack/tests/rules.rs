//! One test per validation rule (issue 5 item 2), including the seed example's placement
//! failure. Each starts from the valid 3-node lab and breaks exactly one thing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{codes, errors};
use rookery_stack::Severity;
use rookery_stack::credential::CredentialRef;
use rookery_stack::hosts::{FactsSource, HostInput};
use rookery_stack::model::{KeyTypeChoice, Stack};

fn lab() -> (Stack, Vec<HostInput>, std::path::PathBuf) {
    let dir = common::example_dir("lab-3node");
    let stack = common::load_stack(&dir.join("stack.yaml"));
    let hosts = common::hosts_from_facts(&dir.join("facts.json"));
    (stack, hosts, dir)
}

fn run(stack: Stack, hosts: &[HostInput]) -> Vec<rookery_stack::Finding> {
    let dir = common::example_dir("lab-3node");
    common::plan(stack, hosts, &dir, FactsSource::File).2
}

#[test]
fn lab_is_clean() {
    let (stack, hosts, _) = lab();
    let f = run(stack, &hosts);
    assert!(!rookery_stack::findings::has_errors(&f), "{f:#?}");
}

#[test]
fn seed_example_is_rejected_for_placement_with_explanation_and_fix() {
    let (_, _, f) = common::plan_example("seed-example");
    let placement = errors(&f, "placement");
    assert_eq!(placement.len(), 2, "{f:#?}");
    let meta = placement
        .iter()
        .find(|x| x.path == "storageClasses[0].filesystem.metadataPool")
        .unwrap();
    assert!(
        meta.message
            .contains("needs 3 replicas on 3 different hosts")
    );
    assert!(meta.message.contains("deviceClass `nvme`"));
    assert!(
        meta.message
            .contains("only 1 host has nvme OSD devices (worker-1: 2 devices)")
    );
    assert!(meta.message.contains("never becomes Ready"));
    assert!(meta.hint.contains("add nvme devices on 2 more hosts"));
    assert!(meta.hint.contains("lower `replication.size` to 1"));
    let data = placement
        .iter()
        .find(|x| x.path == "storageClasses[0].filesystem.dataPools[0]")
        .unwrap();
    assert!(
        data.message
            .contains("only 1 host has hdd OSD devices (worker-2: 2 devices)")
    );
    // Also the mon count (2 nodes); its `namespace: storage-system` is fine (Rook's files are
    // rewritten for it).
    assert!(!errors(&f, "monitor-count").is_empty());
    assert!(errors(&f, "namespace").is_empty(), "{f:#?}");
}

#[test]
fn seed_example_without_facts_still_fails() {
    let dir = common::example_dir("seed-example");
    let stack = common::load_stack(&dir.join("stack.yaml"));
    let hosts: Vec<HostInput> = ["worker-1", "worker-2"]
        .iter()
        .map(|n| HostInput {
            name: n.to_string(),
            facts: None,
            probe_status: None,
            devices: Vec::new(),
        })
        .collect();
    let (_, _, f) = common::plan(stack, &hosts, &dir, FactsSource::None);
    // No classes known: the pools' classes match no planned device.
    assert_eq!(errors(&f, "device-class").len(), 2, "{f:#?}");
    assert!(codes(&f).contains(&"not-probed"));
    assert!(
        codes(&f).contains(&"node-name"),
        "unverified node names are warned"
    );
}

#[test]
fn placement_counts_hosts_not_devices() {
    let (mut stack, hosts, _) = lab();
    // Only lab-1's NVMe carries the nvme class now.
    for n in &mut stack.ceph_cluster.storage.nodes[1..] {
        n.devices.retain(|d| d.name != "/dev/nvme0n1");
    }
    let f = run(stack, &hosts);
    let p = errors(&f, "placement");
    assert_eq!(p.len(), 1);
    assert!(
        p[0].message
            .contains("only 1 host has nvme OSD devices (lab-1: 1 device)")
    );
}

#[test]
fn placement_with_osd_failure_domain_counts_devices() {
    let (mut stack, hosts, _) = lab();
    let pool = &mut stack.storage_classes[0].filesystem.data_pools[0];
    pool.failure_domain = Some("osd".into());
    pool.replication.size = 4;
    let f = run(stack, &hosts);
    let p = errors(&f, "placement");
    assert_eq!(p.len(), 1, "{f:#?}");
    assert!(p[0].message.contains("4 different OSDs"));
}

#[test]
fn default_storage_class_exactly_one() {
    let (mut stack, hosts, _) = lab();
    stack.storage_classes[0].is_default = false;
    assert_eq!(
        errors(&run(stack.clone(), &hosts), "default-storage-class").len(),
        1
    );
    let mut second = stack.storage_classes[0].clone();
    second.name = "other-fs".into();
    second.is_default = true;
    stack.storage_classes[0].is_default = true;
    stack.storage_classes.push(second);
    let f = run(stack, &hosts);
    let e = errors(&f, "default-storage-class");
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].path, "storageClasses[1].isDefault");
}

#[test]
fn at_most_one_default_backup_location() {
    let (mut stack, hosts, _) = lab();
    let b = stack.backup_strategy.as_mut().unwrap();
    let mut second = b.backup_storage_locations[0].clone();
    second.name = "second".into();
    b.backup_storage_locations.push(second);
    let f = run(stack, &hosts);
    assert_eq!(errors(&f, "default-backup-location").len(), 1);
}

#[test]
fn dns1123_names() {
    let (mut stack, hosts, _) = lab();
    stack.storage_classes[0].name = "Shared_FS".into();
    let f = run(stack, &hosts);
    let e = errors(&f, "dns-name");
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].path, "storageClasses[0].name");
}

#[test]
fn unique_names() {
    let (mut stack, hosts, _) = lab();
    let b = stack.backup_strategy.as_mut().unwrap();
    let dup = b.schedules[0].clone();
    b.schedules.push(dup);
    let dev = stack.ceph_cluster.storage.nodes[0].devices[0].clone();
    stack.ceph_cluster.storage.nodes[0]
        .devices
        .push(rookery_stack::model::DeviceConfig {
            // Same disk under another name: caught by resolved identity.
            name: "/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_LABNVME0100_1".into(),
            ..dev
        });
    let f = run(stack, &hosts);
    let e = errors(&f, "duplicate-name");
    assert_eq!(e.len(), 2, "{f:#?}");
}

#[test]
fn monitor_count_vs_nodes() {
    let (mut stack, hosts, _) = lab();
    stack.ceph_cluster.monitor_count = 5;
    assert_eq!(
        errors(&run(stack.clone(), &hosts), "monitor-count").len(),
        1
    );
    stack.ceph_cluster.allow_multiple_per_node = true;
    assert!(errors(&run(stack.clone(), &hosts), "monitor-count").is_empty());
    stack.ceph_cluster.monitor_count = 2;
    let f = run(stack, &hosts);
    assert!(
        f.iter()
            .any(|x| x.code == "monitor-count" && x.severity == Severity::Warning),
        "even counts are warned"
    );
}

#[test]
fn size_one_needs_require_safe_replica_size_false() {
    let (mut stack, hosts, _) = lab();
    stack.storage_classes[0].filesystem.data_pools[0]
        .replication
        .size = 1;
    assert_eq!(errors(&run(stack.clone(), &hosts), "replica-size").len(), 1);
    stack.storage_classes[0].filesystem.data_pools[0]
        .replication
        .require_safe_replica_size = Some(false);
    assert!(errors(&run(stack, &hosts), "replica-size").is_empty());
}

#[test]
fn device_class_must_exist() {
    let (mut stack, hosts, _) = lab();
    stack.storage_classes[0].filesystem.data_pools[0].device_class = Some("ssd".into());
    let f = run(stack, &hosts);
    let e = errors(&f, "device-class");
    assert_eq!(e.len(), 1);
    assert!(e[0].message.contains("planned: hdd (3), nvme (3)"));
}

#[test]
fn devices_must_exist_and_be_available() {
    let (mut stack, mut hosts, _) = lab();
    stack.ceph_cluster.storage.nodes[0].devices[0].name = "/dev/nvme9n1".into();
    stack.ceph_cluster.storage.nodes[1]
        .devices
        .push(rookery_stack::model::DeviceConfig {
            name: "/dev/vda".into(),
            config: Default::default(),
            wipe: true,
        });
    // lab-3's HDD carries an old filesystem.
    {
        let facts = hosts[2].facts.as_mut().unwrap();
        let sda = facts
            .block_devices
            .iter_mut()
            .find(|d| d.name == "sda")
            .unwrap();
        sda.available = false;
        sda.reject_reasons = vec![rookery_proto::device::RejectReason::HasFilesystem(
            "ext4".into(),
        )];
    }
    let f = run(stack.clone(), &hosts);
    assert_eq!(errors(&f, "device-missing").len(), 1);
    assert_eq!(
        errors(&f, "device-unusable").len(),
        1,
        "root disk: wipe cannot help"
    );
    let nw = errors(&f, "device-not-empty");
    assert_eq!(nw.len(), 1);
    assert!(nw[0].message.contains("has a ext4 filesystem"));
    // With consent it becomes a wipe warning.
    stack.ceph_cluster.storage.nodes[2].devices[1].wipe = true;
    let f = run(stack, &hosts);
    assert!(errors(&f, "device-not-empty").is_empty());
    assert!(codes(&f).contains(&"device-wipe"));
}

#[test]
fn node_names_must_be_kubernetes_node_names() {
    let (mut stack, mut hosts, _) = lab();
    // K3s registers lab-2 under its hostname.
    hosts[1].facts.as_mut().unwrap().hostname = "lab-2.example.internal".into();
    stack.ceph_cluster.storage.nodes[0].name = "lab-9".into();
    let f = run(stack, &hosts);
    let e = errors(&f, "node-name");
    assert_eq!(e.len(), 2, "{f:#?}");
    assert!(
        e.iter()
            .any(|x| x.message.contains("neither an inventory host"))
    );
    assert!(
        e.iter()
            .any(|x| x.hint == "rename the node to `lab-2.example.internal`")
    );
}

#[test]
fn durations_and_cron_parse() {
    let (mut stack, hosts, _) = lab();
    let b = stack.backup_strategy.as_mut().unwrap();
    b.default_backup_ttl = Some("30d".into());
    b.schedules[0].schedule = "0 3 * *".into();
    let f = run(stack, &hosts);
    let d = errors(&f, "duration");
    assert_eq!(d.len(), 1);
    assert!(d[0].message.contains("no days"));
    assert_eq!(errors(&f, "cron").len(), 1);
}

#[test]
fn drill_targets_are_go_durations() {
    let (mut stack, hosts, _) = lab();
    let b = stack.backup_strategy.as_mut().unwrap();
    b.drill = Some(rookery_stack::model::DrillTargets {
        rto: Some("15m".into()),
        rpo: Some("1d".into()),
    });
    let f = run(stack, &hosts);
    let d = errors(&f, "duration");
    assert_eq!(d.len(), 1, "{f:#?}");
    assert_eq!(d[0].path, "backupStrategy.drill.rpo");
}

#[test]
fn credentials_must_resolve_without_printing_values() {
    let (mut stack, hosts, _) = lab();
    let b = stack.backup_strategy.as_mut().unwrap();
    b.backup_storage_locations[0].credential = Some(CredentialRef::Env(
        "ROOKERY_TEST_SURELY_UNSET_VARIABLE".into(),
    ));
    stack.security.kopia_repository_password = Some(CredentialRef::File("no/such/file".into()));
    let f = run(stack, &hosts);
    let e = errors(&f, "credential");
    assert_eq!(e.len(), 2, "{f:#?}");
    assert!(e[0].message.contains("ROOKERY_TEST_SURELY_UNSET_VARIABLE"));
    // The lab's real credential file contents never show up anywhere.
    let all = format!("{f:?}");
    assert!(!all.contains("lab-secret-key"));
}

#[test]
fn kopia_password_secret_must_be_the_one_velero_reads() {
    let (mut stack, hosts, _) = lab();
    stack.security.kopia_repository_password = Some(CredentialRef::Secret(
        rookery_stack::credential::SecretKeyRef {
            name: "my-kopia".into(),
            key: "pw".into(),
        },
    ));
    assert_eq!(
        errors(&run(stack.clone(), &hosts), "kopia-password").len(),
        1
    );
    stack.security.kopia_repository_password = None;
    let f = run(stack, &hosts);
    assert!(
        codes(&f).contains(&"kopia-password"),
        "missing password is warned"
    );
}

#[test]
fn backup_modes_need_their_components() {
    let (mut stack, hosts, _) = lab();
    let b = stack.backup_strategy.as_mut().unwrap();
    b.enable_filesystem_backups = false;
    b.schedules[0].default_volumes_to_fs_backup = Some(true);
    b.schedules[0].snapshot_move_data = Some(true);
    let f = run(stack, &hosts);
    assert_eq!(errors(&f, "backup-modes").len(), 2);
}

#[test]
fn backup_locations_are_s3_with_region() {
    let (mut stack, hosts, _) = lab();
    let b = stack.backup_strategy.as_mut().unwrap();
    b.backup_storage_locations[0].provider = "azure".into();
    b.backup_storage_locations[0].region = None;
    let f = run(stack, &hosts);
    assert_eq!(errors(&f, "backup-provider").len(), 1);
    assert_eq!(
        errors(&f, "backup-location").len(),
        1,
        "s3Url without region"
    );
}

#[test]
fn volume_snapshot_locations_are_flagged_as_meaningless_for_cephfs() {
    let (mut stack, hosts, _) = lab();
    stack
        .backup_strategy
        .as_mut()
        .unwrap()
        .volume_snapshot_locations
        .push(rookery_stack::model::VolumeSnapshotLocationConfig {
            name: "ebs".into(),
            provider: "aws".into(),
            region: None,
            credential: None,
            config: Default::default(),
        });
    let f = run(stack, &hosts);
    assert!(codes(&f).contains(&"volume-snapshot-location"));
    assert_eq!(
        errors(&f, "volume-snapshot-location").len(),
        1,
        "region missing"
    );
}

fn namespace_findings(stack: Stack, hosts: &[HostInput]) -> Vec<rookery_stack::Finding> {
    run(stack, hosts)
        .into_iter()
        .filter(|f| f.code == "namespace")
        .collect()
}

#[test]
fn any_valid_namespace_is_accepted() {
    let (mut stack, hosts, _) = lab();
    stack.namespace = "storage-system".into();
    assert!(namespace_findings(stack.clone(), &hosts).is_empty());
    stack.operator_namespace = Some("rook-operator".into());
    stack.backup_strategy.as_mut().unwrap().namespace = "backups".into();
    assert!(namespace_findings(stack.clone(), &hosts).is_empty());
    // Naming the cluster's namespace as the operator's is the same as leaving it out.
    stack.operator_namespace = Some("storage-system".into());
    assert!(namespace_findings(stack, &hosts).is_empty());
}

#[test]
fn invalid_and_system_namespaces_are_rejected() {
    let (stack, hosts, _) = lab();
    for bad in [
        "Storage",
        "storage_system",
        "-x",
        "",
        "default",
        "kube-system",
        "kube-flannel",
    ] {
        let mut s = stack.clone();
        s.namespace = bad.into();
        let f = namespace_findings(s, &hosts);
        assert_eq!(f.len(), 1, "{bad:?}: {f:#?}");
        assert_eq!(
            (f[0].severity, f[0].path.as_str()),
            (Severity::Error, "namespace")
        );

        let mut s = stack.clone();
        s.operator_namespace = Some(bad.into());
        let f = namespace_findings(s, &hosts);
        assert!(
            f.iter()
                .any(|x| x.severity == Severity::Error && x.path == "operatorNamespace"),
            "{bad:?}: {f:#?}"
        );

        let mut s = stack.clone();
        s.backup_strategy.as_mut().unwrap().namespace = bad.into();
        let f = namespace_findings(s, &hosts);
        assert_eq!(f.len(), 1, "{bad:?}: {f:#?}");
        assert_eq!(f[0].path, "backupStrategy.namespace");
    }
}

#[test]
fn velero_needs_its_own_namespace() {
    let (mut stack, hosts, _) = lab();
    stack.namespace = "storage-system".into();
    stack.backup_strategy.as_mut().unwrap().namespace = "storage-system".into();
    let f = namespace_findings(stack.clone(), &hosts);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].path, "backupStrategy.namespace");
    assert!(
        f[0].message.contains("`Namespace` twice"),
        "{}",
        f[0].message
    );

    stack.operator_namespace = Some("rook-operator".into());
    stack.backup_strategy.as_mut().unwrap().namespace = "rook-operator".into();
    assert_eq!(namespace_findings(stack.clone(), &hosts).len(), 1);

    // Without Velero, its namespace is not used and not checked.
    stack.backup_strategy = None;
    assert!(namespace_findings(stack, &hosts).is_empty());
}

#[test]
fn long_operator_namespace_warns_about_the_csi_pod_label() {
    let (mut stack, hosts, _) = lab();
    stack.operator_namespace = Some("a".repeat(32));
    assert!(namespace_findings(stack.clone(), &hosts).is_empty());
    stack.operator_namespace = Some("a".repeat(33));
    let f = namespace_findings(stack, &hosts);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(
        (f[0].severity, f[0].path.as_str()),
        (Severity::Warning, "operatorNamespace")
    );
    assert!(f[0].message.contains("-nodeplugin"), "{}", f[0].message);
}

#[test]
fn data_dir_host_path_rules() {
    let (mut stack, hosts, _) = lab();
    stack.ceph_cluster.data_dir_host_path = "/etc/ceph".into();
    assert_eq!(errors(&run(stack, &hosts), "data-dir-host-path").len(), 1);
}

#[test]
fn key_type_follows_kernels() {
    let (mut stack, mut hosts, dir) = lab();
    let plan = |s: &Stack, h: &[HostInput]| common::plan(s.clone(), h, &dir, FactsSource::File).1;
    assert_eq!(
        rookery_stack::validate::chosen_key_type(&stack, &plan(&stack, &hosts)),
        "aes"
    );
    for h in &mut hosts {
        h.facts.as_mut().unwrap().kernel = "7.1.0-rc2".into();
    }
    assert_eq!(
        rookery_stack::validate::chosen_key_type(&stack, &plan(&stack, &hosts)),
        "aes256k"
    );
    hosts[0].facts.as_mut().unwrap().kernel = "6.12.1".into();
    stack.security.cephx_csi_key_type = KeyTypeChoice::Aes256k;
    assert_eq!(errors(&run(stack, &hosts), "key-type").len(), 1);
}

#[test]
fn msgr2_needs_kernel_5_11() {
    let (mut stack, mut hosts, _) = lab();
    stack.security.encryption_in_transit = true;
    assert!(errors(&run(stack.clone(), &hosts), "msgr2-kernel").is_empty());
    hosts[0].facts.as_mut().unwrap().kernel = "5.10.0-28-amd64".into();
    assert_eq!(errors(&run(stack, &hosts), "msgr2-kernel").len(), 1);
}

#[test]
fn device_selection_needs_facts() {
    let dir = common::example_dir("production");
    let stack = common::load_stack(&dir.join("stack.yaml"));
    let hosts: Vec<HostInput> = (1..=5)
        .map(|i| HostInput {
            name: format!("stor-0{i}"),
            facts: None,
            probe_status: None,
            devices: Vec::new(),
        })
        .collect();
    let (_, _, f) = common::plan(stack, &hosts, &dir, FactsSource::None);
    assert_eq!(errors(&f, "device-selection").len(), 1);
}

#[test]
fn device_selection_picks_available_devices_by_class_and_size() {
    let (_, cluster, f) = common::plan_example("production");
    assert!(!rookery_stack::findings::has_errors(&f), "{f:#?}");
    assert_eq!(cluster.nodes.len(), 5);
    // 2 NVMe + 4 HDD per host; the root disk (20 GiB, unavailable) is not taken.
    assert!(cluster.nodes.iter().all(|n| n.devices.len() == 6));
    assert!(cluster.nodes[0].devices[0].id.contains("/nvme-eui."));
}

#[test]
fn filesystem_shape_and_pool_names() {
    let (_, _, f) = common::plan_example("seed-example");
    let w: Vec<_> = f.iter().filter(|x| x.code == "pool-name").collect();
    assert_eq!(
        w.len(),
        1,
        "seed's `shared-fs-data` becomes `shared-fs-shared-fs-data`"
    );
    assert!(w[0].message.contains("shared-fs-shared-fs-data"));
    let (mut stack, hosts, _) = lab();
    stack.storage_classes[0].filesystem.data_pools.clear();
    stack.storage_classes[0]
        .filesystem
        .metadata_server
        .active_count = 0;
    assert_eq!(errors(&run(stack, &hosts), "filesystem").len(), 2);
}

#[test]
fn k3s_local_path_default_warning() {
    let (stack, hosts, _) = lab();
    let f = run(stack, &hosts);
    assert!(
        f.iter()
            .any(|x| x.code == "k3s-local-path" && x.severity == Severity::Warning)
    );
}

#[test]
fn node_names_match_hostnames_case_insensitively_like_the_kubelet() {
    let (stack, mut hosts, _) = lab();
    hosts[0].facts.as_mut().unwrap().hostname = "LAB-1".into();
    let f = run(stack, &hosts);
    assert!(errors(&f, "node-name").is_empty(), "{f:#?}");
}

/// The inventory's `rookery_devices` of a host, parsed as the runner does.
fn inventory_devices(host: &str, v: serde_json::Value) -> Vec<rookery_devices::Selection> {
    rookery_devices::parse_host_specs(host, Some(&v)).unwrap()
}

#[test]
fn inventory_devices_plan_osds_when_the_stack_names_none() {
    let (mut stack, mut hosts, _) = lab();
    stack.ceph_cluster.storage.nodes.clear();
    for h in &mut hosts {
        // Same matching as `rookery prepare`: a class rule and a serial.
        let serial = h.facts.as_ref().unwrap().block_devices[2].serial.clone();
        h.devices = inventory_devices(
            &h.name,
            serde_json::json!([{"class": "nvme"}, {"serial": serial}]),
        );
    }
    let dir = common::example_dir("lab-3node");
    let (_, cluster, f) = common::plan(stack, &hosts, &dir, FactsSource::File);
    assert!(!rookery_stack::findings::has_errors(&f), "{f:#?}");
    assert_eq!(cluster.nodes.len(), 3);
    let n = &cluster.nodes[0];
    assert_eq!(n.origin, rookery_stack::hosts::NodeOrigin::Inventory);
    let ids: Vec<&str> = n.devices.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        ids,
        vec![
            "/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_LABNVME0100_1",
            "/dev/disk/by-id/ata-LAB_HDD_7200_LABHDD0100"
        ]
    );
    assert_eq!(n.devices[1].path, "inventory.lab-1.rookery_devices[1]");
}

#[test]
fn stack_nodes_win_over_inventory_devices() {
    let (stack, mut hosts, _) = lab();
    // The inventory would take only the HDD; the stack's explicit list (NVMe + HDD) wins.
    hosts[0].devices = inventory_devices("lab-1", serde_json::json!([{"name": "/dev/sda"}]));
    let dir = common::example_dir("lab-3node");
    let (_, cluster, _) = common::plan(stack, &hosts, &dir, FactsSource::File);
    assert_eq!(cluster.nodes.len(), 3);
    assert!(
        cluster
            .nodes
            .iter()
            .all(|n| n.origin == rookery_stack::hosts::NodeOrigin::Stack && n.devices.len() == 2)
    );
}

#[test]
fn device_selection_wins_over_inventory_devices_on_the_hosts_it_covers() {
    let dir = common::example_dir("production");
    let stack = common::load_stack(&dir.join("stack.yaml"));
    let mut hosts = common::hosts_from_facts(&dir.join("facts.json"));
    hosts[0].devices = inventory_devices(
        &hosts[0].name,
        serde_json::json!([{"name": "/dev/does-not-exist"}]),
    );
    let (_, cluster, f) = common::plan(stack.clone(), &hosts, &dir, FactsSource::File);
    assert!(!rookery_stack::findings::has_errors(&f), "{f:#?}");
    assert!(cluster.nodes.iter().all(|n| n.devices.len() == 6));
    // Outside `deviceSelection.hosts`, the inventory's entries apply (and are checked).
    let names: Vec<String> = hosts[1..].iter().map(|h| h.name.clone()).collect();
    let cluster =
        rookery_stack::hosts::plan_cluster(&stack, &hosts, Some(&names), FactsSource::File);
    let f = rookery_stack::validate::validate(&stack, &cluster, &dir);
    assert_eq!(errors(&f, "device-missing").len(), 1, "{f:#?}");
    assert!(
        errors(&f, "device-missing")[0]
            .path
            .starts_with("inventory.stor-01.rookery_devices[0]")
    );
}

#[test]
fn ambiguous_device_names_are_errors() {
    let (stack, mut hosts, _) = lab();
    // Two disks answering to the same by-id link: never guess.
    let facts = hosts[0].facts.as_mut().unwrap();
    let link = facts.block_devices[1].by_id[0].clone();
    facts.block_devices[2].by_id.push(link.clone());
    let mut stack = stack;
    stack.ceph_cluster.storage.nodes[0].devices[0].name = link;
    let f = run(stack, &hosts);
    assert_eq!(errors(&f, "device-ambiguous").len(), 1, "{f:#?}");
}

#[test]
fn device_selection_class_the_probe_never_reports_is_an_error() {
    let dir = common::example_dir("production");
    let mut stack = common::load_stack(&dir.join("stack.yaml"));
    stack
        .ceph_cluster
        .storage
        .device_selection
        .as_mut()
        .unwrap()
        .device_classes
        .push("fast".into());
    let hosts = common::hosts_from_facts(&dir.join("facts.json"));
    let (_, _, f) = common::plan(stack, &hosts, &dir, FactsSource::File);
    let e = errors(&f, "device-selection");
    assert_eq!(e.len(), 1, "{f:#?}");
    assert!(e[0].message.contains("`fast`"));
}

#[test]
fn inventory_rules_without_facts_need_facts() {
    let (mut stack, _, _) = lab();
    stack.ceph_cluster.storage.nodes.clear();
    let mut h = HostInput::new("lab-1");
    h.devices = inventory_devices("lab-1", serde_json::json!([{"class": "nvme"}]));
    let dir = common::example_dir("lab-3node");
    let (_, _, f) = common::plan(stack, &[h], &dir, FactsSource::None);
    assert!(
        errors(&f, "device-selection")
            .iter()
            .any(|x| x.path == "inventory.lab-1.rookery_devices"),
        "{f:#?}"
    );
}
