//! The stack file: the seed's `StorageModule` arguments, field for field.
//!
//! Names, nesting and camelCase follow the seed's TypeScript interfaces so a user of the
//! seed's module ports a configuration by transliteration. Fields the seed does not have are
//! marked "beyond the seed". Every struct denies unknown keys: a typo is an error with its
//! location, never a silently ignored setting (Rook itself stores and ignores typos in
//! `storage.nodes[].devices[].config`, k8s-facts §2 "Strictness").
//!
//! Defaults are documented on each field and collected in `runner/stack/README.md`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::credential::CredentialRef;
use crate::namespaces::{DEFAULT_ROOK_NAMESPACE, DEFAULT_VELERO_NAMESPACE, Namespaces};
use crate::versions;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stack {
    /// Namespace of the CephCluster, and of the Rook operator unless `operatorNamespace` is
    /// set. Default `rook-ceph`. Rook's files are rewritten for it (`namespaces::rewrite`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Beyond the seed: run the Rook operator and ceph-csi-operator (and the CSI Drivers) in
    /// their own namespace. Default: `namespace`.
    #[serde(default)]
    pub operator_namespace: Option<String>,
    /// Only `rook-ceph`. Default `rook-ceph`.
    #[serde(default)]
    pub storage_implementation: StorageImplementation,
    /// Only `velero`. Default `velero`.
    #[serde(default)]
    pub backup_implementation: BackupImplementation,
    pub ceph_cluster: CephClusterConfig,
    /// One CephFilesystem and one StorageClass per entry.
    #[serde(default)]
    pub storage_classes: Vec<StorageClassConfig>,
    /// Omit to install no Velero at all.
    #[serde(default)]
    pub backup_strategy: Option<BackupStrategy>,
    /// Beyond the seed: encryption and key settings.
    #[serde(default)]
    pub security: SecurityConfig,
    /// Beyond the seed: Ceph's Prometheus integration.
    #[serde(default)]
    pub monitoring: MonitoringConfig,
    /// Beyond the seed: how to reach the cluster's API server when the command line names no
    /// kubeconfig (`--kubeconfig`, `KUBECONFIG` and `~/.kube/config` come first).
    #[serde(default)]
    pub kubeconfig: Option<KubeconfigSource>,
}

/// Read the kubeconfig from the K3s server itself, over SSH (with the host's become).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubeconfigSource {
    /// Inventory name of a K3s server host.
    #[serde(alias = "from_host")]
    pub from_host: String,
    /// The API server's address as seen from this machine: a host, `host:port` or a URL.
    /// Default: the host's `ansible_host`. It must be in the server certificate (K3s:
    /// `--tls-san`).
    #[serde(default, alias = "api_endpoint")]
    pub api_endpoint: Option<String>,
    /// Where K3s wrote it. Default `/etc/rancher/k3s/k3s.yaml`.
    #[serde(default)]
    pub path: Option<String>,
}

fn default_namespace() -> String {
    DEFAULT_ROOK_NAMESPACE.to_string()
}

fn default_velero_namespace() -> String {
    DEFAULT_VELERO_NAMESPACE.to_string()
}

