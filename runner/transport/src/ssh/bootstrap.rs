//! Getting the agent running over SSH: the one-exec hot path (pick the agent for the host's
//! `uname -m`, verify the cached, sha256-named binary and `exec` it, or `exit 86` naming the
//! architecture, or `exit 88` when there is no agent for it), and, when it is missing or corrupt, the upload on a
//! second channel that `exec`s the fresh agent too, so that channel becomes the agent's. The agent lives in `/var/lib/rookery` for root logins and in the user's
//! `${XDG_CACHE_HOME:-$HOME/.cache}/rookery` otherwise, in a directory created 0700 and owned
//! by the login user (checked with `test -O`), so nobody else can swap the binary.

use std::sync::Arc;
use std::time::Duration;

use russh::ChannelMsg;
use russh::client::Handle;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};

use crate::agent_binary::{Agents, Arch};
use crate::session::{AgentProcess, Backing, BoxFuture, ExitInfo};

/// How the bootstrap starts the agent.
#[derive(Debug, Clone)]
pub(crate) enum BecomeMode {
    /// As the login user.
    None,
    /// Root via sudo, unless the login user is root already. `prompt` = `sudo -S -p PROMPT`
    /// (a password will be written to stdin); None = `sudo -n`.
    Sudo {
        prompt: Option<String>,
        user: Option<String>,
    },
}

/// Prefix of the stderr line through which the bootstrap tells the runner the host's
/// architecture (before exit 86 or 88).
pub(crate) const ARCH_PREFIX: &str = "rookery-arch=";

/// Exit status of the hot path when no agent was given for the host's `uname -m`.
pub(crate) const EXIT_NO_AGENT_FOR_ARCH: i32 = 88;

/// Sets `$A` (the host's architecture, canonical name) and `$H` (the sha256 of the agent for
/// it) from `uname -m`, or exits [`EXIT_NO_AGENT_FOR_ARCH`] naming what `uname -m` printed.
fn select(agents: &Agents) -> String {
    let mut arms = String::new();
    for a in agents.iter() {
        if let Some(arch) = a.arch() {
            arms.push_str(&format!(
                "{}) A={}; H={};; ",
                arch.uname_names().join("|"),
                arch.name(),
                a.sha256()
            ));
        }
    }
    format!(
        "m=$(uname -m 2>/dev/null); case \"$m\" in {arms}*) echo \"{ARCH_PREFIX}$m\" >&2; \
         exit {EXIT_NO_AGENT_FOR_ARCH};; esac; "
    )
}

/// Sets `$d` (private directory), `$p` (agent path, from `$H`) and `$R` (non-empty for root).
fn locate() -> &'static str {
    "if [ \"$(id -u)\" = 0 ]; then d=/var/lib/rookery; R=1; \
     else d=\"${XDG_CACHE_HOME:-$HOME/.cache}/rookery\"; R=; fi; p=\"$d/agent-$H\"; "
}

/// Single-quote for sh.
fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// What to send as the exec command: the login shell may be csh or fish, so it only gets a
/// plain `exec /bin/sh -c '...'` and the script itself runs under POSIX sh.
pub(crate) fn command(script: &str) -> String {
    format!("exec /bin/sh -c {}", sq(script))
}

/// Exit status of the upload script when the upload itself failed (directory, write,
/// checksum, rename); its stderr says why.
pub(crate) const EXIT_UPLOAD_FAILED: i32 = 85;

/// `exec`s the agent at `$p` as the login user or, with become, through sudo.
fn exec_agent(become_: &BecomeMode) -> String {
    let serve = "\"$p\" serve --expect-sha256 \"$H\"";
    match become_ {
        BecomeMode::None => format!("exec {serve}"),
        BecomeMode::Sudo { prompt, user } => {
            let how = match prompt {
                Some(p) => format!("-S -p {}", sq(p)),
                None => "-n".to_string(),
            };
            let sudo = match user {
                Some(u) => format!("exec sudo {how} -u {} -- {serve}", sq(u)),
                None => format!("exec sudo {how} -- {serve}"),
            };
            if user.is_some() {
                sudo
            } else {
                format!("if [ -n \"$R\" ]; then exec {serve}; else {sudo}; fi")
            }
        }
    }
}

