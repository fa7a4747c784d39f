//! `rookery prepare`: make the OSD devices named in the inventory (`rookery_devices`) raw
//! and ready for Rook, and report each host's readiness for Rook.
//!
//! Flow: probe every host → resolve `rookery_devices` to stable identities → print the plan
//! → consent (`wipe: true` on the entry AND `--wipe`, or typing "yes" on a terminal after
//! a list of host/device/id/model/serial/size) → per host: readiness checks, then the
//! agent's `prepare` (it re-resolves and re-checks everything before writing) → results.
//! `--check` runs the agent in check mode: the exact per-node verdicts, nothing written.
//! Every destructive step is appended to the control audit log before and after it
//! happens (runner lines plus the agent's streamed audit events).
//!
//! Exit codes (bit flags, see exit.rs): 0 every device ok/wiped (or would be, in --check);
//! 2 a host failed or a wipe did not verify clean; 4 a host was unreachable; 8 the plan has
//! errors (a named device is missing or ambiguous — then nothing is done on any host) or a
//! device was refused or still needs consent; 65 bad `rookery_devices` in the inventory;
//! 64 usage. Readiness failures are reported but do not change the exit code.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use rookery_inventory::{Host, Inventory};
use rookery_proto::{
    CheckStatus, DeviceOutcome, Event, PrepareAction, PrepareRequest, ReadinessCheck,
    ReadinessRequest, Request, Response,
};
use rookery_transport::Connector;
use serde::Serialize;

use crate::connect::{BecomeArgs, ConnectArgs, ForksArgs, connect_options};
use crate::exit;
use crate::output::{Output, OutputFormat};
use crate::probe::{error_chain, gather};

use rookery_devices as devices;

use devices::audit::{AuditLog, ControlAuditRecord, new_run_id, now_rfc3339};
use devices::plan::{HostPlan, PlannedAction, confirmation_text, plan_host, render_plan};
use devices::spec::{VAR, parse_host_specs};

