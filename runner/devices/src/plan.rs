//! The per-host preparation plan: which probed devices the `rookery_devices` entries pick,
//! each resolved to a stable identity, and what would happen to it.
//!
//! Everything here is a plain function over probe facts so `--check`, the interactive
//! confirmation and the real run print exactly the same plan. The agent re-checks every
//! decision on the node before writing; this plan is what the operator agrees to.

use serde::Serialize;

use rookery_proto::{BlockDevice, DeviceIdentity, DevicePlan, HostFacts, Signature};

use super::select::{hard_refusals, leftovers, select};
use super::spec::Selection;

pub use super::select::{MIN_OSD_BYTES, PlanProblem, Skipped};

/// What the plan says will happen to a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlannedAction {
    /// Already blank: nothing to write.
    Ok,
    /// Carries signatures, named with `wipe: true`, and consent was given.
    Wipe,
    /// Carries signatures; not wiped without `wipe: true` + `--wipe`.
    NeedsConsent,
    /// Never touched (mounted, root, swap, read-only, in use, too small, no stable id).
    Refused,
}

impl PlannedAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PlannedAction::Ok => "ok (blank)",
            PlannedAction::Wipe => "WIPE",
            PlannedAction::NeedsConsent => "needs consent",
            PlannedAction::Refused => "refused",
        }
    }
}

/// One device in the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanEntry {
    pub host: String,
    pub path: String,
    /// The most stable name: WWN/EUI by-id link, other by-id link, else the path.
    pub stable_id: String,
    pub identity: DeviceIdentity,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub size_bytes: u64,
    pub class: String,
    /// What the plan shows a wipe would erase ([`BlockDevice::wipe_signatures`]); the consent
    /// sent to the node is bound to exactly this list.
    pub signatures: Vec<Signature>,
    /// The entry allows wiping (`wipe: true`).
    pub wipe_allowed: bool,
    pub action: PlannedAction,
    /// Why refused / why consent is needed.
    pub reason: String,
    /// Which `rookery_devices` entries picked it.
    pub selected_by: Vec<String>,
}

impl PlanEntry {
    /// Holds anything a wipe would remove.
    pub fn needs_wipe(&self) -> bool {
        matches!(
            self.action,
            PlannedAction::Wipe | PlannedAction::NeedsConsent
        )
    }

