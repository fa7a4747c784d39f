//! `rookery doctor`: the seed's troubleshooting list (backup failures → location connectivity
//! and credentials; snapshot issues → CSI driver and configuration; Ceph health → OSDs and
//! connectivity; storage class validation) as checks over a [`Snapshot`]. Each finding names
//! the object, shows the evidence (the controller's own words where it gave any) and carries
//! its hint as data.

use serde::Serialize;
use serde_json::Value;

use crate::ceph;
use crate::snapshot::{
    DEFAULT_CLASS_ANNOTATION, Listed, SNAPSHOT_CRDS, Snapshot, VELERO_VSC_LABEL, csi_secret_params,
    epoch, i64_at, name_of, short_duration, str_at,
};
use crate::velero::{self, FAILED_PHASES};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Warn,
    Fail,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Warn => "warn",
            Severity::Fail => "FAIL",
        }
    }
}

/// The part of the troubleshooting list a check belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Area {
    Backups,
    Snapshots,
    Ceph,
    StorageClasses,
    Nodes,
}

impl Area {
    pub fn title(self) -> &'static str {
        match self {
            Area::Backups => "Backups (storage location connectivity and credentials, schedules)",
            Area::Snapshots => "Snapshots (CSI driver and configuration)",
            Area::Ceph => "Ceph health (OSDs and connectivity)",
            Area::StorageClasses => "Storage classes",
            Area::Nodes => "Node readiness",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub area: Area,
    /// Stable id of the check (`backup-location`, `ceph-health-check`, ...).
    pub check: &'static str,
    pub severity: Severity,
    /// `Kind namespace/name`, or the host.
    pub object: String,
    pub summary: String,
    pub evidence: Vec<String>,
    pub hint: Option<String>,
}

fn f(
    area: Area,
    check: &'static str,
    severity: Severity,
    object: impl Into<String>,
    summary: impl Into<String>,
) -> Finding {
    Finding {
        area,
        check,
        severity,
        object: object.into(),
        summary: summary.into(),
        evidence: Vec::new(),
        hint: None,
    }
}

impl Finding {
    fn evidence(mut self, e: impl Into<String>) -> Self {
        self.evidence.push(e.into());
        self
    }
    fn hint(mut self, h: impl Into<String>) -> Self {
        self.hint = Some(h.into());
        self
    }
}

/// The worst severity, Ok when there are none.
pub fn worst(findings: &[Finding]) -> Severity {
    findings
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Severity::Ok)
}

/// The message of the newest condition that has one.
pub fn condition_message(obj: &Value) -> Option<String> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .filter_map(|c| c.get("message").and_then(Value::as_str))
        .rfind(|m| !m.is_empty())
        .map(str::to_string)
}

fn unreadable(out: &mut Vec<Finding>, area: Area, listed: &Listed, what: &str, needed: bool) {
    match listed {
        Listed::Error(e) => out.push(
            f(
                area,
                "read",
                Severity::Warn,
                what,
                format!("cannot read {what}"),
            )
            .evidence(e.clone())
            .hint("the kubeconfig's user needs read access to this kind"),
        ),
        Listed::NotServed if needed => out.push(
            f(
                area,
                "crd",
                Severity::Fail,
                what,
                format!("the cluster does not serve {what}: its CRD is not installed"),
            )
            .hint("run `rookery apply` (the CRDs stage installs it)"),
        ),
        _ => {}
    }
}

/// Every check, in the troubleshooting list's order.
pub fn checks(s: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    backups(s, &mut out);
    snapshots(s, &mut out);
    ceph_health(s, &mut out);
    storage_classes(s, &mut out);
    nodes(s, &mut out);
    out
}

fn obj(kind: &str, v: &Value) -> String {
    match str_at(v, "/metadata/namespace") {
        Some(ns) => format!("{kind} {ns}/{}", name_of(v)),
        None => format!("{kind} {}", name_of(v)),
    }
}

