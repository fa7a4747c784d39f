//! `rookery plan`: read a stack, resolve it against the inventory and the hosts' facts, and
//! print what would happen — hosts, OSD devices with stable ids, every object in apply order —
//! plus every validation finding. Nothing is changed anywhere. Exit 8 when a finding is an
//! error, 65 when an input file cannot be parsed.
//!
//! Also owns the input handling `rookery render` shares (`StackArgs`, [`prepare`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rookery_inventory::Inventory;
use rookery_stack::bundle::{self, Bundle, FileStatus};
use rookery_stack::desired::{DesiredState, Manifest, Stage, count_kinds};
use rookery_stack::hosts::{self, FactsSource, HostInput, PlannedCluster};
use rookery_stack::render::{self, RenderOptions};
use rookery_stack::{Finding, Severity, Stack};
use rookery_transport::Connector;
use serde::Serialize;

use crate::connect::ConnectArgs;
use crate::exit;
use crate::output::{Output, OutputFormat};

/// Inputs shared by `plan` and `render`.
#[derive(Debug, Clone, clap::Args)]
pub struct StackArgs {
    /// Inventory file (Ansible YAML or INI); its hosts are the Kubernetes nodes.
    #[arg(long, short = 'i', env = "ROOKERY_INVENTORY")]
    pub inventory: PathBuf,
    /// Only these hosts (Ansible pattern).
    #[arg(long, short = 'l', value_name = "PATTERN")]
    pub limit: Option<String>,
    /// Stack file (YAML shaped like the seed's StorageModule arguments).
    #[arg(long, value_name = "FILE", env = "ROOKERY_STACK")]
    pub stack: PathBuf,
    /// Host facts from `rookery probe -i INVENTORY -o json > FILE`.
    #[arg(long, value_name = "FILE", conflicts_with = "probe")]
    pub facts: Option<PathBuf>,
    /// Probe the hosts now (SSH) instead of reading `--facts`.
    #[arg(long)]
    pub probe: bool,
    /// Directory holding the upstream bundle (default: the cache `rookery bundle fetch` fills).
    #[arg(long, value_name = "DIR", env = "ROOKERY_BUNDLE_DIR")]
    pub bundle_dir: Option<PathBuf>,
    // With --probe: how to reach the hosts.
    #[command(flatten, next_help_heading = "SSH (with --probe or --kubeconfig-from)")]
    pub connect: ConnectArgs,
    /// Seconds of silence allowed from a host's agent (start-up and each request).
    #[arg(
        long,
        value_name = "S",
        default_value_t = 60,
        help_heading = "SSH (with --probe or --kubeconfig-from)"
    )]
    pub probe_timeout: u64,
    /// Also report loop devices (test labs; Rook needs CEPH_VOLUME_ALLOW_LOOP_DEVICES to use
    /// them).
    #[arg(long, help_heading = "SSH (with --probe or --kubeconfig-from)")]
    pub include_loop: bool,
}

/// Check a stack against the hosts and show everything it would create, in apply order.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub input: StackArgs,
}

/// A stack resolved and validated.
pub struct Prepared {
    pub stack: Stack,
    pub stack_dir: PathBuf,
    pub cluster: PlannedCluster,
    pub findings: Vec<Finding>,
    pub bundle: Bundle,
}

impl Prepared {
    /// Stop before doing `what` when validation found errors: each is printed with its hint
    /// and the exit code is returned.
    pub fn refuse_on_errors(&self, nothing_done: &str) -> Result<(), ExitCode> {
        let errors: Vec<_> = self
            .findings
            .iter()
            .filter(|f| f.severity == rookery_stack::Severity::Error)
            .collect();
        if errors.is_empty() {
            return Ok(());
        }
        for f in &errors {
            eprintln!("error[{}] {}: {}", f.code, f.path, f.message);
            eprintln!("    hint: {}", f.hint);
        }
        eprintln!(
            "error: the stack has {} validation error(s); {nothing_done} (see `rookery plan`)",
            errors.len()
        );
        Err(ExitCode::from(exit::VALIDATION))
    }
}

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(code)
}

fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    crate::probe::error_chain(err)
}

/// Load everything `plan` and `render` need. Errors are printed; the exit code is returned.
pub async fn prepare(args: &StackArgs, out: &Output) -> Result<Prepared, ExitCode> {
    let stack: Stack =
        rookery_stack::yaml::load(&args.stack).map_err(|e| fail(exit::INPUT, chain(&e)))?;
    let stack_dir = args
        .stack
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let inventory = Inventory::load(&args.inventory).map_err(|e| fail(exit::INPUT, chain(&e)))?;
    if !out.quiet {
        for w in inventory.warnings() {
            eprintln!("warning: {w}");
        }
    }
    let selected = inventory
        .select_limited("all", args.limit.as_deref())
        .map_err(|e| fail(exit::USAGE, format!("--limit: {}", chain(&e))))?;
    // Each host's `rookery_devices` (used where the stack names no devices for it); a bad
    // entry is a bad inventory file, as for `rookery prepare`.
    let mut inputs: Vec<HostInput> = Vec::with_capacity(selected.len());
    for h in &selected {
        let devices = rookery_devices::spec::parse_host_specs(
            &h.name,
            h.vars.get(rookery_devices::spec::VAR),
        )
        .map_err(|e| fail(exit::INPUT, format!("{}: {e}", args.inventory.display())))?;
        inputs.push(HostInput {
            devices,
            ..HostInput::new(h.name.clone())
        });
    }

    let facts_source = if let Some(path) = &args.facts {
        let report = hosts::load_probe_report(path).map_err(|e| fail(exit::INPUT, chain(&e)))?;
        if !out.quiet {
            for e in &report.hosts {
                if !inputs.iter().any(|h| h.name == e.host) {
                    eprintln!(
                        "warning: {}: host `{}` is not in the inventory (ignored)",
                        path.display(),
                        e.host
                    );
                }
            }
        }
        report.apply(&mut inputs);
        FactsSource::File
    } else if args.probe {
        live_probe(args, &selected, &mut inputs).await?;
        FactsSource::Probe
    } else {
        FactsSource::None
    };

    let selection_hosts = match stack
        .ceph_cluster
        .storage
        .device_selection
        .as_ref()
        .and_then(|s| s.hosts.as_deref())
    {
        Some(pattern) => Some(
            inventory
                .select(pattern)
                .map_err(|e| {
                    fail(
                        exit::INPUT,
                        format!(
                            "{}: cephCluster.storage.deviceSelection.hosts: {}",
                            args.stack.display(),
                            chain(&e)
                        ),
                    )
                })?
                .iter()
                .map(|h| h.name.clone())
                .collect::<Vec<_>>(),
        ),
        None => None,
    };
    let cluster = hosts::plan_cluster(&stack, &inputs, selection_hosts.as_deref(), facts_source);
    let findings = rookery_stack::validate::validate(&stack, &cluster, &stack_dir);

    let lock = bundle::lock().map_err(|e| fail(exit::ERROR, chain(&e)))?;
    let dir = match &args.bundle_dir {
        Some(d) => d.clone(),
        None => bundle::default_dir(&lock).map_err(|e| fail(exit::USAGE, chain(&e)))?,
    };
    Ok(Prepared {
        stack,
        stack_dir,
        cluster,
        findings,
        bundle: Bundle::new(dir, lock),
    })
}

async fn live_probe(
    args: &StackArgs,
    selected: &[&rookery_inventory::Host],
    inputs: &mut [HostInput],
) -> Result<(), ExitCode> {
    let opts = args
        .connect
        .options(args.probe_timeout)
        .map_err(|(code, msg)| fail(code, msg))?;
    let connector = Connector::new(opts);
    let results = crate::probe::gather(
        &connector,
        selected,
        crate::commands::probe::DEFAULT_FORKS as usize,
        args.include_loop,
        &mut |_| {},
    )
    .await;
    for (input, result) in inputs.iter_mut().zip(&results) {
        input.facts = result.facts().cloned();
        input.probe_status = Some(result.status().to_string());
        if let Some(err) = result.error() {
            eprintln!("warning: {}: probe {}: {err}", result.host, result.status());
        }
    }
    Ok(())
}

