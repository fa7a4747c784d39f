//! `connection: local`: the agent runs on the control machine as a child process, straight
//! from the binary the runner located (no copy, no SSH); `sudo` when become is asked and we
//! are not already root.

use std::process::Stdio;
use std::time::Duration;

use rookery_inventory::ConnectionSpec;
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::ConnectError;
use crate::session::{self, AgentProcess, Backing, BecomePrompt, BoxFuture, ExitInfo, StartError};
use crate::{AgentSession, ConnectOptions};

/// Effective uid of this process, from /proc (avoids a libc dependency for one number).
pub(crate) fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// A random prompt string so sudo's prompt cannot be confused with anything else on stderr.
pub(crate) fn prompt_nonce() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("[rookery-sudo-{:016x}] password:", h.finish())
}

struct LocalBacking {
    exit: watch::Receiver<Option<ExitInfo>>,
    kill: Option<oneshot::Sender<()>>,
}

impl Backing for LocalBacking {
    fn close(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let _ =
                tokio::time::timeout(Duration::from_secs(5), self.exit.wait_for(|e| e.is_some()))
                    .await;
            if let Some(k) = self.kill.take() {
                let _ = k.send(());
            }
        })
    }
}

pub(crate) async fn connect(
    host: &str,
    spec: &ConnectionSpec,
    opts: &ConnectOptions,
) -> Result<AgentSession, ConnectError> {
    let agent = opts
        .agents
        .native()
        .ok_or_else(|| ConnectError::NoAgentForArch {
            host: host.to_string(),
            arch: std::env::consts::ARCH.to_string(),
            have: opts.agents.describe(),
        })?;
    let root = euid() == Some(0);
    let become_user = spec.become_user.as_deref().filter(|u| *u != "root");
    let use_sudo = spec.become_ && (!root || become_user.is_some());
    let password = opts
        .become_password
        .clone()
        .or_else(|| spec.become_password.clone());
    let mut become_prompt = None;
    let mut cmd = if use_sudo {
        let mut c = Command::new("sudo");
        match &password {
            Some(pw) => {
                let prompt = prompt_nonce();
                c.arg("-S").arg("-p").arg(&prompt);
                become_prompt = Some(BecomePrompt {
                    prompt,
                    password: pw.clone(),
                });
            }
            None => {
                c.arg("-n");
            }
        }
        if let Some(u) = become_user {
            c.arg("-u").arg(u);
        }
        c.arg("--").arg(agent.path());
        c
    } else {
        Command::new(agent.path())
    };
    cmd.arg("serve")
        .arg("--expect-sha256")
        .arg(agent.sha256())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let program = if use_sudo {
        format!("sudo {}", agent.path().display())
    } else {
        agent.path().display().to_string()
    };
    let mut child = cmd.spawn().map_err(|source| ConnectError::Spawn {
        host: host.to_string(),
        program: program.clone(),
        source,
    })?;
    let (Some(stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(ConnectError::AgentStart {
            host: host.to_string(),
            detail: "child process pipes missing".into(),
        });
    };
    let (err_tx, err_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 8192];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 || err_tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let (exit_tx, exit_rx) = watch::channel(None);
    let (kill_tx, kill_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        use std::os::unix::process::ExitStatusExt;
        let status = tokio::select! {
            s = child.wait() => s.ok(),
            // Killed on request or when the session (and so the sender) is dropped.
            _ = kill_rx => {
                let _ = child.kill().await;
                child.wait().await.ok()
            }
        };
        let info = ExitInfo {
            code: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()).map(|s| s.to_string()),
        };
        let _ = exit_tx.send(Some(info));
    });
    let proc = AgentProcess {
        stdin: Box::pin(stdin),
        stdout: Box::pin(stdout),
        stderr: err_rx,
        exit: exit_rx.clone(),
        backing: Box::new(LocalBacking {
            exit: exit_rx,
            kill: Some(kill_tx),
        }),
    };
    session::start(host, proc, become_prompt, false, opts.command_timeout)
        .await
        .map_err(|e| match e {
            StartError::NeedUpload(why, _) => ConnectError::AgentStart {
                host: host.to_string(),
                detail: format!(
                    "{why}: {} changed on disk since rookery read it",
                    agent.path().display()
                ),
            },
            StartError::Become(detail) => ConnectError::BecomeFailed {
                host: host.to_string(),
                detail,
            },
            StartError::Failed(detail)
            | StartError::Upload(detail)
            | StartError::NoAgentForArch(detail) => ConnectError::AgentStart {
                host: host.to_string(),
                detail: format!("{program}: {detail}"),
            },
            StartError::Exited { code, detail } => ConnectError::AgentExited {
                host: host.to_string(),
                code,
                detail: format!("{program}: {detail}"),
            },
            StartError::Timeout(after) => ConnectError::Timeout {
                host: host.to_string(),
                what: "starting the agent".into(),
                after,
            },
            StartError::Session(source) => ConnectError::Handshake {
                host: host.to_string(),
                source,
            },
        })
}
