//! Fresh-machine details: the README's two quick-start commands work as root on a machine
//! without `sudo`, and `.ci/run` ends with the whole suite's `N passed, N failed`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use rookery_tests::{bins, require};

/// The shell commands in the README's "Quick start" section.
fn quick_start_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(bins::repo_root().join("README.md")).unwrap();
    let start = readme.find("## Quick start").unwrap();
    let end = start + readme[start..].find("\n## ").unwrap();
    let mut cmds = Vec::new();
    let mut in_sh = false;
    for line in readme[start..end].lines() {
        match line.trim() {
            "```sh" => in_sh = true,
            "```" => in_sh = false,
            l if in_sh && !l.is_empty() => cmds.push(l.to_string()),
            _ => {}
        }
    }
    cmds
}

#[test]
fn quick_start_commands_need_no_sudo() {
    let cmds = quick_start_commands();
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    for c in &cmds {
        assert!(
            !c.split_whitespace().any(|w| w == "sudo"),
            "a machine without sudo cannot run: {c}"
        );
    }
    assert!(
        cmds[0].contains("probe -i inventories/local.yaml"),
        "{cmds:?}"
    );
    assert!(cmds[1].starts_with("tests/install-deps.sh"), "{cmds:?}");
}

/// The first command's probe, as root with no `sudo` anywhere on PATH: the example inventory
/// asks for become, which a root run must satisfy without sudo.
#[test]
fn local_probe_as_root_without_sudo() {
    if !require::prerequisite(require::is_root(), "root") {
        return;
    }
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(bins::rookery())
        .args(["probe", "-o", "json", "-i"])
        .arg(bins::repo_root().join("inventories/local.yaml"))
        .env("PATH", empty.path())
        .env("ROOKERY_AGENT", bins::agent())
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{doc:#}");
    assert_eq!(doc["hosts"][0]["status"], "ok", "{doc:#}");
    assert!(
        doc["hosts"][0]["facts"]["block_devices"].is_array(),
        "{doc:#}"
    );
}

/// `.ci/run`'s last line, from a log holding what cargo test prints (passing and failing
/// binaries, doc tests, a binary with no tests, noise that looks almost like a result).
#[test]
fn ci_summary_line_sums_every_test_binary() {
    let log = "\
     Running unittests src/lib.rs (target/debug/deps/rookery_yaml-1)\n\
running 12 tests\n\
test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s\n\
     Running tests/apply_cluster.rs (target/debug/deps/apply_cluster-2)\n\
test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 9.1s\n\
   Doc-tests rookery_kube\n\
test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\
  echo 'test result: 99 passed' (indented: not cargo's)\n\
test result: ok. 40 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 20.5s\n";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ci.log");
    std::fs::write(&path, log).unwrap();
    let out = Command::new("awk")
        .arg("-f")
        .arg(bins::repo_root().join(".ci/summary.awk"))
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "55 passed, 2 failed\n"
    );
    let run = std::fs::read_to_string(bins::repo_root().join(".ci/run")).unwrap();
    let last = run.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
    assert_eq!(
        last, "exit \"$rc\"",
        "the exit status must be the test run's"
    );
    assert!(run.contains("| tee \"$log\" || rc=$?"));
    assert!(run.contains("set -euo pipefail"));
}
