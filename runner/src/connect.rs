//! The SSH connection flags shared by `probe`, `play`, `prepare` and `plan`/`render --probe`,
//! and the one place they become a [`ConnectOptions`]. Each command flattens the structs it
//! needs (`#[command(flatten)]`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use rookery_transport::{Agents, ConnectOptions};

use crate::exit;
use crate::probe::error_chain;

/// Default parallelism. Probing is I/O-bound and one connection costs a socket and a few
/// hundred KiB, so all hosts of a typical cluster go at once (Ansible's 5 is why its fact
/// gathering is slow); 100 stays well inside the usual `ulimit -n` of 1024 and sshd's
/// `MaxStartups` through a shared bastion.
pub const DEFAULT_FORKS: u32 = 100;

/// How to reach hosts: host keys, ssh config, the agent to upload, connect timeout.
/// `--timeout` (the agent's silence allowance) stays in each command, whose default and
/// wording differ (probe 60, play 600, prepare 300): clap's `default_value_t` keeps its text
/// in a `static`, which a const-generic struct would share between all commands.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// Record unknown host keys in known_hosts instead of refusing them (changed keys are
    /// always refused).
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Do not verify host keys (throwaway lab hosts only): unknown keys are accepted and not
    /// recorded, and inventory or ssh config settings that switch checking off are allowed.
    /// Keys that contradict known_hosts are still refused, and become passwords are never
    /// sent to unverified hosts.
    #[arg(long)]
    pub insecure_ignore_host_keys: bool,
    /// known_hosts file for this inventory (checked instead of ~/.ssh/known_hosts, and
    /// where new keys are recorded).
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// OpenSSH client config to read instead of ~/.ssh/config.
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// A rookery-agent binary to run on hosts; repeat it once per architecture (x86_64,
    /// aarch64: each host gets the one for its `uname -m`). Default: the paths in
    /// $ROOKERY_AGENT (`:`-separated), then rookery-agent-ARCH next to rookery.
    #[arg(long, value_name = "PATH")]
    pub agent_binary: Vec<PathBuf>,
    /// Seconds allowed for TCP connect, SSH handshake and authentication.
    #[arg(long, value_name = "S", default_value_t = 10)]
    pub connect_timeout: u64,
}

/// Printed once per run under `--insecure-ignore-host-keys`, even with `-q`.
pub const INSECURE_WARNING: &str = "warning: --insecure-ignore-host-keys: HOST KEYS ARE NOT \
VERIFIED in this run; anyone on the network path can impersonate these hosts (become passwords \
are not sent to hosts whose key is unverified)";

/// `-K`: the sudo password, asked once.
#[derive(Debug, Clone, clap::Args)]
pub struct BecomeArgs {
    /// Ask once for the sudo password used by hosts with `ansible_become`.
    #[arg(long, short = 'K')]
    pub ask_become_pass: bool,
}

/// `-f`: how many hosts are worked on at once.
#[derive(Debug, Clone, clap::Args)]
pub struct ForksArgs {
    /// How many hosts to work on at once.
    #[arg(long, short = 'f', default_value_t = DEFAULT_FORKS, value_parser = clap::value_parser!(u32).range(1..))]
    pub forks: u32,
}

/// A failure while building the options: the exit code and the message (without `error: `).
pub type ConnectError = (u8, String);

impl ConnectArgs {
    /// Locate the agent and turn the flags into [`ConnectOptions`] (no password yet: see
    /// [`BecomeArgs::apply`]); `timeout` is the command's `--timeout` in seconds. Exit code
    /// [`exit::ERROR`] when the agent cannot be found.
    pub fn options(&self, timeout: u64) -> Result<ConnectOptions, ConnectError> {
        let agents =
            Agents::locate(&self.agent_binary).map_err(|e| (exit::ERROR, error_chain(&e)))?;
        let mut opts = ConnectOptions::new(agents);
        opts.accept_new_host_keys = self.accept_new_host_keys;
        opts.insecure_ignore_host_keys = self.insecure_ignore_host_keys;
        if self.insecure_ignore_host_keys {
            // Printed whatever -q says: a run without host-key checking must never look like
            // a normal one.
            eprintln!("{INSECURE_WARNING}");
        }
        opts.known_hosts = self.known_hosts.clone();
        opts.ssh_config = self.ssh_config.clone();
        opts.connect_timeout = Duration::from_secs(self.connect_timeout.max(1));
        opts.command_timeout = Duration::from_secs(timeout.max(1));
        opts.interactive = std::io::stdin().is_terminal();
        Ok(opts)
    }
}

