//! Proving a restore: every object a backup holds must be present where the restore put it
//! (its namespace mapped), ConfigMap and Secret contents identical to the source, restored
//! PVCs bound where the cluster can bind them. Contents are compared by SHA-256 per key;
//! neither values nor hashes leave this module, only the names of keys that differ.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use kube::api::{Api, DeleteParams};
use rookery_stack::desired::ObjectRef;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::connect::Cluster;
use crate::error::KubeError;
use crate::resolve::Resolver;
use crate::velero::{BackedUpItem, parse_time};
use crate::wait::get_json;

/// The label Velero puts on every object it restored.
pub const RESTORE_LABEL: &str = "velero.io/restore-name";

/// Kinds Velero never restores (events are history, not state).
const NOT_RESTORED: [(&str, &str); 2] = [("v1", "Event"), ("events.k8s.io/v1", "Event")];

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "camelCase")]
pub enum Outcome {
    /// Present (a kind whose contents are not compared).
    Present,
    /// Present, contents identical to the source.
    Identical,
    /// A PVC present and Bound.
    Bound,
    /// Present, but these parts differ (key names only).
    Differs {
        what: Vec<String>,
    },
    Missing,
    /// A PVC that should bind but did not.
    NotBound {
        phase: String,
    },
    /// Present; a comparison was not possible or not meaningful, and why.
    NotCompared {
        reason: String,
    },
    /// Not expected in the scratch namespace at all.
    Skipped {
        reason: String,
    },
}

impl Outcome {
    pub fn failed(&self) -> bool {
        matches!(
            self,
            Outcome::Differs { .. } | Outcome::Missing | Outcome::NotBound { .. }
        )
    }

    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Present => "present",
            Outcome::Identical => "identical",
            Outcome::Bound => "bound",
            Outcome::Differs { .. } => "DIFFERS",
            Outcome::Missing => "MISSING",
            Outcome::NotBound { .. } => "NOT BOUND",
            Outcome::NotCompared { .. } => "present, not compared",
            Outcome::Skipped { .. } => "skipped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemCheck {
    pub api_version: String,
    pub kind: String,
    /// Where it was backed up from.
    pub source_namespace: Option<String>,
    /// Where the restore should have put it.
    pub namespace: Option<String>,
    pub name: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl ItemCheck {
    pub fn label(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub checks: Vec<ItemCheck>,
}

impl Verification {
    pub fn passed(&self) -> bool {
        !self.checks.iter().any(|c| c.outcome.failed())
    }

    pub fn failures(&self) -> impl Iterator<Item = &ItemCheck> {
        self.checks.iter().filter(|c| c.outcome.failed())
    }

    pub fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.checks.iter().filter(|c| f(&c.outcome)).count()
    }
}

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// How long a restored PVC that should bind may take to bind.
    pub bind_timeout: Duration,
    /// When the backup started: a source object changed after it is not compared (its
    /// difference would be the change, not a bad restore).
    pub backup_started: Option<SystemTime>,
}

fn object_ref(item: &BackedUpItem, namespace: Option<&str>, name: &str) -> ObjectRef {
    ObjectRef {
        api_version: item.api_version.clone(),
        kind: item.kind.clone(),
        name: name.to_string(),
        namespace: namespace.map(str::to_string),
    }
}

