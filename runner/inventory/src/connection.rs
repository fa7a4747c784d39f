//! How to reach a host, resolved from its `ansible_*` variables.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionKind {
    /// SSH (Ansible's `ssh`/`paramiko`/`smart`).
    Ssh,
    /// Run on the control machine without SSH (`ansible_connection: local`).
    Local,
}

/// `StrictHostKeyChecking` as OpenSSH spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrictHostKeyChecking {
    /// `yes`: unknown keys are refused.
    Yes,
    /// `accept-new`: unknown keys are recorded; changed keys still refused.
    AcceptNew,
    /// `no`/`off`: unknown keys accepted (changed keys are still refused by rookery).
    No,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSpec {
    pub kind: ConnectionKind,
    /// `ansible_host`, defaulting to the inventory name.
    pub address: String,
    /// `ansible_port` / `ansible_ssh_port`; None = ~/.ssh/config or 22.
    pub port: Option<u16>,
    /// `ansible_user` / `ansible_ssh_user`; None = ~/.ssh/config or the local user.
    pub user: Option<String>,
    /// `ansible_ssh_private_key_file`.
    pub private_key_file: Option<PathBuf>,
    /// `-o IdentitiesOnly=yes`.
    pub identities_only: bool,
    /// `-o UserKnownHostsFile=...` (space-separated list allowed).
    pub user_known_hosts_files: Vec<PathBuf>,
    /// `-o StrictHostKeyChecking=...`.
    pub strict_host_key_checking: Option<StrictHostKeyChecking>,
    /// `-o ProxyJump=...` or `-J ...`: `[user@]host[:port]`, comma-separated chain.
    pub proxy_jump: Option<String>,
    /// `ansible_become`.
    pub become_: bool,
    /// `ansible_become_user` (default root).
    pub become_user: Option<String>,
    /// `ansible_become_password` / `ansible_become_pass` (secret: never log it).
    pub become_password: Option<String>,
    /// `-o` options and flags from `ansible_ssh_common_args` / `ansible_ssh_extra_args` that
    /// rookery does not honour, reported to the user as ignored.
    pub ignored_ssh_options: Vec<String>,
}
