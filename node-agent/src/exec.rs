//! The one helper that runs programs: `Request::Exec` from the runner and the agent's own
//! calls (`dmsetup`, `timedatectl`) alike, with an explicit argv, a deadline and captured,
//! bounded output.
//!
//! Children get `LC_ALL=C` (tools' output is parsed), stdin from `/dev/null` unless the
//! request carries stdin (a child waiting on the protocol's stdin would hang the session),
//! and their own process group, so a timeout kills the whole tree. The runner's commands are
//! registered with their [`Session`], so [`Session::end`] stops them when the runner goes
//! away.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use rookery_proto::{AgentError, ErrorCode, ExecRequest, ExecResult, MAX_CAPTURE_BYTES};

/// Deadline of an `Exec` that does not carry one: nothing the runner starts may run for ever.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

/// How long output is still waited for once a command was killed: a process that left the
/// group (`setsid`) may hold a pipe open, and must not hold the request too.
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// The commands one protocol session started, so they can be stopped when it ends.
#[derive(Clone, Default)]
pub struct Session {
    groups: Arc<Mutex<BTreeSet<i32>>>,
    ended: Arc<AtomicBool>,
}

impl Session {
    /// SIGKILL every running command's process group and stop waiting for their output (the
    /// runner is gone).
    pub fn end(&self) {
        self.ended.store(true, Ordering::SeqCst);
        let groups = self
            .groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for g in groups {
            let _ = killpg(Pid::from_raw(g), Signal::SIGKILL);
        }
    }

    fn ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }
}

/// Unregisters a process group when its command is done, on every path.
struct Registered<'a>(&'a Session, i32);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.0
            .groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
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
    let r = exec_until(&req, timeout, &Session::default()).map_err(|e| CommandError::Start {
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

/// `Request::Exec` within `session`: the request's deadline, or [`DEFAULT_TIMEOUT`].
pub fn exec(req: &ExecRequest, session: &Session) -> Result<ExecResult, AgentError> {
    let timeout = req
        .timeout_secs
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT);
    exec_until(req, timeout, session)
}

fn exec_until(
    req: &ExecRequest,
    timeout: Duration,
    session: &Session,
) -> Result<ExecResult, AgentError> {
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
    session
        .groups
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(pgid.as_raw());
    let _registered = Registered(session, pgid.as_raw());

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
        if Instant::now() >= deadline || session.ended() {
            timed_out = Instant::now() >= deadline;
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
        let mut got = None;
        loop {
            let now = Instant::now();
            if now >= deadline || session.ended() {
                timed_out |= now >= deadline;
                let _ = killpg(pgid, Signal::SIGKILL);
                got = rx.recv_timeout(PIPE_GRACE).ok();
                break;
            }
            // In slices, so the end of the session is noticed.
            let slice = (deadline - now).min(Duration::from_millis(200));
            match rx.recv_timeout(slice) {
                Ok(v) => {
                    got = Some(v);
                    break;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
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

    fn exec_t(r: &ExecRequest) -> Result<ExecResult, AgentError> {
        exec(r, &Session::default())
    }

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
        let r = exec_t(&req(&[
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
        let r = exec_t(&req(&["/bin/cat"])).unwrap();
        assert_eq!(r.stdout, "");
        let mut q = req(&["/bin/cat"]);
        q.stdin = Some("fed".into());
        assert_eq!(exec_t(&q).unwrap().stdout, "fed");
    }

    #[test]
    fn timeout_kills_the_process_group() {
        let mut q = req(&["/bin/sh", "-c", "sleep 30 & sleep 30"]);
        q.timeout_secs = Some(1);
        let r = exec_t(&q).unwrap();
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
        let r = exec_t(&req(&[
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
    fn ending_the_session_kills_its_commands_and_an_escaped_pipe_holder_does_not_hold_it() {
        let session = Session::default();
        let s2 = session.clone();
        let started = Instant::now();
        // The setsid'd sleep leaves the process group and keeps stdout open.
        let t = thread::spawn(move || {
            exec(&req(&["/bin/sh", "-c", "setsid sleep 30 & sleep 30"]), &s2)
        });
        thread::sleep(Duration::from_millis(300));
        session.end();
        let r = t.join().unwrap().unwrap();
        assert!(!r.timed_out);
        assert_eq!(r.rc, None, "killed");
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn missing_program_is_not_found() {
        let e = exec_t(&req(&["/nonexistent/prog"])).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
        assert!(e.message.contains("/nonexistent/prog"));
    }
}
