//! Storage rules: can this Ceph cluster ever become healthy on these machines?
//!
//! Placement, mon count, device classes, device availability and node names, judged from the
//! planned devices (probe facts where available). Sources: k8s-facts §2, §3, §9 and
//! k8s-pitfalls §3, §5, §10.

use std::collections::{BTreeMap, BTreeSet};

use crate::findings::Finding;
use crate::hosts::{DeviceState, FactsSource, NodeMatch, NodeOrigin, PlannedCluster};
use crate::model::{PoolConfig, Stack};
use crate::namespaces::DEFAULT_VELERO_NAMESPACE;
use crate::validate::is_dns1123_label;

/// Namespaces Kubernetes creates itself ("Initial namespaces" of the Kubernetes Namespaces
/// concept page); the `kube-` prefix is reserved there for system namespaces. Rookery declares
/// its namespaces as its own objects (R:common.yaml:10-12 for the cluster, the Velero
/// `Namespace` template), and the snapshot-controller already lives in `kube-system`
/// (k8s-facts §1 step 2), so none of these may hold the stack.
const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Longest operator namespace whose CSI plugin names fit a label value: ceph-csi-operator names
/// the plugin Deployment/DaemonSet `<driver>-ctrlplugin`/`-nodeplugin` and labels their pods
/// `app: <that name>` (ceph/ceph-csi-operator `internal/controller/driver_controller.go`,
/// `generateName`, read at a later commit than v1.0.4, hence a warning), a label value is at
/// most 63 characters, and the longest is `<ns>.cephfs.csi.ceph.com-nodeplugin`.
const MAX_OPERATOR_NAMESPACE: usize = 63 - ".cephfs.csi.ceph.com-nodeplugin".len();

/// Every namespace is a valid, non-system namespace; Velero has its own. Rook's files are
/// rewritten for any such namespace (`namespaces::rewrite`, ceph-configuration.md:17-58), so
/// `storage-system` is fine. A Driver name already taken by another Rook on the cluster is
/// found only when connected (the apply engine checks it).
pub fn check_namespace(stack: &Stack) -> Vec<Finding> {
    let ns = stack.namespaces();
    let mut named = vec![("namespace", "the CephCluster's", ns.cluster.as_str())];
    if stack.operator_namespace.is_some() {
        named.push((
            "operatorNamespace",
            "the Rook operator's",
            ns.operator.as_str(),
        ));
    }
    if stack.backup_strategy.is_some() {
        named.push(("backupStrategy.namespace", "Velero's", ns.velero.as_str()));
    }
    let mut out = Vec::new();
    for (path, whose, value) in &named {
        if !is_dns1123_label(value) {
            out.push(Finding::error(
                "namespace",
                *path,
                format!("{whose} namespace `{value}` is not a valid DNS-1123 label"),
                "use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
            ));
        } else if SYSTEM_NAMESPACES.contains(value) || value.starts_with("kube-") {
            out.push(Finding::error(
                "namespace",
                *path,
                format!(
                    "{whose} namespace `{value}` is a Kubernetes system namespace or uses the \
                     `kube-` prefix Kubernetes reserves for them; Rookery declares the namespaces \
                     it installs into as its own `Namespace` objects"
                ),
                "use a namespace of its own, e.g. `storage-system` (Rook) or `velero`",
            ));
        }
    }
    if stack.backup_strategy.is_some() && (ns.velero == ns.cluster || ns.velero == ns.operator) {
        out.push(Finding::error(
            "namespace",
            "backupStrategy.namespace",
            format!(
                "Velero's namespace `{}` is also Rook's: the stack would declare that \
                 `Namespace` twice, once for Rook and once with Velero's labels in the Velero \
                 templates, and Rook's and Velero's objects would no longer be separable",
                ns.velero
            ),
            format!(
                "give Velero its own namespace (the default `{DEFAULT_VELERO_NAMESPACE}`, or remove the key)"
            ),
        ));
    }
    if is_dns1123_label(&ns.operator) && ns.operator.len() > MAX_OPERATOR_NAMESPACE {
        out.push(Finding::warning(
            "namespace",
            if stack.operator_namespace.is_some() {
                "operatorNamespace"
            } else {
                "namespace"
            },
            format!(
                "the CSI driver `{}` gets a node plugin named `{}-nodeplugin`, and \
                 ceph-csi-operator labels its pods with that name, which is longer than the 63 \
                 characters a label value may have, so the CSI pods may never be created",
                ns.cephfs_driver(),
                ns.cephfs_driver()
            ),
            format!("use an operator namespace of at most {MAX_OPERATOR_NAMESPACE} characters"),
        ));
    }
    out
}

