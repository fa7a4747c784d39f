//! A stack file from arbitrary text: parsed, planned against no hosts, validated.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rookery_stack::Stack;
use rookery_stack::hosts::{FactsSource, plan_cluster};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = Path::new("/nonexistent");
    let Ok(stack) = rookery_stack::yaml::parse::<Stack>(text, &dir.join("stack.yaml")) else {
        return;
    };
    let cluster = plan_cluster(&stack, &[], None, FactsSource::None);
    let _ = rookery_stack::validate::validate(&stack, &cluster, dir);
});
