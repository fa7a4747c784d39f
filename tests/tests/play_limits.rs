//! Bounds on what a task may cost a host, over a real sshd host and the real agent: a command
//! that hangs is killed on the host at the default deadline (the run's `--timeout`), its whole
//! process group with it, and the host's agent goes on serving the next task; a command whose
//! output passes the capture limit fails with a message naming the host and the limit.
//!
//! The lab host is this machine, so "nothing left behind" is checked with `pgrep` both as a
//! task of the play and from the test itself.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use rookery_tests::require::prerequisite;
use rookery_tests::sshd::{SshLab, missing_prerequisite};
use serde_json::Value;

fn ready() -> bool {
    let missing = missing_prerequisite();
    prerequisite(missing.is_none(), missing.as_deref().unwrap_or(""))
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn result<'a>(ev: &'a [Value], task: &str) -> &'a Value {
    ev.iter()
        .find(|e| e["event"] == "host_result" && e["task"] == task)
        .unwrap_or_else(|| panic!("no result for task `{task}`"))
}

#[test]
fn hung_command_is_killed_on_the_host_and_the_host_goes_on() {
    if !ready() {
        return;
    }
    let lab = SshLab::start(1).unwrap();
    let kh = lab.known_hosts("known_hosts", &[0]).unwrap();
    let inv = lab
        .inventory(
            "inv.yaml",
            &[lab.host_entry("n", lab.hosts[0].port, "root", &[])],
        )
        .unwrap();
    // A sleep nobody else on this machine runs, so pgrep finds only ours.
    let marker = format!("1000.{}", std::process::id());
    let pb = lab
        .write(
            "pb.yaml",
            &format!(
                r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: hangs
      shell: "sleep {marker} & sleep {marker}"
      ignore_errors: true
    - name: nothing left behind
      command: pgrep -f "sleep {marker}"
      register: left
      failed_when: left.rc != 1
    - name: floods
      shell: "head -c 20000000 /dev/zero | tr '\\0' a"
      ignore_errors: true
"#
            ),
        )
        .unwrap();
    let o = lab
        .rookery()
        .arg("play")
        .arg("-i")
        .arg(&inv)
        .arg("--known-hosts")
        .arg(&kh)
        .args(["--timeout", "3", "-o", "json"])
        .arg(&pb)
        .output()
        .unwrap();
    let ev: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let hung = result(&ev, "hangs");
    assert_eq!(hung["status"], "ignored", "{}", text(&o));
    let msg = hung["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains("timed out after 3s") && msg.contains("process group was killed on n"),
        "{msg}"
    );
    // The same agent answered the next request: nothing queued behind the sleep.
    assert_eq!(
        result(&ev, "nothing left behind")["status"],
        "changed",
        "pgrep must find nothing (rc 1)\n{}",
        text(&o)
    );
    let left = std::process::Command::new("pgrep")
        .args(["-f", &format!("sleep {marker}")])
        .output()
        .unwrap();
    assert_eq!(
        left.status.code(),
        Some(1),
        "processes left on the host: {}",
        String::from_utf8_lossy(&left.stdout)
    );

    let flood = result(&ev, "floods");
    assert_eq!(flood["status"], "ignored", "{}", text(&o));
    let msg = flood["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains("on n passed the capture limit of 16 MiB"),
        "{msg}"
    );
}