fn backups(s: &Snapshot, out: &mut Vec<Finding>) {
    let a = Area::Backups;
    unreadable(
        out,
        a,
        &s.backup_storage_locations,
        "BackupStorageLocation",
        s.velero_expected,
    );
    unreadable(out, a, &s.schedules, "Schedule", s.velero_expected);
    unreadable(out, a, &s.backups, "Backup", false);
    let locations = s.backup_storage_locations.items();
    if s.velero_expected
        && matches!(s.backup_storage_locations, Listed::Items(_))
        && locations.is_empty()
    {
        out.push(
            f(
                a,
                "backup-location",
                Severity::Fail,
                "BackupStorageLocation",
                "none exists: backups have nowhere to go",
            )
            .hint(
                "add `backupStrategy.backupStorageLocations` to the stack and run `rookery apply`",
            ),
        );
    }
    for b in locations {
        let o = obj("BackupStorageLocation", b);
        let url = str_at(b, "/spec/config/s3Url");
        let bucket = str_at(b, "/spec/objectStorage/bucket").unwrap_or("?");
        let validated = str_at(b, "/status/lastValidationTime");
        let mut cred_out = Vec::new();
        credentials(s, b, &o, &mut cred_out);
        let cred = cred_out.first().cloned();
        let finding = match str_at(b, "/status/phase") {
            Some("Available") => f(a, "backup-location", Severity::Ok, &o, "Available"),
            Some("Unavailable") => {
                let msg = str_at(b, "/status/message").unwrap_or("(Velero gave no message)");
                let fi = f(a, "backup-location", Severity::Fail, &o, "Unavailable: Velero cannot use it")
                    .evidence(format!("Velero: {msg}"));
                match &cred {
                    // The credentials check found the cause: point at it.
                    Some(c) if c.severity == Severity::Fail => fi.hint(format!(
                        "Velero cannot read the credentials it names: {}; fix that first",
                        c.summary.trim_start_matches("credentials: ")
                    )),
                    _ => fi.hint(format!(
                        "check that {} is reachable from Velero, that bucket `{bucket}` exists, and \
                         that the credentials it uses are valid for it; Velero re-validates every \
                         minute",
                        url.map(|u| format!("the endpoint {u}"))
                            .unwrap_or_else(|| "the object store".into())
                    )),
                }
            }
            other => f(
                a,
                "backup-location",
                Severity::Warn,
                &o,
                format!("not validated by Velero yet (phase {})", other.unwrap_or("unset")),
            )
            .hint("is the Velero server running? It validates each location at start and every minute"),
        };
        let finding = match validated {
            Some(t) => finding.evidence(format!(
                "last validation {t}{}",
                epoch(t)
                    .map(|e| format!(" ({} ago)", short_duration(s.now - e)))
                    .unwrap_or_default()
            )),
            None => finding,
        };
        out.push(finding);
        out.extend(cred_out);
    }
    let backups = s.backups.items();
    for sc in s.schedules.items() {
        schedule(s, sc, backups, out);
    }
    // Failed backups no schedule accounts for (a schedule's last one is reported above).
    for b in backups {
        let brief = velero::brief(b, s.now);
        if brief.schedule.is_some() || !FAILED_PHASES.contains(&brief.phase.as_str()) {
            continue;
        }
        if brief.age_secs.is_some_and(|a| a > 7 * 86_400) {
            continue;
        }
        let mut fi = f(
            a,
            "backup-failed",
            Severity::Warn,
            obj("Backup", b),
            format!("ended {}", brief.phase),
        )
        .hint(format!(
            "`rookery backup describe {}` (or `velero backup logs`) shows the failing items",
            brief.name
        ));
        if let Some(r) = brief.reason {
            fi = fi.evidence(format!("Velero: {r}"));
        }
        out.push(fi);
    }
}

