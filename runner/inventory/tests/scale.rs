//! Loading and selecting stay fast on a large inventory (5,000 hosts in 20 groups).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::fmt::Write;
use std::time::Instant;

use rookery_inventory::Inventory;

#[test]
fn five_thousand_hosts() {
    let mut text = String::from("all:\n  vars:\n    ansible_user: ops\n  children:\n");
    for g in 0..20 {
        write!(
            text,
            "    g{g}:\n      vars:\n        gv: {g}\n      hosts:\n"
        )
        .unwrap();
        for h in 0..250 {
            writeln!(
                text,
                "        h{g}-{h}:\n          ansible_host: 10.{g}.0.{h}"
            )
            .unwrap();
        }
    }
    let start = Instant::now();
    let inv = Inventory::from_str_at(&text, "big.yaml").unwrap();
    let loaded = start.elapsed();
    let all = inv.select("all:!g3:&g*").unwrap();
    let elapsed = start.elapsed();
    println!("load {loaded:?}, select {:?}", elapsed - loaded);
    assert_eq!(inv.hosts().len(), 5000);
    assert_eq!(all.len(), 4750);
    println!("load + select of 5,000 hosts: {elapsed:?}");
    // Generous bound for a debug build on a busy 2-core machine.
    assert!(elapsed.as_secs() < 10, "took {elapsed:?}");
}
