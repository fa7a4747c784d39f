//! `apply`: the desired state onto a cluster, stage by stage, with server-side apply (field
//! manager `rookery`), objects of a stage concurrently, each stage waited for before the next.
//!
//! Before the first write: every kind must be served (or installed by this stack's CRDs),
//! every immutable field must be unchanged, and the bundle must be complete — so a refused
//! run has changed nothing. A run stopped half-way (Ctrl-C, timeout, failure) needs no
//! clean-up: running it again converges, because server-side apply is idempotent and there
//! is no lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use futures::stream::{self, StreamExt, TryStreamExt};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::discovery::Scope;
use rookery_stack::desired::{DesiredObject, DesiredState, ObjectRef, Stage};
use serde::Serialize;
use serde_json::{Value, json};

use crate::applyset;
use crate::connect::Cluster;
use crate::error::{FieldConflict, KubeError};
use crate::events::{Change, Event, Reporter};
use crate::immutable;
use crate::resolve::{Resolver, gvk_of};
use crate::wait::{Waiter, get_json};

pub const FIELD_MANAGER: &str = "rookery";

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Take over fields another field manager owns.
    pub force_conflicts: bool,
    /// Wait for each stage to be healthy before the next (default true). CRDs are waited
    /// for (Established) even without it.
    pub wait: bool,
    /// The whole run's deadline.
    pub timeout: Duration,
    /// Per-stage overrides of [`default_stage_timeout`].
    pub stage_timeouts: BTreeMap<Stage, Duration>,
    /// Requests in flight at once within a stage.
    pub concurrency: usize,
    /// Only these stages (playbook `storage_stack` tasks); all when `None`. Pruning needs all.
    pub stages: Option<Vec<Stage>>,
    /// Delete objects of an earlier apply that the stack no longer has.
    pub prune: bool,
    /// `KIND/NAME` (or `Kind.group/NAME`) of protected objects a prune may delete.
    pub allow_delete: Vec<String>,
    /// Base directory of relative `file:` credentials (the stack file's directory).
    pub secrets_base: PathBuf,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            force_conflicts: false,
            wait: true,
            timeout: Duration::from_secs(45 * 60),
            stage_timeouts: BTreeMap::new(),
            concurrency: 16,
            stages: None,
            prune: false,
            allow_delete: Vec::new(),
            secrets_base: PathBuf::from("."),
        }
    }
}