fn credentials(s: &Snapshot, b: &Value, o: &str, out: &mut Vec<Finding>) {
    let a = Area::Backups;
    let ns = str_at(b, "/metadata/namespace").unwrap_or_default();
    let (name, key, named) = match (
        str_at(b, "/spec/credential/name"),
        str_at(b, "/spec/credential/key"),
    ) {
        (Some(n), Some(k)) => (n, k, true),
        // No credential on the location: Velero uses its own, which `velero install` (and
        // Rookery) mount from `cloud-credentials`, key `cloud`.
        _ => ("cloud-credentials", "cloud", false),
    };
    let what = if named {
        format!("the Secret {ns}/{name} its `spec.credential` names")
    } else {
        format!("Velero's default credentials Secret {ns}/{name}")
    };
    let fi = match s.secret(ns, name).map(|sk| &sk.keys) {
        Some(Some(keys)) if keys.iter().any(|k| k == key) => f(
            a,
            "backup-credentials",
            Severity::Ok,
            o,
            format!("credentials: {what} has key `{key}`"),
        ),
        Some(Some(keys)) => f(
            a,
            "backup-credentials",
            Severity::Fail,
            o,
            format!("credentials: {what} has no key `{key}`"),
        )
        .evidence(format!(
            "keys present: {}",
            if keys.is_empty() {
                "none".to_string()
            } else {
                keys.join(", ")
            }
        ))
        .hint(format!(
            "put the credentials file under key `{key}` (`[default]` with aws_access_key_id / \
             aws_secret_access_key), or point `spec.credential.key` at the key that holds it"
        )),
        _ if !named => f(
            a,
            "backup-credentials",
            Severity::Warn,
            o,
            format!("credentials: {what} does not exist"),
        )
        .hint(
            "the location names no credential, so Velero uses whatever its own environment \
             provides; give the location a `credential` in the stack",
        ),
        _ => f(
            a,
            "backup-credentials",
            Severity::Fail,
            o,
            format!("credentials: {what} does not exist"),
        )
        .hint(format!(
            "create Secret {name} in namespace {ns} with key `{key}`, or run `rookery apply` if \
             the stack's credential reference should create it"
        )),
    };
    out.push(fi);
}

fn schedule(s: &Snapshot, sc: &Value, backups: &[Value], out: &mut Vec<Finding>) {
    let a = Area::Backups;
    let name = name_of(sc);
    let o = obj("Schedule", sc);
    let cron = str_at(sc, "/spec/schedule").unwrap_or("");
    if str_at(sc, "/status/phase") == Some("FailedValidation") {
        let errors: Vec<&str> = sc
            .pointer("/status/validationErrors")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        out.push(
            f(
                a,
                "schedule",
                Severity::Fail,
                o,
                "Velero rejected the schedule (FailedValidation)",
            )
            .evidence(format!("Velero: {}", errors.join("; ")))
            .hint("fix the schedule in the stack (`rookery plan` checks cron and TTL) and apply"),
        );
        return;
    }
    if sc.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
        out.push(
            f(
                a,
                "schedule",
                Severity::Warn,
                o,
                "paused: no backups are being taken",
            )
            .hint(format!(
                "`velero schedule unpause {name}` when that is not on purpose"
            )),
        );
        return;
    }
    let period = velero::period_secs(cron);
    let last = velero::last_backup_of(name, backups).map(|b| velero::brief(b, s.now));
    let created = str_at(sc, "/metadata/creationTimestamp").and_then(epoch);
    let finding = match (&last, period) {
        (Some(b), _) if FAILED_PHASES.contains(&b.phase.as_str()) => {
            let mut fi = f(
                a,
                "schedule",
                Severity::Fail,
                &o,
                format!("its last backup {} ended {}", b.name, b.phase),
            )
            .hint(format!(
                "`rookery backup describe {}` shows Velero's errors; a location that is \
                 Unavailable fails every backup (see the location checks above)",
                b.name
            ));
            if let Some(r) = &b.reason {
                fi = fi.evidence(format!("Velero: {r}"));
            }
            if b.errors > 0 {
                fi = fi.evidence(format!("{} error(s), {} warning(s)", b.errors, b.warnings));
            }
            fi
        }
        (Some(b), Some(p)) if b.age_secs.is_some_and(|age| age > 2 * p) => f(
            a,
            "schedule",
            Severity::Fail,
            &o,
            format!(
                "its last backup {} is {} old, more than twice its period ({}, `{cron}`)",
                b.name,
                short_duration(b.age_secs.unwrap_or(0)),
                short_duration(p)
            ),
        )
        .hint("is the Velero server running? Its log says why the schedule does not fire"),
        (Some(b), _) => f(
            a,
            "schedule",
            Severity::Ok,
            &o,
            format!(
                "last backup {} {}{}",
                b.name,
                b.phase,
                b.age_secs
                    .map(|x| format!(", {} ago", short_duration(x)))
                    .unwrap_or_default()
            ),
        ),
        (None, Some(p)) if created.is_some_and(|c| s.now - c > 2 * p) => f(
            a,
            "schedule",
            Severity::Fail,
            &o,
            format!(
                "no backup in {} (twice its period is {})",
                short_duration(s.now - created.unwrap_or(s.now)),
                short_duration(2 * p)
            ),
        )
        .hint("is the Velero server running, and is the location Available?"),
        (None, _) => f(
            a,
            "schedule",
            Severity::Ok,
            &o,
            format!("no backup yet (`{cron}`)"),
        ),
    };
    out.push(finding);
}

