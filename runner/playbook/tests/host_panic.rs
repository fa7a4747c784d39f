//! A host task that panics (a bug in a module) is a failed host with a message, counted in
//! the recap and the failed set, while the other hosts finish the play: the executor runs
//! hosts through `rookery_transport::fan_out`, which keeps every host's outcome.
//!
//! The panicking module is a test fixture registered beside the built-in ones; everything else
//! is the real executor over a real inventory. It runs on the controller, so no agent is
//! needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use rookery_inventory::Inventory;
use rookery_playbook::{
    Action, Change, CollectingReporter, Executor, InventorySource, Module, ModuleCtx, ModuleError,
    ModuleResult, Query, Registry, RunEvent, RunOptions, RunsOn, Status, load_playbook,
};
use rookery_transport::{AgentBinary, ConnectOptions, Connector};
use serde_json::Value;

struct Panicky;

impl Module for Panicky {
    fn name(&self) -> &'static str {
        "panicky"
    }
    fn runs_on(&self) -> RunsOn {
        RunsOn::Controller
    }
    fn check_args(&self, _args: &Value) -> Result<(), String> {
        Ok(())
    }
    fn validate(&self, _args: &Value) -> Result<Box<dyn Action>, ModuleError> {
        Ok(Box::new(PanickyAction))
    }
}

struct PanickyAction;

#[async_trait::async_trait]
impl Action for PanickyAction {
    async fn query(&mut self, ctx: &ModuleCtx<'_>) -> Result<Query, ModuleError> {
        if ctx.host == "h2" {
            panic!("simulated module bug on {}", ctx.host);
        }
        Ok(Query::Matched(ModuleResult::ok()))
    }
    async fn apply(
        &mut self,
        _ctx: &ModuleCtx<'_>,
        _change: Change,
    ) -> Result<ModuleResult, ModuleError> {
        Ok(ModuleResult::ok())
    }
}

#[tokio::test]
async fn a_panicking_host_task_is_a_failed_host_and_the_others_finish() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inv.yaml");
    std::fs::write(
        &inv,
        "all:\n  hosts:\n    h1: {ansible_connection: local}\n    h2: {ansible_connection: local}\n    h3: {ansible_connection: local}\n",
    )
    .unwrap();
    let pb = dir.path().join("pb.yaml");
    std::fs::write(
        &pb,
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: may panic\n      panicky: {}\n    - name: after\n      debug: {msg: still here}\n",
    )
    .unwrap();
    let inventory = Inventory::load(&inv).unwrap();
    let mut registry = Registry::builtin();
    registry.register(Arc::new(Panicky));
    let registry = Arc::new(registry);
    let playbook = load_playbook(&pb, &registry).unwrap();
    // Never started: the modules here run on the controller.
    let fake_agent = dir.path().join("agent");
    std::fs::write(&fake_agent, b"never run").unwrap();
    let agent = AgentBinary::load(&fake_agent).unwrap();
    let connector = Arc::new(Connector::new(ConnectOptions::new(agent)));
    let reporter = Arc::new(CollectingReporter::default());
    let exec = Executor::new(registry, connector, RunOptions::default(), reporter.clone());
    let source = InventorySource {
        inventory: &inventory,
        limit: None,
    };
    let summary = exec.run(&playbook, &source).await.unwrap();

    assert_eq!(
        summary.failed_hosts.iter().cloned().collect::<Vec<_>>(),
        vec!["h2".to_string()]
    );
    assert_eq!(summary.hosts["h2"].failed, 1);
    let events = reporter.events.lock().unwrap().clone();
    let h2 = events
        .iter()
        .find_map(|e| match e {
            RunEvent::HostResult(r) if r.host == "h2" && r.task == "may panic" => Some(r.clone()),
            _ => None,
        })
        .expect("the panicking host is reported");
    assert_eq!(h2.status, Status::Failed);
    let msg = h2.msg.unwrap_or_default();
    assert!(
        msg.contains("panicked") && msg.contains("simulated module bug on h2"),
        "{msg}"
    );
    // The others went on to the next task.
    let mut after: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::HostResult(r) if r.task == "after" => Some(r.host.clone()),
            _ => None,
        })
        .collect();
    after.sort();
    assert_eq!(after, vec!["h1".to_string(), "h3".to_string()]);
}
