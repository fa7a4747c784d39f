//! Waiting for a stage's objects to be healthy: each object is judged by
//! [`crate::health::assess`] as soon as it was applied, then again on every change a watch
//! delivers (and once a second for what depends on time). A terminal failure ends the
//! stage at once with the controller's own words; a timeout names every object still not
//! ready with its last state. While an object has no status from its controller, the
//! controller itself is checked, so "the Rook operator is not running" is said instead of
//! waiting silently.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::try_join_all;
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt, watcher};
use rookery_stack::desired::{DesiredObject, DesiredState, ObjectRef, Stage};
use rookery_stack::readiness::Readiness;
use serde_json::Value;

use crate::error::{Blocker, KubeError};
use crate::events::{Event, Reporter};
use crate::health::{self, Health};
use crate::resolve::Resolver;

/// After this long without a status from its controller, check that the controller runs.
const LIVENESS_AFTER: Duration = Duration::from_secs(8);
/// After this long not available, look at a Deployment's pods for the reason.
const PODS_AFTER: Duration = Duration::from_secs(3);
/// How often to ask again why something is stuck (controller, pods).
const EXPLAIN_EVERY: Duration = Duration::from_secs(3);

pub struct Waiter<'a> {
    pub resolver: &'a Resolver,
    pub desired: &'a DesiredState,
    pub reporter: &'a dyn Reporter,
    pub stage: Stage,
}

/// GET an object as JSON; `None` when it does not exist (or its kind is not served).
pub async fn get_json(resolver: &Resolver, id: &ObjectRef) -> Result<Option<Value>, KubeError> {
    let Some(api) = resolver.api_for(id).await? else {
        return Ok(None);
    };
    let obj = resolver
        .cluster()
        .call("reading", id, api.get_opt(&id.name))
        .await?;
    Ok(obj.and_then(|o| serde_json::to_value(o).ok()))
}

fn deployment_ref(namespace: &str, name: &str) -> ObjectRef {
    ObjectRef {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: name.into(),
        namespace: Some(namespace.into()),
    }
}

/// The controller that writes an object's status, when the stack installs it.
fn controller_of<'d>(desired: &'d DesiredState, id: &ObjectRef) -> Option<&'d ObjectRef> {
    let name = match id.group() {
        "ceph.rook.io" => "rook-ceph-operator",
        "velero.io" => "velero",
        _ => return None,
    };
    desired
        .objects
        .iter()
        .find(|o| o.id.kind == "Deployment" && o.id.name == name)
        .map(|o| &o.id)
}

/// Why a Deployment's pods are not available: unschedulable, image pull, crash loop.
pub async fn pod_problems(resolver: &Resolver, deployment: &Value) -> Option<String> {
    let ns = deployment.pointer("/metadata/namespace")?.as_str()?;
    let labels = deployment
        .pointer("/spec/selector/matchLabels")?
        .as_object()?
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(",");
    let pods_id = ObjectRef {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: String::new(),
        namespace: Some(ns.into()),
    };
    let api = resolver.api_for(&pods_id).await.ok()??;
    let list = resolver
        .cluster()
        .call(
            "listing pods of",
            format!("{ns}/{labels}"),
            api.list(&ListParams::default().labels(&labels).limit(20)),
        )
        .await
        .ok()?;
    if list.items.is_empty() {
        return Some("no pods created yet".into());
    }
    for pod in list.items {
        let pod = serde_json::to_value(pod).ok()?;
        let name = pod
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?");
        if let Some(c) = health::condition(&pod, "PodScheduled")
            && c.get("status").and_then(Value::as_str) == Some("False")
        {
            return Some(format!(
                "pod {name} cannot be scheduled: {}",
                c.get("message")
                    .and_then(Value::as_str)
                    .or(c.get("reason").and_then(Value::as_str))
                    .unwrap_or("no reason given")
            ));
        }
        let statuses = pod
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for cs in statuses {
            if let Some(w) = cs.pointer("/state/waiting") {
                let reason = w.get("reason").and_then(Value::as_str).unwrap_or("waiting");
                let msg = w.get("message").and_then(Value::as_str).unwrap_or("");
                return Some(format!("pod {name}: {reason} {msg}").trim().to_string());
            }
        }
    }
    None
}

/// A one-line verdict on a controller Deployment, or None when it is available.
async fn controller_down(resolver: &Resolver, controller: &ObjectRef) -> Option<String> {
    let live = match get_json(resolver, controller).await {
        Ok(Some(live)) => live,
        Ok(None) => return Some(format!("{controller} does not exist")),
        Err(e) => return Some(format!("{controller} cannot be read: {e}")),
    };
    match health::assess(&Readiness::DeploymentAvailable, &live) {
        Health::Ready { .. } => None,
        Health::Progressing { reason, .. }
        | Health::Failing { reason, .. }
        | Health::Failed { reason } => {
            let pods = pod_problems(resolver, &live).await;
            Some(match pods {
                Some(p) => format!("{controller} is not available ({reason}; {p})"),
                None => format!("{controller} is not available ({reason})"),
            })
        }
    }
}

