//! `rookery backup create|list|describe`: Velero backups without the velero CLI, by creating
//! and reading Velero's own Backup objects. Waiting shows Velero's progress; a backup that
//! does not complete is reported with Velero's own reasons (exit 32).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use rookery_inventory::Inventory;
use rookery_kube::Cluster;
use rookery_kube::velero::{self, BackedUpItem, BackupRequest, BackupView, Outcome as _};
use rookery_stack::Stack;

use crate::cluster::{self, ClusterArgs, Failure};
use crate::connect::ConnectArgs;
use crate::exit;
use crate::output::{Output, OutputFormat};

/// Where Velero runs and how to reach the cluster; shared by `backup`, `restore` and `drill`.
///
/// The stack is optional: it gives Velero's namespace (`backupStrategy.namespace`), the
/// kubeconfig source (`kubeconfig.fromHost`) and the drill's targets. Without it,
/// `--velero-namespace` (default `velero`, as `velero install`) and the cluster flags do.
#[derive(Debug, Clone, clap::Args)]
pub struct VeleroTarget {
    /// Stack file (optional here: Velero's namespace, kubeconfig source, drill targets).
    #[arg(long, value_name = "FILE", env = "ROOKERY_STACK")]
    pub stack: Option<PathBuf>,
    /// Inventory (only needed with --kubeconfig-from or the stack's `kubeconfig.fromHost`).
    #[arg(long, short = 'i', env = "ROOKERY_INVENTORY")]
    pub inventory: Option<PathBuf>,
    /// Velero's namespace (default: the stack's `backupStrategy.namespace`, else `velero`).
    #[arg(long, value_name = "NS")]
    pub velero_namespace: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten, next_help_heading = "SSH (with --kubeconfig-from)")]
    pub connect: ConnectArgs,
}

/// A connected cluster and Velero's namespace.
pub struct VeleroCtx {
    pub cluster: Cluster,
    pub namespace: String,
    pub stack: Option<Stack>,
}

impl VeleroTarget {
    pub async fn connect(&self, out: &Output) -> Result<VeleroCtx, Failure> {
        let stack: Option<Stack> = match &self.stack {
            Some(p) => Some(rookery_stack::yaml::load(p).map_err(|e| Failure {
                code: exit::INPUT,
                message: crate::probe::error_chain(&e),
                hint: None,
            })?),
            None => None,
        };
        let inventory = match &self.inventory {
            Some(p) => Some(Inventory::load(p).map_err(|e| Failure {
                code: exit::INPUT,
                message: crate::probe::error_chain(&e),
                hint: None,
            })?),
            None => None,
        };
        let namespace = self
            .velero_namespace
            .clone()
            .or_else(|| stack.as_ref().map(|s| s.namespaces().velero))
            .unwrap_or_else(|| "velero".into());
        let cluster = cluster::connect(
            &self.cluster,
            stack.as_ref(),
            inventory.as_ref(),
            &self.connect,
            out,
        )
        .await?;
        Ok(VeleroCtx {
            cluster,
            namespace,
            stack,
        })
    }
}

/// Velero backups: create one now, list them, or describe one (phase, items, errors and
/// warnings, expiry).
#[derive(Debug, clap::Args)]
pub struct BackupCli {
    #[command(subcommand)]
    pub command: BackupCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum BackupCommand {
    /// Create a Velero Backup (as `velero backup create`).
    Create(CreateArgs),
    /// List the Velero Backups, oldest first.
    List(ListArgs),
    /// Show one Backup: phase, namespaces, times, items (the list of objects it holds),
    /// errors, warnings, Velero's failure reason, expiry.
    Describe(DescribeArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub target: VeleroTarget,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub target: VeleroTarget,
    /// Name of the Backup (default: rookery-YYYYMMDDHHMMSS).
    pub name: Option<String>,
    /// Namespaces to back up (repeat; default: all).
    #[arg(long = "namespace", short = 'n', value_name = "NS")]
    pub namespaces: Vec<String>,
    /// Backup storage location (default: Velero's default location).
    #[arg(long, value_name = "NAME")]
    pub storage_location: Option<String>,
    /// How long Velero keeps it (Go duration, e.g. 720h; default: Velero's, 30 days).
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Back up resources only: no volume snapshots.
    #[arg(long)]
    pub no_snapshot_volumes: bool,
    /// Wait until Velero has finished, showing its progress; exit 32 unless Completed.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: how long to wait.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = cluster::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    #[command(flatten)]
    pub target: VeleroTarget,
    pub name: String,
    /// Do not fetch the list of objects from the backup storage location.
    #[arg(long)]
    pub no_items: bool,
}

pub fn fail(f: Failure) -> ExitCode {
    f.print();
    ExitCode::from(f.code)
}

pub async fn run(args: BackupCli, out: Output) -> ExitCode {
    let target = match &args.command {
        BackupCommand::Create(a) => &a.target,
        BackupCommand::List(a) => &a.target,
        BackupCommand::Describe(a) => &a.target,
    };
    let ctx = match target.connect(&out).await {
        Ok(c) => c,
        Err(f) => return fail(f),
    };
    match args.command {
        BackupCommand::Create(a) => create(&ctx, a, &out).await,
        BackupCommand::List(_) => list(&ctx, &out).await,
        BackupCommand::Describe(a) => describe(&ctx, a, &out).await,
    }
}

/// `2026-12-06T03:47:10Z` → `20261206034710`, for generated names.
pub fn stamp() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .chars()
        .filter(char::is_ascii_digit)
        .collect()
}

/// Progress lines while waiting (stderr): printed when what Velero reports changes.
pub struct ProgressLine {
    out: Output,
    last: String,
}

impl ProgressLine {
    pub fn new(out: Output) -> Self {
        ProgressLine {
            out,
            last: String::new(),
        }
    }

