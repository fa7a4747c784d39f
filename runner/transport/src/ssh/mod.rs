//! The SSH transport (russh): resolve where and as whom to connect (inventory, then
//! `~/.ssh/config`), connect with a deadline (optionally through ProxyJump hosts), check the
//! host key, authenticate, and start the agent over one exec channel of that connection.

pub(crate) mod auth;
pub(crate) mod bootstrap;
pub(crate) mod config;
pub(crate) mod known_hosts;

use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use rookery_inventory::{ConnectionSpec, StrictHostKeyChecking};
use russh::client::Handle;
use russh::keys::{PublicKey, PublicKeyOrCertificate};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use self::auth::{AuthPlan, KeyStore};
use self::bootstrap::BecomeMode;
use self::config::{SshConfig, expand_tokens, home_dir};
use self::known_hosts::HostKeyStatus;
use crate::Arch;
use crate::error::ConnectError;
use crate::session::{self, BecomePrompt, StartError};
use crate::{AgentSession, ConnectOptions};

/// Run-wide SSH state shared by all host tasks.
pub(crate) struct SshState {
    config: Result<SshConfig, String>,
    keys: KeyStore,
    russh: Arc<russh::client::Config>,
    keepalive: Duration,
}

fn russh_config(keepalive: Duration, preferred: russh::Preferred) -> russh::client::Config {
    russh::client::Config {
        // Nagle added ~40 ms to authentication on loopback (notes §2.3).
        nodelay: true,
        keepalive_interval: Some(keepalive),
        keepalive_max: 3,
        // Only fires when keepalives go unanswered too: the peer is gone.
        inactivity_timeout: Some(keepalive * 5),
        preferred,
        ..Default::default()
    }
}

/// russh's host-key algorithm order with the families already in known_hosts first (a host
/// known by its ECDSA key must not be asked for its Ed25519 key, which we could not verify).
fn prefer_known(known: &[russh::keys::Algorithm]) -> Option<russh::Preferred> {
    if known.is_empty() {
        return None;
    }
    let default = russh::Preferred::DEFAULT;
    let is_known = |a: &russh::keys::Algorithm| {
        known
            .iter()
            .any(|k| k == a || (k.clone().is_rsa() && a.clone().is_rsa()))
    };
    let mut order: Vec<russh::keys::Algorithm> = default
        .key
        .iter()
        .filter(|a| is_known(a))
        .cloned()
        .collect();
    if order.is_empty() {
        return None;
    }
    order.extend(default.key.iter().filter(|a| !is_known(a)).cloned());
    Some(russh::Preferred {
        key: std::borrow::Cow::Owned(order),
        ..default
    })
}

impl SshState {
    pub(crate) fn new(opts: &ConnectOptions) -> Self {
        let path = opts
            .ssh_config
            .clone()
            .or_else(|| home_dir().map(|h| h.join(".ssh/config")));
        let config = match path {
            Some(p) => SshConfig::load(&p).map_err(|e| format!("cannot read {}: {e}", p.display())),
            None => Ok(SshConfig::default()),
        };
        let keepalive = opts.keepalive_interval;
        SshState {
            config,
            keys: KeyStore::new(opts.key_passphrase.clone(), opts.interactive),
            russh: Arc::new(russh_config(keepalive, russh::Preferred::DEFAULT)),
            keepalive,
        }
    }
}

/// russh callbacks: only the host-key decision is ours.
pub(crate) struct Client {
    policy: Arc<HostKeyPolicy>,
    outcome: Arc<StdMutex<Option<ConnectError>>>,
}

impl russh::client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            // Host certificates are not trusted as such: their key must be known itself.
            PublicKeyOrCertificate::Certificate(c) => PublicKey::new(c.public_key().clone(), ""),
        };
        match self.policy.decide(&key) {
            Ok(()) => Ok(true),
            Err(e) => {
                *self.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                Ok(false)
            }
        }
    }
}

