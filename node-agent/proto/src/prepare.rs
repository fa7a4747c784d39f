//! Device preparation (wiping) and node readiness: desired state in, report out.
//!
//! The runner sends a whole plan for a host; the agent reconciles it idempotently. Devices are
//! named by stable identity (serial, WWN, by-id link) and re-resolved on the node; a bare
//! `/dev/...` path is accepted as an identity for loop devices only. A wipe consent is bound
//! to the signatures the operator was shown ([`DevicePlan::expected_signatures`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
    /// The signatures the operator was shown for this device at plan time (the probe's
    /// [`crate::BlockDevice::wipe_signatures`]; empty = blank). The consent covers exactly
    /// these: when the device holds anything else now, the agent answers `needs_consent`
    /// ("changed since the plan") and writes nothing. `None` (a plan without a fingerprint)
    /// never allows a wipe.
    #[serde(default)]
    pub expected_signatures: Option<Vec<Signature>>,
}

/// Whether two signature lists name the same on-disk state, whatever their order.
pub fn same_signatures(a: &[Signature], b: &[Signature]) -> bool {
    fn key(
        s: &Signature,
    ) -> (
        u64,
        crate::SignatureKind,
        u64,
        &Option<String>,
        &Option<String>,
    ) {
        (s.offset, s.kind, s.length, &s.label, &s.uuid)
    }
    let mut a: Vec<_> = a.iter().map(key).collect();
    let mut b: Vec<_> = b.iter().map(key).collect();
    a.sort();
    b.sort();
    a == b
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
    /// The kernel's `diskseq` of the device at plan time ([`crate::BlockDevice::diskseq`]):
    /// a re-attached loop device or a replaced disk gets a new one, so the agent refuses.
    #[serde(default)]
    pub diskseq: Option<u64>,
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

impl PrepareAction {
    /// The wire name (`would_wipe`), for log lines and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            PrepareAction::Ok => "ok",
            PrepareAction::Wiped => "wiped",
            PrepareAction::WouldWipe => "would_wipe",
            PrepareAction::NeedsConsent => "needs_consent",
            PrepareAction::Refused => "refused",
            PrepareAction::Failed => "failed",
        }
    }
}

/// One destructive step, logged before (`result: None`) and after it happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub time: String,
    pub run_id: String,
    pub device: DeviceIdentity,
    pub action: AuditAction,
    #[serde(default)]
    pub signatures_before: Vec<Signature>,
    #[serde(default)]
    pub signatures_after: Vec<Signature>,
    #[serde(default)]
    pub result: Option<String>,
}

const GIB: u64 = 1 << 30;

/// What an audit line records. Written as text (`zero-head`, `zero-partition@1048576`,
/// `remove-holder:ceph--a-osd--block--b`, ...) so the JSON-lines logs stay greppable; the
/// text form is the wire and log format and must not change.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// Runner: the device is about to be (and then was) sent to its node for preparation.
    PrepareRequest,
    /// Runner: the plan refused the device; it was never sent to the node.
    RefusedByPlan,
    /// Agent: `dmsetup remove` of a `ceph--*` device-mapper holder of this device.
    RemoveHolder(String),
    /// Agent: zero the BlueStore label replica at this offset.
    ZeroBluestoreReplica(u64),
    /// Agent: zero the start of the partition at this offset.
    ZeroPartition(u64),
    /// Agent: erase one signature (blkid name) at this offset.
    Erase {
        name: String,
        offset: u64,
    },
    ZeroTail,
    ZeroHead,
    Discard,
    RereadPartitionTable,
    /// Agent: the final scan; `result` says clean or what remains.
    Verify,
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditAction::PrepareRequest => f.write_str("prepare-request"),
            AuditAction::RefusedByPlan => f.write_str("refused-by-plan"),
            AuditAction::RemoveHolder(n) => write!(f, "remove-holder:{n}"),
            AuditAction::ZeroBluestoreReplica(off) if off % GIB == 0 => {
                write!(f, "zero-bluestore-replica@{}GiB", off / GIB)
            }
            AuditAction::ZeroBluestoreReplica(off) => write!(f, "zero-bluestore-replica@{off}"),
            AuditAction::ZeroPartition(off) => write!(f, "zero-partition@{off}"),
            AuditAction::Erase { name, offset } => write!(f, "erase-{name}@{offset}"),
            AuditAction::ZeroTail => f.write_str("zero-tail"),
            AuditAction::ZeroHead => f.write_str("zero-head"),
            AuditAction::Discard => f.write_str("discard"),
            AuditAction::RereadPartitionTable => f.write_str("reread-partition-table"),
            AuditAction::Verify => f.write_str("verify"),
        }
    }
}

