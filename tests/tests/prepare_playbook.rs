//! `playbooks/prepare.yaml` (the `prepare_devices` module) on real loop devices through
//! the local connection: check mode + diff change nothing, consent comes from
//! `-e prepare_wipe=true`, the second run reports changed=0, the control audit log has the
//! same runner and agent lines `rookery prepare` writes, and no other device changes.
//!
//! Needs the `prepare_devices` module registered in rookery-playbook (modules/mod.rs), root,
//! losetup, mkfs.xfs, wipefs and the built binaries.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::{Command, Stdio};

use rookery_tests::loopdev::{LoopDevice, Untouched};
use rookery_tests::require::{have_program, prerequisite};
use rookery_tests::sshd::agent_binary;

const GIB: u64 = 1 << 30;

fn play(inv: &Path, home: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(rookery_tests::bins::rookery())
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .env("ROOKERY_AGENT", agent_binary())
        .stdin(Stdio::null())
        .current_dir(home)
        .arg("play")
        .arg("-i")
        .arg(inv)
        // A copy in the temp dir: a failed run writes its .retry file beside the playbook.
        .arg(home.join("prepare.yaml"))
        .args(["-e", "prepare_include_loop=true"])
        .args(extra)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn wipefs(dev: &str) -> String {
    let out = Command::new("wipefs")
        .args(["--no-act", "--noheadings", dev])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn prepare_playbook_check_diff_wipe_rerun() {
    let loops = LoopDevice::prerequisites();
    if !prerequisite(
        loops.is_ok(),
        loops.as_ref().err().map_or("", |s| s.as_str()),
    ) || !prerequisite(
        have_program("mkfs.xfs") && have_program("wipefs"),
        "mkfs.xfs, wipefs",
    ) {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let dev = LoopDevice::new(6 * GIB);
    let bystander = LoopDevice::bystander().unwrap();
    let d = dev.path_str();
    assert!(
        Command::new("mkfs.xfs")
            .args(["-q", "-f", &d])
            .status()
            .unwrap()
            .success()
    );
    std::fs::copy(
        rookery_tests::bins::repo_root().join("playbooks/prepare.yaml"),
        home.path().join("prepare.yaml"),
    )
    .unwrap();
    let inv = home.path().join("inv.yaml");
    std::fs::write(
        &inv,
        format!(
            "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n      \
             rookery_devices: [{{name: {d}, wipe: true}}]\n"
        ),
    )
    .unwrap();

    // Without consent the task fails (a play must not go on as if the disk were ready).
    let untouched = Untouched::snapshot([dev.path(), bystander.path()]);
    let (code, text) = play(&inv, home.path(), &[]);
    assert!(
        !text.contains("unknown module"),
        "prepare_devices is not registered in rookery-playbook:\n{text}"
    );
    assert_ne!(code, Some(0), "{text}");
    assert!(text.contains("needs") && text.contains("consent"), "{text}");
    assert!(wipefs(&d).contains("xfs"));

    // Check mode + diff: what would change, nothing written.
    let (code, text) = play(
        &inv,
        home.path(),
        &["-e", "prepare_wipe=true", "--check", "--diff"],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("xfs at 0") && text.contains("(no signatures)"),
        "{text}"
    );
    assert!(wipefs(&d).contains("xfs"));
    untouched.assert_unchanged();

    let others = Untouched::snapshot([bystander.path()]);
    let (code, text) = play(&inv, home.path(), &["-e", "prepare_wipe=true"]);
    others.assert_unchanged();
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("changed=1"), "{text}");
    assert_eq!(wipefs(&d), "");
    // The same audit trail as `rookery prepare`: the runner's request before and its result
    // after, around the agent's per-step lines.
    let audit = home.path().join(".local/state/rookery/audit.jsonl");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let runner: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["source"] == "runner").collect();
    assert_eq!(runner.len(), 2, "{lines:?}");
    assert!(runner.iter().all(|l| l["action"] == "prepare-request"));
    assert!(runner[0]["result"].is_null());
    assert!(
        runner[1]["result"]
            .as_str()
            .is_some_and(|r| r.starts_with("wiped: ")),
        "{:?}",
        runner[1]
    );
    assert!(
        lines
            .iter()
            .any(|l| l["source"] == "agent" && l["action"] == "zero-head")
    );

    let (code, text) = play(&inv, home.path(), &["-e", "prepare_wipe=true"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("changed=0"), "{text}");
}