fn snapshots(s: &Snapshot, out: &mut Vec<Finding>) {
    let a = Area::Snapshots;
    match &s.crds {
        Listed::Items(crds) => {
            let names: Vec<&str> = crds.iter().map(name_of).collect();
            let missing: Vec<&str> = SNAPSHOT_CRDS
                .iter()
                .copied()
                .filter(|c| !names.contains(c))
                .collect();
            out.push(if missing.is_empty() {
                f(
                    a,
                    "snapshot-crds",
                    Severity::Ok,
                    "CustomResourceDefinitions",
                    "the three snapshot CRDs are installed",
                )
            } else {
                f(
                    a,
                    "snapshot-crds",
                    Severity::Fail,
                    "CustomResourceDefinitions",
                    format!("missing: {}", missing.join(", ")),
                )
                .hint(
                    "run `rookery apply` (stage crds installs external-snapshotter v8.6.0's CRDs)",
                )
            });
        }
        other => unreadable(out, a, other, "CustomResourceDefinition", false),
    }
    match &s.snapshot_controllers {
        Listed::Items(ds) if ds.is_empty() => out.push(
            f(a, "snapshot-controller", Severity::Fail, "Deployment snapshot-controller", "not found in any namespace")
                .hint("run `rookery apply` (stage snapshot-controller); without it no VolumeSnapshot is ever taken"),
        ),
        Listed::Items(ds) => {
            for d in ds {
                let want = i64_at(d, "/spec/replicas").unwrap_or(1);
                let ready = i64_at(d, "/status/readyReplicas").unwrap_or(0);
                out.push(if want > 0 && ready >= want {
                    f(a, "snapshot-controller", Severity::Ok, obj("Deployment", d), format!("{ready}/{want} ready"))
                } else {
                    f(a, "snapshot-controller", Severity::Fail, obj("Deployment", d), format!("{ready}/{want} replicas ready"))
                        .hint(format!(
                            "`kubectl -n {} describe deployment {}` and its pods' events show why",
                            str_at(d, "/metadata/namespace").unwrap_or("kube-system"),
                            name_of(d)
                        ))
                });
            }
        }
        other => unreadable(out, a, other, "Deployment (snapshot controller)", false),
    }
    unreadable(out, a, &s.snapshot_classes, "VolumeSnapshotClass", false);
    let ceph_provisioners: Vec<&str> = s
        .storage_classes
        .items()
        .iter()
        .filter_map(|sc| str_at(sc, "/provisioner"))
        .filter(|p| p.ends_with(".csi.ceph.com"))
        .fold(Vec::new(), |mut v, p| {
            if !v.contains(&p) {
                v.push(p);
            }
            v
        });
    let csi_drivers: Vec<&str> = s.csi_drivers.items().iter().map(name_of).collect();
    let rook_drivers: Vec<&str> = s.rook_drivers.items().iter().map(name_of).collect();
    for p in &ceph_provisioners {
        let o = format!("CSIDriver {p}");
        let mut fi = if csi_drivers.contains(p) {
            f(
                a,
                "csi-driver",
                Severity::Ok,
                &o,
                "registered with Kubernetes",
            )
        } else if matches!(s.csi_drivers, Listed::Items(_)) {
            f(a, "csi-driver", Severity::Fail, &o, "not registered: no volume of this provisioner can be created or snapshotted")
                .hint("ceph-csi-operator registers it from Rook's `Driver` CR of the same name; check that CR and the operator's log")
        } else {
            f(
                a,
                "csi-driver",
                Severity::Warn,
                &o,
                "cannot read CSIDrivers",
            )
        };
        fi = match (&s.rook_drivers, rook_drivers.contains(p)) {
            (Listed::Items(_), true) => fi.evidence(format!("Rook Driver CR `{p}` exists")),
            (Listed::Items(_), false) => fi.evidence(format!(
                "no Rook Driver CR `{p}` in namespace `{}`: the StorageClass provisioner must equal its name",
                s.namespaces.as_ref().map(|n| n.operator.as_str()).unwrap_or("?")
            )),
            (Listed::NotServed, _) => fi.evidence("Rook's Driver CRD (csi.ceph.io) is not installed"),
            (Listed::Error(e), _) => fi.evidence(format!("Rook Driver CRs cannot be read: {e}")),
        };
        out.push(fi);
        let classes = s.snapshot_classes.items();
        let labelled: Vec<&Value> = classes
            .iter()
            .filter(|v| {
                v.pointer("/metadata/labels")
                    .and_then(|l| l.get(VELERO_VSC_LABEL))
                    .and_then(Value::as_str)
                    == Some("true")
            })
            .collect();
        let matching: Vec<&&Value> = labelled
            .iter()
            .filter(|v| str_at(v, "/driver") == Some(p))
            .collect();
        let o = format!("VolumeSnapshotClass for {p}");
        out.push(if let Some(v) = matching.first() {
            f(a, "snapshot-class", Severity::Ok, obj("VolumeSnapshotClass", v), format!("labelled for Velero, driver {p}"))
        } else if let Some(other) = classes.iter().find(|v| str_at(v, "/driver") == Some(p)) {
            f(a, "snapshot-class", Severity::Fail, obj("VolumeSnapshotClass", other), format!("driver {p} but no `{VELERO_VSC_LABEL}: \"true\"` label: Velero will not use it"))
                .hint(format!("label it: `kubectl label volumesnapshotclass {} {VELERO_VSC_LABEL}=true`", name_of(other)))
        } else {
            let mut fi = f(a, "snapshot-class", Severity::Fail, o, format!("no VolumeSnapshotClass with driver {p}: CSI snapshots of these volumes fail"))
                .hint("run `rookery apply` (stage storage-classes creates it); its driver must equal the StorageClass provisioner");
            for v in &labelled {
                fi = fi.evidence(format!("{} has driver {}", obj("VolumeSnapshotClass", v), str_at(v, "/driver").unwrap_or("?")));
            }
            fi
        });
    }
}

