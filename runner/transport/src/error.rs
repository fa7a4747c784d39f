//! Errors of connecting to a host and of talking to its agent. Each variant names the host and
//! the object that failed; `hint()` says what the user can do about it. Secrets (passwords,
//! passphrases) never appear here.

use std::path::PathBuf;
use std::time::Duration;

use rookery_diagnostic::Hint;
use rookery_proto::AgentError;

/// Failure to get a working agent on a host. In recap terms every one of these makes the host
/// *unreachable*: nothing was done on it.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "{host}: host key is not known (SHA256 fingerprint {fingerprint}; checked {})",
        display_paths(checked)
    )]
    HostKeyUnknown {
        host: String,
        fingerprint: String,
        checked: Vec<PathBuf>,
    },
    #[error(
        "{host}: HOST KEY CHANGED: {known_hosts_line} expects {expected_fingerprint}, \
         the host offered {actual_fingerprint} (possible man-in-the-middle attack)"
    )]
    HostKeyChanged {
        host: String,
        expected_fingerprint: String,
        actual_fingerprint: String,
        /// `file:line` of the known_hosts entry that no longer matches.
        known_hosts_line: String,
    },
    #[error(
        "{host}: the host offered only a {offered_type} key ({fingerprint}), but known_hosts \
         knows it by {} (at {known_at}); refused, since a host that no longer has its known \
         key type may be an impostor",
        known_types.join(", ")
    )]
    HostKeyTypeChanged {
        host: String,
        offered_type: String,
        fingerprint: String,
        known_types: Vec<String>,
        /// `file:line` of the first known_hosts entry for the host.
        known_at: String,
    },
    #[error(
        "{host}: {setting} (from {origin}) would switch host-key checking off; refused: an \
         inventory or ssh config must not lower the security of a run that sends sudo \
         passwords and wipes disks"
    )]
    InsecureHostKeySetting {
        host: String,
        /// `StrictHostKeyChecking=no`, `UserKnownHostsFile=/dev/null`.
        setting: String,
        /// `ansible_ssh_common_args at inv.yaml:4:7`, `~/.ssh/config:12`.
        origin: String,
    },
    #[error("{host}: cannot read or update known_hosts file {path}")]
    KnownHosts {
        host: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{host}: authentication as user {user:?} failed (tried: {})", if tried.is_empty() { "no credentials available".to_string() } else { tried.join(", ") })]
    AuthFailed {
        host: String,
        user: String,
        tried: Vec<String>,
    },
    #[error("{host}: cannot use private key {path}: {detail}")]
    Key {
        host: String,
        path: PathBuf,
        detail: String,
    },
    #[error("{host}: connection to {addr} refused")]
    Refused {
        host: String,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{host}: cannot reach {addr}")]
    Unreachable {
        host: String,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// Connecting (TCP, jump hosts, SSH handshake, authentication) took longer than
    /// `--connect-timeout`.
    #[error("{host}: {what} timed out after {}s", after.as_secs_f32())]
    ConnectTimeout {
        host: String,
        what: String,
        after: Duration,
    },
    /// A step after connecting (uploading or starting the agent) took longer than `--timeout`.
    #[error("{host}: {what} timed out after {}s", after.as_secs_f32())]
    Timeout {
        host: String,
        what: String,
        after: Duration,
    },
    #[error("{host}: SSH session failed during {stage}")]
    Ssh {
        host: String,
        stage: &'static str,
        #[source]
        source: russh::Error,
    },
    #[error("{host}: bad SSH settings: {detail}")]
    Config { host: String, detail: String },
    #[error("{host}: uploading the agent to {path} failed: {detail}")]
    AgentUpload {
        host: String,
        path: String,
        detail: String,
    },
    #[error("{host}: the agent did not start: {detail}")]
    AgentStart { host: String, detail: String },
    /// The host's `uname -m` names an architecture no agent was given for.
    #[error(
        "{host}: the host's architecture is {} (`uname -m`) and there is no rookery-agent for it \
         (agents: {have})",
        if arch.is_empty() { "unknown" } else { arch.as_str() }
    )]
    NoAgentForArch {
        host: String,
        /// What `uname -m` printed on the host (empty: nothing).
        arch: String,
        /// The agents rookery has, `x86_64 (PATH), ...`.
        have: String,
    },
    /// The agent's process ended before its protocol marker; `code` is its exit status.
    #[error("{host}: the agent did not start: {detail}")]
    AgentExited {
        host: String,
        code: Option<i32>,
        detail: String,
    },
    #[error("{host}: become (sudo) failed: {detail}")]
    BecomeFailed { host: String, detail: String },
    #[error("{host}: cannot start the agent locally ({program})")]
    Spawn {
        host: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{host}: the agent's handshake failed")]
    Handshake {
        host: String,
        #[source]
        source: SessionError,
    },
}

fn display_paths(p: &[PathBuf]) -> String {
    if p.is_empty() {
        return "no known_hosts file".into();
    }
    p.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl ConnectError {
    /// Everything before the agent answered Hello counts as unreachable (nothing ran there).
    pub fn is_unreachable(&self) -> bool {
        true
    }

    /// The host this error is about.
    pub fn host(&self) -> &str {
        match self {
            ConnectError::HostKeyUnknown { host, .. }
            | ConnectError::HostKeyChanged { host, .. }
            | ConnectError::HostKeyTypeChanged { host, .. }
            | ConnectError::InsecureHostKeySetting { host, .. }
            | ConnectError::KnownHosts { host, .. }
            | ConnectError::AuthFailed { host, .. }
            | ConnectError::Key { host, .. }
            | ConnectError::Refused { host, .. }
            | ConnectError::Unreachable { host, .. }
            | ConnectError::ConnectTimeout { host, .. }
            | ConnectError::Timeout { host, .. }
            | ConnectError::Ssh { host, .. }
            | ConnectError::Config { host, .. }
            | ConnectError::AgentUpload { host, .. }
            | ConnectError::AgentStart { host, .. }
            | ConnectError::NoAgentForArch { host, .. }
            | ConnectError::AgentExited { host, .. }
            | ConnectError::BecomeFailed { host, .. }
            | ConnectError::Spawn { host, .. }
            | ConnectError::Handshake { host, .. } => host,
        }
    }
}

impl rookery_diagnostic::Diagnostic for ConnectError {
    /// Nothing ran on the host: it counts as unreachable.
    fn exit_code(&self) -> u8 {
        rookery_diagnostic::exit::HOSTS_UNREACHABLE
    }

    /// Chosen by variant and by the data it carries, never by the message text.
    fn hint(&self) -> Option<Hint> {
        let text: Option<String> = match self {
            ConnectError::HostKeyUnknown { .. } => Some(
                "verify the fingerprint out of band, then rerun with --accept-new-host-keys \
                 (records it), or add it with `ssh-keyscan`"
                    .into(),
            ),
            ConnectError::HostKeyChanged {
                known_hosts_line, ..
            } => Some(format!(
                "if the host was really reinstalled, remove the old entry at {known_hosts_line} \
                 (`ssh-keygen -R HOST`) and verify the new fingerprint before accepting it"
            )),
            ConnectError::HostKeyTypeChanged {
                offered_type,
                known_at,
                ..
            } => Some(format!(
                "if the host's keys were really replaced, verify the new fingerprint out of band, \
                 then remove the old entry at {known_at} (`ssh-keygen -R HOST`) or add the new \
                 key (`ssh-keyscan -t {offered_type} HOST`)"
            )),
            ConnectError::InsecureHostKeySetting { origin, .. } => Some(format!(
                "remove the setting from {origin}; to record keys of new hosts use \
                 --accept-new-host-keys; for throwaway lab hosts only, pass \
                 --insecure-ignore-host-keys on the command line"
            )),
            ConnectError::AuthFailed { .. } => Some(
                "check ansible_user and ansible_ssh_private_key_file, that the key is in the \
                 user's ~/.ssh/authorized_keys, or that ssh-agent holds it (ssh-add -l)"
                    .into(),
            ),
            ConnectError::Key { .. } => Some(
                "for an encrypted key set ROOKERY_SSH_PASSPHRASE or run on a terminal to be \
                 prompted"
                    .into(),
            ),
            ConnectError::Refused { .. } => {
                Some("is sshd running there, and is ansible_port right?".into())
            }
            ConnectError::ConnectTimeout { .. } => Some(
                "the host may be down or firewalled; raise --connect-timeout for slow links".into(),
            ),
            ConnectError::Timeout { .. } => Some("raise --timeout for slow hosts".into()),
            ConnectError::NoAgentForArch { arch, .. } => {
                Some(match crate::Arch::from_uname(arch) {
                    Some(a) => format!(
                        "`cargo xtask build` puts target/dist/rookery-agent-{a} beside rookery; or \
                     pass --agent-binary PATH once per architecture"
                    ),
                    None => "rookery-agent is built for x86_64 and aarch64 Linux only".into(),
                })
            }
            ConnectError::BecomeFailed { .. } => Some(
                "set ansible_become_password (or --ask-become-pass), or allow the agent path \
                 in sudoers with NOPASSWD"
                    .into(),
            ),
            // 126: the shell found the file but could not execute it.
            ConnectError::AgentExited {
                code: Some(126), ..
            } => Some(
                "the agent's directory may be on a noexec mount; set XDG_CACHE_HOME on the \
                 node to an exec-able place"
                    .into(),
            ),
            _ => None,
        };
        text.map(Hint)
    }
}

impl rookery_diagnostic::Diagnostic for SessionError {
    /// The host was reached; the request on it failed.
    fn exit_code(&self) -> u8 {
        rookery_diagnostic::exit::HOSTS_FAILED
    }

    fn hint(&self) -> Option<Hint> {
        match self {
            SessionError::Timeout { .. } => Some(Hint::new("raise --timeout for slow hosts")),
            _ => None,
        }
    }
}

/// Failure of one request on an established agent session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{host}: {op} request timed out after {}s", after.as_secs_f32())]
    Timeout {
        host: String,
        op: &'static str,
        after: Duration,
    },
    #[error("{host}: the agent connection closed{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Closed { host: String, detail: String },
    #[error("{host}: writing to the agent failed")]
    Write {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{host}: protocol error: {detail}")]
    Protocol { host: String, detail: String },
    #[error("{host}: the agent speaks protocol version {agent}, this runner speaks {runner}")]
    VersionMismatch {
        host: String,
        agent: u32,
        runner: u32,
    },
    #[error("{host}: the agent refused {op}: {} ({:?})", error.message, error.code)]
    Agent {
        host: String,
        op: &'static str,
        error: AgentError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_diagnostic::Diagnostic;

    /// The noexec hint used to be chosen by `detail.contains("exit code 126")`: any message
    /// mentioning that text got it, and rewording the message lost it. Now it is the exit
    /// code the variant carries.
    #[test]
    fn hints_follow_the_data_not_the_text() {
        let exited = |code| ConnectError::AgentExited {
            host: "n1".into(),
            code,
            detail: "it ended (exit code 126) before its protocol marker".into(),
        };
        assert!(exited(Some(126)).hint().unwrap().0.contains("noexec"));
        assert_eq!(exited(Some(1)).hint(), None);
        let start = ConnectError::AgentStart {
            host: "n1".into(),
            detail: "exit code 126".into(),
        };
        assert_eq!(start.hint(), None);

        let t = |connect: bool| {
            let (host, what, after) = ("n1".into(), "connect (TCP to x:22)".into(), Duration::ZERO);
            if connect {
                ConnectError::ConnectTimeout { host, what, after }
            } else {
                ConnectError::Timeout { host, what, after }
            }
        };
        assert!(t(true).hint().unwrap().0.contains("--connect-timeout"));
        assert!(t(false).hint().unwrap().0.contains("--timeout"));
        assert_eq!(
            t(true).exit_code(),
            rookery_diagnostic::exit::HOSTS_UNREACHABLE
        );
    }
}
