//! Device preparation (wipe/zap) and node readiness checks. The server calls the two entry
//! points [`handle_prepare`] and [`handle_readiness`].
//!
//! Per planned device, [`handle_prepare`] decides from fresh node state, in this order:
//! 1. resolve the planned identity (by-id, serial, WWN, size and `diskseq` must all agree; a
//!    bare path only names a loop device) — else `refused`;
//! 2. refuse, whatever the consent: mounted, holds `/`, active swap, read-only, foreign or
//!    stacked holders, a running OSD on a Ceph LV, smaller than 5 GiB;
//! 3. open the device once and bind the descriptor to the resolved identity ([`bind`]):
//!    exclusively (held by anyone else → `refused`), for writing when a wipe may follow;
//! 4. scan through that descriptor (whole device and partition contents); nothing found
//!    and no leftovers → `ok`, without consent and without writing a byte;
//! 5. signatures but no consent → `needs_consent`; consent given for other signatures than
//!    the plan showed (a blank disk that now holds data included) → `needs_consent`,
//!    "changed since the plan"; check mode → `would_wipe`;
//! 6. otherwise wipe through the same descriptor (see [`wipe`] for the crash-safe write
//!    order) and verify through it: `wiped` only if nothing remains, else `failed`.

mod audit;
mod bind;
mod ioctl;
mod node;
mod readiness;
mod wipe;

use rookery_proto::{
    DeviceIdentity, DeviceOutcome, DevicePlan, Event, PrepareAction, PrepareReport, PrepareRequest,
    ReadinessRequest, RejectReason, Response, Signature, SignatureKind, same_signatures,
};

pub use audit::DEFAULT_NODE_LOG;
pub use wipe::{HEAD_BYTES, REPLICA_OFFSETS, TAIL_BYTES};

/// Whether this build has the `test-hooks` fault hooks (never in a shipped agent).
pub const TEST_HOOKS: bool = test_hooks::ENABLED;

use crate::host::OsPaths;
use crate::probe::contents::{self, Found};
use crate::test_hooks;
use audit::Auditor;
use bind::{Access, BindError, Bound};

pub fn handle_prepare(req: &PrepareRequest, emit: &mut dyn FnMut(Event)) -> Response {
    let os = OsPaths::default();
    let mut auditor = Auditor::new(req.audit_log.as_deref(), &req.run_id, emit);
    let devices = req
        .devices
        .iter()
        .map(|plan| prepare_one(&os, plan, req, &mut auditor))
        .collect();
    Response::Prepare(PrepareReport { devices })
}

pub fn handle_readiness(req: &ReadinessRequest) -> Response {
    Response::Readiness(readiness::readiness(req))
}

/// The availability reasons a signature stands for (what ceph-volume would complain about).
fn reasons_for(sigs: &[Signature]) -> Vec<RejectReason> {
    let mut out: Vec<RejectReason> = Vec::new();
    for s in sigs {
        let r = match s.kind {
            k if k.is_partition_table() => RejectReason::HasPartitionTable(k.blkid_name().into()),
            SignatureKind::Lvm2 => RejectReason::LvmMember,
            SignatureKind::Bluestore => RejectReason::BluestoreLabel,
            k => RejectReason::HasFilesystem(k.blkid_name().into()),
        };
        if !out.contains(&r) {
            out.push(r);
        }
    }
    out
}

fn describe(sigs: &[Signature]) -> String {
    if sigs.is_empty() {
        return "no signatures".into();
    }
    sigs.iter()
        .map(|s| format!("{}@{}", s.kind.blkid_name(), s.offset))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `err` and its sources on one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut src = err.source();
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
}

/// What to do with a device, from what the node shows now and what the plan says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    Refuse,
    /// Nothing to erase.
    Clean,
    /// Holds something; no consent for it.
    NeedsConsent,
    /// Consent given, but the plan carries no fingerprint of what was shown.
    NoFingerprint,
    /// Consent given for other signatures than the device holds now.
    ChangedSincePlan,
    WouldWipe,
    Wipe,
}

