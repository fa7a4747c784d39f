//! `diff`: what `apply` would change, object by object, from a server-side dry run of exactly
//! the request `apply` would send, compared with the live object. Fields the server manages
//! (managedFields, resourceVersion, generation, uid, timestamps, status) are left out, and
//! Secret values are never shown — only whether each one would change. Objects whose kind or
//! namespace does not exist yet cannot be dry-run: they are listed as "would be created
//! (not checked by the server yet)", as kubectl diff, Flux and Argo CD also cannot check them.

use std::collections::BTreeSet;

use futures::stream::{self, StreamExt};
use rookery_stack::desired::{DesiredObject, DesiredState, ObjectRef, Stage, redacted};
use serde::Serialize;
use serde_json::Value;

use crate::connect::Cluster;
use crate::engine::{self, PruneCandidate};
use crate::error::KubeError;
use crate::events::Silent;
use crate::resolve::{Resolver, gvk_of};
use crate::wait::get_json;
use crate::{applyset, engine::applyset_of};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase", tag = "change")]
pub enum ObjectDiff {
    /// New on the cluster. `checked`: the server dry-ran it.
    Create {
        checked: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        unchecked_because: Option<String>,
    },
    /// Exists and would change; `diff` is a unified diff of the YAML (Secret values masked).
    Update {
        diff: String,
    },
    Unchanged,
    /// The server would refuse it (conflict, invalid, immutable field).
    Refused {
        reason: String,
    },
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffEntry {
    pub stage: Stage,
    pub object: ObjectRef,
    #[serde(flatten)]
    pub diff: ObjectDiff,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffReport {
    pub objects: Vec<DiffEntry>,
    /// Members of an earlier apply the stack no longer has.
    pub prune: Vec<PruneCandidate>,
}

impl DiffReport {
    pub fn has_changes(&self) -> bool {
        !self.prune.is_empty()
            || self
                .objects
                .iter()
                .any(|e| !matches!(e.diff, ObjectDiff::Unchanged))
    }

    pub fn refused(&self) -> usize {
        self.objects
            .iter()
            .filter(|e| matches!(e.diff, ObjectDiff::Refused { .. }))
            .count()
    }
}

#[derive(Debug, Clone)]
pub struct DiffOptions {
    pub force_conflicts: bool,
    pub secrets_base: std::path::PathBuf,
    pub concurrency: usize,
    /// Only these stages (a playbook `storage_stack` task in check mode); all when `None`.
    /// What a prune would delete is listed only for the whole stack.
    pub stages: Option<Vec<Stage>>,
}

/// Drop what the server manages, so only what a user or Rookery set is compared.
pub fn normalize(mut v: Value) -> Value {
    if let Some(map) = v.as_object_mut() {
        map.remove("status");
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in [
                "managedFields",
                "resourceVersion",
                "generation",
                "uid",
                "creationTimestamp",
                "selfLink",
            ] {
                meta.remove(k);
            }
            if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                a.remove(applyset::LAST_RUN);
                if a.is_empty() {
                    meta.remove("annotations");
                }
            }
        }
    }
    v
}

/// Replace Secret values with markers that only say whether each changed.
fn mask_secret_values(live: &mut Value, want: &mut Value) {
    for field in ["data", "stringData"] {
        let live_map = live.get(field).and_then(Value::as_object).cloned();
        let keys: BTreeSet<String> = live_map
            .iter()
            .flat_map(|m| m.keys().cloned())
            .chain(
                want.get(field)
                    .and_then(Value::as_object)
                    .into_iter()
                    .flat_map(|m| m.keys().cloned()),
            )
            .collect();
        for k in keys {
            let old = live_map.as_ref().and_then(|m| m.get(&k)).cloned();
            let new = want.get(field).and_then(|m| m.get(&k)).cloned();
            let same = old == new;
            if let Some(slot) = live.get_mut(field).and_then(|m| m.get_mut(&k)) {
                *slot = Value::String("<hidden>".into());
            }
            if let Some(slot) = want.get_mut(field).and_then(|m| m.get_mut(&k)) {
                *slot = Value::String(
                    if same {
                        "<hidden>"
                    } else {
                        "<hidden, changed>"
                    }
                    .into(),
                );
            }
        }
    }
}

/// A unified diff of two objects' YAML, or None when equal.
pub fn yaml_diff(live: &Value, want: &Value) -> Option<String> {
    if live == want {
        return None;
    }
    let a = rookery_yaml::to_string(live);
    let b = rookery_yaml::to_string(want);
    if a == b {
        return None;
    }
    let diff = similar::TextDiff::from_lines(&a, &b);
    Some(
        diff.unified_diff()
            .context_radius(3)
            .header("live", "after apply")
            .to_string(),
    )
}

/// Compare one object: live copy vs what the server would store.
pub fn compare(is_secret: bool, live: Value, dry_run: Value) -> ObjectDiff {
    let mut live = normalize(live);
    let mut want = normalize(dry_run);
    if is_secret {
        mask_secret_values(&mut live, &mut want);
    }
    match yaml_diff(&live, &want) {
        None => ObjectDiff::Unchanged,
        Some(diff) => ObjectDiff::Update { diff },
    }
}

