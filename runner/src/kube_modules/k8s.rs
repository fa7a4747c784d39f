//! `k8s`: objects present (server-side apply of what differs) or absent, waited for.

use super::*;

pub(super) struct K8sModule {
    pub(super) env: Arc<KubeEnv>,
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
