//! `command` and `shell`, with Ansible's argument names: a free-form string or `cmd`,
//! `argv` (command only), `chdir`, `creates`, `removes`, `stdin`, `executable` (shell only).
//! `creates`/`removes` are the query: when they say the work is done, nothing runs. Otherwise
//! check mode reports "skipped" like Ansible (a command's effect cannot be predicted).

use rookery_proto::{ExecRequest, Request, Response, StatRequest};
use serde::Deserialize;
use serde_json::Value;

use super::{
    Action, Change, Flex, Module, ModuleCtx, ModuleError, ModuleResult, Query, RunsOn, parse_args,
    unexpected,
};

pub struct CommandModule {
    pub shell: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(rename = "_raw_params")]
    raw: Option<String>,
    cmd: Option<String>,
    argv: Option<Vec<Flex>>,
    chdir: Option<String>,
    creates: Option<String>,
    removes: Option<String>,
    stdin: Option<String>,
    #[serde(default)]
    stdin_add_newline: Option<Flex>,
    executable: Option<String>,
    /// Seconds before the process is killed (rookery extension).
    timeout: Option<Flex>,
}

impl Module for CommandModule {
    fn name(&self) -> &'static str {
        if self.shell { "shell" } else { "command" }
    }
    fn runs_on(&self) -> RunsOn {
        RunsOn::Host
    }
    fn check_args(&self, args: &Value) -> Result<(), String> {
        let a: Args = parse_args(args)?;
        let n = [a.raw.is_some(), a.cmd.is_some(), a.argv.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if n != 1 {
            return Err("give the command once: free-form, `cmd`, or `argv`".into());
        }
        if self.shell && a.argv.is_some() {
            return Err("`argv` belongs to `command`; shell takes a string".into());
        }
        if !self.shell && a.executable.is_some() {
            return Err("`executable` belongs to `shell`".into());
        }
        Ok(())
    }
    fn validate(&self, args: &Value) -> Result<Box<dyn Action>, ModuleError> {
        self.check_args(args).map_err(ModuleError::Args)?;
        let a: Args = parse_args(args).map_err(ModuleError::Args)?;
        let text = a.raw.clone().or(a.cmd.clone());
        let argv = if self.shell {
            let sh = a.executable.clone().unwrap_or_else(|| "/bin/sh".into());
            vec![sh, "-c".into(), text.clone().unwrap_or_default()]
        } else if let Some(v) = &a.argv {
            v.iter().map(Flex::text).collect()
        } else {
            let words = crate::vars::split_words(text.as_deref().unwrap_or(""));
            if words.is_empty() {
                return Err(ModuleError::Args("the command is empty".into()));
            }
            words
        };
        let add_newline = match &a.stdin_add_newline {
            Some(f) => f.as_bool("stdin_add_newline")?,
            None => true,
        };
        let stdin = a.stdin.map(|mut s| {
            if add_newline {
                s.push('\n');
            }
            s
        });
        let timeout = a
            .timeout
            .as_ref()
            .map(|t| t.as_u64("timeout"))
            .transpose()?;
        let display = text.unwrap_or_else(|| argv.join(" "));
        Ok(Box::new(CommandAction {
            argv,
            display,
            chdir: a.chdir,
            creates: a.creates,
            removes: a.removes,
            stdin,
            timeout,
        }))
    }
}

struct CommandAction {
    argv: Vec<String>,
    display: String,
    chdir: Option<String>,
    creates: Option<String>,
    removes: Option<String>,
    stdin: Option<String>,
    timeout: Option<u64>,
}

impl CommandAction {
    /// Relative `creates`/`removes` paths are relative to `chdir` (as in Ansible).
    fn full(&self, p: &str) -> String {
        match &self.chdir {
            Some(d) if !p.starts_with('/') => format!("{}/{p}", d.trim_end_matches('/')),
            _ => p.to_string(),
        }
    }
    async fn exists(&self, ctx: &ModuleCtx<'_>, path: &str) -> Result<bool, ModuleError> {
        let r = ctx
            .agent()?
            .call(Request::Stat(StatRequest {
                path: self.full(path),
                checksum: false,
            }))
            .await?;
        match r {
            Response::Stat(s) => Ok(s.exists),
            other => Err(unexpected("stat", other)),
        }
    }
}

#[async_trait::async_trait]
impl Action for CommandAction {
    async fn query(&mut self, ctx: &ModuleCtx<'_>) -> Result<Query, ModuleError> {
        if let Some(c) = self.creates.clone()
            && self.exists(ctx, &c).await?
        {
            return Ok(Query::Matched(
                ModuleResult::ok()
                    .with_msg(format!("skipped, since {c} exists"))
                    .with("cmd", self.display.clone())
                    .with("rc", 0),
            ));
        }
        if let Some(r) = self.removes.clone()
            && !self.exists(ctx, &r).await?
        {
            return Ok(Query::Matched(
                ModuleResult::ok()
                    .with_msg(format!("skipped, since {r} does not exist"))
                    .with("cmd", self.display.clone())
                    .with("rc", 0),
            ));
        }
        let mut change = Change::new(vec![format!("run `{}`", self.display)], None);
        change.check_result = ModuleResult {
            skipped: true,
            msg: Some("command would have run if not in check mode".into()),
            ..Default::default()
        };
        Ok(Query::NeedsChange(change))
    }

    async fn apply(
        &mut self,
        ctx: &ModuleCtx<'_>,
        _change: Change,
    ) -> Result<ModuleResult, ModuleError> {
        let agent = ctx.agent()?;
        // Without `timeout:`, the run's --timeout: a hung command is killed on the host (its
        // whole process group) instead of running on after the runner gave up.
        let timeout = self
            .timeout
            .unwrap_or_else(|| agent.command_timeout().as_secs().max(1));
        let r = agent
            .call(Request::Exec(ExecRequest {
                argv: self.argv.clone(),
                stdin: self.stdin.clone(),
                cwd: self.chdir.clone(),
                env: vec![],
                timeout_secs: Some(timeout),
            }))
            .await?;
        let Response::Exec(x) = r else {
            return Err(unexpected("exec", r));
        };
        let stdout = x.stdout.strip_suffix('\n').unwrap_or(&x.stdout).to_string();
        let stderr = x.stderr.strip_suffix('\n').unwrap_or(&x.stderr).to_string();
        let lines = |s: &str| -> Value { s.lines().map(|l| Value::from(l.to_string())).collect() };
        let mut res = ModuleResult::changed()
            .with("cmd", self.display.clone())
            .with("rc", x.rc.map(Value::from).unwrap_or(Value::Null))
            .with("stdout_lines", lines(&stdout))
            .with("stderr_lines", lines(&stderr))
            .with("stdout", stdout)
            .with("stderr", stderr)
            .with("delta_ms", x.duration_ms);
        if x.timed_out {
            res.failed = true;
            res.msg = Some(format!(
                "timed out after {timeout}s; its process group was killed on {} (set `timeout:` \
                 on the task or raise --timeout)",
                ctx.host
            ));
        } else if x.truncated {
            res.failed = true;
            res.msg = Some(format!(
                "the command's output on {} passed the capture limit of {} MiB per stream; only \
                 the start was kept (redirect large output to a file on the host)",
                ctx.host,
                rookery_proto::MAX_CAPTURE_BYTES >> 20
            ));
        } else if x.rc != Some(0) {
            res.failed = true;
            res.msg = Some(match x.rc {
                Some(rc) => format!("non-zero return code {rc}"),
                None => "killed by a signal".into(),
            });
        }
        Ok(res)
    }
}