/// `dataDirHostPath` pattern and forbidden values (k8s-facts §2, R:crds.yaml:1789-1795).
pub fn check_data_dir_host_path(stack: &Stack) -> Vec<Finding> {
    let p = &stack.ceph_cluster.data_dir_host_path;
    let pattern_ok = p.len() > 1 && p.starts_with('/') && !p.chars().any(char::is_whitespace);
    if !pattern_ok {
        return vec![Finding::error(
            "data-dir-host-path",
            "cephCluster.dataDirHostPath",
            format!("`{p}` is not an absolute path without spaces (CRD pattern `^/(\\S+)`)"),
            "use the default `/var/lib/rook`",
        )];
    }
    if ["/etc/ceph", "/rook", "/var/log/ceph"].contains(&p.trim_end_matches('/')) {
        return vec![Finding::error(
            "data-dir-host-path",
            "cephCluster.dataDirHostPath",
            format!("`{p}` is reserved by Ceph/Rook inside the daemon containers"),
            "use the default `/var/lib/rook`",
        )];
    }
    vec![]
}

/// Stack node names must be Kubernetes node names; K3s registers a node under its hostname
/// and Rook matches `nodes[].name` against `kubernetes.io/hostname` (k8s-facts §2).
pub fn check_node_names(cluster: &PlannedCluster) -> Vec<Finding> {
    let mut out = Vec::new();
    let hosts: Vec<String> = cluster
        .hosts
        .iter()
        .map(|h| match &h.hostname {
            Some(hn) if hn != &h.name => format!("{} (hostname {hn})", h.name),
            _ => h.name.clone(),
        })
        .collect();
    let mut unverified = Vec::new();
    for node in cluster
        .nodes
        .iter()
        .filter(|n| n.origin == NodeOrigin::Stack)
    {
        let path = format!("{}.name", node.path);
        match &node.matched {
            NodeMatch::Hostname { .. } => {}
            NodeMatch::InventoryOnly { .. } => unverified.push(node.name.as_str()),
            NodeMatch::HostnameDiffers { host, hostname } => out.push(Finding::error(
                "node-name",
                path,
                format!(
                    "node `{}` is inventory host `{host}`, whose hostname is `{hostname}`: K3s \
                     registers it as node `{hostname}` and Rook would find no node `{}`, so its \
                     devices would never become OSDs",
                    node.name, node.name
                ),
                format!("rename the node to `{hostname}`"),
            )),
            NodeMatch::Unknown => out.push(Finding::error(
                "node-name",
                path,
                format!(
                    "node `{}` is neither an inventory host nor the hostname of a probed host",
                    node.name
                ),
                format!(
                    "use one of the cluster's node names: {}",
                    if hosts.is_empty() {
                        "(the inventory has no hosts)".to_string()
                    } else {
                        hosts.join(", ")
                    }
                ),
            )),
        }
        if node.devices.is_empty() {
            out.push(Finding::warning(
                "node-devices",
                format!("{}.devices", node.path),
                format!("node `{}` lists no devices and will get no OSDs", node.name),
                "list its devices or remove the node",
            ));
        }
    }
    if !unverified.is_empty() {
        out.push(Finding::warning(
            "node-name",
            "cephCluster.storage.nodes",
            format!(
                "node name(s) {} match inventory host names but were not verified against a \
                 probe: K3s registers each node under its hostname",
                unverified.join(", ")
            ),
            "pass `--facts FILE` from `rookery probe -i INVENTORY -o json` (or `--probe`)",
        ));
    }
    out
}

