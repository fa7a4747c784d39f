//! Velero's own objects (group `velero.io/v1`): Backups, Restores, BackupStorageLocations,
//! Schedules and DownloadRequests, read into small views and created the way the `velero` CLI
//! creates them. Field names are Velero v1.18.1's CRDs (`config/crd/v1/bases`); phases and
//! their order are in `shared/notes/rook-velero-facts-2.md` §6.
//!
//! Every request goes through [`Cluster::call`] (the request deadline); every wait has its own
//! overall timeout. Nothing here reads or returns a Secret's value: a BSL's credential is only
//! named (Secret name and key).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde::Serialize;
use serde_json::{Value, json};

use crate::connect::Cluster;
use crate::error::KubeError;

pub const GROUP: &str = "velero.io";
pub const VERSION: &str = "v1";
pub const API_VERSION: &str = "velero.io/v1";
/// The label Velero puts on each Backup a Schedule created.
pub const SCHEDULE_LABEL: &str = "velero.io/schedule-name";

/// Phases after which a Backup or Restore never changes again (Deleting aside).
pub const TERMINAL_PHASES: [&str; 4] =
    ["Completed", "PartiallyFailed", "Failed", "FailedValidation"];

/// The Velero kinds this module reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Backup,
    Restore,
    BackupStorageLocation,
    Schedule,
    DownloadRequest,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Backup => "Backup",
            Kind::Restore => "Restore",
            Kind::BackupStorageLocation => "BackupStorageLocation",
            Kind::Schedule => "Schedule",
            Kind::DownloadRequest => "DownloadRequest",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Kind::Backup => "backups",
            Kind::Restore => "restores",
            Kind::BackupStorageLocation => "backupstoragelocations",
            Kind::Schedule => "schedules",
            Kind::DownloadRequest => "downloadrequests",
        }
    }

    pub fn resource(self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(GROUP, VERSION, self.name()),
            self.plural(),
        )
    }
}

fn api(cluster: &Cluster, kind: Kind, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(cluster.client.clone(), namespace, &kind.resource())
}

fn label(kind: Kind, namespace: &str, name: &str) -> String {
    if name.is_empty() {
        format!("{} in {namespace}", kind.plural())
    } else {
        format!("{} {namespace}/{name}", kind.name())
    }
}

/// A 404 on a list means the kind is not served: Velero's CRDs are missing.
fn not_served(kind: Kind, namespace: &str, e: KubeError) -> KubeError {
    if e.is_not_found() {
        KubeError::UnknownKind {
            object: label(kind, namespace, ""),
            api_version: API_VERSION.into(),
            kind: kind.name().into(),
        }
    } else {
        e
    }
}

async fn list_json(
    cluster: &Cluster,
    kind: Kind,
    namespace: &str,
) -> Result<Vec<Value>, KubeError> {
    let list = cluster
        .call(
            "listing",
            label(kind, namespace, ""),
            api(cluster, kind, namespace).list(&ListParams::default()),
        )
        .await
        .map_err(|e| not_served(kind, namespace, e))?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|o| serde_json::to_value(o).ok())
        .collect())
}

async fn get_json(
    cluster: &Cluster,
    kind: Kind,
    namespace: &str,
    name: &str,
) -> Result<Option<Value>, KubeError> {
    let obj = cluster
        .call(
            "reading",
            label(kind, namespace, name),
            api(cluster, kind, namespace).get_opt(name),
        )
        .await
        .map_err(|e| not_served(kind, namespace, e))?;
    Ok(obj.and_then(|o| serde_json::to_value(o).ok()))
}

async fn create_json(
    cluster: &Cluster,
    kind: Kind,
    namespace: &str,
    obj: Value,
) -> Result<Value, KubeError> {
    let name = str_at(&obj, "/metadata/name").unwrap_or_default();
    let dynamic: DynamicObject = serde_json::from_value(obj).map_err(|e| KubeError::ApiStatus {
        what: "building",
        object: label(kind, namespace, &name),
        code: 0,
        reason: "Invalid".into(),
        message: e.to_string(),
    })?;
    let created = cluster
        .call(
            "creating",
            label(kind, namespace, &name),
            api(cluster, kind, namespace).create(&PostParams::default(), &dynamic),
        )
        .await
        .map_err(|e| not_served(kind, namespace, e))?;
    Ok(serde_json::to_value(created).unwrap_or(Value::Null))
}

