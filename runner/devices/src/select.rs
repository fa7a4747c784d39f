//! The one implementation of "which probed device does this entry mean": name/by-id/serial/
//! WWN resolution, rule matching (class, size range, model glob, all) and the gates every
//! rule-picked device must pass.
//!
//! Two front ends feed it: the inventory's `rookery_devices` (via [`super::plan::plan_host`],
//! used by `rookery prepare` and the `prepare_devices` module) and the stack's
//! `nodes[].devices[]` / `deviceSelection` (rookery-stack's planned devices). Keeping the
//! matching here means `rookery plan` and `rookery prepare` can never disagree about which
//! disk `sdb`, `serial: X` or `class: nvme` refers to.

use serde::Serialize;

use rookery_proto::{BlockDevice, DeviceKind, HostFacts, RejectReason};

use super::spec::{Rules, Selection, Selector, glob_match};

pub use rookery_proto::MIN_OSD_BYTES;

/// A problem with the selection itself (a named device that is not there, or ambiguous).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanProblem {
    pub host: String,
    pub origin: String,
    pub message: String,
    /// Paths of the devices an ambiguous name matched; empty when it matched none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<String>,
}

/// A device rules passed over, with why (shown with `-v`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

/// Lower-case, without `wwn-`/`naa.`/`eui.`/`0x` prefixes, so `0x5000c500…`,
/// `naa.5000c500…` and the by-id basename `wwn-0x5000c500…` compare equal.
fn norm_id(s: &str) -> String {
    let s = s.trim().to_ascii_lowercase();
    let s = s
        .strip_prefix("wwn-")
        .or_else(|| s.strip_prefix("naa."))
        .or_else(|| s.strip_prefix("eui."))
        .unwrap_or(&s)
        .to_string();
    s.strip_prefix("0x").map(str::to_string).unwrap_or(s)
}

/// `name` is `/dev/sdb`, `sdb`, or a `/dev/disk/by-id/…` / `/dev/disk/by-path/…` link of `dev`.
pub fn name_matches(name: &str, dev: &BlockDevice) -> bool {
    let n = name.trim();
    let short = n.strip_prefix("/dev/").unwrap_or(n);
    let full = if n.starts_with('/') {
        n.to_string()
    } else {
        format!("/dev/{n}")
    };
    dev.path == full
        || dev.name == short
        || dev.by_id.contains(&full)
        || dev.by_path.contains(&full)
}

/// A naming selector (name, serial, WWN) designates `dev`. Rules never match here.
pub fn named_matches(selector: &Selector, dev: &BlockDevice) -> bool {
    match selector {
        Selector::Name(n) => name_matches(n, dev),
        Selector::Serial(s) => dev
            .serial
            .as_deref()
            .is_some_and(|d| norm_id(d) == norm_id(s)),
        Selector::Wwn(w) => {
            dev.wwn.as_deref().is_some_and(|d| norm_id(d) == norm_id(w))
                || dev.by_id.iter().any(|l| {
                    l.rsplit('/')
                        .next()
                        .is_some_and(|b| norm_id(b) == norm_id(w))
                })
        }
        Selector::Rules(_) => false,
    }
}

/// Class, size range and model glob all hold for `dev` (`all: true` adds no condition).
pub fn rule_matches(rules: &Rules, dev: &BlockDevice) -> bool {
    rules.class.is_none_or(|c| c == dev.class)
        && rules.min_size.is_none_or(|m| dev.size_bytes >= m)
        && rules.max_size.is_none_or(|m| dev.size_bytes <= m)
        && rules
            .model
            .as_deref()
            .is_none_or(|g| dev.model.as_deref().is_some_and(|m| glob_match(g, m)))
}

/// What a named selector resolved to on one host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Resolution<'a> {
    One(usize, &'a BlockDevice),
    None,
    /// Several devices answer to the name: never guess which one to wipe or consume.
    Many,
}

