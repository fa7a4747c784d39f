//! `probe`: the agent's facts for the host (OS, kernel, CPUs, memory, block devices with
//! their Ceph verdicts). Read-only; stores `rookery_facts` (the full report) and a small
//! Ansible-shaped `ansible_facts` on the host. `gather_facts: true` runs it first in a play.

use rookery_proto::{HostFacts, ProbeRequest, Request, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    Action, Change, Flex, Module, ModuleCtx, ModuleError, ModuleResult, Query, RunsOn, parse_args,
    unexpected,
};

pub struct ProbeModule;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    include_loop: Option<Flex>,
    #[serde(default)]
    only: Vec<String>,
}

impl Module for ProbeModule {
    fn name(&self) -> &'static str {
        "probe"
    }
    fn runs_on(&self) -> RunsOn {
        RunsOn::Host
    }
    fn check_args(&self, args: &Value) -> Result<(), String> {
        parse_args::<Args>(args).map(|_| ())
    }
    fn validate(&self, args: &Value) -> Result<Box<dyn Action>, ModuleError> {
        let a: Args = parse_args(args).map_err(ModuleError::Args)?;
        Ok(Box::new(ProbeAction {
            req: ProbeRequest {
                include_loop: a
                    .include_loop
                    .map(|f| f.as_bool("include_loop"))
                    .transpose()?
                    .unwrap_or(false),
                only: a.only,
                io_timeout_secs: None,
            },
        }))
    }
}

struct ProbeAction {
    req: ProbeRequest,
}

/// The facts variables for a probe report.
pub fn facts_vars(f: &HostFacts) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "rookery_facts".into(),
        serde_json::to_value(f).unwrap_or(Value::Null),
    );
    m.insert(
        "ansible_facts".into(),
        json!({
            "hostname": f.hostname,
            "distribution": f.os.name,
            "distribution_id": f.os.id,
            "distribution_version": f.os.version_id,
            "kernel": f.kernel,
            "architecture": f.arch,
            "processor_vcpus": f.cpus,
            "memtotal_mb": f.memory_bytes / (1024 * 1024),
        }),
    );
    m
}

#[async_trait::async_trait]
impl Action for ProbeAction {
    async fn query(&mut self, ctx: &ModuleCtx<'_>) -> Result<Query, ModuleError> {
        let r = ctx.agent()?.call(Request::Probe(self.req.clone())).await?;
        let Response::Probe(f) = r else {
            return Err(unexpected("probe", r));
        };
        let vars = facts_vars(&f);
        let mut res = ModuleResult::ok().with_msg(format!(
            "{} ({}, kernel {}, {} CPUs, {} block devices)",
            f.hostname,
            f.os.pretty_name,
            f.kernel,
            f.cpus,
            f.block_devices.len()
        ));
        res.data = vars.clone();
        res.facts = Some(vars);
        Ok(Query::Matched(res))
    }
    async fn apply(&mut self, _: &ModuleCtx<'_>, _: Change) -> Result<ModuleResult, ModuleError> {
        Ok(ModuleResult::ok())
    }
}