/// Check every item of the backup whose namespace the restore mapped (and those namespaces
/// themselves) against the restored copies.
pub async fn verify(
    cluster: &Cluster,
    items: &[BackedUpItem],
    mapping: &BTreeMap<String, String>,
    opts: &VerifyOptions,
) -> Result<Verification, KubeError> {
    let resolver = Resolver::new(cluster.clone());
    let mut checks = Vec::new();
    for item in items {
        let (source_ns, target_ns, name) = match (&item.namespace, item.kind.as_str()) {
            (Some(ns), _) => match mapping.get(ns) {
                Some(t) => (Some(ns.clone()), Some(t.clone()), item.name.clone()),
                None => continue,
            },
            // The namespace object itself is restored under its new name.
            (None, "Namespace") if item.api_version == "v1" => match mapping.get(&item.name) {
                Some(t) => (None, None, t.clone()),
                None => continue,
            },
            // Cluster-scoped objects are not the drill's to check (they are shared).
            (None, _) => continue,
        };
        let mut check = ItemCheck {
            api_version: item.api_version.clone(),
            kind: item.kind.clone(),
            source_namespace: source_ns.clone(),
            namespace: target_ns.clone(),
            name: name.clone(),
            outcome: Outcome::Present,
        };
        if NOT_RESTORED.contains(&(item.api_version.as_str(), item.kind.as_str())) {
            check.outcome = Outcome::Skipped {
                reason: "Velero does not restore events".into(),
            };
            checks.push(check);
            continue;
        }
        let restored = get_json(&resolver, &object_ref(item, target_ns.as_deref(), &name)).await?;
        let Some(restored) = restored else {
            check.outcome = Outcome::Missing;
            checks.push(check);
            continue;
        };
        check.outcome = match (item.api_version.as_str(), item.kind.as_str()) {
            ("v1", "ConfigMap") | ("v1", "Secret") => {
                let source =
                    get_json(&resolver, &object_ref(item, source_ns.as_deref(), &name)).await?;
                compare(item.kind.as_str(), source.as_ref(), &restored, opts)
            }
            ("v1", "PersistentVolumeClaim") => {
                let source =
                    get_json(&resolver, &object_ref(item, source_ns.as_deref(), &name)).await?;
                pvc_outcome(
                    &resolver,
                    item,
                    target_ns.as_deref(),
                    source.as_ref(),
                    restored,
                    opts,
                )
                .await?
            }
            _ => Outcome::Present,
        };
        checks.push(check);
    }
    Ok(Verification { checks })
}

fn compare(kind: &str, source: Option<&Value>, restored: &Value, opts: &VerifyOptions) -> Outcome {
    let Some(source) = source else {
        return Outcome::NotCompared {
            reason: "the source no longer exists".into(),
        };
    };
    if let (Some(changed), Some(started)) = (last_change(source), opts.backup_started)
        && changed > started
    {
        return Outcome::NotCompared {
            reason: "the source changed after the backup".into(),
        };
    }
    let what = content_differences(kind, source, restored);
    if what.is_empty() {
        Outcome::Identical
    } else {
        Outcome::Differs { what }
    }
}

/// The latest time a field manager wrote the object (managedFields), if recorded.
fn last_change(obj: &Value) -> Option<SystemTime> {
    obj.pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .filter_map(|m| m.get("time")?.as_str().and_then(parse_time))
        .max()
}

fn digest(v: &Value) -> [u8; 32] {
    let bytes = match v {
        Value::String(s) => s.as_bytes().to_vec(),
        other => other.to_string().into_bytes(),
    };
    Sha256::digest(&bytes).into()
}

/// Per-key hashes of a map field (`data`, `binaryData`).
fn hashed(obj: &Value, field: &str) -> BTreeMap<String, [u8; 32]> {
    obj.get(field)
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), digest(v))).collect())
        .unwrap_or_default()
}

/// What differs between a source ConfigMap/Secret and its restored copy: key names and
/// where, never values.
pub fn content_differences(kind: &str, source: &Value, restored: &Value) -> Vec<String> {
    let mut what = Vec::new();
    let fields: &[&str] = if kind == "Secret" {
        &["data"]
    } else {
        &["data", "binaryData"]
    };
    if kind == "Secret" {
        let t = |o: &Value| {
            o.get("type")
                .and_then(Value::as_str)
                .unwrap_or("Opaque")
                .to_string()
        };
        if t(source) != t(restored) {
            what.push(format!(
                "type is `{}`, the source's is `{}`",
                t(restored),
                t(source)
            ));
        }
    }
    for field in fields {
        let (a, b) = (hashed(source, field), hashed(restored, field));
        for (k, h) in &a {
            match b.get(k) {
                None => what.push(format!("{field} key `{k}` is missing")),
                Some(h2) if h2 != h => what.push(format!("{field} key `{k}` differs")),
                Some(_) => {}
            }
        }
        for k in b.keys().filter(|k| !a.contains_key(*k)) {
            what.push(format!("{field} key `{k}` is extra"));
        }
    }
    what
}

