//! `debug`: print `msg` (templated) or the value of `var` (a variable name or path).
//! Runs on the control machine.

use serde::Deserialize;
use serde_json::Value;

use super::{
    Action, Change, Module, ModuleCtx, ModuleError, ModuleResult, Query, RunsOn, parse_args,
};

pub struct DebugModule;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    msg: Option<Value>,
    var: Option<String>,
    /// Accepted for Ansible compatibility; every debug prints.
    #[allow(dead_code)]
    verbosity: Option<Value>,
}

impl Module for DebugModule {
    fn name(&self) -> &'static str {
        "debug"
    }
    fn runs_on(&self) -> RunsOn {
        RunsOn::Controller
    }
    fn raw_args(&self) -> &'static [&'static str] {
        &["var"]
    }
    fn check_args(&self, args: &Value) -> Result<(), String> {
        let a: Args = parse_args(args)?;
        if a.msg.is_some() && a.var.is_some() {
            return Err("give `msg` or `var`, not both".into());
        }
        Ok(())
    }
    fn validate(&self, args: &Value) -> Result<Box<dyn Action>, ModuleError> {
        self.check_args(args).map_err(ModuleError::Args)?;
        let a: Args = parse_args(args).map_err(ModuleError::Args)?;
        Ok(Box::new(DebugAction {
            msg: a.msg,
            var: a.var,
        }))
    }
}

struct DebugAction {
    msg: Option<Value>,
    var: Option<String>,
}

#[async_trait::async_trait]
impl Action for DebugAction {
    async fn query(&mut self, ctx: &ModuleCtx<'_>) -> Result<Query, ModuleError> {
        if let Some(var) = &self.var {
            let path = var
                .trim()
                .trim_start_matches("{{")
                .trim_end_matches("}}")
                .trim();
            let value = match crate::expr::parse(path) {
                Ok(e @ crate::expr::Expr::Var(..)) => eval_path(&e, ctx.vars),
                _ => crate::template::lookup_path(ctx.vars, path).cloned(),
            };
            let value = value.unwrap_or_else(|| Value::String("VARIABLE IS NOT DEFINED!".into()));
            return Ok(Query::Matched(ModuleResult::ok().with(path, value)));
        }
        let msg = self
            .msg
            .clone()
            .unwrap_or_else(|| Value::String("Hello world!".into()));
        let mut r = ModuleResult::ok();
        match msg {
            Value::String(s) => r.msg = Some(s),
            other => {
                r.data.insert("msg".into(), other);
            }
        }
        Ok(Query::Matched(r))
    }
    async fn apply(&mut self, _: &ModuleCtx<'_>, _: Change) -> Result<ModuleResult, ModuleError> {
        Ok(ModuleResult::ok())
    }
}

/// Value of a variable expression like `a.b['c']`, or None when undefined.
fn eval_path(e: &crate::expr::Expr, vars: &Value) -> Option<Value> {
    // Reuse the condition evaluator's path rules through a tiny wrapper: `x is defined`
    // tells definedness, and the value comes from a direct walk.
    let crate::expr::Expr::Var(root, acc) = e else {
        return None;
    };
    let mut cur = vars.get(root)?.clone();
    for a in acc {
        cur = match a {
            crate::expr::Access::Key(k) => cur.get(k)?.clone(),
            crate::expr::Access::Index(ix) => match ix.as_ref() {
                crate::expr::Expr::Lit(Value::String(k)) => cur.get(k)?.clone(),
                crate::expr::Expr::Lit(Value::Number(n)) => {
                    cur.get(usize::try_from(n.as_u64()?).ok()?)?.clone()
                }
                _ => return None,
            },
        };
    }
    Some(cur)
}