/// How far the key a host offered can be trusted; a become password is sent only to a
/// [`KeyTrust::Verified`] host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyTrust {
    /// Found in a known_hosts file.
    Verified,
    /// Unknown until now, recorded under accept-new (trust on first use: verified from the
    /// next connection on).
    RecordedNew,
    /// Accepted without any check (`--insecure-ignore-host-keys`), or "recorded" nowhere.
    Unverified,
}

struct HostKeyPolicy {
    label: String,
    /// `host` or `[host]:port`, as in known_hosts.
    name: String,
    check_files: Vec<PathBuf>,
    learn_file: Option<PathBuf>,
    strict: StrictHostKeyChecking,
    /// What the last handshake's key turned out to be.
    trust: StdMutex<Option<KeyTrust>>,
}

impl HostKeyPolicy {
    fn trust(&self) -> Option<KeyTrust> {
        *self.trust.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn decide(&self, key: &PublicKey) -> Result<(), ConnectError> {
        let trust = self.judge(key)?;
        *self.trust.lock().unwrap_or_else(|p| p.into_inner()) = Some(trust);
        Ok(())
    }

    fn judge(&self, key: &PublicKey) -> Result<KeyTrust, ConnectError> {
        let status =
            known_hosts::check(&self.check_files, &self.name, key).map_err(|(path, source)| {
                ConnectError::KnownHosts {
                    host: self.label.clone(),
                    path,
                    source,
                }
            })?;
        let fingerprint = known_hosts::fingerprint(key);
        match status {
            HostKeyStatus::Known => Ok(KeyTrust::Verified),
            HostKeyStatus::Changed {
                location,
                expected_fingerprint,
            } => Err(ConnectError::HostKeyChanged {
                host: self.label.clone(),
                expected_fingerprint,
                actual_fingerprint: fingerprint,
                known_hosts_line: location,
            }),
            HostKeyStatus::Revoked { location } => Err(ConnectError::HostKeyChanged {
                host: self.label.clone(),
                expected_fingerprint: format!("not the @revoked key at {location}"),
                actual_fingerprint: fingerprint,
                known_hosts_line: location,
            }),
            // Known by another key type only: accept-new must not take the new type as
            // "unknown" (OpenSSH would), or an impostor offering another type gets in.
            HostKeyStatus::OtherTypeKnown {
                location,
                known_types,
            } if self.strict != StrictHostKeyChecking::No => {
                Err(ConnectError::HostKeyTypeChanged {
                    host: self.label.clone(),
                    offered_type: key.algorithm().as_str().to_string(),
                    fingerprint,
                    known_types,
                    known_at: location,
                })
            }
            HostKeyStatus::Unknown if self.strict == StrictHostKeyChecking::Yes => {
                Err(ConnectError::HostKeyUnknown {
                    host: self.label.clone(),
                    fingerprint,
                    checked: self.check_files.clone(),
                })
            }
            HostKeyStatus::Unknown | HostKeyStatus::OtherTypeKnown { .. } => {
                let learn = self
                    .learn_file
                    .as_ref()
                    .filter(|f| self.strict == StrictHostKeyChecking::AcceptNew && !is_null(f));
                let Some(file) = learn else {
                    tracing::warn!(
                        "{}: host key {fingerprint} accepted WITHOUT verification",
                        self.label
                    );
                    return Ok(KeyTrust::Unverified);
                };
                known_hosts::append(file, &self.name, key).map_err(|source| {
                    ConnectError::KnownHosts {
                        host: self.label.clone(),
                        path: file.clone(),
                        source,
                    }
                })?;
                tracing::warn!(
                    "{}: new host key {fingerprint} recorded in {}",
                    self.label,
                    file.display()
                );
                Ok(KeyTrust::RecordedNew)
            }
        }
    }
}

fn is_null(p: &std::path::Path) -> bool {
    p == std::path::Path::new("/dev/null")
}

/// Where and how to connect to one SSH endpoint (a host or a jump host).
struct Target {
    label: String,
    hostname: String,
    port: u16,
    user: String,
    identity_files: Vec<PathBuf>,
    use_agent: bool,
    policy: Arc<HostKeyPolicy>,
    proxy_jump: Option<String>,
    /// The inventory's key file, also offered to jump hosts.
    explicit_key: Option<PathBuf>,
}

/// Per-endpoint settings before `~/.ssh/config` is applied.
struct Endpoint<'a> {
    label: &'a str,
    address: &'a str,
    port: Option<u16>,
    user: Option<&'a str>,
    key_file: Option<&'a std::path::Path>,
    identities_only: bool,
    user_known_hosts_files: &'a [PathBuf],
    strict: Option<StrictHostKeyChecking>,
    /// Where `strict` and `user_known_hosts_files` came from (the inventory variable).
    host_key_origin: Option<&'a str>,
    proxy_jump: Option<&'a str>,
}