    /// What the node is asked to do. The consent carries the signatures this plan showed:
    /// the node refuses to wipe a device that holds anything else by then (a device blank
    /// now that holds data later included).
    pub fn device_plan(&self, consent: bool) -> DevicePlan {
        DevicePlan {
            identity: self.identity.clone(),
            wipe_consent: consent && self.wipe_allowed,
            expected_signatures: Some(self.signatures.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostPlan {
    pub host: String,
    pub entries: Vec<PlanEntry>,
    pub problems: Vec<PlanProblem>,
    pub skipped: Vec<Skipped>,
}

impl HostPlan {
    pub fn requests(&self, consent: bool) -> Vec<DevicePlan> {
        self.entries
            .iter()
            .filter(|e| e.action != PlannedAction::Refused)
            .map(|e| e.device_plan(consent))
            .collect()
    }
}

/// The identity the agent will re-resolve: every stable identifier the probe reported.
pub fn identity_of(dev: &BlockDevice) -> DeviceIdentity {
    DeviceIdentity {
        path: dev.path.clone(),
        serial: dev.serial.clone().filter(|s| !s.is_empty()),
        wwn: dev.wwn.clone().filter(|s| !s.is_empty()),
        by_id: dev.by_id.first().cloned(),
        size_bytes: dev.size_bytes,
        diskseq: dev.diskseq,
    }
}

/// Builds one host's plan from its probe facts and `rookery_devices` entries.
/// `consent` is the operator's `--wipe` (or a confirmation already given).
pub fn plan_host(
    host: &str,
    facts: &HostFacts,
    selections: &[Selection],
    include_loop: bool,
    consent: bool,
) -> HostPlan {
    let mut plan = HostPlan {
        host: host.to_string(),
        entries: Vec::new(),
        problems: Vec::new(),
        skipped: Vec::new(),
    };
    let selected = select(host, facts, selections, include_loop);
    plan.problems = selected.problems;
    plan.skipped = selected.skipped;
    for pick in selected.picks {
        let Some(dev) = facts.block_devices.get(pick.index) else {
            continue;
        };
        let wipe_allowed = pick.wipe_allowed;
        let hard = hard_refusals(dev);
        let left = leftovers(dev);
        let (action, reason) = if !hard.is_empty() {
            (PlannedAction::Refused, hard.join(", "))
        } else if left.is_empty() {
            (PlannedAction::Ok, String::new())
        } else if !wipe_allowed {
            (
                PlannedAction::NeedsConsent,
                format!(
                    "holds {}; add `wipe: true` to its entry and pass --wipe",
                    left.join(", ")
                ),
            )
        } else if !consent {
            (
                PlannedAction::NeedsConsent,
                format!(
                    "holds {}; pass --wipe (or confirm on a terminal)",
                    left.join(", ")
                ),
            )
        } else {
            (PlannedAction::Wipe, format!("erase {}", left.join(", ")))
        };
        plan.entries.push(PlanEntry {
            host: host.to_string(),
            path: dev.path.clone(),
            stable_id: dev.stable_id().to_string(),
            identity: identity_of(dev),
            model: dev.model.clone(),
            serial: dev.serial.clone(),
            size_bytes: dev.size_bytes,
            class: dev.class.to_string(),
            signatures: dev.wipe_signatures.clone(),
            wipe_allowed,
            action,
            reason,
            selected_by: pick.selected_by,
        });
    }
    plan
}

/// Human-readable size (binary units, one decimal).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The plan as a table, one row per device, printed before anything happens.
pub fn render_plan(plans: &[HostPlan], verbose: bool) -> String {
    let header = [
        "HOST",
        "DEVICE",
        "STABLE ID",
        "MODEL",
        "SERIAL",
        "SIZE",
        "CLASS",
        "ACTION",
    ];
    let mut rows: Vec<[String; 8]> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for p in plans {
        for e in &p.entries {
            rows.push([
                e.host.clone(),
                e.path.clone(),
                e.stable_id.clone(),
                e.model.clone().unwrap_or_else(|| "-".into()),
                e.serial.clone().unwrap_or_else(|| "-".into()),
                human_bytes(e.size_bytes),
                e.class.clone(),
                e.action.as_str().to_string(),
            ]);
            if !e.reason.is_empty() {
                notes.push(format!("  {} {}: {}", e.host, e.path, e.reason));
            }
        }
        for pr in &p.problems {
            notes.push(format!("  {} {}: ERROR {}", pr.host, pr.origin, pr.message));
        }
        if verbose {
            for s in &p.skipped {
                notes.push(format!("  {} {}: skipped by {}", p.host, s.path, s.reason));
            }
        }
    }
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            s.push_str(c);
            if i + 1 < cells.len() {
                for _ in c.chars().count()..widths[i] + 2 {
                    s.push(' ');
                }
            }
        }
        s.push('\n');
        s
    };
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("no devices selected (set rookery_devices on the hosts, or name them in the stack with --stack)\n");
    } else {
        out.push_str(&line(header.to_vec()));
        for r in &rows {
            out.push_str(&line(r.iter().map(String::as_str).collect()));
        }
    }
    for n in notes {
        out.push_str(&n);
        out.push('\n');
    }
    out
}

/// The text an interactive confirmation shows: every device that would be wiped, and every
/// blank device the same consent covers (it is only ever written if it is still blank, which
/// means never), each with host, device, stable id, model, serial and size. `None` when
/// nothing would be wiped (then there is nothing to confirm).
pub fn confirmation_text(plans: &[HostPlan]) -> Option<String> {
    let row = |e: &PlanEntry, what: &str| {
        format!(
            "  {}  {}  id={}  model={}  serial={}  size={} ({} bytes)  [{what}]",
            e.host,
            e.path,
            e.stable_id,
            e.model.as_deref().unwrap_or("-"),
            e.serial.as_deref().unwrap_or("-"),
            human_bytes(e.size_bytes),
            e.size_bytes,
        )
    };
    let entries = || plans.iter().flat_map(|p| &p.entries);
    let wiped: Vec<String> = entries()
        .filter(|e| e.needs_wipe() && e.wipe_allowed)
        .map(|e| row(e, &e.reason))
        .collect();
    if wiped.is_empty() {
        return None;
    }
    let blank: Vec<String> = entries()
        .filter(|e| e.action == PlannedAction::Ok && e.wipe_allowed)
        .map(|e| row(e, "blank now"))
        .collect();
    let mut text = format!(
        "These devices will be WIPED (all data on them destroyed):\n{}\n",
        wiped.join("\n")
    );
    if !blank.is_empty() {
        text.push_str(&format!(
            "These devices are blank and stay untouched; should data appear on them before the \
             node gets there, they are refused, not wiped:\n{}\n",
            blank.join("\n")
        ));
    }
    text.push_str("Type \"yes\" to wipe them: ");
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::super::spec::parse_host_specs;
    use super::*;
    use rookery_proto::{
        DeviceClass, DeviceKind, OsRelease, RejectReason, SignatureKind, Transport,
    };
    use serde_json::json;

    const GIB: u64 = 1 << 30;

    fn dev(name: &str, size: u64, class: DeviceClass) -> BlockDevice {
        BlockDevice {
            name: name.into(),
            path: format!("/dev/{name}"),
            kind: DeviceKind::Disk,
            size_bytes: size,
            logical_sector_size: 512,
            physical_sector_size: 512,
            rotational: class == DeviceClass::Hdd,
            transport: Transport::Sata,
            class,
            model: Some("Samsung SSD 870 EVO".into()),
            vendor: None,
            serial: Some(format!("SER-{name}")),
            wwn: Some(format!("naa.5000c500{name}")),
            by_id: vec![format!("/dev/disk/by-id/wwn-0x5000c500{name}")],
            by_path: vec![],
            removable: false,
            read_only: false,
            partitions: vec![],
            holders: vec![],
            mountpoints: vec![],
            swap: false,
            holds_root: false,
            in_use: false,
            signatures: vec![],
            wipe_signatures: vec![],
            diskseq: Some(7),
            available: true,
            reject_reasons: vec![],
        }
    }

    fn facts(devs: Vec<BlockDevice>) -> HostFacts {
        HostFacts {
            hostname: "n1".into(),
            os: OsRelease::default(),
            kernel: "6.8".into(),
            arch: "x86_64".into(),
            cpus: 2,
            memory_bytes: 1,
            block_devices: devs,
            skipped_devices: vec![],
        }
    }

    fn ext4() -> Signature {
        Signature {
            kind: SignatureKind::Ext4,
            offset: 1080,
            length: 2,
            label: None,
            uuid: None,
        }
    }

    fn sel(v: serde_json::Value) -> Vec<Selection> {
        parse_host_specs("n1", Some(&v)).unwrap()
    }

    #[test]
    fn named_devices_and_consent() {
        let mut sdb = dev("sdb", 100 * GIB, DeviceClass::Ssd);
        sdb.signatures.push(ext4());
        sdb.wipe_signatures.push(ext4());
        let sdc = dev("sdc", 100 * GIB, DeviceClass::Ssd);
        let mut root = dev("sda", 100 * GIB, DeviceClass::Ssd);
        root.mountpoints.push("/".into());
        root.holds_root = true;
        let f = facts(vec![root, sdb, sdc]);
        let s = sel(json!([
            {"name": "/dev/sdb", "wipe": true},
            {"serial": "SER-sdc"},
            {"wwn": "0x5000c500sda", "wipe": true},
            {"name": "sdz"},
        ]));
        let p = plan_host("n1", &f, &s, false, false);
        let act: Vec<(String, PlannedAction)> = p
            .entries
            .iter()
            .map(|e| (e.path.clone(), e.action))
            .collect();
        assert_eq!(
            act,
            vec![
                ("/dev/sda".into(), PlannedAction::Refused),
                ("/dev/sdb".into(), PlannedAction::NeedsConsent),
                ("/dev/sdc".into(), PlannedAction::Ok),
            ]
        );
        assert_eq!(p.problems.len(), 1);
        assert!(p.problems[0].message.contains("sdz"));
        // With --wipe: only the wipe:true device is wiped; refused stays refused.
        let p = plan_host("n1", &f, &s, false, true);
        assert_eq!(p.entries[1].action, PlannedAction::Wipe);
        assert_eq!(p.entries[0].action, PlannedAction::Refused);
        let reqs = p.requests(true);
        assert_eq!(reqs.len(), 2, "refused devices are not sent");
        assert!(reqs[0].wipe_consent);
        assert!(
            !reqs[1].wipe_consent,
            "blank device without wipe: true gets no consent"
        );
        assert_eq!(reqs[0].identity.serial.as_deref(), Some("SER-sdb"));
        assert_eq!(
            reqs[0].identity.by_id.as_deref(),
            Some("/dev/disk/by-id/wwn-0x5000c500sdb")
        );
        let text = render_plan(std::slice::from_ref(&p), false);
        assert!(
            text.contains("STABLE ID") && text.contains("WIPE"),
            "{text}"
        );
        let c = confirmation_text(&[p]).unwrap();
        assert!(
            c.contains("SER-sdb") && c.contains("107374182400 bytes"),
            "{c}"
        );
        assert!(!c.contains("sdc"));
    }

    #[test]
    fn consent_is_bound_to_what_was_shown_and_blank_devices_are_listed() {
        let mut sdb = dev("sdb", 100 * GIB, DeviceClass::Ssd);
        sdb.signatures.push(ext4());
        // Only found through an on-disk partition entry the kernel does not know.
        let hidden = Signature {
            kind: SignatureKind::Xfs,
            offset: 3 * GIB,
            length: 4,
            label: None,
            uuid: None,
        };
        sdb.wipe_signatures = vec![ext4(), hidden.clone()];
        let sdc = dev("sdc", 100 * GIB, DeviceClass::Ssd);
        let f = facts(vec![sdb, sdc]);
        let s = sel(json!([{"name": "sdb", "wipe": true}, {"name": "sdc", "wipe": true}]));
        let p = plan_host("n1", &f, &s, false, false);
        assert!(
            p.entries[0].reason.contains("xfs at byte 3221225472"),
            "every fingerprinted signature is shown: {}",
            p.entries[0].reason
        );
        let c = confirmation_text(std::slice::from_ref(&p)).unwrap();
        assert!(c.contains("/dev/sdb") && c.contains("WIPED"), "{c}");
        assert!(
            c.contains("/dev/sdc") && c.contains("blank now") && c.contains("SER-sdc"),
            "{c}"
        );
        let reqs = p.requests(true);
        assert_eq!(reqs[0].expected_signatures, Some(vec![ext4(), hidden]));
        assert_eq!(reqs[1].expected_signatures, Some(vec![]));
        assert!(
            reqs[1].wipe_consent,
            "blank devices are sent with the consent"
        );
        assert_eq!(reqs[0].identity.diskseq, Some(7));
    }

    #[test]
    fn without_wipe_flag_consent_does_not_help() {
        let mut sdb = dev("sdb", 100 * GIB, DeviceClass::Ssd);
        sdb.signatures.push(ext4());
        let p = plan_host(
            "n1",
            &facts(vec![sdb]),
            &sel(json!([{"name": "sdb"}])),
            false,
            true,
        );
        assert_eq!(p.entries[0].action, PlannedAction::NeedsConsent);
        assert!(p.entries[0].reason.contains("wipe: true"));
        assert!(!p.requests(true)[0].wipe_consent);
        assert!(confirmation_text(&[p]).is_none());
    }

    #[test]
    fn rules() {
        let nvme = dev("nvme0n1", 500 * GIB, DeviceClass::Nvme);
        let small = dev("nvme1n1", 50 * GIB, DeviceClass::Nvme);
        let hdd = dev("sdd", 4000 * GIB, DeviceClass::Hdd);
        let mut data = dev("sde", 4000 * GIB, DeviceClass::Hdd);
        data.signatures.push(ext4());
        let mut lp = dev("loop0", 6 * GIB, DeviceClass::Hdd);
        lp.kind = DeviceKind::Loop;
        lp.serial = None;
        lp.wwn = None;
        lp.by_id.clear();
        let f = facts(vec![nvme, small, hdd, data, lp]);
        let paths = |p: &HostPlan| p.entries.iter().map(|e| e.path.clone()).collect::<Vec<_>>();

        let p = plan_host(
            "n1",
            &f,
            &sel(json!([{"class": "nvme", "size": "100Gi..2Ti"}])),
            false,
            false,
        );
        assert_eq!(paths(&p), vec!["/dev/nvme0n1"]);
        // `all` never sweeps up a disk with data unless the rule allows wiping.
        let p = plan_host("n1", &f, &sel(json!([{"all": true}])), false, false);
        assert_eq!(paths(&p), vec!["/dev/nvme0n1", "/dev/nvme1n1", "/dev/sdd"]);
        assert!(p.skipped.iter().any(|s| s.path == "/dev/sde"));
        let p = plan_host(
            "n1",
            &f,
            &sel(json!([{"class": "hdd", "wipe": true}])),
            false,
            true,
        );
        assert_eq!(paths(&p), vec!["/dev/sdd", "/dev/sde"]);
        assert_eq!(p.entries[1].action, PlannedAction::Wipe);
        // Loops only with include_loop; identity is then path + size.
        let p = plan_host("n1", &f, &sel(json!([{"all": true}])), true, false);
        assert!(paths(&p).contains(&"/dev/loop0".to_string()));
        let p = plan_host(
            "n1",
            &f,
            &sel(json!([{"model": "samsung*870*", "min_size": "1Ti"}])),
            false,
            false,
        );
        assert_eq!(paths(&p), vec!["/dev/sdd"]);
    }

    #[test]
    fn no_stable_identity_is_refused() {
        let mut vd = dev("vdb", 10 * GIB, DeviceClass::Hdd);
        vd.serial = None;
        vd.wwn = None;
        vd.by_id.clear();
        let p = plan_host(
            "n1",
            &facts(vec![vd]),
            &sel(json!([{"name": "vdb"}])),
            false,
            true,
        );
        assert_eq!(p.entries[0].action, PlannedAction::Refused);
        assert!(p.entries[0].reason.contains("stable identity"));
    }

    #[test]
    fn name_forms_and_ambiguity_resolve_through_select() {
        use crate::select::{Resolution, resolve_named};
        use crate::spec::Selector;
        let mut sdb = dev("sdb", 100 * GIB, DeviceClass::Ssd);
        sdb.by_path
            .push("/dev/disk/by-path/pci-0000:00:1f.2-ata-2".into());
        let f = facts(vec![sdb, dev("sdc", 100 * GIB, DeviceClass::Ssd)]);
        for name in [
            "sdb",
            "/dev/sdb",
            "/dev/disk/by-id/wwn-0x5000c500sdb",
            "/dev/disk/by-path/pci-0000:00:1f.2-ata-2",
        ] {
            assert!(
                matches!(
                    resolve_named(&f, &Selector::Name(name.into())),
                    Resolution::One(0, _)
                ),
                "{name}"
            );
        }
        assert!(matches!(
            resolve_named(&f, &Selector::Wwn("wwn-0x5000C500SDC".into())),
            Resolution::One(1, _)
        ));
        let mut twins = f.clone();
        twins.block_devices[1].serial = Some("SER-sdb".into());
        let p = plan_host(
            "n1",
            &twins,
            &sel(json!([{"serial": "SER-sdb"}])),
            false,
            false,
        );
        assert!(p.entries.is_empty());
        assert!(
            p.problems[0].message.contains("/dev/sdb, /dev/sdc"),
            "{:?}",
            p.problems
        );
    }

    #[test]
    fn rules_pass_over_removable_and_unreadable_devices() {
        let mut rem = dev("sdb", 100 * GIB, DeviceClass::Ssd);
        rem.available = false;
        rem.reject_reasons.push(RejectReason::Removable);
        let mut bad = dev("sdc", 100 * GIB, DeviceClass::Ssd);
        bad.available = false;
        bad.reject_reasons
            .push(RejectReason::Unreadable("EIO".into()));
        let f = facts(vec![rem, bad, dev("sdd", 100 * GIB, DeviceClass::Ssd)]);
        let p = plan_host(
            "n1",
            &f,
            &sel(json!([{"all": true, "wipe": true}])),
            false,
            true,
        );
        let paths: Vec<&str> = p.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, vec!["/dev/sdd"]);
        assert_eq!(p.skipped.len(), 2);
    }
}
