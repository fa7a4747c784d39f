//! `rookery drill`: the disaster-recovery test. Back up the chosen namespaces now (or take
//! the newest completed backup of a Schedule), restore them into scratch namespaces with
//! Velero's `namespaceMapping`, verify the restored copies object by object
//! ([`rookery_kube::drill::verify`]), report the time to restore (RTO) and the backup's age
//! (RPO) against the stack's targets, and delete the scratch namespaces unless `--keep`.
//! `rookery drill verify --restore NAME` runs the same verification on an earlier restore.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use rookery_kube::drill::{self, Outcome, Verification, VerifyOptions};
use rookery_kube::velero::{
    self, BackupRequest, BackupView, Outcome as _, RestoreRequest, RestoreView,
};
use serde::Serialize;

use crate::cluster::{self, Failure};
use crate::commands::backup::{
    VeleroCtx, VeleroTarget, create_backup, fail, items_text, print_json, short_duration, stamp,
};
use crate::commands::restore::create_restore;
use crate::exit;
use crate::output::{Output, OutputFormat};

/// The label on the Backups and Restores a drill creates.
const DRILL_LABEL: &str = "rookery.io/drill";

/// Prove that a restore works: back up, restore into scratch namespaces, verify, measure.
///
/// Every object the backup holds must be present in the scratch namespace; ConfigMap and
/// Secret contents must be identical to the source (compared by hash, never printed); PVCs
/// must be bound where the cluster can bind them. RTO (backup restored and verified) and
/// RPO (age of the backup) are judged against `--rto`/`--rpo` or the stack's
/// `backupStrategy.drill`. Exit 0 when the drill passed, 32 when it failed (what differed is
/// listed), 64 for bad usage.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DrillCli {
    #[command(subcommand)]
    pub command: Option<DrillCommand>,
    #[command(flatten)]
    pub run: DrillArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum DrillCommand {
    /// Verify an earlier restore (e.g. one `rookery drill --keep` left) against its backup
    /// and source namespaces, without restoring again.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
pub struct DrillArgs {
    #[command(flatten)]
    pub target: VeleroTarget,
    /// Namespaces to drill (repeat). Backed up now unless --schedule is given.
    #[arg(long = "namespace", short = 'n', value_name = "NS")]
    pub namespaces: Vec<String>,
    /// Use the newest completed backup of this Schedule instead of backing up now.
    #[arg(long, value_name = "NAME")]
    pub schedule: Option<String>,
    /// Keep the scratch namespaces (to look at them, or to verify again later).
    #[arg(long)]
    pub keep: bool,
    /// Backup storage location for the backup taken now (default: Velero's default).
    #[arg(long, value_name = "NAME")]
    pub storage_location: Option<String>,
    /// Target time to restore and verify (Go duration; default: the stack's
    /// `backupStrategy.drill.rto`).
    #[arg(long, value_name = "DURATION")]
    pub rto: Option<String>,
    /// Target maximum backup age (default: the stack's `backupStrategy.drill.rpo`).
    #[arg(long, value_name = "DURATION")]
    pub rpo: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct WaitArgs {
    /// How long Velero may take for the backup and for the restore, each.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = cluster::parse_duration)]
    pub timeout: Duration,
    /// How long a restored PVC that should bind may take to bind.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = cluster::parse_duration)]
    pub bind_timeout: Duration,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub target: VeleroTarget,
    /// The Restore to verify.
    #[arg(long, value_name = "NAME")]
    pub restore: String,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Measure {
    seconds: f64,
    target: Option<String>,
    passed: Option<bool>,
}

impl Measure {
    fn new(d: Duration, target: Option<(String, Duration)>) -> Measure {
        Measure {
            seconds: (d.as_secs_f64() * 10.0).round() / 10.0,
            passed: target.as_ref().map(|(_, t)| d <= *t),
            target: target.map(|(s, _)| s),
        }
    }

    fn text(&self) -> String {
        let d = Duration::from_secs_f64(self.seconds.max(0.0));
        let v = if self.seconds < 60.0 {
            format!("{:.1} s", self.seconds)
        } else {
            short_duration(d)
        };
        match (&self.target, self.passed) {
            (Some(t), Some(true)) => format!("{v} (target {t}: pass)"),
            (Some(t), _) => format!("{v} (target {t}: FAIL)"),
            _ => format!("{v} (no target set)"),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    passed: bool,
    /// Everything that made the drill fail, in words.
    problems: Vec<String>,
    backup: BackupView,
    /// Whether the drill took this backup itself (else it came from a Schedule or earlier).
    backup_taken_now: bool,
    restore: RestoreView,
    namespace_mapping: BTreeMap<String, String>,
    rto: Option<Measure>,
    rpo: Option<Measure>,
    verification: Option<Verification>,
    scratch_namespaces_deleted: Vec<String>,
    scratch_namespaces_kept: Vec<String>,
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: exit::USAGE,
        message: message.into(),
        hint: None,
    }
}

/// `--rto`/`--rpo` or the stack's targets, parsed.
fn target(
    flag: &Option<String>,
    stack: Option<&str>,
    what: &str,
) -> Result<Option<(String, Duration)>, Failure> {
    let Some(s) = flag.clone().or_else(|| stack.map(str::to_string)) else {
        return Ok(None);
    };
    let d = rookery_stack::timefmt::parse_go_duration(&s)
        .map_err(|e| usage(format!("{what} `{s}` is not a Go duration: {e}")))?;
    Ok(Some((s, d)))
}

pub async fn run(args: DrillCli, out: Output) -> ExitCode {
    match args.command {
        Some(DrillCommand::Verify(v)) => verify_only(v, out).await,
        None => match drill(args.run, &out).await {
            Ok(code) => code,
            Err(f) => fail(f),
        },
    }
}

/// A namespace the backup holds nothing of would verify trivially: that is a failure (a
/// typo in `--namespace`, or a Schedule that backs up something else).
fn empty_namespaces(
    items: &[velero::BackedUpItem],
    mapping: &BTreeMap<String, String>,
) -> Vec<String> {
    mapping
        .keys()
        .filter(|ns| {
            !items.iter().any(|i| {
                i.namespace.as_deref() == Some(ns.as_str())
                    || (i.kind == "Namespace" && i.namespace.is_none() && &i.name == *ns)
            })
        })
        .map(|ns| format!("the backup holds nothing of namespace `{ns}`"))
        .collect()
}

/// `<UTC time>-<4 hex>`: the time for people, the tail so two drills started in the same
/// second (a script, a CronJob and a person) never reuse a Backup, Restore or scratch name.
fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{}-{:04x}", stamp(), (nanos ^ std::process::id()) & 0xffff)
}

fn scratch_name(ns: &str, suffix: &str) -> String {
    let keep = 63 - "-drill-".len() - suffix.len();
    let base: String = ns.chars().take(keep).collect();
    format!("{}-drill-{suffix}", base.trim_end_matches('-'))
}

async fn drill(a: DrillArgs, out: &Output) -> Result<ExitCode, Failure> {
    if a.namespaces.is_empty() && a.schedule.is_none() {
        return Err(usage(
            "name the namespaces to drill with --namespace NS, or a Schedule with --schedule NAME",
        ));
    }
    let ctx = a.target.connect(out).await?;
    let targets = ctx
        .stack
        .as_ref()
        .and_then(|s| s.backup_strategy.as_ref())
        .and_then(|b| b.drill.clone())
        .unwrap_or_default();
    let rto_target = target(&a.rto, targets.rto.as_deref(), "--rto")?;
    let rpo_target = target(&a.rpo, targets.rpo.as_deref(), "--rpo")?;
    let run_id = run_id();
    let labels: BTreeMap<String, String> = [(DRILL_LABEL.to_string(), run_id.clone())].into();
    let human = out.format == OutputFormat::Human && !out.quiet;

    // 1. The backup: taken now, or the newest completed one of the Schedule.
    let (backup, taken_now) = match &a.schedule {
        Some(schedule) => {
            let b =
                velero::newest_completed_backup_of_schedule(&ctx.cluster, &ctx.namespace, schedule)
                    .await?
                    .ok_or_else(|| Failure {
                        code: exit::CLUSTER,
                        message: format!(
                            "Schedule {}/{schedule} has no completed backup to drill",
                            ctx.namespace
                        ),
                        hint: Some(
                            "`rookery backup list` shows its backups and their phases; drill the \
                     namespaces directly with --namespace to back up now"
                                .into(),
                        ),
                    })?;
            if human {
                eprintln!(
                    "Drill: newest completed backup of Schedule {schedule} is {} (completed {}).",
                    b.name,
                    crate::commands::backup::relative(b.completion_timestamp.as_deref())
                );
            }
            (b, false)
        }
        None => {
            let req = BackupRequest {
                name: format!("drill-{run_id}"),
                included_namespaces: a.namespaces.clone(),
                storage_location: a.storage_location.clone(),
                ttl: None,
                snapshot_volumes: None,
                labels: labels.clone(),
            };
            let b = create_backup(&ctx, &req, Some(a.wait.timeout), out).await?;
            if let Err(e) = velero::backup_outcome(&b) {
                let mut f = Failure::from(e);
                f.message.push_str(
                    &crate::commands::backup::velero_errors(
                        &ctx,
                        velero::Kind::Backup,
                        &b.name,
                        b.errors,
                    )
                    .await,
                );
                return Err(f);
            }
            (b, true)
        }
    };
    let namespaces = if a.namespaces.is_empty() {
        backup.included_namespaces.clone()
    } else {
        a.namespaces.clone()
    };
    if namespaces.is_empty() || namespaces.iter().any(|n| n == "*") {
        return Err(usage(format!(
            "Backup {} holds every namespace: name the ones to drill with --namespace NS",
            backup.name
        )));
    }

    // 2. What the backup holds, from Velero's own resource list.
    let items = velero::fetch_resource_list(
        &ctx.cluster,
        &ctx.namespace,
        &backup.name,
        Duration::from_secs(120),
    )
    .await?;

    // 3. Restore into scratch namespaces that do not exist yet.
    let suffix: String = run_id.chars().skip(8).collect();
    let mapping: BTreeMap<String, String> = namespaces
        .iter()
        .map(|n| (n.clone(), scratch_name(n, &suffix)))
        .collect();
    for scratch in mapping.values() {
        if drill::namespace_exists(&ctx.cluster, scratch).await? {
            return Err(Failure {
                code: exit::CLUSTER,
                message: format!("scratch namespace `{scratch}` already exists"),
                hint: Some("run the drill again in a second (names carry the time)".into()),
            });
        }
    }
    let req = RestoreRequest {
        name: format!("drill-{run_id}"),
        backup_name: backup.name.clone(),
        included_namespaces: namespaces.clone(),
        namespace_mapping: mapping.clone(),
        labels,
    };
    let restore_started = Instant::now();
    let restore_started_at = SystemTime::now();
    let restore = create_restore(&ctx, &req, Some(a.wait.timeout), out).await?;

    // 4. Verify, then measure.
    let mut problems = Vec::new();
    if let Err(e) = velero::restore_outcome(&restore) {
        problems.push(format!(
            "{e}{}",
            crate::commands::backup::velero_errors(
                &ctx,
                velero::Kind::Restore,
                &restore.name,
                restore.errors
            )
            .await
        ));
    }
    let verification = match drill::verify(
        &ctx.cluster,
        &items,
        &mapping,
        &VerifyOptions {
            bind_timeout: a.wait.bind_timeout,
            backup_started: backup
                .start_timestamp
                .as_deref()
                .and_then(velero::parse_time),
        },
    )
    .await
    {
        Ok(v) => v,
        Err(e) => {
            // The drill could not finish; its scratch namespaces still go unless kept.
            if !a.keep {
                let names: Vec<String> = mapping.values().cloned().collect();
                let _ = drill::delete_scratch_namespaces(
                    &ctx.cluster,
                    &names,
                    &restore.name,
                    Some(restore_started_at),
                )
                .await;
            }
            return Err(e.into());
        }
    };
    problems.extend(empty_namespaces(&items, &mapping));
    let rto = Measure::new(restore_started.elapsed(), rto_target);
    let rpo = backup
        .start_timestamp
        .as_deref()
        .and_then(velero::parse_time)
        .map(|t| {
            Measure::new(
                restore_started_at.duration_since(t).unwrap_or_default(),
                rpo_target,
            )
        });

    // 5. Scratch namespaces go, unless kept.
    let (deleted, kept) = if a.keep {
        (Vec::new(), mapping.values().cloned().collect())
    } else {
        let names: Vec<String> = mapping.values().cloned().collect();
        let deleted = drill::delete_scratch_namespaces(
            &ctx.cluster,
            &names,
            &restore.name,
            Some(restore_started_at),
        )
        .await?;
        let kept = names.into_iter().filter(|n| !deleted.contains(n)).collect();
        (deleted, kept)
    };
    let report = finish(
        problems,
        backup,
        taken_now,
        restore,
        mapping,
        Some(rto),
        rpo,
        verification,
        deleted,
        kept,
    );
    Ok(print_report(&report, out))
}

#[allow(clippy::too_many_arguments)]
fn finish(
    mut problems: Vec<String>,
    backup: BackupView,
    backup_taken_now: bool,
    restore: RestoreView,
    namespace_mapping: BTreeMap<String, String>,
    rto: Option<Measure>,
    rpo: Option<Measure>,
    verification: Verification,
    scratch_namespaces_deleted: Vec<String>,
    scratch_namespaces_kept: Vec<String>,
) -> Report {
    for c in verification.failures() {
        problems.push(match &c.outcome {
            Outcome::Differs { what } => format!("{}: {}", c.label(), what.join(", ")),
            Outcome::Missing => format!("{}: missing from the restore", c.label()),
            Outcome::NotBound { phase } => format!("{}: not bound ({phase})", c.label()),
            _ => c.label(),
        });
    }
    for (what, m) in [("RTO", &rto), ("RPO", &rpo)] {
        if let Some(m) = m
            && m.passed == Some(false)
        {
            problems.push(format!(
                "{what} {:.1} s is over the target {}",
                m.seconds,
                m.target.as_deref().unwrap_or("")
            ));
        }
    }
    Report {
        passed: problems.is_empty(),
        problems,
        backup,
        backup_taken_now,
        restore,
        namespace_mapping,
        rto,
        rpo,
        verification: Some(verification),
        scratch_namespaces_deleted,
        scratch_namespaces_kept,
    }
}

fn print_report(r: &Report, out: &Output) -> ExitCode {
    let code = ExitCode::from(if r.passed { exit::OK } else { exit::CLUSTER });
    if out.format == OutputFormat::Json {
        print_json(r);
        return code;
    }
    let b = &r.backup;
    println!(
        "Backup   {} ({}): {}, {}{}",
        b.name,
        if r.backup_taken_now {
            "taken now".to_string()
        } else {
            match &b.schedule {
                Some(s) => format!("schedule {s}"),
                None => "existing".to_string(),
            }
        },
        b.phase_or_new(),
        items_text(b.items_backed_up, b.total_items),
        b.start_timestamp
            .as_deref()
            .map(|t| format!(", started {t}"))
            .unwrap_or_default()
    );
    let rs = &r.restore;
    println!(
        "Restore  {}: {}, {} into {}",
        rs.name,
        rs.phase_or_new(),
        items_text(rs.items_restored, rs.total_items),
        r.namespace_mapping
            .iter()
            .map(|(a, b)| format!("{a} → {b}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(v) = &r.verification {
        let n = |f: fn(&Outcome) -> bool| v.count(f);
        let counts: Vec<String> = [
            ("identical", n(|o| matches!(o, Outcome::Identical))),
            ("bound", n(|o| matches!(o, Outcome::Bound))),
            ("present", n(|o| matches!(o, Outcome::Present))),
            (
                "not compared",
                n(|o| matches!(o, Outcome::NotCompared { .. })),
            ),
            ("skipped", n(|o| matches!(o, Outcome::Skipped { .. }))),
            ("MISSING", n(|o| matches!(o, Outcome::Missing))),
            ("DIFFER", n(|o| matches!(o, Outcome::Differs { .. }))),
            ("NOT BOUND", n(|o| matches!(o, Outcome::NotBound { .. }))),
        ]
        .into_iter()
        .filter(|(_, k)| *k > 0)
        .map(|(w, k)| format!("{k} {w}"))
        .collect();
        println!(
            "Verified {} objects: {}",
            v.checks.len(),
            if counts.is_empty() {
                "none in the mapped namespaces".to_string()
            } else {
                counts.join(", ")
            }
        );
        for c in &v.checks {
            let detail = match &c.outcome {
                Outcome::Differs { what } => format!(": {}", what.join(", ")),
                Outcome::NotBound { phase } => format!(": {phase}"),
                Outcome::NotCompared { reason } | Outcome::Skipped { reason } => {
                    format!(": {reason}")
                }
                _ => String::new(),
            };
            if c.outcome.failed()
                || out.verbose > 0
                || matches!(c.outcome, Outcome::NotCompared { .. })
            {
                println!("  {:<22} {}{detail}", c.outcome.word(), c.label());
            }
        }
    }
    if let Some(m) = &r.rto {
        println!("RTO      {}", m.text());
    }
    if let Some(m) = &r.rpo {
        println!("RPO      {}", m.text());
    }
    if !r.scratch_namespaces_deleted.is_empty() {
        println!(
            "Scratch namespaces deleted: {}",
            r.scratch_namespaces_deleted.join(", ")
        );
    }
    if !r.scratch_namespaces_kept.is_empty() {
        println!(
            "Scratch namespaces kept: {} (verify again: rookery drill verify --restore {}; delete them with kubectl delete namespace ...)",
            r.scratch_namespaces_kept.join(", "),
            r.restore.name
        );
    }
    if r.passed {
        println!("Drill PASSED.");
    } else {
        println!("Drill FAILED:");
        for p in &r.problems {
            println!("  - {p}");
        }
    }
    code
}

async fn verify_only(a: VerifyArgs, out: Output) -> ExitCode {
    match verify_restore(&a, &out).await {
        Ok(code) => code,
        Err(f) => fail(f),
    }
}

async fn verify_restore(a: &VerifyArgs, out: &Output) -> Result<ExitCode, Failure> {
    let ctx: VeleroCtx = a.target.connect(out).await?;
    let restore = velero::get_restore(&ctx.cluster, &ctx.namespace, &a.restore)
        .await?
        .ok_or_else(|| Failure {
            code: exit::CLUSTER,
            message: format!("Restore {}/{} does not exist", ctx.namespace, a.restore),
            hint: None,
        })?;
    let backup_name = restore.backup_name.clone().ok_or_else(|| Failure {
        code: exit::CLUSTER,
        message: format!("Restore {} names no backup (spec.backupName)", restore.name),
        hint: None,
    })?;
    let backup = velero::get_backup(&ctx.cluster, &ctx.namespace, &backup_name)
        .await?
        .ok_or_else(|| Failure {
            code: exit::CLUSTER,
            message: format!("Backup {}/{backup_name} no longer exists", ctx.namespace),
            hint: None,
        })?;
    // Without a mapping the restore went back into the source namespaces themselves.
    let mut mapping = restore.namespace_mapping.clone();
    if mapping.is_empty() {
        mapping = backup
            .included_namespaces
            .iter()
            .map(|n| (n.clone(), n.clone()))
            .collect();
    }
    let items = velero::fetch_resource_list(
        &ctx.cluster,
        &ctx.namespace,
        &backup.name,
        Duration::from_secs(120),
    )
    .await?;
    let mut problems = Vec::new();
    if let Err(e) = velero::restore_outcome(&restore) {
        problems.push(e.to_string());
    }
    let verification = drill::verify(
        &ctx.cluster,
        &items,
        &mapping,
        &VerifyOptions {
            bind_timeout: a.wait.bind_timeout,
            backup_started: backup
                .start_timestamp
                .as_deref()
                .and_then(velero::parse_time),
        },
    )
    .await?;
    problems.extend(empty_namespaces(&items, &mapping));
    let kept = mapping.values().cloned().collect();
    let report = finish(
        problems,
        backup,
        false,
        restore,
        mapping,
        None,
        None,
        verification,
        Vec::new(),
        kept,
    );
    Ok(print_report(&report, out))
}
