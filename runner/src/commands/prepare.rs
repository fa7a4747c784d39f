//! `rookery prepare`: make the OSD devices named in the inventory (`rookery_devices`) raw
//! and ready for Rook, and report each host's readiness for Rook.
//!
//! Flow: probe every host → resolve `rookery_devices` to stable identities → print the plan
//! → consent (`wipe: true` on the entry AND `--wipe`, or typing "yes" on a terminal after
//! a list of host/device/id/model/serial/size) → per host, the shared prepare flow
//! ([`rookery_devices::prepare::run_host`]: readiness checks, audit lines for every device
//! of the plan, the agent's `prepare` bound to the signatures the plan showed, results).
//! This file only probes, asks, fans out over hosts and prints. `--check` runs the agent in
//! check mode: the exact per-node verdicts, nothing written, no audit lines.
//!
//! Exit codes (bit flags, see exit.rs): 0 every device ok/wiped (or would be, in --check);
//! 2 a host failed (its task included) or a wipe did not verify clean or the control audit
//! log missed a line; 4 a host was unreachable; 8 the plan has
//! errors (a named device is missing or ambiguous — then nothing is done on any host) or a
//! device was refused or still needs consent; 65 bad `rookery_devices` in the inventory;
//! 64 usage. Readiness failures are reported but do not change the exit code.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use rookery_inventory::{Host, Inventory};
use rookery_playbook::modules::SessionCalls;
use rookery_proto::{CheckStatus, DeviceOutcome, PrepareAction, ReadinessCheck, ReadinessRequest};
use rookery_transport::Connector;
use serde::Serialize;

use crate::connect::{BecomeArgs, ConnectArgs, ForksArgs, connect_options};
use crate::exit;
use crate::output::{Output, OutputFormat};
use crate::probe::{ProbeOutcome, error_chain, gather};

use rookery_devices as devices;

use devices::audit::{AuditLog, new_run_id};
use devices::plan::{HostPlan, PlannedAction, confirmation_text, plan_host, render_plan};
use devices::prepare::{HostStatus, PrepareOptions};
use devices::spec::{VAR, parse_host_specs};

/// Wipe the OSD devices the stack (--stack) or the inventory (rookery_devices) names so Rook
/// can use them: prints the plan, needs `wipe: true` + --wipe for disks with data, audits
/// every step.
#[derive(Debug, clap::Args)]
pub struct PrepareArgs {
    /// Inventory file (Ansible YAML or INI) or directory; devices come from the
    /// `rookery_devices` host/group variable.
    #[arg(long, short = 'i', env = "ROOKERY_INVENTORY")]
    pub inventory: PathBuf,
    /// Only hosts matching this Ansible host pattern.
    #[arg(long, short = 'l', value_name = "PATTERN")]
    pub limit: Option<String>,
    /// Take the devices from this stack file (its nodes, devices and `wipe`, or its
    /// deviceSelection), resolved exactly as `rookery plan` resolves them, instead of the
    /// `rookery_devices` inventory variable.
    #[arg(long, value_name = "FILE")]
    pub stack: Option<PathBuf>,
    /// Show the exact plan and each node's verdict; change nothing.
    #[arg(long)]
    pub check: bool,
    /// Consent to wipe devices whose entry says `wipe: true` and that carry signatures.
    #[arg(long)]
    pub wipe: bool,
    /// After wiping, discard (BLKDISCARD) non-rotational devices.
    #[arg(long)]
    pub discard: bool,
    /// Control-machine audit log (default $XDG_STATE_HOME/rookery/audit.jsonl or
    /// ~/.local/state/rookery/audit.jsonl).
    #[arg(long, value_name = "PATH")]
    pub audit_log: Option<PathBuf>,
    /// Audit log on each node (default /var/log/rookery/prepare.log).
    #[arg(long, value_name = "PATH")]
    pub node_audit_log: Option<String>,
    /// Allow loop devices (tests and labs over sparse files); identity is then path + size.
    #[arg(long)]
    pub include_loop: bool,
    /// Rook's dataDirHostPath, checked for leftovers of an earlier cluster.
    #[arg(long, value_name = "PATH", default_value = "/var/lib/rook")]
    pub data_dir_host_path: String,
    /// The cluster needs lvm2 on nodes (encryption, metadataDevice, osdsPerDevice > 1).
    #[arg(long)]
    pub need_lvm: bool,
    #[command(flatten)]
    pub forks: ForksArgs,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Seconds of silence allowed from a host's agent (a wipe reports progress per step).
    #[arg(long, value_name = "S", default_value_t = 300)]
    pub timeout: u64,
    #[command(flatten)]
    pub become_: BecomeArgs,
}

/// What happened on one host.
#[derive(Debug, Clone, Serialize)]
pub struct HostResult {
    pub host: String,
    pub status: HostStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub readiness: Vec<ReadinessCheck>,
    pub devices: Vec<DeviceOutcome>,
}

