//! `rookery prepare` end to end, driving the built binaries against REAL loop devices:
//! over the real SSH path (loopback sshd from the ssh lab harness) and over the local
//! connection (for the kill test, which needs the agent as a child process it can find).
//! Around every run, every loop device the run must not write (and a partitioned bystander
//! disk no inventory names) is checked byte for byte.
//!
//! Needs root, sshd, losetup/partx, mkfs.ext4/mkfs.xfs, wipefs, ceph-volume, and the binaries
//! built by `cargo xtask test` (the kill test needs the agent with its test hooks). Under
//! `ROOKERY_REQUIRE_REAL=1` a missing prerequisite fails; otherwise the test prints SKIPPED.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rookery_tests::loopdev::{LoopDevice, Untouched};
use rookery_tests::require::{have_program, prerequisite};
use rookery_tests::sshd::{SshLab, agent_binary, missing_prerequisite};
use serde_json::Value;

const GIB: u64 = 1 << 30;

fn ready(ssh: bool) -> bool {
    if ssh {
        let missing = missing_prerequisite();
        if !prerequisite(missing.is_none(), missing.as_deref().unwrap_or("")) {
            return false;
        }
    }
    let loops = LoopDevice::prerequisites();
    if !prerequisite(
        loops.is_ok(),
        loops.as_ref().err().map_or("", |s| s.as_str()),
    ) {
        return false;
    }
    let tools = ["mkfs.ext4", "mkfs.xfs", "wipefs"];
    let missing: Vec<&str> = tools.into_iter().filter(|t| !have_program(t)).collect();
    prerequisite(missing.is_empty(), &missing.join(", "))
}