fn local_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            if crate::local::euid() == Some(0) {
                "root".into()
            } else {
                "nobody".into()
            }
        })
}

impl SshState {
    fn resolve(&self, ep: Endpoint<'_>, opts: &ConnectOptions) -> Result<Target, ConnectError> {
        let cfg = match &self.config {
            Ok(c) => c.resolve(ep.address),
            Err(e) => {
                return Err(ConnectError::Config {
                    host: ep.label.to_string(),
                    detail: e.clone(),
                });
            }
        };
        let hostname = cfg
            .hostname
            .clone()
            .unwrap_or_else(|| ep.address.to_string());
        let port = ep.port.or(cfg.port).unwrap_or(22);
        let user = ep
            .user
            .map(str::to_string)
            .or(cfg.user.clone())
            .unwrap_or_else(local_user);
        let identities_only = ep.identities_only || cfg.identities_only.unwrap_or(false);
        let mut identity_files: Vec<PathBuf> = Vec::new();
        if let Some(k) = ep.key_file {
            identity_files.push(expand_tokens(&k.to_string_lossy(), &hostname, &user, port));
        }
        for f in &cfg.identity_files {
            identity_files.push(expand_tokens(f, &hostname, &user, port));
        }
        if identity_files.is_empty()
            && let Some(h) = home_dir()
        {
            // OpenSSH's defaults, only those that exist (no noise about absent ones).
            for n in ["id_ed25519", "id_ecdsa", "id_rsa"] {
                let p = h.join(".ssh").join(n);
                if p.is_file() {
                    identity_files.push(p);
                }
            }
        }
        identity_files.dedup();

        let inventory_origin = || {
            ep.host_key_origin
                .map(str::to_string)
                .unwrap_or_else(|| format!("the inventory entry of `{}`", ep.label))
        };
        // Known-hosts files: per-host inventory option, then --known-hosts, then
        // ~/.ssh/config, then ~/.ssh/known_hosts. The global file is always consulted.
        // `files_origin` is None when the command line or the default chose.
        let (user_files, files_origin): (Vec<PathBuf>, Option<String>) =
            if !ep.user_known_hosts_files.is_empty() {
                let files = ep
                    .user_known_hosts_files
                    .iter()
                    .map(|p| expand_tokens(&p.to_string_lossy(), &hostname, &user, port))
                    .collect();
                (files, Some(inventory_origin()))
            } else if let Some(k) = &opts.known_hosts {
                (vec![k.clone()], None)
            } else if !cfg.user_known_hosts_files.is_empty() {
                let files = cfg
                    .user_known_hosts_files
                    .iter()
                    .map(|p| expand_tokens(p, &hostname, &user, port))
                    .collect();
                (files, cfg.user_known_hosts_origin.clone())
            } else {
                let files = home_dir()
                    .map(|h| vec![h.join(".ssh/known_hosts")])
                    .unwrap_or_default();
                (files, None)
            };
        let learn_file = user_files.first().cloned();
        let mut check_files = user_files;
        if cfg.global_known_hosts_files.is_empty() {
            check_files.push(PathBuf::from("/etc/ssh/ssh_known_hosts"));
        } else {
            check_files.extend(cfg.global_known_hosts_files.iter().map(PathBuf::from));
        }
        let (setting, setting_origin) = match ep.strict {
            Some(s) => (Some(s), Some(inventory_origin())),
            None => (cfg.strict_host_key_checking, cfg.strict_origin.clone()),
        };
        let mut strict = setting.unwrap_or(StrictHostKeyChecking::Yes);
        if opts.accept_new_host_keys && strict == StrictHostKeyChecking::Yes {
            strict = StrictHostKeyChecking::AcceptNew;
        }
        if opts.insecure_ignore_host_keys {
            strict = StrictHostKeyChecking::No;
        } else {
            // Only the command line may switch checking off: an inventory or ssh config that
            // does so (the common Ansible lab idiom) is refused, saying where it came from.
            let refuse =
                |setting: &str, origin: Option<String>| ConnectError::InsecureHostKeySetting {
                    host: ep.label.to_string(),
                    setting: setting.to_string(),
                    origin: origin.unwrap_or_else(|| "the SSH settings".into()),
                };
            if setting == Some(StrictHostKeyChecking::No) {
                return Err(refuse("StrictHostKeyChecking=no", setting_origin));
            }
            // Recording into /dev/null accepts every key as new, every time.
            if strict == StrictHostKeyChecking::AcceptNew
                && files_origin.is_some()
                && learn_file.as_deref().is_some_and(is_null)
            {
                return Err(refuse("UserKnownHostsFile=/dev/null", files_origin));
            }
        }
        let proxy_jump = ep
            .proxy_jump
            .map(str::to_string)
            .or(cfg.proxy_jump.clone())
            .filter(|j| !j.eq_ignore_ascii_case("none"));
        let explicit_key = ep
            .key_file
            .map(|k| expand_tokens(&k.to_string_lossy(), &hostname, &user, port));
        Ok(Target {
            label: ep.label.to_string(),
            policy: Arc::new(HostKeyPolicy {
                label: ep.label.to_string(),
                name: known_hosts::entry_name(&hostname, port),
                check_files,
                learn_file,
                strict,
                trust: StdMutex::new(None),
            }),
            hostname,
            port,
            user,
            identity_files,
            use_agent: !identities_only,
            proxy_jump,
            explicit_key,
        })
    }

