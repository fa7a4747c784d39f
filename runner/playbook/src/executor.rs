//! The executor: plays in order; within a play, `serial` batches; within a batch, tasks in
//! order, each task on all remaining hosts concurrently (at most `forks` at once). A host
//! that fails (and does not `ignore_errors`) or becomes unreachable drops out for the rest of
//! the run; the others go on. Handlers run at the end of each batch, once, on the hosts that
//! notified them. Connections are opened lazily (a play of only controller-side tasks never
//! connects) and kept for the whole run, one agent session per host.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rookery_inventory::{ConnectionKind, ConnectionSpec};
use rookery_transport::{AgentSession, Connector, HostPanic, SessionError, fan_out};
use serde_json::{Map, Value};

use crate::events::{HostResult, HostStats, Reporter, RunEvent, Status};
use crate::expr;
use crate::language::{Play, Playbook, Serial, Task};
use crate::modules::{ModuleCtx, ModuleError, ModuleResult, Query, Registry, RunsOn};
use crate::template::{Templar, TemplateError};
use crate::vars::{self, VarLayers};

/// A host as the executor needs it (the CLI builds these from the inventory).
#[derive(Debug, Clone)]
pub struct TargetHost {
    pub name: String,
    pub groups: Vec<String>,
    /// Inventory variables (group vars < host vars, already merged).
    pub vars: Map<String, Value>,
    pub connection: ConnectionSpec,
}

/// Where plays find their hosts: an inventory with `--limit` applied.
pub trait HostSource: Send + Sync {
    /// Hosts matching an Ansible pattern, in inventory order.
    fn select(&self, pattern: &str) -> Result<Vec<TargetHost>, String>;
    /// Group name → host names (the `groups` magic variable).
    fn groups(&self) -> BTreeMap<String, Vec<String>>;
}

/// Run-wide settings from the command line.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub check: bool,
    pub diff: bool,
    pub forks: usize,
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    pub extra_vars: Map<String, Value>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            check: false,
            diff: false,
            forks: 50,
            tags: vec![],
            skip_tags: vec![],
            extra_vars: Map::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("play `{play}` ({location}): hosts pattern `{pattern}`: {detail}")]
    Pattern {
        play: String,
        location: String,
        pattern: String,
        detail: String,
    },
    #[error("play `{play}` ({location}): vars_files `{file}`")]
    VarsFile {
        play: String,
        location: String,
        file: String,
        #[source]
        source: vars::VarsError,
    },
    #[error("play `{play}` ({location}): {detail}")]
    Play {
        play: String,
        location: String,
        detail: String,
    },
}

impl rookery_diagnostic::Diagnostic for ExecError {
    /// Every variant is about the playbook or the files it names.
    fn exit_code(&self) -> u8 {
        rookery_diagnostic::exit::INPUT
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub hosts: BTreeMap<String, HostStats>,
    pub failed_hosts: BTreeSet<String>,
    pub unreachable_hosts: BTreeMap<String, String>,
}

impl RunSummary {
    /// Hosts to put in a retry file.
    pub fn retry_hosts(&self) -> BTreeSet<String> {
        let mut s = self.failed_hosts.clone();
        s.extend(self.unreachable_hosts.keys().cloned());
        s
    }
}

/// Is a task selected by `--tags` / `--skip-tags`? (`always` runs unless skipped by name,
/// `never` only when asked for by name; `all` selects everything else.)
pub fn tags_selected(task_tags: &[String], tags: &[String], skip: &[String]) -> bool {
    let has = |t: &str| task_tags.iter().any(|x| x == t);
    if skip
        .iter()
        .any(|s| has(s) || (s == "all" && !has("always")))
    {
        return false;
    }
    if tags.is_empty() {
        return !has("never");
    }
    if has("always") {
        return true;
    }
    tags.iter().any(|t| {
        has(t)
            || (t == "all" && !has("never"))
            || (t == "tagged" && !task_tags.is_empty())
            || (t == "untagged" && task_tags.is_empty())
    })
}

/// Per-host state kept for the whole run.
#[derive(Default)]
struct HostMemory {
    /// set_fact / register / probe results.
    facts: Map<String, Value>,
}

struct HostState {
    target: Arc<TargetHost>,
    facts: Map<String, Value>,
    notified: BTreeSet<String>,
    alive: bool,
}

/// What a task did on one host, for the counters.
struct HostOutcome {
    status: Status,
    unreachable_reason: Option<String>,
}

/// Play-level context shared by the task runs of one batch.
struct PlayCtx<'a> {
    play: &'a Play,
    vars_files: Vec<Map<String, Value>>,
    groups: Value,
    play_hosts: Value,
}