/// Pure: the order of these checks is the safety argument, so it is unit-tested on its own.
fn decide(
    refused: bool,
    dirty: bool,
    plan: &DevicePlan,
    found: &[Signature],
    check: bool,
) -> Decision {
    if refused {
        return Decision::Refuse;
    }
    if !dirty {
        return Decision::Clean;
    }
    if !plan.wipe_consent {
        return Decision::NeedsConsent;
    }
    match &plan.expected_signatures {
        None => return Decision::NoFingerprint,
        Some(shown) if !same_signatures(shown, found) => return Decision::ChangedSincePlan,
        Some(_) => {}
    }
    if check {
        Decision::WouldWipe
    } else {
        Decision::Wipe
    }
}

fn outcome(id: &DeviceIdentity) -> DeviceOutcome {
    DeviceOutcome {
        identity: id.clone(),
        resolved_path: None,
        action: PrepareAction::Refused,
        signatures_before: Vec::new(),
        signatures_after: Vec::new(),
        removed_holders: Vec::new(),
        reasons: Vec::new(),
        message: String::new(),
    }
}

fn prepare_one(
    os: &OsPaths,
    plan: &DevicePlan,
    req: &PrepareRequest,
    audit: &mut Auditor<'_>,
) -> DeviceOutcome {
    let id = &plan.identity;
    let mut out = outcome(id);
    let disk = match node::resolve(os, id) {
        Ok(d) => d,
        Err(e) => {
            out.message = format!("{}: {e}; never written", id.path);
            return out;
        }
    };
    out.resolved_path = Some(disk.path.clone());
    let path = disk.path.clone();
    let moved = if path != id.path {
        format!(" (planned as {})", id.path)
    } else {
        String::new()
    };
    test_hooks::after_resolve(&path);

    let stack = node::Stack::of(&disk, os.holder_tree(&disk));
    let mut reasons = node::refusals(os, &disk, &stack);
    // A wipe can only follow when something was shown and consented to; otherwise (a blank
    // plan, no consent, check mode) the device is only read, so udev sees no write-close.
    let may_write = reasons.is_empty()
        && plan.wipe_consent
        && !req.check
        && plan
            .expected_signatures
            .as_ref()
            .is_some_and(|s| !s.is_empty());
    // Ceph LVs hold the disk until they are removed: no exclusive open before that (the
    // writable exclusive open after `dmsetup` is then the gate, and is verified again).
    let access = if !reasons.is_empty() || !stack.ceph.is_empty() {
        Access::Read
    } else if may_write {
        Access::WriteExclusive
    } else {
        Access::ReadExclusive
    };
    let bound = match bind::open_bound(os, &disk, id, access) {
        Ok(b) => b,
        Err(BindError::Busy { .. }) => {
            reasons.push(RejectReason::InUse);
            // Still say what the device holds: read it without claiming it.
            match bind::open_bound(os, &disk, id, Access::Read) {
                Ok(b) => b,
                Err(e) => {
                    out.reasons = reasons;
                    out.message = format!("{path}{moved}: {}; never written", chain(&e));
                    return out;
                }
            }
        }
        Err(e) => {
            out.message = format!("{path}{moved}: {}; never written", chain(&e));
            return out;
        }
    };
    let found = match scan(&bound, &[]) {
        Ok(f) => f,
        Err(e) => {
            out.reasons = reasons;
            out.reasons.push(RejectReason::Unreadable(e.to_string()));
            out.message = format!("{path}{moved}: cannot read the device: {e}");
            return out;
        }
    };
    out.signatures_before = found.signatures.clone();
    out.signatures_after = found.signatures.clone();

    let stale_partitions = !bound.disk.partitions.is_empty();
    let dirty = !found.is_clean() || !stack.ceph.is_empty() || stale_partitions;
    let decision = decide(
        !reasons.is_empty(),
        dirty,
        plan,
        &found.signatures,
        req.check,
    );
    let mut what = describe(&found.signatures);
    if !stack.ceph.is_empty() {
        let names: Vec<&str> = stack.ceph.iter().map(|h| h.display_name()).collect();
        what.push_str(&format!("; Ceph LVM leftovers {}", names.join(", ")));
    }
    if stale_partitions {
        what.push_str(&format!(
            "; {} kernel partition(s)",
            bound.disk.partitions.len()
        ));
    }
    if !matches!(decision, Decision::Refuse | Decision::Clean) {
        out.reasons = reasons_for(&found.signatures);
        if stale_partitions && !out.reasons.contains(&RejectReason::HasPartitions) {
            out.reasons.push(RejectReason::HasPartitions);
        }
    }
    match decision {
        Decision::Refuse => {
            let why: Vec<String> = reasons.iter().map(ToString::to_string).collect();
            out.message = format!("{path}{moved}: refused, {}; never wiped", why.join(", "));
            out.reasons = reasons;
            return out;
        }
        Decision::Clean => {
            out.action = PrepareAction::Ok;
            out.message = format!("{path}{moved}: already clean, nothing to do");
            return out;
        }
        Decision::NeedsConsent => {
            out.action = PrepareAction::NeedsConsent;
            out.message = format!(
                "{path}{moved}: holds {what}; wiping needs `wipe: true` on the device and --wipe"
            );
            return out;
        }
        Decision::NoFingerprint => {
            out.action = PrepareAction::NeedsConsent;
            out.message = format!(
                "{path}{moved}: holds {what}, but the plan does not say which signatures the \
                 consent covers; nothing written (plan again with this rookery version)"
            );
            return out;
        }
        Decision::ChangedSincePlan => {
            let shown = plan.expected_signatures.as_deref().unwrap_or_default();
            out.action = PrepareAction::NeedsConsent;
            out.message = format!(
                "{path}{moved}: changed since the plan: it showed {} and now holds {what}; \
                 nothing written — run `rookery prepare --check` again",
                describe(shown)
            );
            return out;
        }
        Decision::WouldWipe => {
            out.action = PrepareAction::WouldWipe;
            let steps: Vec<String> = wipe::plan_steps(disk.size_bytes, &found)
                .into_iter()
                .map(|s| s.action.to_string())
                .collect();
            out.message = format!("{path}{moved}: would erase {what} ({})", steps.join(", "));
            return out;
        }
        Decision::Wipe => {}
    }

    audit.progress(format!("wiping {path}{moved}: {what}"));
    let (bound, found) = if bound.access == Access::WriteExclusive {
        (bound, found)
    } else {
        match reopen_for_writing(os, &disk, id, bound, &found, &stack, audit, &mut out) {
            Ok(x) => x,
            Err(msg) => {
                out.message = format!("{path}{moved}: {msg}");
                return out;
            }
        }
    };
    match wipe::wipe(os, &bound.file, &bound.disk, id, &found, req.discard, audit) {
        Ok(w) => {
            out.signatures_after = w.after.signatures.clone();
            let notes = if w.notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", w.notes.join("; "))
            };
            if w.after.is_clean() {
                out.action = PrepareAction::Wiped;
                out.reasons.clear();
                out.message = format!(
                    "{path}{moved}: erased {what}; zeroed first {} MiB and last {} MiB; verified clean{notes}",
                    HEAD_BYTES >> 20,
                    TAIL_BYTES >> 20
                );
            } else {
                out.action = PrepareAction::Failed;
                out.reasons = reasons_for(&w.after.signatures);
                out.message = format!(
                    "{path}{moved}: wiped but signatures remain: {}{notes}",
                    describe(&w.after.signatures)
                );
            }
        }
        Err(e) => {
            out.action = PrepareAction::Failed;
            // Whatever happened, say what is on the device now (through the same descriptor).
            if let Ok(after) = scan(&bound, &found.regions) {
                out.signatures_after = after.signatures;
            }
            out.message = format!("{path}{moved}: {}", chain(&e));
        }
    }
    drop(bound);
    out
}