/// Devices named in the stack exist on their host and are available, or are planned for
/// wiping (k8s-pitfalls §3: Rook silently skips disks with partitions/filesystems/LVM).
pub fn check_devices(cluster: &PlannedCluster) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut unverified = 0usize;
    for node in &cluster.nodes {
        let host = node.host().unwrap_or(node.name.as_str());
        for dev in &node.devices {
            match &dev.state {
                DeviceState::Available => {}
                DeviceState::Unverified => unverified += 1,
                DeviceState::Missing => out.push(Finding::error(
                    "device-missing",
                    dev.path.clone(),
                    format!("device `{}` does not exist on host `{host}`", dev.requested),
                    "check `rookery probe` output for the host's device names; prefer /dev/disk/by-id links",
                )),
                DeviceState::Ambiguous { candidates } => out.push(Finding::error(
                    "device-ambiguous",
                    dev.path.clone(),
                    format!(
                        "device `{}` matches several devices on host `{host}` ({}); Rookery \
                         never guesses which disk to consume or wipe",
                        dev.requested,
                        candidates.join(", ")
                    ),
                    "name it by a /dev/disk/by-id link or its WWN, which are unique",
                )),
                DeviceState::NeedsWipe { reasons } => out.push(Finding::error(
                    "device-not-empty",
                    dev.path.clone(),
                    format!(
                        "device `{}` on host `{host}` is not empty ({}); Rook skips such disks, so it \
                         would never become an OSD",
                        dev.requested,
                        reasons.join(", ")
                    ),
                    "set `wipe: true` on this device to let `rookery prepare` wipe it (destroys its data), or pick another disk",
                )),
                DeviceState::Wipe { reasons } => out.push(Finding::warning(
                    "device-wipe",
                    dev.path.clone(),
                    format!(
                        "device `{}` on host `{host}` will be WIPED by `rookery prepare` ({})",
                        dev.requested,
                        reasons.join(", ")
                    ),
                    "make sure nothing on it is needed; remove `wipe: true` to keep it",
                )),
                DeviceState::Unusable { reasons } => out.push(Finding::error(
                    "device-unusable",
                    dev.path.clone(),
                    format!(
                        "device `{}` on host `{host}` cannot be used by Ceph: {}",
                        dev.requested,
                        reasons.join(", ")
                    ),
                    "pick another disk; `rookery probe` lists the available ones",
                )),
            }
            if dev.class.is_none() && dev.state == DeviceState::Unverified {
                out.push(Finding::warning(
                    "device-class-unknown",
                    format!("{}.config.deviceClass", dev.path),
                    format!(
                        "device `{}` has no `config.deviceClass` and no probe facts: its class is unknown until Rook creates the OSD",
                        dev.requested
                    ),
                    "set `config.deviceClass` or pass `--facts`",
                ));
            }
        }
    }
    if unverified > 0 && cluster.facts_source == FactsSource::None {
        out.push(Finding::warning(
            "not-probed",
            "cephCluster.storage.nodes",
            format!(
                "{unverified} device(s) taken as given, not verified against a probe (existence, emptiness, class)"
            ),
            "pass `--facts FILE` (from `rookery probe -i INVENTORY -o json`)",
        ));
    } else if unverified > 0 {
        out.push(Finding::warning(
            "not-probed",
            "cephCluster.storage.nodes",
            format!(
                "{unverified} device(s) are on hosts without probe facts and were not verified"
            ),
            "make sure every host answers `rookery probe`",
        ));
    }
    out
}

