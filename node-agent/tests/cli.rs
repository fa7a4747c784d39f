//! The `rookery-agent` command line: self-check exit code, marker, probe JSON, usage errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};

use rookery_proto::{EXIT_SELF_CHECK_FAILED, HostFacts, MARKER};

const AGENT: &str = env!("CARGO_BIN_EXE_rookery-agent");

fn sha256_of(path: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn version_and_usage() {
    let out = Command::new(AGENT).arg("--version").output().unwrap();
    assert!(out.status.success());
    // This crate's tests build the agent with its test hooks, and it says so.
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("rookery-agent {} (test hooks)\n", env!("CARGO_PKG_VERSION"))
    );
    let out = Command::new(AGENT).arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn self_check_mismatch_exits_87_before_the_marker() {
    let out = Command::new(AGENT)
        .args(["serve", "--expect-sha256", &"0".repeat(64)])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(EXIT_SELF_CHECK_FAILED));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("self-check failed"), "{err}");
}

#[test]
fn self_check_match_serves_and_exits_on_eof() {
    let out = Command::new(AGENT)
        .args(["serve", "--expect-sha256", &sha256_of(AGENT).to_uppercase()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{MARKER}\n")
    );
}

#[test]
fn probe_prints_host_facts_json() {
    let Some(fx) = common::build(common::Kind::Ext4) else {
        return;
    };
    let out = Command::new(AGENT)
        .args(["probe", "--include-loop", &fx.lo.path_str()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let facts: HostFacts = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!facts.hostname.is_empty());
    assert!(facts.cpus >= 1 && facts.memory_bytes > 0);
    assert_eq!(facts.block_devices.len(), 1);
    assert_eq!(facts.block_devices[0].path, fx.lo.path_str());
}