/// The hot path: one exec, no upload. Exits 86 (with the architecture on stderr) when the
/// agent must be uploaded.
pub(crate) fn run_script(agents: &Agents, become_: &BecomeMode) -> String {
    format!(
        "{}{}if [ -O \"$d\" ] && [ -x \"$p\" ] && {{ ! command -v sha256sum >/dev/null 2>&1 || \
         echo \"$H  $p\" | sha256sum -c >/dev/null 2>&1; }}; then {}; fi; \
         echo \"{ARCH_PREFIX}$A\" >&2; exit {}",
        select(agents),
        locate(),
        exec_agent(become_),
        rookery_proto::EXIT_NEED_UPLOAD
    )
}

/// The upload, on the channel that then becomes the agent's: reads exactly `len` bytes of
/// stdin into a temp file beside the target, checks size and sha256, renames it into place
/// and `exec`s it like the hot path, so the rest of stdin (the become password, then the
/// protocol) goes to sudo and the agent. The runner writes nothing after the `len` bytes
/// until sudo's prompt or the agent's marker appears, so `head` cannot read ahead into it.
/// Agents of other versions untouched for 30 days are removed on the way (an old rookery
/// that still needs one simply uploads it again). Exits [`EXIT_UPLOAD_FAILED`] when the upload
/// fails, and 86 when the fresh agent still cannot be run.
pub(crate) fn upload_script(arch: Arch, sha: &str, len: usize, become_: &BecomeMode) -> String {
    let fail = EXIT_UPLOAD_FAILED;
    format!(
        "A={arch}; H={sha}; {}umask 077; mkdir -p \"$d\" && chmod 700 \"$d\" && [ -O \"$d\" ] || \
         {{ echo \"rookery: cannot create the private directory $d\" >&2; exit {fail}; }}; \
         find \"$d\" -name 'agent-*.tmp.*' -mmin +10 -exec rm -f {{}} + 2>/dev/null; \
         t=\"$p.tmp.$$\"; trap 'rm -f \"$t\"' EXIT; trap 'exit {fail}' HUP INT TERM; \
         head -c {len} > \"$t\" || {{ echo \"rookery: cannot write $t\" >&2; exit {fail}; }}; \
         n=$(wc -c < \"$t\"); [ $n -eq {len} ] 2>/dev/null || \
         {{ echo \"rookery: received $n of {len} bytes of the agent\" >&2; exit {fail}; }}; \
         if command -v sha256sum >/dev/null 2>&1 && ! echo \"$H  $t\" | sha256sum -c >/dev/null 2>&1; \
         then echo \"rookery: checksum mismatch after upload to $t\" >&2; exit {fail}; fi; \
         chmod 700 \"$t\" && mv -f \"$t\" \"$p\" || exit {fail}; trap - EXIT HUP INT TERM; \
         find \"$d\" -name 'agent-*' ! -name \"agent-$H\" -mtime +30 -exec rm -f {{}} + 2>/dev/null; \
         if [ -x \"$p\" ]; then {}; fi; exit {}",
        locate(),
        exec_agent(become_),
        rookery_proto::EXIT_NEED_UPLOAD
    )
}

/// Keeps the SSH connection (and any jump hosts) alive for the agent session.
pub(crate) struct SshBacking {
    pub handle: Arc<Handle<super::Client>>,
    pub jumps: Vec<Arc<Handle<super::Client>>>,
    pub exit: watch::Receiver<Option<ExitInfo>>,
}

impl Backing for SshBacking {
    fn close(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let _ =
                tokio::time::timeout(Duration::from_secs(3), self.exit.wait_for(|e| e.is_some()))
                    .await;
            let _ = self
                .handle
                .disconnect(russh::Disconnect::ByApplication, "", "en")
                .await;
            for j in self.jumps.iter().rev() {
                let _ = j
                    .disconnect(russh::Disconnect::ByApplication, "", "en")
                    .await;
            }
        })
    }
}

