//! Device preparation (wipe/zap) and node readiness checks (issue 4). The server calls the
//! two entry points [`handle_prepare`] and [`handle_readiness`].
//!
//! Per planned device, [`handle_prepare`] decides from fresh node state, in this order:
//! 1. resolve the planned identity (by-id, serial, WWN, size must all agree) — else
//!    `refused`;
//! 2. refuse, whatever the consent: mounted, holds `/`, active swap, read-only, non-Ceph
//!    holders, smaller than 5 GiB (it can never be an OSD), held open (exclusive open
//!    fails);
//! 3. scan signatures (whole device and partition contents); nothing found and no leftovers
//!    → `ok`, without consent and without writing a byte;
//! 4. signatures but no consent → `needs_consent`; check mode → `would_wipe`;
//! 5. otherwise wipe (see [`wipe`] for the crash-safe write order) and verify by scanning
//!    again: `wiped` only if nothing remains, else `failed`.

mod audit;
mod ioctl;
mod node;
mod readiness;
mod scan;
mod wipe;

use std::fs::File;

use rookery_proto::{
    DeviceOutcome, DevicePlan, Event, PrepareAction, PrepareReport, PrepareRequest,
    ReadinessRequest, RejectReason, Response, Signature, SignatureKind,
};

pub use audit::DEFAULT_NODE_LOG;
pub use node::MIN_OSD_BYTES;
pub use wipe::{HEAD_BYTES, PAUSE_ENV, REPLICA_OFFSETS, TAIL_BYTES};

use audit::Auditor;

pub fn handle_prepare(req: &PrepareRequest, emit: &mut dyn FnMut(Event)) -> Response {
    let mut auditor = Auditor::new(req.audit_log.as_deref(), &req.run_id, emit);
    let devices = req
        .devices
        .iter()
        .map(|plan| prepare_one(plan, req, &mut auditor))
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

fn prepare_one(plan: &DevicePlan, req: &PrepareRequest, audit: &mut Auditor<'_>) -> DeviceOutcome {
    let id = &plan.identity;
    let mut out = DeviceOutcome {
        identity: id.clone(),
        resolved_path: None,
        action: PrepareAction::Refused,
        signatures_before: Vec::new(),
        signatures_after: Vec::new(),
        removed_holders: Vec::new(),
        reasons: Vec::new(),
        message: String::new(),
    };
    let dev = match node::resolve(id) {
        Ok(d) => d,
        Err(e) => {
            out.message = format!("{}: {e}", id.path);
            return out;
        }
    };
    out.resolved_path = Some(dev.path.clone());
    let moved = if dev.path != id.path {
        format!(" (planned as {})", id.path)
    } else {
        String::new()
    };

    let holders = node::holders(&dev);
    let ceph_holders: Vec<node::Holder> = holders
        .iter()
        .filter(|h| h.is_ceph_leftover_of(&dev))
        .cloned()
        .collect();
    let mut reasons = node::refusals(&dev, &holders);
    if dev.size_bytes < MIN_OSD_BYTES {
        reasons.push(RejectReason::TooSmall);
    }
    // Ceph holders keep the device busy until we remove them; the writable O_EXCL open in
    // the wipe catches anything else then.
    if ceph_holders.is_empty() && reasons.is_empty() {
        match node::exclusive_open_busy(&dev.path) {
            Ok(true) => reasons.push(RejectReason::InUse),
            Ok(false) => {}
            Err(e) => reasons.push(RejectReason::Unreadable(e.to_string())),
        }
    }

    let found = File::open(&dev.path).and_then(|f| scan::scan_device(&f, &dev, &[]));
    let found = match found {
        Ok(f) => f,
        Err(e) => {
            out.reasons = reasons;
            out.reasons.push(RejectReason::Unreadable(e.to_string()));
            out.message = format!("{}{moved}: cannot read the device: {e}", dev.path);
            return out;
        }
    };
    out.signatures_before = found.signatures.clone();
    out.signatures_after = found.signatures.clone();

    if !reasons.is_empty() {
        let why: Vec<String> = reasons.iter().map(ToString::to_string).collect();
        out.message = format!(
            "{}{moved}: refused, {}; never wiped",
            dev.path,
            why.join(", ")
        );
        out.reasons = reasons;
        return out;
    }

    let stale_partitions = !dev.partitions.is_empty();
    if found.is_clean() && ceph_holders.is_empty() && !stale_partitions {
        out.action = PrepareAction::Ok;
        out.message = format!("{}{moved}: already clean, nothing to do", dev.path);
        return out;
    }
    let mut what = describe(&found.signatures);
    if !ceph_holders.is_empty() {
        let names: Vec<String> = ceph_holders
            .iter()
            .map(|h| h.dm_name.clone().unwrap_or_else(|| h.kernel.clone()))
            .collect();
        what.push_str(&format!("; Ceph LVM leftovers {}", names.join(", ")));
    }
    if stale_partitions {
        what.push_str(&format!("; {} kernel partition(s)", dev.partitions.len()));
    }
    out.reasons = reasons_for(&found.signatures);
    if stale_partitions && !out.reasons.contains(&RejectReason::HasPartitions) {
        out.reasons.push(RejectReason::HasPartitions);
    }
    if !plan.wipe_consent {
        out.action = PrepareAction::NeedsConsent;
        out.message = format!(
            "{}{moved}: holds {what}; wiping needs `wipe: true` on the device and --wipe",
            dev.path
        );
        return out;
    }
    if req.check {
        out.action = PrepareAction::WouldWipe;
        let steps: Vec<String> = wipe::plan_steps(dev.size_bytes, &found)
            .into_iter()
            .map(|s| s.name)
            .collect();
        out.message = format!(
            "{}{moved}: would erase {what} ({})",
            dev.path,
            steps.join(", ")
        );
        return out;
    }

    audit.progress(format!("wiping {}{moved}: {what}", dev.path));
    match wipe::wipe(&dev, id, &found, &ceph_holders, req.discard, audit) {
        Ok(w) => {
            out.removed_holders = w.removed_holders;
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
                    "{}{moved}: erased {what}; zeroed first {} MiB and last {} MiB; verified clean{notes}",
                    dev.path,
                    HEAD_BYTES >> 20,
                    TAIL_BYTES >> 20
                );
            } else {
                out.action = PrepareAction::Failed;
                out.reasons = reasons_for(&w.after.signatures);
                out.message = format!(
                    "{}{moved}: wiped but signatures remain: {}{notes}",
                    dev.path,
                    describe(&w.after.signatures)
                );
            }
        }
        Err(e) => {
            if matches!(e, wipe::WipeError::Busy { .. }) {
                out.action = PrepareAction::Refused;
                out.reasons = vec![RejectReason::InUse];
            } else {
                out.action = PrepareAction::Failed;
            }
            // Report the chain: what failed and why.
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            // Whatever happened, say what is on the device now.
            if let Ok(after) =
                File::open(&dev.path).and_then(|f| scan::scan_device(&f, &dev, &found.regions))
            {
                out.signatures_after = after.signatures;
            }
            out.message = format!("{}{moved}: {msg}", dev.path);
        }
    }
    out
}