/// `deviceSelection` and `useAllNodes`/`useAllDevices` need facts to know what they select.
pub fn check_device_selection(stack: &Stack, cluster: &PlannedCluster) -> Vec<Finding> {
    let storage = &stack.ceph_cluster.storage;
    let mut out = Vec::new();
    if cluster.selection_without_facts {
        out.push(Finding::error(
            "device-selection",
            "cephCluster.storage.deviceSelection",
            "device selection needs probe facts, and some selected hosts have none",
            "pass `--facts FILE` from `rookery probe -o json`, or list `nodes` explicitly",
        ));
    }
    if !cluster.unknown_selection_classes.is_empty() {
        out.push(Finding::error(
            "device-selection",
            "cephCluster.storage.deviceSelection.deviceClasses",
            format!(
                "{} is not a class the probe reports, so it selects no device",
                cluster
                    .unknown_selection_classes
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "use nvme, ssd or hdd here; custom CRUSH classes go in `nodes[].devices[].config.deviceClass`",
        ));
    }
    for host in &cluster.inventory_without_facts {
        out.push(Finding::error(
            "device-selection",
            format!("inventory.{host}.rookery_devices"),
            format!(
                "host `{host}` selects devices by serial, WWN or rules, which needs probe facts, and it has none"
            ),
            "pass `--facts FILE` from `rookery probe -o json` (or `--probe`), or list the devices in the stack's `nodes`",
        ));
    }
    if storage.use_all_nodes && !storage.nodes.is_empty() {
        out.push(Finding::warning(
            "use-all-nodes",
            "cephCluster.storage.useAllNodes",
            "`useAllNodes: true` makes Rook ignore `nodes`",
            "set `useAllNodes: false` to use the listed nodes",
        ));
    }
    if storage.use_all_nodes != storage.use_all_devices && storage.device_selection.is_none() {
        out.push(Finding::warning(
            "use-all-nodes",
            "cephCluster.storage.useAllDevices",
            "only one of `useAllNodes`/`useAllDevices` is true; Rookery plans OSDs only when both are",
            "prefer explicit `nodes` or `deviceSelection`",
        ));
    }
    out
}

/// `monitorCount` <= nodes unless `allowMultiplePerNode`, 0..=9, odd recommended
/// (k8s-facts §2 `spec.mon.count`, k8s-pitfalls §5).
pub fn check_monitor_count(stack: &Stack, cluster: &PlannedCluster) -> Vec<Finding> {
    let cc = &stack.ceph_cluster;
    let count = cc.monitor_count;
    let nodes = cluster.hosts.len();
    let mut out = Vec::new();
    if count > 9 {
        out.push(Finding::error(
            "monitor-count",
            "cephCluster.monitorCount",
            format!("{count} mons: the CephCluster CRD allows at most 9"),
            "use 3 or 5",
        ));
    } else if count == 0 {
        out.push(Finding::warning(
            "monitor-count",
            "cephCluster.monitorCount",
            "0 mons means Rook's default of 3",
            "write the count you want",
        ));
    }
    if count as usize > nodes && !cc.allow_multiple_per_node {
        out.push(Finding::error(
            "monitor-count",
            "cephCluster.monitorCount",
            format!(
                "{count} mons on {nodes} node(s): Rook refuses with \"cannot start {count} mons on \
                 {nodes} node(s) when allowMultiplePerNode is false\" and the cluster never gets quorum"
            ),
            if nodes > 0 {
                format!(
                    "set `monitorCount: {}` or add nodes (`allowMultiplePerNode: true` only for test clusters: one node failure then loses several mons)",
                    if nodes >= 3 { 3 } else { 1 }
                )
            } else {
                "add the cluster's nodes to the inventory".to_string()
            },
        ));
    }
    if count > 0 && count.is_multiple_of(2) {
        out.push(Finding::warning(
            "monitor-count",
            "cephCluster.monitorCount",
            format!(
                "{count} mons: an even count tolerates no more failures than {}",
                count - 1
            ),
            format!("use {} mons", count - 1),
        ));
    }
    out
}

/// Filesystem shape the CRD requires (R:crds.yaml CephFilesystem `required`, activeCount 1–50)
/// and metadata pool names Rook would not use.
pub fn check_filesystem_shape(stack: &Stack) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, sc) in stack.storage_classes.iter().enumerate() {
        let fs = &sc.filesystem;
        if fs.data_pools.is_empty() {
            out.push(Finding::error(
                "filesystem",
                format!("storageClasses[{i}].filesystem.dataPools"),
                "a CephFilesystem needs at least one data pool",
                "add a data pool",
            ));
        }
        let ac = fs.metadata_server.active_count;
        if !(1..=50).contains(&ac) {
            out.push(Finding::error(
                "filesystem",
                format!("storageClasses[{i}].filesystem.metadataServer.activeCount"),
                format!("activeCount {ac} is outside the CRD's range 1-50"),
                "use 1 unless you have measured an MDS bottleneck",
            ));
        }
        for (j, p) in fs.data_pools.iter().enumerate() {
            if let Some(name) = &p.name
                && !fs.preserve_pool_names
                && name.starts_with(&format!("{}-", sc.name))
            {
                out.push(Finding::warning(
                    "pool-name",
                    format!("storageClasses[{i}].filesystem.dataPools[{j}].name"),
                    format!(
                        "Rook prefixes data pool names with the filesystem name, so this pool becomes `{}`",
                        sc.data_pool_ceph_name(j)
                    ),
                    format!(
                        "name it `{}`, or set `preservePoolNames: true` to keep `{name}`",
                        &name[sc.name.len() + 1..]
                    ),
                ));
            }
        }
        if let Some(name) = &fs.metadata_pool.name
            && !fs.preserve_pool_names
            && *name != sc.metadata_pool_ceph_name()
        {
            out.push(Finding::warning(
                "pool-name",
                format!("storageClasses[{i}].filesystem.metadataPool.name"),
                format!(
                    "Rook ignores this name and creates the metadata pool `{}`",
                    sc.metadata_pool_ceph_name()
                ),
                "remove the name, or set `preservePoolNames: true` to use names verbatim",
            ));
        }
    }
    out
}

