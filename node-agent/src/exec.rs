//! The one helper that runs programs: `Request::Exec` from the runner and the agent's own
//! calls (`dmsetup`, `timedatectl`) alike, with an explicit argv, a deadline and captured,
//! bounded output.
//!
//! Children get `LC_ALL=C` (tools' output is parsed), stdin from `/dev/null` unless the
//! request carries stdin (a child waiting on the protocol's stdin would hang the session),
//! and their own process group, so a timeout kills the whole tree. Every running group is
//! registered so that [`kill_all`] can stop them when the runner goes away.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use rookery_proto::{AgentError, ErrorCode, ExecRequest, ExecResult, MAX_CAPTURE_BYTES};

/// Deadline of an `Exec` that does not carry one: nothing the runner starts may run for ever.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

/// Process groups of the commands running now.
static RUNNING: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// SIGKILL every running command's process group (the session is over).
pub fn kill_all() {
    let groups = RUNNING.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for g in groups {
        let _ = killpg(Pid::from_raw(g), Signal::SIGKILL);
    }
}

/// Unregisters a process group when its command is done, on every path.
struct Registered(i32);

impl Drop for Registered {
    fn drop(&mut self) {
        RUNNING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.0);
    }
}

/// Why one of the agent's own commands failed: the argv, and the status and output.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot run `{argv}`: {message}")]
    Start { argv: String, message: String },
    #[error("`{argv}` did not finish within {}s (its process group was killed){}", timeout.as_secs_f32(), stderr_suffix(stderr))]
    Timeout {
        argv: String,
        timeout: Duration,
        stderr: String,
    },
    #[error("`{argv}` exited with {}{}", rc.map_or("a signal".to_string(), |c| format!("status {c}")), stderr_suffix(stderr))]
    Failed {
        argv: String,
        rc: Option<i32>,
        stdout: String,
        stderr: String,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    let t = stderr.trim();
    if t.is_empty() {
        String::new()
    } else {
        format!(": {t}")
    }
}

/// Run one of the agent's own commands (`LC_ALL=C`, no stdin) with a deadline; its stdout
/// when it exits 0.
pub fn run(argv: &[&str], timeout: Duration) -> Result<String, CommandError> {
    let shown = argv.join(" ");
    let req = ExecRequest {
        argv: argv.iter().map(|a| a.to_string()).collect(),
        stdin: None,
        cwd: None,
        env: vec![],
        timeout_secs: None,
    };
    let r = exec_until(&req, timeout).map_err(|e| CommandError::Start {
        argv: shown.clone(),
        message: e.message,
    })?;
    if r.timed_out {
        return Err(CommandError::Timeout {
            argv: shown,
            timeout,
            stderr: r.stderr,
        });
    }
    if r.rc != Some(0) {
        return Err(CommandError::Failed {
            argv: shown,
            rc: r.rc,
            stdout: r.stdout,
            stderr: r.stderr,
        });
    }
    Ok(r.stdout)
}

/// `Request::Exec`: the request's deadline, or [`DEFAULT_TIMEOUT`].
pub fn exec(req: &ExecRequest) -> Result<ExecResult, AgentError> {
    let timeout = req
        .timeout_secs
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT);
    exec_until(req, timeout)
}

fn exec_until(req: &ExecRequest, timeout: Duration) -> Result<ExecResult, AgentError> {
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
    RUNNING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(pgid.as_raw());
    let _registered = Registered(pgid.as_raw());

    if let (Some(mut stdin), Some(data)) = (child.stdin.take(), req.stdin.clone()) {
        // A child that never reads its stdin must not block us: write from a thread.
        thread::spawn(move || {
            let _ = stdin.write_all(data.as_bytes());
        });
    }
    let (tx, rx) = mpsc::channel::<(bool, Vec<u8>, bool)>();
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
                        Ok(n) if out.len() + n <= MAX_CAPTURE_BYTES => {
                            out.extend_from_slice(&buf[..n])
                        }
                        // Keep draining so the child does not block on a full pipe.
                        Ok(_) => truncated = true,
                    }
                }
                if truncated {
                    out.extend_from_slice(b"\n[rookery-agent: output truncated]\n");
                }
                let _ = tx.send((is_err, out, truncated));
                return;
            }
            let _ = tx.send((is_err, out, false));
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

    let deadline = start + timeout;
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
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = killpg(pgid, Signal::SIGKILL);
            break child.wait().ok();
        }
        thread::sleep(Duration::from_millis(5));
    };

    // Background grandchildren may keep the pipes open after the child exits: they are
    // waited for like a shell would, up to the deadline, and killed then.
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut truncated = false;
    for _ in 0..2 {
        let got = match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(v) => Some(v),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                let _ = killpg(pgid, Signal::SIGKILL);
                rx.recv().ok()
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
        };
        match got {
            Some((true, v, t)) => {
                stderr = v;
                truncated |= t;
            }
            Some((false, v, t)) => {
                stdout = v;
                truncated |= t;
            }
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
        truncated,
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
    fn run_reports_argv_status_and_stderr_and_kills_at_the_deadline() {
        let e = run(
            &["/bin/sh", "-c", "echo nope >&2; exit 4"],
            Duration::from_secs(10),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`/bin/sh -c echo nope >&2; exit 4` exited with status 4: nope"),
            "{e}"
        );
        let e = run(&["/bin/sleep", "30"], Duration::from_millis(300))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`/bin/sleep 30` did not finish within 0.3s"),
            "{e}"
        );
        assert_eq!(
            run(&["/bin/sh", "-c", "echo $LC_ALL"], Duration::from_secs(10)).unwrap(),
            "C\n"
        );
    }

    #[test]
    fn large_output_is_capped_and_flagged() {
        let r = exec(&req(&[
            "/bin/sh",
            "-c",
            "head -c 20000000 /dev/zero | tr '\\0' a",
        ]))
        .unwrap();
        assert!(r.truncated);
        assert!(r.stdout.len() <= MAX_CAPTURE_BYTES + 64);
        assert_eq!(r.rc, Some(0));
    }

    #[test]
    fn missing_program_is_not_found() {
        let e = exec(&req(&["/nonexistent/prog"])).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
        assert!(e.message.contains("/nonexistent/prog"));
    }
}
