//! When the runner goes away (stdin EOF: it closed the session, died, or lost the network),
//! the real agent binary kills every command it was running for it and exits, instead of
//! leaving them running on the host.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rookery_proto::{ExecRequest, HelloRequest, PROTOCOL_VERSION, Request, RunnerFrame};

#[test]
fn commands_die_with_the_session() {
    // A sleep nobody else runs, so pgrep finds only this one.
    let marker = format!("sleep 998.{}", std::process::id());
    let mut child = Command::new(env!("CARGO_BIN_EXE_rookery-agent"))
        .arg("serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
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
            request: Request::Exec(ExecRequest {
                argv: vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    format!("{marker} & {marker}"),
                ],
                stdin: None,
                cwd: None,
                env: vec![],
                timeout_secs: None,
            }),
        },
    ];
    for f in &frames {
        writeln!(stdin, "{}", serde_json::to_string(f).unwrap()).unwrap();
    }
    stdin.flush().unwrap();
    let pgrep = || {
        Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .unwrap()
            .status
            .code()
    };
    let started = Instant::now();
    while pgrep() != Some(0) {
        assert!(started.elapsed() < Duration::from_secs(30), "never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(stdin);
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the agent did not exit after EOF while a command ran");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(pgrep(), Some(1), "the command outlived the session");
}