/// Wipe the OSD devices named in the inventory (rookery_devices) so Rook can use them:
/// prints the plan, needs `wipe: true` + --wipe for disks with data, audits every step.
#[derive(Debug, clap::Args)]
pub struct PrepareArgs {
    /// Inventory file (Ansible YAML or INI) or directory; devices come from the
    /// `rookery_devices` host/group variable.
    #[arg(long, short = 'i', env = "ROOKERY_INVENTORY")]
    pub inventory: PathBuf,
    /// Only hosts matching this Ansible host pattern.
    #[arg(long, short = 'l', value_name = "PATTERN")]
    pub limit: Option<String>,
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
    /// ok / failed / unreachable / skipped
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub readiness: Vec<ReadinessCheck>,
    pub devices: Vec<DeviceOutcome>,
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

struct HostJob {
    host: Host,
    plan: HostPlan,
}

async fn run_host(
    connector: Connector,
    job: HostJob,
    req: PrepareRequest,
    readiness: ReadinessRequest,
    audit: Option<AuditLog>,
) -> HostResult {
    let name = job.host.name.clone();
    let mut result = HostResult {
        host: name.clone(),
        status: "ok".into(),
        error: None,
        readiness: Vec::new(),
        devices: Vec::new(),
    };
    let session = match connector.connect(&name, &job.host.connection).await {
        Ok(s) => s,
        Err(e) => {
            result.status = "unreachable".into();
            result.error = Some(error_chain(&e));
            return result;
        }
    };
    match session.call(Request::Readiness(readiness)).await {
        Ok(Response::Readiness(r)) => result.readiness = r.checks,
        Ok(Response::Error(e)) => {
            result.error = Some(format!("{name}: readiness checks failed: {}", e.message));
        }
        Ok(other) => result.error = Some(format!("{name}: unexpected readiness answer {other:?}")),
        Err(e) => result.error = Some(error_chain(&e)),
    }
    if !req.devices.is_empty() {
        // The runner's own "before" line per device it asks to wipe: even if the connection
        // dies and no agent event ever arrives, the log says a wipe was requested.
        let wiping: Vec<_> = req
            .devices
            .iter()
            .filter(|d| d.wipe_consent && !req.check)
            .collect();
        let mut audit_err: Option<String> = None;
        if let Some(log) = &audit {
            for d in &wiping {
                let entry = job.plan.entries.iter().find(|e| e.identity == d.identity);
                let rec = ControlAuditRecord {
                    time: now_rfc3339(),
                    run_id: req.run_id.clone(),
                    host: name.clone(),
                    device: d.identity.clone(),
                    action: "prepare-request".into(),
                    signatures_before: entry.map(|e| e.signatures.clone()).unwrap_or_default(),
                    signatures_after: Vec::new(),
                    result: None,
                    source: "runner".into(),
                };
                if let Err(e) = log.append(&rec) {
                    audit_err = Some(error_chain(&e));
                }
            }
        }
        if let Some(e) = audit_err {
            // Never wipe what we cannot record.
            result.status = "failed".into();
            result.error = Some(format!("{name}: nothing was sent: {e}"));
            session.close().await;
            return result;
        }
        let log2 = audit.clone();
        let host2 = name.clone();
        let mut on_event = move |ev: Event| match ev {
            Event::Audit(rec) => {
                if let Some(log) = &log2
                    && let Err(e) = log.append(&ControlAuditRecord::from_agent(&host2, *rec))
                {
                    eprintln!("warning: {}", error_chain(&e));
                }
            }
            Event::Progress { message } => tracing::info!("{host2}: {message}"),
        };
        match session
            .call_with_events(Request::Prepare(req.clone()), &mut on_event)
            .await
        {
            Ok(Response::Prepare(rep)) => result.devices = rep.devices,
            Ok(Response::Error(e)) => {
                result.status = "failed".into();
                result.error = Some(format!(
                    "{name}: prepare failed: {} ({:?})",
                    e.message, e.code
                ));
            }
            Ok(other) => {
                result.status = "failed".into();
                result.error = Some(format!("{name}: unexpected prepare answer {other:?}"));
            }
            Err(e) => {
                result.status = "failed".into();
                result.error = Some(error_chain(&e));
            }
        }
        if let Some(log) = &audit {
            for d in &wiping {
                let out = result.devices.iter().find(|o| o.identity == d.identity);
                let rec = ControlAuditRecord {
                    time: now_rfc3339(),
                    run_id: req.run_id.clone(),
                    host: name.clone(),
                    device: d.identity.clone(),
                    action: "prepare-request".into(),
                    signatures_before: out.map(|o| o.signatures_before.clone()).unwrap_or_default(),
                    signatures_after: out.map(|o| o.signatures_after.clone()).unwrap_or_default(),
                    result: Some(match out {
                        Some(o) => format!("{:?}: {}", o.action, o.message).to_lowercase(),
                        None => format!(
                            "no answer: {}",
                            result.error.clone().unwrap_or_else(|| "unknown".into())
                        ),
                    }),
                    source: "runner".into(),
                };
                if let Err(e) = log.append(&rec) {
                    eprintln!("warning: {}", error_chain(&e));
                }
            }
        }
        if result
            .devices
            .iter()
            .any(|d| d.action == PrepareAction::Failed)
        {
            result.status = "failed".into();
        }
    }
    session.close().await;
    result
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
        s.push_str(&format!("\n{} [{}]\n", r.host, r.status));
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
        match r.status.as_str() {
            "unreachable" => code |= exit::HOSTS_UNREACHABLE,
            "failed" => code |= exit::HOSTS_FAILED,
            _ => {}
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
    let (_inv, hosts) = match load(&args) {
        Ok(x) => x,
        Err((c, m)) => return fail(c, m),
    };
    let mut selections = Vec::new();
    for h in &hosts {
        match parse_host_specs(&h.name, h.vars.get(VAR)) {
            Ok(s) => selections.push(s),
            Err(e) => return fail(exit::INPUT, e.to_string()),
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
        .filter(|p| p.facts().is_none())
        .map(|p| HostResult {
            host: p.host.clone(),
            status: p.status().to_string(),
            error: p.error().map(str::to_string),
            readiness: Vec::new(),
            devices: Vec::new(),
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
    let any_wipe = plans
        .iter()
        .flat_map(|p| &p.entries)
        .any(|e| e.action == PlannedAction::Wipe);
    let audit = if args.check || !any_wipe {
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
        for plan in plans.iter().cloned() {
            let Some(host) = hosts.iter().find(|h| h.name == plan.host).cloned() else {
                continue;
            };
            let req = PrepareRequest {
                devices: plan.requests(consent),
                check: args.check,
                discard: args.discard,
                audit_log: args.node_audit_log.clone(),
                run_id: run_id.clone(),
            };
            let readiness = ReadinessRequest {
                data_dir_host_path: args.data_dir_host_path.clone(),
                need_lvm: args.need_lvm,
            };
            let c = connector.clone();
            let a = audit.clone();
            let sem = sem.clone();
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                run_host(c, HostJob { host, plan }, req, readiness, a).await
            });
        }
        while let Some(r) = set.join_next().await {
            match r {
                Ok(hr) => results.push(hr),
                Err(e) => eprintln!("error: internal: {e}"),
            }
        }
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