impl HostResult {
    fn failed(host: &str, status: HostStatus, error: String) -> Self {
        HostResult {
            host: host.to_string(),
            status,
            error: Some(error),
            readiness: Vec::new(),
            devices: Vec::new(),
        }
    }
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    run_id: &'a str,
    check: bool,
    audit_log: Option<String>,
    plan: &'a [HostPlan],
    hosts: &'a [HostResult],
    exit_code: u8,
}

fn load(args: &PrepareArgs) -> Result<(Inventory, Vec<Host>), (u8, String)> {
    let inv = Inventory::load(&args.inventory).map_err(|e| (exit::INPUT, e.to_string()))?;
    let hosts = inv
        .select_limited("all", args.limit.as_deref())
        .map_err(|e| (exit::USAGE, format!("--limit: {e}")))?
        .into_iter()
        .cloned()
        .collect();
    Ok((inv, hosts))
}

fn connector(args: &PrepareArgs) -> Result<Connector, (u8, String)> {
    connect_options(&args.connect, args.timeout, &args.become_).map(Connector::new)
}

fn confirm(text: &str) -> bool {
    eprint!("{text}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(_) => line.trim() == "yes",
        Err(_) => false,
    }
}

/// Each host's devices from the stack: the plan's matcher over every probed host, then the
/// devices it put on each host's node (see `rookery_stack::hosts::prepare_selections`).
fn stack_selections(
    stack: &rookery_stack::Stack,
    path: &std::path::Path,
    inv: &Inventory,
    hosts: &[Host],
    probes: &[crate::probe::HostProbe],
) -> Result<Vec<Vec<devices::spec::Selection>>, (u8, String)> {
    let facts: Vec<(String, rookery_proto::HostFacts)> = probes
        .iter()
        .filter_map(|p| p.facts().map(|f| (p.host.clone(), f.clone())))
        .collect();
    let cluster =
        crate::kube_modules::stack_plan(stack, path, inv, &facts).map_err(|m| (exit::INPUT, m))?;
    let unknown: Vec<String> = cluster
        .nodes
        .iter()
        .filter(|n| n.matched == rookery_stack::hosts::NodeMatch::Unknown)
        .map(|n| format!("{} (`{}`)", n.path, n.name))
        .collect();
    if !unknown.is_empty() {
        return Err((
            exit::VALIDATION,
            format!(
                "{}: stack node(s) {} match no inventory host (by hostname or name); nothing \
                 was done on any host",
                path.display(),
                unknown.join(", ")
            ),
        ));
    }
    Ok(hosts
        .iter()
        .map(|h| rookery_stack::hosts::prepare_selections(&cluster, &h.name))
        .collect())
}

/// Connects to one host and runs the shared prepare flow on it.
async fn run_host(
    connector: Connector,
    host: Host,
    plan: HostPlan,
    opts: PrepareOptions,
    audit: Option<AuditLog>,
) -> HostResult {
    let name = host.name.clone();
    let session = match connector.connect(&name, &host.connection).await {
        Ok(s) => s,
        Err(e) => return HostResult::failed(&name, HostStatus::Unreachable, error_chain(&e)),
    };
    let done = devices::prepare::run_host(
        &SessionCalls(&session),
        &plan,
        &opts,
        audit.as_ref(),
        &mut |m| tracing::info!("{name}: {m}"),
    )
    .await;
    session.close().await;
    let errors: Vec<String> = done.errors.iter().map(|e| error_chain(e)).collect();
    HostResult {
        host: name,
        status: done.status,
        error: (!errors.is_empty()).then(|| errors.join("; ")),
        readiness: done.readiness,
        devices: done.devices,
    }
}

/// Waits for every host task. A task that panicked or was cancelled is a failed host, never
/// dropped: its wipe may have been half done, and the exit code must say so.
async fn join_hosts(
    mut set: tokio::task::JoinSet<HostResult>,
    names: &HashMap<tokio::task::Id, String>,
) -> Vec<HostResult> {
    let mut out = Vec::new();
    while let Some(r) = set.join_next_with_id().await {
        match r {
            Ok((_, hr)) => out.push(hr),
            Err(e) => {
                let host = names.get(&e.id()).cloned().unwrap_or_default();
                out.push(HostResult::failed(
                    &host,
                    HostStatus::Failed,
                    format!(
                        "{host}: internal error: the task for this host ended abnormally ({e}); \
                         see the audit logs for what was done, then run `rookery prepare --check`"
                    ),
                ));
            }
        }
    }
    out
}