/// The plan document (`-o json`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanJson<'a> {
    stack: String,
    bundle_dir: String,
    bundle_complete: bool,
    cluster: &'a PlannedCluster,
    key_type: &'static str,
    /// Files of `rookery render`, numbered in apply order.
    manifests: &'a [Manifest],
    /// Every object in apply order with its stage and readiness rule.
    objects: &'a DesiredState,
    findings: &'a [Finding],
    recap: RecapJson,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct RecapJson {
    errors: usize,
    warnings: usize,
}

fn recap(findings: &[Finding]) -> RecapJson {
    RecapJson {
        errors: findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count(),
        warnings: findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .count(),
    }
}

pub async fn run(args: PlanArgs, out: Output) -> ExitCode {
    let p = match prepare(&args.input, &out).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let complete = p.bundle.verify().iter().all(|(_, s)| *s == FileStatus::Ok);
    let opts = RenderOptions {
        stack_dir: p.stack_dir.clone(),
        allow_missing_bundle: true,
    };
    let desired = match render::render(&p.stack, &p.cluster, &p.bundle, &opts) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot render the stack's objects: {}", chain(&e));
            return ExitCode::from(exit::ERROR);
        }
    };
    let manifests = desired.manifests();
    let rc = recap(&p.findings);
    match out.format {
        OutputFormat::Json => {
            let doc = PlanJson {
                stack: args.input.stack.display().to_string(),
                bundle_dir: p.bundle.dir.display().to_string(),
                bundle_complete: complete,
                cluster: &p.cluster,
                key_type: rookery_stack::validate::chosen_key_type(&p.stack, &p.cluster),
                manifests: &manifests,
                objects: &desired,
                findings: &p.findings,
                recap: rc,
            };
            match serde_json::to_string_pretty(&doc) {
                Ok(s) => println!("{s}"),
                Err(e) => return fail(exit::ERROR, e),
            }
        }
        OutputFormat::Human => {
            print!(
                "{}",
                human_plan(&args.input, &p, &desired, complete, out.verbose)
            );
        }
    }
    if rc.errors > 0 {
        ExitCode::from(exit::VALIDATION)
    } else {
        ExitCode::from(exit::OK)
    }
}

fn size(bytes: Option<u64>) -> String {
    match bytes {
        None => "?".into(),
        Some(b) if b >= 1 << 40 => format!("{:.1} TiB", b as f64 / (1u64 << 40) as f64),
        Some(b) => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
    }
}

