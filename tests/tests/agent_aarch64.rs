//! The aarch64 agent, for real: the static musl build `cargo xtask agent` ships for Raspberry
//! Pi / Ampere nodes, run on this x86_64 machine under Debian's `qemu-aarch64-static` (user-mode
//! emulation: the agent's own aarch64 code, this machine's kernel and loop devices). Its
//! answers about real loop devices must be the x86_64 agent's, byte for byte, except the
//! architecture it reports. binfmt_misc is not needed: qemu runs the binary directly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rookery_proto::{
    AgentFrame, AgentMessage, HelloRequest, MARKER, PROTOCOL_VERSION, ProbeRequest, Request,
    Response, RunnerFrame,
};
use rookery_tests::loopdev::{LoopDevice, run};
use rookery_tests::{bins, require};
use rookery_transport::{AgentBinary, Arch};
use serde_json::Value;

const QEMU: &str = "qemu-aarch64-static";

/// Both agents and qemu, or None (skipped; a failure under ROOKERY_REQUIRE_REAL=1).
fn prerequisites() -> Option<(PathBuf, PathBuf)> {
    let ok =
        require::prerequisite(
            require::have_program(QEMU),
            "qemu-aarch64-static (Debian's qemu-user-static; tests/install-deps.sh)",
        ) && require::prerequisite(LoopDevice::prerequisites().is_ok(), "root and loop devices");
    if !ok {
        return None;
    }
    let aarch64 = bins::agent_aarch64();
    if !require::prerequisite(
        aarch64.is_file(),
        "the aarch64 agent (`cargo xtask agent`, rustup target aarch64-unknown-linux-musl)",
    ) {
        return None;
    }
    Some((aarch64, bins::agent()))
}

/// `rookery-agent probe --include-loop DEVS...` as JSON, under qemu when `emulate`.
fn probe(agent: &Path, emulate: bool, devs: &[String]) -> Value {
    let mut cmd = if emulate {
        let mut c = Command::new(QEMU);
        c.arg(agent);
        c
    } else {
        Command::new(agent)
    };
    let out = cmd
        .arg("probe")
        .arg("--include-loop")
        .args(devs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        agent.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Loop devices in states the probe tells apart: blank, ext4, GPT with a partition, and a
/// small one (< 5 GiB, never available).
fn disks() -> Vec<LoopDevice> {
    let blank = LoopDevice::new(6 << 30);
    let ext4 = LoopDevice::new(6 << 30);
    run("mkfs.ext4", &["-q", "-F", &ext4.path_str()]).unwrap();
    let gpt = LoopDevice::new(6 << 30);
    run("sgdisk", &["-n", "1:0:+1G", &gpt.path_str()]).unwrap();
    gpt.sync_partitions().unwrap();
    let small = LoopDevice::new(1 << 30);
    vec![blank, ext4, gpt, small]
}

#[test]
fn aarch64_agent_probes_loop_devices_like_the_x86_64_agent() {
    let Some((aarch64, x86_64)) = prerequisites() else {
        return;
    };
    assert_eq!(
        AgentBinary::load(&aarch64).unwrap().arch(),
        Some(Arch::Aarch64)
    );
    assert_eq!(
        AgentBinary::load(&x86_64).unwrap().arch(),
        Some(Arch::X86_64)
    );
    let disks = disks();
    let names: Vec<String> = disks.iter().map(|d| d.path_str()).collect();
    let mut arm = probe(&aarch64, true, &names);
    let mut x86 = probe(&x86_64, false, &names);
    // The one expected difference: each reports the machine it runs on (qemu's uname).
    assert_eq!(arm["arch"], "aarch64", "{arm:#}");
    assert_eq!(x86["arch"], "x86_64", "{x86:#}");
    arm["arch"] = Value::Null;
    x86["arch"] = Value::Null;
    let devices = arm["block_devices"].as_array().unwrap();
    assert_eq!(devices.len(), disks.len(), "{arm:#}");
    // The comparison covers verdicts that differ between the disks (a loop device is never
    // available to Ceph; each state adds its own reasons).
    let mut verdicts: Vec<String> = devices
        .iter()
        .map(|d| d["reject_reasons"].to_string())
        .collect();
    verdicts.sort();
    verdicts.dedup();
    assert_eq!(verdicts.len(), disks.len(), "{arm:#}");
    // memory_bytes moves between two reads; everything else must match exactly.
    arm["memory_bytes"] = Value::Null;
    x86["memory_bytes"] = Value::Null;
    assert_eq!(arm, x86);
}

#[test]
fn aarch64_agent_serves_the_protocol_under_qemu() {
    let Some((aarch64, x86_64)) = prerequisites() else {
        return;
    };
    let disk = LoopDevice::new(6 << 30);
    run("mkfs.ext4", &["-q", "-F", &disk.path_str()]).unwrap();
    let sha = AgentBinary::load(&aarch64).unwrap().sha256().to_string();
    // `serve --expect-sha256`: the agent hashes its own /proc/self/exe, which qemu maps to the
    // aarch64 file, exactly as the runner starts it on a node.
    let mut child = Command::new(QEMU)
        .arg(&aarch64)
        .args(["serve", "--expect-sha256", &sha])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), MARKER);
    let mut call = |id: u64, request: Request| -> Response {
        let frame = serde_json::to_string(&RunnerFrame { id, request }).unwrap();
        writeln!(stdin, "{frame}").unwrap();
        stdin.flush().unwrap();
        loop {
            let line = lines.next().unwrap().unwrap();
            let f: AgentFrame = serde_json::from_str(&line).unwrap();
            if let (true, AgentMessage::Response(r)) = (f.id == id, f.body) {
                return r;
            }
        }
    };
    let Response::Hello(hello) = call(
        1,
        Request::Hello(HelloRequest {
            protocol_version: PROTOCOL_VERSION,
            runner_version: "test".into(),
        }),
    ) else {
        panic!("no hello")
    };
    assert_eq!(hello.protocol_version, PROTOCOL_VERSION);
    assert_eq!(hello.self_sha256.as_deref(), Some(sha.as_str()));
    assert_eq!(hello.euid, 0);
    let Response::Probe(facts) = call(
        2,
        Request::Probe(ProbeRequest {
            include_loop: true,
            only: vec![disk.path_str()],
            io_timeout_secs: None,
        }),
    ) else {
        panic!("no probe answer")
    };
    drop(stdin);
    let got = serde_json::to_value(&facts.block_devices).unwrap();
    let want = probe(&x86_64, false, &[disk.path_str()]);
    assert_eq!(got, want["block_devices"]);
    assert!(got[0]["signatures"].to_string().contains("ext4"), "{got:#}");
    // EOF on stdin ends the agent.
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}