/// Resolve a naming selector against a host's devices.
pub fn resolve_named<'a>(facts: &'a HostFacts, selector: &Selector) -> Resolution<'a> {
    let mut hits = facts
        .block_devices
        .iter()
        .enumerate()
        .filter(|(_, d)| named_matches(selector, d));
    match (hits.next(), hits.next()) {
        (None, _) => Resolution::None,
        (Some((i, d)), None) => Resolution::One(i, d),
        (Some(_), Some(_)) => Resolution::Many,
    }
}

/// Paths of every device a naming selector matches (for "ambiguous" messages).
pub fn named_candidates(facts: &HostFacts, selector: &Selector) -> Vec<String> {
    facts
        .block_devices
        .iter()
        .filter(|d| named_matches(selector, d))
        .map(|d| d.path.clone())
        .collect()
}

/// Reasons a wipe clears (old data), as opposed to conditions no wipe can fix.
pub fn wipe_fixes(reason: &RejectReason) -> bool {
    matches!(
        reason,
        RejectReason::HasPartitions
            | RejectReason::HasPartitionTable(_)
            | RejectReason::HasFilesystem(_)
            | RejectReason::LvmMember
            | RejectReason::BluestoreLabel
            | RejectReason::UsedByCephDisk
    )
}

fn has_stable_id(dev: &BlockDevice) -> bool {
    dev.serial.as_deref().is_some_and(|s| !s.is_empty())
        || dev.wwn.as_deref().is_some_and(|s| !s.is_empty())
        || !dev.by_id.is_empty()
}

/// Reasons that forbid touching the device at all, whatever the consent.
pub fn hard_refusals(dev: &BlockDevice) -> Vec<String> {
    let mut r = Vec::new();
    for m in &dev.mountpoints {
        r.push(RejectReason::Mounted(m.clone()).to_string());
    }
    if dev.holds_root {
        r.push(RejectReason::HoldsRoot.to_string());
    }
    if dev.swap {
        r.push(RejectReason::ActiveSwap.to_string());
    }
    if dev.read_only {
        r.push(RejectReason::ReadOnly.to_string());
    }
    if dev.in_use && dev.holders.is_empty() {
        r.push(RejectReason::InUse.to_string());
    }
    if dev.size_bytes < MIN_OSD_BYTES {
        r.push(RejectReason::TooSmall.to_string());
    }
    // ceph-volume rejects USB disks (`id_bus`), so Rook would never use one: wiping it could
    // only destroy data.
    if dev.reject_reasons.contains(&RejectReason::Usb) {
        r.push(RejectReason::Usb.to_string());
    }
    if dev.kind != DeviceKind::Loop && !has_stable_id(dev) {
        r.push("no stable identity (no serial, WWN or /dev/disk/by-id link)".into());
    }
    r
}

/// Why a rule must pass over a device even though a wipe could not help: hard refusals plus
/// the probe verdicts ceph-volume would also reject (removable, unreadable). A rule picks
/// only devices that are available now (or, with `wipe: true`, only dirty).
fn rule_blockers(dev: &BlockDevice) -> Vec<String> {
    let mut r = hard_refusals(dev);
    for reason in &dev.reject_reasons {
        if matches!(
            reason,
            RejectReason::Removable | RejectReason::Unreadable(_)
        ) {
            r.push(reason.to_string());
        }
    }
    r
}

/// What a wipe would remove, for messages: every signature of the plan's fingerprint
/// ([`BlockDevice::wipe_signatures`]) shows up here, so the operator consents to what they
/// read.
pub fn leftovers(dev: &BlockDevice) -> Vec<String> {
    let mut l: Vec<String> = Vec::new();
    let mut push = |n: String| {
        if !l.contains(&n) {
            l.push(n);
        }
    };
    for s in &dev.signatures {
        push(s.kind.blkid_name().to_string());
    }
    for p in &dev.partitions {
        for s in &p.signatures {
            push(format!("{} in {}", s.kind.blkid_name(), p.name));
        }
    }
    // Found only through an on-disk partition table the kernel does not know.
    for s in &dev.wipe_signatures {
        let whole = dev
            .signatures
            .iter()
            .any(|w| w.kind == s.kind && w.offset == s.offset);
        let in_partition = dev.partitions.iter().any(|p| {
            p.signatures
                .iter()
                .any(|w| w.kind == s.kind && p.start_bytes + w.offset == s.offset)
        });
        if !whole && !in_partition {
            push(format!("{} at byte {}", s.kind.blkid_name(), s.offset));
        }
    }
    if !dev.partitions.is_empty() {
        l.push(format!("{} partition(s)", dev.partitions.len()));
    }
    if !dev.holders.is_empty() {
        l.push(format!("holders {}", dev.holders.join(",")));
    }
    l
}