fn human_plan(
    args: &StackArgs,
    p: &Prepared,
    desired: &DesiredState,
    complete: bool,
    verbose: u8,
) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let facts = match p.cluster.facts_source {
        FactsSource::File => format!(
            "facts from {}",
            args.facts.as_deref().unwrap_or(Path::new("?")).display()
        ),
        FactsSource::Probe => "facts from a live probe".into(),
        FactsSource::None => "no facts: devices not verified (use --facts or --probe)".into(),
    };
    let _ = writeln!(s, "Plan for {} ({facts})", args.stack.display());
    let _ = writeln!(s, "\nHosts ({}):", p.cluster.hosts.len());
    for h in &p.cluster.hosts {
        let _ = writeln!(
            s,
            "  {:<16} hostname {:<16} kernel {:<24} probe {}",
            h.name,
            h.hostname.as_deref().unwrap_or("?"),
            h.kernel.as_deref().unwrap_or("?"),
            h.probe_status.as_deref().unwrap_or("-"),
        );
    }
    let osds = p.cluster.osd_devices().count();
    let planned: usize = p.cluster.nodes.iter().map(|n| n.devices.len()).sum();
    let _ = writeln!(s, "\nDevices ({planned} planned, {osds} will become OSDs):");
    for n in &p.cluster.nodes {
        for d in &n.devices {
            let state = match &d.state {
                hosts::DeviceState::Available => "available".to_string(),
                hosts::DeviceState::Wipe { .. } => "WIPE, then use".to_string(),
                hosts::DeviceState::NeedsWipe { .. } => "not empty (error)".to_string(),
                hosts::DeviceState::Unusable { .. } => "unusable (error)".to_string(),
                hosts::DeviceState::Missing => "missing (error)".to_string(),
                hosts::DeviceState::Ambiguous { .. } => "ambiguous (error)".to_string(),
                hosts::DeviceState::Unverified => "unverified".to_string(),
            };
            let _ = writeln!(
                s,
                "  {:<16} {:<14} {:<5} {:>10}  {:<18} {}",
                n.name,
                d.requested,
                d.class.as_deref().unwrap_or("?"),
                size(d.size_bytes),
                state,
                d.id
            );
        }
    }
    let _ = writeln!(
        s,
        "\nCSI cephx key type: {}",
        rookery_stack::validate::chosen_key_type(&p.stack, &p.cluster)
    );
    let _ = write!(
        s,
        "{}",
        human_objects(desired, &p.bundle.dir, complete, verbose)
    );
    let rc = recap(&p.findings);
    let _ = writeln!(
        s,
        "\nFindings ({} errors, {} warnings):",
        rc.errors, rc.warnings
    );
    if p.findings.is_empty() {
        let _ = writeln!(s, "  none");
    }
    for f in &p.findings {
        let _ = writeln!(s, "  {}[{}] {}: {}", f.severity, f.code, f.path, f.message);
        if !f.hint.is_empty() {
            let _ = writeln!(s, "      hint: {}", f.hint);
        }
    }
    let _ = writeln!(
        s,
        "\n{}",
        if rc.errors > 0 {
            "Plan REJECTED: fix the errors above; nothing was applied."
        } else {
            "Plan OK: nothing was applied."
        }
    );
    s
}

/// The objects by stage, with what each stage waits for. `-v` lists every object.
pub fn human_objects(desired: &DesiredState, bundle: &Path, complete: bool, verbose: u8) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nObjects to apply, by stage ({} objects; bundle {}{}):",
        desired.objects.len(),
        bundle.display(),
        if complete {
            ""
        } else {
            ", NOT FETCHED: run `rookery bundle fetch` or pass --bundle-dir"
        }
    );
    for f in &desired.missing_bundle_files {
        let _ = writeln!(
            s,
            "  (missing or wrong hash: {f}; its objects are not listed)"
        );
    }
    for (n, stage) in Stage::ALL.iter().enumerate() {
        let objects: Vec<_> = desired.in_stage(*stage).collect();
        if objects.is_empty() {
            continue;
        }
        let kinds = count_kinds(objects.iter().map(|o| &o.id))
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut waits: Vec<&str> = objects
            .iter()
            .filter(|o| o.readiness != rookery_stack::readiness::Readiness::Exists)
            .map(|o| o.id.kind.as_str())
            .collect();
        waits.dedup();
        let wait = if waits.is_empty() {
            String::new()
        } else {
            format!("; waits for {}", waits.join(", "))
        };
        let _ = writeln!(s, "  {}. {} ({kinds}{wait})", n + 1, stage.title());
        // Kinds no CRD of the stack provides: say up front that apply may skip them.
        let mut optional: Vec<(&str, &str, &str)> = objects
            .iter()
            .filter_map(|o| {
                o.skip_unless_served
                    .as_deref()
                    .map(|h| (o.id.kind.as_str(), o.id.api_version.as_str(), h))
            })
            .collect();
        optional.dedup();
        for (kind, api_version, hint) in optional {
            let _ = writeln!(
                s,
                "       note: applied only if the cluster serves {kind} ({api_version}); \
                 without it `apply` skips them with a warning ({hint})"
            );
        }
        let detailed = verbose > 0 || objects.len() <= 4;
        if detailed {
            for o in &objects {
                let _ = writeln!(
                    s,
                    "       {:<60} {}",
                    o.id.to_string(),
                    o.readiness.describe()
                );
            }
        }
    }
    s
}
