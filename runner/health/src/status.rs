//! `rookery status`: one screen from a [`Snapshot`]. Every part the stack needs is shown —
//! and when it is not there, shown as missing with why, never left out.
//!
//! Where a number comes from matters, because Rook's CephCluster status is thin: it carries
//! Ceph's health with its checks, total capacity, daemon counts by version and the device
//! classes (rook-velero-facts-2 §6) — no per-OSD up/in, no mon quorum, no per-pool usage.
//! Per-daemon rows therefore come from Rook's Deployments (a pod running is not Ceph's
//! `up`/`in`: the health checks say when Ceph disagrees), quorum from the MON_DOWN check, and
//! per-pool usage is named as not available from the API (`ceph df` in the toolbox).

use serde::Serialize;
use serde_json::Value;

use crate::ceph::{self, Daemon};
use crate::snapshot::{
    DEFAULT_CLASS_ANNOTATION, Listed, SNAPSHOT_CRDS, Snapshot, VELERO_VSC_LABEL, epoch, i64_at,
    name_of, str_at,
};
use crate::velero::{self, BackupBrief, FAILED_PHASES};

/// Backups that expire within this long are listed.
pub const EXPIRING_WITHIN_SECS: i64 = 24 * 3600;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub server: String,
    pub now: i64,
    pub ceph: Option<CephStatus>,
    pub filesystems: Vec<FilesystemStatus>,
    pub storage_classes: Vec<StorageClassStatus>,
    pub default_classes: Vec<String>,
    /// K3s's `local-path` class is (still) marked default.
    pub local_path_default: bool,
    pub snapshots: SnapshotStatus,
    pub backups: BackupStatus,
    /// Each part that is not there, with why.
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    pub code: String,
    pub severity: String,
    pub message: String,
    pub meaning: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Capacity {
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
    pub used_percent: f64,
    pub last_updated: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonRow {
    pub name: String,
    pub id: Option<String>,
    pub node: Option<String>,
    /// The Deployment's pod is ready (Kubernetes' view, not Ceph's).
    pub running: bool,
    pub device_class: Option<String>,
    /// The device the OSD runs on (ROOK_BLOCK_PATH), when Rook's Deployment names it.
    pub device: Option<String>,
    /// The probe's stable id of that device (`/dev/disk/by-id/...`), when it maps back.
    pub stable_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CephStatus {
    pub name: String,
    pub namespace: String,
    pub phase: Option<String>,
    pub state: Option<String>,
    pub message: Option<String>,
    /// `HEALTH_OK|WARN|ERR`, None before Rook's first health check.
    pub health: Option<String>,
    pub checks: Vec<HealthCheck>,
    pub last_checked: Option<String>,
    pub capacity: Option<Capacity>,
    pub mons: Vec<DaemonRow>,
    /// Mons in quorum: from the MON_DOWN check when it is raised; else all running mons
    /// (Ceph would raise MON_DOWN otherwise). None without a health report.
    pub quorum: Option<Vec<String>>,
    pub osds: Vec<DaemonRow>,
    /// OSD daemons that report a version to Ceph (`status.ceph.versions.osd`).
    pub osds_reporting: Option<i64>,
    /// OSD_DOWN / OSD_HOST_DOWN messages (Ceph's own up/in view).
    pub osd_down: Vec<String>,
    pub device_classes: Vec<String>,
    /// Per-pool and per-device-class usage are not in Rook's CRD status.
    pub pool_usage_source: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FilesystemStatus {
    pub name: String,
    pub phase: Option<String>,
    pub message: Option<String>,
    pub active_count: i64,
    pub active_standby: bool,
    /// MDS Deployments of this filesystem: running / existing.
    pub mds_running: usize,
    pub mds_total: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageClassStatus {
    pub name: String,
    pub provisioner: String,
    pub default: bool,
    pub reclaim_policy: Option<String>,
    pub binding_mode: Option<String>,
    pub fs_name: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotClassStatus {
    pub name: String,
    pub driver: String,
    pub deletion_policy: Option<String>,
    /// Carries `velero.io/csi-volumesnapshot-class: "true"` (Velero picks it).
    pub velero: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotStatus {
    pub missing_crds: Vec<String>,
    /// `namespace/name: ready/wanted`, one per controller Deployment found.
    pub controllers: Vec<String>,
    pub controller_ready: bool,
    pub classes: Vec<SnapshotClassStatus>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationStatus {
    pub name: String,
    pub phase: Option<String>,
    pub message: Option<String>,
    pub last_validation: Option<String>,
    pub last_validation_age_secs: Option<i64>,
    pub default: bool,
    pub bucket: Option<String>,
    pub s3_url: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleStatus {
    pub name: String,
    pub schedule: String,
    pub phase: Option<String>,
    pub paused: bool,
    pub period_secs: Option<i64>,
    pub last_backup: Option<BackupBrief>,
    /// `status.lastBackup`, Velero's own record of the last run.
    pub last_run: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    pub locations: Vec<LocationStatus>,
    pub schedules: Vec<ScheduleStatus>,
    pub failed: Vec<BackupBrief>,
    pub expiring: Vec<BackupBrief>,
    pub total: usize,
    /// Velero's Backup status has no size; the bucket holds it.
    pub size_source: &'static str,
}

fn missing(out: &mut Vec<String>, listed: &Listed, what: &str) {
    if let Some(r) = listed.missing_reason(what) {
        out.push(r);
    }
}

fn row(d: &Daemon, s: &Snapshot) -> DaemonRow {
    // Map Rook's device back to the plan's stable id: by kernel name, by-id link or the
    // name the stack used, on the same node.
    let stable_id = d.block_path.as_deref().and_then(|p| {
        s.planned_osds
            .iter()
            .filter(|o| d.node.as_deref().is_none_or(|n| n == o.node))
            .find(|o| {
                o.stable_id == p
                    || o.requested == p
                    || o.kernel_name
                        .as_deref()
                        .is_some_and(|k| p == format!("/dev/{k}"))
            })
            .map(|o| o.stable_id.clone())
    });
    DaemonRow {
        name: d.name.clone(),
        id: d.id.clone(),
        node: d.node.clone(),
        running: d.ready,
        device_class: d.device_class.clone(),
        device: d.block_path.clone(),
        stable_id,
    }
}

fn ceph_status(s: &Snapshot, cc: &Value, daemons: &[Daemon]) -> CephStatus {
    let checks: Vec<HealthCheck> = cc
        .pointer("/status/ceph/details")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(code, d)| HealthCheck {
                    code: code.clone(),
                    severity: str_at(d, "/severity").unwrap_or("").to_string(),
                    message: str_at(d, "/message").unwrap_or("").to_string(),
                    meaning: ceph::explain(code).map(|(m, _)| m.to_string()),
                })
                .collect()
        })
        .unwrap_or_default();
    let capacity = cc.pointer("/status/ceph/capacity").and_then(|c| {
        let total = c.get("bytesTotal")?.as_u64()?;
        let used = c.get("bytesUsed").and_then(Value::as_u64).unwrap_or(0);
        Some(Capacity {
            total_bytes: total,
            used_bytes: used,
            available_bytes: c
                .get("bytesAvailable")
                .and_then(Value::as_u64)
                .unwrap_or(total.saturating_sub(used)),
            used_percent: if total == 0 {
                0.0
            } else {
                (used as f64 * 1000.0 / total as f64).round() / 10.0
            },
            last_updated: c
                .get("lastUpdated")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    });
    let health = str_at(cc, "/status/ceph/health").map(str::to_string);
    let mons: Vec<DaemonRow> = daemons
        .iter()
        .filter(|d| d.app == "rook-ceph-mon")
        .map(|d| row(d, s))
        .collect();
    let quorum = match checks.iter().find(|c| c.code == "MON_DOWN") {
        Some(c) => ceph::quorum_from_message(&c.message),
        None if health.is_some() && !checks.iter().any(|c| c.code == "error") => Some(
            mons.iter()
                .filter(|m| m.running)
                .filter_map(|m| m.id.clone())
                .collect(),
        ),
        None => None,
    };
    let osds_reporting = cc
        .pointer("/status/ceph/versions/osd")
        .and_then(Value::as_object)
        .map(|m| m.values().filter_map(Value::as_i64).sum());
    CephStatus {
        name: name_of(cc).to_string(),
        namespace: str_at(cc, "/metadata/namespace").unwrap_or("").to_string(),
        phase: str_at(cc, "/status/phase").map(str::to_string),
        state: str_at(cc, "/status/state").map(str::to_string),
        message: str_at(cc, "/status/message").map(str::to_string),
        health,
        osd_down: checks
            .iter()
            .filter(|c| c.code == "OSD_DOWN" || c.code == "OSD_HOST_DOWN")
            .map(|c| format!("{}: {}", c.code, c.message))
            .collect(),
        checks,
        last_checked: str_at(cc, "/status/ceph/lastChecked").map(str::to_string),
        capacity,
        mons,
        quorum,
        osds: daemons
            .iter()
            .filter(|d| d.app == "rook-ceph-osd")
            .map(|d| row(d, s))
            .collect(),
        osds_reporting,
        device_classes: cc
            .pointer("/status/storage/deviceClasses")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|c| str_at(c, "/name").map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        pool_usage_source: "not in Rook's CephCluster status: `ceph df` in the toolbox",
    }
}

fn is_default(sc: &Value) -> bool {
    sc.pointer("/metadata/annotations")
        .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
        .and_then(Value::as_str)
        == Some("true")
}

/// Build the report. Pure: the same snapshot always gives the same report.
pub fn build(s: &Snapshot) -> StatusReport {
    let mut miss = Vec::new();
    let daemons = ceph::daemons(s.ceph_deployments.items());

    missing(&mut miss, &s.ceph_clusters, "CephCluster");
    let ceph = s
        .ceph_clusters
        .items()
        .first()
        .map(|cc| ceph_status(s, cc, &daemons));
    if ceph.is_none() && matches!(s.ceph_clusters, Listed::Items(_)) {
        miss.push(match &s.namespaces {
            Some(ns) => format!("CephCluster: none in namespace `{}`", ns.cluster),
            None => "CephCluster: none".into(),
        });
    }
    if let Some(c) = &ceph
        && c.health.is_none()
    {
        miss.push(format!(
            "Ceph health: the Rook operator has not written `status.ceph` for {}/{} yet",
            c.namespace, c.name
        ));
    }

    missing(&mut miss, &s.ceph_filesystems, "CephFilesystem");
    let filesystems = s
        .ceph_filesystems
        .items()
        .iter()
        .map(|fs| {
            let name = name_of(fs).to_string();
            let mds: Vec<&Daemon> = daemons
                .iter()
                .filter(|d| d.app == "rook-ceph-mds" && d.id.as_deref() == Some(name.as_str()))
                .collect();
            FilesystemStatus {
                phase: str_at(fs, "/status/phase").map(str::to_string),
                message: crate::doctor::condition_message(fs),
                active_count: i64_at(fs, "/spec/metadataServer/activeCount").unwrap_or(1),
                active_standby: fs
                    .pointer("/spec/metadataServer/activeStandby")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                mds_running: mds.iter().filter(|d| d.ready).count(),
                mds_total: mds.len(),
                name,
            }
        })
        .collect();

    missing(&mut miss, &s.storage_classes, "StorageClass");
    let storage_classes: Vec<StorageClassStatus> = s
        .storage_classes
        .items()
        .iter()
        .map(|sc| StorageClassStatus {
            name: name_of(sc).to_string(),
            provisioner: str_at(sc, "/provisioner").unwrap_or("").to_string(),
            default: is_default(sc),
            reclaim_policy: str_at(sc, "/reclaimPolicy").map(str::to_string),
            binding_mode: str_at(sc, "/volumeBindingMode").map(str::to_string),
            fs_name: str_at(sc, "/parameters/fsName").map(str::to_string),
        })
        .collect();
    let default_classes: Vec<String> = storage_classes
        .iter()
        .filter(|c| c.default)
        .map(|c| c.name.clone())
        .collect();
    if matches!(s.storage_classes, Listed::Items(_)) && default_classes.is_empty() {
        miss.push("default StorageClass: none is marked default".into());
    }

    let crd_names: Vec<&str> = s.crds.items().iter().map(name_of).collect();
    let missing_crds: Vec<String> = if matches!(s.crds, Listed::Items(_)) {
        SNAPSHOT_CRDS
            .iter()
            .filter(|c| !crd_names.contains(c))
            .map(|c| c.to_string())
            .collect()
    } else {
        Vec::new()
    };
    missing(&mut miss, &s.crds, "CustomResourceDefinition");
    if !missing_crds.is_empty() {
        miss.push(format!("snapshot CRDs: {}", missing_crds.join(", ")));
    }
    missing(&mut miss, &s.snapshot_controllers, "snapshot controller");
    let controllers: Vec<(String, bool)> = s
        .snapshot_controllers
        .items()
        .iter()
        .map(|d| {
            let want = i64_at(d, "/spec/replicas").unwrap_or(1);
            let ready = i64_at(d, "/status/readyReplicas").unwrap_or(0);
            (
                format!(
                    "{}/{}: {ready}/{want} ready",
                    str_at(d, "/metadata/namespace").unwrap_or(""),
                    name_of(d)
                ),
                want > 0 && ready >= want,
            )
        })
        .collect();
    if matches!(s.snapshot_controllers, Listed::Items(ref v) if v.is_empty()) {
        miss.push("snapshot controller: no Deployment `snapshot-controller` found".into());
    }
    missing(&mut miss, &s.snapshot_classes, "VolumeSnapshotClass");
    let classes: Vec<SnapshotClassStatus> = s
        .snapshot_classes
        .items()
        .iter()
        .map(|v| SnapshotClassStatus {
            name: name_of(v).to_string(),
            driver: str_at(v, "/driver").unwrap_or("").to_string(),
            deletion_policy: str_at(v, "/deletionPolicy").map(str::to_string),
            velero: v
                .pointer("/metadata/labels")
                .and_then(|l| l.get(VELERO_VSC_LABEL))
                .and_then(Value::as_str)
                == Some("true"),
        })
        .collect();
    if matches!(s.snapshot_classes, Listed::Items(ref v) if v.is_empty()) {
        miss.push("VolumeSnapshotClass: none".into());
    }

    if s.velero_expected {
        missing(
            &mut miss,
            &s.backup_storage_locations,
            "BackupStorageLocation",
        );
        missing(&mut miss, &s.schedules, "Schedule");
        missing(&mut miss, &s.backups, "Backup");
    }
    let locations: Vec<LocationStatus> = s
        .backup_storage_locations
        .items()
        .iter()
        .map(|b| {
            let last = str_at(b, "/status/lastValidationTime").map(str::to_string);
            LocationStatus {
                name: name_of(b).to_string(),
                phase: str_at(b, "/status/phase").map(str::to_string),
                message: str_at(b, "/status/message").map(str::to_string),
                last_validation_age_secs: last.as_deref().and_then(epoch).map(|t| s.now - t),
                last_validation: last,
                default: b
                    .pointer("/spec/default")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                bucket: str_at(b, "/spec/objectStorage/bucket").map(str::to_string),
                s3_url: str_at(b, "/spec/config/s3Url").map(str::to_string),
            }
        })
        .collect();
    if s.velero_expected
        && matches!(s.backup_storage_locations, Listed::Items(ref v) if v.is_empty())
    {
        miss.push("BackupStorageLocation: none (backups have nowhere to go)".into());
    }
    let backups = s.backups.items();
    let schedules: Vec<ScheduleStatus> = s
        .schedules
        .items()
        .iter()
        .map(|sc| {
            let name = name_of(sc).to_string();
            let cron = str_at(sc, "/spec/schedule").unwrap_or("").to_string();
            ScheduleStatus {
                phase: str_at(sc, "/status/phase").map(str::to_string),
                paused: sc
                    .pointer("/spec/paused")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                period_secs: velero::period_secs(&cron),
                last_backup: velero::last_backup_of(&name, backups)
                    .map(|b| velero::brief(b, s.now)),
                last_run: str_at(sc, "/status/lastBackup").map(str::to_string),
                schedule: cron,
                name,
            }
        })
        .collect();
    let briefs: Vec<BackupBrief> = backups.iter().map(|b| velero::brief(b, s.now)).collect();
    let failed = briefs
        .iter()
        .filter(|b| FAILED_PHASES.contains(&b.phase.as_str()))
        .cloned()
        .collect();
    let expiring = briefs
        .iter()
        .filter(|b| b.expires_in_secs.is_some_and(|e| e < EXPIRING_WITHIN_SECS))
        .cloned()
        .collect();

    StatusReport {
        server: s.server.clone(),
        now: s.now,
        ceph,
        filesystems,
        local_path_default: default_classes.iter().any(|c| c == "local-path"),
        default_classes,
        storage_classes,
        snapshots: SnapshotStatus {
            missing_crds,
            controller_ready: controllers.iter().any(|(_, r)| *r),
            controllers: controllers.into_iter().map(|(t, _)| t).collect(),
            classes,
        },
        backups: BackupStatus {
            locations,
            schedules,
            failed,
            expiring,
            total: backups.len(),
            size_source: "not in Velero's Backup status: the bucket holds it",
        },
        missing: miss,
    }
}