fn ceph_health(s: &Snapshot, out: &mut Vec<Finding>) {
    let a = Area::Ceph;
    unreadable(out, a, &s.ceph_clusters, "CephCluster", true);
    let Some(cc) = s.ceph_clusters.items().first() else {
        if matches!(s.ceph_clusters, Listed::Items(_)) {
            out.push(
                f(
                    a,
                    "ceph-cluster",
                    Severity::Fail,
                    "CephCluster",
                    format!(
                        "none in namespace `{}`",
                        s.namespaces
                            .as_ref()
                            .map(|n| n.cluster.as_str())
                            .unwrap_or("?")
                    ),
                )
                .hint("run `rookery apply`"),
            );
        }
        return;
    };
    let o = obj("CephCluster", cc);
    let state = str_at(cc, "/status/state");
    let phase = str_at(cc, "/status/phase");
    let message = str_at(cc, "/status/message").unwrap_or("");
    if cc.get("status").is_none() {
        out.push(
            f(
                a,
                "ceph-cluster",
                Severity::Fail,
                &o,
                "no status: the Rook operator has not acted on it",
            )
            .hint("is the Rook operator running? (`kubectl -n NS get deploy rook-ceph-operator`)"),
        );
        return;
    }
    if state == Some("Error") {
        out.push(
            f(
                a,
                "ceph-cluster",
                Severity::Fail,
                &o,
                "Rook reports an error",
            )
            .evidence(format!("Rook: {message}"))
            .hint("the Rook operator's log has the details"),
        );
    } else if phase != Some("Ready") {
        out.push(
            f(
                a,
                "ceph-cluster",
                Severity::Warn,
                &o,
                format!("phase {}", phase.unwrap_or("unset")),
            )
            .evidence(format!("Rook: {message}")),
        );
    }
    let health = str_at(cc, "/status/ceph/health");
    let details = cc
        .pointer("/status/ceph/details")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    match health {
        None => out.push(
            f(
                a,
                "ceph-health",
                Severity::Warn,
                &o,
                "no Ceph health yet: Rook's health checker has not reported",
            )
            .hint("Rook checks every 60 s once the cluster is created"),
        ),
        Some("HEALTH_OK") => out.push(f(a, "ceph-health", Severity::Ok, &o, "HEALTH_OK")),
        Some(h) => {
            let sev = if h == "HEALTH_ERR" {
                Severity::Fail
            } else {
                Severity::Warn
            };
            let mut fi = f(
                a,
                "ceph-health",
                sev,
                &o,
                format!("{h}: {} check(s)", details.len()),
            );
            if let Some(prev) = str_at(cc, "/status/ceph/previousHealth") {
                fi = fi.evidence(format!("previously {prev}"));
            }
            if let Some(t) = str_at(cc, "/status/ceph/lastChecked") {
                fi = fi.evidence(format!("last checked {t}"));
            }
            out.push(fi);
        }
    }
    for (code, d) in &details {
        let sev_text = str_at(d, "/severity").unwrap_or("");
        let msg = str_at(d, "/message").unwrap_or("");
        let sev = if sev_text == "HEALTH_ERR" || code == "error" {
            Severity::Fail
        } else {
            Severity::Warn
        };
        let (meaning, todo) = ceph::explain(code).unwrap_or((
            "a Ceph health check Rookery has no explanation for",
            "`ceph health detail` in the toolbox, and Ceph's health-checks documentation",
        ));
        out.push(
            f(a, "ceph-health-check", sev, format!("{o} {code}"), meaning)
                .evidence(format!("Ceph ({sev_text}): {msg}"))
                .hint(todo),
        );
    }
    // Daemons, from Rook's Deployments (the CRD status has no per-daemon detail).
    let daemons = ceph::daemons(s.ceph_deployments.items());
    let mons: Vec<&ceph::Daemon> = daemons
        .iter()
        .filter(|d| d.app == "rook-ceph-mon")
        .collect();
    let mon_down = details.get("MON_DOWN");
    match mon_down {
        Some(d) => {
            let msg = str_at(d, "/message").unwrap_or("");
            out.push(
                f(a, "ceph-mons", Severity::Fail, &o, "mons out of quorum")
                    .evidence(format!("Ceph: {msg}"))
                    .hint("look at the missing mons' pods and nodes; quorum needs a majority of mons up"),
            );
        }
        None if health.is_some() && !mons.is_empty() => {
            let down: Vec<&str> = mons
                .iter()
                .filter(|m| !m.ready)
                .map(|m| m.name.as_str())
                .collect();
            out.push(if down.is_empty() {
                f(
                    a,
                    "ceph-mons",
                    Severity::Ok,
                    &o,
                    format!("{} mon(s) running, no MON_DOWN", mons.len()),
                )
            } else {
                f(
                    a,
                    "ceph-mons",
                    Severity::Warn,
                    &o,
                    format!("mon pod(s) not ready: {}", down.join(", ")),
                )
                .hint("Ceph has not reported them down yet; look at the pods")
            });
        }
        None => {}
    }
    let osds: Vec<&ceph::Daemon> = daemons
        .iter()
        .filter(|d| d.app == "rook-ceph-osd")
        .collect();
    let down: Vec<String> = osds
        .iter()
        .filter(|d| !d.ready)
        .map(|d| {
            format!(
                "osd.{} on {}",
                d.id.as_deref().unwrap_or("?"),
                d.node.as_deref().unwrap_or("?")
            )
        })
        .collect();
    if !down.is_empty() {
        out.push(
            f(a, "ceph-osds", Severity::Fail, &o, format!("{} OSD pod(s) not running", down.len()))
                .evidence(down.join(", "))
                .hint("`kubectl -n NS describe pod -l app=rook-ceph-osd` for the reason; a dead disk shows in dmesg on its node"),
        );
    } else if !osds.is_empty() {
        out.push(f(
            a,
            "ceph-osds",
            Severity::Ok,
            &o,
            format!("{} OSD pod(s) running", osds.len()),
        ));
    }
    if let Some(cap) = cc.pointer("/status/ceph/capacity") {
        let total = cap.get("bytesTotal").and_then(Value::as_u64).unwrap_or(0);
        let used = cap.get("bytesUsed").and_then(Value::as_u64).unwrap_or(0);
        if total > 0 {
            let pct = used as f64 * 100.0 / total as f64;
            // Ceph's default ratios: nearfull 0.85, full 0.95.
            let sev = if pct >= 95.0 {
                Severity::Fail
            } else if pct >= 85.0 {
                Severity::Warn
            } else {
                Severity::Ok
            };
            let mut fi = f(
                a,
                "ceph-capacity",
                sev,
                &o,
                format!("{pct:.1} % of raw capacity used"),
            );
            if sev != Severity::Ok {
                fi = fi.hint("add OSDs or delete data: Ceph stops writes at 95 % (full ratio)");
            }
            out.push(fi);
        }
    }
    for fs in s.ceph_filesystems.items() {
        let o = obj("CephFilesystem", fs);
        let name = name_of(fs);
        let mds: Vec<&ceph::Daemon> = daemons
            .iter()
            .filter(|d| d.app == "rook-ceph-mds" && d.id.as_deref() == Some(name))
            .collect();
        let running = mds.iter().filter(|d| d.ready).count();
        let fi = match str_at(fs, "/status/phase") {
            Some("Ready") if !mds.is_empty() && running == mds.len() => {
                f(a, "ceph-filesystem", Severity::Ok, &o, format!("Ready, {running}/{} MDS running", mds.len()))
            }
            Some("Ready") => f(a, "ceph-filesystem", Severity::Fail, &o, format!("Ready, but {running}/{} MDS running", mds.len()))
                .hint("Rook marks a filesystem Ready without checking its MDS pods; look at `-l app=rook-ceph-mds`"),
            Some("Failure") => f(a, "ceph-filesystem", Severity::Fail, &o, "Rook reports Failure")
                .evidence(format!("Rook: {}", condition_message(fs).unwrap_or_default()))
                .hint("the Rook operator's log has the details"),
            other => f(a, "ceph-filesystem", Severity::Warn, &o, format!("phase {}", other.unwrap_or("unset"))),
        };
        out.push(fi);
    }
}