/// An audit action text that is none of [`AuditAction`]'s forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAuditAction(pub String);

impl fmt::Display for UnknownAuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown audit action {:?}", self.0)
    }
}

impl std::error::Error for UnknownAuditAction {}

impl FromStr for AuditAction {
    type Err = UnknownAuditAction;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || UnknownAuditAction(s.to_string());
        let offset = |t: &str| -> Result<u64, UnknownAuditAction> { t.parse().map_err(|_| bad()) };
        Ok(match s {
            "prepare-request" => AuditAction::PrepareRequest,
            "refused-by-plan" => AuditAction::RefusedByPlan,
            "zero-tail" => AuditAction::ZeroTail,
            "zero-head" => AuditAction::ZeroHead,
            "discard" => AuditAction::Discard,
            "reread-partition-table" => AuditAction::RereadPartitionTable,
            "verify" => AuditAction::Verify,
            _ => {
                if let Some(n) = s.strip_prefix("remove-holder:") {
                    AuditAction::RemoveHolder(n.to_string())
                } else if let Some(o) = s.strip_prefix("zero-bluestore-replica@") {
                    match o.strip_suffix("GiB") {
                        Some(g) => AuditAction::ZeroBluestoreReplica(
                            offset(g)?.checked_mul(GIB).ok_or_else(bad)?,
                        ),
                        None => AuditAction::ZeroBluestoreReplica(offset(o)?),
                    }
                } else if let Some(o) = s.strip_prefix("zero-partition@") {
                    AuditAction::ZeroPartition(offset(o)?)
                } else if let Some((name, o)) =
                    s.strip_prefix("erase-").and_then(|r| r.rsplit_once('@'))
                {
                    AuditAction::Erase {
                        name: name.to_string(),
                        offset: offset(o)?,
                    }
                } else {
                    return Err(bad());
                }
            }
        })
    }
}

impl Serialize for AuditAction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AuditAction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_actions_round_trip_through_their_text() {
        let all = [
            (AuditAction::PrepareRequest, "prepare-request"),
            (AuditAction::RefusedByPlan, "refused-by-plan"),
            (
                AuditAction::RemoveHolder("ceph--a-osd--block--b".into()),
                "remove-holder:ceph--a-osd--block--b",
            ),
            (
                AuditAction::ZeroBluestoreReplica(10 * GIB),
                "zero-bluestore-replica@10GiB",
            ),
            (
                AuditAction::ZeroBluestoreReplica(4096),
                "zero-bluestore-replica@4096",
            ),
            (
                AuditAction::ZeroPartition(3 * GIB),
                "zero-partition@3221225472",
            ),
            (
                AuditAction::Erase {
                    name: "LVM2_member".into(),
                    offset: 512,
                },
                "erase-LVM2_member@512",
            ),
            (AuditAction::ZeroTail, "zero-tail"),
            (AuditAction::ZeroHead, "zero-head"),
            (AuditAction::Discard, "discard"),
            (AuditAction::RereadPartitionTable, "reread-partition-table"),
            (AuditAction::Verify, "verify"),
        ];
        for (a, text) in all {
            assert_eq!(a.to_string(), text);
            assert_eq!(text.parse::<AuditAction>(), Ok(a.clone()));
        }
        assert!("zero-everything".parse::<AuditAction>().is_err());
        assert!("zero-partition@x".parse::<AuditAction>().is_err());
        assert!(
            "zero-bluestore-replica@99999999999999999GiB"
                .parse::<AuditAction>()
                .is_err()
        );
    }
}
