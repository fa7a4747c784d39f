//! A `--facts` file (`rookery probe -o json`) from arbitrary text, then planned against the
//! lab stack the way `rookery plan --facts` does, so hostile facts reach the planner too.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rookery_stack::Stack;
use rookery_stack::hosts::{FactsSource, HostInput, parse_probe_report, plan_cluster};

const STACK: &str = include_str!("../../stacks/lab-3node/stack.yaml");

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(report) = parse_probe_report(text, Path::new("facts.json")) else {
        return;
    };
    let stack: Stack = rookery_stack::yaml::parse(STACK, Path::new("stack.yaml"))
        .expect("the lab stack parses");
    let mut hosts: Vec<HostInput> = report
        .hosts
        .iter()
        .map(|h| HostInput::new(h.host.clone()))
        .collect();
    report.apply(&mut hosts);
    let cluster = plan_cluster(&stack, &hosts, None, FactsSource::File);
    let _ = rookery_stack::validate::validate(&stack, &cluster, Path::new("/nonexistent"));
});
