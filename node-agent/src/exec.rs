//! `Request::Exec`: run a program with an explicit argv, a bounded runtime and captured
//! output.
//!
//! Children get `LC_ALL=C` (tools' output is parsed by the runner), stdin from `/dev/null`
//! unless the request carries stdin (a child waiting on the protocol's stdin would hang the
//! session), and their own process group so a timeout kills the whole tree.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use rookery_proto::{AgentError, ErrorCode, ExecRequest, ExecResult};

/// Output beyond this per stream is dropped (and said so) instead of exhausting memory.
const MAX_OUTPUT: usize = 16 << 20;

pub fn exec(req: &ExecRequest) -> Result<ExecResult, AgentError> {
    let Some((prog, args)) = req.argv.split_first() else {
        return Err(AgentError {
            code: ErrorCode::BadRequest,
            message: "exec: empty argv".into(),
        });
    };
    let start = Instant::now();
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .env("LC_ALL", "C")
        .stdin(if req.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for (k, v) in &req.env {
        cmd.env(k, v);
    }
    if let Some(cwd) = &req.cwd {
        cmd.current_dir(cwd);
    }
    let mut child = cmd.spawn().map_err(|e| AgentError {
        code: match e.kind() {
            std::io::ErrorKind::NotFound => ErrorCode::NotFound,
            std::io::ErrorKind::PermissionDenied => ErrorCode::PermissionDenied,
            _ => ErrorCode::Io,
        },
        message: format!("cannot run {prog}: {e}"),
    })?;
    let pgid = Pid::from_raw(child.id() as i32);

    if let (Some(mut stdin), Some(data)) = (child.stdin.take(), req.stdin.clone()) {
        // A child that never reads its stdin must not block us: write from a thread.
        thread::spawn(move || {
            let _ = stdin.write_all(data.as_bytes());
        });
    }
    let (tx, rx) = mpsc::channel::<(bool, Vec<u8>)>();
    let spawn_reader = |stream: Option<Box<dyn Read + Send>>, is_err: bool| {
        let tx = tx.clone();
        thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(mut s) = stream {
                let mut buf = [0u8; 8192];
                let mut truncated = false;
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) if out.len() + n <= MAX_OUTPUT => out.extend_from_slice(&buf[..n]),
                        Ok(_) => truncated = true,
                    }
                }
                if truncated {
                    out.extend_from_slice(b"\n[rookery-agent: output truncated]\n");
                }
            }
            let _ = tx.send((is_err, out));
        });
    };
    spawn_reader(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        false,
    );
    spawn_reader(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        true,
    );
    drop(tx);

    let deadline = req.timeout_secs.map(|s| start + Duration::from_secs(s));
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) => {}
            Err(e) => {
                return Err(AgentError {
                    code: ErrorCode::Io,
                    message: format!("cannot wait for {prog}: {e}"),
                });
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            timed_out = true;
            let _ = killpg(pgid, Signal::SIGKILL);
            break child.wait().ok();
        }
        thread::sleep(Duration::from_millis(5));
    };

    // Background grandchildren may keep the pipes open after the child exits; past the
    // deadline they are killed, without one we wait for them like a shell would.
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    for _ in 0..2 {
        let got = match deadline {
            Some(d) => match rx.recv_timeout(d.saturating_duration_since(Instant::now())) {
                Ok(v) => Some(v),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    timed_out = true;
                    let _ = killpg(pgid, Signal::SIGKILL);
                    rx.recv().ok()
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => None,
            },
            None => rx.recv().ok(),
        };
        match got {
            Some((true, v)) => stderr = v,
            Some((false, v)) => stdout = v,
            None => break,
        }
    }
    Ok(ExecResult {
        rc: if timed_out {
            None
        } else {
            status.and_then(|s| s.code())
        },
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        timed_out,
        duration_ms: start.elapsed().as_millis() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(argv: &[&str]) -> ExecRequest {
        ExecRequest {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            stdin: None,
            cwd: None,
            env: vec![],
            timeout_secs: None,
        }
    }

    #[test]
    fn captures_output_rc_and_env() {
        let r = exec(&req(&[
            "/bin/sh",
            "-c",
            "echo out; echo err >&2; echo $LC_ALL; exit 3",
        ]))
        .unwrap();
        assert_eq!(r.rc, Some(3));
        assert_eq!(r.stdout, "out\nC\n");
        assert_eq!(r.stderr, "err\n");
        assert!(!r.timed_out);
    }

    #[test]
    fn stdin_is_null_unless_given() {
        let r = exec(&req(&["/bin/cat"])).unwrap();
        assert_eq!(r.stdout, "");
        let mut q = req(&["/bin/cat"]);
        q.stdin = Some("fed".into());
        assert_eq!(exec(&q).unwrap().stdout, "fed");
    }

    #[test]
    fn timeout_kills_the_process_group() {
        let mut q = req(&["/bin/sh", "-c", "sleep 30 & sleep 30"]);
        q.timeout_secs = Some(1);
        let r = exec(&q).unwrap();
        assert!(r.timed_out);
        assert_eq!(r.rc, None);
        assert!(r.duration_ms < 10_000, "{}", r.duration_ms);
    }

    #[test]
    fn missing_program_is_not_found() {
        let e = exec(&req(&["/nonexistent/prog"])).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
        assert!(e.message.contains("/nonexistent/prog"));
    }
}