    pub fn show(&mut self, line: String) {
        if self.out.quiet || line == self.last {
            return;
        }
        eprintln!("  {line}");
        self.last = line;
    }
}

pub fn items_text(done: Option<i64>, total: Option<i64>) -> String {
    match (done, total) {
        (Some(d), Some(t)) => format!("{d}/{t} items"),
        (Some(d), None) => format!("{d} items"),
        _ => "no items yet".into(),
    }
}

fn backup_progress(b: &BackupView, note: Option<&str>) -> String {
    let mut s = format!(
        "Backup {}: {}, {}",
        b.name,
        b.phase_or_new(),
        items_text(b.items_backed_up, b.total_items)
    );
    if b.errors > 0 || b.warnings > 0 {
        s.push_str(&format!(", {} errors, {} warnings", b.errors, b.warnings));
    }
    if let Some(n) = note {
        s.push_str(&format!(" ({n})"));
    }
    s
}

/// Create a Backup and, with `wait`, wait for its end; the final view either way.
pub async fn create_backup(
    ctx: &VeleroCtx,
    req: &BackupRequest,
    wait: Option<Duration>,
    out: &Output,
) -> Result<BackupView, Failure> {
    let created = velero::create_backup(&ctx.cluster, &ctx.namespace, req).await?;
    if !out.quiet && out.format == OutputFormat::Human {
        eprintln!(
            "Backup {}/{} created ({}).",
            ctx.namespace,
            created.name,
            if req.included_namespaces.is_empty() {
                "all namespaces".to_string()
            } else {
                format!("namespaces {}", req.included_namespaces.join(", "))
            }
        );
    }
    let Some(timeout) = wait else {
        return Ok(created);
    };
    let mut line = ProgressLine::new(*out);
    let done = velero::wait_backup(
        &ctx.cluster,
        &ctx.namespace,
        &req.name,
        timeout,
        &mut |b, note| line.show(backup_progress(b, note)),
    )
    .await?;
    Ok(done)
}

async fn create(ctx: &VeleroCtx, a: CreateArgs, out: &Output) -> ExitCode {
    let req = BackupRequest {
        name: a.name.unwrap_or_else(|| format!("rookery-{}", stamp())),
        included_namespaces: a.namespaces,
        storage_location: a.storage_location,
        ttl: a.ttl,
        snapshot_volumes: a.no_snapshot_volumes.then_some(false),
        labels: Default::default(),
    };
    let b = match create_backup(ctx, &req, a.wait.then_some(a.timeout), out).await {
        Ok(b) => b,
        Err(f) => return fail(f),
    };
    if out.format == OutputFormat::Json {
        print_json(&b);
    } else if a.wait {
        println!("{}", summary(&b));
    } else {
        println!(
            "Backup {} requested; follow it with `rookery backup describe {}`.",
            b.name, b.name
        );
    }
    if a.wait
        && let Err(e) = velero::backup_outcome(&b)
    {
        let mut f = Failure::from(e);
        f.message
            .push_str(&velero_errors(ctx, velero::Kind::Backup, &b.name, b.errors).await);
        return fail(f);
    }
    ExitCode::from(exit::OK)
}

/// Velero's per-item errors of a Backup or Restore that reported some, one per line (the
/// first 10), or a note why they could not be read.
pub async fn velero_errors(ctx: &VeleroCtx, kind: velero::Kind, name: &str, errors: i64) -> String {
    if errors == 0 {
        return String::new();
    }
    match velero::fetch_results(
        &ctx.cluster,
        &ctx.namespace,
        kind,
        name,
        Duration::from_secs(60),
    )
    .await
    {
        Ok(r) => {
            let mut s = String::new();
            for e in r.errors.iter().take(10) {
                s.push_str(&format!("\n  Velero: {e}"));
            }
            if r.errors.len() > 10 {
                s.push_str(&format!("\n  ... and {} more", r.errors.len() - 10));
            }
            s
        }
        Err(e) => format!(
            "\n  (Velero's error messages could not be read: {})",
            crate::probe::error_chain(&e)
        ),
    }
}

fn summary(b: &BackupView) -> String {
    format!(
        "Backup {} {}: {} backed up, {} errors, {} warnings{}",
        b.name,
        b.phase_or_new(),
        items_text(b.items_backed_up, b.total_items),
        b.errors,
        b.warnings,
        b.expiration
            .as_deref()
            .map(|e| format!(", expires {e}"))
            .unwrap_or_default()
    )
}

pub fn print_json<T: serde::Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: {e}"),
    }
}

