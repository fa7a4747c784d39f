//! Device preparation (wiping) and node readiness: desired state in, report out.
//!
//! The runner sends a whole plan for a host; the agent reconciles it idempotently. Devices are
//! named by stable identity and re-resolved on the node, never trusted by `/dev/sdX` alone.

use serde::{Deserialize, Serialize};

use crate::device::{RejectReason, Signature};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareRequest {
    pub devices: Vec<DevicePlan>,
    /// Query only: report what would happen, change nothing.
    pub check: bool,
    /// Issue BLKDISCARD on non-rotational devices after wiping.
    #[serde(default)]
    pub discard: bool,
    /// Where the agent appends its node-side audit log (JSON lines).
    #[serde(default)]
    pub audit_log: Option<String>,
    /// Run id shared with the runner's audit log.
    #[serde(default)]
    pub run_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicePlan {
    /// What the agent must find: matched against path, by-id links, serial and WWN.
    pub identity: DeviceIdentity,
    /// The operator named this device with `wipe: true` and passed `--wipe` (or confirmed).
    pub wipe_consent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceIdentity {
    /// Kernel path at plan time (informative; the agent re-resolves).
    pub path: String,
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub wwn: Option<String>,
    #[serde(default)]
    pub by_id: Option<String>,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareReport {
    pub devices: Vec<DeviceOutcome>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceOutcome {
    pub identity: DeviceIdentity,
    /// Path the identity resolved to on the node now.
    #[serde(default)]
    pub resolved_path: Option<String>,
    pub action: PrepareAction,
    #[serde(default)]
    pub signatures_before: Vec<Signature>,
    #[serde(default)]
    pub signatures_after: Vec<Signature>,
    /// Removed device-mapper/LVM leftovers (`ceph-*` VGs/LVs).
    #[serde(default)]
    pub removed_holders: Vec<String>,
    #[serde(default)]
    pub reasons: Vec<RejectReason>,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrepareAction {
    /// Already clean: nothing to do.
    Ok,
    /// Wiped (or, in check mode, would wipe).
    Wiped,
    WouldWipe,
    /// Holds signatures and consent is missing.
    NeedsConsent,
    /// Can never be wiped (mounted, root, swap, in use, read-only) or not found.
    Refused,
    /// Wiping started but verification still finds signatures.
    Failed,
}

/// One destructive step, logged before (`result: None`) and after it happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub time: String,
    pub run_id: String,
    pub device: DeviceIdentity,
    pub action: String,
    #[serde(default)]
    pub signatures_before: Vec<Signature>,
    #[serde(default)]
    pub signatures_after: Vec<Signature>,
    #[serde(default)]
    pub result: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadinessRequest {
    /// Rook's `dataDirHostPath` (default `/var/lib/rook`).
    pub data_dir_host_path: String,
    /// LVM tools are needed when OSDs go on partitions/LVs or encryption is on.
    #[serde(default)]
    pub need_lvm: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadinessReport {
    pub checks: Vec<ReadinessCheck>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadinessCheck {
    /// Stable id, e.g. `kernel-module-rbd`, `kernel-version`, `lvm2`, `data-dir`, `time-sync`.
    pub id: String,
    pub status: CheckStatus,
    pub message: String,
    #[serde(default)]
    pub hint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Warn,
    Fail,
}