fn str_at(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn int_at(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

fn strings_at(v: &Value, pointer: &str) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn map_at(v: &Value, pointer: &str) -> BTreeMap<String, String> {
    v.pointer(pointer)
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// An RFC 3339 timestamp as the API server writes it (`2026-12-06T03:47:10Z`).
pub fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok()
}

/// A Backup as `backup list` / `describe` / `status` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupView {
    pub name: String,
    pub namespace: String,
    /// `status.phase`; `None` until Velero has seen the Backup.
    pub phase: Option<String>,
    pub storage_location: Option<String>,
    pub included_namespaces: Vec<String>,
    pub ttl: Option<String>,
    pub created: Option<String>,
    pub start_timestamp: Option<String>,
    pub completion_timestamp: Option<String>,
    pub expiration: Option<String>,
    /// `status.progress.itemsBackedUp`.
    pub items_backed_up: Option<i64>,
    /// `status.progress.totalItems`.
    pub total_items: Option<i64>,
    pub errors: i64,
    pub warnings: i64,
    pub failure_reason: Option<String>,
    pub validation_errors: Vec<String>,
    /// The Schedule that created it (label `velero.io/schedule-name`).
    pub schedule: Option<String>,
    pub labels: BTreeMap<String, String>,
}

impl BackupView {
    pub fn from_json(v: &Value) -> BackupView {
        let labels = map_at(v, "/metadata/labels");
        BackupView {
            name: str_at(v, "/metadata/name").unwrap_or_default(),
            namespace: str_at(v, "/metadata/namespace").unwrap_or_default(),
            phase: str_at(v, "/status/phase"),
            storage_location: str_at(v, "/spec/storageLocation"),
            included_namespaces: strings_at(v, "/spec/includedNamespaces"),
            ttl: str_at(v, "/spec/ttl"),
            created: str_at(v, "/metadata/creationTimestamp"),
            start_timestamp: str_at(v, "/status/startTimestamp"),
            completion_timestamp: str_at(v, "/status/completionTimestamp"),
            expiration: str_at(v, "/status/expiration"),
            items_backed_up: int_at(v, "/status/progress/itemsBackedUp"),
            total_items: int_at(v, "/status/progress/totalItems"),
            errors: int_at(v, "/status/errors").unwrap_or(0),
            warnings: int_at(v, "/status/warnings").unwrap_or(0),
            failure_reason: str_at(v, "/status/failureReason"),
            validation_errors: strings_at(v, "/status/validationErrors"),
            schedule: labels.get(SCHEDULE_LABEL).cloned(),
            labels,
        }
    }
}

/// What a Backup and a Restore report the same way (their `status.phase`, `errors`,
/// `warnings`, `failureReason`, `validationErrors`), and the judgements made from it.
pub trait Outcome {
    fn phase(&self) -> Option<&str>;
    fn failure_reason(&self) -> Option<&str>;
    fn validation_errors(&self) -> &[String];
    /// (errors, warnings)
    fn counts(&self) -> (i64, i64);

    /// The phase, `New` while Velero has written none.
    fn phase_or_new(&self) -> &str {
        self.phase().unwrap_or("New")
    }

    fn is_terminal(&self) -> bool {
        TERMINAL_PHASES.contains(&self.phase_or_new())
    }

    fn is_completed(&self) -> bool {
        self.phase() == Some("Completed")
    }

    /// Velero's own words for one that did not complete: failure reason, validation errors,
    /// or the error/warning counts.
    fn problem(&self) -> Option<String> {
        if self.is_completed() {
            return None;
        }
        let mut parts = Vec::new();
        if let Some(r) = self.failure_reason() {
            parts.push(r.to_string());
        }
        if !self.validation_errors().is_empty() {
            parts.push(format!(
                "validation errors: {}",
                self.validation_errors().join("; ")
            ));
        }
        let (errors, warnings) = self.counts();
        if errors > 0 || warnings > 0 {
            parts.push(format!("{errors} error(s), {warnings} warning(s)"));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

macro_rules! outcome_of {
    ($view:ty) => {
        impl Outcome for $view {
            fn phase(&self) -> Option<&str> {
                self.phase.as_deref()
            }
            fn failure_reason(&self) -> Option<&str> {
                self.failure_reason.as_deref()
            }
            fn validation_errors(&self) -> &[String] {
                &self.validation_errors
            }
            fn counts(&self) -> (i64, i64) {
                (self.errors, self.warnings)
            }
        }
    };
}
outcome_of!(BackupView);
outcome_of!(RestoreView);

/// A Restore.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreView {
    pub name: String,
    pub namespace: String,
    pub backup_name: Option<String>,
    pub schedule_name: Option<String>,
    pub namespace_mapping: BTreeMap<String, String>,
    pub phase: Option<String>,
    pub start_timestamp: Option<String>,
    pub completion_timestamp: Option<String>,
    /// `status.progress.itemsRestored`.
    pub items_restored: Option<i64>,
    pub total_items: Option<i64>,
    pub errors: i64,
    pub warnings: i64,
    pub failure_reason: Option<String>,
    pub validation_errors: Vec<String>,
}

impl RestoreView {
    pub fn from_json(v: &Value) -> RestoreView {
        RestoreView {
            name: str_at(v, "/metadata/name").unwrap_or_default(),
            namespace: str_at(v, "/metadata/namespace").unwrap_or_default(),
            backup_name: str_at(v, "/spec/backupName"),
            schedule_name: str_at(v, "/spec/scheduleName"),
            namespace_mapping: map_at(v, "/spec/namespaceMapping"),
            phase: str_at(v, "/status/phase"),
            start_timestamp: str_at(v, "/status/startTimestamp"),
            completion_timestamp: str_at(v, "/status/completionTimestamp"),
            items_restored: int_at(v, "/status/progress/itemsRestored"),
            total_items: int_at(v, "/status/progress/totalItems"),
            errors: int_at(v, "/status/errors").unwrap_or(0),
            warnings: int_at(v, "/status/warnings").unwrap_or(0),
            failure_reason: str_at(v, "/status/failureReason"),
            validation_errors: strings_at(v, "/status/validationErrors"),
        }
    }
}

/// A BackupStorageLocation. The credential is named, never read.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BslView {
    pub name: String,
    pub namespace: String,
    /// `Available` / `Unavailable`; `None` before the first validation.
    pub phase: Option<String>,
    pub last_validation_time: Option<String>,
    /// Velero's (sanitized) validation error while Unavailable.
    pub message: Option<String>,
    pub provider: Option<String>,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    /// `spec.credential.name`: the Secret holding the credentials (else Velero's own
    /// credentials file is used).
    pub credential_secret: Option<String>,
    /// `spec.credential.key`.
    pub credential_key: Option<String>,
    pub default: bool,
    pub access_mode: Option<String>,
    /// `spec.config` (region, s3Url, ...): settings, not secrets.
    pub config: BTreeMap<String, String>,
    pub validation_frequency: Option<String>,
}

impl BslView {
    pub fn from_json(v: &Value) -> BslView {
        BslView {
            name: str_at(v, "/metadata/name").unwrap_or_default(),
            namespace: str_at(v, "/metadata/namespace").unwrap_or_default(),
            phase: str_at(v, "/status/phase"),
            last_validation_time: str_at(v, "/status/lastValidationTime"),
            message: str_at(v, "/status/message"),
            provider: str_at(v, "/spec/provider"),
            bucket: str_at(v, "/spec/objectStorage/bucket"),
            prefix: str_at(v, "/spec/objectStorage/prefix"),
            credential_secret: str_at(v, "/spec/credential/name"),
            credential_key: str_at(v, "/spec/credential/key"),
            default: v
                .pointer("/spec/default")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            access_mode: str_at(v, "/spec/accessMode"),
            config: map_at(v, "/spec/config"),
            validation_frequency: str_at(v, "/spec/validationFrequency"),
        }
    }

    pub fn is_available(&self) -> bool {
        self.phase.as_deref() == Some("Available")
    }
}

/// A Schedule.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleView {
    pub name: String,
    pub namespace: String,
    /// `spec.schedule`: the cron expression.
    pub schedule: Option<String>,
    /// `New` / `Enabled` / `FailedValidation`.
    pub phase: Option<String>,
    /// `status.lastBackup`: when the last backup was created.
    pub last_backup: Option<String>,
    pub last_skipped: Option<String>,
    pub paused: bool,
    pub validation_errors: Vec<String>,
    pub included_namespaces: Vec<String>,
    pub storage_location: Option<String>,
    pub ttl: Option<String>,
}

impl ScheduleView {
    pub fn from_json(v: &Value) -> ScheduleView {
        ScheduleView {
            name: str_at(v, "/metadata/name").unwrap_or_default(),
            namespace: str_at(v, "/metadata/namespace").unwrap_or_default(),
            schedule: str_at(v, "/spec/schedule"),
            phase: str_at(v, "/status/phase"),
            last_backup: str_at(v, "/status/lastBackup"),
            last_skipped: str_at(v, "/status/lastSkipped"),
            paused: v
                .pointer("/spec/paused")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            validation_errors: strings_at(v, "/status/validationErrors"),
            included_namespaces: strings_at(v, "/spec/template/includedNamespaces"),
            storage_location: str_at(v, "/spec/template/storageLocation"),
            ttl: str_at(v, "/spec/template/ttl"),
        }
    }
}

/// Backups in Velero's namespace, oldest first (by creation).
pub async fn list_backups(
    cluster: &Cluster,
    namespace: &str,
) -> Result<Vec<BackupView>, KubeError> {
    let mut v: Vec<BackupView> = list_json(cluster, Kind::Backup, namespace)
        .await?
        .iter()
        .map(BackupView::from_json)
        .collect();
    v.sort_by(|a, b| (&a.created, &a.name).cmp(&(&b.created, &b.name)));
    Ok(v)
}

pub async fn get_backup(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
) -> Result<Option<BackupView>, KubeError> {
    Ok(get_json(cluster, Kind::Backup, namespace, name)
        .await?
        .map(|v| BackupView::from_json(&v)))
}

/// Restores, oldest first.
pub async fn list_restores(
    cluster: &Cluster,
    namespace: &str,
) -> Result<Vec<RestoreView>, KubeError> {
    let raw = list_json(cluster, Kind::Restore, namespace).await?;
    let mut v: Vec<(Option<String>, RestoreView)> = raw
        .iter()
        .map(|r| {
            (
                str_at(r, "/metadata/creationTimestamp"),
                RestoreView::from_json(r),
            )
        })
        .collect();
    v.sort_by(|a, b| (&a.0, &a.1.name).cmp(&(&b.0, &b.1.name)));
    Ok(v.into_iter().map(|(_, r)| r).collect())
}

pub async fn get_restore(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
) -> Result<Option<RestoreView>, KubeError> {
    Ok(get_json(cluster, Kind::Restore, namespace, name)
        .await?
        .map(|v| RestoreView::from_json(&v)))
}

pub async fn list_bsls(cluster: &Cluster, namespace: &str) -> Result<Vec<BslView>, KubeError> {
    let mut v: Vec<BslView> = list_json(cluster, Kind::BackupStorageLocation, namespace)
        .await?
        .iter()
        .map(BslView::from_json)
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(v)
}

pub async fn list_schedules(
    cluster: &Cluster,
    namespace: &str,
) -> Result<Vec<ScheduleView>, KubeError> {
    let mut v: Vec<ScheduleView> = list_json(cluster, Kind::Schedule, namespace)
        .await?
        .iter()
        .map(ScheduleView::from_json)
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(v)
}

pub async fn get_schedule(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
) -> Result<Option<ScheduleView>, KubeError> {
    Ok(get_json(cluster, Kind::Schedule, namespace, name)
        .await?
        .map(|v| ScheduleView::from_json(&v)))
}

/// The newest `Completed` backup a Schedule created (by completion time).
pub async fn newest_completed_backup_of_schedule(
    cluster: &Cluster,
    namespace: &str,
    schedule: &str,
) -> Result<Option<BackupView>, KubeError> {
    let mut backups: Vec<BackupView> = list_backups(cluster, namespace)
        .await?
        .into_iter()
        .filter(|b| b.schedule.as_deref() == Some(schedule) && b.is_completed())
        .collect();
    backups.sort_by(|a, b| a.completion_timestamp.cmp(&b.completion_timestamp));
    Ok(backups.pop())
}

/// What to back up (the `velero backup create` flags Rookery offers).
#[derive(Debug, Clone, Default)]
pub struct BackupRequest {
    pub name: String,
    /// Empty: every namespace.
    pub included_namespaces: Vec<String>,
    /// Empty: Velero's default location.
    pub storage_location: Option<String>,
    /// A Go duration (`720h0m0s`); empty: Velero's default (30 days).
    pub ttl: Option<String>,
    /// `false` for resource-only backups; `None` leaves Velero's default.
    pub snapshot_volumes: Option<bool>,
    pub labels: BTreeMap<String, String>,
}

pub fn backup_object(namespace: &str, req: &BackupRequest) -> Value {
    let mut spec = serde_json::Map::new();
    if !req.included_namespaces.is_empty() {
        spec.insert("includedNamespaces".into(), json!(req.included_namespaces));
    }
    if let Some(l) = &req.storage_location {
        spec.insert("storageLocation".into(), json!(l));
    }
    if let Some(t) = &req.ttl {
        spec.insert("ttl".into(), json!(t));
    }
    if let Some(s) = req.snapshot_volumes {
        spec.insert("snapshotVolumes".into(), json!(s));
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": "Backup",
        "metadata": {"name": req.name, "namespace": namespace, "labels": req.labels},
        "spec": spec,
    })
}