fn storage_classes(s: &Snapshot, out: &mut Vec<Finding>) {
    let a = Area::StorageClasses;
    unreadable(out, a, &s.storage_classes, "StorageClass", false);
    let classes = s.storage_classes.items();
    let defaults: Vec<&str> = classes
        .iter()
        .filter(|c| {
            c.pointer("/metadata/annotations")
                .and_then(|x| x.get(DEFAULT_CLASS_ANNOTATION))
                .and_then(Value::as_str)
                == Some("true")
        })
        .map(name_of)
        .collect();
    if matches!(s.storage_classes, Listed::Items(_)) {
        out.push(match defaults.len() {
            0 => f(a, "default-class", Severity::Warn, "StorageClass", "no default class: claims without storageClassName stay Pending")
                .hint("set `isDefault: true` on one storage class of the stack"),
            1 => f(a, "default-class", Severity::Ok, format!("StorageClass {}", defaults[0]), "the only default class"),
            _ => {
                let mut fi = f(a, "default-class", Severity::Fail, "StorageClass", format!("{} default classes: {}", defaults.len(), defaults.join(", ")))
                    .evidence("Kubernetes then picks the newest one for claims without a class".to_string());
                fi = if defaults.contains(&"local-path") {
                    fi.hint("K3s's local-path is still default: `kubectl patch storageclass local-path -p '{\"metadata\":{\"annotations\":{\"storageclass.kubernetes.io/is-default-class\":\"false\"}}}'` (or start K3s with --disable local-storage)")
                } else {
                    fi.hint("keep `isDefault: true` on one class only")
                };
                fi
            }
        });
    }
    let cluster_nss: Vec<&str> = s
        .ceph_clusters
        .items()
        .iter()
        .filter_map(|c| str_at(c, "/metadata/namespace"))
        .collect();
    let fs_names: Vec<&str> = s.ceph_filesystems.items().iter().map(name_of).collect();
    let csi_drivers: Vec<&str> = s.csi_drivers.items().iter().map(name_of).collect();
    for sc in classes {
        let Some(p) = str_at(sc, "/provisioner").filter(|p| p.ends_with(".csi.ceph.com")) else {
            continue;
        };
        let o = obj("StorageClass", sc);
        let mut problems: Vec<(String, String)> = Vec::new();
        if matches!(s.csi_drivers, Listed::Items(_)) && !csi_drivers.contains(&p) {
            problems.push((
                format!("provisioner {p} is not a registered CSIDriver"),
                "it must equal the name of Rook's Driver CR (`<operator namespace>.cephfs.csi.ceph.com`)".into(),
            ));
        }
        match str_at(sc, "/parameters/clusterID") {
            None => problems.push(("no `clusterID` parameter".into(), "clusterID must be the CephCluster's namespace".into())),
            Some(id) if matches!(s.ceph_clusters, Listed::Items(_)) && !cluster_nss.contains(&id) => problems.push((
                format!("clusterID `{id}` is not the namespace of a CephCluster ({})", if cluster_nss.is_empty() { "none found".to_string() } else { cluster_nss.join(", ") }),
                "clusterID must be the CephCluster's namespace (Rook names its CephConnection after it)".into(),
            )),
            _ => {}
        }
        if p.ends_with(".cephfs.csi.ceph.com")
            && let Some(fs) = str_at(sc, "/parameters/fsName")
            && matches!(s.ceph_filesystems, Listed::Items(_))
            && !fs_names.contains(&fs)
        {
            problems.push((
                format!("fsName `{fs}` is not a CephFilesystem"),
                "fsName must name a CephFilesystem of the cluster".into(),
            ));
        }
        for (name, ns) in csi_secret_params(sc) {
            match s.secret(&ns, &name).map(|x| &x.keys) {
                Some(Some(_)) => {}
                _ => problems.push((
                    format!("secret {ns}/{name} named by its parameters does not exist"),
                    "Rook creates rook-csi-cephfs-provisioner/-node in the CephCluster's namespace; the *-secret-namespace parameters must be that namespace".into(),
                )),
            }
        }
        out.push(if problems.is_empty() {
            f(
                a,
                "storage-class",
                Severity::Ok,
                o,
                format!("provisioner {p}, clusterID, fsName and CSI secrets check out"),
            )
        } else {
            let hint = problems[0].1.clone();
            let mut fi = f(
                a,
                "storage-class",
                Severity::Fail,
                o,
                format!("{} problem(s)", problems.len()),
            );
            for (e, _) in problems {
                fi = fi.evidence(e);
            }
            fi.hint(hint)
        });
    }
}

fn nodes(s: &Snapshot, out: &mut Vec<Finding>) {
    let a = Area::Nodes;
    let Some(nodes) = &s.nodes else {
        return;
    };
    for n in nodes {
        if let Some(e) = &n.error {
            out.push(
                f(
                    a,
                    "node-readiness",
                    Severity::Warn,
                    &n.host,
                    "node readiness not checked",
                )
                .evidence(e.clone())
                .hint("node readiness needs SSH to the host (or pass --no-nodes)"),
            );
            continue;
        }
        for c in &n.checks {
            let sev = match c.status.as_str() {
                "pass" => Severity::Ok,
                "warn" => Severity::Warn,
                _ => Severity::Fail,
            };
            let mut fi = f(
                a,
                "node-readiness",
                sev,
                format!("{} {}", n.host, c.id),
                c.message.clone(),
            );
            if let Some(h) = &c.hint {
                fi = fi.hint(h.clone());
            }
            out.push(fi);
        }
    }
}
