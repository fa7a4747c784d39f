//! Shared test helpers: example stacks, their facts, and the shared upstream directory.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use rookery_stack::hosts::{self, FactsSource, HostInput, PlannedCluster};
use rookery_stack::{Finding, Stack};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `../shared/upstream` next to the repository, or `$ROOKERY_SHARED/upstream`.
pub fn shared_upstream() -> PathBuf {
    if let Some(s) = std::env::var_os("ROOKERY_SHARED") {
        return PathBuf::from(s).join("upstream");
    }
    repo_root().join("../shared/upstream")
}

pub fn example_dir(name: &str) -> PathBuf {
    repo_root().join("stacks").join(name)
}

pub fn load_stack(path: &Path) -> Stack {
    rookery_stack::yaml::load(path).unwrap()
}

/// Hosts named after the facts file's entries, with their facts.
pub fn hosts_from_facts(path: &Path) -> Vec<HostInput> {
    let report = hosts::load_probe_report(path).unwrap();
    report
        .hosts
        .iter()
        .map(|h| HostInput {
            name: h.host.clone(),
            facts: h.facts.clone(),
            probe_status: Some(h.status.clone()),
            devices: Vec::new(),
        })
        .collect()
}

/// Plan an example with its facts.
pub fn plan_example(name: &str) -> (Stack, PlannedCluster, Vec<Finding>) {
    let dir = example_dir(name);
    let stack = load_stack(&dir.join("stack.yaml"));
    let hosts = hosts_from_facts(&dir.join("facts.json"));
    plan(stack, &hosts, &dir, FactsSource::File)
}

pub fn plan(
    stack: Stack,
    hosts: &[HostInput],
    dir: &Path,
    source: FactsSource,
) -> (Stack, PlannedCluster, Vec<Finding>) {
    let cluster = hosts::plan_cluster(&stack, hosts, None, source);
    let findings = rookery_stack::validate::validate(&stack, &cluster, dir);
    (stack, cluster, findings)
}

/// Parse a stack from inline YAML.
pub fn stack(yaml: &str) -> Stack {
    rookery_stack::yaml::parse(yaml, Path::new("inline.yaml")).unwrap()
}

pub fn codes(findings: &[Finding]) -> Vec<&'static str> {
    findings.iter().map(|f| f.code).collect()
}

pub fn errors<'a>(findings: &'a [Finding], code: &str) -> Vec<&'a Finding> {
    findings
        .iter()
        .filter(|f| f.code == code && f.severity == rookery_stack::Severity::Error)
        .collect()
}