    /// TCP (or a channel through a jump host) + handshake + host key + authentication.
    async fn open<S>(
        &self,
        target: &Target,
        stream: S,
        deadline: Instant,
    ) -> Result<Handle<Client>, ConnectError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let outcome = Arc::new(StdMutex::new(None));
        let client = Client {
            policy: target.policy.clone(),
            outcome: outcome.clone(),
        };
        let timeout_err = |what: &str| ConnectError::Timeout {
            host: target.label.clone(),
            what: format!("connect ({what} with {}:{})", target.hostname, target.port),
            after: Duration::ZERO,
        };
        let known = known_hosts::known_algorithms(&target.policy.check_files, &target.policy.name);
        let config = match prefer_known(&known) {
            Some(p) => Arc::new(russh_config(self.keepalive, p)),
            None => self.russh.clone(),
        };
        let handshake = tokio::time::timeout_at(
            deadline,
            russh::client::connect_stream(config, stream, client),
        )
        .await
        .map_err(|_| timeout_err("SSH handshake"))?;
        let mut handle = match handshake {
            Ok(h) => h,
            Err(e) => {
                if let Some(hk) = outcome.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    return Err(hk);
                }
                return Err(ConnectError::Ssh {
                    host: target.label.clone(),
                    stage: "handshake",
                    source: e,
                });
            }
        };
        let plan = AuthPlan {
            user: &target.user,
            identity_files: &target.identity_files,
            use_agent: target.use_agent,
        };
        match tokio::time::timeout_at(deadline, auth::authenticate(&mut handle, &self.keys, plan))
            .await
        {
            Err(_) => Err(timeout_err("authentication")),
            Ok(Ok(())) => Ok(handle),
            Ok(Err(tried)) => Err(ConnectError::AuthFailed {
                host: target.label.clone(),
                user: target.user.clone(),
                tried,
            }),
        }
    }

    async fn tcp(
        &self,
        target: &Target,
        deadline: Instant,
    ) -> Result<tokio::net::TcpStream, ConnectError> {
        let addr = format!("{}:{}", target.hostname, target.port);
        let tcp = tokio::time::timeout_at(
            deadline,
            tokio::net::TcpStream::connect((target.hostname.as_str(), target.port)),
        )
        .await
        .map_err(|_| ConnectError::Timeout {
            host: target.label.clone(),
            what: format!("connect (TCP to {addr})"),
            after: Duration::ZERO,
        })?
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::ConnectionRefused {
                ConnectError::Refused {
                    host: target.label.clone(),
                    addr: addr.clone(),
                    source,
                }
            } else {
                ConnectError::Unreachable {
                    host: target.label.clone(),
                    addr: addr.clone(),
                    source,
                }
            }
        })?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    /// Connect to `target`, through its ProxyJump chain if any. Returns the target's handle
    /// and the jump hosts' handles (which must stay alive as long as it).
    async fn connect_chain(
        &self,
        target: &Target,
        opts: &ConnectOptions,
        deadline: Instant,
    ) -> Result<(Handle<Client>, Vec<Arc<Handle<Client>>>), ConnectError> {
        let Some(chain) = target.proxy_jump.clone() else {
            let tcp = self.tcp(target, deadline).await?;
            return Ok((self.open(target, tcp, deadline).await?, vec![]));
        };
        let mut jumps: Vec<Arc<Handle<Client>>> = Vec::new();
        for hop in chain.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            let (user, rest) = match hop.rsplit_once('@') {
                Some((u, r)) => (Some(u), r),
                None => (None, hop),
            };
            let (host, port) = split_host_port(rest);
            let label = format!("{} (via jump host {host})", target.label);
            let jt = self.resolve(
                Endpoint {
                    label: &label,
                    address: host,
                    port,
                    user,
                    // Labs usually share one key; OpenSSH would only use the jump host's
                    // ~/.ssh/config identities, which are tried too.
                    key_file: target.explicit_key.as_deref(),
                    identities_only: false,
                    user_known_hosts_files: &[],
                    strict: None,
                    host_key_origin: None,
                    // The chain is explicit; a jump host's own ProxyJump is not followed.
                    proxy_jump: Some("none"),
                },
                opts,
            )?;
            let handle = match jumps.last() {
                None => {
                    let tcp = self.tcp(&jt, deadline).await?;
                    self.open(&jt, tcp, deadline).await?
                }
                Some(prev) => {
                    let stream = direct_tcpip(prev, &jt, deadline).await?;
                    self.open(&jt, stream, deadline).await?
                }
            };
            jumps.push(Arc::new(handle));
        }
        let Some(last) = jumps.last() else {
            let tcp = self.tcp(target, deadline).await?;
            return Ok((self.open(target, tcp, deadline).await?, vec![]));
        };
        let stream = direct_tcpip(last, target, deadline).await?;
        Ok((self.open(target, stream, deadline).await?, jumps))
    }
}