fn sh(script: &str) -> String {
    let out = Command::new("bash").args(["-ec", script]).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn wipefs(dev: &str) -> String {
    sh(&format!("wipefs --no-act --noheadings {dev} || true"))
}

struct Run {
    code: Option<i32>,
    json: Value,
    stderr: String,
}

impl Run {
    fn device(&self, host: &str, dev: &str) -> &Value {
        let h = self.json["hosts"]
            .as_array()
            .and_then(|a| a.iter().find(|h| h["host"] == host))
            .unwrap_or_else(|| panic!("no host {host} in {}", self.json));
        h["devices"]
            .as_array()
            .and_then(|a| a.iter().find(|d| d["resolved_path"] == dev))
            .unwrap_or_else(|| panic!("no device {dev} in {h}"))
    }

    fn action(&self, host: &str, dev: &str) -> String {
        self.device(host, dev)["action"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

fn run(mut cmd: Command) -> Run {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "rookery prepare did not print JSON ({e}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    Run {
        code: out.status.code(),
        json,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn audit_lines(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn prepare_over_ssh_with_consent_audit_and_rerun() {
    if !ready(true) {
        return;
    }
    let lab = SshLab::start(1).unwrap();
    let kh = lab.known_hosts("known_hosts", &[0]).unwrap();
    let blank = LoopDevice::new(6 * GIB);
    let data = LoopDevice::new(6 * GIB);
    let keep = LoopDevice::new(6 * GIB);
    let bystander = LoopDevice::bystander().unwrap();
    sh(&format!("mkfs.ext4 -q -F {}", data.path_str()));
    sh(&format!("mkfs.xfs -q -f {}", keep.path_str()));
    let all = [blank.path(), data.path(), keep.path(), bystander.path()];
    let devices = format!(
        "rookery_devices: [{{name: {}}}, {{name: {}, wipe: true}}, {{name: {}}}]",
        blank.path_str(),
        data.path_str(),
        keep.path_str()
    );
    let inv = lab
        .inventory(
            "inv.yaml",
            &[lab.host_entry("node0", lab.hosts[0].port, "root", &[&devices])],
        )
        .unwrap();
    let audit = lab.path().join("audit.jsonl");
    let node_log = lab.path().join("node/prepare.log");
    let base = |extra: &[&str]| {
        let mut c = lab.rookery();
        c.args(["-o", "json", "prepare", "-i"])
            .arg(&inv)
            .arg("--known-hosts")
            .arg(&kh)
            .arg("--include-loop")
            .arg("--audit-log")
            .arg(&audit)
            .arg("--node-audit-log")
            .arg(&node_log)
            .args(extra);
        c
    };
    let (b, d, k) = (blank.path_str(), data.path_str(), keep.path_str());

    // --check: the exact verdicts, nothing written, no audit lines.
    let untouched = Untouched::snapshot(all);
    let r = run(base(&["--check", "--wipe"]));
    untouched.assert_unchanged();
    assert_eq!(r.action("node0", &b), "ok", "{}", r.json);
    assert_eq!(r.action("node0", &d), "would_wipe", "{}", r.json);
    assert_eq!(r.action("node0", &k), "needs_consent", "{}", r.json);
    assert_eq!(r.code, Some(8), "needs_consent gives 8\n{}", r.stderr);
    assert!(wipefs(&d).contains("ext4"));
    assert!(!audit.exists(), "check mode must not write the audit log");

    // Without --wipe (and no terminal to confirm on): nothing is wiped.
    let r = run(base(&[]));
    untouched.assert_unchanged();
    assert_eq!(r.action("node0", &d), "needs_consent");
    assert!(wipefs(&d).contains("ext4"));

    // --wipe: only the device with `wipe: true` is wiped; the other keeps its xfs, and no
    // other byte on any other device changed.
    let others = Untouched::snapshot([blank.path(), keep.path(), bystander.path()]);
    let r = run(base(&["--wipe"]));
    others.assert_unchanged();
    assert_eq!(r.action("node0", &d), "wiped", "{}", r.json);
    assert_eq!(r.action("node0", &k), "needs_consent");
    assert_eq!(r.code, Some(8), "{}", r.stderr);
    assert_eq!(wipefs(&d), "");
    assert!(wipefs(&k).contains("xfs"));
    let sigs: Vec<&str> = r.device("node0", &d)["signatures_before"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["kind"].as_str())
        .collect();
    assert_eq!(sigs, vec!["ext4"]);

    // Control audit log: runner before/after lines for every device of the plan (the blank
    // one and the one without consent too) + the agent's per-step lines, one run id.
    let all_lines = audit_lines(&audit);
    let run_id = all_lines.last().unwrap()["run_id"].clone();
    let lines: Vec<Value> = all_lines
        .into_iter()
        .filter(|l| l["run_id"] == run_id)
        .collect();
    for dev in [&b, &d, &k] {
        let runner: Vec<&Value> = lines
            .iter()
            .filter(|l| l["source"] == "runner" && l["device"]["path"] == dev.as_str())
            .collect();
        assert_eq!(runner.len(), 2, "{dev}: {lines:?}");
        assert_eq!(runner[0]["action"], "prepare-request");
        assert!(runner[0]["result"].is_null() && !runner[1]["result"].is_null());
    }
    assert!(
        lines
            .iter()
            .any(|l| l["source"] == "agent" && l["action"] == "zero-head")
    );
    assert!(
        lines
            .iter()
            .filter(|l| l["source"] == "agent")
            .all(|l| l["host"] == "node0" && l["device"]["path"] == d.as_str())
    );
    // Node log on the host (same machine here): the agent's lines, 0600.
    let node_lines = audit_lines(&node_log);
    assert_eq!(
        node_lines.len(),
        lines.iter().filter(|l| l["source"] == "agent").count()
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&node_log).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Re-run: ok, nothing written; the runner notes the request, the agent logs no step.
    let before = audit_lines(&audit).len();
    let untouched = Untouched::snapshot(all);
    let r = run(base(&["--wipe"]));
    untouched.assert_unchanged();
    assert_eq!(r.action("node0", &d), "ok", "{}", r.json);
    let new: Vec<Value> = audit_lines(&audit).into_iter().skip(before).collect();
    assert!(new.iter().all(|l| l["source"] == "runner"), "{new:?}");

    // ceph-volume agrees the device is now usable.
    if prerequisite(
        have_program("ceph-volume"),
        "ceph-volume (Debian's ceph-osd) to compare the verdict after the wipe",
    ) {
        let out = Command::new("ceph-volume")
            .args(["inventory", "--format", "json", &d])
            .env("CEPH_VOLUME_ALLOW_LOOP_DEVICES", "true")
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["available"], true, "{v}");
    }
}

fn local_inventory(dir: &Path, devices: &str) -> PathBuf {
    let p = dir.join("inv.yaml");
    std::fs::write(
        &p,
        format!(
            "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n      {devices}\n"
        ),
    )
    .unwrap();
    p
}

fn local_cmd(inv: &Path, dir: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(rookery_tests::bins::rookery());
    c.env("HOME", dir)
        .env("NO_COLOR", "1")
        .env("ROOKERY_AGENT", agent_binary())
        .stdin(Stdio::null())
        .args(["-o", "json", "prepare", "-i"])
        .arg(inv)
        .arg("--include-loop")
        .arg("--audit-log")
        .arg(dir.join("audit.jsonl"))
        .arg("--node-audit-log")
        .arg(dir.join("node.log"))
        .args(extra);
    c
}

#[test]
fn plan_errors_stop_everything_and_refusals_exit_8() {
    if !ready(false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = LoopDevice::new(6 * GIB);
    let small = LoopDevice::new(4 * GIB);
    sh(&format!("mkfs.ext4 -q -F {}", data.path_str()));
    sh(&format!("mkfs.ext4 -q -F {}", small.path_str()));
    // A named device that does not exist: the whole run stops before touching anything.
    let inv = local_inventory(
        dir.path(),
        &format!(
            "rookery_devices: [{{name: {}, wipe: true}}, {{name: /dev/does-not-exist-h7}}]",
            data.path_str()
        ),
    );
    let r = run(local_cmd(&inv, dir.path(), &["--wipe"]));
    assert_eq!(r.code, Some(8), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was done"), "{}", r.stderr);
    assert!(
        r.json["plan"][0]["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("does-not-exist-h7")
    );
    assert!(wipefs(&data.path_str()).contains("ext4"));

    // A too-small device is refused in the plan and never sent.
    let inv = local_inventory(
        dir.path(),
        &format!(
            "rookery_devices: [{{name: {}, wipe: true}}]",
            small.path_str()
        ),
    );
    let r = run(local_cmd(&inv, dir.path(), &["--wipe"]));
    assert_eq!(r.code, Some(8), "{}", r.stderr);
    assert_eq!(r.json["plan"][0]["entries"][0]["action"], "refused");
    assert!(wipefs(&small.path_str()).contains("ext4"));

    // Bad spelling in the inventory is an input error (65) naming host and entry.
    let inv = local_inventory(dir.path(), "rookery_devices: [{nmae: /dev/sdb}]");
    let out = local_cmd(&inv, dir.path(), &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(65));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("localhost") && err.contains("rookery_devices[0]"),
        "{err}"
    );
}

/// Kills the agent (SIGKILL) while it pauses after a wipe step, through the test hook
/// `ROOKERY_AGENT_TEST_PAUSE_AFTER_STEP` of an agent built with `--features test-hooks` (the
/// local transport passes the environment on to the agent child process), then re-runs: the
/// device must be finished and verified clean.
#[test]
fn agent_killed_mid_wipe_next_run_finishes() {
    let hooks = rookery_tests::bins::agent_with_test_hooks();
    if !ready(false)
        || !prerequisite(
            rookery_tests::bins::has_test_hooks(&hooks),
            &format!(
                "{} built with --features test-hooks (cargo xtask test builds it)",
                hooks.display()
            ),
        )
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dev = LoopDevice::new(6 * GIB);
    sh(&format!("mkfs.xfs -q -f {}", dev.path_str()));
    dev.write_at(
        GIB,
        b"bluestore block device\n0b1d2c3e-4f50-6172-8394-a5b6c7d8e9f0\n",
    )
    .unwrap();
    let inv = local_inventory(
        dir.path(),
        &format!(
            "rookery_devices: [{{name: {}, wipe: true}}]",
            dev.path_str()
        ),
    );
    let node_log = dir.path().join("node.log");
    let bystander = LoopDevice::bystander().unwrap();
    let untouched = Untouched::snapshot([bystander.path()]);
    let mut cmd = local_cmd(&inv, dir.path(), &["--wipe"]);
    cmd.env("ROOKERY_AGENT", &hooks)
        .env("ROOKERY_AGENT_TEST_PAUSE_AFTER_STEP", "zero-tail")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let t = Instant::now();
    loop {
        let done = audit_lines(&node_log)
            .iter()
            .any(|l| l["action"] == "zero-tail" && !l["result"].is_null());
        if done {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "agent never reached zero-tail"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Find the agent: a child of our rookery process running rookery-agent.
    let agent_pid = find_child_agent(child.id()).expect("agent child process");
    sh(&format!("kill -KILL {agent_pid}"));
    let out = child.wait_with_output().unwrap();
    assert_ne!(
        out.status.code(),
        Some(0),
        "the run must not report success"
    );
    let lines = audit_lines(&node_log);
    assert!(
        !lines.iter().any(|l| l["action"] == "zero-head"),
        "{lines:?}"
    );
    // xfs at the head survived: still not clean, and the next run finishes.
    assert!(wipefs(&dev.path_str()).contains("xfs"));
    untouched.assert_unchanged();
    let r = run(local_cmd(&inv, dir.path(), &["--wipe"]));
    untouched.assert_unchanged();
    let d = dev.path_str();
    assert_eq!(r.action("localhost", &d), "wiped", "{}", r.json);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(wipefs(&d), "");
    let r = run(local_cmd(&inv, dir.path(), &["--wipe"]));
    assert_eq!(r.action("localhost", &d), "ok");
}

fn find_child_agent(parent: u32) -> Option<u32> {
    for _ in 0..100 {
        for e in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Field 4 (after the parenthesised comm) is the parent pid.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if ppid == Some(parent) && String::from_utf8_lossy(&cmdline).contains("rookery-agent") {
                return Some(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Runs `rookery prepare` (human output, no --wipe) on a pseudo-terminal via script(1),
/// typing `answer` at the confirmation prompt.
fn run_on_tty(inv: &Path, dir: &Path, answer: &str) -> (Option<i32>, String) {
    let cmd = format!(
        "{} prepare -i {} --include-loop --audit-log {} --node-audit-log {}",
        rookery_tests::bins::rookery().display(),
        inv.display(),
        dir.join("audit.jsonl").display(),
        dir.join("node.log").display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("HOME", dir)
        .env("NO_COLOR", "1")
        .env("ROOKERY_AGENT", agent_binary())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        // The terminal buffers the line until rookery reads it at the prompt.
        stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
        // Keep the pty's input open until the run ends: script(1) ends the session on EOF.
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(60));
            drop(stdin);
        });
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn interactive_confirmation_on_a_terminal() {
    if !ready(false) || !prerequisite(have_program("script"), "script (util-linux)") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dev = LoopDevice::new(6 * GIB);
    let blank = LoopDevice::new(6 * GIB);
    let bystander = LoopDevice::bystander().unwrap();
    let d = dev.path_str();
    sh(&format!("mkfs.ext4 -q -F {d}"));
    let inv = local_inventory(
        dir.path(),
        &format!(
            "rookery_devices: [{{name: {d}, wipe: true}}, {{name: {}, wipe: true}}]",
            blank.path_str()
        ),
    );
    let untouched = Untouched::snapshot([dev.path(), blank.path(), bystander.path()]);
    // Anything but "yes" leaves the disk alone.
    let (code, text) = run_on_tty(&inv, dir.path(), "y");
    untouched.assert_unchanged();
    assert!(text.contains("Type \"yes\""), "{text}");
    assert!(
        text.contains(&d) && text.contains("6442450944 bytes"),
        "{text}"
    );
    // The blank device the same consent covers is shown too.
    assert!(
        text.contains(&blank.path_str()) && text.contains("blank now"),
        "{text}"
    );
    assert_eq!(code, Some(8), "{text}");
    assert!(wipefs(&d).contains("ext4"));
    // "yes" is consent.
    let others = Untouched::snapshot([blank.path(), bystander.path()]);
    let (code, text) = run_on_tty(&inv, dir.path(), "yes");
    others.assert_unchanged();
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("wiped"), "{text}");
    assert_eq!(wipefs(&d), "");
}

/// A run whose devices are all blank wipes nothing, but what it asked for (consent sent with
/// every device) is still on the control machine's record: before/after lines per device,
/// and a line for the device the plan refused.
#[test]
fn every_device_in_the_plan_is_audited_even_when_all_are_blank() {
    if !ready(false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = LoopDevice::new(6 * GIB);
    let b = LoopDevice::new(6 * GIB);
    let small = LoopDevice::new(4 * GIB);
    let inv = local_inventory(
        dir.path(),
        &format!(
            "rookery_devices: [{{name: {}, wipe: true}}, {{name: {}, wipe: true}}, {{name: {}, wipe: true}}]",
            a.path_str(),
            b.path_str(),
            small.path_str()
        ),
    );
    let untouched = Untouched::snapshot([a.path(), b.path(), small.path()]);
    let r = run(local_cmd(&inv, dir.path(), &["--wipe"]));
    untouched.assert_unchanged();
    assert_eq!(r.action("localhost", &a.path_str()), "ok", "{}", r.json);
    assert_eq!(r.action("localhost", &b.path_str()), "ok", "{}", r.json);
    let audit = dir.path().join("audit.jsonl");
    let lines = audit_lines(&audit);
    for dev in [a.path_str(), b.path_str()] {
        let mine: Vec<&Value> = lines
            .iter()
            .filter(|l| l["device"]["path"] == dev.as_str())
            .collect();
        assert_eq!(mine.len(), 2, "{dev}: {lines:?}");
        assert!(mine.iter().all(|l| l["source"] == "runner"
            && l["action"] == "prepare-request"
            && l["host"] == "localhost"));
        assert!(mine[0]["result"].is_null());
        assert!(
            mine[1]["result"]
                .as_str()
                .is_some_and(|r| r.starts_with("ok: ")),
            "{:?}",
            mine[1]
        );
    }
    let refused: Vec<&Value> = lines
        .iter()
        .filter(|l| l["device"]["path"] == small.path_str().as_str())
        .collect();
    assert_eq!(refused.len(), 1, "{lines:?}");
    assert_eq!(refused[0]["action"], "refused-by-plan");
    assert_eq!(r.json["audit_log"], audit.display().to_string());
}

/// The fault hooks exist for the crash tests only: the agent that is uploaded to hosts has
/// no environment variable that makes it pause in the middle of a wipe.
#[test]
fn the_shipped_agent_has_no_test_hooks() {
    let agent = rookery_tests::bins::agent();
    let bytes = std::fs::read(&agent).unwrap();
    let needle = b"ROOKERY_AGENT_TEST_PAUSE_AFTER_STEP";
    assert!(
        !bytes.windows(needle.len()).any(|w| w == needle),
        "{} contains the test hook {}",
        agent.display(),
        String::from_utf8_lossy(needle)
    );
    assert!(!rookery_tests::bins::has_test_hooks(&agent));
}

/// `prepare --stack`: the devices come from the stack's node for this host (found by its
/// hostname), with the stack's `wipe`; the inventory's `rookery_devices` is not read, so a
/// device only the inventory names is never touched.
#[test]
fn prepare_with_stack_takes_exactly_the_stack_devices() {
    if !ready(false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = LoopDevice::new(6 * GIB);
    let b = LoopDevice::new(6 * GIB);
    let only_inventory = LoopDevice::new(6 * GIB);
    let bystander = LoopDevice::bystander().unwrap();
    sh(&format!("mkfs.ext4 -q -F {}", a.path_str()));
    sh(&format!("mkfs.ext4 -q -F {}", only_inventory.path_str()));
    let inv = local_inventory(
        dir.path(),
        &format!(
            "rookery_devices: [{{name: {}, wipe: true}}]",
            only_inventory.path_str()
        ),
    );
    let lab = rookery_tests::bins::repo_root().join("stacks/lab-3node/stack.yaml");
    let text = std::fs::read_to_string(lab).unwrap();
    let start = text.find("    nodes:\n").unwrap();
    let end = text.find("storageClasses:").unwrap();
    let stack = dir.path().join("stack.yaml");
    std::fs::write(
        &stack,
        format!(
            "{}    nodes:\n      - name: {}\n        devices:\n          - {{ name: {}, wipe: true }}\n          - {{ name: {} }}\n{}",
            &text[..start],
            sh("uname -n").to_lowercase(),
            a.path_str(),
            b.path_str(),
            &text[end..]
        ),
    )
    .unwrap();
    let untouched = Untouched::snapshot([only_inventory.path(), b.path(), bystander.path()]);
    let r = run(local_cmd(
        &inv,
        dir.path(),
        &["--wipe", "--stack", stack.to_str().unwrap()],
    ));
    untouched.assert_unchanged();
    assert_eq!(r.code, Some(0), "{}\n{}", r.stderr, r.json);
    assert_eq!(r.action("localhost", &a.path_str()), "wiped", "{}", r.json);
    assert_eq!(r.action("localhost", &b.path_str()), "ok", "{}", r.json);
    assert_eq!(wipefs(&a.path_str()), "");
    assert!(wipefs(&only_inventory.path_str()).contains("ext4"));
    let entries = r.json["plan"][0]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(
        entries[0]["selected_by"][0]
            .as_str()
            .unwrap()
            .starts_with("cephCluster.storage.nodes[0].devices[0]"),
        "{entries:?}"
    );
}
