//! Every image and version Rookery pins, in one place.
//!
//! Upstream manifests from the bundle carry their own images (listed in Rook's
//! `images.txt`); the constants here are for the objects Rookery renders itself. Sources:
//! `shared/notes/k8s-facts.md` §0 (versions table) and §7 (Velero).

/// Rook release whose manifests the bundle holds.
pub const ROOK_VERSION: &str = "v1.20.6";
/// Velero release whose CRDs the bundle holds and whose server image Rookery deploys.
pub const VELERO_VERSION: &str = "v1.18.1";
/// external-snapshotter release for the snapshot CRDs and controller.
pub const SNAPSHOTTER_VERSION: &str = "v8.6.0";

/// Ceph Tentacle; the security floor for Rook v1.20.6 (k8s-facts §0, R:cluster.yaml:24).
pub const CEPH_IMAGE: &str = "quay.io/ceph/ceph:v20.2.4";
/// k8s-facts §0 and §7: `velero/velero:v1.18.1`.
pub const VELERO_IMAGE: &str = "velero/velero:v1.18.1";
/// k8s-facts §0: plugin v1.14.x pairs with Velero v1.18.x. v1.14.0 is the release public
/// repositories reference; bump to the newest v1.14.x patch once confirmed.
pub const VELERO_AWS_PLUGIN_IMAGE: &str = "velero/velero-plugin-for-aws:v1.14.0";

/// Linux release from which CSI cephx keys of type `aes256k` work (k8s-facts §2 keyType).
pub const AES256K_MIN_KERNEL: (u32, u32) = (7, 0);
/// Linux release from which msgr2 secure mode works for kernel clients (k8s-facts §2).
pub const MSGR2_SECURE_MIN_KERNEL: (u32, u32) = (5, 11);
/// Kubelet root dir on current K3s (k8s-facts §9).
pub const KUBELET_ROOT_DIR: &str = "/var/lib/kubelet";
