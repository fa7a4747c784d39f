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

mod k8s;
mod k8s_info;
mod kubeconfig;
mod stack_devices;
mod storage_stack;

pub use stack_devices::stack_plan;

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
    registry.register(Arc::new(k8s::K8sModule { env: env.clone() }));
    registry.register(Arc::new(k8s_info::K8sInfoModule { env: env.clone() }));
    registry.register(Arc::new(kubeconfig::KubeconfigModule { env: env.clone() }));
    registry.register(Arc::new(storage_stack::StorageStackModule {
        env: env.clone(),
    }));
    registry.register(Arc::new(
        rookery_playbook::modules::PrepareDevicesModule::with_stack_devices(Arc::new(
            stack_devices::StackDeviceSource { env: env.clone() },
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

/// What a rendered stack depends on (the cache key).
#[derive(Debug, Clone)]
pub(super) struct StackInput {
    pub(super) stack: PathBuf,
    pub(super) facts: Option<PathBuf>,
    pub(super) bundle_dir: Option<PathBuf>,
    pub(super) limit: Option<String>,
    pub(super) include_loop: bool,
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
