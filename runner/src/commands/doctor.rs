//! `rookery doctor`: the seed's troubleshooting list as checks — backups (location
//! connectivity and credentials, schedules), snapshots (CRDs, controller, CSI driver, the
//! VolumeSnapshotClass Velero uses), Ceph health (each health check explained, OSDs, mons,
//! capacity, filesystems), storage classes (provisioner, clusterID, secrets, one default), and
//! node readiness from the agent on every inventory host. Exit 0 all ok, 16 warnings, 32 a
//! check failed.

use std::process::ExitCode;

use rookery_health::snapshot::{NodeCheck, NodeReport};
use rookery_health::{Finding, doctor, exit_code, render};
use rookery_inventory::Inventory;
use rookery_proto::prepare::CheckStatus;
use rookery_proto::{ReadinessRequest, Request, Response};
use rookery_transport::{Connector, fan_out};
use serde::Serialize;

use crate::cluster::ClusterArgs;
use crate::commands::plan::{Prepared, StackArgs};
use crate::commands::status;
use crate::connect::ForksArgs;
use crate::output::{Output, OutputFormat};
use crate::probe::error_chain;

/// Check backups, snapshots, Ceph health, storage classes and node readiness; each finding
/// is ok / warn / FAIL with the object, the evidence and a hint.
///
/// Exit codes: 0 every check ok, 16 the worst finding is a warning, 32 a check failed.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub input: StackArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Skip the node checks (kernel modules, kernel, lvm2, time sync over SSH).
    #[arg(long, help_heading = "Doctor")]
    pub no_nodes: bool,
    #[command(flatten)]
    pub forks: ForksArgs,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DoctorJson<'a> {
    server: &'a str,
    findings: &'a [Finding],
    ok: usize,
    warn: usize,
    fail: usize,
    exit_code: u8,
}

/// The agent's readiness checks on every (limited) inventory host; a host that cannot be
/// reached is reported, not fatal.
async fn node_reports(args: &DoctorArgs, p: &Prepared, inventory: &Inventory) -> Vec<NodeReport> {
    let hosts = match inventory.select_limited("all", args.input.limit.as_deref()) {
        Ok(h) => h.into_iter().cloned().collect::<Vec<_>>(),
        Err(e) => {
            return vec![NodeReport {
                host: "--limit".into(),
                error: Some(error_chain(&e)),
                checks: vec![],
            }];
        }
    };
    let opts = match args.input.connect.options(args.input.probe_timeout) {
        Ok(o) => o,
        Err((_, message)) => {
            return hosts
                .iter()
                .map(|h| NodeReport {
                    host: h.name.clone(),
                    error: Some(message.clone()),
                    checks: vec![],
                })
                .collect();
        }
    };
    let connector = Connector::new(opts);
    let data_dir = p.stack.ceph_cluster.data_dir_host_path.clone();
    let outcomes = fan_out(hosts.iter(), args.forks.forks as usize, |h| {
        let connector = connector.clone();
        let data_dir = data_dir.clone();
        async move {
            let session = match connector.connect(&h.name, &h.connection).await {
                Ok(s) => s,
                Err(e) => return (None, Some(format!("unreachable: {}", error_chain(&e)))),
            };
            let answer = session
                .call(Request::Readiness(ReadinessRequest {
                    data_dir_host_path: data_dir,
                    need_lvm: false,
                }))
                .await;
            session.close().await;
            match answer {
                Ok(Response::Readiness(r)) => (Some(r.checks), None),
                Ok(Response::Error(e)) => (None, Some(e.message)),
                Ok(_) => (None, Some("unexpected answer from the agent".into())),
                Err(e) => (None, Some(error_chain(&e))),
            }
        }
    })
    .await;
    hosts
        .iter()
        .zip(outcomes)
        .map(|(h, o)| {
            let (checks, error) = o.unwrap_or_else(|p| (None, Some(p.to_string())));
            NodeReport {
                host: h.name.clone(),
                error,
                checks: checks
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| NodeCheck {
                        id: c.id,
                        status: match c.status {
                            CheckStatus::Pass => "pass",
                            CheckStatus::Warn => "warn",
                            CheckStatus::Fail => "fail",
                        }
                        .into(),
                        message: c.message,
                        hint: c.hint,
                    })
                    .collect(),
            }
        })
        .collect()
}

pub async fn run(args: DoctorArgs, out: Output) -> ExitCode {
    let (p, cluster, inventory) = match status::connect(&args.input, &args.cluster, &out).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let (mut snapshot, nodes) = tokio::join!(status::snapshot(&p, &cluster), async {
        if args.no_nodes {
            None
        } else {
            Some(node_reports(&args, &p, &inventory).await)
        }
    });
    snapshot.nodes = nodes;
    let findings = doctor::checks(&snapshot);
    let code = exit_code(&findings);
    match out.format {
        OutputFormat::Json => {
            let count = |s| findings.iter().filter(|f| f.severity == s).count();
            let doc = DoctorJson {
                server: &snapshot.server,
                findings: &findings,
                ok: count(rookery_health::Severity::Ok),
                warn: count(rookery_health::Severity::Warn),
                fail: count(rookery_health::Severity::Fail),
                exit_code: code,
            };
            match serde_json::to_string_pretty(&doc) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("error: cannot write the findings as JSON: {e}"),
            }
        }
        OutputFormat::Human => {
            println!("cluster: {}", snapshot.server);
            print!("{}", render::findings(&findings, out.verbose > 0));
        }
    }
    ExitCode::from(code)
}