fn action_text(a: PrepareAction) -> &'static str {
    match a {
        PrepareAction::Ok => "ok",
        PrepareAction::Wiped => "wiped",
        PrepareAction::WouldWipe => "would wipe",
        PrepareAction::NeedsConsent => "needs consent",
        PrepareAction::Refused => "refused",
        PrepareAction::Failed => "FAILED",
    }
}

fn render_results(results: &[HostResult]) -> String {
    let mut s = String::new();
    for r in results {
        s.push_str(&format!("\n{} [{}]\n", r.host, r.status.as_str()));
        if let Some(e) = &r.error {
            s.push_str(&format!("  error: {e}\n"));
        }
        for d in &r.devices {
            // The agent's message already starts with the device path.
            s.push_str(&format!("  {:<14} {}\n", action_text(d.action), d.message));
        }
        for c in &r.readiness {
            let st = match c.status {
                CheckStatus::Pass => "pass",
                CheckStatus::Warn => "WARN",
                CheckStatus::Fail => "FAIL",
            };
            s.push_str(&format!("  {st:<5} {:<20} {}\n", c.id, c.message));
            if c.status != CheckStatus::Pass
                && let Some(h) = &c.hint
            {
                s.push_str(&format!("        hint: {h}\n"));
            }
        }
    }
    s
}

fn exit_code(plans: &[HostPlan], results: &[HostResult], check: bool) -> u8 {
    let mut code = exit::OK;
    if plans.iter().any(|p| !p.problems.is_empty()) {
        code |= exit::VALIDATION;
    }
    for r in results {
        match r.status {
            HostStatus::Unreachable => code |= exit::HOSTS_UNREACHABLE,
            HostStatus::Failed => code |= exit::HOSTS_FAILED,
            HostStatus::Ok => {}
        }
        for d in &r.devices {
            match d.action {
                PrepareAction::Refused | PrepareAction::NeedsConsent => code |= exit::VALIDATION,
                PrepareAction::Failed => code |= exit::HOSTS_FAILED,
                PrepareAction::WouldWipe if !check => code |= exit::VALIDATION,
                _ => {}
            }
        }
    }
    // Refused devices are never sent to the agent; the plan's verdict counts.
    if plans
        .iter()
        .flat_map(|p| &p.entries)
        .any(|e| e.action == PlannedAction::Refused)
    {
        code |= exit::VALIDATION;
    }
    code
}