fn scan(b: &Bound, known: &[contents::Region]) -> std::io::Result<Found> {
    contents::scan_device(
        &b.file,
        b.disk.size_bytes,
        b.disk.logical_sector_size,
        &b.disk.partitions,
        known,
    )
}

/// The one reopen: after removing this disk's Ceph LVs (which held it, so the first
/// descriptor could not be exclusive), or when only stale kernel partitions are left to
/// clear. The new writable, exclusive descriptor is verified like the first one and must
/// show the same signatures the decision was made on. `Err` is the message for the report;
/// the outcome's action and reasons are set here.
#[allow(clippy::too_many_arguments)]
fn reopen_for_writing(
    os: &OsPaths,
    disk: &crate::host::Disk,
    id: &DeviceIdentity,
    first: Bound,
    found: &Found,
    stack: &node::Stack,
    audit: &mut Auditor<'_>,
    out: &mut DeviceOutcome,
) -> Result<(Bound, Found), String> {
    out.action = PrepareAction::Failed;
    if !stack.ceph.is_empty() {
        out.removed_holders =
            wipe::remove_holders(&disk.path, id, &stack.ceph, &found.signatures, audit)
                .map_err(|e| chain(&e))?;
    }
    drop(first);
    let bound = match bind::open_bound(os, disk, id, Access::WriteExclusive) {
        Ok(b) => b,
        Err(e @ BindError::Busy { .. }) => {
            out.action = PrepareAction::Refused;
            out.reasons = vec![RejectReason::InUse];
            return Err(chain(&e));
        }
        Err(e) => return Err(format!("{}; never written", chain(&e))),
    };
    let again = scan(&bound, &found.regions).map_err(|e| format!("cannot read the device: {e}"))?;
    if !same_signatures(&again.signatures, &found.signatures) {
        out.action = PrepareAction::NeedsConsent;
        out.signatures_after = again.signatures.clone();
        return Err(format!(
            "changed while its holders were removed (was {}, now {}); nothing written — run \
             `rookery prepare --check` again",
            describe(&found.signatures),
            describe(&again.signatures)
        ));
    }
    Ok((bound, again))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(kind: SignatureKind, offset: u64) -> Signature {
        Signature {
            kind,
            offset,
            length: 4,
            label: None,
            uuid: None,
        }
    }

    fn plan(consent: bool, shown: Option<Vec<Signature>>) -> DevicePlan {
        DevicePlan {
            identity: DeviceIdentity {
                path: "/dev/loop0".into(),
                serial: None,
                wwn: None,
                by_id: None,
                size_bytes: 1,
                diskseq: None,
            },
            wipe_consent: consent,
            expected_signatures: shown,
        }
    }

    #[test]
    fn consent_covers_exactly_what_was_shown() {
        let ext4 = vec![sig(SignatureKind::Ext4, 1080)];
        let xfs = vec![sig(SignatureKind::Xfs, 0)];
        let shown_ext4 = plan(true, Some(ext4.clone()));
        assert_eq!(
            decide(false, true, &shown_ext4, &ext4, false),
            Decision::Wipe
        );
        assert_eq!(
            decide(false, true, &shown_ext4, &ext4, true),
            Decision::WouldWipe
        );
        // Something else than what the operator saw: never wiped, in check mode neither.
        assert_eq!(
            decide(false, true, &shown_ext4, &xfs, false),
            Decision::ChangedSincePlan
        );
        assert_eq!(
            decide(false, true, &shown_ext4, &xfs, true),
            Decision::ChangedSincePlan
        );
        // Blank at plan time, data now: never wiped.
        let blank = plan(true, Some(vec![]));
        assert_eq!(
            decide(false, true, &blank, &ext4, false),
            Decision::ChangedSincePlan
        );
        assert_eq!(decide(false, false, &blank, &[], false), Decision::Clean);
        // No fingerprint at all: no wipe.
        assert_eq!(
            decide(false, true, &plan(true, None), &ext4, false),
            Decision::NoFingerprint
        );
        // Refusals and missing consent come first.
        assert_eq!(
            decide(true, true, &shown_ext4, &ext4, false),
            Decision::Refuse
        );
        assert_eq!(
            decide(false, true, &plan(false, Some(ext4.clone())), &ext4, false),
            Decision::NeedsConsent
        );
        // Order does not matter; any other field does.
        let mut labelled = ext4.clone();
        labelled[0].uuid = Some("1234".into());
        assert_eq!(
            decide(false, true, &shown_ext4, &labelled, false),
            Decision::ChangedSincePlan
        );
    }
}
