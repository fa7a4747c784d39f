//! `rookery restore create`: a Velero Restore of a backup, optionally into other namespaces
//! (`namespaceMapping`), by creating Velero's own Restore object; waiting shows Velero's
//! progress and, when it does not complete, its reasons (exit 32).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use rookery_kube::velero::{self, Outcome as _, RestoreRequest, RestoreView};

use crate::cluster::{self, Failure};
use crate::commands::backup::{
    ProgressLine, VeleroCtx, VeleroTarget, fail, items_text, print_json, stamp,
};
use crate::exit;
use crate::output::{Output, OutputFormat};

/// Velero restores.
#[derive(Debug, clap::Args)]
pub struct RestoreCli {
    #[command(subcommand)]
    pub command: RestoreCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum RestoreCommand {
    /// Create a Velero Restore (as `velero restore create --from-backup`).
    Create(RestoreArgs),
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub target: VeleroTarget,
    /// Name of the Restore (default: BACKUP-YYYYMMDDHHMMSS).
    pub name: Option<String>,
    /// The Backup to restore.
    #[arg(long = "from", value_name = "BACKUP")]
    pub from: String,
    /// Restore namespace A into namespace B (repeat, or `a:b,c:d`).
    #[arg(long, value_name = "A:B", value_delimiter = ',', value_parser = parse_mapping)]
    pub namespace_mapping: Vec<(String, String)>,
    /// Only these namespaces of the backup (repeat; default: all it holds).
    #[arg(long = "namespace", short = 'n', value_name = "NS")]
    pub namespaces: Vec<String>,
    /// Wait until Velero has finished, showing its progress; exit 32 unless Completed.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: how long to wait.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = cluster::parse_duration)]
    pub timeout: Duration,
}

pub fn parse_mapping(s: &str) -> Result<(String, String), String> {
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}`: expected SOURCE:TARGET, e.g. shop:shop-restored"))?;
    if a.is_empty() || b.is_empty() {
        return Err(format!("`{s}`: both namespaces must be named"));
    }
    Ok((a.to_string(), b.to_string()))
}

pub fn restore_progress(r: &RestoreView, note: Option<&str>) -> String {
    let mut s = format!(
        "Restore {}: {}, {}",
        r.name,
        r.phase_or_new(),
        items_text(r.items_restored, r.total_items)
    );
    if r.errors > 0 || r.warnings > 0 {
        s.push_str(&format!(", {} errors, {} warnings", r.errors, r.warnings));
    }
    if let Some(n) = note {
        s.push_str(&format!(" ({n})"));
    }
    s
}

/// Create a Restore and, with `wait`, wait for its end.
pub async fn create_restore(
    ctx: &VeleroCtx,
    req: &RestoreRequest,
    wait: Option<Duration>,
    out: &Output,
) -> Result<RestoreView, Failure> {
    let created = velero::create_restore(&ctx.cluster, &ctx.namespace, req).await?;
    if !out.quiet && out.format == OutputFormat::Human {
        let mapping = if req.namespace_mapping.is_empty() {
            String::new()
        } else {
            format!(
                " into {}",
                req.namespace_mapping
                    .iter()
                    .map(|(a, b)| format!("{a} → {b}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        eprintln!(
            "Restore {}/{} of Backup {} created{mapping}.",
            ctx.namespace, created.name, req.backup_name
        );
    }
    let Some(timeout) = wait else {
        return Ok(created);
    };
    let mut line = ProgressLine::new(*out);
    Ok(velero::wait_restore(
        &ctx.cluster,
        &ctx.namespace,
        &req.name,
        timeout,
        &mut |r, note| line.show(restore_progress(r, note)),
    )
    .await?)
}

pub async fn run(args: RestoreCli, out: Output) -> ExitCode {
    let RestoreCommand::Create(a) = args.command;
    let ctx = match a.target.connect(&out).await {
        Ok(c) => c,
        Err(f) => return fail(f),
    };
    // Velero validates the backup too, but only after the Restore exists; a typo is
    // cheaper to catch here.
    match velero::get_backup(&ctx.cluster, &ctx.namespace, &a.from).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return fail(Failure {
                code: exit::CLUSTER,
                message: format!("Backup {}/{} does not exist", ctx.namespace, a.from),
                hint: Some("`rookery backup list` shows the backups".into()),
            });
        }
        Err(e) => return fail(Failure::from(e)),
    }
    let name = a.name.unwrap_or_else(|| {
        let base: String = a.from.chars().take(40).collect();
        format!("{}-{}", base.trim_end_matches('-'), stamp())
    });
    let req = RestoreRequest {
        name,
        backup_name: a.from,
        included_namespaces: a.namespaces,
        namespace_mapping: a.namespace_mapping.into_iter().collect::<BTreeMap<_, _>>(),
        labels: Default::default(),
    };
    let r = match create_restore(&ctx, &req, a.wait.then_some(a.timeout), &out).await {
        Ok(r) => r,
        Err(f) => return fail(f),
    };
    if out.format == OutputFormat::Json {
        print_json(&r);
    } else if a.wait {
        println!(
            "Restore {} {}: {} restored, {} errors, {} warnings",
            r.name,
            r.phase_or_new(),
            items_text(r.items_restored, r.total_items),
            r.errors,
            r.warnings
        );
    } else {
        println!("Restore {} requested.", r.name);
    }
    if a.wait
        && let Err(e) = velero::restore_outcome(&r)
    {
        let mut f = Failure::from(e);
        f.message.push_str(
            &crate::commands::backup::velero_errors(&ctx, velero::Kind::Restore, &r.name, r.errors)
                .await,
        );
        return fail(f);
    }
    ExitCode::from(exit::OK)
}