pub async fn create_backup(
    cluster: &Cluster,
    namespace: &str,
    req: &BackupRequest,
) -> Result<BackupView, KubeError> {
    let v = create_json(
        cluster,
        Kind::Backup,
        namespace,
        backup_object(namespace, req),
    )
    .await?;
    Ok(BackupView::from_json(&v))
}

/// What to restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreRequest {
    pub name: String,
    pub backup_name: String,
    /// Empty: every namespace in the backup.
    pub included_namespaces: Vec<String>,
    /// Source namespace → target namespace.
    pub namespace_mapping: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

pub fn restore_object(namespace: &str, req: &RestoreRequest) -> Value {
    let mut spec = serde_json::Map::new();
    spec.insert("backupName".into(), json!(req.backup_name));
    if !req.included_namespaces.is_empty() {
        spec.insert("includedNamespaces".into(), json!(req.included_namespaces));
    }
    if !req.namespace_mapping.is_empty() {
        spec.insert("namespaceMapping".into(), json!(req.namespace_mapping));
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": "Restore",
        "metadata": {"name": req.name, "namespace": namespace, "labels": req.labels},
        "spec": spec,
    })
}

pub async fn create_restore(
    cluster: &Cluster,
    namespace: &str,
    req: &RestoreRequest,
) -> Result<RestoreView, KubeError> {
    let v = create_json(
        cluster,
        Kind::Restore,
        namespace,
        restore_object(namespace, req),
    )
    .await?;
    Ok(RestoreView::from_json(&v))
}

