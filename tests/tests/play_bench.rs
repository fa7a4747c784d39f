//! Timing of `rookery play` with the 20-task `playbooks/bench-20.yaml` over N real sshd hosts
//! (N = $ROOKERY_BENCH_HOSTS, default 10): the first (converging) run and the median of three
//! re-runs of the converged playbook. Ignored by default (it is a measurement, not a check);
//! run it with:
//!
//!   cargo test -p rookery-tests --test play_bench -- --ignored --nocapture
//!
//! It asserts only that every run succeeds and that re-runs change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use rookery_tests::bins::repo_root;
use rookery_tests::require::prerequisite;
use rookery_tests::sshd::{SshLab, missing_prerequisite};
use serde_json::Value;

#[test]
#[ignore = "measurement; run with --ignored --nocapture"]
fn bench_20_tasks() {
    let missing = missing_prerequisite();
    if !prerequisite(missing.is_none(), missing.as_deref().unwrap_or("")) {
        return;
    }
    let n: usize = std::env::var("ROOKERY_BENCH_HOSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let lab = SshLab::start(n).unwrap();
    let kh = lab
        .known_hosts("known_hosts", &(0..n).collect::<Vec<_>>())
        .unwrap();
    let entries: Vec<String> = lab
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| lab.host_entry(&format!("bench{i:03}"), h.port, "root", &[]))
        .collect();
    let inv = lab.inventory("inv.yaml", &entries).unwrap();
    let _ = std::fs::remove_dir_all("/tmp/rookery-bench");
    let pb = repo_root().join("playbooks/bench-20.yaml");
    let play = || {
        let start = Instant::now();
        let o = lab
            .rookery()
            .arg("play")
            .arg("-i")
            .arg(&inv)
            .arg("--known-hosts")
            .arg(&kh)
            .arg("-o")
            .arg("json")
            .arg(&pb)
            .output()
            .unwrap();
        let secs = start.elapsed().as_secs_f64();
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{out}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let recap: Value = out
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| e["event"] == "recap")
            .unwrap();
        let changed: u64 = recap["hosts"]
            .as_object()
            .unwrap()
            .values()
            .map(|h| h["changed"].as_u64().unwrap())
            .sum();
        let tasks: Vec<String> = out
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["event"] == "task_end")
            .map(|e| {
                format!(
                    "{} {}ms",
                    e["name"].as_str().unwrap_or(""),
                    e["duration_ms"]
                )
            })
            .collect();
        if std::env::var_os("ROOKERY_BENCH_TASKS").is_some() {
            println!("  tasks: {}", tasks.join(", "));
        }
        (secs, changed)
    };
    let (first, changed_first) = play();
    let mut reruns = Vec::new();
    for _ in 0..3 {
        let (t, changed) = play();
        assert_eq!(
            changed, 0,
            "a re-run of the converged playbook changed something"
        );
        reruns.push(t);
    }
    reruns.sort_by(f64::total_cmp);
    let _ = std::fs::remove_dir_all("/tmp/rookery-bench");
    println!(
        "bench-20 on {n} sshd hosts: first run {first:.2}s ({changed_first} changes), \
         converged re-run median {:.2}s (runs: {reruns:.2?})",
        reruns[1]
    );
}
