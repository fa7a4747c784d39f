//! `rookery apply`: the stack onto the cluster, in stages — CRDs (then Established), namespaces
//! and cluster RBAC, then the seed's order: snapshot controller, Rook operator, CephCluster,
//! CephFilesystems, StorageClasses + VolumeSnapshotClass, Velero, schedules — each stage
//! waited for until really healthy. The plan's validation runs first: an error stops
//! everything before the first request. Re-running after a failure, a timeout or Ctrl-C
//! simply continues (nothing is locked, nothing half-recorded).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use rookery_inventory::Inventory;
use rookery_kube::engine::{ApplyOptions, ApplyReport};
use rookery_kube::events::{Event, Reporter};
use rookery_stack::Severity;
use rookery_stack::desired::{DesiredState, Stage};
use rookery_stack::render::{self, RenderOptions};

use crate::cluster::{self, ClusterArgs, Failure, Progress};
use crate::commands::plan::{Prepared, StackArgs, prepare};
use crate::exit;
use crate::output::{Output, OutputFormat};
use crate::probe::error_chain;

/// Apply the stack to the cluster in the seed's order, waiting for each stage to be healthy.
///
/// Server-side apply (field manager `rookery`) of exactly what `rookery plan` lists. A field
/// another manager owns is a conflict (`--force-conflicts` takes it over); a change to an
/// immutable field is refused before anything is sent. Each object is labelled as a member of
/// an ApplySet recorded in `kube-system/rookery-<namespace>`, so `--prune` can remove what
/// the stack no longer has (never a CephCluster, filesystem, pool, PVC, CRD, namespace with
/// volumes or backup location with backups unless named with `--allow-delete`).
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub input: StackArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Take over fields another field manager owns (they lose them).
    #[arg(long, help_heading = "Apply")]
    pub force_conflicts: bool,
    /// Deadline for the whole run (e.g. 45m, 1h30m).
    #[arg(long, value_name = "DURATION", default_value = "45m", value_parser = cluster::parse_duration, help_heading = "Apply")]
    pub timeout: Duration,
    /// Override one stage's deadline (repeatable): crds=2m, ceph-cluster=30m, ...
    #[arg(long, value_name = "STAGE=DURATION", value_parser = cluster::parse_stage_timeout, help_heading = "Apply")]
    pub stage_timeout: Vec<(Stage, Duration)>,
    /// Apply without waiting for health (CRDs are still waited for: later stages need them).
    #[arg(long, help_heading = "Apply")]
    pub no_wait: bool,
    /// Only these stages (repeatable; see `rookery plan` for the list).
    #[arg(long, value_name = "STAGE", value_parser = parse_stage, help_heading = "Apply")]
    pub stage: Vec<Stage>,
    /// After applying, delete objects of earlier applies that the stack no longer has.
    #[arg(long, help_heading = "Apply", conflicts_with = "stage")]
    pub prune: bool,
    /// Let --prune delete this protected object (repeatable): KIND/NAME or Kind.group/NAME.
    #[arg(
        long,
        value_name = "KIND/NAME",
        help_heading = "Apply",
        requires = "prune"
    )]
    pub allow_delete: Vec<String>,
}