/// How long a Backup or Restore may sit without a phase before the wait says Velero has not
/// picked it up (Velero is not running, or watches another namespace).
const NOT_PICKED_UP_AFTER: Duration = Duration::from_secs(10);

/// Watch one Backup or Restore until it reaches a terminal phase, calling `progress` on every
/// change (and with a note when Velero has not picked it up). Returns the last object seen;
/// a phase other than `Completed` is *not* an error here (the caller shows Velero's reasons).
async fn wait_terminal(
    cluster: &Cluster,
    kind: Kind,
    namespace: &str,
    name: &str,
    timeout: Duration,
    progress: &mut (dyn FnMut(&Value, Option<&str>) + Send),
) -> Result<Value, KubeError> {
    let started = Instant::now();
    let object = label(kind, namespace, name);
    let mut last = get_json(cluster, kind, namespace, name)
        .await?
        .ok_or_else(|| KubeError::ApiStatus {
            what: "reading",
            object: object.clone(),
            code: 404,
            reason: "NotFound".into(),
            message: "not found".into(),
        })?;
    let terminal = |v: &Value| {
        str_at(v, "/status/phase").is_some_and(|p| TERMINAL_PHASES.contains(&p.as_str()))
    };
    progress(&last, None);
    if terminal(&last) {
        return Ok(last);
    }
    let mut watch = watcher::watch_object(api(cluster, kind, namespace), name)
        .default_backoff()
        .boxed();
    let mut warned = false;
    loop {
        let left = timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(KubeError::VeleroTimeout {
                object,
                after: timeout,
                last: str_at(&last, "/status/phase").unwrap_or_else(|| "New".into()),
            });
        }
        // Wake at least every second so "not picked up" is said on time.
        match tokio::time::timeout(left.min(Duration::from_secs(1)), watch.next()).await {
            Ok(Some(Ok(Some(obj)))) => {
                if let Ok(v) = serde_json::to_value(obj) {
                    last = v;
                    progress(&last, None);
                    if terminal(&last) {
                        return Ok(last);
                    }
                }
            }
            Ok(Some(Ok(None))) => {
                return Err(KubeError::ApiStatus {
                    what: "waiting for",
                    object,
                    code: 404,
                    reason: "NotFound".into(),
                    message: "it was deleted while waiting".into(),
                });
            }
            // A broken watch is re-established by the backoff; the deadline still holds.
            Ok(Some(Err(_))) | Err(_) => {}
            Ok(None) => {
                watch = watcher::watch_object(api(cluster, kind, namespace), name)
                    .default_backoff()
                    .boxed();
            }
        }
        if !warned
            && str_at(&last, "/status/phase").is_none()
            && started.elapsed() >= NOT_PICKED_UP_AFTER
        {
            warned = true;
            progress(
                &last,
                Some(
                    "Velero has not picked it up yet: is the Velero server running and watching this namespace?",
                ),
            );
        }
    }
}

