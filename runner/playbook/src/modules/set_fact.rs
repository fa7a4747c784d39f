//! `set_fact`: store variables on the host for the rest of the run (above play vars, below
//! extra vars). Runs on the control machine and never reports a change, like Ansible.

use serde_json::Value;

use super::{Action, Change, Module, ModuleCtx, ModuleError, ModuleResult, Query, RunsOn};

pub struct SetFactModule;

impl Module for SetFactModule {
    fn name(&self) -> &'static str {
        "set_fact"
    }
    fn runs_on(&self) -> RunsOn {
        RunsOn::Controller
    }
    fn check_args(&self, args: &Value) -> Result<(), String> {
        let Some(m) = args.as_object() else {
            return Err("set_fact takes a mapping of variables".into());
        };
        if m.contains_key("_raw_params") {
            return Err("set_fact takes a mapping of variables, not a string".into());
        }
        if m.keys().all(|k| k == "cacheable") {
            return Err("set_fact needs at least one variable".into());
        }
        Ok(())
    }
    fn validate(&self, args: &Value) -> Result<Box<dyn Action>, ModuleError> {
        self.check_args(args).map_err(ModuleError::Args)?;
        let mut facts = args.as_object().cloned().unwrap_or_default();
        facts.remove("cacheable");
        Ok(Box::new(SetFactAction { facts }))
    }
}

struct SetFactAction {
    facts: serde_json::Map<String, Value>,
}

#[async_trait::async_trait]
impl Action for SetFactAction {
    async fn query(&mut self, _: &ModuleCtx<'_>) -> Result<Query, ModuleError> {
        let mut r = ModuleResult::ok();
        r.data
            .insert("ansible_facts".into(), Value::Object(self.facts.clone()));
        r.facts = Some(self.facts.clone());
        Ok(Query::Matched(r))
    }
    async fn apply(&mut self, _: &ModuleCtx<'_>, _: Change) -> Result<ModuleResult, ModuleError> {
        Ok(ModuleResult::ok())
    }
}
