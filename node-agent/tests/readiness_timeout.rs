//! The readiness checks call `timedatectl`, which hangs for as long as systemd's D-Bus does.
//! The real agent binary, serving the protocol with a `timedatectl` on its PATH that never
//! returns (standing in for a stuck bus: this machine has no systemd), must still answer the
//! readiness request, falling back to the kernel's NTP state, and leave no `timedatectl`
//! running.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rookery_proto::{
    AgentFrame, AgentMessage, HelloRequest, MARKER, PROTOCOL_VERSION, ReadinessRequest, Request,
    Response, RunnerFrame,
};

#[test]
fn hung_timedatectl_does_not_hang_readiness() {
    let dir = tempfile::tempdir().unwrap();
    // A sleep nobody else runs, so pgrep finds only this one.
    let marker = format!("sleep 999.{}", std::process::id());
    let fake = dir.path().join("timedatectl");
    std::fs::write(&fake, format!("#!/bin/sh\nexec {marker}\n")).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_rookery-agent"))
        .arg("serve")
        .env("PATH", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let frames = [
        RunnerFrame {
            id: 1,
            request: Request::Hello(HelloRequest {
                protocol_version: PROTOCOL_VERSION,
                runner_version: "test".into(),
            }),
        },
        RunnerFrame {
            id: 2,
            request: Request::Readiness(ReadinessRequest {
                data_dir_host_path: dir.path().join("rook").display().to_string(),
                need_lvm: false,
            }),
        },
    ];
    for f in &frames {
        writeln!(stdin, "{}", serde_json::to_string(f).unwrap()).unwrap();
    }
    stdin.flush().unwrap();

    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let report = loop {
        let left = Duration::from_secs(60).saturating_sub(started.elapsed());
        let line = rx
            .recv_timeout(left)
            .expect("readiness must answer although timedatectl hangs");
        if line == MARKER {
            continue;
        }
        let f: AgentFrame = serde_json::from_str(&line).unwrap();
        if f.id != 2 {
            continue;
        }
        match f.body {
            AgentMessage::Response(Response::Readiness(r)) => break r,
            AgentMessage::Response(other) => panic!("{other:?}"),
            AgentMessage::Event(_) => {}
        }
    };
    let time = report
        .checks
        .iter()
        .find(|c| c.id == "time-sync")
        .expect("the time-sync check is reported");
    assert!(!time.message.contains("timedatectl"), "{time:?}");
    drop(stdin);
    let _ = child.wait();
    let left = Command::new("pgrep")
        .args(["-f", &marker])
        .output()
        .unwrap();
    assert_eq!(
        left.status.code(),
        Some(1),
        "timedatectl left running: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}