/// Wait for a Backup to reach a terminal phase (see [`TERMINAL_PHASES`]).
pub async fn wait_backup(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    timeout: Duration,
    progress: &mut (dyn FnMut(&BackupView, Option<&str>) + Send),
) -> Result<BackupView, KubeError> {
    let v = wait_terminal(
        cluster,
        Kind::Backup,
        namespace,
        name,
        timeout,
        &mut |v, note| progress(&BackupView::from_json(v), note),
    )
    .await?;
    Ok(BackupView::from_json(&v))
}

/// Wait for a Restore to reach a terminal phase.
pub async fn wait_restore(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    timeout: Duration,
    progress: &mut (dyn FnMut(&RestoreView, Option<&str>) + Send),
) -> Result<RestoreView, KubeError> {
    let v = wait_terminal(
        cluster,
        Kind::Restore,
        namespace,
        name,
        timeout,
        &mut |v, note| progress(&RestoreView::from_json(v), note),
    )
    .await?;
    Ok(RestoreView::from_json(&v))
}

/// The terminal outcome as an error when it is not `Completed`: Velero's failure reason,
/// validation errors and counts.
pub fn backup_outcome(b: &BackupView) -> Result<(), KubeError> {
    if b.is_completed() {
        return Ok(());
    }
    Err(KubeError::VeleroFailed {
        object: format!("Backup {}/{}", b.namespace, b.name),
        phase: b.phase_or_new().to_string(),
        reason: b
            .problem()
            .unwrap_or_else(|| "Velero gave no reason".into()),
    })
}

