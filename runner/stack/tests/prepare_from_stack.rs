//! `rookery prepare --stack`: the devices prepared on each host are exactly the devices the
//! plan (and so the rendered CephCluster) puts on that host's node, resolved by the same
//! matcher, with the stack's `wipe`; a device the plan cannot find is a prepare-plan problem
//! naming the stack key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use rookery_devices::plan::plan_host;
use rookery_stack::hosts::{self, FactsSource, prepare_selections};

#[test]
fn prepare_plans_exactly_the_devices_the_stack_plan_names() {
    let dir = example_dir("lab-3node");
    let text = std::fs::read_to_string(dir.join("stack.yaml")).unwrap();
    // One device allows a wipe; one names a disk lab-3 does not have.
    let text = text
        .replacen(
            "- { name: /dev/sda, config: { deviceClass: hdd } }",
            "- { name: /dev/sda, wipe: true, config: { deviceClass: hdd } }",
            1,
        )
        .replacen(
            "- name: lab-3\n        devices:\n          - { name: /dev/nvme0n1",
            "- name: lab-3\n        devices:\n          - { name: /dev/nvme9n9",
            1,
        );
    let stack = stack(&text);
    let inputs = hosts_from_facts(&dir.join("facts.json"));
    let cluster = hosts::plan_cluster(&stack, &inputs, None, FactsSource::File);
    for h in &inputs {
        let facts = h.facts.as_ref().unwrap();
        let sel = prepare_selections(&cluster, &h.name);
        let plan = plan_host(&h.name, facts, &sel, false, false);
        let node = cluster
            .nodes
            .iter()
            .find(|n| n.host() == Some(h.name.as_str()))
            .unwrap();
        let planned: Vec<&str> = node
            .devices
            .iter()
            .filter(|d| d.will_be_osd())
            .map(|d| d.id.as_str())
            .collect();
        let prepared: Vec<&str> = plan.entries.iter().map(|e| e.stable_id.as_str()).collect();
        assert_eq!(prepared, planned, "{}", h.name);
        match h.name.as_str() {
            "lab-1" => {
                let sda = plan.entries.iter().find(|e| e.path == "/dev/sda").unwrap();
                assert!(sda.wipe_allowed, "the stack's `wipe: true` is carried");
                let nvme = plan
                    .entries
                    .iter()
                    .find(|e| e.path == "/dev/nvme0n1")
                    .unwrap();
                assert!(!nvme.wipe_allowed);
            }
            "lab-3" => {
                assert_eq!(plan.problems.len(), 1, "{:?}", plan.problems);
                assert_eq!(
                    plan.problems[0].origin,
                    "cephCluster.storage.nodes[2].devices[0]"
                );
            }
            _ => assert!(plan.problems.is_empty()),
        }
    }
    // A host the stack puts nothing on prepares nothing.
    assert!(prepare_selections(&cluster, "not-a-node").is_empty());
}

#[test]
fn device_selection_rules_prepare_what_the_plan_selected() {
    let dir = example_dir("lab-3node");
    let text = std::fs::read_to_string(dir.join("stack.yaml")).unwrap();
    let start = text.find("    nodes:\n").unwrap();
    let end = text.find("storageClasses:").unwrap();
    let text = format!(
        "{}    deviceSelection:\n      deviceClasses: [nvme]\n{}",
        &text[..start],
        &text[end..]
    );
    let stack = stack(&text);
    let inputs = hosts_from_facts(&dir.join("facts.json"));
    let cluster = hosts::plan_cluster(&stack, &inputs, None, FactsSource::File);
    for h in &inputs {
        let sel = prepare_selections(&cluster, &h.name);
        let plan = plan_host(&h.name, h.facts.as_ref().unwrap(), &sel, false, false);
        let paths: Vec<&str> = plan.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/dev/nvme0n1"], "{}", h.name);
    }
}
