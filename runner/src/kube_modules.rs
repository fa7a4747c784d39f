//! Playbook modules that talk to the cluster — `k8s`, `k8s_info`, `kubeconfig`,
//! `storage_stack` — and the `stack:` device source of `prepare_devices`.
//!
//! They live in the runner, not in rookery-playbook, so the playbook engine never depends on
//! the Kubernetes client or the stack model: the runner adds them to the engine's module
//! registry ([`register`]). They run on the control machine (Ansible's k8s modules with
//! `delegate_to: localhost`) and do everything through rookery-kube, exactly as
//! `rookery apply` and `rookery diff` do: server-side apply with field manager `rookery`,
//! server-side dry runs for check mode, the same diff (Secret values never shown), the same
//! health rules and watches for waits, the same stage engine for `storage_stack`.
//!
//! Where the cluster is: a task's `kubeconfig`/`context` arguments, else the
//! `rookery_kubeconfig`/`rookery_kube_context` variables the `kubeconfig` module sets, else
//! `KUBECONFIG`, then `~/.kube/config`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use kube::api::{DeleteParams, ListParams};
use rookery_inventory::Inventory;
use rookery_kube::diff::{DiffOptions, ObjectDiff, compare, normalize};
use rookery_kube::engine::{ApplyOptions, server_side_apply};
use rookery_kube::events::{Event, Reporter};
use rookery_kube::health::{self, Health};
use rookery_kube::resolve::{Resolver, gvk_of};
use rookery_kube::wait::{get_json, wait_until};
use rookery_kube::{Cluster, KubeError, Target};
use rookery_playbook::modules::{FileDiff, Flex, StackDevices, parse_args};
use rookery_playbook::{
    Action, Change, Module, ModuleCtx, ModuleError, ModuleResult, Query, Registry, RunsOn,
};
use rookery_stack::Stack;
use rookery_stack::desired::{DesiredState, ObjectRef, Stage};
use rookery_stack::hosts::{self, FactsSource, HostInput, NodeMatch};
use rookery_stack::readiness::{Readiness, rule_for};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::cluster::{ClusterArgs, Failure, describe};
use crate::commands::plan::StackArgs;
use crate::connect::ConnectArgs;
use crate::output::Output;

/// Variables the `kubeconfig` module sets and the other modules default to.
pub const VAR_KUBECONFIG: &str = "rookery_kubeconfig";
pub const VAR_CONTEXT: &str = "rookery_kube_context";

/// What the cluster modules share during one run: how to reach hosts (for `kubeconfig`'s
/// fetch and `storage_stack`'s probe), connected clusters, rendered stacks.
pub struct KubeEnv {
    inventory: OnceLock<(PathBuf, Arc<Inventory>)>,
    ssh: ConnectArgs,
    out: Output,
    progress: Arc<dyn Reporter>,
    clusters: tokio::sync::Mutex<HashMap<ClusterKey, Cluster>>,
    stacks: tokio::sync::Mutex<HashMap<String, Arc<Rendered>>>,
}

/// kubeconfig file, context, request timeout.
type ClusterKey = (Option<PathBuf>, Option<String>, u64);

/// A stack rendered once per run (every `storage_stack` task of a run applies the same one).
struct Rendered {
    desired: DesiredState,
    stack_dir: PathBuf,
}