/// Run `cmd` on a new exec channel and expose it as an agent process. A pump task turns
/// channel messages into stdout bytes, stderr chunks and the exit status, and keeps reading
/// after EOF because OpenSSH may send the exit status after it.
pub(crate) async fn exec_process(
    handle: Arc<Handle<super::Client>>,
    jumps: Vec<Arc<Handle<super::Client>>>,
    cmd: String,
) -> Result<AgentProcess, russh::Error> {
    let ch = handle.channel_open_session().await?;
    ch.exec(true, cmd).await?;
    let (mut read, write) = ch.split();
    let stdin = write.make_writer();
    let (mut out_w, out_r) = tokio::io::duplex(256 * 1024);
    let (err_tx, err_rx) = mpsc::unbounded_channel();
    let (exit_tx, exit_rx) = watch::channel(None);
    tokio::spawn(async move {
        // The write half must outlive the pump: dropping it would close the channel.
        let _write = write;
        let mut out_open = true;
        while let Some(msg) = read.wait().await {
            match msg {
                ChannelMsg::Data { data } if out_open => {
                    out_open = out_w.write_all(&data).await.is_ok();
                }
                ChannelMsg::ExtendedData { data, ext: 1 } => {
                    let _ = err_tx.send(data.to_vec());
                }
                ChannelMsg::Eof => {
                    let _ = out_w.shutdown().await;
                    out_open = false;
                }
                ChannelMsg::ExitStatus { exit_status } => {
                    let _ = exit_tx.send(Some(ExitInfo {
                        code: i32::try_from(exit_status).ok(),
                        signal: None,
                    }));
                }
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    let _ = exit_tx.send(Some(ExitInfo {
                        code: None,
                        signal: Some(format!("{signal_name:?}")),
                    }));
                }
                _ => {}
            }
        }
        let _ = out_w.shutdown().await;
        drop(out_w);
        exit_tx.send_if_modified(|e| {
            if e.is_none() {
                *e = Some(ExitInfo {
                    code: None,
                    signal: None,
                });
                true
            } else {
                false
            }
        });
    });
    Ok(AgentProcess {
        stdin: Box::pin(stdin),
        stdout: Box::pin(out_r),
        stderr: err_rx,
        exit: exit_rx.clone(),
        backing: Box::new(SshBacking {
            handle,
            jumps,
            exit: exit_rx,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::AgentBinary;

    fn elf(machine: u16) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[0..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x12..0x14].copy_from_slice(&machine.to_le_bytes());
        b
    }

    fn two_arches() -> Agents {
        Agents::new(vec![
            AgentBinary::from_bytes("x".into(), elf(0x3e)),
            AgentBinary::from_bytes("a".into(), elf(0xb7)),
        ])
        .unwrap()
    }

    #[test]
    fn scripts_are_valid_sh() {
        let sha = "ab".repeat(32);
        let agents = two_arches();
        for s in [
            run_script(&agents, &BecomeMode::None),
            run_script(
                &agents,
                &BecomeMode::Sudo {
                    prompt: Some("[x] pw:".into()),
                    user: None,
                },
            ),
            run_script(
                &agents,
                &BecomeMode::Sudo {
                    prompt: None,
                    user: Some("o'brien".into()),
                },
            ),
            upload_script(Arch::Aarch64, &sha, 1234, &BecomeMode::None),
            upload_script(
                Arch::X86_64,
                &sha,
                1234,
                &BecomeMode::Sudo {
                    prompt: Some("[x] pw:".into()),
                    user: Some("o'brien".into()),
                },
            ),
        ] {
            let st = std::process::Command::new("sh")
                .arg("-n")
                .arg("-c")
                .arg(&s)
                .status()
                .unwrap();
            assert!(st.success(), "{s}");
        }
    }

    /// Runs the hot path with a `uname` that prints `machine`: (exit code, stderr).
    fn hot_path_as(agents: &Agents, machine: &str) -> (Option<i32>, String) {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let uname = bin.join("uname");
        std::fs::write(&uname, format!("#!/bin/sh\necho {machine}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&uname, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(command(&run_script(agents, &BecomeMode::None)))
            .env("XDG_CACHE_HOME", dir.path())
            .env("HOME", dir.path())
            .env("PATH", path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[test]
    fn hot_path_exits_86_without_agent_naming_the_arch() {
        let agents = two_arches();
        // Root uses /var/lib/rookery, where these shas are never present either.
        for (machine, arch) in [
            ("x86_64", "x86_64"),
            ("aarch64", "aarch64"),
            ("arm64", "aarch64"),
        ] {
            let (code, err) = hot_path_as(&agents, machine);
            assert_eq!(code, Some(rookery_proto::EXIT_NEED_UPLOAD), "{machine}");
            assert_eq!(err.trim(), format!("{ARCH_PREFIX}{arch}"), "{machine}");
        }
    }

    #[test]
    fn hot_path_exits_88_for_an_arch_without_agent() {
        let (code, err) = hot_path_as(&two_arches(), "riscv64");
        assert_eq!(code, Some(EXIT_NO_AGENT_FOR_ARCH));
        assert_eq!(err.trim(), format!("{ARCH_PREFIX}riscv64"));
        let only_x86: Agents = AgentBinary::from_bytes("x".into(), elf(0x3e)).into();
        let (code, err) = hot_path_as(&only_x86, "aarch64");
        assert_eq!(code, Some(EXIT_NO_AGENT_FOR_ARCH));
        assert_eq!(err.trim(), format!("{ARCH_PREFIX}aarch64"));
    }
}
