//! `storage_stack`: one stage of the stack, applied and waited for by the engine of `rookery apply`.

use super::*;

pub(super) struct StorageStackModule {
    pub(super) env: Arc<KubeEnv>,
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

/// Stage events as `rookery apply` shows them, numbered by the stage's place among the
/// stack's stages ([5/9], the same numbers a whole `rookery apply` prints) rather than within
/// this one-stage apply ([1/1]).
struct StageNumbering {
    inner: Arc<dyn Reporter>,
    /// The stages the stack has objects in, in apply order.
    stages: Vec<Stage>,
}

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
                index: self.stages.iter().position(|s| *s == stage).unwrap_or(0) + 1,
                total: self.stages.len(),
                objects,
            },
            other => other,
        };
        self.inner.event(event)
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
        let progress = StageNumbering {
            inner: self.env.progress.clone(),
            stages: Stage::ALL
                .into_iter()
                .filter(|s| rendered.desired.objects.iter().any(|o| o.stage == *s))
                .collect(),
        };
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
