//! `rookery diff`: what `rookery apply` would change, object by object, from server-side dry
//! runs of exactly the requests `apply` would send. Secret values are never shown. Exit 0
//! when the cluster matches the stack, 16 when changes are pending, 32 when the server would
//! refuse an object (conflict, invalid, immutable field).

use std::process::ExitCode;

use rookery_kube::diff::{DiffOptions, DiffReport, ObjectDiff};
use rookery_stack::desired::DesiredState;

use crate::cluster::{self, ClusterArgs, Failure};
use crate::commands::apply::desired_state;
use crate::commands::plan::StackArgs;
use crate::exit;
use crate::output::{Output, OutputFormat};

/// Show what `rookery apply` would change on the cluster (server-side dry run).
///
/// Objects whose CRD or namespace does not exist yet are listed as "would be created (not
/// checked by the server yet)". With an earlier apply recorded on the cluster, objects the
/// stack no longer has are listed as "would be pruned" (and whether `--allow-delete` is
/// needed). Exit codes: 0 no changes, 16 changes pending, 32 the server would refuse
/// something, 8 the stack is invalid.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub input: StackArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Dry-run as `apply --force-conflicts` would (fields of other managers taken over).
    #[arg(long, help_heading = "Diff")]
    pub force_conflicts: bool,
}

pub async fn run(args: DiffArgs, out: Output) -> ExitCode {
    let (p, desired, inventory) = match desired_state(&args.input, &out).await {
        Ok(v) => v,
        Err(code) => return code,
    };
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
    let opts = DiffOptions {
        force_conflicts: args.force_conflicts,
        secrets_base: p.stack_dir.clone(),
        concurrency: 16,
        stages: None,
    };
    let report = match rookery_kube::diff::diff(&cluster, &desired, &opts).await {
        Ok(r) => r,
        Err(e) => {
            let f = Failure::from(e);
            f.print();
            return ExitCode::from(f.code);
        }
    };
    match out.format {
        OutputFormat::Json => match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(exit::ERROR);
            }
        },
        OutputFormat::Human => print!("{}", human(&report, &desired, out.verbose)),
    }
    ExitCode::from(if report.refused() > 0 {
        exit::CLUSTER
    } else if report.has_changes() {
        exit::CHANGES
    } else {
        exit::OK
    })
}

/// The report for people: `+` create, `~` change (with the YAML diff), `!` refused,
/// `-` prune; unchanged objects only with `-v`.
pub fn human(report: &DiffReport, desired: &DesiredState, verbose: u8) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let (mut create, mut change, mut same, mut refused) = (0, 0, 0, 0);
    for e in &report.objects {
        match &e.diff {
            ObjectDiff::Create { checked: true, .. } => {
                create += 1;
                let _ = writeln!(s, "+ {} (would be created)", e.object);
                if verbose > 0
                    && let Some(o) = desired.objects.iter().find(|o| o.id == e.object)
                {
                    let body = rookery_stack::yaml::to_string(&rookery_kube::diff::shown_body(o));
                    for line in body.lines() {
                        let _ = writeln!(s, "    {line}");
                    }
                }
            }
            ObjectDiff::Create {
                unchecked_because, ..
            } => {
                create += 1;
                let _ = writeln!(
                    s,
                    "+ {} (would be created; not checked by the server yet: {})",
                    e.object,
                    unchecked_because.as_deref().unwrap_or("")
                );
            }
            ObjectDiff::Update { diff } => {
                change += 1;
                let _ = writeln!(s, "~ {}", e.object);
                for line in diff.lines() {
                    let _ = writeln!(s, "    {line}");
                }
            }
            ObjectDiff::Unchanged => {
                same += 1;
                if verbose > 0 {
                    let _ = writeln!(s, "= {}", e.object);
                }
            }
            ObjectDiff::Refused { reason } => {
                refused += 1;
                let _ = writeln!(s, "! {} would be refused: {reason}", e.object);
            }
        }
    }
    for c in &report.prune {
        match &c.protected {
            None => {
                let _ = writeln!(s, "- {} (would be pruned by --prune)", c.object);
            }
            Some(why) => {
                let _ = writeln!(
                    s,
                    "- {} (would be pruned, but it is protected: {why}; needs --allow-delete {})",
                    c.object,
                    c.object.kind_name()
                );
            }
        }
    }
    let _ = writeln!(
        s,
        "\n{create} to create, {change} to change, {same} unchanged, {} to prune{}.",
        report.prune.len(),
        if refused > 0 {
            format!(", {refused} the server would refuse")
        } else {
            String::new()
        }
    );
    s
}