async fn pvc_outcome(
    resolver: &Resolver,
    item: &BackedUpItem,
    namespace: Option<&str>,
    source: Option<&Value>,
    mut restored: Value,
    opts: &VerifyOptions,
) -> Result<Outcome, KubeError> {
    let phase = |v: &Value| {
        v.pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("Pending")
            .to_string()
    };
    if phase(&restored) == "Bound" {
        return Ok(Outcome::Bound);
    }
    if source.is_some_and(|s| phase(s) != "Bound") {
        return Ok(Outcome::NotCompared {
            reason: format!("{}; the source is not bound either", phase(&restored)),
        });
    }
    let class = restored
        .pointer("/spec/storageClassName")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(class) = &class {
        let sc_ref = ObjectRef {
            api_version: "storage.k8s.io/v1".into(),
            kind: "StorageClass".into(),
            name: class.clone(),
            namespace: None,
        };
        match get_json(resolver, &sc_ref).await? {
            None => {
                return Ok(Outcome::NotCompared {
                    reason: format!(
                        "{}; StorageClass `{class}` does not exist here, so it cannot bind",
                        phase(&restored)
                    ),
                });
            }
            Some(sc)
                if sc.get("volumeBindingMode").and_then(Value::as_str)
                    == Some("WaitForFirstConsumer") =>
            {
                return Ok(Outcome::NotCompared {
                    reason: format!(
                        "{}; StorageClass `{class}` binds on first use (WaitForFirstConsumer)",
                        phase(&restored)
                    ),
                });
            }
            Some(_) => {}
        }
    }
    let started = Instant::now();
    let id = object_ref(item, namespace, &item.name);
    while started.elapsed() < opts.bind_timeout {
        tokio::time::sleep(Duration::from_secs(1)).await;
        match get_json(resolver, &id).await? {
            Some(v) if phase(&v) == "Bound" => return Ok(Outcome::Bound),
            Some(v) => restored = v,
            None => return Ok(Outcome::Missing),
        }
    }
    Ok(Outcome::NotBound {
        phase: format!(
            "{} after {} s",
            phase(&restored),
            opts.bind_timeout.as_secs()
        ),
    })
}

/// Whether a namespace exists.
pub async fn namespace_exists(cluster: &Cluster, name: &str) -> Result<bool, KubeError> {
    let resolver = Resolver::new(cluster.clone());
    Ok(get_json(&resolver, &namespace_ref(name)).await?.is_some())
}

fn namespace_ref(name: &str) -> ObjectRef {
    ObjectRef {
        api_version: "v1".into(),
        kind: "Namespace".into(),
        name: name.to_string(),
        namespace: None,
    }
}

/// Delete the scratch namespaces a restore created. Only a namespace that carries the
/// restore's label, or was created at or after `created_since` (when the caller checked it
/// did not exist before the restore), is touched: Velero creates a mapped namespace without
/// its own label. Returns the ones whose deletion was requested.
pub async fn delete_scratch_namespaces(
    cluster: &Cluster,
    names: &[String],
    restore: &str,
    created_since: Option<SystemTime>,
) -> Result<Vec<String>, KubeError> {
    let resolver = Resolver::new(cluster.clone());
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(cluster.client.clone());
    let mut deleted = Vec::new();
    for name in names {
        let Some(ns) = get_json(&resolver, &namespace_ref(name)).await? else {
            continue;
        };
        let labelled = ns
            .pointer("/metadata/labels")
            .and_then(|l| l.get(RESTORE_LABEL))
            == Some(&Value::from(restore));
        // Kubernetes timestamps have whole seconds: compare at that precision.
        let created = ns
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .and_then(parse_time);
        let new = match (created, created_since) {
            (Some(c), Some(since)) => c + Duration::from_secs(1) > since,
            _ => false,
        };
        if !labelled && !new {
            continue;
        }
        cluster
            .call(
                "deleting",
                format!("Namespace {name}"),
                api.delete(name, &DeleteParams::background()),
            )
            .await?;
        deleted.push(name.clone());
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differences_name_keys_never_values() {
        let a = json!({"type": "Opaque", "data": {"password": "c2VjcmV0", "user": "dQ=="}});
        let b = json!({"type": "Opaque", "data": {"password": "dGFtcGVyZWQ=", "extra": "eA=="}});
        let d = content_differences("Secret", &a, &b);
        assert_eq!(
            d,
            vec![
                "data key `password` differs",
                "data key `user` is missing",
                "data key `extra` is extra"
            ]
        );
        assert!(!d.join(" ").contains("c2VjcmV0"));
        assert!(content_differences("Secret", &a, &a).is_empty());
    }
}