fn pools(stack: &Stack) -> Vec<(String, String, &PoolConfig, &str)> {
    let mut v = Vec::new();
    for (i, sc) in stack.storage_classes.iter().enumerate() {
        v.push((
            format!("storageClasses[{i}].filesystem.metadataPool"),
            sc.metadata_pool_ceph_name(),
            &sc.filesystem.metadata_pool,
            sc.name.as_str(),
        ));
        for (j, p) in sc.filesystem.data_pools.iter().enumerate() {
            v.push((
                format!("storageClasses[{i}].filesystem.dataPools[{j}]"),
                sc.data_pool_ceph_name(j),
                p,
                sc.name.as_str(),
            ));
        }
    }
    v
}

/// Size-1 pools need `requireSafeReplicaSize: false` or Rook fails the reconcile
/// (k8s-facts §3, src rook `pkg/operator/ceph/pool/validate.go:131-132`).
pub fn check_replica_safety(stack: &Stack) -> Vec<Finding> {
    let mut out = Vec::new();
    for (path, ceph_name, pool, _) in pools(stack) {
        match pool.replication.size {
            0 => out.push(Finding::error(
                "replica-size",
                format!("{path}.replication.size"),
                format!("pool `{ceph_name}` has replication size 0"),
                "use 3 for production, 1 only for throwaway test clusters",
            )),
            1 if pool.replication.require_safe_replica_size != Some(false) => {
                out.push(Finding::error(
                    "replica-size",
                    format!("{path}.replication"),
                    format!(
                        "pool `{ceph_name}` has size 1 but `requireSafeReplicaSize` is true: Rook fails \
                         with \"error pool size is 1 and requireSafeReplicaSize is true, must be false\""
                    ),
                    "add `requireSafeReplicaSize: false` (and accept that one disk failure loses data)",
                ))
            }
            _ => {}
        }
    }
    out
}

fn class_counts(cluster: &PlannedCluster) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for (_, d) in cluster.osd_devices() {
        *m.entry(d.class.clone().unwrap_or_else(|| "unknown".into()))
            .or_insert(0) += 1;
    }
    m
}

