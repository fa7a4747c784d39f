//! The human renderings (JSON is the reports' `Serialize`). Meaning is in the words
//! (`ok`/`warn`/`FAIL`, `MISSING`), never in colour alone.

use std::fmt::Write as _;

use crate::doctor::{Area, Finding, Severity, worst};
use crate::snapshot::{bytes, short_duration};
use crate::status::StatusReport;

fn age(secs: Option<i64>) -> String {
    secs.map(|s| format!("{} ago", short_duration(s)))
        .unwrap_or_else(|| "-".into())
}

/// `rookery status`, one screen.
pub fn status(r: &StatusReport) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "cluster: {}", r.server);

    let _ = writeln!(o, "\nCEPH");
    match &r.ceph {
        None => {
            let _ = writeln!(o, "  MISSING: no CephCluster");
        }
        Some(c) => {
            let _ = writeln!(
                o,
                "  {}/{}: {} (phase {}, state {}){}",
                c.namespace,
                c.name,
                c.health.as_deref().unwrap_or("health not reported yet"),
                c.phase.as_deref().unwrap_or("-"),
                c.state.as_deref().unwrap_or("-"),
                c.last_checked
                    .as_deref()
                    .map(|t| format!(", checked {t}"))
                    .unwrap_or_default()
            );
            if c.state.as_deref() == Some("Error")
                && let Some(m) = &c.message
            {
                let _ = writeln!(o, "  Rook: {m}");
            }
            for h in &c.checks {
                let _ = writeln!(o, "  {:<11} {}: {}", h.severity, h.code, h.message);
                if let Some(m) = &h.meaning {
                    let _ = writeln!(o, "              ({m})");
                }
            }
            let quorum = match &c.quorum {
                Some(q) => format!(
                    "in quorum: {}",
                    if q.is_empty() {
                        "none".into()
                    } else {
                        q.join(",")
                    }
                ),
                None => "quorum unknown (no health report)".into(),
            };
            let _ = writeln!(
                o,
                "  mons: {} running of {} ({quorum})",
                c.mons.iter().filter(|m| m.running).count(),
                c.mons.len()
            );
            let _ = writeln!(
                o,
                "  osds: {} running of {} Deployments; {}{}",
                c.osds.iter().filter(|d| d.running).count(),
                c.osds.len(),
                c.osds_reporting
                    .map(|n| format!("{n} reporting to Ceph"))
                    .unwrap_or_else(|| "Ceph's OSD count not reported yet".into()),
                if c.osd_down.is_empty() {
                    String::new()
                } else {
                    format!("; {}", c.osd_down.join("; "))
                }
            );
            if !c.osds.is_empty() {
                let _ = writeln!(
                    o,
                    "    {:<7} {:<10} {:<6} {:<8} DEVICE",
                    "OSD", "HOST", "CLASS", "POD"
                );
                for d in &c.osds {
                    let dev = match (&d.device, &d.stable_id) {
                        (Some(p), Some(id)) if p != id => format!("{p} = {id}"),
                        (_, Some(id)) => id.clone(),
                        (Some(p), None) => format!("{p} (not in the probe facts)"),
                        (None, None) => "- (Rook's Deployment does not name it)".into(),
                    };
                    let _ = writeln!(
                        o,
                        "    {:<7} {:<10} {:<6} {:<8} {dev}",
                        format!("osd.{}", d.id.as_deref().unwrap_or("?")),
                        d.node.as_deref().unwrap_or("?"),
                        d.device_class.as_deref().unwrap_or("-"),
                        if d.running { "running" } else { "DOWN" },
                    );
                }
            }
            match &c.capacity {
                Some(cap) => {
                    let _ = writeln!(
                        o,
                        "  capacity: {} used of {} ({:.1} %), {} available; device classes: {}",
                        bytes(cap.used_bytes),
                        bytes(cap.total_bytes),
                        cap.used_percent,
                        bytes(cap.available_bytes),
                        if c.device_classes.is_empty() {
                            "-".into()
                        } else {
                            c.device_classes.join(", ")
                        }
                    );
                }
                None => {
                    let _ = writeln!(o, "  capacity: MISSING (not reported by Rook yet)");
                }
            }
            let _ = writeln!(o, "  per pool / device class: {}", c.pool_usage_source);
        }
    }

    let _ = writeln!(o, "\nFILESYSTEMS");
    if r.filesystems.is_empty() {
        let _ = writeln!(o, "  MISSING: no CephFilesystem");
    }
    for fs in &r.filesystems {
        let _ = writeln!(
            o,
            "  {}: {} · MDS {}/{} running (active {}{})",
            fs.name,
            fs.phase.as_deref().unwrap_or("no status"),
            fs.mds_running,
            fs.mds_total,
            fs.active_count,
            if fs.active_standby { " + standby" } else { "" }
        );
    }

    let _ = writeln!(o, "\nSTORAGE CLASSES");
    for c in &r.storage_classes {
        let _ = writeln!(
            o,
            "  {:<20} {:<38} {}{}",
            c.name,
            c.provisioner,
            if c.default { "default " } else { "" },
            c.reclaim_policy.as_deref().unwrap_or("")
        );
    }
    if r.default_classes.len() > 1 {
        let _ = writeln!(
            o,
            "  {} default classes: {}",
            r.default_classes.len(),
            r.default_classes.join(", ")
        );
    }
    if r.local_path_default {
        let _ = writeln!(o, "  K3s's local-path is still marked default");
    }

    let _ = writeln!(o, "\nSNAPSHOTS");
    let _ = writeln!(
        o,
        "  CRDs: {}",
        if r.snapshots.missing_crds.is_empty() {
            "installed".to_string()
        } else {
            format!("MISSING {}", r.snapshots.missing_crds.join(", "))
        }
    );
    let _ = writeln!(
        o,
        "  controller: {}",
        if r.snapshots.controllers.is_empty() {
            "MISSING".to_string()
        } else {
            r.snapshots.controllers.join("; ")
        }
    );
    if r.snapshots.classes.is_empty() {
        let _ = writeln!(o, "  VolumeSnapshotClass: MISSING");
    }
    for c in &r.snapshots.classes {
        let _ = writeln!(
            o,
            "  VolumeSnapshotClass {}: driver {}{}",
            c.name,
            c.driver,
            if c.velero {
                ", used by Velero"
            } else {
                ", not labelled for Velero"
            }
        );
    }

    let b = &r.backups;
    let _ = writeln!(o, "\nBACKUPS");
    for l in &b.locations {
        let validated = match (&l.phase, l.last_validation_age_secs) {
            (None, _) => "not validated by Velero yet".to_string(),
            (Some(p), Some(a)) => format!("{p} (validated {} ago)", short_duration(a)),
            (Some(p), None) => p.clone(),
        };
        let _ = writeln!(
            o,
            "  location {}{}: {validated}{}",
            l.name,
            if l.default { " (default)" } else { "" },
            l.message
                .as_deref()
                .filter(|m| !m.is_empty())
                .map(|m| format!("\n    Velero: {m}"))
                .unwrap_or_default()
        );
    }
    for s in &b.schedules {
        let last = match &s.last_backup {
            Some(lb) => format!(
                "last {} {} {}{}{}",
                lb.name,
                lb.phase,
                age(lb.age_secs),
                lb.items_backed_up
                    .map(|n| format!(", {n} items"))
                    .unwrap_or_default(),
                lb.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
            None => "no backup yet".into(),
        };
        let _ = writeln!(
            o,
            "  schedule {} `{}`: {}{} · {last}",
            s.name,
            s.schedule,
            s.phase.as_deref().unwrap_or("not validated"),
            if s.paused { " (paused)" } else { "" },
        );
    }
    for f in &b.failed {
        let _ = writeln!(
            o,
            "  FAILED backup {}: {} {}{}",
            f.name,
            f.phase,
            age(f.age_secs),
            f.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
    }
    for e in &b.expiring {
        let _ = writeln!(
            o,
            "  expiring backup {}: {}",
            e.name,
            e.expires_in_secs
                .map(|s| if s < 0 {
                    "overdue for deletion".to_string()
                } else {
                    format!("in {}", short_duration(s))
                })
                .unwrap_or_default()
        );
    }
    let _ = writeln!(
        o,
        "  {} backup(s) in total; sizes: {}",
        b.total, b.size_source
    );

    if !r.missing.is_empty() {
        let _ = writeln!(o, "\nMISSING");
        for m in &r.missing {
            let _ = writeln!(o, "  {m}");
        }
    }
    o
}

/// `rookery doctor`: findings grouped by area, then a recap line.
pub fn findings(all: &[Finding], verbose: bool) -> String {
    let mut o = String::new();
    let mut area: Option<Area> = None;
    for f in all {
        if !verbose && f.severity == Severity::Ok && f.area == Area::Nodes {
            continue;
        }
        if area != Some(f.area) {
            area = Some(f.area);
            let _ = writeln!(o, "\n{}", f.area.title());
        }
        let _ = writeln!(o, "  {:<4} {}: {}", f.severity.label(), f.object, f.summary);
        if f.severity != Severity::Ok || verbose {
            for e in &f.evidence {
                let _ = writeln!(o, "         {e}");
            }
            if let Some(h) = &f.hint
                && f.severity != Severity::Ok
            {
                let _ = writeln!(o, "         hint: {h}");
            }
        }
    }
    let count = |s| all.iter().filter(|f| f.severity == s).count();
    let _ = writeln!(
        o,
        "\nDoctor: {} ok, {} warn, {} fail → {}",
        count(Severity::Ok),
        count(Severity::Warn),
        count(Severity::Fail),
        match worst(all) {
            Severity::Ok => "healthy",
            Severity::Warn => "attention needed",
            Severity::Fail => "FAILING",
        }
    );
    o
}
