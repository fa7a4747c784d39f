//! Command-line definition and dispatch.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands;
use crate::exit;
use crate::output::{Output, OutputFormat};

/// Rookery brings up Rook Ceph (CephFS), StorageClasses, CSI snapshots and Velero on
/// bare-metal K3s clusters, from an Ansible-style inventory of your servers.
///
/// Start with `rookery probe -i INVENTORY` to see every host's disks and whether Ceph can
/// use them.
#[derive(Debug, Parser)]
#[command(
    name = "rookery",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Output format: `human` (tables, recap) or `json` (for machines).
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    /// More detail (-v timings and skipped devices, -vv debug logs, -vvv protocol traces).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors and the final recap.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show each host's facts and block devices, and whether Ceph can use each disk.
    Probe(commands::probe::ProbeArgs),
    /// Show what an inventory resolves to: hosts, groups and variables.
    #[command(subcommand)]
    Inventory(commands::inventory::InventoryCommand),
    Plan(commands::plan::PlanArgs),
    Render(commands::render::RenderArgs),
    Apply(commands::apply::ApplyArgs),
    Diff(commands::diff::DiffArgs),
    Status(commands::status::StatusArgs),
    Doctor(commands::doctor::DoctorArgs),
    Bundle(commands::bundle::BundleCli),
    /// Run an Ansible-style playbook (plays, tasks, handlers) against an inventory.
    Play(commands::play::PlayArgs),
    Prepare(commands::prepare::PrepareArgs),
    Up(commands::up::UpArgs),
    /// Velero backups without the velero CLI: create (and wait), list, describe.
    Backup(commands::backup::BackupCli),
    /// Velero restores: restore a backup, optionally into other namespaces.
    Restore(commands::restore::RestoreCli),
    Drill(Box<commands::drill::DrillCli>),
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    let out = Output::new(cli.global.output, cli.global.verbose, cli.global.quiet);
    init_logging(&out);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(exit::ERROR);
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Probe(args) => commands::probe::run(args, out).await,
            Command::Inventory(cmd) => commands::inventory::run(cmd, out).await,
            Command::Plan(args) => commands::plan::run(args, out).await,
            Command::Render(args) => commands::render::run(args, out).await,
            Command::Apply(args) => commands::apply::run(args, out).await,
            Command::Diff(args) => commands::diff::run(args, out).await,
            Command::Status(args) => commands::status::run(args, out).await,
            Command::Doctor(args) => commands::doctor::run(args, out).await,
            Command::Bundle(args) => commands::bundle::run(args.command, out).await,
            Command::Play(args) => commands::play::run(args, out).await,
            Command::Prepare(args) => commands::prepare::run(args, out).await,
            Command::Up(args) => commands::up::run(args, out).await,
            Command::Backup(args) => commands::backup::run(args, out).await,
            Command::Restore(args) => commands::restore::run(args, out).await,
            Command::Drill(args) => commands::drill::run(*args, out).await,
        }
    })
}

fn init_logging(out: &Output) {
    use tracing_subscriber::EnvFilter;
    // kube-rs logs the failures rookery reports itself (with context and a hint); its own
    // lines only appear when asked for with -vv or RUST_LOG.
    let default = match (out.quiet, out.verbose) {
        (true, _) => "error,kube_client=off",
        (false, 0 | 1) => "warn,kube_client=off",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_ansi(out.color && std::env::var_os("NO_COLOR").is_none())
        .try_init();
}

/// Print an error with its cause chain and any hints, the way every command reports failure
/// (through [`crate::error::report`]); returns the exit code it calls for.
pub fn report_error(err: &anyhow::Error) -> u8 {
    crate::error::report(err.as_ref())
}