fn describe_counts(m: &BTreeMap<String, usize>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(c, n)| format!("{c} ({n})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Device classes named by pools exist among the planned devices.
pub fn check_device_classes(stack: &Stack, cluster: &PlannedCluster) -> Vec<Finding> {
    let counts = class_counts(cluster);
    let mut out = Vec::new();
    for (path, ceph_name, pool, _) in pools(stack) {
        let Some(class) = &pool.device_class else {
            continue;
        };
        if counts.contains_key(class) {
            continue;
        }
        out.push(Finding::error(
            "device-class",
            format!("{path}.deviceClass"),
            format!(
                "pool `{ceph_name}` wants deviceClass `{class}`, but no planned OSD device has that \
                 class (planned: {}); its CRUSH rule would match no OSD",
                describe_counts(&counts)
            ),
            if counts.contains_key("unknown") {
                "set `config.deviceClass` on the devices, or pass `--facts` so their class is known"
                    .to_string()
            } else {
                format!("use one of the planned classes, or add `{class}` devices")
            },
        ));
    }
    out
}

/// Every pool's replication size <= the number of distinct failure domains that have OSD
/// devices of its device class (k8s-facts §3 "`host` + size N needs ≥N hosts with OSDs").
pub fn check_placement(stack: &Stack, cluster: &PlannedCluster) -> Vec<Finding> {
    let mut out = Vec::new();
    let all_hosts: Vec<&str> = cluster.hosts.iter().map(|h| h.name.as_str()).collect();
    for (path, ceph_name, pool, fs) in pools(stack) {
        let size = pool.replication.size as usize;
        if size == 0 {
            continue;
        }
        let class = pool.device_class.as_deref();
        let class_txt = class.map(|c| format!("{c} ")).unwrap_or_default();
        // Per node: matching OSD devices.
        let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
        for (node, dev) in cluster.osd_devices() {
            if class.is_none_or(|c| dev.class.as_deref() == Some(c)) {
                *per_node.entry(node.name.as_str()).or_insert(0) += 1;
            }
        }
        let hosts_with = per_node.len();
        let mut any_class_nodes: BTreeSet<&str> = BTreeSet::new();
        let mut any_class_osds = 0usize;
        for (node, _) in cluster.osd_devices() {
            any_class_nodes.insert(node.name.as_str());
            any_class_osds += 1;
        }
        let osds: usize = per_node.values().sum();
        let domain = pool.failure_domain();
        let (available, unit): (usize, &str) = match domain {
            "host" => (hosts_with, "hosts"),
            "osd" => (osds, "OSDs"),
            other => {
                out.push(Finding::warning(
                    "placement",
                    format!("{path}.failureDomain"),
                    format!(
                        "failure domain `{other}` depends on CRUSH topology labels Rookery does not \
                         know; placement of pool `{ceph_name}` not checked"
                    ),
                    "use `host` or `osd`, or check the topology labels on your nodes",
                ));
                continue;
            }
        };
        if size <= available {
            continue;
        }
        let have = if per_node.is_empty() {
            format!("no host has {class_txt}OSD devices")
        } else {
            let detail = per_node
                .iter()
                .map(|(n, c)| format!("{n}: {c} device{}", if *c == 1 { "" } else { "s" }))
                .collect::<Vec<_>>()
                .join("; ");
            format!(
                "only {hosts_with} host{} ha{} {class_txt}OSD devices ({detail})",
                if hosts_with == 1 { "" } else { "s" },
                if hosts_with == 1 { "s" } else { "ve" },
            )
        };
        let one = if domain == "host" { "host" } else { "OSD" };
        let (replicas, spread, copies) = if size == 1 {
            (
                "1 replica".to_string(),
                if one == "host" { "a host" } else { "an OSD" }.to_string(),
                "its only copy".to_string(),
            )
        } else {
            (
                format!("{size} replicas"),
                format!("{size} different {unit}"),
                format!("{size} copies"),
            )
        };
        let why = if domain == "host" {
            format!(
                "Ceph puts each replica on a different host, so it can never place {copies}: \
                 the pool's placement groups stay undersized/inactive and CephFilesystem `{fs}` \
                 never becomes Ready"
            )
        } else {
            format!(
                "Ceph puts each replica on a different OSD, so it can never place {copies} and \
                 CephFilesystem `{fs}` never becomes Ready"
            )
        };
        let message = format!(
            "pool `{ceph_name}` needs {replicas} on {spread}{} (failureDomain: \
             {domain}), but {have}{}. {why}",
            class
                .map(|c| format!(" with deviceClass `{c}`"))
                .unwrap_or_default(),
            if domain == "osd" {
                format!(" ({osds} OSDs in total)")
            } else {
                String::new()
            },
        );
        let mut fixes = Vec::new();
        if domain == "host" {
            let missing = size - hosts_with;
            let covered: BTreeSet<&str> = cluster
                .nodes
                .iter()
                .filter(|n| per_node.contains_key(n.name.as_str()))
                .filter_map(|n| n.host())
                .collect();
            let others: Vec<&str> = all_hosts
                .iter()
                .copied()
                .filter(|h| !covered.contains(h))
                .collect();
            fixes.push(if others.len() < missing {
                format!(
                    "add {class_txt}devices on {missing} more host{} (the cluster has only {} host{}, so add hosts too)",
                    if missing == 1 { "" } else { "s" },
                    all_hosts.len(),
                    if all_hosts.len() == 1 { "" } else { "s" }
                )
            } else {
                format!(
                    "add {class_txt}devices on {missing} more host{} (candidates: {})",
                    if missing == 1 { "" } else { "s" },
                    others.join(", ")
                )
            });
        } else {
            fixes.push(format!("add {} more {class_txt}OSD device(s)", size - osds));
        }
        let any_class_available = if domain == "host" {
            any_class_nodes.len()
        } else {
            any_class_osds
        };
        if class.is_some() && any_class_available >= size {
            fixes.push("drop `deviceClass` so the pool may use any device class".into());
        }
        if available > 0 {
            fixes.push(format!(
                "lower `replication.size` to {available}{}",
                if available == 1 {
                    " with `requireSafeReplicaSize: false` (no redundancy: one failure loses data)"
                } else {
                    ""
                }
            ));
        }
        if domain == "host" && osds >= size {
            fixes.push(format!(
                "set `failureDomain: osd` ({osds} {class_txt}OSDs; but replicas then share a host, so one host failure can lose data)"
            ));
        }
        out.push(Finding::error(
            "placement",
            path,
            message,
            format!("{}.", fixes.join("; or ")),
        ));
    }
    out
}

/// Warn when a Ceph class is default on K3s: K3s re-applies `local-path` as default on every
/// start unless started with `--disable=local-storage` (k8s-pitfalls §10).
pub fn check_k3s_local_path_default(stack: &Stack) -> Vec<Finding> {
    stack
        .storage_classes
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_default)
        .map(|(i, s)| {
            Finding::warning(
                "k3s-local-path",
                format!("storageClasses[{i}].isDefault"),
                format!(
                    "`{}` is marked default, but K3s re-marks its packaged `local-path` class as \
                     default on every start, leaving two defaults",
                    s.name
                ),
                "start K3s servers with `--disable=local-storage` (config.yaml `disable: [local-storage]`)",
            )
        })
        .collect()
}

/// Hosts in the inventory that carry no OSD, for the plan's summary.
pub fn hosts_without_osds(cluster: &PlannedCluster) -> BTreeSet<&str> {
    let with: BTreeSet<&str> = cluster
        .nodes
        .iter()
        .filter(|n| n.devices.iter().any(|d| d.will_be_osd()))
        .filter_map(|n| n.host())
        .collect();
    cluster
        .hosts
        .iter()
        .map(|h| h.name.as_str())
        .filter(|h| !with.contains(h))
        .collect()
}