pub fn parse_stage(s: &str) -> Result<Stage, String> {
    Stage::from_name(s).ok_or_else(|| {
        format!(
            "unknown stage `{s}`; stages: {}",
            Stage::ALL
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// Validate and render: the part of `plan` every cluster command shares. Errors are printed.
pub async fn desired_state(
    input: &StackArgs,
    out: &Output,
) -> Result<(Prepared, DesiredState, Inventory), ExitCode> {
    let p = prepare(input, out).await?;
    p.refuse_on_errors("nothing was sent to the cluster")?;
    if !out.quiet {
        for f in p
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
        {
            eprintln!("warning[{}] {}: {}", f.code, f.path, f.message);
        }
    }
    let opts = RenderOptions {
        stack_dir: p.stack_dir.clone(),
        allow_missing_bundle: false,
    };
    let desired = match render::render(&p.stack, &p.cluster, &p.bundle, &opts) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            if matches!(e, render::RenderError::Bundle(_)) {
                eprintln!(
                    "  hint: run `rookery bundle fetch`, or pass --bundle-dir with a verified copy"
                );
            }
            return Err(ExitCode::from(exit::ERROR));
        }
    };
    // `prepare` parsed it already; loading again is cheap and keeps `Prepared` unchanged.
    let inventory = Inventory::load(&input.inventory).map_err(|e| {
        eprintln!("error: {}", error_chain(&e));
        ExitCode::from(exit::INPUT)
    })?;
    Ok((p, desired, inventory))
}

pub async fn run(args: ApplyArgs, out: Output) -> ExitCode {
    let (p, desired, inventory) = match desired_state(&args.input, &out).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let progress = Progress::new(out);
    let cluster = match cluster::connect(
        &args.cluster,
        Some(&p.stack),
        Some(&inventory),
        &args.input.connect,
        &out,
    )
    .await
    {
        Ok(c) => c,
        Err(f) => {
            f.print();
            return ExitCode::from(f.code);
        }
    };
    progress.event(Event::Connected {
        server: cluster.server.clone(),
        context: cluster.context.clone(),
    });
    let opts = ApplyOptions {
        force_conflicts: args.force_conflicts,
        wait: !args.no_wait,
        timeout: args.timeout,
        stage_timeouts: args.stage_timeout.iter().copied().collect(),
        stages: (!args.stage.is_empty()).then(|| args.stage.clone()),
        prune: args.prune,
        allow_delete: args.allow_delete.clone(),
        secrets_base: p.stack_dir.clone(),
        ..ApplyOptions::default()
    };
    let started = Instant::now();
    let result = tokio::select! {
        r = rookery_kube::apply(&cluster, &desired, &opts, &progress) => r,
        _ = tokio::signal::ctrl_c() => {
            progress.abandon();
            eprintln!("interrupted: nothing is locked; run the same command again to continue");
            return ExitCode::from(exit::INTERRUPTED);
        }
    };
    match result {
        Ok(report) => {
            summary(&report, started.elapsed(), &out);
            ExitCode::from(exit::OK)
        }
        Err(e) => {
            progress.abandon();
            let f = Failure::from(e);
            if out.format == OutputFormat::Json {
                let doc = serde_json::json!({
                    "event": "failed", "error": f.message, "hint": f.hint,
                });
                println!("{doc}");
            }
            f.print();
            ExitCode::from(f.code)
        }
    }
}

fn summary(report: &ApplyReport, elapsed: Duration, out: &Output) {
    let total: usize = report
        .stages
        .iter()
        .map(|s| s.created + s.configured + s.unchanged)
        .sum();
    let created: usize = report.stages.iter().map(|s| s.created).sum();
    let configured: usize = report.stages.iter().map(|s| s.configured).sum();
    match out.format {
        OutputFormat::Json => {
            let doc = serde_json::json!({
                "event": "done",
                "objects": total,
                "created": created,
                "configured": configured,
                "unchanged": total - created - configured,
                "pruned": report.pruned,
                "seconds": elapsed.as_secs_f64(),
                "stages": report.stages,
            });
            println!("{doc}");
        }
        OutputFormat::Human => {
            println!(
                "Apply complete: {total} objects in {} stages ({created} created, {configured} configured, {} unchanged{}) in {:.1} s.",
                report.stages.len(),
                total - created - configured,
                if report.pruned.is_empty() {
                    String::new()
                } else {
                    format!(", {} pruned", report.pruned.len())
                },
                elapsed.as_secs_f64()
            );
            for s in &report.stages {
                for (object, note) in &s.notes {
                    println!("  note: {object}: {note}");
                }
            }
        }
    }
}