pub async fn run(args: PrepareArgs, out: Output) -> ExitCode {
    let fail = |code: u8, msg: String| {
        eprintln!("error: {msg}");
        ExitCode::from(code)
    };
    if args.check && args.wipe && !out.quiet {
        eprintln!("note: --check changes nothing; --wipe only shows what would be wiped");
    }
    let (inv, hosts) = match load(&args) {
        Ok(x) => x,
        Err((c, m)) => return fail(c, m),
    };
    let stack: Option<rookery_stack::Stack> = match &args.stack {
        Some(p) => match rookery_stack::yaml::load(p) {
            Ok(s) => Some(s),
            Err(e) => return fail(exit::INPUT, error_chain(&e)),
        },
        None => None,
    };
    let mut selections = Vec::new();
    if stack.is_none() {
        for h in &hosts {
            match parse_host_specs(&h.name, h.vars.get(VAR)) {
                Ok(s) => selections.push(s),
                Err(e) => return fail(exit::INPUT, e.to_string()),
            }
        }
    }
    if hosts.is_empty() {
        eprintln!("warning: no hosts selected; nothing to prepare");
        return ExitCode::from(exit::OK);
    }
    let connector = match connector(&args) {
        Ok(c) => c,
        Err((c, m)) => return fail(c, m),
    };

    let host_refs: Vec<&Host> = hosts.iter().collect();
    let probes = gather(
        &connector,
        &host_refs,
        args.forks.forks as usize,
        args.include_loop,
        &mut |_| {},
    )
    .await;

    if let (Some(stack), Some(path)) = (&stack, &args.stack) {
        match stack_selections(stack, path, &inv, &hosts, &probes) {
            Ok(s) => selections = s,
            Err((c, m)) => return fail(c, m),
        }
    }

    let interactive = std::io::stdin().is_terminal()
        && std::io::stderr().is_terminal()
        && out.format == OutputFormat::Human;
    let make_plans = |consent: bool| -> Vec<HostPlan> {
        hosts
            .iter()
            .zip(&probes)
            .zip(&selections)
            .filter_map(|((h, p), s)| {
                p.facts()
                    .map(|f| plan_host(&h.name, f, s, args.include_loop, consent))
            })
            .collect()
    };
    let mut consent = args.wipe;
    let mut plans = make_plans(consent);
    if out.format == OutputFormat::Human {
        print!("{}", render_plan(&plans, out.verbose > 0));
    }
    let mut results: Vec<HostResult> = probes
        .iter()
        .filter_map(|p| {
            let status = match &p.outcome {
                ProbeOutcome::Ok(_) => return None,
                ProbeOutcome::Failed(_) => HostStatus::Failed,
                ProbeOutcome::Unreachable(_) => HostStatus::Unreachable,
            };
            Some(HostResult::failed(
                &p.host,
                status,
                p.error().unwrap_or_default().to_string(),
            ))
        })
        .collect();

    let plan_ok = plans.iter().all(|p| p.problems.is_empty());
    if !plan_ok {
        eprintln!("error: the device plan has errors (see above); nothing was done on any host");
    }
    if plan_ok && !args.check && !consent && interactive {
        // The second consent path: an operator at a terminal confirms the exact list.
        let wanted = make_plans(true);
        if let Some(text) = confirmation_text(&wanted) {
            if confirm(&text) {
                consent = true;
                plans = wanted;
            } else {
                eprintln!("not confirmed: devices with signatures are left alone");
            }
        }
    }

    let run_id = new_run_id();
    // Every device in the plan gets its audit lines, blank or refused ones too: the consent
    // sent with a blank device is part of what this run asked for.
    let any_device = plans.iter().any(|p| !p.entries.is_empty());
    let audit = if args.check || !any_device || !plan_ok {
        None
    } else {
        let path = match args.audit_log.clone().or_else(devices::audit::default_path) {
            Some(p) => p,
            None => {
                return fail(
                    exit::ERROR,
                    "no HOME or XDG_STATE_HOME for the audit log; pass --audit-log PATH".into(),
                );
            }
        };
        match AuditLog::open(&path) {
            Ok(l) => Some(l),
            Err(e) => {
                return fail(
                    exit::ERROR,
                    format!("{}; nothing was wiped", error_chain(&e)),
                );
            }
        }
    };

    if plan_ok {
        let sem = Arc::new(tokio::sync::Semaphore::new(args.forks.forks.max(1) as usize));
        let mut set = tokio::task::JoinSet::new();
        let mut names = HashMap::new();
        for plan in plans.iter().cloned() {
            let Some(host) = hosts.iter().find(|h| h.name == plan.host).cloned() else {
                continue;
            };
            let opts = PrepareOptions {
                run_id: run_id.clone(),
                consent,
                check: args.check,
                discard: args.discard,
                node_audit_log: args.node_audit_log.clone(),
                readiness: Some(ReadinessRequest {
                    data_dir_host_path: args.data_dir_host_path.clone(),
                    need_lvm: args.need_lvm,
                }),
            };
            let c = connector.clone();
            let a = audit.clone();
            let sem = sem.clone();
            let name = host.name.clone();
            let handle = set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                run_host(c, host, plan, opts, a).await
            });
            names.insert(handle.id(), name);
        }
        results.extend(join_hosts(set, &names).await);
    }
    let order: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    results.sort_by_key(|r| order.iter().position(|h| *h == r.host));

    let code = exit_code(&plans, &results, args.check);
    match out.format {
        OutputFormat::Human => {
            print!("{}", render_results(&results));
            if let Some(a) = &audit {
                println!("\naudit log: {}", a.path().display());
            }
        }
        OutputFormat::Json => {
            let rep = Report {
                run_id: &run_id,
                check: args.check,
                audit_log: audit.as_ref().map(|a| a.path().display().to_string()),
                plan: &plans,
                hosts: &results,
                exit_code: code,
            };
            match serde_json::to_string_pretty(&rep) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("error: cannot encode the report: {e}"),
            }
        }
    }
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(host: &str) -> HostResult {
        HostResult {
            host: host.into(),
            status: HostStatus::Ok,
            error: None,
            readiness: Vec::new(),
            devices: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_host_task_that_crashed_is_a_failed_host_not_a_missing_one() {
        let mut set = tokio::task::JoinSet::new();
        let mut names = HashMap::new();
        let h = set.spawn(async {
            // What a bug mid-wipe looks like from here.
            if std::hint::black_box(true) {
                panic!("host task crashed mid-prepare");
            }
            ok("node1")
        });
        names.insert(h.id(), "node1".to_string());
        let h = set.spawn(async { ok("node2") });
        names.insert(h.id(), "node2".to_string());
        let results = join_hosts(set, &names).await;
        assert_eq!(results.len(), 2, "{results:?}");
        let crashed = results.iter().find(|r| r.host == "node1").unwrap();
        assert_eq!(crashed.status, HostStatus::Failed);
        assert!(
            crashed
                .error
                .as_deref()
                .unwrap()
                .contains("ended abnormally"),
            "{crashed:?}"
        );
        let code = exit_code(&[], &results, false);
        assert_eq!(code & exit::HOSTS_FAILED, exit::HOSTS_FAILED, "exit {code}");
        // The JSON report says so too.
        let json = serde_json::to_value(crashed).unwrap();
        assert_eq!(json["status"], "failed");
    }
}