/// How long each stage may take to become healthy (apply-anchors §9.6 sizes).
pub fn default_stage_timeout(stage: Stage) -> Duration {
    let secs = match stage {
        Stage::Crds => 60,
        Stage::Namespaces => 60,
        // minReadySeconds 35 on two replicas (k8s-facts §6).
        Stage::SnapshotController => 300,
        Stage::RookOperator => 300,
        Stage::CephCluster => 20 * 60,
        Stage::Filesystems => 10 * 60,
        Stage::StorageClasses => 60,
        Stage::Velero => 300,
        Stage::BackupSchedules => 120,
        Stage::Alerts => 60,
    };
    Duration::from_secs(secs)
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageReport {
    pub stage: Option<Stage>,
    pub created: usize,
    pub configured: usize,
    pub unchanged: usize,
    pub seconds: f64,
    /// Accepted warnings and other notes, per object.
    pub notes: Vec<(ObjectRef, String)>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyReport {
    pub stages: Vec<StageReport>,
    pub pruned: Vec<ObjectRef>,
}

impl ApplyReport {
    pub fn changed(&self) -> usize {
        self.stages
            .iter()
            .map(|s| s.created + s.configured)
            .sum::<usize>()
            + self.pruned.len()
    }
}

/// The ApplySet of a desired state: the parent's name and the set id.
pub fn applyset_of(desired: &DesiredState) -> (String, String) {
    let cluster_ns = desired
        .objects
        .iter()
        .find(|o| o.id.kind == "CephCluster")
        .and_then(|o| o.id.namespace.clone())
        .unwrap_or_else(|| "rook-ceph".into());
    let name = applyset::parent_name(&cluster_ns);
    let id = applyset::applyset_id(&name, applyset::PARENT_NAMESPACE, "Secret", "");
    (name, id)
}

fn parent_ref(name: &str) -> ObjectRef {
    ObjectRef {
        api_version: "v1".into(),
        kind: "Secret".into(),
        name: name.into(),
        namespace: Some(applyset::PARENT_NAMESPACE.into()),
    }
}

/// `group/kind` pairs the stack's own CRDs will serve.
fn kinds_installed_by(desired: &DesiredState) -> BTreeSet<(String, String)> {
    desired
        .objects
        .iter()
        .filter(|o| o.id.kind == "CustomResourceDefinition")
        .filter_map(|o| {
            let group = o.body.pointer("/spec/group")?.as_str()?;
            let kind = o.body.pointer("/spec/names/kind")?.as_str()?;
            Some((group.to_string(), kind.to_string()))
        })
        .collect()
}

/// The body as sent: Secret values resolved, ApplySet label added.
fn request_body(
    o: &DesiredObject,
    set_id: &str,
    base: &std::path::Path,
) -> Result<Value, KubeError> {
    let mut body = o
        .resolved_body(base)
        .map_err(|source| KubeError::Credential {
            object: o.id.to_string(),
            source: Box::new(source),
        })?;
    applyset::label_member(&mut body, set_id);
    Ok(body)
}

/// The field-manager conflicts in a 409 from server-side apply.
fn conflicts_of(status: &kube::core::Status) -> Vec<FieldConflict> {
    let causes = status
        .details
        .as_ref()
        .map(|d| d.causes.clone())
        .unwrap_or_default();
    causes
        .iter()
        .filter(|c| c.reason == "FieldManagerConflict" || !c.field.is_empty())
        .map(|c| FieldConflict {
            field: c.field.clone(),
            // `conflict with "kubectl-client-side-apply" using v1`
            manager: c
                .message
                .split('"')
                .nth(1)
                .unwrap_or(c.message.as_str())
                .to_string(),
        })
        .collect()
}

/// Server-side apply of one object; `dry_run` asks the server what it would store.
pub async fn server_side_apply(
    resolver: &Resolver,
    id: &ObjectRef,
    body: &Value,
    force: bool,
    dry_run: bool,
) -> Result<Value, KubeError> {
    let Some(api) = resolver.api_for(id).await? else {
        return Err(KubeError::UnknownKind {
            object: id.to_string(),
            api_version: id.api_version.clone(),
            kind: id.kind.clone(),
        });
    };
    let mut pp = PatchParams::apply(FIELD_MANAGER).validation_strict();
    if force {
        pp = pp.force();
    }
    if dry_run {
        pp = pp.dry_run();
    }
    let cluster = resolver.cluster();
    let what = if dry_run { "dry-run of" } else { "applying" };
    match tokio::time::timeout(
        cluster.request_timeout,
        api.patch(&id.name, &pp, &Patch::Apply(body)),
    )
    .await
    {
        Ok(Ok(obj)) => serde_json::to_value(obj).map_err(|e| KubeError::Invalid {
            object: id.clone(),
            message: format!("the server's answer does not parse: {e}"),
        }),
        Ok(Err(kube::Error::Api(status))) if status.code == 409 => Err(KubeError::Conflict {
            object: id.clone(),
            conflicts: conflicts_of(&status),
        }),
        Ok(Err(kube::Error::Api(status))) if status.code == 422 || status.code == 400 => {
            Err(KubeError::Invalid {
                object: id.clone(),
                message: status.message.clone(),
            })
        }
        Ok(Err(source)) => Err(KubeError::from_kube(what, id.to_string(), source)),
        Err(_) => Err(KubeError::RequestTimeout {
            what,
            object: id.to_string(),
            after: cluster.request_timeout,
        }),
    }
}

/// Does `live` already hold every value `body` sets? Then server-side applying `body` would
/// change nothing, and a converged run can skip the request (the API server's merge of a
/// large CRD costs far more than the comparison). Lists compare element by element; anything
/// the server normalised differently simply fails the check and is sent as usual.
pub fn already_applied(body: &Value, live: &Value) -> bool {
    match (body, live) {
        (Value::Object(b), Value::Object(l)) => b
            .iter()
            .all(|(k, v)| l.get(k).is_some_and(|lv| already_applied(v, lv))),
        (Value::Array(b), Value::Array(l)) => {
            b.len() == l.len() && b.iter().zip(l).all(|(bv, lv)| already_applied(bv, lv))
        }
        // An empty map or list in the body may be absent or empty live (omitempty).
        (b, l) => b == l,
    }
}

fn resource_version(v: &Value) -> Option<&str> {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
}

/// Live copies of the objects whose kinds are served now (absent: not found or kind unknown).
pub async fn read_live(
    resolver: &Resolver,
    objects: &[&DesiredObject],
    concurrency: usize,
) -> Result<HashMap<ObjectRef, Value>, KubeError> {
    let found: Vec<Option<(ObjectRef, Value)>> = stream::iter(objects.iter())
        .map(|o| async move {
            Ok::<_, KubeError>(get_json(resolver, &o.id).await?.map(|v| (o.id.clone(), v)))
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}

/// Apply the desired state. Events go to `reporter`; the report says what changed.
pub async fn apply(
    cluster: &Cluster,
    desired: &DesiredState,
    opts: &ApplyOptions,
    reporter: &dyn Reporter,
) -> Result<ApplyReport, KubeError> {
    if !desired.is_complete() {
        return Err(KubeError::IncompleteBundle(
            desired.missing_bundle_files.len(),
        ));
    }
    let resolver = Resolver::new(cluster.clone());
    let selected: Vec<&DesiredObject> = desired
        .objects
        .iter()
        .filter(|o| opts.stages.as_ref().is_none_or(|s| s.contains(&o.stage)))
        .collect();

    // Preflight, read-only: kinds, live objects, immutable fields.
    let installed = kinds_installed_by(desired);
    let mut kinds: Vec<&ObjectRef> = selected.iter().map(|o| &o.id).collect();
    kinds.sort_by(|a, b| (&a.api_version, &a.kind).cmp(&(&b.api_version, &b.kind)));
    kinds.dedup_by(|a, b| a.api_version == b.api_version && a.kind == b.kind);
    let served: Vec<(&ObjectRef, bool)> = stream::iter(kinds)
        .map(|id| {
            let resolver = &resolver;
            async move { Ok::<_, KubeError>((id, resolver.resolve(&gvk_of(id)).await?.is_some())) }
        })
        .buffer_unordered(opts.concurrency.max(1))
        .try_collect()
        .await?;
    // Kinds the cluster may lack on purpose (PrometheusRule without the Prometheus Operator):
    // their objects are skipped with the object's own hint instead of failing the run.
    let mut unserved_optional: Vec<(String, String)> = Vec::new();
    for (id, served) in served {
        if !served && !installed.contains(&(id.group().to_string(), id.kind.clone())) {
            if selected.iter().any(|o| {
                o.skip_unless_served.is_some()
                    && o.id.api_version == id.api_version
                    && o.id.kind == id.kind
            }) {
                unserved_optional.push((id.api_version.clone(), id.kind.clone()));
                continue;
            }
            return Err(KubeError::UnknownKind {
                object: id.to_string(),
                api_version: id.api_version.clone(),
                kind: id.kind.clone(),
            });
        }
    }
    let (skipped, selected): (Vec<&DesiredObject>, Vec<&DesiredObject>) =
        selected.into_iter().partition(|o| {
            o.skip_unless_served.is_some()
                && unserved_optional
                    .iter()
                    .any(|(v, k)| *v == o.id.api_version && *k == o.id.kind)
        });
    for (api_version, kind) in &unserved_optional {
        let these: Vec<&&DesiredObject> = skipped
            .iter()
            .filter(|o| o.id.api_version == *api_version && o.id.kind == *kind)
            .collect();
        let names: Vec<String> = these.iter().map(|o| o.id.to_string()).collect();
        let hint = these
            .first()
            .and_then(|o| o.skip_unless_served.clone())
            .unwrap_or_default();
        reporter.event(Event::Warning {
            message: format!(
                "not applied: the cluster does not serve {kind} ({api_version}), so {} \
                 object(s) were skipped: {}; {hint}",
                names.len(),
                names.join(", ")
            ),
        });
    }
    let live = read_live(&resolver, &selected, opts.concurrency).await?;
    let immutable: Vec<_> = selected
        .iter()
        .filter_map(|o| {
            live.get(&o.id)
                .map(|l| immutable::changes(&o.id, &o.body, l))
        })
        .flatten()
        .collect();
    if !immutable.is_empty() {
        return Err(KubeError::Immutable(immutable));
    }
    crate::collision::check(&resolver, &selected).await?;

    // The ApplySet parent first, listing what it is about to contain (kubectl's order).
    let (parent_name, set_id) = applyset_of(desired);
    let parent_id = parent_ref(&parent_name);
    let old_parent = get_json(&resolver, &parent_id).await?;
    let (old_gks, old_ns) = old_parent
        .as_ref()
        .map(applyset::recorded)
        .unwrap_or_default();
    let (gks, nss) = members(desired);
    let started = SystemTime::now();
    server_side_apply(
        &resolver,
        &parent_id,
        &applyset::parent(
            &parent_name,
            &set_id,
            &applyset::union(&old_gks, &gks),
            &applyset::union(&old_ns, &nss),
            old_parent
                .as_ref()
                .and_then(|p| p.pointer("/metadata/annotations"))
                .and_then(|a| a.get(applyset::LAST_RUN))
                .and_then(Value::as_str)
                .and_then(|s| serde_json::from_str::<Value>(s).ok())
                .as_ref(),
        ),
        true,
        false,
    )
    .await?;

    let deadline = tokio::time::Instant::now() + opts.timeout;
    let outcome = run_stages(
        &resolver, desired, &selected, &live, opts, reporter, &set_id, deadline,
    )
    .await;
    let outcome = match outcome {
        Ok(mut report) if opts.prune && opts.stages.is_none() => {
            match prune(
                &resolver,
                desired,
                &set_id,
                &old_gks,
                &old_ns,
                &opts.allow_delete,
                reporter,
            )
            .await
            {
                Ok(pruned) => {
                    report.pruned = pruned;
                    Ok(report)
                }
                Err(e) => Err(e),
            }
        }
        other => other,
    };

    // Record the run on the parent (best effort: the outcome is what the caller needs). After
    // a full, successful run the record narrows to exactly the current members.
    let complete = outcome.is_ok() && opts.stages.is_none();
    let record = json!({
        "startedAt": rfc3339(started),
        "finishedAt": rfc3339(SystemTime::now()),
        "result": match &outcome { Ok(_) => "succeeded".to_string(), Err(e) => format!("failed: {e}") },
        "stages": match &outcome {
            Ok(r) => r.stages.iter().filter_map(|s| s.stage.map(|st| json!({"stage": st.name(), "seconds": s.seconds}))).collect::<Vec<_>>(),
            Err(_) => Vec::new(),
        },
        "tooling": applyset::tooling(),
    });
    let (rec_gks, rec_ns) = if complete {
        (gks, nss)
    } else {
        (
            applyset::union(&old_gks, &gks),
            applyset::union(&old_ns, &nss),
        )
    };
    if let Err(e) = server_side_apply(
        &resolver,
        &parent_id,
        &applyset::parent(&parent_name, &set_id, &rec_gks, &rec_ns, Some(&record)),
        true,
        false,
    )
    .await
    {
        reporter.event(Event::Warning {
            message: format!("could not record this run on {parent_id}: {e}"),
        });
    }
    outcome
}

/// The group-kinds and namespaces the stack's objects are in (sorted).
fn members(desired: &DesiredState) -> (Vec<String>, Vec<String>) {
    let gks: BTreeSet<String> = desired
        .objects
        .iter()
        .map(|o| applyset::group_kind(&o.id))
        .collect();
    let nss: BTreeSet<String> = desired
        .objects
        .iter()
        .filter_map(|o| o.id.namespace.clone())
        .filter(|n| n != applyset::PARENT_NAMESPACE)
        .collect();
    (gks.into_iter().collect(), nss.into_iter().collect())
}

#[allow(clippy::too_many_arguments)]
async fn run_stages(
    resolver: &Resolver,
    desired: &DesiredState,
    selected: &[&DesiredObject],
    live: &HashMap<ObjectRef, Value>,
    opts: &ApplyOptions,
    reporter: &dyn Reporter,
    set_id: &str,
    deadline: tokio::time::Instant,
) -> Result<ApplyReport, KubeError> {
    let mut report = ApplyReport::default();
    let stages: Vec<Stage> = Stage::ALL
        .into_iter()
        .filter(|s| selected.iter().any(|o| o.stage == *s))
        .collect();
    for (index, stage) in stages.iter().copied().enumerate() {
        let objects: Vec<&DesiredObject> = selected
            .iter()
            .copied()
            .filter(|o| o.stage == stage)
            .collect();
        let t0 = std::time::Instant::now();
        reporter.event(Event::StageStarted {
            stage,
            title: stage.title(),
            index: index + 1,
            total: stages.len(),
            objects: objects.len(),
        });
        let results: Vec<Result<(Change, Value), KubeError>> = stream::iter(objects.iter())
            .map(|o| async move {
                let body = request_body(o, set_id, &opts.secrets_base)?;
                if let Some(before) = live.get(&o.id)
                    && already_applied(&body, before)
                {
                    reporter.event(Event::Applied {
                        stage,
                        object: o.id.clone(),
                        change: Change::Unchanged,
                    });
                    return Ok((Change::Unchanged, before.clone()));
                }
                let applied =
                    server_side_apply(resolver, &o.id, &body, opts.force_conflicts, false).await?;
                let change = match live.get(&o.id) {
                    None => Change::Created,
                    Some(before) if resource_version(before) == resource_version(&applied) => {
                        Change::Unchanged
                    }
                    Some(_) => Change::Configured,
                };
                reporter.event(Event::Applied {
                    stage,
                    object: o.id.clone(),
                    change,
                });
                Ok((change, applied))
            })
            .buffer_unordered(opts.concurrency.max(1))
            .collect()
            .await;
        let mut sr = StageReport {
            stage: Some(stage),
            ..Default::default()
        };
        let mut errors = Vec::new();
        // What each object looked like right after this stage touched it: the first health
        // check reads it instead of asking again.
        let mut seen: HashMap<ObjectRef, Value> = HashMap::new();
        for r in results {
            match r {
                Ok((change, obj)) => {
                    match change {
                        Change::Created => sr.created += 1,
                        Change::Configured => sr.configured += 1,
                        Change::Unchanged => sr.unchanged += 1,
                    }
                    if let Some(id) = object_ref_of(&obj) {
                        seen.insert(id, obj);
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(if errors.len() == 1 {
                errors.remove(0)
            } else {
                KubeError::StageFailed {
                    stage: stage.name(),
                    errors,
                }
            });
        }
        // CRDs are always waited for: every later stage needs their kinds served.
        if opts.wait || stage == Stage::Crds {
            let stage_timeout = opts
                .stage_timeouts
                .get(&stage)
                .copied()
                .unwrap_or_else(|| default_stage_timeout(stage));
            let stage_deadline = (tokio::time::Instant::now() + stage_timeout).min(deadline);
            let waiter = Waiter {
                resolver,
                desired,
                reporter,
                stage,
            };
            sr.notes = waiter
                .wait_all(&objects, &seen, stage_deadline, stage_timeout)
                .await?;
        }
        sr.seconds = t0.elapsed().as_secs_f64();
        reporter.event(Event::StageDone {
            stage,
            elapsed: t0.elapsed(),
            changed: sr.created + sr.configured,
        });
        report.stages.push(sr);
    }
    Ok(report)
}

/// The identity of an object as the server returned it.
fn object_ref_of(v: &Value) -> Option<ObjectRef> {
    Some(ObjectRef {
        api_version: v.get("apiVersion")?.as_str()?.to_string(),
        kind: v.get("kind")?.as_str()?.to_string(),
        name: v.pointer("/metadata/name")?.as_str()?.to_string(),
        namespace: v
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// Does `spec` (`Kind/name` or `Kind.group/name`, kind case-insensitive) name `id`?
pub fn names_object(spec: &str, id: &ObjectRef) -> bool {
    let Some((kind, name)) = spec.rsplit_once('/') else {
        return false;
    };
    if name != id.name {
        return false;
    }
    let (k, g) = kind.split_once('.').unwrap_or((kind, ""));
    k.eq_ignore_ascii_case(&id.kind) && (g.is_empty() || g == id.group())
}

/// A member of the ApplySet on the cluster that the stack no longer has.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneCandidate {
    pub object: ObjectRef,
    /// Why it is protected (deleting it needs `--allow-delete`), when it is.
    pub protected: Option<String>,
}

/// Members of the set (by its label) that are not in `desired`, looked for in every
/// group-kind and namespace the parent recorded or the stack has.
pub async fn prune_candidates(
    resolver: &Resolver,
    desired: &DesiredState,
    set_id: &str,
    old_gks: &[String],
    old_ns: &[String],
    reporter: &dyn Reporter,
) -> Result<Vec<PruneCandidate>, KubeError> {
    let (gks, nss) = members(desired);
    let gks = applyset::union(old_gks, &gks);
    let nss = applyset::union(old_ns, &nss);
    let wanted: BTreeSet<(String, Option<String>, String)> = desired
        .objects
        .iter()
        .map(|o| {
            (
                applyset::group_kind(&o.id),
                o.id.namespace.clone(),
                o.id.name.clone(),
            )
        })
        .collect();
    let selector = ListParams::default().labels(&format!("{}={set_id}", applyset::PART_OF));
    let mut out = Vec::new();
    for gk in &gks {
        let (kind, group) = gk.split_once('.').unwrap_or((gk.as_str(), ""));
        // The version: the stack's, else whatever the server prefers now.
        let version = desired
            .objects
            .iter()
            .find(|o| applyset::group_kind(&o.id) == *gk)
            .map(|o| gvk_of(&o.id).version);
        let gvk = match version {
            Some(v) => kube::api::GroupVersionKind::gvk(group, &v, kind),
            None => {
                let found = match tokio::time::timeout(
                    resolver.cluster().request_timeout,
                    kube::discovery::group(&resolver.cluster().client, group),
                )
                .await
                {
                    Ok(Ok(g)) => g.recommended_kind(kind).map(|(ar, _)| ar.version),
                    _ => None,
                };
                match found {
                    Some(v) => kube::api::GroupVersionKind::gvk(group, &v, kind),
                    None => {
                        reporter.event(Event::Warning {
                            message: format!(
                                "the cluster no longer serves {gk} (its CRD was removed?): \
                                 objects of that kind cannot be checked for pruning"
                            ),
                        });
                        continue;
                    }
                }
            }
        };
        let Some((ar, caps)) = resolver.resolve(&gvk).await? else {
            continue;
        };
        let scopes: Vec<Option<&str>> = match caps.scope {
            Scope::Cluster => vec![None],
            Scope::Namespaced => nss.iter().map(|n| Some(n.as_str())).collect(),
        };
        for ns in scopes {
            let api = resolver.api(&ar, &caps, ns);
            let list = resolver
                .cluster()
                .call(
                    "listing",
                    format!("{gk} in {}", ns.unwrap_or("the cluster")),
                    api.list(&selector),
                )
                .await?;
            for item in list.items {
                let name = item.metadata.name.clone().unwrap_or_default();
                let namespace = item.metadata.namespace.clone();
                if wanted.contains(&(gk.clone(), namespace.clone(), name.clone())) {
                    continue;
                }
                let object = ObjectRef {
                    api_version: ar.api_version.clone(),
                    kind: kind.to_string(),
                    name,
                    namespace,
                };
                let protected = protection(resolver, gk, &object).await?;
                out.push(PruneCandidate { object, protected });
            }
        }
    }
    Ok(out)
}

/// Why deleting `object` could lose data, or None.
async fn protection(
    resolver: &Resolver,
    gk: &str,
    object: &ObjectRef,
) -> Result<Option<String>, KubeError> {
    if gk == "BackupStorageLocation.velero.io" {
        // Only a location that holds backups is worth protecting.
        let backups = ObjectRef {
            api_version: "velero.io/v1".into(),
            kind: "Backup".into(),
            name: String::new(),
            namespace: object.namespace.clone(),
        };
        if let Some(api) = resolver.api_for(&backups).await? {
            let lp = ListParams::default()
                .labels(&format!("velero.io/storage-location={}", object.name))
                .limit(1);
            let list = resolver
                .cluster()
                .call("listing backups of", object, api.list(&lp))
                .await?;
            if !list.items.is_empty() {
                return Ok(Some("a backup location that holds backups".into()));
            }
        }
        return Ok(None);
    }
    if gk == "Namespace" {
        let pvcs = ObjectRef {
            api_version: "v1".into(),
            kind: "PersistentVolumeClaim".into(),
            name: String::new(),
            namespace: Some(object.name.clone()),
        };
        if let Some(api) = resolver.api_for(&pvcs).await? {
            let list = resolver
                .cluster()
                .call(
                    "listing volume claims in",
                    object,
                    api.list(&ListParams::default().limit(1)),
                )
                .await?;
            if !list.items.is_empty() {
                return Ok(Some("a namespace holding PersistentVolumeClaims".into()));
            }
        }
        return Ok(None);
    }
    Ok(applyset::is_protected(gk).then(|| match gk {
        "CustomResourceDefinition.apiextensions.k8s.io" => {
            "a CRD (deleting it deletes every object of its kind)".to_string()
        }
        _ => "it holds data".to_string(),
    }))
}

async fn prune(
    resolver: &Resolver,
    desired: &DesiredState,
    set_id: &str,
    old_gks: &[String],
    old_ns: &[String],
    allow_delete: &[String],
    reporter: &dyn Reporter,
) -> Result<Vec<ObjectRef>, KubeError> {
    let candidates = prune_candidates(resolver, desired, set_id, old_gks, old_ns, reporter).await?;
    let allowed = |c: &PruneCandidate| {
        c.protected.is_none() || allow_delete.iter().any(|a| names_object(a, &c.object))
    };
    let refused: Vec<String> = candidates
        .iter()
        .filter(|c| !allowed(c))
        .map(|c| {
            format!(
                "{} in {} ({})",
                c.object.kind_name(),
                c.object.namespace.as_deref().unwrap_or("the cluster"),
                c.protected.as_deref().unwrap_or("")
            )
        })
        .collect();
    // What loses no data goes; what could is listed and kept, and the run fails.
    let mut pruned = Vec::new();
    for c in candidates.into_iter().filter(|c| allowed(c)) {
        let Some(api) = resolver.api_for(&c.object).await? else {
            continue;
        };
        let dp = DeleteParams::background();
        match resolver
            .cluster()
            .call("deleting", &c.object, api.delete(&c.object.name, &dp))
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        reporter.event(Event::Pruned {
            object: c.object.clone(),
        });
        pruned.push(c.object);
    }
    if !refused.is_empty() {
        return Err(KubeError::PruneProtected {
            refused,
            pruned: pruned.len(),
        });
    }
    Ok(pruned)
}

/// RFC 3339 UTC, seconds precision.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn already_applied_is_a_subset_check() {
        use serde_json::json;
        let body = json!({"spec": {"replicas": 1, "template": {"containers": [{"name": "a"}]}}});
        let live = json!({"spec": {"replicas": 1, "progressDeadlineSeconds": 600,
            "template": {"containers": [{"name": "a", "imagePullPolicy": "Always"}]}},
            "status": {}});
        assert!(already_applied(&body, &live));
        let drifted = json!({"spec": {"replicas": 3, "template": {"containers": [{"name": "a"}]}}});
        assert!(!already_applied(&body, &drifted));
        let extra = json!({"spec": {"replicas": 1, "template": {"containers": [{"name": "a"}, {"name": "b"}]}}});
        assert!(
            !already_applied(&body, &extra),
            "a list with another element differs"
        );
    }

    #[test]
    fn allow_delete_spellings() {
        let id = ObjectRef {
            api_version: "ceph.rook.io/v1".into(),
            kind: "CephFilesystem".into(),
            name: "old-fs".into(),
            namespace: Some("rook-ceph".into()),
        };
        assert!(names_object("CephFilesystem/old-fs", &id));
        assert!(names_object("cephfilesystem/old-fs", &id));
        assert!(names_object("CephFilesystem.ceph.rook.io/old-fs", &id));
        assert!(!names_object("CephFilesystem.example.com/old-fs", &id));
        assert!(!names_object("CephFilesystem/other", &id));
        assert!(!names_object("old-fs", &id));
    }
}
