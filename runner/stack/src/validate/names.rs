//! Names: DNS-1123 syntax, uniqueness, and the "exactly one default" rules for
//! StorageClasses (k8s-facts §4 "Default class").

use std::collections::BTreeMap;

use crate::findings::Finding;
use crate::hosts::PlannedCluster;
use crate::model::Stack;

/// DNS-1123 label: what Kubernetes requires of most object names (and what Rook's
/// generated Deployment names need, e.g. `rook-ceph-mds-<fs>-a`).
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// DNS-1123 subdomain: node names (hostnames may contain dots).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

fn label_finding(path: String, what: &str, value: &str) -> Finding {
    Finding::error(
        "dns-name",
        path,
        format!("{what} `{value}` is not a valid DNS-1123 label"),
        "use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
    )
}

/// Every name that becomes a Kubernetes object or a Ceph pool is a DNS-1123 label.
pub fn check_dns_names(stack: &Stack, cluster: &PlannedCluster) -> Vec<Finding> {
    let mut out = Vec::new();
    let cc = &stack.ceph_cluster;
    if !is_dns1123_label(&cc.cluster_name) {
        out.push(label_finding(
            "cephCluster.clusterName".into(),
            "cluster name",
            &cc.cluster_name,
        ));
    }
    for (i, sc) in stack.storage_classes.iter().enumerate() {
        if !is_dns1123_label(&sc.name) {
            out.push(label_finding(
                format!("storageClasses[{i}].name"),
                "storage class name",
                &sc.name,
            ));
        }
        if let Some(n) = &sc.filesystem.metadata_pool.name
            && !is_dns1123_label(n)
        {
            out.push(label_finding(
                format!("storageClasses[{i}].filesystem.metadataPool.name"),
                "pool name",
                n,
            ));
        }
        for (j, p) in sc.filesystem.data_pools.iter().enumerate() {
            if let Some(n) = &p.name
                && !is_dns1123_label(n)
            {
                out.push(label_finding(
                    format!("storageClasses[{i}].filesystem.dataPools[{j}].name"),
                    "pool name",
                    n,
                ));
            }
        }
    }
    for node in &cluster.nodes {
        if !is_dns1123_subdomain(&node.name) {
            out.push(Finding::error(
                "dns-name",
                format!("{}.name", node.path),
                format!(
                    "node name `{}` is not a valid DNS-1123 subdomain",
                    node.name
                ),
                "use the Kubernetes node name exactly as `kubectl get nodes` shows it (lowercase)",
            ));
        }
    }
    if let Some(b) = &stack.backup_strategy {
        for (i, l) in b.backup_storage_locations.iter().enumerate() {
            if !is_dns1123_label(&l.name) {
                out.push(label_finding(
                    format!("backupStrategy.backupStorageLocations[{i}].name"),
                    "backup storage location name",
                    &l.name,
                ));
            }
        }
        for (i, l) in b.volume_snapshot_locations.iter().enumerate() {
            if !is_dns1123_label(&l.name) {
                out.push(label_finding(
                    format!("backupStrategy.volumeSnapshotLocations[{i}].name"),
                    "volume snapshot location name",
                    &l.name,
                ));
            }
        }
        for (i, s) in b.schedules.iter().enumerate() {
            if !is_dns1123_label(&s.name) {
                out.push(label_finding(
                    format!("backupStrategy.schedules[{i}].name"),
                    "schedule name",
                    &s.name,
                ));
            }
        }
    }
    out
}

fn duplicates<'a>(
    items: impl Iterator<Item = (String, &'a str)>,
    what: &str,
    out: &mut Vec<Finding>,
) {
    let mut seen: BTreeMap<&str, String> = BTreeMap::new();
    for (path, name) in items {
        if let Some(first) = seen.get(name) {
            out.push(Finding::error(
                "duplicate-name",
                path,
                format!("{what} `{name}` is already defined at `{first}`"),
                format!("give every {what} a distinct name"),
            ));
        } else {
            seen.insert(name, path);
        }
    }
}

