//! `rookery probe`: facts and block devices of every selected host, with Ceph's verdict per
//! disk. Human tables or one JSON document (`-o json`, read back by `rookery plan --facts`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use rookery_inventory::{ConnectionKind, Inventory};
use rookery_transport::Connector;

use crate::connect::{BecomeArgs, ConnectArgs, ForksArgs};
use crate::exit;
use crate::output::{Output, OutputFormat};
use crate::probe::{ProbeReportJson, Recap, gather};
use crate::report::{Style, host_section, recap};

pub use crate::connect::DEFAULT_FORKS;

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// Inventory file (Ansible YAML or INI) or directory.
    #[arg(long, short = 'i', env = "ROOKERY_INVENTORY")]
    pub inventory: PathBuf,
    /// Only hosts matching this Ansible host pattern (`group`, `host`, globs, `a:b`, `a:&b`,
    /// `a:!b`).
    #[arg(long, short = 'l', value_name = "PATTERN")]
    pub limit: Option<String>,
    #[command(flatten)]
    pub forks: ForksArgs,
    /// Report loop devices too (tests use loop devices over sparse files).
    #[arg(long)]
    pub include_loop: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Seconds of silence allowed from a host's agent (start-up and each request).
    #[arg(long, value_name = "S", default_value_t = 60)]
    pub timeout: u64,
    #[command(flatten)]
    pub become_: BecomeArgs,
}

pub async fn run(args: ProbeArgs, out: Output) -> ExitCode {
    let inventory = match Inventory::load(&args.inventory) {
        Ok(i) => i,
        Err(e) => return ExitCode::from(crate::error::report(&e)),
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
    let mut opts = match args.connect.options(args.timeout) {
        Ok(o) => o,
        Err((code, msg)) => {
            eprintln!("error: {msg}");
            return ExitCode::from(code);
        }
    };
    let any_ssh = hosts
        .iter()
        .any(|h| h.connection.kind == ConnectionKind::Ssh);
    for agent in opts.agents.iter() {
        if any_ssh && !agent.is_static() && !out.quiet {
            eprintln!(
                "warning: the agent {} is dynamically linked; hosts with another C library may \
                 not run it (build the static one with `cargo xtask agent`)",
                agent.path().display()
            );
        }
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
    if let Err((code, msg)) = args.become_.apply(&mut opts) {
        eprintln!("error: {msg}");
        return ExitCode::from(code);
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
        args.forks.forks as usize,
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