/// `5m ago` / `in 29d 23h` for a timestamp, `-` when absent.
pub fn relative(ts: Option<&str>) -> String {
    let Some(t) = ts.and_then(velero::parse_time) else {
        return "-".into();
    };
    let now = SystemTime::now();
    match now.duration_since(t) {
        Ok(d) => format!("{} ago", short_duration(d)),
        Err(e) => format!("in {}", short_duration(e.duration())),
    }
}

/// The two largest units: `3d 4h`, `5m 2s`, `40s`.
pub fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, h, m, sec) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (days, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m {sec}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{days}d {h}h"),
    }
}

async fn list(ctx: &VeleroCtx, out: &Output) -> ExitCode {
    let backups = match velero::list_backups(&ctx.cluster, &ctx.namespace).await {
        Ok(b) => b,
        Err(e) => return fail(Failure::from(e)),
    };
    if out.format == OutputFormat::Json {
        print_json(&backups);
        return ExitCode::from(exit::OK);
    }
    if backups.is_empty() {
        println!("No backups in namespace {}.", ctx.namespace);
        return ExitCode::from(exit::OK);
    }
    let rows: Vec<[String; 8]> = backups
        .iter()
        .map(|b| {
            [
                b.name.clone(),
                b.phase_or_new().to_string(),
                b.schedule.clone().unwrap_or_else(|| "-".into()),
                b.storage_location.clone().unwrap_or_else(|| "-".into()),
                items_text(b.items_backed_up, b.total_items),
                format!("{}/{}", b.errors, b.warnings),
                relative(b.created.as_deref()),
                relative(b.expiration.as_deref()),
            ]
        })
        .collect();
    print_table(
        &[
            "NAME", "PHASE", "SCHEDULE", "LOCATION", "ITEMS", "ERR/WARN", "CREATED", "EXPIRES",
        ],
        &rows,
    );
    ExitCode::from(exit::OK)
}

pub fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut width = header.map(str::len);
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == N {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = width[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Described {
    #[serde(flatten)]
    backup: BackupView,
    #[serde(skip_serializing_if = "Option::is_none")]
    items: Option<Vec<BackedUpItem>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    items_error: Option<String>,
}

async fn describe(ctx: &VeleroCtx, a: DescribeArgs, out: &Output) -> ExitCode {
    let b = match velero::get_backup(&ctx.cluster, &ctx.namespace, &a.name).await {
        Ok(Some(b)) => b,
        Ok(None) => {
            return fail(Failure {
                code: exit::CLUSTER,
                message: format!("Backup {}/{} does not exist", ctx.namespace, a.name),
                hint: Some("`rookery backup list` shows the backups".into()),
            });
        }
        Err(e) => return fail(Failure::from(e)),
    };
    // Velero writes the resource list only when the backup ends.
    let (items, items_error) =
        if a.no_items || !b.is_terminal() || b.phase_or_new() == "FailedValidation" {
            (None, None)
        } else {
            match velero::fetch_resource_list(
                &ctx.cluster,
                &ctx.namespace,
                &b.name,
                Duration::from_secs(60),
            )
            .await
            {
                Ok(i) => (Some(i), None),
                Err(e) => (None, Some(crate::probe::error_chain(&e))),
            }
        };
    let d = Described {
        backup: b,
        items,
        items_error,
    };
    if out.format == OutputFormat::Json {
        print_json(&d);
        return ExitCode::from(exit::OK);
    }
    let b = &d.backup;
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    println!("Name:          {}/{}", b.namespace, b.name);
    println!("Phase:         {}", b.phase_or_new());
    if let Some(p) = b.problem() {
        println!("Reason:        {p}");
    }
    println!(
        "Namespaces:    {}",
        if b.included_namespaces.is_empty() {
            "all".to_string()
        } else {
            b.included_namespaces.join(", ")
        }
    );
    println!("Location:      {}", opt(&b.storage_location));
    println!("Schedule:      {}", opt(&b.schedule));
    println!(
        "Started:       {} ({})",
        opt(&b.start_timestamp),
        relative(b.start_timestamp.as_deref())
    );
    println!("Completed:     {}", opt(&b.completion_timestamp));
    println!(
        "Expires:       {} ({})",
        opt(&b.expiration),
        relative(b.expiration.as_deref())
    );
    println!(
        "Items:         {}",
        items_text(b.items_backed_up, b.total_items)
    );
    println!("Errors:        {}", b.errors);
    println!("Warnings:      {}", b.warnings);
    if let Some(items) = &d.items {
        println!("Resource list:");
        let mut kind = String::new();
        for i in items {
            let k = format!("{}/{}", i.api_version, i.kind);
            if k != kind {
                println!("  {k}:");
                kind = k;
            }
            match &i.namespace {
                Some(ns) => println!("    - {ns}/{}", i.name),
                None => println!("    - {}", i.name),
            }
        }
    }
    if let Some(e) = &d.items_error {
        println!("Resource list: not available: {e}");
    }
    ExitCode::from(exit::OK)
}
