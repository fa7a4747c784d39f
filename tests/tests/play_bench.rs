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
        "rookery bench-20 on {n} sshd hosts: first run {first:.2}s ({changed_first} changes), \
         converged re-run median {:.2}s (runs: {reruns:.2?})",
        reruns[1]
    );

    // The same file under ansible-playbook (pipelining on, forks = N), when available:
    // $ROOKERY_ANSIBLE_PLAYBOOK or `ansible-playbook` on PATH.
    let ansible = std::env::var_os("ROOKERY_ANSIBLE_PLAYBOOK")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            rookery_tests::require::have_program("ansible-playbook")
                .then(|| "ansible-playbook".into())
        });
    let Some(ansible) = ansible else {
        println!("ansible-playbook not found: set ROOKERY_ANSIBLE_PLAYBOOK to compare");
        return;
    };
    let ansible_run = || {
        let start = Instant::now();
        let o = std::process::Command::new(&ansible)
            .env("HOME", lab.home())
            .env("ANSIBLE_PIPELINING", "True")
            .env("ANSIBLE_HOST_KEY_CHECKING", "True")
            .env(
                "ANSIBLE_SSH_ARGS",
                format!(
                    "-o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile={}",
                    kh.display()
                ),
            )
            .env("ANSIBLE_PYTHON_INTERPRETER", "/usr/bin/python3")
            .env("ANSIBLE_NOCOLOR", "1")
            .env_remove("SSH_AUTH_SOCK")
            .arg("-i")
            .arg(&inv)
            .arg("-f")
            .arg(n.to_string())
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
        let changed: u64 = out
            .lines()
            .filter_map(|l| l.split("changed=").nth(1))
            .filter_map(|r| r.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        (secs, changed)
    };
    let (a_first, a_changed_first) = ansible_run();
    let mut a_reruns = Vec::new();
    for _ in 0..3 {
        let (t, changed) = ansible_run();
        assert_eq!(changed, 0, "ansible re-run changed something");
        a_reruns.push(t);
    }
    a_reruns.sort_by(f64::total_cmp);
    let _ = std::fs::remove_dir_all("/tmp/rookery-bench");
    println!(
        "ansible bench-20 on {n} sshd hosts: first run {a_first:.2}s ({a_changed_first} changes), \
         converged re-run median {:.2}s (runs: {a_reruns:.2?})",
        a_reruns[1]
    );
    println!(
        "ratio ansible/rookery: first run {:.1}x, re-run {:.1}x",
        a_first / first,
        a_reruns[1] / reruns[1]
    );
}
