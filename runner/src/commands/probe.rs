//! `rookery probe`: facts and block devices of every selected host, with Ceph's verdict per
//! disk. Human tables or one JSON document (`-o json`, read back by `rookery plan --facts`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use rookery_inventory::{ConnectionKind, Inventory};
use rookery_transport::{AgentBinary, ConnectOptions, Connector};

use crate::exit;
use crate::output::{Output, OutputFormat};
use crate::probe::{ProbeReportJson, Recap, gather};
use crate::report::{Style, host_section, recap};

/// Default parallelism. Probing is I/O-bound and one connection costs a socket and a few
/// hundred KiB, so all hosts of a typical cluster go at once (Ansible's 5 is why its fact
/// gathering is slow); 100 stays well inside the usual `ulimit -n` of 1024 and sshd's
/// `MaxStartups` through a shared bastion.
pub const DEFAULT_FORKS: u32 = 100;

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// Inventory file (Ansible YAML or INI) or directory.
    #[arg(long, short = 'i', env = "ROOKERY_INVENTORY")]
    pub inventory: PathBuf,
    /// Only hosts matching this Ansible host pattern (`group`, `host`, globs, `a:b`, `a:&b`,
    /// `a:!b`).
    #[arg(long, short = 'l', value_name = "PATTERN")]
    pub limit: Option<String>,
    /// How many hosts to probe at once.
    #[arg(long, short = 'f', default_value_t = DEFAULT_FORKS, value_parser = clap::value_parser!(u32).range(1..))]
    pub forks: u32,
    /// Record unknown host keys in known_hosts instead of refusing them (changed keys are
    /// always refused).
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// known_hosts file for this inventory (checked instead of ~/.ssh/known_hosts, and
    /// where new keys are recorded).
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// OpenSSH client config to read instead of ~/.ssh/config.
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// Report loop devices too (tests use loop devices over sparse files).
    #[arg(long)]
    pub include_loop: bool,
    /// The rookery-agent binary to run on hosts (default: $ROOKERY_AGENT, then next to
    /// rookery).
    #[arg(long, value_name = "PATH")]
    pub agent_binary: Option<PathBuf>,
    /// Seconds allowed for TCP connect, SSH handshake and authentication.
    #[arg(long, value_name = "S", default_value_t = 10)]
    pub connect_timeout: u64,
    /// Seconds of silence allowed from a host's agent (start-up and each request).
    #[arg(long, value_name = "S", default_value_t = 60)]
    pub timeout: u64,
    /// Ask once for the sudo password used by hosts with `ansible_become`.
    #[arg(long, short = 'K')]
    pub ask_become_pass: bool,
}

pub async fn run(args: ProbeArgs, out: Output) -> ExitCode {
    let inventory = match Inventory::load(&args.inventory) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::INPUT);
        }
    };
    if !out.quiet {
        for w in inventory.warnings() {
            eprintln!("warning: {w}");
        }
    }
    let hosts = match inventory.select_limited("all", args.limit.as_deref()) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: --limit: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    if hosts.is_empty() {
        eprintln!("warning: no hosts selected; nothing to probe");
        if out.format == OutputFormat::Json {
            println!("{}", json_text(&ProbeReportJson::from_results(&[])));
        }
        return ExitCode::from(exit::OK);
    }
    let agent = match AgentBinary::locate(args.agent_binary.as_deref()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {}", crate::probe::error_chain(&e));
            return ExitCode::from(exit::ERROR);
        }
    };
    let any_ssh = hosts
        .iter()
        .any(|h| h.connection.kind == ConnectionKind::Ssh);
    if any_ssh && !agent.is_static() && !out.quiet {
        eprintln!(
            "warning: the agent {} is dynamically linked; hosts with another C library may not \
             run it (build the static one with `cargo xtask agent`)",
            agent.path().display()
        );
    }
    if !out.quiet {
        for h in &hosts {
            if !h.connection.ignored_ssh_options.is_empty() {
                eprintln!(
                    "warning: {}: ignoring SSH options rookery does not implement: {}",
                    h.name,
                    h.connection.ignored_ssh_options.join(" ")
                );
            }
        }
    }
    let mut opts = ConnectOptions::new(agent);
    opts.accept_new_host_keys = args.accept_new_host_keys;
    opts.known_hosts = args.known_hosts.clone();
    opts.ssh_config = args.ssh_config.clone();
    opts.connect_timeout = Duration::from_secs(args.connect_timeout.max(1));
    opts.command_timeout = Duration::from_secs(args.timeout.max(1));
    opts.interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    if args.ask_become_pass {
        match rookery_transport::prompt_secret("BECOME password: ") {
            Ok(p) => opts.become_password = Some(p),
            Err(e) => {
                eprintln!(
                    "error: --ask-become-pass needs a terminal ({e}); set ansible_become_password instead"
                );
                return ExitCode::from(exit::USAGE);
            }
        }
    }
    let connector = Connector::new(opts);

    let bar = if out.progress {
        let bar = indicatif::ProgressBar::new(hosts.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} probing {pos}/{len} hosts [{elapsed}] {wide_msg}",
        ) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        Some(bar)
    } else {
        None
    };
    let mut on_result = |h: &crate::probe::HostProbe| {
        if let Some(b) = &bar {
            b.inc(1);
            b.set_message(format!("{} {}", h.host, h.status()));
        }
    };
    let work = gather(
        &connector,
        &hosts,
        args.forks as usize,
        args.include_loop,
        &mut on_result,
    );
    let results = tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => {
            if let Some(b) = &bar {
                b.abandon();
            }
            eprintln!("interrupted: connections closed, no results printed");
            return ExitCode::from(exit::INTERRUPTED);
        }
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }

    let counts = Recap::of(&results);
    match out.format {
        OutputFormat::Json => println!("{}", json_text(&ProbeReportJson::from_results(&results))),
        OutputFormat::Human => {
            let style = Style { color: out.color };
            let mut text = String::new();
            for h in &results {
                if out.quiet && h.facts().is_some() {
                    continue;
                }
                text.push_str(&host_section(h, style, out.verbose));
                text.push('\n');
            }
            text.push_str(&recap(&results, style));
            print!("{text}");
        }
    }
    exit::from_host_counts(counts.failed, counts.unreachable)
}

fn json_text(report: &ProbeReportJson) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