pub fn restore_outcome(r: &RestoreView) -> Result<(), KubeError> {
    if r.is_completed() {
        return Ok(());
    }
    Err(KubeError::VeleroFailed {
        object: format!("Restore {}/{}", r.namespace, r.name),
        phase: r.phase_or_new().to_string(),
        reason: r
            .problem()
            .unwrap_or_else(|| "Velero gave no reason".into()),
    })
}

/// What a DownloadRequest can fetch (`spec.target.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadKind {
    BackupResourceList,
    BackupResults,
    RestoreResults,
    RestoreResourceList,
}

impl DownloadKind {
    fn name(self) -> &'static str {
        match self {
            DownloadKind::BackupResourceList => "BackupResourceList",
            DownloadKind::BackupResults => "BackupResults",
            DownloadKind::RestoreResults => "RestoreResults",
            DownloadKind::RestoreResourceList => "RestoreResourceList",
        }
    }
}

/// A pre-signed URL to a file Velero stored in the bucket (as `velero backup describe
/// --details` gets it): a DownloadRequest is created and Velero answers with
/// `status.downloadURL`. The URL carries a signature: never print or log it.
pub async fn download_url(
    cluster: &Cluster,
    namespace: &str,
    kind: DownloadKind,
    target: &str,
    timeout: Duration,
) -> Result<String, KubeError> {
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let name = format!("{}-{stamp}", truncate(target, 40));
    let obj = json!({
        "apiVersion": API_VERSION,
        "kind": "DownloadRequest",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"target": {"kind": kind.name(), "name": target}},
    });
    create_json(cluster, Kind::DownloadRequest, namespace, obj).await?;
    let mut url = None;
    let result = wait_terminal_download(cluster, namespace, &name, timeout, &mut url).await;
    // Velero deletes processed requests when they expire; ours goes at once.
    let _ = cluster
        .call(
            "deleting",
            label(Kind::DownloadRequest, namespace, &name),
            api(cluster, Kind::DownloadRequest, namespace).delete(&name, &Default::default()),
        )
        .await;
    result?;
    url.ok_or_else(|| KubeError::VeleroTimeout {
        object: label(Kind::DownloadRequest, namespace, &name),
        after: timeout,
        last: "no downloadURL".into(),
    })
}