impl BecomeArgs {
    /// With `-K`, prompt for the become password and put it into `opts`. Exit code
    /// [`exit::USAGE`] without a terminal.
    pub fn apply(&self, opts: &mut ConnectOptions) -> Result<(), ConnectError> {
        if self.ask_become_pass {
            let p = rookery_transport::prompt_secret("BECOME password: ").map_err(|e| {
                (
                    exit::USAGE,
                    format!(
                        "--ask-become-pass needs a terminal ({e}); set ansible_become_password \
                         instead"
                    ),
                )
            })?;
            opts.become_password = Some(p);
        }
        Ok(())
    }
}

/// Both steps: [`ConnectArgs::options`], then [`BecomeArgs::apply`].
pub fn connect_options(
    connect: &ConnectArgs,
    timeout: u64,
    become_: &BecomeArgs,
) -> Result<ConnectOptions, ConnectError> {
    let mut opts = connect.options(timeout)?;
    become_.apply(&mut opts)?;
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Command {
        Cli::try_parse_from(args).expect("parses").command
    }

    #[test]
    fn each_command_keeps_its_defaults() {
        let Command::Probe(a) = parse(&["rookery", "probe", "-i", "inv"]) else {
            panic!("probe")
        };
        assert_eq!((a.timeout, a.connect.connect_timeout), (60, 10));
        assert_eq!(a.forks.forks, super::DEFAULT_FORKS);
        let Command::Play(a) = parse(&["rookery", "play", "pb.yaml", "-i", "inv"]) else {
            panic!("play")
        };
        assert_eq!((a.timeout, a.forks.forks), (600, 100));
        let Command::Prepare(a) = parse(&["rookery", "prepare", "-i", "inv", "-f", "3"]) else {
            panic!("prepare")
        };
        assert_eq!((a.timeout, a.forks.forks), (300, 3));
        let Command::Plan(a) = parse(&["rookery", "plan", "-i", "inv", "--stack", "s.yaml"]) else {
            panic!("plan")
        };
        assert_eq!(a.input.probe_timeout, 60);
        assert!(!a.input.connect.accept_new_host_keys);
    }

    #[test]
    fn connection_flags_parse_into_the_shared_struct() {
        let Command::Play(a) = parse(&[
            "rookery",
            "play",
            "pb.yaml",
            "-i",
            "inv",
            "-K",
            "--accept-new-host-keys",
            "--insecure-ignore-host-keys",
            "--known-hosts",
            "kh",
            "--ssh-config",
            "cfg",
            "--agent-binary",
            "agent",
            "--connect-timeout",
            "3",
            "--timeout",
            "7",
        ]) else {
            panic!("play")
        };
        assert!(a.become_.ask_become_pass && a.connect.accept_new_host_keys);
        assert!(a.connect.insecure_ignore_host_keys);
        assert_eq!(a.connect.known_hosts.as_deref(), Some("kh".as_ref()));
        assert_eq!(a.connect.ssh_config.as_deref(), Some("cfg".as_ref()));
        assert_eq!(
            a.connect.agent_binary,
            vec![std::path::PathBuf::from("agent")]
        );
        assert_eq!((a.connect.connect_timeout, a.timeout), (3, 7));
        assert!(Cli::try_parse_from(["rookery", "probe", "-i", "inv", "-f", "0"]).is_err());
    }
}