fn hint_for(id: &ObjectRef) -> Option<String> {
    let ns = id.namespace.as_deref().unwrap_or("default");
    let hint = match (id.group(), id.kind.as_str()) {
        ("ceph.rook.io", "CephCluster") => format!(
            "Ceph health: check OSD status and connectivity (`kubectl -n {ns} describe \
             cephcluster {}`, the operator's log); `rookery doctor` explains each health check",
            id.name
        ),
        ("ceph.rook.io", _) => format!(
            "`kubectl -n {ns} describe {} {}` and the Rook operator's log show why",
            id.kind.to_lowercase(),
            id.name
        ),
        ("velero.io", "BackupStorageLocation") => "backup location: check the bucket, \
            `s3Url` and the credentials Secret it names (`rookery doctor` checks each)"
            .to_string(),
        ("velero.io", _) => "fix the object in the stack and apply again".to_string(),
        ("apps", _) => format!(
            "`kubectl -n {ns} describe {} {}` and its pods' events show why",
            id.kind.to_lowercase(),
            id.name
        ),
        _ => return None,
    };
    Some(hint)
}

impl<'a> Waiter<'a> {
    /// Wait for every object until `deadline`. Returns the notes of objects that became
    /// ready with one (accepted HEALTH_WARN, ...).
    /// `seen` holds objects as the stage just read or wrote them, used for the first check.
    pub async fn wait_all(
        &self,
        objects: &[&DesiredObject],
        seen: &std::collections::HashMap<ObjectRef, Value>,
        deadline: tokio::time::Instant,
        stage_timeout: Duration,
    ) -> Result<Vec<(ObjectRef, String)>, KubeError> {
        let last: Arc<Mutex<BTreeMap<ObjectRef, String>>> = Arc::default();
        let futs = objects
            .iter()
            .filter(|o| o.readiness != Readiness::Exists)
            .map(|o| self.wait_one(o, seen.get(&o.id).cloned(), last.clone()));
        match tokio::time::timeout_at(deadline, try_join_all(futs)).await {
            Ok(Ok(notes)) => Ok(notes.into_iter().flatten().collect()),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                let blockers = last
                    .lock()
                    .map(|m| {
                        m.iter()
                            .map(|(object, last)| Blocker {
                                object: object.clone(),
                                last: last.clone(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Err(KubeError::WaitTimeout {
                    stage: self.stage.name(),
                    after: stage_timeout,
                    blockers,
                })
            }
        }
    }

    async fn wait_one(
        &self,
        o: &DesiredObject,
        mut first: Option<Value>,
        last: Arc<Mutex<BTreeMap<ObjectRef, String>>>,
    ) -> Result<Option<(ObjectRef, String)>, KubeError> {
        let id = &o.id;
        let started = Instant::now();
        let mut shown: Option<String> = None;
        let mut failing_since: Option<Instant> = None;
        // Why the controller or the pods are stuck: asked at most every few seconds.
        let mut explained: Option<(Instant, Option<String>)> = None;
        let set_last = |reason: &str| {
            if let Ok(mut m) = last.lock() {
                m.insert(id.clone(), reason.to_string());
            }
        };
        set_last("not checked yet");
        // A watch delivers each change as it happens (a CRD turning Established, a status
        // written), instead of re-reading large objects on a timer.
        let mut watch = self.resolver.api_for(id).await?.map(|api| {
            watcher::watch_object(api, &id.name)
                .default_backoff()
                .boxed()
        });
        let mut live = match first.take() {
            Some(v) => Some(v),
            None => get_json(self.resolver, id).await?,
        };
        loop {
            let mut verdict = match &live {
                None => Health::Progressing {
                    reason: "does not exist (deleted after it was applied?)".into(),
                    no_status: false,
                },
                Some(live) => health::assess(&o.readiness, live),
            };
            if let (Health::Ready { .. }, Readiness::CephFilesystemReady { mds_deployments }) =
                (&verdict, &o.readiness)
            {
                verdict = self.mds_verdict(id, mds_deployments).await?;
            }
            let reason = match verdict {
                Health::Ready { note } => {
                    if let Ok(mut m) = last.lock() {
                        m.remove(id);
                    }
                    self.reporter.event(Event::Ready {
                        stage: self.stage,
                        object: id.clone(),
                        note: note.clone(),
                    });
                    return Ok(note.map(|n| (id.clone(), n)));
                }
                Health::Failed { reason } => {
                    return Err(KubeError::WaitFailed {
                        stage: self.stage.name(),
                        object: id.clone(),
                        reason,
                        hint: hint_for(id),
                    });
                }
                Health::Failing { reason, grace_secs } => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= Duration::from_secs(grace_secs) {
                        return Err(KubeError::WaitFailed {
                            stage: self.stage.name(),
                            object: id.clone(),
                            reason: format!("{reason} (for {} s)", since.elapsed().as_secs()),
                            hint: hint_for(id),
                        });
                    }
                    reason
                }
                Health::Progressing { reason, no_status } => {
                    failing_since = None;
                    let due = explained
                        .as_ref()
                        .is_none_or(|(at, _)| at.elapsed() >= EXPLAIN_EVERY);
                    if due {
                        let mut why = None;
                        if no_status
                            && started.elapsed() >= LIVENESS_AFTER
                            && let Some(controller) = controller_of(self.desired, id)
                            && let Some(down) = controller_down(self.resolver, controller).await
                        {
                            why = Some(format!(
                                "the controller that should act is not running: {down}"
                            ));
                        }
                        if id.kind == "Deployment"
                            && started.elapsed() >= PODS_AFTER
                            && let Some(live) = &live
                            && let Some(p) = pod_problems(self.resolver, live).await
                        {
                            why = Some(p);
                        }
                        if no_status && started.elapsed() >= LIVENESS_AFTER
                            || id.kind == "Deployment" && started.elapsed() >= PODS_AFTER
                        {
                            explained = Some((Instant::now(), why));
                        }
                    }
                    match explained.as_ref().and_then(|(_, w)| w.as_deref()) {
                        Some(why) => format!("{reason}; {why}"),
                        None => reason,
                    }
                }
            };
            set_last(&reason);
            if shown.as_deref() != Some(reason.as_str()) {
                self.reporter.event(Event::Waiting {
                    stage: self.stage,
                    object: id.clone(),
                    reason: reason.clone(),
                });
                shown = Some(reason);
            }
            // The next change, or a tick for what depends on time (grace periods, liveness).
            let tick = tokio::time::sleep(Duration::from_secs(1));
            match watch.as_mut() {
                Some(w) => tokio::select! {
                    event = w.next() => match event {
                        Some(Ok(obj)) => live = obj.and_then(|o| serde_json::to_value(o).ok()),
                        // The watcher re-lists with backoff; the last copy stays meanwhile.
                        Some(Err(_)) => {}
                        None => watch = None,
                    },
                    _ = tick => {}
                },
                None => {
                    tick.await;
                    live = get_json(self.resolver, id).await?;
                }
            }
        }
    }

    /// Rook's filesystem Ready does not look at the MDS pods (facts-2 §6): their Deployments
    /// must be available too.
    async fn mds_verdict(&self, fs: &ObjectRef, mds: &[String]) -> Result<Health, KubeError> {
        let ns = fs.namespace.as_deref().unwrap_or("default");
        for name in mds {
            let dep = deployment_ref(ns, name);
            match get_json(self.resolver, &dep).await? {
                None => {
                    return Ok(Health::Progressing {
                        reason: format!("Ready; MDS Deployment {ns}/{name} not created yet"),
                        no_status: true,
                    });
                }
                Some(live) => match health::assess(&Readiness::DeploymentAvailable, &live) {
                    Health::Ready { .. } => {}
                    Health::Progressing { reason, .. }
                    | Health::Failing { reason, .. }
                    | Health::Failed { reason } => {
                        return Ok(Health::Progressing {
                            reason: format!("Ready; MDS {name}: {reason}"),
                            no_status: false,
                        });
                    }
                },
            }
        }
        Ok(Health::Ready { note: None })
    }
}

/// Wait until `judge` says the object (None: it does not exist) is ready, on the same watch
/// the stage waits use; the playbook `k8s` module's `wait`/`wait_condition` and its wait for
/// deletion. A timeout names the object and its last state, as a stage timeout does.
pub async fn wait_until(
    resolver: &Resolver,
    id: &ObjectRef,
    what: &'static str,
    timeout: Duration,
    mut judge: impl FnMut(Option<&Value>) -> Health + Send,
) -> Result<Option<String>, KubeError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last;
    let mut failing_since: Option<Instant> = None;
    let mut watch = resolver.api_for(id).await?.map(|api| {
        watcher::watch_object(api, &id.name)
            .default_backoff()
            .boxed()
    });
    let mut live = get_json(resolver, id).await?;
    loop {
        match judge(live.as_ref()) {
            Health::Ready { note } => return Ok(note),
            Health::Failed { reason } => {
                return Err(KubeError::WaitFailed {
                    stage: what,
                    object: id.clone(),
                    reason,
                    hint: hint_for(id),
                });
            }
            Health::Failing { reason, grace_secs } => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= Duration::from_secs(grace_secs) {
                    return Err(KubeError::WaitFailed {
                        stage: what,
                        object: id.clone(),
                        reason: format!("{reason} (for {} s)", since.elapsed().as_secs()),
                        hint: hint_for(id),
                    });
                }
                last = reason;
            }
            Health::Progressing { reason, .. } => {
                failing_since = None;
                last = reason;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(KubeError::WaitTimeout {
                stage: what,
                after: timeout,
                blockers: vec![Blocker {
                    object: id.clone(),
                    last,
                }],
            });
        }
        let tick = tokio::time::sleep_until(
            deadline.min(tokio::time::Instant::now() + Duration::from_secs(1)),
        );
        match watch.as_mut() {
            Some(w) => tokio::select! {
                event = w.next() => match event {
                    Some(Ok(obj)) => live = obj.and_then(|o| serde_json::to_value(o).ok()),
                    Some(Err(_)) => {}
                    None => watch = None,
                },
                _ = tick => {}
            },
            None => {
                tick.await;
                live = get_json(resolver, id).await?;
            }
        }
    }
}