/// One device picked by one or more selections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    /// Index into `facts.block_devices`.
    pub index: usize,
    /// Some picking selection says `wipe: true`.
    pub wipe_allowed: bool,
    /// `origin (description)` of every selection that picked it.
    pub selected_by: Vec<String>,
}

/// The devices a host's selections pick, in probe order, plus what went wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selected {
    pub picks: Vec<Pick>,
    pub problems: Vec<PlanProblem>,
    pub skipped: Vec<Skipped>,
}

/// Apply selections to one host's probe facts. Named entries pick exactly the device they
/// name (whatever its state; the caller decides what may happen to it) or report a problem;
/// rules pick only devices no hard refusal blocks and that are blank, or dirty when the rule
/// says `wipe: true` — `all: true` must never sweep up a data disk.
pub fn select(
    host: &str,
    facts: &HostFacts,
    selections: &[Selection],
    include_loop: bool,
) -> Selected {
    let mut out = Selected::default();
    // (device index, wipe allowed, origin) in selection order.
    let mut picked: Vec<(usize, bool, String)> = Vec::new();
    for sel in selections {
        let desc = format!("{} ({})", sel.origin, sel.describe());
        if let Selector::Rules(rules) = &sel.selector {
            for (i, dev) in facts.block_devices.iter().enumerate() {
                if !rule_matches(rules, dev) {
                    continue;
                }
                if dev.kind == DeviceKind::Loop && !include_loop {
                    continue;
                }
                let blockers = rule_blockers(dev);
                if !blockers.is_empty() {
                    out.skipped.push(Skipped {
                        path: dev.path.clone(),
                        reason: format!("{desc}: {}", blockers.join(", ")),
                    });
                    continue;
                }
                let left = leftovers(dev);
                if !left.is_empty() && !sel.wipe {
                    out.skipped.push(Skipped {
                        path: dev.path.clone(),
                        reason: format!(
                            "{desc}: holds {} (rule has no wipe: true)",
                            left.join(", ")
                        ),
                    });
                    continue;
                }
                picked.push((i, sel.wipe, desc.clone()));
            }
            continue;
        }
        match resolve_named(facts, &sel.selector) {
            Resolution::One(i, _) => picked.push((i, sel.wipe, desc)),
            Resolution::None => out.problems.push(PlanProblem {
                host: host.to_string(),
                origin: sel.origin.clone(),
                message: format!(
                    "{} matches no device on {host}{}",
                    sel.describe(),
                    if include_loop {
                        ""
                    } else {
                        " (loop devices need --include-loop)"
                    }
                ),
                candidates: Vec::new(),
            }),
            Resolution::Many => {
                let candidates = named_candidates(facts, &sel.selector);
                out.problems.push(PlanProblem {
                    host: host.to_string(),
                    origin: sel.origin.clone(),
                    message: format!(
                        "{} matches several devices ({}); refusing to guess",
                        sel.describe(),
                        candidates.join(", ")
                    ),
                    candidates,
                })
            }
        }
    }
    for i in 0..facts.block_devices.len() {
        let mine: Vec<&(usize, bool, String)> = picked.iter().filter(|p| p.0 == i).collect();
        if mine.is_empty() {
            continue;
        }
        out.picks.push(Pick {
            index: i,
            wipe_allowed: mine.iter().any(|p| p.1),
            selected_by: mine.iter().map(|p| p.2.clone()).collect(),
        });
    }
    out
}