/// Names that must be unique: classes, pools of one filesystem (and the generated Ceph pool
/// names), locations, schedules, nodes, and devices of one node (by resolved identity).
pub fn check_unique_names(stack: &Stack, cluster: &PlannedCluster) -> Vec<Finding> {
    let mut out = Vec::new();
    duplicates(
        stack
            .storage_classes
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("storageClasses[{i}].name"), s.name.as_str())),
        "storage class",
        &mut out,
    );
    let mut ceph_pools: Vec<(String, String)> = Vec::new();
    for (i, sc) in stack.storage_classes.iter().enumerate() {
        ceph_pools.push((
            format!("storageClasses[{i}].filesystem.metadataPool"),
            sc.metadata_pool_ceph_name(),
        ));
        for j in 0..sc.filesystem.data_pools.len() {
            ceph_pools.push((
                format!("storageClasses[{i}].filesystem.dataPools[{j}]"),
                sc.data_pool_ceph_name(j),
            ));
        }
    }
    duplicates(
        ceph_pools.iter().map(|(p, n)| (p.clone(), n.as_str())),
        "Ceph pool",
        &mut out,
    );
    if let Some(b) = &stack.backup_strategy {
        duplicates(
            b.backup_storage_locations.iter().enumerate().map(|(i, l)| {
                (
                    format!("backupStrategy.backupStorageLocations[{i}].name"),
                    l.name.as_str(),
                )
            }),
            "backup storage location",
            &mut out,
        );
        duplicates(
            b.volume_snapshot_locations
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    (
                        format!("backupStrategy.volumeSnapshotLocations[{i}].name"),
                        l.name.as_str(),
                    )
                }),
            "volume snapshot location",
            &mut out,
        );
        duplicates(
            b.schedules.iter().enumerate().map(|(i, s)| {
                (
                    format!("backupStrategy.schedules[{i}].name"),
                    s.name.as_str(),
                )
            }),
            "schedule",
            &mut out,
        );
    }
    duplicates(
        cluster
            .nodes
            .iter()
            .map(|n| (format!("{}.name", n.path), n.name.as_str())),
        "node",
        &mut out,
    );
    for node in &cluster.nodes {
        duplicates(
            node.devices.iter().map(|d| (d.path.clone(), d.id.as_str())),
            &format!("device of node `{}`", node.name),
            &mut out,
        );
    }
    out
}

/// Exactly one StorageClass is the default (k8s-facts §4: with several defaults Kubernetes
/// picks the newest one, which is ambiguous).
pub fn check_default_storage_class(stack: &Stack) -> Vec<Finding> {
    if stack.storage_classes.is_empty() {
        return vec![Finding::error(
            "default-storage-class",
            "storageClasses",
            "no storage classes: the stack would create a Ceph cluster with no filesystem",
            "add at least one entry to `storageClasses`",
        )];
    }
    let defaults: Vec<usize> = stack
        .storage_classes
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_default)
        .map(|(i, _)| i)
        .collect();
    match defaults.as_slice() {
        [_] => vec![],
        [] => vec![Finding::error(
            "default-storage-class",
            "storageClasses",
            "no storage class has `isDefault: true`; PVCs without `storageClassName` would not use Ceph",
            "set `isDefault: true` on exactly one storage class",
        )],
        [_, rest @ ..] => rest
            .iter()
            .map(|i| {
                Finding::error(
                    "default-storage-class",
                    format!("storageClasses[{i}].isDefault"),
                    format!(
                        "storage class `{}` is a second default; with several defaults Kubernetes \
                         picks the newest, so which class a PVC gets depends on creation order",
                        stack.storage_classes[*i].name
                    ),
                    "set `isDefault: true` on exactly one storage class",
                )
            })
            .collect(),
    }
}