impl Stack {
    /// Where each part of the stack lives; the one place namespaces are derived from.
    pub fn namespaces(&self) -> Namespaces {
        Namespaces {
            cluster: self.namespace.clone(),
            operator: self
                .operator_namespace
                .clone()
                .unwrap_or_else(|| self.namespace.clone()),
            velero: self
                .backup_strategy
                .as_ref()
                .map_or_else(default_velero_namespace, |b| b.namespace.clone()),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StorageImplementation {
    #[default]
    #[serde(rename = "rook-ceph")]
    RookCeph,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackupImplementation {
    #[default]
    #[serde(rename = "velero")]
    Velero,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CephClusterConfig {
    /// CephCluster `metadata.name`. Default `rook-ceph` (as in Rook's `cluster.yaml`).
    #[serde(default = "default_cluster_name")]
    pub cluster_name: String,
    /// Default: the pinned image in `versions.rs` (`quay.io/ceph/ceph:v20.2.4`).
    #[serde(default = "default_ceph_image")]
    pub ceph_image: String,
    /// Default `/var/lib/rook`. Immutable once the cluster exists.
    #[serde(default = "default_data_dir")]
    pub data_dir_host_path: String,
    /// Number of mons. Default 3.
    #[serde(default = "default_monitor_count")]
    pub monitor_count: u32,
    /// Beyond the seed: Rook's `mon.allowMultiplePerNode`. Default false.
    #[serde(default)]
    pub allow_multiple_per_node: bool,
    /// Beyond the seed: Ceph health checks (e.g. `MON_DISK_LOW`) that may stay in HEALTH_WARN
    /// while `apply` still counts the cluster healthy. The `AUTH_INSECURE_*` warnings of the
    /// `aes` CSI key type, and `POOL_NO_REDUNDANCY` for size-1 pools, are accepted without
    /// being listed (Rookery chose them; the reason is shown). Default: none.
    #[serde(default)]
    pub accept_health_warnings: Vec<String>,
    pub storage: StorageConfig,
}

fn default_cluster_name() -> String {
    "rook-ceph".to_string()
}
fn default_ceph_image() -> String {
    versions::CEPH_IMAGE.to_string()
}
fn default_data_dir() -> String {
    "/var/lib/rook".to_string()
}
fn default_monitor_count() -> u32 {
    3
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageConfig {
    /// Default false: Rookery lists nodes explicitly (or derives them with
    /// `deviceSelection`), so a new machine never gets its disks consumed by surprise.
    #[serde(default)]
    pub use_all_nodes: bool,
    /// Default false, for the same reason.
    #[serde(default)]
    pub use_all_devices: bool,
    #[serde(default)]
    pub nodes: Vec<NodeConfig>,
    /// Beyond the seed: derive `nodes` from the inventory and the probe results.
    #[serde(default)]
    pub device_selection: Option<DeviceSelection>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeConfig {
    /// The Kubernetes node name (K3s: the host's hostname).
    pub name: String,
    #[serde(default)]
    pub devices: Vec<DeviceConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceConfig {
    /// `/dev/sdb`, `sdb` or a `/dev/disk/by-id/...` link. Rendered as the device's most
    /// stable `/dev/disk/by-id` link when probe facts are available.
    pub name: String,
    #[serde(default)]
    pub config: DeviceSettings,
    /// Beyond the seed: the device carries old partitions/filesystems/LVM/BlueStore labels
    /// and may be wiped by `rookery prepare`. Default false: such a device is an error.
    #[serde(default)]
    pub wipe: bool,
}

/// Rook's per-device `config` map, restricted to the keys Rookery understands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceSettings {
    /// CRUSH device class (`hdd`, `ssd`, `nvme` or your own). Default: what the probe saw.
    #[serde(default)]
    pub device_class: Option<String>,
}

/// Beyond the seed: pick OSD devices from probe results instead of listing them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceSelection {
    /// Inventory host pattern (`all`, a group, `worker-*`). Default `all`.
    #[serde(default)]
    pub hosts: Option<String>,
    /// Device classes to take (`nvme`, `ssd`, `hdd`). Default: all.
    #[serde(default)]
    pub device_classes: Vec<String>,
    /// Smallest device to take, in GiB. Default: no limit beyond Ceph's 5 GiB.
    #[serde(default, rename = "minSizeGiB")]
    pub min_size_gib: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageClassConfig {
    /// StorageClass name; also the CephFilesystem name.
    pub name: String,
    /// Default false.
    #[serde(default)]
    pub is_default: bool,
    /// `Delete` (default) or `Retain`.
    #[serde(default)]
    pub reclaim_policy: ReclaimPolicy,
    /// `Immediate` (default) or `WaitForFirstConsumer`.
    #[serde(default)]
    pub volume_binding_mode: VolumeBindingMode,
    /// Default true.
    #[serde(default = "yes")]
    pub allow_volume_expansion: bool,
    pub filesystem: FilesystemConfig,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReclaimPolicy {
    #[default]
    Delete,
    Retain,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeBindingMode {
    #[default]
    Immediate,
    WaitForFirstConsumer,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilesystemConfig {
    pub metadata_pool: PoolConfig,
    pub data_pools: Vec<PoolConfig>,
    pub metadata_server: MetadataServerConfig,
    /// Beyond the seed: Rook's `preservePoolNames`. Default false, so Rook names pools
    /// `<fs>-metadata` and `<fs>-<dataPools[i].name>`; true uses the names verbatim.
    #[serde(default)]
    pub preserve_pool_names: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PoolConfig {
    #[serde(default)]
    pub name: Option<String>,
    pub replication: Replication,
    /// CRUSH device class the pool's data must live on. Default: any.
    #[serde(default)]
    pub device_class: Option<String>,
    /// Default `host`.
    #[serde(default)]
    pub failure_domain: Option<String>,
}

impl PoolConfig {
    pub fn failure_domain(&self) -> &str {
        self.failure_domain.as_deref().unwrap_or("host")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Replication {
    pub size: u32,
    /// Beyond the seed: Rook's `requireSafeReplicaSize`. Default true; must be false for size 1.
    #[serde(default)]
    pub require_safe_replica_size: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetadataServerConfig {
    /// Default 1.
    #[serde(default = "one")]
    pub active_count: u32,
    /// Default true.
    #[serde(default = "yes")]
    pub active_standby: bool,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupStrategy {
    /// Beyond the seed: Velero's namespace. Default `velero` (as `velero install`).
    #[serde(default = "default_velero_namespace")]
    pub namespace: String,
    /// CSI snapshots (`--features=EnableCSI`).
    pub enable_snapshot_backups: bool,
    /// Kopia file-system backups (node-agent DaemonSet).
    pub enable_filesystem_backups: bool,
    /// Go duration, e.g. `720h`. Used for schedules without their own `ttl`. Default: none
    /// (Velero's server default of 30 days applies).
    #[serde(default, rename = "defaultBackupTTL")]
    pub default_backup_ttl: Option<String>,
    pub backup_storage_locations: Vec<BackupStorageLocationConfig>,
    /// Only for native (EBS-style) snapshots; CephFS CSI snapshots use none.
    #[serde(default)]
    pub volume_snapshot_locations: Vec<VolumeSnapshotLocationConfig>,
    #[serde(default)]
    pub schedules: Vec<ScheduleConfig>,
    /// Beyond the seed: what `rookery drill` must achieve (pass/fail targets).
    #[serde(default)]
    pub drill: Option<DrillTargets>,
}

/// Targets for `rookery drill`, as Go durations. Unset: the drill reports the times without
/// judging them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DrillTargets {
    /// Recovery time objective: the longest the restore may take (e.g. `15m`).
    #[serde(default)]
    pub rto: Option<String>,
    /// Recovery point objective: the oldest the backup restored from may be (e.g. `25h`).
    #[serde(default)]
    pub rpo: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupStorageLocationConfig {
    pub name: String,
    /// `aws` (any S3 API, incl. MinIO and Ceph RGW) — the only plugin Rookery installs.
    pub provider: String,
    pub bucket: String,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    /// S3-compatible endpoint. When set, `s3ForcePathStyle: "true"` and
    /// `checksumAlgorithm: ""` are added unless `config` overrides them (k8s-pitfalls §8).
    #[serde(default)]
    pub s3_url: Option<String>,
    #[serde(default)]
    pub default: bool,
    /// An AWS shared-credentials file's contents, by reference.
    #[serde(default)]
    pub credential: Option<CredentialRef>,
    /// Beyond the seed: extra plugin config keys (all strings).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeSnapshotLocationConfig {
    pub name: String,
    pub provider: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub credential: Option<CredentialRef>,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleConfig {
    pub name: String,
    /// 5-field cron or `@every 6h`/`@daily` (robfig `cron.ParseStandard`).
    pub schedule: String,
    /// Go duration. Default: `backupStrategy.defaultBackupTTL`.
    #[serde(default)]
    pub ttl: Option<String>,
    #[serde(default)]
    pub included_namespaces: Vec<String>,
    #[serde(default)]
    pub excluded_namespaces: Vec<String>,
    /// Default: the default backup storage location.
    #[serde(default)]
    pub storage_location: Option<String>,
    /// Default: on when snapshot backups are enabled.
    #[serde(default)]
    pub snapshot_volumes: Option<bool>,
    /// Default: on when filesystem backups are enabled and snapshot backups are not.
    #[serde(default)]
    pub default_volumes_to_fs_backup: Option<bool>,
    #[serde(default)]
    pub snapshot_move_data: Option<bool>,
    #[serde(default)]
    pub csi_snapshot_timeout: Option<String>,
    #[serde(default)]
    pub paused: Option<bool>,
}

/// Beyond the seed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityConfig {
    /// Encrypt OSDs at rest (dm-crypt, `encryptedDevice: "true"`; needs `lvm2` on hosts).
    #[serde(default)]
    pub encryption_at_rest: bool,
    /// msgr2 secure mode on the wire (needs kernel >= 5.11 on every node).
    #[serde(default)]
    pub encryption_in_transit: bool,
    /// Turn off the v1 protocol port (6789).
    #[serde(default)]
    pub require_msgr2: bool,
    /// `auto` (default): `aes256k` only when every node runs Linux >= 7.0, else `aes`.
    #[serde(default)]
    pub cephx_csi_key_type: KeyTypeChoice,
    /// Kopia repository password (Secret `velero-repo-credentials`). Default: none, and
    /// Velero falls back to its built-in static password (a warning says so).
    #[serde(default)]
    pub kopia_repository_password: Option<CredentialRef>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyTypeChoice {
    #[default]
    Auto,
    Aes,
    Aes256k,
}

/// Beyond the seed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MonitoringConfig {
    /// CephCluster `monitoring.enabled` (needs the Prometheus Operator CRDs). Default false.
    #[serde(default)]
    pub enabled: bool,
}

impl StorageClassConfig {
    /// The CephFilesystem name: the storage class name (one filesystem per class).
    pub fn fs_name(&self) -> &str {
        &self.name
    }

    /// The Ceph pool Rook creates for `dataPools[index]` (k8s-facts §3 "Pool naming").
    pub fn data_pool_ceph_name(&self, index: usize) -> String {
        let fs = self.fs_name();
        let name = self
            .filesystem
            .data_pools
            .get(index)
            .and_then(|p| p.name.as_ref());
        match (name, self.filesystem.preserve_pool_names) {
            (Some(name), true) => name.clone(),
            (Some(name), false) => format!("{fs}-{name}"),
            (None, _) => format!("{fs}-data{index}"),
        }
    }

    /// The metadata pool Rook creates (k8s-facts §3).
    pub fn metadata_pool_ceph_name(&self) -> String {
        match (
            &self.filesystem.metadata_pool.name,
            self.filesystem.preserve_pool_names,
        ) {
            (Some(name), true) => name.clone(),
            _ => format!("{}-metadata", self.fs_name()),
        }
    }
}