async fn wait_terminal_download(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    timeout: Duration,
    url: &mut Option<String>,
) -> Result<(), KubeError> {
    let started = Instant::now();
    loop {
        if let Some(v) = get_json(cluster, Kind::DownloadRequest, namespace, name).await?
            && let Some(u) = str_at(&v, "/status/downloadURL")
        {
            *url = Some(u);
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(KubeError::VeleroTimeout {
                object: label(Kind::DownloadRequest, namespace, name),
                after: timeout,
                last: "Velero wrote no downloadURL (is the Velero server running?)".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => s[..i].trim_end_matches('-'),
        None => s,
    }
}

/// The objects a backup holds: Velero's resource list, fetched through a DownloadRequest and
/// its pre-signed URL (curl, bounded in time and size; the URL is passed on stdin so it is
/// never in a process list, and never shown).
pub async fn fetch_resource_list(
    cluster: &Cluster,
    namespace: &str,
    backup: &str,
    timeout: Duration,
) -> Result<Vec<BackedUpItem>, KubeError> {
    let url = download_url(
        cluster,
        namespace,
        DownloadKind::BackupResourceList,
        backup,
        timeout,
    )
    .await?;
    let object = format!("the resource list of Backup {namespace}/{backup}");
    let fail = |reason: String| KubeError::VeleroFailed {
        object: object.clone(),
        phase: "not downloaded".into(),
        reason,
    };
    let bytes = curl_get(&url, timeout).await.map_err(fail)?;
    parse_resource_list(&bytes).map_err(fail)
}

async fn curl_get(url: &str, timeout: Duration) -> Result<Vec<u8>, String> {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new("curl")
        .args([
            "-fsS",
            "--connect-timeout",
            "10",
            "--max-filesize",
            "67108864",
        ])
        .arg("--max-time")
        .arg(timeout.as_secs().max(1).to_string())
        .args(["--config", "-"])
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run curl: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let line = format!(
            "url = \"{}\"\n",
            url.replace('\\', "\\\\").replace('"', "\\\"")
        );
        stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("cannot talk to curl: {e}"))?;
    }
    let out = tokio::time::timeout(timeout + Duration::from_secs(5), child.wait_with_output())
        .await
        .map_err(|_| {
            format!(
                "no answer from the object store within {} s",
                timeout.as_secs()
            )
        })?
        .map_err(|e| format!("curl: {e}"))?;
    if !out.status.success() {
        // curl's message names the host at most; a query string (the signature) is cut.
        let msg = String::from_utf8_lossy(&out.stderr)
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or_default()
            .split('?')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        return Err(format!(
            "downloading from the object store failed (curl exit {}): {msg}; the object store \
             must be reachable from here at the address Velero signs (the location's \
             `publicUrl`, else `s3Url`)",
            out.status.code().unwrap_or(-1)
        ));
    }
    Ok(out.stdout)
}

/// Velero's per-item errors and warnings of a Backup or Restore (its `BackupResults` /
/// `RestoreResults` file: gzip of `{"errors": {...}, "warnings": {...}}`, each grouping
/// messages under `velero`, `cluster` and `namespaces.<ns>`), as
/// `velero backup describe --details` shows them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Results {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

pub async fn fetch_results(
    cluster: &Cluster,
    namespace: &str,
    kind: Kind,
    name: &str,
    timeout: Duration,
) -> Result<Results, KubeError> {
    let target = if kind == Kind::Restore {
        DownloadKind::RestoreResults
    } else {
        DownloadKind::BackupResults
    };
    let url = download_url(cluster, namespace, target, name, timeout).await?;
    let object = format!("the results of {} {namespace}/{name}", kind.name());
    let fail = |reason: String| KubeError::VeleroFailed {
        object: object.clone(),
        phase: "not downloaded".into(),
        reason,
    };
    let bytes = curl_get(&url, timeout).await.map_err(fail)?;
    parse_results(&bytes).map_err(fail)
}

pub fn parse_results(gz: &[u8]) -> Result<Results, String> {
    use std::io::Read as _;
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .take(64 << 20)
        .read_to_end(&mut json)
        .map_err(|e| format!("not gzip: {e}"))?;
    let v: Value = serde_json::from_slice(&json).map_err(|e| format!("not JSON: {e}"))?;
    let collect = |part: &Value| {
        let mut out = Vec::new();
        for scope in ["velero", "cluster"] {
            for m in part
                .get(scope)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(m) = m.as_str() {
                    out.push(m.trim().to_string());
                }
            }
        }
        if let Some(nss) = part.get("namespaces").and_then(Value::as_object) {
            for (ns, msgs) in nss {
                for m in msgs.as_array().into_iter().flatten() {
                    if let Some(m) = m.as_str() {
                        out.push(format!("namespace {ns}: {}", m.trim()));
                    }
                }
            }
        }
        out
    };
    Ok(Results {
        errors: collect(&v["errors"]),
        warnings: collect(&v["warnings"]),
    })
}

