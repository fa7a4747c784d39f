//! `assert`: every condition in `that` must hold (conditions use the `when` subset). Runs on
//! the control machine; `fail_msg` (or `msg`) on failure, `success_msg` on success.

use serde::Deserialize;
use serde_json::Value;

use super::{
    Action, Change, Module, ModuleCtx, ModuleError, ModuleResult, Query, RunsOn, parse_args,
};

pub struct AssertModule;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum That {
    // Order matters for untagged: a list must not be taken as one value.
    Many(Vec<Value>),
    One(Value),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    that: That,
    fail_msg: Option<String>,
    msg: Option<String>,
    success_msg: Option<String>,
    #[allow(dead_code)]
    quiet: Option<Value>,
}

fn exprs(t: That) -> Vec<String> {
    let one = |v: Value| match v {
        Value::String(s) => s,
        other => other.to_string(),
    };
    match t {
        That::One(v) => vec![one(v)],
        That::Many(v) => v.into_iter().map(one).collect(),
    }
}

impl Module for AssertModule {
    fn name(&self) -> &'static str {
        "assert"
    }
    fn runs_on(&self) -> RunsOn {
        RunsOn::Controller
    }
    fn raw_args(&self) -> &'static [&'static str] {
        &["that"]
    }
    fn check_args(&self, args: &Value) -> Result<(), String> {
        let a: Args = parse_args(args)?;
        for e in exprs(a.that) {
            crate::expr::parse(&e).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
    fn validate(&self, args: &Value) -> Result<Box<dyn Action>, ModuleError> {
        let a: Args = parse_args(args).map_err(ModuleError::Args)?;
        Ok(Box::new(AssertAction {
            that: exprs(a.that),
            fail_msg: a.fail_msg.or(a.msg),
            success_msg: a.success_msg,
        }))
    }
}

struct AssertAction {
    that: Vec<String>,
    fail_msg: Option<String>,
    success_msg: Option<String>,
}

#[async_trait::async_trait]
impl Action for AssertAction {
    async fn query(&mut self, ctx: &ModuleCtx<'_>) -> Result<Query, ModuleError> {
        for e in &self.that {
            let ok = crate::expr::eval_condition(e, ctx.vars)
                .map_err(|err| ModuleError::Failed(err.to_string()))?;
            if !ok {
                let mut r = ModuleResult::ok()
                    .with("assertion", e.clone())
                    .with("evaluated_to", false);
                r.failed = true;
                r.msg = Some(
                    self.fail_msg
                        .clone()
                        .unwrap_or_else(|| format!("Assertion failed: {e}")),
                );
                return Ok(Query::Matched(r));
            }
        }
        Ok(Query::Matched(
            ModuleResult::ok().with_msg(
                self.success_msg
                    .clone()
                    .unwrap_or_else(|| "All assertions passed".into()),
            ),
        ))
    }
    async fn apply(&mut self, _: &ModuleCtx<'_>, _: Change) -> Result<ModuleResult, ModuleError> {
        Ok(ModuleResult::ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    async fn run(args: Value, vars: Value) -> ModuleResult {
        let t = crate::template::Templar::new();
        let ctx = ModuleCtx {
            host: "h",
            agent: None,
            check_mode: false,
            diff: false,
            vars: &vars,
            templar: &t,
            playbook_dir: std::path::Path::new("."),
        };
        let mut a = AssertModule.validate(&args).unwrap();
        match a.query(&ctx).await {
            Ok(Query::Matched(r)) => r,
            Ok(Query::NeedsChange(_)) => panic!("assert never changes"),
            Err(e) => ModuleResult {
                failed: true,
                msg: Some(e.to_string()),
                ..Default::default()
            },
        }
    }

    #[tokio::test]
    async fn lists_and_single_conditions() {
        let v = json!({"a": 1});
        assert!(!run(json!({"that": ["a == 1"]}), v.clone()).await.failed);
        assert!(
            run(json!({"that": ["a == 1", "a == 2"]}), v.clone())
                .await
                .failed
        );
        assert!(run(json!({"that": "a == 2"}), v.clone()).await.failed);
        let r = run(json!({"that": ["nope.rc == 0"]}), v.clone()).await;
        assert!(r.failed && r.msg.unwrap().contains("undefined variable `nope`"));
        let r = run(json!({"that": "a == 2", "fail_msg": "custom"}), v).await;
        assert_eq!(r.msg.as_deref(), Some("custom"));
    }
}
