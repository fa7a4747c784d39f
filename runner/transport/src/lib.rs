//! Transports to the node agent: SSH (russh) and local child processes, host-key checking,
//! the agent bootstrap (upload once per version, verify, run), and the protocol session.
//!
//! CONTRACT (used by the runner, playbook and stack crates; extend, don't break):
//! - [`Agents::locate`] finds the agents to ship (one per architecture); [`ConnectOptions`] holds run-wide
//!   settings; [`Connector::connect`] gives one [`AgentSession`] per host.
//! - [`AgentSession`] is cheap to clone and reused for every step on that host;
//!   [`AgentSession::call`] / [`AgentSession::call_with_events`] send one request.
//! - [`fan_out`] runs per-host work on many hosts (bounded, in order, panics kept as
//!   failed hosts); every multi-host loop uses it.
//! - Every [`ConnectError`] means "unreachable" in recap terms; [`SessionError`] is a failure
//!   of one request on a working connection.

mod agent_binary;
mod error;
mod fanout;
mod local;
mod session;
mod ssh;

use std::path::PathBuf;
use std::time::Duration;

use rookery_inventory::{ConnectionKind, ConnectionSpec};

pub use agent_binary::{AGENT_ENV, AgentBinary, AgentBinaryError, Agents, Arch};
pub use error::{ConnectError, SessionError};
pub use fanout::{HostOutcome, HostPanic, fan_out, fan_out_with_progress};
pub use session::{AgentSession, op_name};

/// Environment variable holding the passphrase of encrypted private keys.
pub const PASSPHRASE_ENV: &str = "ROOKERY_SSH_PASSPHRASE";

/// Run-wide connection settings (per-host settings come from the inventory's
/// [`ConnectionSpec`]).
#[derive(Clone)]
pub struct ConnectOptions {
    /// The agents to run, one per architecture; each host gets the one for its `uname -m`.
    pub agents: Agents,
    /// Record unknown host keys instead of refusing them (`--accept-new-host-keys`).
    pub accept_new_host_keys: bool,
    /// Accept any host key that does not contradict known_hosts, record nothing, and allow
    /// inventories and ssh configs to switch checking off (`--insecure-ignore-host-keys`).
    /// Become passwords are still never sent to a host whose key was not verified.
    pub insecure_ignore_host_keys: bool,
    /// Inventory-level known_hosts file (`--known-hosts`): checked first, and where new keys
    /// are recorded. None = `~/.ssh/known_hosts`.
    pub known_hosts: Option<PathBuf>,
    /// TCP connect plus SSH handshake and authentication.
    pub connect_timeout: Duration,
    /// Longest silence while waiting for the agent (start-up, each request).
    pub command_timeout: Duration,
    /// OpenSSH client config; None = `~/.ssh/config`.
    pub ssh_config: Option<PathBuf>,
    /// Become password for every host (`--ask-become-pass`); overrides the inventory's.
    pub become_password: Option<String>,
    /// Passphrase for encrypted private keys; None = `$ROOKERY_SSH_PASSPHRASE`, then a prompt
    /// on the terminal when `interactive`.
    pub key_passphrase: Option<String>,
    /// May prompt on the terminal (passphrases).
    pub interactive: bool,
    /// SSH keepalive interval (the connection is dropped after 3 unanswered ones).
    pub keepalive_interval: Duration,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets are shown only as present/absent.
        f.debug_struct("ConnectOptions")
            .field("agents", &self.agents)
            .field("accept_new_host_keys", &self.accept_new_host_keys)
            .field("insecure_ignore_host_keys", &self.insecure_ignore_host_keys)
            .field("known_hosts", &self.known_hosts)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("ssh_config", &self.ssh_config)
            .field(
                "become_password",
                &self.become_password.as_ref().map(|_| "***"),
            )
            .field(
                "key_passphrase",
                &self.key_passphrase.as_ref().map(|_| "***"),
            )
            .field("interactive", &self.interactive)
            .field("keepalive_interval", &self.keepalive_interval)
            .finish()
    }
}

impl ConnectOptions {
    /// Defaults: strict host keys, 10 s connect timeout, 60 s command timeout.
    pub fn new(agents: impl Into<Agents>) -> Self {
        ConnectOptions {
            agents: agents.into(),
            accept_new_host_keys: false,
            insecure_ignore_host_keys: false,
            known_hosts: None,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(60),
            ssh_config: None,
            become_password: None,
            key_passphrase: None,
            interactive: false,
            keepalive_interval: Duration::from_secs(15),
        }
    }
}

/// Opens agent sessions to hosts. One per run; cheap to clone and shared by all host tasks
/// (loaded keys and the parsed ssh config are shared through it).
#[derive(Clone)]
pub struct Connector {
    inner: std::sync::Arc<ConnectorInner>,
}

struct ConnectorInner {
    opts: ConnectOptions,
    ssh: ssh::SshState,
}

impl Connector {
    pub fn new(opts: ConnectOptions) -> Self {
        let ssh = ssh::SshState::new(&opts);
        Connector {
            inner: std::sync::Arc::new(ConnectorInner { opts, ssh }),
        }
    }

    pub fn options(&self) -> &ConnectOptions {
        &self.inner.opts
    }

    /// Connect to `host_name` as its inventory entry says and start the agent there.
    pub async fn connect(
        &self,
        host_name: &str,
        spec: &ConnectionSpec,
    ) -> Result<AgentSession, ConnectError> {
        match spec.kind {
            ConnectionKind::Local => local::connect(host_name, spec, &self.inner.opts).await,
            ConnectionKind::Ssh => {
                ssh::connect(&self.inner.ssh, host_name, spec, &self.inner.opts).await
            }
        }
    }
}

/// Read a secret (become password, passphrase) from the terminal without echo. Fails when
/// there is no terminal; the caller says which flag or variable to use instead.
pub fn prompt_secret(prompt: &str) -> std::io::Result<String> {
    rpassword::prompt_password(prompt)
}