async fn diff_one(
    resolver: &Resolver,
    o: &DesiredObject,
    set_id: &str,
    opts: &DiffOptions,
    created_namespaces: &BTreeSet<String>,
) -> Result<DiffEntry, KubeError> {
    let entry = |diff| DiffEntry {
        stage: o.stage,
        object: o.id.clone(),
        diff,
    };
    if resolver.resolve(&gvk_of(&o.id)).await?.is_none() {
        return Ok(entry(ObjectDiff::Create {
            checked: false,
            unchecked_because: Some(match &o.skip_unless_served {
                // No CRD of the stack provides it: apply will skip it, not create it.
                Some(hint) => format!(
                    "the cluster does not serve {}, so apply skips it: {hint}",
                    o.id.kind
                ),
                None => format!(
                    "the cluster does not serve {} yet (its CRD is applied first)",
                    o.id.kind
                ),
            }),
        }));
    }
    if let Some(ns) = &o.id.namespace
        && created_namespaces.contains(ns)
    {
        return Ok(entry(ObjectDiff::Create {
            checked: false,
            unchecked_because: Some(format!("namespace {ns} does not exist yet")),
        }));
    }
    let mut body = o
        .resolved_body(&opts.secrets_base)
        .map_err(|source| KubeError::Credential {
            object: o.id.to_string(),
            source: Box::new(source),
        })?;
    applyset::label_member(&mut body, set_id);
    let live = get_json(resolver, &o.id).await?;
    let dry =
        match engine::server_side_apply(resolver, &o.id, &body, opts.force_conflicts, true).await {
            Ok(v) => v,
            Err(
                e @ (KubeError::Conflict { .. }
                | KubeError::Invalid { .. }
                | KubeError::ApiStatus { .. }),
            ) => {
                return Ok(entry(ObjectDiff::Refused {
                    reason: e.to_string(),
                }));
            }
            Err(e) => return Err(e),
        };
    if let Some(live) = &live {
        let changes = crate::immutable::changes(&o.id, &o.body, live);
        if !changes.is_empty() {
            let fields = changes
                .iter()
                .map(|c| format!("{}: {} -> {}", c.field, c.live, c.desired))
                .collect::<Vec<_>>()
                .join("; ");
            return Ok(entry(ObjectDiff::Refused {
                reason: format!("immutable field(s) would change: {fields}"),
            }));
        }
    }
    Ok(entry(match live {
        None => ObjectDiff::Create {
            checked: true,
            unchecked_because: None,
        },
        Some(live) => compare(o.is_secret(), live, dry),
    }))
}

/// Diff every object of the desired state (and what a prune would delete).
pub async fn diff(
    cluster: &Cluster,
    desired: &DesiredState,
    opts: &DiffOptions,
) -> Result<DiffReport, KubeError> {
    if !desired.is_complete() {
        return Err(KubeError::IncompleteBundle(
            desired.missing_bundle_files.len(),
        ));
    }
    let resolver = Resolver::new(cluster.clone());
    let (parent_name, set_id) = applyset_of(desired);
    // Namespaces the stack creates that do not exist yet: nothing in them can be dry-run.
    let mut missing_ns = BTreeSet::new();
    for o in desired.objects.iter().filter(|o| o.id.kind == "Namespace") {
        if get_json(&resolver, &o.id).await?.is_none() {
            missing_ns.insert(o.id.name.clone());
        }
    }
    let selected = desired
        .objects
        .iter()
        .filter(|o| opts.stages.as_ref().is_none_or(|s| s.contains(&o.stage)));
    let mut objects: Vec<DiffEntry> = stream::iter(selected)
        .map(|o| diff_one(&resolver, o, &set_id, opts, &missing_ns))
        .buffered(opts.concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    objects.sort_by_key(|e| e.stage);
    let all: Vec<&DesiredObject> = desired.objects.iter().collect();
    let taken = crate::collision::live_names(&resolver, &all).await?;
    for c in crate::collision::collisions(&all, &taken) {
        if let Some(e) = objects.iter_mut().find(|e| e.object == c.object) {
            e.diff = ObjectDiff::Refused {
                reason: format!(
                    "the name is already used by a {} in namespace `{}` (CSI Driver names are \
                     unique in the whole cluster)",
                    c.object.kind, c.existing_namespace
                ),
            };
        }
    }
    let parent = ObjectRef {
        api_version: "v1".into(),
        kind: "Secret".into(),
        name: parent_name,
        namespace: Some(applyset::PARENT_NAMESPACE.into()),
    };
    let prune = match get_json(&resolver, &parent).await? {
        Some(_) if opts.stages.is_some() => Vec::new(),
        Some(p) => {
            let (gks, nss) = applyset::recorded(&p);
            engine::prune_candidates(&resolver, desired, &set_id, &gks, &nss, &Silent).await?
        }
        None => Vec::new(),
    };
    Ok(DiffReport { objects, prune })
}

/// The object as `diff` shows a creation: Secret values redacted.
pub fn shown_body(o: &DesiredObject) -> Value {
    redacted(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_fields_do_not_count() {
        let live = json!({"kind": "ConfigMap", "metadata": {"name": "a", "resourceVersion": "1",
            "managedFields": [{}], "uid": "u"}, "data": {"k": "v"}});
        let dry = json!({"kind": "ConfigMap", "metadata": {"name": "a", "resourceVersion": "2",
            "managedFields": [{}, {}], "uid": "u"}, "data": {"k": "v"}});
        assert!(matches!(compare(false, live, dry), ObjectDiff::Unchanged));
    }

    #[test]
    fn secret_values_never_shown() {
        let live = json!({"kind": "Secret", "metadata": {"name": "s"},
            "data": {"cloud": "b2xkLXNlY3JldA==", "same": "eA=="}});
        let dry = json!({"kind": "Secret", "metadata": {"name": "s"},
            "data": {"cloud": "bmV3LXNlY3JldA==", "same": "eA=="}});
        let ObjectDiff::Update { diff } = compare(true, live, dry) else {
            panic!("a changed secret must be an update");
        };
        assert!(!diff.contains("b2xkLXNlY3JldA==") && !diff.contains("bmV3LXNlY3JldA=="));
        assert!(diff.contains("<hidden, changed>"), "{diff}");
        assert!(!diff.contains("eA=="));
    }
}