pub struct Executor {
    registry: Arc<Registry>,
    templar: Arc<Templar>,
    connector: Arc<Connector>,
    opts: RunOptions,
    reporter: Arc<dyn Reporter>,
    sessions: tokio::sync::Mutex<HashMap<(String, bool), AgentSession>>,
    local: tokio::sync::OnceCell<Result<AgentSession, String>>,
    unreachable: Mutex<BTreeMap<String, String>>,
}

/// Errors that mean the connection is gone (the host becomes unreachable).
fn is_connection_loss(e: &SessionError) -> bool {
    matches!(e, SessionError::Closed { .. } | SessionError::Write { .. })
}

impl Executor {
    pub fn new(
        registry: Arc<Registry>,
        connector: Arc<Connector>,
        opts: RunOptions,
        reporter: Arc<dyn Reporter>,
    ) -> Self {
        Executor {
            registry,
            templar: Arc::new(Templar::new()),
            connector,
            opts,
            reporter,
            sessions: tokio::sync::Mutex::new(HashMap::new()),
            local: tokio::sync::OnceCell::new(),
            unreachable: Mutex::new(BTreeMap::new()),
        }
    }

    /// Run every play of `pb` against hosts from `source`.
    pub async fn run(
        &self,
        pb: &Playbook,
        source: &dyn HostSource,
    ) -> Result<RunSummary, ExecError> {
        let started = Instant::now();
        self.reporter.event(&RunEvent::PlaybookStart {
            playbook: pb.path.display().to_string(),
            check: self.opts.check,
        });
        let mut stats: BTreeMap<String, HostStats> = BTreeMap::new();
        let mut memory: HashMap<String, HostMemory> = HashMap::new();
        let mut dead: BTreeSet<String> = BTreeSet::new();
        let mut failed: BTreeSet<String> = BTreeSet::new();
        let groups = source.groups();
        let groups_value = serde_json::to_value(&groups).unwrap_or(Value::Null);
        let result = async {
            for play in &pb.plays {
                let fatal = self
                    .run_play(
                        play,
                        source,
                        &groups_value,
                        &mut stats,
                        &mut memory,
                        &mut dead,
                        &mut failed,
                    )
                    .await?;
                if !fatal.is_empty() {
                    self.reporter.event(&RunEvent::Aborted {
                        play: play.name.clone(),
                        hosts: fatal,
                    });
                    break;
                }
            }
            Ok::<(), ExecError>(())
        }
        .await;
        self.close_sessions().await;
        result?;
        let unreachable = self
            .unreachable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.reporter.event(&RunEvent::Recap {
            hosts: stats.clone(),
            unreachable: unreachable.clone(),
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
        Ok(RunSummary {
            hosts: stats,
            failed_hosts: failed,
            unreachable_hosts: unreachable,
        })
    }

    async fn close_sessions(&self) {
        let sessions: Vec<AgentSession> =
            self.sessions.lock().await.drain().map(|(_, s)| s).collect();
        let closes = sessions.into_iter().map(AgentSession::close);
        futures::future::join_all(closes).await;
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_play(
        &self,
        play: &Play,
        source: &dyn HostSource,
        groups: &Value,
        stats: &mut BTreeMap<String, HostStats>,
        memory: &mut HashMap<String, HostMemory>,
        dead: &mut BTreeSet<String>,
        failed: &mut BTreeSet<String>,
    ) -> Result<Vec<String>, ExecError> {
        let play_err = |detail: String| ExecError::Play {
            play: play.name.clone(),
            location: play.location.to_string(),
            detail,
        };
        // The pattern may use extra vars (`hosts: "{{ target }}"`).
        let pattern = self
            .templar
            .render_str(&play.hosts, &Value::Object(self.opts.extra_vars.clone()))
            .map_err(|e| play_err(format!("hosts: {e}")))?;
        let hosts: Vec<TargetHost> = source
            .select(&pattern)
            .map_err(|detail| ExecError::Pattern {
                play: play.name.clone(),
                location: play.location.to_string(),
                pattern: pattern.clone(),
                detail,
            })?
            .into_iter()
            .filter(|h| !dead.contains(&h.name))
            .collect();
        self.reporter.event(&RunEvent::PlayStart {
            name: play.name.clone(),
            hosts: hosts.iter().map(|h| h.name.clone()).collect(),
            location: play.location.to_string(),
        });
        if hosts.is_empty() {
            self.reporter.event(&RunEvent::NoHosts {
                play: play.name.clone(),
            });
            self.reporter.event(&RunEvent::PlayEnd {
                name: play.name.clone(),
            });
            return Ok(Vec::new());
        }
        for h in &hosts {
            stats.entry(h.name.clone()).or_default();
        }
        // vars_files are rendered with play vars and extra vars (not per host).
        let mut base = play.vars.clone();
        base.extend(self.opts.extra_vars.clone());
        let base = vars::resolve_map(base, &self.templar).vars;
        let mut vars_files = Vec::new();
        for f in &play.vars_files {
            let name = self
                .templar
                .render_str(f, &base)
                .map_err(|e| play_err(format!("vars_files `{f}`: {e}")))?;
            let path = resolve_rel(&play.dir, &name);
            let m = vars::load_vars_file(&path).map_err(|source| ExecError::VarsFile {
                play: play.name.clone(),
                location: play.location.to_string(),
                file: path.display().to_string(),
                source,
            })?;
            vars_files.push(m);
        }
        let play_hosts: Value = hosts
            .iter()
            .map(|h| Value::String(h.name.clone()))
            .collect();
        let pctx = PlayCtx {
            play,
            vars_files,
            groups: groups.clone(),
            play_hosts,
        };
        let batches = batches(hosts, &play.serial);
        let n_batches = batches.len();
        let gather = play.gather_facts.then(|| gather_task(play));
        for (bi, batch) in batches.into_iter().enumerate() {
            if !play.serial.is_empty() {
                self.reporter.event(&RunEvent::BatchStart {
                    play: play.name.clone(),
                    batch: bi + 1,
                    batches: n_batches,
                    hosts: batch.iter().map(|h| h.name.clone()).collect(),
                });
            }
            let mut states: Vec<HostState> = batch
                .into_iter()
                .map(|t| HostState {
                    facts: memory
                        .get(&t.name)
                        .map(|m| m.facts.clone())
                        .unwrap_or_default(),
                    target: Arc::new(t),
                    notified: BTreeSet::new(),
                    alive: true,
                })
                .collect();
            for task in gather.iter().chain(play.tasks.iter()) {
                let mut tags = play.tags.clone();
                tags.extend(task.tags.iter().cloned());
                // Fact gathering always runs (like Ansible's implicit `always` tag).
                let is_gather = gather.as_ref().is_some_and(|g| std::ptr::eq(g, task));
                if !is_gather && !tags_selected(&tags, &self.opts.tags, &self.opts.skip_tags) {
                    continue;
                }
                let mut idx: Vec<usize> = (0..states.len()).filter(|&i| states[i].alive).collect();
                if idx.is_empty() {
                    break;
                }
                let alive_before: Vec<usize> = idx.clone();
                self.run_task(
                    &pctx,
                    task,
                    false,
                    &mut states,
                    &mut idx,
                    stats,
                    dead,
                    failed,
                )
                .await;
                if play.any_errors_fatal {
                    let lost: Vec<String> = alive_before
                        .iter()
                        .filter(|&&i| !states[i].alive)
                        .map(|&i| states[i].target.name.clone())
                        .collect();
                    if !lost.is_empty() {
                        for s in &states {
                            memory.entry(s.target.name.clone()).or_default().facts =
                                s.facts.clone();
                        }
                        self.reporter.event(&RunEvent::PlayEnd {
                            name: play.name.clone(),
                        });
                        return Ok(lost);
                    }
                }
            }
            // Handlers, in definition order, on the hosts that notified them.
            for h in &play.handlers {
                let mut idx: Vec<usize> = (0..states.len())
                    .filter(|&i| {
                        let s = &states[i];
                        s.alive
                            && (h.name.as_ref().is_some_and(|n| s.notified.contains(n))
                                || h.listen.iter().any(|l| s.notified.contains(l)))
                    })
                    .collect();
                if idx.is_empty() {
                    continue;
                }
                self.run_task(&pctx, h, true, &mut states, &mut idx, stats, dead, failed)
                    .await;
            }
            // Ansible stops a serial play when a whole batch failed.
            let batch_failed = !states.is_empty() && states.iter().all(|s| !s.alive);
            for s in states {
                memory.entry(s.target.name.clone()).or_default().facts = s.facts;
            }
            if batch_failed && bi + 1 < n_batches {
                break;
            }
        }
        self.reporter.event(&RunEvent::PlayEnd {
            name: play.name.clone(),
        });
        Ok(Vec::new())
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_task(
        &self,
        pctx: &PlayCtx<'_>,
        task: &Task,
        handler: bool,
        states: &mut [HostState],
        idx: &mut Vec<usize>,
        stats: &mut BTreeMap<String, HostStats>,
        dead: &mut BTreeSet<String>,
        failed: &mut BTreeSet<String>,
    ) {
        let started = Instant::now();
        let name = task.display_name();
        self.reporter.event(&RunEvent::TaskStart {
            name: name.clone(),
            module: task.module.clone(),
            location: task.location.to_string(),
            handler,
            hosts: idx.len(),
        });
        let chosen: Vec<usize> = std::mem::take(idx);
        let selected = states
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| chosen.contains(i))
            .map(|(_, s)| s);
        let task_name = name_of(task);
        let task_name = &task_name;
        let results = fan_out(selected, self.opts.forks, |st| {
            self.run_on_host(pctx, task, task_name, st)
        })
        .await;
        for (&i, r) in chosen.iter().zip(results) {
            let st = &mut states[i];
            let host = st.target.name.clone();
            let out = r.unwrap_or_else(|p| self.panicked(task, &host, &p));
            stats.entry(host.clone()).or_default().count(out.status);
            match out.status {
                Status::Failed => {
                    st.alive = false;
                    dead.insert(host.clone());
                    failed.insert(host);
                }
                Status::Unreachable => {
                    st.alive = false;
                    dead.insert(host.clone());
                    self.unreachable
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(host)
                        .or_insert_with(|| out.unreachable_reason.unwrap_or_default());
                }
                _ => {}
            }
        }
        self.reporter.event(&RunEvent::TaskEnd {
            name,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
    }

    /// A host whose task panicked: reported and counted as failed, like any failure.
    fn panicked(&self, task: &Task, host: &str, p: &HostPanic) -> HostOutcome {
        self.reporter.event(&RunEvent::HostResult(HostResult {
            host: host.to_string(),
            task: task.display_name(),
            status: Status::Failed,
            item: None,
            loop_summary: false,
            msg: Some(format!(
                "task `{}` ({}): {p}",
                task.display_name(),
                task.location
            )),
            changes: vec![],
            diff: None,
            result: Value::Null,
            delegated: task.delegate_to.is_some(),
            check_mode: self.opts.check,
            duration_ms: 0,
        }));
        HostOutcome {
            status: Status::Failed,
            unreachable_reason: None,
        }
    }

    fn magic(&self, pctx: &PlayCtx<'_>, st: &HostState, check: bool) -> Map<String, Value> {
        let mut m = Map::new();
        let name = &st.target.name;
        m.insert("inventory_hostname".into(), Value::String(name.clone()));
        m.insert(
            "inventory_hostname_short".into(),
            Value::String(name.split('.').next().unwrap_or(name).to_string()),
        );
        m.insert(
            "group_names".into(),
            st.target
                .groups
                .iter()
                .filter(|g| g.as_str() != "all" && g.as_str() != "ungrouped")
                .map(|g| Value::String(g.clone()))
                .collect(),
        );
        m.insert("groups".into(), pctx.groups.clone());
        m.insert("ansible_play_hosts_all".into(), pctx.play_hosts.clone());
        m.insert(
            "playbook_dir".into(),
            Value::String(pctx.play.dir.display().to_string()),
        );
        m.insert("ansible_check_mode".into(), Value::Bool(check));
        m
    }

    /// Run one task (all its loop items) on one host and report it.
    async fn run_on_host(
        &self,
        pctx: &PlayCtx<'_>,
        task: &Task,
        name: &str,
        st: &mut HostState,
    ) -> HostOutcome {
        let started = Instant::now();
        let check = task
            .check_mode
            .or(pctx.play.check_mode)
            .unwrap_or(self.opts.check);
        // The run's mode (not a task's `check_mode` override), so `check_mode: false` tasks
        // can still tell they are part of a check run.
        let run_check = pctx.play.check_mode.unwrap_or(self.opts.check);
        let magic = self.magic(pctx, st, run_check);
        let layers = VarLayers {
            inventory: Some(&st.target.vars),
            play: Some(&pctx.play.vars),
            vars_files: &pctx.vars_files,
            task: Some(&task.vars),
            facts: Some(&st.facts),
            extra: Some(&self.opts.extra_vars),
            magic: Some(&magic),
        };
        let resolved = layers.resolve(&self.templar);
        let host_name = st.target.name.clone();
        let secrets = secret_values(&resolved.vars);
        let report = |status: Status,
                      r: &ModuleResult,
                      item: Option<String>,
                      summary: bool,
                      changes: Vec<String>,
                      ms: u64| {
            let mut ev = HostResult {
                host: host_name.clone(),
                task: name.to_string(),
                status,
                item,
                loop_summary: summary,
                msg: r.msg.clone(),
                changes,
                diff: r.diff.clone(),
                result: r.registered(),
                delegated: task.delegate_to.is_some(),
                check_mode: check,
                duration_ms: ms,
            };
            scrub(&mut ev, &secrets);
            self.reporter.event(&RunEvent::HostResult(ev));
        };
        // Loop items.
        let items: Option<Vec<Value>> = match &task.loop_ {
            None => None,
            Some(l) => match self.templar.render_value(l, &resolved.vars) {
                Ok(Value::Array(a)) if task.loop_flatten => Some(
                    a.into_iter()
                        .flat_map(|x| match x {
                            Value::Array(inner) => inner,
                            other => vec![other],
                        })
                        .collect(),
                ),
                Ok(Value::Array(a)) => Some(a),
                Ok(other) => {
                    let r = fail_result(format!(
                        "{}: loop must be a list, but it rendered to {other}",
                        task.location
                    ));
                    let status = settle(task, Status::Failed);
                    report(status, &r, None, false, vec![], elapsed_ms(started));
                    return self.finish(task, st, status, r, None);
                }
                Err(e) => {
                    let r = fail_result(template_msg(task, "loop", &e, &resolved.broken));
                    let status = settle(task, Status::Failed);
                    report(status, &r, None, false, vec![], elapsed_ms(started));
                    return self.finish(task, st, status, r, None);
                }
            },
        };
        let Some(items) = items else {
            let (status, r, changes, unreachable) =
                self.run_item(pctx, task, st, &resolved, check, None).await;
            report(status, &r, None, false, changes, elapsed_ms(started));
            return self.finish(task, st, status, r, unreachable);
        };
        let mut results = Vec::new();
        let mut statuses = Vec::new();
        let mut unreachable_reason = None;
        for item in items {
            let item_started = Instant::now();
            let mut vars = resolved.vars.clone();
            if let Value::Object(m) = &mut vars {
                m.insert(task.loop_var.clone(), item.clone());
            }
            let label = match &task.loop_label {
                Some(l) => self
                    .templar
                    .render_str(l, &vars)
                    .unwrap_or_else(|_| l.clone()),
                None => match &item {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            };
            let item_resolved = vars::Resolved {
                vars,
                broken: resolved.broken.clone(),
            };
            let (status, mut r, changes, unreachable) = self
                .run_item(pctx, task, st, &item_resolved, check, Some(&item))
                .await;
            report(
                status,
                &r,
                Some(label),
                false,
                changes,
                elapsed_ms(item_started),
            );
            r.data.insert(task.loop_var.clone(), item);
            results.push(r.registered());
            statuses.push(status);
            if status == Status::Unreachable {
                unreachable_reason = unreachable;
                break;
            }
        }
        let agg = if statuses.contains(&Status::Unreachable) {
            Status::Unreachable
        } else if statuses.contains(&Status::Failed) {
            Status::Failed
        } else if statuses.contains(&Status::Ignored) {
            Status::Ignored
        } else if statuses.contains(&Status::Changed) {
            Status::Changed
        } else if !statuses.is_empty() && statuses.iter().all(|s| *s == Status::Skipped) {
            Status::Skipped
        } else {
            Status::Ok
        };
        let mut r = ModuleResult {
            changed: statuses.contains(&Status::Changed),
            failed: matches!(agg, Status::Failed | Status::Ignored),
            skipped: agg == Status::Skipped,
            msg: match agg {
                Status::Failed | Status::Ignored => Some("one or more items failed".into()),
                _ => None,
            },
            ..Default::default()
        };
        r.data.insert("results".into(), Value::Array(results));
        report(agg, &r, None, true, vec![], elapsed_ms(started));
        // Facts from items were applied as they came; register the aggregate.
        self.finish(task, st, agg, r, unreachable_reason)
    }

    /// Register the result, remember notifications, and turn it into an outcome.
    fn finish(
        &self,
        task: &Task,
        st: &mut HostState,
        status: Status,
        r: ModuleResult,
        unreachable_reason: Option<String>,
    ) -> HostOutcome {
        if let Some(reg) = &task.register {
            st.facts.insert(reg.clone(), r.registered());
        }
        if status == Status::Changed {
            st.notified.extend(task.notify.iter().cloned());
        }
        HostOutcome {
            status,
            unreachable_reason,
        }
    }

    /// One module run: when → template args → validate → query → (apply) →
    /// changed_when/failed_when. Returns status, result, what changed, unreachable reason.
    async fn run_item(
        &self,
        pctx: &PlayCtx<'_>,
        task: &Task,
        st: &mut HostState,
        resolved: &vars::Resolved,
        check: bool,
        item: Option<&Value>,
    ) -> (Status, ModuleResult, Vec<String>, Option<String>) {
        let (status, r, changes, unreachable) = self
            .run_item_inner(pctx, task, st, resolved, check, item)
            .await;
        (settle(task, status), r, changes, unreachable)
    }

    async fn run_item_inner(
        &self,
        pctx: &PlayCtx<'_>,
        task: &Task,
        st: &mut HostState,
        resolved: &vars::Resolved,
        check: bool,
        item: Option<&Value>,
    ) -> (Status, ModuleResult, Vec<String>, Option<String>) {
        let _ = item;
        let vars = &resolved.vars;
        for cond in &task.when {
            match expr::eval_condition(cond, vars) {
                Ok(true) => {}
                Ok(false) => {
                    let r = ModuleResult {
                        skipped: true,
                        msg: Some("Conditional result was False".into()),
                        ..Default::default()
                    }
                    .with("false_condition", cond.clone());
                    return (Status::Skipped, r, vec![], None);
                }
                Err(e) => {
                    let r = fail_result(format!(
                        "task `{}` ({}): when: {}",
                        task.display_name(),
                        task.location,
                        explain_expr(&e, &resolved.broken)
                    ));
                    return (Status::Failed, r, vec![], None);
                }
            }
        }
        let Some(module) = self.registry.get(&task.module).cloned() else {
            return (
                Status::Failed,
                fail_result(format!("unknown module `{}`", task.module)),
                vec![],
                None,
            );
        };
        // Template the arguments (except those the module reads as expressions or names).
        let raw = module.raw_args();
        let mut args = Map::new();
        if let Value::Object(m) = &task.args {
            for (k, v) in m {
                if raw.contains(&k.as_str()) {
                    args.insert(k.clone(), v.clone());
                    continue;
                }
                match self.templar.render_value(v, vars) {
                    Ok(x) => {
                        args.insert(k.clone(), x);
                    }
                    Err(e) => {
                        let r = fail_result(template_msg(task, k, &e, &resolved.broken));
                        return (Status::Failed, r, vec![], None);
                    }
                }
            }
        }
        let mut action = match module.validate(&Value::Object(args)) {
            Ok(a) => a,
            Err(e) => {
                let r = fail_result(format!(
                    "task `{}` ({}): module `{}`: {e}",
                    task.display_name(),
                    task.location,
                    task.module
                ));
                return (Status::Failed, r, vec![], None);
            }
        };
        let delegated = task.delegate_to.is_some();
        let agent = if module.runs_on() == RunsOn::Controller {
            None
        } else if delegated {
            match self.local_session(&st.target).await {
                Ok(s) => Some(s),
                Err(e) => {
                    return (
                        Status::Failed,
                        fail_result(format!("control machine agent: {e}")),
                        vec![],
                        None,
                    );
                }
            }
        } else {
            let become_ = task.become_.or(pctx.play.become_);
            match self.session(&st.target, become_).await {
                Ok(s) => Some(s),
                Err(reason) => {
                    let r = fail_result(reason.clone());
                    return (Status::Unreachable, r, vec![], Some(reason));
                }
            }
        };
        let ctx = ModuleCtx {
            host: &st.target.name,
            agent: agent.as_ref(),
            check_mode: check,
            diff: self.opts.diff,
            vars,
            templar: &self.templar,
            playbook_dir: &pctx.play.dir,
        };
        let outcome = match action.query(&ctx).await {
            Ok(Query::Matched(r)) => Ok((r, vec![])),
            Ok(Query::NeedsChange(c)) => {
                if check {
                    Ok((c.check_result.clone(), c.changes.clone()))
                } else {
                    let changes = c.changes.clone();
                    action.apply(&ctx, c).await.map(|r| (r, changes))
                }
            }
            Err(e) => Err(e),
        };
        let (mut r, changes) = match outcome {
            Ok(x) => x,
            Err(ModuleError::Session(e)) if is_connection_loss(&e) && !delegated => {
                let reason = e.to_string();
                return (
                    Status::Unreachable,
                    fail_result(reason.clone()),
                    vec![],
                    Some(reason),
                );
            }
            Err(e) => {
                let msg = format!(
                    "task `{}` ({}): {}",
                    task.display_name(),
                    task.location,
                    rookery_diagnostic::one_line(&e)
                );
                return (Status::Failed, fail_result(msg), vec![], None);
            }
        };
        if let Some(f) = r.facts.clone() {
            st.facts.extend(f);
        }
        // changed_when / failed_when see the result under the `register` name.
        if !r.skipped && (!task.changed_when.is_empty() || !task.failed_when.is_empty()) {
            let mut v = vars.clone();
            if let (Value::Object(m), Some(reg)) = (&mut v, &task.register) {
                m.insert(reg.clone(), r.registered());
            }
            for (conds, is_changed) in [(&task.changed_when, true), (&task.failed_when, false)] {
                if conds.is_empty() {
                    continue;
                }
                let mut all = true;
                for c in conds.iter() {
                    match expr::eval_condition(c, &v) {
                        Ok(b) => all &= b,
                        Err(e) => {
                            let which = if is_changed {
                                "changed_when"
                            } else {
                                "failed_when"
                            };
                            let r2 = fail_result(format!(
                                "task `{}` ({}): {which}: {}",
                                task.display_name(),
                                task.location,
                                explain_expr(&e, &resolved.broken)
                            ));
                            return (Status::Failed, r2, vec![], None);
                        }
                    }
                }
                if is_changed {
                    r.changed = all;
                } else {
                    r.failed = all;
                    if all && r.msg.is_none() {
                        r.msg = Some("failed_when condition was true".into());
                    }
                }
                if let (Value::Object(m), Some(reg)) = (&mut v, &task.register) {
                    m.insert(reg.clone(), r.registered());
                }
            }
        }
        let status = if r.failed {
            Status::Failed
        } else if r.skipped {
            Status::Skipped
        } else if r.changed {
            Status::Changed
        } else {
            Status::Ok
        };
        (status, r, changes, None)
    }

    /// The host's agent session (opened on first use, then reused).
    async fn session(
        &self,
        target: &TargetHost,
        become_: Option<bool>,
    ) -> Result<AgentSession, String> {
        let mut spec = target.connection.clone();
        if let Some(b) = become_ {
            spec.become_ = b;
        }
        let key = (target.name.clone(), spec.become_);
        if let Some(reason) = self
            .unreachable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&target.name)
        {
            return Err(reason.clone());
        }
        // Holding the map lock across connects would serialize hosts; connect outside it.
        if let Some(s) = self.sessions.lock().await.get(&key) {
            return Ok(s.clone());
        }
        match self.connector.connect(&target.name, &spec).await {
            Ok(s) => {
                self.sessions.lock().await.insert(key, s.clone());
                Ok(s)
            }
            Err(e) => {
                let mut msg = rookery_diagnostic::one_line(&e);
                if let Some(h) = rookery_diagnostic::Diagnostic::hint(&e) {
                    msg.push_str(&format!(" (hint: {h})"));
                }
                Err(msg)
            }
        }
    }

    /// An agent on the control machine for `delegate_to: localhost` (one per run).
    async fn local_session(&self, like: &TargetHost) -> Result<AgentSession, String> {
        let r = self
            .local
            .get_or_init(|| async {
                let mut spec = like.connection.clone();
                spec.kind = ConnectionKind::Local;
                spec.address = "localhost".into();
                spec.become_ = false;
                spec.become_user = None;
                spec.become_password = None;
                self.connector
                    .connect("localhost", &spec)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await;
        r.clone()
    }
}

fn name_of(task: &Task) -> String {
    task.display_name()
}

/// String values of variables whose names say they are secrets (`*_password`, `*_token`,
/// ...), at any depth; short values are skipped (redacting "a" would shred every message).
fn secret_values(vars: &Value) -> Vec<String> {
    fn walk(v: &Value, under_secret: bool, out: &mut Vec<String>) {
        match v {
            Value::String(s) if under_secret && s.len() >= 4 => out.push(s.clone()),
            Value::Object(m) => {
                for (k, x) in m {
                    walk(x, under_secret || rookery_inventory::is_secret_name(k), out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, under_secret, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(vars, false, &mut out);
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// Replace secret values in everything a reporter will print or log.
fn scrub(r: &mut HostResult, secrets: &[String]) {
    if secrets.is_empty() {
        return;
    }
    fn text(s: &mut String, secrets: &[String]) {
        for x in secrets {
            if s.contains(x.as_str()) {
                *s = s.replace(x.as_str(), rookery_inventory::REDACTED);
            }
        }
    }
    fn value(v: &mut Value, secrets: &[String]) {
        match v {
            Value::String(s) => text(s, secrets),
            Value::Array(a) => a.iter_mut().for_each(|x| value(x, secrets)),
            Value::Object(m) => m.values_mut().for_each(|x| value(x, secrets)),
            _ => {}
        }
    }
    if let Some(m) = &mut r.msg {
        text(m, secrets);
    }
    for c in &mut r.changes {
        text(c, secrets);
    }
    if let Some(d) = &mut r.diff {
        text(&mut d.unified, secrets);
    }
    value(&mut r.result, secrets);
}

/// A failure of a task with `ignore_errors: true` counts as ignored.
fn settle(task: &Task, status: Status) -> Status {
    if status == Status::Failed && task.ignore_errors {
        Status::Ignored
    } else {
        status
    }
}

fn elapsed_ms(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn fail_result(msg: String) -> ModuleResult {
    ModuleResult {
        failed: true,
        msg: Some(msg),
        ..Default::default()
    }
}

/// A template error naming the task, its location, the argument and the variable; when the
/// variable exists but its own template failed, say why.
fn template_msg(
    task: &Task,
    arg: &str,
    e: &TemplateError,
    broken: &BTreeMap<String, TemplateError>,
) -> String {
    let mut msg = format!(
        "task `{}` ({}): argument `{arg}`: {e}",
        task.display_name(),
        task.location
    );
    if let TemplateError::Undefined { variable } = e {
        let root = variable.split('.').next().unwrap_or(variable);
        if let Some(cause) = broken.get(root) {
            msg.push_str(&format!(
                " (`{root}` is defined, but its value failed to render: {cause})"
            ));
        }
    }
    msg
}

fn explain_expr(e: &expr::ExprError, broken: &BTreeMap<String, TemplateError>) -> String {
    let mut msg = e.to_string();
    if let expr::ExprError::Undefined { variable, .. } = e {
        let root = variable.split(['.', '[']).next().unwrap_or(variable);
        if let Some(cause) = broken.get(root) {
            msg.push_str(&format!(
                " (`{root}` is defined, but its value failed to render: {cause})"
            ));
        }
    }
    msg
}

fn resolve_rel(dir: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        dir.join(path)
    }
}

/// The synthetic fact-gathering task of a play.
fn gather_task(play: &Play) -> Task {
    Task {
        name: Some("Gathering Facts".into()),
        module: "probe".into(),
        args: Value::Object(Map::new()),
        when: vec![],
        register: None,
        loop_: None,
        loop_flatten: false,
        loop_var: "item".into(),
        loop_label: None,
        tags: vec!["always".into()],
        ignore_errors: false,
        changed_when: vec![],
        failed_when: vec![],
        notify: vec![],
        listen: vec![],
        delegate_to: None,
        check_mode: Some(false),
        become_: None,
        vars: Map::new(),
        location: play.location.clone(),
    }
}

/// Batch sizes for `n` hosts under `serial` (the last size repeats).
pub fn batch_sizes(serial: &[Serial], n: usize) -> Vec<usize> {
    if serial.is_empty() || n == 0 {
        return vec![n];
    }
    let mut out = Vec::new();
    let mut left = n;
    let mut i = 0;
    while left > 0 {
        let s = serial[i.min(serial.len() - 1)];
        let size = match s {
            Serial::Count(c) => c,
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            Serial::Percent(p) => ((n as f64) * p / 100.0).floor() as usize,
        }
        .max(1)
        .min(left);
        out.push(size);
        left -= size;
        i += 1;
    }
    out
}

fn batches(hosts: Vec<TargetHost>, serial: &[Serial]) -> Vec<Vec<TargetHost>> {
    let sizes = batch_sizes(serial, hosts.len());
    let mut out = Vec::new();
    let mut it = hosts.into_iter();
    for s in sizes {
        out.push(it.by_ref().take(s).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_batches() {
        assert_eq!(batch_sizes(&[], 5), vec![5]);
        assert_eq!(batch_sizes(&[Serial::Count(2)], 5), vec![2, 2, 1]);
        assert_eq!(
            batch_sizes(&[Serial::Count(1), Serial::Percent(50.0)], 5),
            vec![1, 2, 2]
        );
        assert_eq!(batch_sizes(&[Serial::Percent(30.0)], 10), vec![3, 3, 3, 1]);
    }

    #[test]
    fn tag_selection() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(tags_selected(&t(&[]), &[], &[]));
        assert!(!tags_selected(&t(&["never"]), &[], &[]));
        assert!(tags_selected(&t(&["a"]), &t(&["a"]), &[]));
        assert!(!tags_selected(&t(&["b"]), &t(&["a"]), &[]));
        assert!(tags_selected(&t(&["always"]), &t(&["a"]), &[]));
        assert!(!tags_selected(&t(&["a"]), &[], &t(&["a"])));
        assert!(tags_selected(&t(&["never", "x"]), &t(&["x"]), &[]));
    }
}
