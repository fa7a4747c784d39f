//! Security and monitoring rules that depend on the nodes' kernels (k8s-facts §2 keyType and
//! msgr2 rows, §9 host prerequisites; k8s-pitfalls "Also worth guarding against").

use crate::findings::Finding;
use crate::hosts::{PlannedCluster, kernel_version};
use crate::model::{KeyTypeChoice, Stack};
use crate::versions::{AES256K_MIN_KERNEL, MSGR2_SECURE_MIN_KERNEL};

/// Hosts whose kernel is older than `min`, and hosts whose kernel is unknown.
fn kernels_below(cluster: &PlannedCluster, min: (u32, u32)) -> (Vec<String>, Vec<String>) {
    let mut old = Vec::new();
    let mut unknown = Vec::new();
    for (host, kernel) in cluster.kernels() {
        match kernel.and_then(kernel_version) {
            Some(v) if v < min => old.push(format!("{host} ({})", kernel.unwrap_or_default())),
            Some(_) => {}
            None => unknown.push(host.to_string()),
        }
    }
    (old, unknown)
}

/// The CSI cephx key type Rookery renders: `aes256k` only when every node's kernel is known
/// to be >= 7.0, because older kernels cannot use such keys and mounts fail.
pub fn chosen_key_type(stack: &Stack, cluster: &PlannedCluster) -> &'static str {
    match stack.security.cephx_csi_key_type {
        KeyTypeChoice::Aes => "aes",
        KeyTypeChoice::Aes256k => "aes256k",
        KeyTypeChoice::Auto => {
            let (old, unknown) = kernels_below(cluster, AES256K_MIN_KERNEL);
            if old.is_empty() && unknown.is_empty() && !cluster.hosts.is_empty() {
                "aes256k"
            } else {
                "aes"
            }
        }
    }
}

/// An explicit `aes256k` needs Linux >= 7.0 on every node.
pub fn check_key_type(stack: &Stack, cluster: &PlannedCluster) -> Vec<Finding> {
    if stack.security.cephx_csi_key_type != KeyTypeChoice::Aes256k {
        return vec![];
    }
    let (old, unknown) = kernels_below(cluster, AES256K_MIN_KERNEL);
    let path = "security.cephxCsiKeyType";
    if !old.is_empty() {
        return vec![Finding::error(
            "key-type",
            path,
            format!(
                "`aes256k` CSI keys need Linux >= 7.0 on every node; older: {}. CephFS mounts there would fail",
                old.join(", ")
            ),
            "use `auto` (default) or `aes`",
        )];
    }
    if !unknown.is_empty() {
        return vec![Finding::warning(
            "key-type",
            path,
            format!(
                "`aes256k` CSI keys need Linux >= 7.0; kernel unknown on: {}",
                unknown.join(", ")
            ),
            "pass `--facts` so kernels are checked, or use `auto`",
        )];
    }
    vec![]
}

/// msgr2 secure mode needs kernel >= 5.11 for kernel CephFS clients.
pub fn check_msgr2_kernels(stack: &Stack, cluster: &PlannedCluster) -> Vec<Finding> {
    if !stack.security.encryption_in_transit {
        return vec![];
    }
    let (old, unknown) = kernels_below(cluster, MSGR2_SECURE_MIN_KERNEL);
    let path = "security.encryptionInTransit";
    if !old.is_empty() {
        return vec![Finding::error(
            "msgr2-kernel",
            path,
            format!(
                "in-transit encryption (msgr2 secure mode) needs kernel >= 5.11 for CephFS kernel mounts; older: {}",
                old.join(", ")
            ),
            "upgrade those kernels or turn `encryptionInTransit` off",
        )];
    }
    if !unknown.is_empty() {
        return vec![Finding::warning(
            "msgr2-kernel",
            path,
            format!(
                "in-transit encryption needs kernel >= 5.11; kernel unknown on: {}",
                unknown.join(", ")
            ),
            "pass `--facts` so kernels are checked",
        )];
    }
    vec![]
}

/// OSD encryption at rest needs `lvm2` on every host (k8s-facts §2 `encryptedDevice`).
pub fn check_encryption_at_rest(stack: &Stack) -> Vec<Finding> {
    if !stack.security.encryption_at_rest {
        return vec![];
    }
    vec![Finding::warning(
        "encryption-at-rest",
        "security.encryptionAtRest",
        "encrypted OSDs need the `lvm2` package on every storage host",
        "install lvm2 on the hosts before applying (Rookery does not check packages)",
    )]
}

/// Ceph monitoring needs the Prometheus Operator CRDs (k8s-facts §2 `spec.monitoring.enabled`).
pub fn check_monitoring(stack: &Stack) -> Vec<Finding> {
    if !stack.monitoring.enabled {
        return vec![];
    }
    vec![Finding::warning(
        "monitoring",
        "monitoring.enabled",
        "Ceph monitoring needs the Prometheus Operator CRDs (ServiceMonitor, PrometheusRule) in the cluster",
        "install the Prometheus Operator first, or set `enabled: false`",
    )]
}