async fn direct_tcpip(
    via: &Handle<Client>,
    target: &Target,
    deadline: Instant,
) -> Result<russh::ChannelStream<russh::client::Msg>, ConnectError> {
    let ch = tokio::time::timeout_at(
        deadline,
        via.channel_open_direct_tcpip(
            target.hostname.clone(),
            u32::from(target.port),
            "127.0.0.1",
            0,
        ),
    )
    .await
    .map_err(|_| ConnectError::Timeout {
        host: target.label.clone(),
        what: format!(
            "connect (jump host forwarding to {}:{})",
            target.hostname, target.port
        ),
        after: Duration::ZERO,
    })?
    .map_err(|e| ConnectError::Unreachable {
        host: target.label.clone(),
        addr: format!(
            "{}:{} (through the jump host)",
            target.hostname, target.port
        ),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(ch.into_stream())
}

fn split_host_port(s: &str) -> (&str, Option<u16>) {
    if let Some(rest) = s.strip_prefix('[')
        && let Some((h, p)) = rest.split_once(']')
    {
        return (h, p.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().ok()),
        _ => (s, None),
    }
}

pub(crate) async fn connect(
    state: &SshState,
    host: &str,
    spec: &ConnectionSpec,
    opts: &ConnectOptions,
) -> Result<AgentSession, ConnectError> {
    let target = state.resolve(
        Endpoint {
            label: host,
            address: &spec.address,
            port: spec.port,
            user: spec.user.as_deref(),
            key_file: spec.private_key_file.as_deref(),
            identities_only: spec.identities_only,
            user_known_hosts_files: &spec.user_known_hosts_files,
            strict: spec.strict_host_key_checking,
            host_key_origin: spec.host_key_options_origin.as_deref(),
            proxy_jump: spec.proxy_jump.as_deref(),
        },
        opts,
    )?;
    let deadline = Instant::now() + opts.connect_timeout;
    let (handle, jumps) =
        state
            .connect_chain(&target, opts, deadline)
            .await
            .map_err(|e| match e {
                // Every timeout while connecting is the connect deadline's.
                ConnectError::Timeout { host, what, .. } => ConnectError::ConnectTimeout {
                    host,
                    what,
                    after: opts.connect_timeout,
                },
                e => e,
            })?;
    let handle = Arc::new(handle);

    // The become password goes only to a host whose key was found in known_hosts: to a host
    // seen for the first time (accept-new) or not checked at all it would be handed to
    // whoever answered. sudo then runs with `-n`, so NOPASSWD hosts still work.
    let trust = target.policy.trust().unwrap_or(KeyTrust::Unverified);
    let wanted = opts
        .become_password
        .clone()
        .or_else(|| spec.become_password.clone());
    let withheld = spec.become_ && wanted.is_some() && trust != KeyTrust::Verified;
    let password = if withheld { None } else { wanted };
    let withheld_err = |e: ConnectError| match e {
        ConnectError::BecomeFailed { host, .. } if withheld => ConnectError::BecomeFailed {
            host,
            detail: match trust {
                KeyTrust::RecordedNew => "sudo needs a password, and it was not sent: the host \
                    key was seen for the first time (it is now recorded, so the next run sends \
                    the password to this host)"
                    .into(),
                _ => "sudo needs a password, and it was not sent: the host key was not \
                    verified (host-key checking is off)"
                    .into(),
            },
        },
        e => e,
    };
    let become_user = spec.become_user.clone().filter(|u| u != "root");
    let mut prompt_text = None;
    let mode = if spec.become_ {
        prompt_text = password.as_ref().map(|_| crate::local::prompt_nonce());
        BecomeMode::Sudo {
            prompt: prompt_text.clone(),
            user: become_user,
        }
    } else {
        BecomeMode::None
    };
    let become_prompt = match (&prompt_text, &password) {
        (Some(p), Some(pw)) => Some(BecomePrompt {
            prompt: p.clone(),
            password: pw.clone(),
        }),
        _ => None,
    };
    // Opening the channel and starting the command get the connect timeout too: a server
    // that authenticated but never confirms the channel (and answers keepalives) would
    // otherwise hold this host for ever.
    let open_exec = |script: String| async {
        match tokio::time::timeout(
            opts.connect_timeout,
            bootstrap::exec_process(handle.clone(), jumps.clone(), script),
        )
        .await
        {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(source)) => Err(ConnectError::Ssh {
                host: host.to_string(),
                stage: "starting the agent",
                source,
            }),
            Err(_) => Err(ConnectError::Timeout {
                host: host.to_string(),
                what: "connect (opening an SSH session channel for the agent)".into(),
                after: opts.connect_timeout,
            }),
        }
    };

    // The hot path: one exec that runs the cached agent, or exits 86.
    let script = bootstrap::command(&bootstrap::run_script(&opts.agents, &mode));
    let proc = open_exec(script).await?;
    let no_agent = |arch: String| ConnectError::NoAgentForArch {
        host: host.to_string(),
        arch,
        have: opts.agents.describe(),
    };
    let (why, arch) = match session::start(
        host,
        proc,
        become_prompt.clone(),
        false,
        opts.command_timeout,
    )
    .await
    {
        Ok(s) => return Ok(s),
        Err(StartError::NeedUpload(why, arch)) => (why, arch.unwrap_or_default()),
        Err(StartError::NoAgentForArch(arch)) => return Err(no_agent(arch)),
        Err(e) => return Err(withheld_err(map_start_error(host, "", e))),
    };
    // The script only asks for an upload after matching `uname -m` to one of our agents.
    let Some(agent) = Arch::from_uname(&arch).and_then(|a| opts.agents.for_arch(a)) else {
        return Err(no_agent(arch));
    };
    let sha = agent.sha256();

    // The upload: one more exec, whose script stores the agent and then `exec`s it, so this
    // channel becomes the agent's. Nothing else is written until sudo's prompt or the agent's
    // marker appears (`session::start` sends Hello only after the marker), so `head -c N`
    // on the far end cannot read past the agent's bytes.
    tracing::debug!("{host}: uploading the {arch} agent: {why}");
    let bytes = agent.bytes();
    let Some(agent_arch) = agent.arch() else {
        return Err(no_agent(arch));
    };
    let script = bootstrap::command(&bootstrap::upload_script(
        agent_arch,
        sha,
        bytes.len(),
        &mode,
    ));
    let mut proc = open_exec(script).await?;
    let sent = tokio::time::timeout(opts.command_timeout, async {
        proc.stdin.write_all(bytes).await?;
        proc.stdin.flush().await
    })
    .await;
    match sent {
        Ok(Ok(())) => {}
        // The script ended early (no space, no directory...): its exit status and stderr,
        // read by `session::start`, say why.
        Ok(Err(e)) => tracing::debug!("{host}: sending the agent stopped: {e}"),
        Err(_) => {
            return Err(ConnectError::Timeout {
                host: host.to_string(),
                what: format!("uploading the agent ({} bytes)", bytes.len()),
                after: opts.command_timeout,
            });
        }
    }
    session::start(host, proc, become_prompt, true, opts.command_timeout)
        .await
        .map_err(|e| match e {
            StartError::NeedUpload(why, _) => ConnectError::AgentStart {
                host: host.to_string(),
                detail: format!("{why}, even right after uploading it (noexec mount? no space?)"),
            },
            e => map_start_error(host, sha, e),
        })
        .map_err(withheld_err)
}

fn map_start_error(host: &str, sha: &str, e: StartError) -> ConnectError {
    let host = host.to_string();
    match e {
        StartError::NeedUpload(detail, _) | StartError::Failed(detail) => {
            ConnectError::AgentStart { host, detail }
        }
        StartError::NoAgentForArch(arch) => ConnectError::AgentStart {
            host,
            detail: format!("no agent for the host's architecture {arch}"),
        },
        StartError::Exited { code, detail } => ConnectError::AgentExited { host, code, detail },
        StartError::Upload(detail) => ConnectError::AgentUpload {
            host,
            path: format!("agent-{sha}"),
            detail,
        },
        StartError::Become(detail) => ConnectError::BecomeFailed { host, detail },
        StartError::Timeout(after) => ConnectError::Timeout {
            host,
            what: "starting the agent".into(),
            after,
        },
        StartError::Session(source) => ConnectError::Handshake { host, source },
    }
}

#[cfg(test)]
mod tests {
    use super::split_host_port;

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("a:2222"), ("a", Some(2222)));
        assert_eq!(split_host_port("a"), ("a", None));
        assert_eq!(split_host_port("[::1]:22"), ("::1", Some(22)));
        assert_eq!(split_host_port("::1"), ("::1", None));
    }
}
