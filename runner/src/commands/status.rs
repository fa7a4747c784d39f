//! `rookery status`: is the storage healthy and are the backups real — one screen. The
//! cluster's objects are read once (`rookery_kube::snapshot`), judged by plain functions
//! (`rookery_health::status`), and drawn for people or as one JSON document; `--watch`
//! redraws until Ctrl-C.

use std::process::ExitCode;
use std::time::Duration;

use rookery_health::snapshot::{Namespaces, PlannedOsd};
use rookery_health::{Snapshot, render};
use rookery_kube::Cluster;

use crate::cluster::{self, ClusterArgs};
use crate::commands::plan::{Prepared, StackArgs, prepare};
use crate::exit;
use crate::output::{Output, OutputFormat};

/// Show Ceph health, OSDs, mons, capacity, filesystems, storage and snapshot classes and
/// Velero's locations, schedules and backups in one screen.
///
/// Missing pieces are shown as missing. Per-OSD rows come from Rook's Deployments, mapped to
/// the probe's stable device ids when `--facts` (or `--probe`) is given.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub input: StackArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Redraw every --interval until Ctrl-C (with -o json: one document per line).
    #[arg(long, help_heading = "Status")]
    pub watch: bool,
    /// How often --watch reads again.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = cluster::parse_duration, help_heading = "Status")]
    pub interval: Duration,
}

/// The stack's namespaces, as the checks name them.
pub fn namespaces(p: &Prepared) -> Namespaces {
    let n = p.stack.namespaces();
    Namespaces {
        cluster: n.cluster,
        operator: n.operator,
        velero: n.velero,
    }
}

/// The OSD devices the plan resolved (stable ids from the probe's facts).
pub fn planned_osds(p: &Prepared) -> Vec<PlannedOsd> {
    p.cluster
        .nodes
        .iter()
        .flat_map(|n| {
            n.devices.iter().map(move |d| PlannedOsd {
                node: n.name.clone(),
                requested: d.requested.clone(),
                kernel_name: d.kernel_name.clone(),
                stable_id: d.id.clone(),
                device_class: d.class.clone(),
            })
        })
        .collect()
}

/// Read the cluster into a snapshot, with what the plan knows.
pub async fn snapshot(p: &Prepared, cluster: &Cluster) -> Snapshot {
    let mut s =
        rookery_kube::snapshot::gather(cluster, &namespaces(p), p.stack.backup_strategy.is_some())
            .await;
    s.planned_osds = planned_osds(p);
    s
}

/// Connect as every cluster command does (stack's `kubeconfig.fromHost` included).
pub async fn connect(
    input: &StackArgs,
    args: &ClusterArgs,
    out: &Output,
) -> Result<(Prepared, Cluster, rookery_inventory::Inventory), ExitCode> {
    let p = prepare(input, out).await?;
    let inventory = rookery_inventory::Inventory::load(&input.inventory).map_err(|e| {
        eprintln!("error: {}", crate::probe::error_chain(&e));
        ExitCode::from(exit::INPUT)
    })?;
    let cluster =
        match cluster::connect(args, Some(&p.stack), Some(&inventory), &input.connect, out).await {
            Ok(c) => c,
            Err(f) => {
                f.print();
                return Err(ExitCode::from(f.code));
            }
        };
    Ok((p, cluster, inventory))
}

fn draw(s: &Snapshot, out: &Output, watch: bool) {
    let report = rookery_health::status::build(s);
    match out.format {
        OutputFormat::Json => match serde_json::to_string(&report) {
            Ok(doc) => println!("{doc}"),
            Err(e) => eprintln!("error: cannot write the report as JSON: {e}"),
        },
        OutputFormat::Human => {
            if watch && out.color {
                // Clear the screen and go home: a redrawn screen, not a scroll.
                print!("\x1b[2J\x1b[H");
            }
            print!("{}", render::status(&report));
        }
    }
}

pub async fn run(args: StatusArgs, out: Output) -> ExitCode {
    let (p, cluster, _) = match connect(&args.input, &args.cluster, &out).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    loop {
        let s = snapshot(&p, &cluster).await;
        draw(&s, &out, args.watch);
        if !args.watch {
            return ExitCode::from(exit::OK);
        }
        if out.format == OutputFormat::Human {
            println!(
                "\n(every {}; Ctrl-C to stop)",
                humantime::format_duration(args.interval)
            );
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = tokio::signal::ctrl_c() => return ExitCode::from(exit::OK),
        }
    }
}