/// One object a backup holds, from its resource list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackedUpItem {
    /// `v1`, `apps/v1`, ...
    pub api_version: String,
    pub kind: String,
    /// `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
}

/// Velero's `<backup>-resource-list.json.gz` (gzip of a JSON object mapping
/// `group/version/Kind` to `namespace/name` entries, as `velero backup describe --details`
/// prints it).
pub fn parse_resource_list(gz: &[u8]) -> Result<Vec<BackedUpItem>, String> {
    use std::io::Read as _;
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .take(64 << 20)
        .read_to_end(&mut json)
        .map_err(|e| format!("not gzip: {e}"))?;
    let map: BTreeMap<String, Vec<String>> =
        serde_json::from_slice(&json).map_err(|e| format!("not a resource list: {e}"))?;
    let mut items = Vec::new();
    for (gvk, names) in map {
        let Some((api_version, kind)) = gvk.rsplit_once('/') else {
            return Err(format!("unexpected resource key `{gvk}`"));
        };
        for n in names {
            let (namespace, name) = match n.split_once('/') {
                Some((ns, name)) => (Some(ns.to_string()), name.to_string()),
                None => (None, n),
            };
            items.push(BackedUpItem {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
                namespace,
                name,
            });
        }
    }
    items.sort();
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_view_reads_velero_fields() {
        let v = json!({
            "metadata": {"name": "b1", "namespace": "velero",
                         "labels": {"velero.io/schedule-name": "daily"}},
            "spec": {"storageLocation": "default", "includedNamespaces": ["shop"]},
            "status": {"phase": "PartiallyFailed", "progress": {"itemsBackedUp": 3, "totalItems": 4},
                       "errors": 1, "warnings": 2, "failureReason": "boom",
                       "expiration": "2026-12-07T00:00:00Z"}
        });
        let b = BackupView::from_json(&v);
        assert_eq!(b.schedule.as_deref(), Some("daily"));
        assert_eq!((b.items_backed_up, b.total_items), (Some(3), Some(4)));
        assert!(b.is_terminal() && !b.is_completed());
        assert_eq!(
            b.problem().as_deref(),
            Some("boom; 1 error(s), 2 warning(s)")
        );
    }

    #[test]
    fn resource_list_round_trip() {
        use std::io::Write as _;
        let raw = br#"{"v1/ConfigMap":["shop/a","shop/b"],"v1/Namespace":["shop"]}"#;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(raw).unwrap_or_default();
        let gz = enc.finish().unwrap_or_default();
        let items = parse_resource_list(&gz).unwrap_or_default();
        assert_eq!(items.len(), 3);
        assert_eq!(items[2].kind, "Namespace");
        assert_eq!(items[2].namespace, None);
    }

    #[test]
    fn timestamps_parse() {
        assert!(parse_time("2026-12-06T03:47:10Z").is_some());
    }
}