impl KubeEnv {
    /// `progress` draws `storage_stack`'s stage events (the same events `rookery apply`
    /// shows).
    pub fn new(ssh: ConnectArgs, out: Output, progress: Arc<dyn Reporter>) -> Arc<Self> {
        Arc::new(KubeEnv {
            inventory: OnceLock::new(),
            ssh,
            out,
            progress,
            clusters: tokio::sync::Mutex::new(HashMap::new()),
            stacks: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The run's inventory (set once it is loaded; the playbook is loaded first).
    pub fn set_inventory(&self, path: PathBuf, inventory: Arc<Inventory>) {
        let _ = self.inventory.set((path, inventory));
    }

    fn inventory(&self) -> Result<&(PathBuf, Arc<Inventory>), ModuleError> {
        self.inventory
            .get()
            .ok_or_else(|| ModuleError::Failed("no inventory loaded".into()))
    }

    /// The connected cluster for a task (connections are reused for the whole run).
    async fn cluster(&self, conn: &Conn, vars: &Value) -> Result<Cluster, ModuleError> {
        let kubeconfig = conn
            .kubeconfig
            .clone()
            .or_else(|| var_str(vars, VAR_KUBECONFIG))
            .map(PathBuf::from);
        let context = conn.context.clone().or_else(|| var_str(vars, VAR_CONTEXT));
        let timeout = conn.request_timeout;
        let key = (kubeconfig.clone(), context.clone(), timeout);
        let mut clusters = self.clusters.lock().await;
        if let Some(c) = clusters.get(&key) {
            return Ok(c.clone());
        }
        let target = Target {
            kubeconfig,
            context,
            request_timeout: Duration::from_secs(timeout.max(1)),
        };
        let c = rookery_kube::connect(&target).await.map_err(kube_failed)?;
        clusters.insert(key, c.clone());
        Ok(c)
    }

    /// Validate and render the stack (once per run and inputs). Validation errors are
    /// printed as `rookery apply` prints them; the task fails naming the stack.
    async fn rendered(&self, a: &StackInput) -> Result<Arc<Rendered>, ModuleError> {
        let key = format!("{a:?}");
        let mut stacks = self.stacks.lock().await;
        if let Some(r) = stacks.get(&key) {
            return Ok(r.clone());
        }
        let (inv_path, _) = self.inventory()?;
        let input = StackArgs {
            inventory: inv_path.clone(),
            limit: a.limit.clone(),
            stack: a.stack.clone(),
            facts: a.facts.clone(),
            probe: a.facts.is_none(),
            bundle_dir: a.bundle_dir.clone(),
            connect: self.ssh.clone(),
            probe_timeout: 60,
            include_loop: a.include_loop,
        };
        let out = self.out;
        let desired = not_send(move || async move {
            crate::commands::apply::desired_state(&input, &out)
                .await
                .map(|(_, desired, _)| desired)
        })
        .await?
        .map_err(|_| {
            ModuleError::Failed(format!(
                "the stack `{}` cannot be applied (see the errors above; `rookery plan` \
                     shows them all)",
                a.stack.display()
            ))
        })?;
        let r = Arc::new(Rendered {
            desired,
            stack_dir: crate::cluster::stack_dir(&a.stack),
        });
        stacks.insert(key, r.clone());
        Ok(r)
    }
}

fn var_str(vars: &Value, name: &str) -> Option<String> {
    vars.get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn kube_failed(e: KubeError) -> ModuleError {
    failure(Failure::from(e))
}

fn failure(f: Failure) -> ModuleError {
    ModuleError::Failed(match f.hint {
        Some(h) => format!("{} (hint: {h})", f.message),
        None => f.message,
    })
}

/// Register the cluster modules (and `prepare_devices` with `stack:`) into `registry`.
pub fn register(registry: &mut Registry, env: &Arc<KubeEnv>) {
    registry.register(Arc::new(K8sModule { env: env.clone() }));
    registry.register(Arc::new(K8sInfoModule { env: env.clone() }));
    registry.register(Arc::new(KubeconfigModule { env: env.clone() }));
    registry.register(Arc::new(StorageStackModule { env: env.clone() }));
    registry.register(Arc::new(
        rookery_playbook::modules::PrepareDevicesModule::with_stack_devices(Arc::new(
            StackDeviceSource { env: env.clone() },
        )),
    ));
}

/// A string argument; empty means "not given" (templates of unset options render to "").
fn opt(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn flag(f: &Option<Flex>, what: &str, default: bool) -> Result<bool, ModuleError> {
    match f {
        None => Ok(default),
        Some(Flex::Str(s)) if s.trim().is_empty() => Ok(default),
        Some(f) => f.as_bool(what),
    }
}

fn number(f: &Option<Flex>, what: &str, default: u64) -> Result<u64, ModuleError> {
    match f {
        None => Ok(default),
        Some(Flex::Str(s)) if s.trim().is_empty() => Ok(default),
        Some(f) => f.as_u64(what),
    }
}

/// How to reach the cluster (every cluster module takes these).
#[derive(Debug, Clone)]
struct Conn {
    kubeconfig: Option<String>,
    context: Option<String>,
    request_timeout: u64,
}

impl Conn {
    fn new(
        kubeconfig: Option<String>,
        context: Option<String>,
        timeout: &Option<Flex>,
    ) -> Result<Self, ModuleError> {
        Ok(Conn {
            kubeconfig: opt(kubeconfig),
            context: opt(context),
            request_timeout: number(timeout, "request_timeout", 30)?,
        })
    }
}

fn resolve_path(dir: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        dir.join(path)
    }
}

/// Secret values out of anything a task reports or registers.
fn mask_secret(mut v: Value) -> Value {
    if v.get("kind").and_then(Value::as_str) == Some("Secret") {
        for field in ["data", "stringData"] {
            if let Some(m) = v.get_mut(field).and_then(Value::as_object_mut) {
                for x in m.values_mut() {
                    *x = Value::String("<hidden>".into());
                }
            }
        }
        if let Some(a) = v
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
    v
}

fn object_ref(v: &Value) -> Result<ObjectRef, String> {
    let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    Ok(ObjectRef {
        api_version: s("/apiVersion").ok_or("an object without `apiVersion`")?,
        kind: s("/kind").ok_or("an object without `kind`")?,
        name: s("/metadata/name").ok_or("an object without `metadata.name`")?,
        namespace: s("/metadata/namespace"),
    })
}

/// How often a kind the server does not serve is looked up again (every 0.5 s).
const DISCOVERY_TRIES: usize = 10;

/// Fill in the namespace of a namespaced object that has none (`namespace:` argument, else
/// `default`), so the ref and the body agree; a cluster-scoped object keeps none.
async fn place(
    resolver: &Resolver,
    body: &mut Value,
    default_ns: Option<&str>,
) -> Result<ObjectRef, ModuleError> {
    let mut id = object_ref(body).map_err(|e| ModuleError::Args(e.to_string()))?;
    // A CRD applied by the task before is Established a moment before discovery serves its
    // kind; misses are not cached, so asking again sees it.
    let mut found = None;
    for _ in 0..DISCOVERY_TRIES {
        found = resolver.resolve(&gvk_of(&id)).await.map_err(kube_failed)?;
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let Some((_, caps)) = found else {
        return Err(ModuleError::Failed(format!(
            "{id}: the cluster does not serve {} {} (is its CRD installed?)",
            id.api_version, id.kind
        )));
    };
    match caps.scope {
        kube::discovery::Scope::Cluster => {
            id.namespace = None;
            if let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("namespace");
            }
        }
        kube::discovery::Scope::Namespaced => {
            if id.namespace.is_none() {
                let ns = default_ns.unwrap_or("default").to_string();
                if let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.insert("namespace".into(), Value::String(ns.clone()));
                }
                id.namespace = Some(ns);
            }
        }
    }
    Ok(id)
}

// ---------------------------------------------------------------------------------------
// k8s

struct K8sModule {
    env: Arc<KubeEnv>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct K8sArgs {
    state: Option<String>,
    definition: Option<Value>,
    src: Option<String>,
    template: Option<String>,
    api_version: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
    force_conflicts: Option<Flex>,
    wait: Option<Flex>,
    wait_condition: Option<WaitCondition>,
    wait_timeout: Option<Flex>,
    kubeconfig: Option<String>,
    context: Option<String>,
    request_timeout: Option<Flex>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitCondition {
    #[serde(rename = "type")]
    type_: String,
    status: Option<Flex>,
    reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Present,
    Absent,
}

enum Source {
    Inline(Vec<Value>),
    File(String),
    Template(String),
    /// `state: absent` by `api_version`/`kind`/`name`.
    Named(Value),
}

impl Module for K8sModule {
    fn name(&self) -> &'static str {
        "k8s"
    }
    fn runs_on(&self) -> RunsOn {
        RunsOn::Controller
    }
    fn check_args(&self, args: &Value) -> Result<(), String> {
        parse_args::<K8sArgs>(args).map(|_| ())
    }
    fn validate(&self, args: &Value) -> Result<Box<dyn Action>, ModuleError> {
        let a: K8sArgs = parse_args(args).map_err(ModuleError::Args)?;
        let state = match opt(a.state.clone()).as_deref() {
            None | Some("present") => State::Present,
            Some("absent") => State::Absent,
            Some(other) => {
                return Err(ModuleError::Args(format!(
                    "state must be `present` or `absent`, not `{other}`"
                )));
            }
        };
        let given = [
            a.definition.is_some(),
            a.src.is_some(),
            a.template.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if given > 1 {
            return Err(ModuleError::Args(
                "give one of `definition`, `src` and `template`".into(),
            ));
        }
        let source = if let Some(d) = a.definition.clone() {
            Source::Inline(definition_objects(d)?)
        } else if let Some(s) = opt(a.src.clone()) {
            Source::File(s)
        } else if let Some(t) = opt(a.template.clone()) {
            Source::Template(t)
        } else {
            match (opt(a.kind.clone()), opt(a.name.clone())) {
                (Some(kind), Some(name)) if state == State::Absent => Source::Named(json!({
                    "apiVersion": opt(a.api_version.clone()).unwrap_or_else(|| "v1".into()),
                    "kind": kind,
                    "metadata": {"name": name},
                })),
                _ => {
                    return Err(ModuleError::Args(
                        "give `definition`, `src` or `template` (or, with `state: absent`, \
                         `kind` and `name`)"
                            .into(),
                    ));
                }
            }
        };
        Ok(Box::new(K8sAction {
            env: self.env.clone(),
            state,
            source,
            namespace: opt(a.namespace),
            force: flag(&a.force_conflicts, "force_conflicts", false)?,
            wait: flag(&a.wait, "wait", false)? || a.wait_condition.is_some(),
            wait_condition: a.wait_condition,
            wait_timeout: Duration::from_secs(number(&a.wait_timeout, "wait_timeout", 120)?),
            conn: Conn::new(a.kubeconfig, a.context, &a.request_timeout)?,
            planned: Vec::new(),
            cluster: None,
        }))
    }
}

/// A definition: one object, a list of them, or YAML text (one or more documents).
fn definition_objects(d: Value) -> Result<Vec<Value>, ModuleError> {
    let objects = match d {
        Value::Array(a) => a,
        Value::String(text) => parse_manifests(&text, Path::new("(definition)"))?,
        other => vec![other],
    };
    for o in &objects {
        if !o.is_object() {
            return Err(ModuleError::Args(format!(
                "definition: each object must be a mapping, found {o}"
            )));
        }
    }
    Ok(objects)
}

fn parse_manifests(text: &str, path: &Path) -> Result<Vec<Value>, ModuleError> {
    let nodes = rookery_yaml::parse_all(text, path, rookery_yaml::Schema::Core)
        .map_err(|e| ModuleError::Failed(rookery_diagnostic::one_line(&e)))?;
    Ok(nodes.iter().map(|n| n.to_json()).collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Update,
    Delete,
}

struct K8sAction {
    env: Arc<KubeEnv>,
    state: State,
    source: Source,
    namespace: Option<String>,
    force: bool,
    wait: bool,
    wait_condition: Option<WaitCondition>,
    wait_timeout: Duration,
    conn: Conn,
    /// Every object of the task with what must happen to it (None: nothing).
    planned: Vec<(ObjectRef, Value, Option<Op>)>,
    cluster: Option<Cluster>,
}

impl K8sAction {
    fn objects(&self, ctx: &ModuleCtx<'_>) -> Result<Vec<Value>, ModuleError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| ModuleError::LocalFile {
                path: p.to_path_buf(),
                source,
            })
        };
        match &self.source {
            Source::Inline(v) => Ok(v.clone()),
            Source::Named(v) => Ok(vec![v.clone()]),
            Source::File(f) => {
                let p = resolve_path(ctx.playbook_dir, f);
                parse_manifests(&read(&p)?, &p)
            }
            Source::Template(t) => {
                // Ansible looks in the playbook's `templates/` first.
                let in_templates = ctx.playbook_dir.join("templates").join(t);
                let p = if !Path::new(t).is_absolute() && in_templates.exists() {
                    in_templates
                } else {
                    resolve_path(ctx.playbook_dir, t)
                };
                let text = read(&p)?;
                let rendered = ctx.templar.render_str(&text, ctx.vars).map_err(|source| {
                    ModuleError::Template {
                        path: p.clone(),
                        source,
                    }
                })?;
                parse_manifests(&rendered, &p)
            }
        }
    }

    async fn wait_all(&self, resolver: &Resolver) -> Result<Vec<String>, ModuleError> {
        let mut notes = Vec::new();
        if !self.wait {
            return Ok(notes);
        }
        for (id, _, _) in &self.planned {
            let note = match (self.state, &self.wait_condition) {
                (State::Absent, _) => {
                    wait_until(
                        resolver,
                        id,
                        "k8s wait",
                        self.wait_timeout,
                        |live| match live {
                            None => Health::Ready { note: None },
                            Some(_) => Health::Progressing {
                                reason: "still exists (being deleted)".into(),
                                no_status: false,
                            },
                        },
                    )
                    .await
                }
                (State::Present, Some(c)) => {
                    let want = c
                        .status
                        .as_ref()
                        .map(Flex::text)
                        .unwrap_or_else(|| "True".into());
                    let c = c.clone();
                    wait_until(resolver, id, "k8s wait", self.wait_timeout, move |live| {
                        condition_health(live, &c, &want)
                    })
                    .await
                }
                (State::Present, None) => {
                    let rule = rule_for(id.group(), &id.kind).unwrap_or(Readiness::Exists);
                    wait_until(
                        resolver,
                        id,
                        "k8s wait",
                        self.wait_timeout,
                        |live| match live {
                            None => Health::Progressing {
                                reason: "does not exist".into(),
                                no_status: false,
                            },
                            Some(_) if rule == Readiness::Exists => Health::Ready { note: None },
                            Some(v) => health::assess(&rule, v),
                        },
                    )
                    .await
                }
            }
            .map_err(kube_failed)?;
            if let Some(n) = note {
                notes.push(format!("{id}: {n}"));
            }
        }
        Ok(notes)
    }

    fn result(&self, changed: bool, msg: String, live: Vec<Value>) -> ModuleResult {
        let mut r = if changed {
            ModuleResult::changed()
        } else {
            ModuleResult::ok()
        }
        .with_msg(msg);
        let objects: Vec<Value> = live.into_iter().map(mask_secret).collect();
        if let Some(first) = objects.first()
            && objects.len() == 1
        {
            r = r.with("result", first.clone());
        }
        r.with("results", Value::Array(objects))
    }
}

fn condition_health(live: Option<&Value>, c: &WaitCondition, want: &str) -> Health {
    let Some(v) = live else {
        return Health::Progressing {
            reason: "does not exist".into(),
            no_status: false,
        };
    };
    match health::condition(v, &c.type_) {
        None => Health::Progressing {
            reason: format!("no `{}` condition yet", c.type_),
            no_status: true,
        },
        Some(cond) => {
            let status = cond.get("status").and_then(Value::as_str).unwrap_or("");
            let reason = cond.get("reason").and_then(Value::as_str).unwrap_or("");
            let ok =
                status.eq_ignore_ascii_case(want) && c.reason.as_ref().is_none_or(|r| r == reason);
            if ok {
                Health::Ready { note: None }
            } else {
                let msg = cond.get("message").and_then(Value::as_str).unwrap_or("");
                Health::Progressing {
                    reason: format!("condition {} is {status} ({reason}) {msg}", c.type_)
                        .trim_end()
                        .to_string(),
                    no_status: false,
                }
            }
        }
    }
}

fn created_diff(id: &ObjectRef, dry: Value) -> String {
    let shown = rookery_yaml::to_string(&mask_secret(normalize(dry)));
    let mut s = format!("--- {id} (absent)\n+++ {id} (after apply)\n");
    for l in shown.lines() {
        s.push('+');
        s.push_str(l);
        s.push('\n');
    }
    s
}

fn deleted_diff(id: &ObjectRef, live: Value) -> String {
    let shown = rookery_yaml::to_string(&mask_secret(normalize(live)));
    let mut s = format!("--- {id} (live)\n+++ {id} (absent)\n");
    for l in shown.lines() {
        s.push('-');
        s.push_str(l);
        s.push('\n');
    }
    s
}

#[async_trait::async_trait]
impl Action for K8sAction {
    async fn query(&mut self, ctx: &ModuleCtx<'_>) -> Result<Query, ModuleError> {
        let objects = self.objects(ctx)?;
        let cluster = self.env.cluster(&self.conn, ctx.vars).await?;
        let resolver = Resolver::new(cluster.clone());
        self.cluster = Some(cluster);
        let mut changes = Vec::new();
        let mut diffs = Vec::new();
        let mut live_all = Vec::new();
        self.planned.clear();
        for mut body in objects {
            let id = place(&resolver, &mut body, self.namespace.as_deref()).await?;
            let live = get_json(&resolver, &id).await.map_err(kube_failed)?;
            let op = match self.state {
                State::Absent => live.clone().map(|l| {
                    diffs.push(deleted_diff(&id, l));
                    Op::Delete
                }),
                State::Present => {
                    // The server says what it would store: defaults, admission, conflicts.
                    let dry = server_side_apply(&resolver, &id, &body, self.force, true)
                        .await
                        .map_err(kube_failed)?;
                    match &live {
                        None => {
                            diffs.push(created_diff(&id, dry));
                            Some(Op::Create)
                        }
                        Some(l) => {
                            match compare(
                                id.kind == "Secret" && id.group().is_empty(),
                                l.clone(),
                                dry,
                            ) {
                                ObjectDiff::Update { diff } => {
                                    diffs.push(format!("{id}:\n{diff}"));
                                    Some(Op::Update)
                                }
                                _ => None,
                            }
                        }
                    }
                }
            };
            if let Some(l) = &live {
                live_all.push(l.clone());
            }
            if let Some(op) = op {
                changes.push(format!(
                    "{} {id}",
                    match op {
                        Op::Create => "create",
                        Op::Update => "configure",
                        Op::Delete => "delete",
                    }
                ));
            }
            self.planned.push((id, body, op));
        }
        if changes.is_empty() {
            let notes = if ctx.check_mode {
                Vec::new()
            } else {
                self.wait_all(&resolver).await?
            };
            let mut msg = match self.state {
                State::Present => format!("{} object(s) as defined", self.planned.len()),
                State::Absent => format!("{} object(s) already absent", self.planned.len()),
            };
            for n in notes {
                msg.push_str(&format!("; {n}"));
            }
            return Ok(Query::Matched(self.result(false, msg, live_all)));
        }
        let diff = (ctx.diff && !diffs.is_empty()).then(|| FileDiff {
            path: self
                .planned
                .iter()
                .filter(|(_, _, op)| op.is_some())
                .map(|(id, _, _)| id.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            unified: diffs.join(""),
        });
        Ok(Query::NeedsChange(Change::new(changes, diff)))
    }

    async fn apply(
        &mut self,
        _ctx: &ModuleCtx<'_>,
        change: Change,
    ) -> Result<ModuleResult, ModuleError> {
        let cluster = self
            .cluster
            .clone()
            .ok_or_else(|| ModuleError::Failed("k8s: apply without query".into()))?;
        let resolver = Resolver::new(cluster.clone());
        let mut live_all = Vec::new();
        for (id, body, op) in &self.planned {
            match op {
                Some(Op::Create | Op::Update) => {
                    let applied = server_side_apply(&resolver, id, body, self.force, false)
                        .await
                        .map_err(kube_failed)?;
                    live_all.push(applied);
                }
                Some(Op::Delete) => {
                    let api = resolver
                        .api_for(id)
                        .await
                        .map_err(kube_failed)?
                        .ok_or_else(|| {
                            ModuleError::Failed(format!("{id}: its kind is no longer served"))
                        })?;
                    match cluster
                        .call(
                            "deleting",
                            id,
                            api.delete(&id.name, &DeleteParams::background()),
                        )
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(kube_failed(e)),
                    }
                }
                None => {}
            }
        }
        let notes = self.wait_all(&resolver).await?;
        let mut msg = change.changes.join(", ");
        for n in notes {
            msg.push_str(&format!("; {n}"));
        }
        let mut r = self.result(true, msg, live_all);
        r.diff = change.diff;
        Ok(r)
    }
}

// ---------------------------------------------------------------------------------------
// k8s_info

struct K8sInfoModule {
    env: Arc<KubeEnv>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct K8sInfoArgs {
    api_version: Option<String>,
    kind: String,
    name: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    label_selectors: Vec<String>,
    #[serde(default)]
    field_selectors: Vec<String>,
    kubeconfig: Option<String>,
    context: Option<String>,
    request_timeout: Option<Flex>,
}

struct K8sInfoAction {
    env: Arc<KubeEnv>,
    id: ObjectRef,
    labels: Vec<String>,
    fields: Vec<String>,
    conn: Conn,
}

impl Module for K8sInfoModule {
    fn name(&self) -> &'static str {
        "k8s_info"
    }
    fn runs_on(&self) -> RunsOn {
        RunsOn::Controller
    }
    fn check_args(&self, args: &Value) -> Result<(), String> {
        parse_args::<K8sInfoArgs>(args).map(|_| ())
    }
    fn validate(&self, args: &Value) -> Result<Box<dyn Action>, ModuleError> {
        let a: K8sInfoArgs = parse_args(args).map_err(ModuleError::Args)?;
        Ok(Box::new(K8sInfoAction {
            env: self.env.clone(),
            id: ObjectRef {
                api_version: opt(a.api_version).unwrap_or_else(|| "v1".into()),
                kind: a.kind,
                name: opt(a.name).unwrap_or_default(),
                namespace: opt(a.namespace),
            },
            labels: a.label_selectors,
            fields: a.field_selectors,
            conn: Conn::new(a.kubeconfig, a.context, &a.request_timeout)?,
        }))
    }
}

#[async_trait::async_trait]
impl Action for K8sInfoAction {
    async fn query(&mut self, ctx: &ModuleCtx<'_>) -> Result<Query, ModuleError> {
        let cluster = self.env.cluster(&self.conn, ctx.vars).await?;
        let resolver = Resolver::new(cluster.clone());
        let found = resolver
            .resolve(&gvk_of(&self.id))
            .await
            .map_err(kube_failed)?;
        let Some((ar, caps)) = found else {
            // kubernetes.core.k8s_info's answer for a kind the cluster does not serve.
            return Ok(Query::Matched(
                ModuleResult::ok()
                    .with_msg(format!(
                        "the cluster does not serve {} {}",
                        self.id.api_version, self.id.kind
                    ))
                    .with("api_found", false)
                    .with("resources", Value::Array(vec![])),
            ));
        };
        let api = resolver.api(&ar, &caps, self.id.namespace.as_deref());
        let api = match (&caps.scope, &self.id.namespace) {
            // No namespace: every namespace, as kubectl get -A.
            (kube::discovery::Scope::Namespaced, None) => {
                kube::Api::all_with(cluster.client.clone(), &ar)
            }
            _ => api,
        };
        let resources: Vec<Value> = if self.id.name.is_empty() {
            let mut lp = ListParams::default();
            if !self.labels.is_empty() {
                lp = lp.labels(&self.labels.join(","));
            }
            if !self.fields.is_empty() {
                lp = lp.fields(&self.fields.join(","));
            }
            let list = cluster
                .call("listing", &self.id.kind, api.list(&lp))
                .await
                .map_err(kube_failed)?;
            list.items
                .into_iter()
                .filter_map(|o| serde_json::to_value(o).ok())
                .map(|mut v| {
                    // List items carry no apiVersion/kind; Ansible's results do.
                    if let Some(m) = v.as_object_mut() {
                        m.insert("apiVersion".into(), json!(ar.api_version));
                        m.insert("kind".into(), json!(ar.kind));
                    }
                    v
                })
                .collect()
        } else {
            let got = cluster
                .call("reading", &self.id, api.get_opt(&self.id.name))
                .await
                .map_err(kube_failed)?;
            got.and_then(|o| serde_json::to_value(o).ok())
                .into_iter()
                .collect()
        };
        let resources: Vec<Value> = resources.into_iter().map(mask_secret).collect();
        Ok(Query::Matched(
            ModuleResult::ok()
                .with_msg(format!("{} {}(s) found", resources.len(), self.id.kind))
                .with("api_found", true)
                .with("resources", Value::Array(resources)),
        ))
    }
    async fn apply(&mut self, _: &ModuleCtx<'_>, _: Change) -> Result<ModuleResult, ModuleError> {
        Ok(ModuleResult::ok())
    }
}

// ---------------------------------------------------------------------------------------
// kubeconfig

struct KubeconfigModule {
    env: Arc<KubeEnv>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KubeconfigArgs {
    from_host: Option<String>,
    path: Option<String>,
    api_endpoint: Option<String>,
    kubeconfig: Option<String>,
    context: Option<String>,
    request_timeout: Option<Flex>,
    stack: Option<String>,
}

struct KubeconfigAction {
    env: Arc<KubeEnv>,
    a: KubeconfigArgs,
    timeout: u64,
}

impl Module for KubeconfigModule {
    fn name(&self) -> &'static str {
        "kubeconfig"
    }
    fn runs_on(&self) -> RunsOn {
        RunsOn::Controller
    }
    fn check_args(&self, args: &Value) -> Result<(), String> {
        parse_args::<KubeconfigArgs>(args).map(|_| ())
    }
    fn validate(&self, args: &Value) -> Result<Box<dyn Action>, ModuleError> {
        let a: KubeconfigArgs = parse_args(args).map_err(ModuleError::Args)?;
        let timeout = number(&a.request_timeout, "request_timeout", 30)?;
        let a = KubeconfigArgs {
            from_host: opt(a.from_host),
            path: opt(a.path),
            api_endpoint: opt(a.api_endpoint),
            kubeconfig: opt(a.kubeconfig),
            context: opt(a.context),
            request_timeout: None,
            stack: opt(a.stack),
        };
        if a.from_host.is_some() && a.kubeconfig.is_some() {
            return Err(ModuleError::Args(
                "give `from_host` or `kubeconfig`, not both".into(),
            ));
        }
        Ok(Box::new(KubeconfigAction {
            env: self.env.clone(),
            a,
            timeout,
        }))
    }
}

#[async_trait::async_trait]
impl Action for KubeconfigAction {
    /// Reads only the cluster; the fetched file is stored (0600) even in check mode, because
    /// the tasks after it need it for their dry runs.
    async fn query(&mut self, ctx: &ModuleCtx<'_>) -> Result<Query, ModuleError> {
        let stack: Option<Stack> = match &self.a.stack {
            Some(p) => {
                let p = resolve_path(ctx.playbook_dir, p);
                Some(rookery_stack::yaml::load(&p).map_err(|e| {
                    ModuleError::Failed(format!(
                        "stack `{}`: {}",
                        p.display(),
                        rookery_diagnostic::one_line(&e)
                    ))
                })?)
            }
            None => None,
        };
        let args = ClusterArgs {
            kubeconfig: self.a.kubeconfig.as_ref().map(PathBuf::from),
            context: self.a.context.clone(),
            kubeconfig_from: self.a.from_host.clone(),
            api_endpoint: self.a.api_endpoint.clone(),
            request_timeout: self.timeout,
        };
        let fetched = self.a.from_host.is_some()
            || (self.a.kubeconfig.is_none()
                && std::env::var_os("KUBECONFIG").is_none()
                && stack.as_ref().is_some_and(|s| s.kubeconfig.is_some()));
        let host = self.a.from_host.clone().or_else(|| {
            stack
                .as_ref()
                .and_then(|s| s.kubeconfig.as_ref())
                .map(|k| k.from_host.clone())
        });
        let before = host
            .as_ref()
            .filter(|_| fetched)
            .and_then(|h| std::fs::read(rookery_kube::kubeconfig::store_path(h)).ok());
        let (_, inventory) = self.env.inventory()?;
        let quiet = Output {
            quiet: true,
            ..self.env.out
        };
        let file = match (&self.a.from_host, &self.a.path) {
            // `path`: where the K3s server keeps it (the stack's `kubeconfig.path`).
            (Some(h), Some(path)) => {
                let endpoint = self.a.api_endpoint.clone().or_else(|| {
                    stack
                        .as_ref()
                        .and_then(|s| s.kubeconfig.as_ref())
                        .and_then(|k| k.api_endpoint.clone())
                });
                Some(
                    crate::cluster::fetch_kubeconfig(
                        inventory,
                        h,
                        endpoint.as_deref(),
                        Some(path),
                        &self.env.ssh,
                        &quiet,
                    )
                    .await
                    .map_err(failure)?,
                )
            }
            _ => crate::cluster::kubeconfig_file(
                &args,
                stack.as_ref(),
                Some(inventory),
                &self.env.ssh,
                &quiet,
            )
            .await
            .map_err(failure)?,
        };
        let changed = fetched
            && match &file {
                Some(f) => std::fs::read(f).ok() != before,
                None => false,
            };
        let conn = Conn {
            kubeconfig: file.as_ref().map(|p| p.display().to_string()),
            context: self.a.context.clone(),
            request_timeout: self.timeout,
        };
        let cluster = self.env.cluster(&conn, &Value::Null).await?;
        let mut facts = Map::new();
        facts.insert(
            VAR_KUBECONFIG.into(),
            conn.kubeconfig
                .clone()
                .map(Value::String)
                .unwrap_or_default(),
        );
        facts.insert(
            VAR_CONTEXT.into(),
            self.a
                .context
                .clone()
                .map(Value::String)
                .unwrap_or_default(),
        );
        let what = match (&host, fetched) {
            (Some(h), true) => format!("fetched from {h}, "),
            _ => String::new(),
        };
        let mut r = if changed {
            ModuleResult::changed()
        } else {
            ModuleResult::ok()
        }
        .with_msg(format!(
            "{what}API server {} answers{}",
            cluster.server,
            conn.kubeconfig
                .as_ref()
                .map(|k| format!(" (kubeconfig {k})"))
                .unwrap_or_default()
        ))
        .with("server", cluster.server.clone())
        .with("kubeconfig", facts[VAR_KUBECONFIG].clone())
        .with("context", facts[VAR_CONTEXT].clone());
        r.facts = Some(facts);
        Ok(Query::Matched(r))
    }
    async fn apply(&mut self, _: &ModuleCtx<'_>, _: Change) -> Result<ModuleResult, ModuleError> {
        Ok(ModuleResult::ok())
    }
}

// ---------------------------------------------------------------------------------------
// storage_stack

struct StorageStackModule {
    env: Arc<KubeEnv>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageStackArgs {
    stack: String,
    stage: String,
    facts: Option<String>,
    bundle_dir: Option<String>,
    limit: Option<String>,
    include_loop: Option<Flex>,
    wait: Option<Flex>,
    timeout: Option<Flex>,
    stage_timeouts: Option<Value>,
    force_conflicts: Option<Flex>,
    kubeconfig: Option<String>,
    context: Option<String>,
    request_timeout: Option<Flex>,
}

/// What a rendered stack depends on (the cache key).
#[derive(Debug, Clone)]
struct StackInput {
    stack: PathBuf,
    facts: Option<PathBuf>,
    bundle_dir: Option<PathBuf>,
    limit: Option<String>,
    include_loop: bool,
}

struct StorageStackAction {
    env: Arc<KubeEnv>,
    input: StackInput,
    stage: Stage,
    wait: bool,
    timeout: Option<Duration>,
    force: bool,
    conn: Conn,
    ready: Option<(Cluster, Arc<Rendered>)>,
}

impl Module for StorageStackModule {
    fn name(&self) -> &'static str {
        "storage_stack"
    }
    fn runs_on(&self) -> RunsOn {
        RunsOn::Controller
    }
    fn check_args(&self, args: &Value) -> Result<(), String> {
        let a = parse_args::<StorageStackArgs>(args)?;
        // A literal stage name is checked at load time; a template only when it runs.
        if !a.stage.contains("{{") && Stage::from_name(&a.stage).is_none() {
            return Err(stage_error(&a.stage));
        }
        Ok(())
    }
    fn validate(&self, args: &Value) -> Result<Box<dyn Action>, ModuleError> {
        let a: StorageStackArgs = parse_args(args).map_err(ModuleError::Args)?;
        let stage = Stage::from_name(a.stage.trim())
            .ok_or_else(|| ModuleError::Args(stage_error(&a.stage)))?;
        // The stage's own deadline: `stage_timeouts[stage]`, else the engine's default.
        let mut timeout = None;
        if let Some(Value::Object(m)) = &a.stage_timeouts
            && let Some(v) = m.get(stage.name())
        {
            let f: Flex = serde_json::from_value(v.clone())
                .map_err(|e| ModuleError::Args(format!("stage_timeouts: {e}")))?;
            timeout = Some(Duration::from_secs(f.as_u64("stage_timeouts")?));
        }
        if let Some(t) = &a.timeout
            && !matches!(t, Flex::Str(s) if s.trim().is_empty())
        {
            timeout = Some(Duration::from_secs(t.as_u64("timeout")?));
        }
        Ok(Box::new(StorageStackAction {
            env: self.env.clone(),
            input: StackInput {
                stack: PathBuf::from(a.stack.trim()),
                facts: opt(a.facts).map(PathBuf::from),
                bundle_dir: opt(a.bundle_dir).map(PathBuf::from),
                limit: opt(a.limit),
                include_loop: flag(&a.include_loop, "include_loop", false)?,
            },
            stage,
            wait: flag(&a.wait, "wait", true)?,
            timeout,
            force: flag(&a.force_conflicts, "force_conflicts", false)?,
            conn: Conn::new(a.kubeconfig, a.context, &a.request_timeout)?,
            ready: None,
        }))
    }
}

/// Run the engine's apply or diff, whose futures the compiler cannot prove `Send` through
/// their stream closures (a known limit with higher-ranked lifetimes), on a blocking thread
/// of the same runtime: the module's own future stays `Send`, as the playbook engine needs.
async fn not_send<T, F, Fut>(f: F) -> Result<T, ModuleError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(f()))
        .await
        .map_err(|e| ModuleError::Failed(format!("the cluster task ended abnormally: {e}")))
}

fn stage_error(s: &str) -> String {
    format!(
        "unknown stage `{s}`; stages: {}",
        Stage::ALL
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Stage events as `rookery apply` shows them, numbered by the stage's place in the whole
/// stack ([5/9]) rather than within this one-stage apply ([1/1]).
struct StageNumbering(Arc<dyn Reporter>);

impl Reporter for StageNumbering {
    fn event(&self, event: Event) {
        let event = match event {
            Event::StageStarted {
                stage,
                title,
                objects,
                ..
            } => Event::StageStarted {
                stage,
                title,
                index: Stage::ALL.iter().position(|s| *s == stage).unwrap_or(0) + 1,
                total: Stage::ALL.len(),
                objects,
            },
            other => other,
        };
        self.0.event(event)
    }
}

#[async_trait::async_trait]
impl Action for StorageStackAction {
    async fn query(&mut self, ctx: &ModuleCtx<'_>) -> Result<Query, ModuleError> {
        let mut input = self.input.clone();
        input.stack = resolve_path(ctx.playbook_dir, &input.stack.display().to_string());
        input.facts = input
            .facts
            .map(|f| resolve_path(ctx.playbook_dir, &f.display().to_string()));
        let rendered = self.env.rendered(&input).await?;
        let cluster = self.env.cluster(&self.conn, ctx.vars).await?;
        self.ready = Some((cluster.clone(), rendered.clone()));
        let stage_objects = rendered
            .desired
            .objects
            .iter()
            .filter(|o| o.stage == self.stage)
            .count();
        if stage_objects == 0 {
            return Ok(Query::Matched(ModuleResult::ok().with_msg(format!(
                "the stack has nothing in stage `{}`",
                self.stage.name()
            ))));
        }
        if !ctx.check_mode {
            // Applying is the engine's job, and it says what changed: server-side apply of
            // what differs, then the stage's health wait (even when nothing changed).
            return Ok(Query::NeedsChange(Change::new(
                vec![format!("stage {}", self.stage.name())],
                None,
            )));
        }
        // Check mode: the server-side dry run `rookery diff` makes, for this stage only.
        let opts = DiffOptions {
            force_conflicts: self.force,
            secrets_base: rendered.stack_dir.clone(),
            concurrency: 16,
            stages: Some(vec![self.stage]),
        };
        let r2 = rendered.clone();
        let report = not_send(move || async move {
            rookery_kube::diff::diff(&cluster, &r2.desired, &opts).await
        })
        .await?
        .map_err(kube_failed)?;
        let shown = crate::commands::diff::human(&report, &rendered.desired, 0);
        if report.refused() > 0 {
            return Err(ModuleError::Failed(format!(
                "stage `{}`: the server would refuse {} object(s):\n{shown}",
                self.stage.name(),
                report.refused()
            )));
        }
        if !report.has_changes() {
            return Ok(Query::Matched(ModuleResult::ok().with_msg(format!(
                "stage `{}`: {stage_objects} object(s) unchanged",
                self.stage.name()
            ))));
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for e in &report.objects {
            let k = match e.diff {
                ObjectDiff::Create { .. } => "create",
                ObjectDiff::Update { .. } => "change",
                _ => continue,
            };
            *counts.entry(k).or_default() += 1;
        }
        let changes = counts
            .iter()
            .map(|(k, n)| format!("{n} to {k}"))
            .collect::<Vec<_>>();
        let diff = ctx.diff.then(|| FileDiff {
            path: format!("stage {}", self.stage.name()),
            unified: shown,
        });
        Ok(Query::NeedsChange(Change::new(changes, diff)))
    }

    async fn apply(
        &mut self,
        _ctx: &ModuleCtx<'_>,
        _change: Change,
    ) -> Result<ModuleResult, ModuleError> {
        let (cluster, rendered) = self
            .ready
            .clone()
            .ok_or_else(|| ModuleError::Failed("storage_stack: apply without query".into()))?;
        let mut stage_timeouts = BTreeMap::new();
        if let Some(t) = self.timeout {
            stage_timeouts.insert(self.stage, t);
        }
        let opts = ApplyOptions {
            force_conflicts: self.force,
            wait: self.wait,
            stage_timeouts,
            stages: Some(vec![self.stage]),
            secrets_base: rendered.stack_dir.clone(),
            ..ApplyOptions::default()
        };
        let started = Instant::now();
        let progress = StageNumbering(self.env.progress.clone());
        let report = not_send(move || async move {
            rookery_kube::apply(&cluster, &rendered.desired, &opts, &progress).await
        })
        .await?
        .map_err(|e| ModuleError::Failed(describe(&e)))?;
        let (mut created, mut configured, mut unchanged) = (0, 0, 0);
        let mut notes = Vec::new();
        for s in &report.stages {
            created += s.created;
            configured += s.configured;
            unchanged += s.unchanged;
            notes.extend(s.notes.iter().map(|(o, n)| format!("{o}: {n}")));
        }
        let mut msg = format!(
            "stage `{}`: {created} created, {configured} configured, {unchanged} unchanged; \
             ready in {:.1} s",
            self.stage.name(),
            started.elapsed().as_secs_f64()
        );
        for n in &notes {
            msg.push_str(&format!("; note: {n}"));
        }
        let changed = created + configured > 0;
        let mut r = if changed {
            ModuleResult::changed()
        } else {
            ModuleResult::ok()
        }
        .with_msg(msg)
        .with("stage", self.stage.name())
        .with("created", created)
        .with("configured", configured)
        .with("unchanged", unchanged);
        if !notes.is_empty() {
            r = r.with("notes", notes);
        }
        Ok(r)
    }
}

// ---------------------------------------------------------------------------------------
// prepare_devices: {stack: FILE}

struct StackDeviceSource {
    env: Arc<KubeEnv>,
}

impl StackDevices for StackDeviceSource {
    fn selections(
        &self,
        stack: &Path,
        host: &str,
        facts: &rookery_proto::HostFacts,
    ) -> Result<Vec<rookery_devices::spec::Selection>, String> {
        let (_, inventory) = self.env.inventory().map_err(|e| e.to_string())?;
        let stack_model: Stack = rookery_stack::yaml::load(stack).map_err(|e| {
            format!(
                "stack `{}`: {}",
                stack.display(),
                rookery_diagnostic::one_line(&e)
            )
        })?;
        let facts = [(host.to_string(), facts.clone())];
        let cluster = stack_plan(&stack_model, stack, inventory, &facts)?;
        // Only this host's facts are at hand: a node matched to it by inventory name while
        // its hostname differs might be another host's by hostname. Refuse rather than guess.
        for n in &cluster.nodes {
            if let NodeMatch::HostnameDiffers { host: h, hostname } = &n.matched
                && h == host
            {
                return Err(format!(
                    "{}: stack node `{}` is inventory host {host}, whose hostname is `{hostname}`; \
                     run `rookery prepare --stack` (it sees every host) or name the node by its \
                     hostname",
                    n.path, n.name
                ));
            }
        }
        Ok(hosts::prepare_selections(&cluster, host))
    }
}

/// The stack's nodes and devices resolved against the inventory and the facts at hand, by
/// the matcher `rookery plan` uses (one function for `prepare --stack` and the playbook).
pub fn stack_plan(
    stack: &Stack,
    stack_path: &Path,
    inventory: &Inventory,
    facts: &[(String, rookery_proto::HostFacts)],
) -> Result<hosts::PlannedCluster, String> {
    let all = inventory
        .select("all")
        .map_err(|e| format!("inventory: {e}"))?;
    let mut inputs = Vec::with_capacity(all.len());
    for h in all {
        let devices = rookery_devices::spec::parse_host_specs(
            &h.name,
            h.vars.get(rookery_devices::spec::VAR),
        )
        .map_err(|e| e.to_string())?;
        inputs.push(HostInput {
            devices,
            facts: facts
                .iter()
                .find(|(n, _)| *n == h.name)
                .map(|(_, f)| f.clone()),
            ..HostInput::new(h.name.clone())
        });
    }
    let selection_hosts = match stack
        .ceph_cluster
        .storage
        .device_selection
        .as_ref()
        .and_then(|s| s.hosts.as_deref())
    {
        Some(pattern) => Some(
            inventory
                .select(pattern)
                .map_err(|e| {
                    format!(
                        "{}: cephCluster.storage.deviceSelection.hosts: {e}",
                        stack_path.display()
                    )
                })?
                .iter()
                .map(|h| h.name.clone())
                .collect::<Vec<_>>(),
        ),
        None => None,
    };
    Ok(hosts::plan_cluster(
        stack,
        &inputs,
        selection_hosts.as_deref(),
        FactsSource::Probe,
    ))
}
