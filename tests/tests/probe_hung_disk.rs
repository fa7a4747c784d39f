//! One hung disk must not hang the host's probe: the real agent binary probes a loop device
//! whose reads never return (a FUSE-backed file that stops answering, see
//! `rookery_tests::hungdisk`) next to a healthy loop device. The probe finishes at its
//! per-device deadline, reports the hung disk unreadable with the reason, and the healthy one
//! as usual.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rookery_proto::{HostFacts, RejectReason};
use rookery_tests::hungdisk::{self, HungDisk};
use rookery_tests::loopdev::LoopDevice;
use rookery_tests::require::prerequisite;
use rookery_tests::sshd::agent_binary;

fn ready() -> bool {
    let missing = hungdisk::missing_prerequisite();
    prerequisite(missing.is_none(), missing.as_deref().unwrap_or(""))
}

#[test]
fn hung_disk_is_reported_unreadable_and_the_probe_finishes() {
    if !ready() {
        return;
    }
    let hung = HungDisk::new(64 << 20).unwrap();
    hung.hang();
    let healthy = LoopDevice::new(64 << 20);

    let started = Instant::now();
    let mut child = Command::new(agent_binary())
        .args(["probe", "--include-loop", "--io-timeout", "3"])
        .arg(hung.path())
        .arg(healthy.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The answer is read as it comes, not at exit: the thread stuck on the dead disk keeps
    // the process (and its stdout) alive in the kernel until the read returns.
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut out = Vec::new();
    let facts: HostFacts = loop {
        // Before the per-device deadline existed the probe never answered.
        let left = Duration::from_secs(60).saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(_) => panic!(
                "no probe answer within 60 s ({} reads held by the dead disk)",
                hung.held_reads()
            ),
        }
        if let Ok(f) = serde_json::from_slice(&out) {
            break f;
        }
    };
    assert!(hung.held_reads() > 0, "the hung disk was really read");

    let dead = facts
        .block_devices
        .iter()
        .find(|d| d.name == hung.name())
        .expect("the hung disk is reported, not dropped");
    assert!(!dead.available);
    let reason = dead
        .reject_reasons
        .iter()
        .find_map(|r| match r {
            RejectReason::Unreadable(e) => Some(e.clone()),
            _ => None,
        })
        .expect("reported unreadable");
    assert!(
        reason.contains(&hung.path().display().to_string())
            && reason.contains("no answer to reads within 3s"),
        "{reason}"
    );

    let ok = facts
        .block_devices
        .iter()
        .find(|d| d.name == healthy.name())
        .expect("the healthy disk is probed too");
    assert!(
        !ok.reject_reasons
            .iter()
            .any(|r| matches!(r, RejectReason::Unreadable(_))),
        "{:?}",
        ok.reject_reasons
    );

    // Answer the held reads (EIO) so the agent's stuck thread, and the agent, can end.
    drop(hung);
    let _ = child.kill();
    let _ = child.wait();
}
