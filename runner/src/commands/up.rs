//! `rookery up`: the whole bring-up in one command — exactly `playbooks/site.yaml` (built into
//! the binary, or `--playbook FILE`), with the stack and the cluster flags passed in as its
//! variables. It takes the flags `rookery apply` takes (`-i`, `--stack`, `--facts`/`--probe`,
//! the kubeconfig flags, `--timeout`, `--stage-timeout`, `--force-conflicts`) plus the
//! playbook's (`-e`, `--check`, `--diff`, `-l`, `-f`, `-K`), and prints the playbook's
//! output with each stage's progress and the PLAY RECAP.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use rookery_stack::desired::Stage;
use serde_json::{Map, Value, json};

use crate::cluster::{self, ClusterArgs};
use crate::commands::play::{self, PlayArgs};
use crate::connect::{BecomeArgs, ConnectArgs, ForksArgs};
use crate::exit;
use crate::output::Output;

/// The playbook `rookery up` runs when no `--playbook` is given.
pub const SITE_YAML: &str = include_str!("../../../playbooks/site.yaml");

/// Bring the storage up: gather facts, prepare the OSD devices (check mode unless
/// `-e prepare_wipe=true`), reach the cluster, apply the stack stage by stage with each
/// stage's health wait, verify. Runs `playbooks/site.yaml`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Inventory file (Ansible YAML or INI) or directory.
    #[arg(long, short = 'i', env = "ROOKERY_INVENTORY")]
    pub inventory: PathBuf,
    /// Stack file (YAML shaped like the seed's StorageModule arguments).
    #[arg(long, value_name = "FILE", env = "ROOKERY_STACK")]
    pub stack: PathBuf,
    /// Host facts from `rookery probe -o json` for rendering (default: probe the hosts).
    #[arg(long, value_name = "FILE")]
    pub facts: Option<PathBuf>,
    /// Directory holding the upstream bundle (default: the cache `rookery bundle fetch` fills).
    #[arg(long, value_name = "DIR", env = "ROOKERY_BUNDLE_DIR")]
    pub bundle_dir: Option<PathBuf>,
    /// Also use loop devices (test labs).
    #[arg(long)]
    pub include_loop: bool,
    /// Run this playbook instead of the built-in `playbooks/site.yaml`.
    #[arg(long, value_name = "FILE")]
    pub playbook: Option<PathBuf>,
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
    /// Change nothing: disks and every stage are checked (server-side dry runs).
    #[arg(long, short = 'C')]
    pub check: bool,
    /// Show what would change (device signatures, object diffs).
    #[arg(long, short = 'D')]
    pub diff: bool,
    /// Only hosts matching this pattern.
    #[arg(long, short = 'l', value_name = "PATTERN")]
    pub limit: Option<String>,
    /// Extra variables for the playbook (`prepare_wipe=true`, `@vars.yaml`, JSON).
    #[arg(long = "extra-vars", short = 'e', value_name = "VARS")]
    pub extra_vars: Vec<String>,
    #[command(flatten)]
    pub forks: ForksArgs,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Seconds of silence allowed from a host's agent.
    #[arg(long, value_name = "S", default_value_t = 600)]
    pub agent_timeout: u64,
    #[command(flatten)]
    pub become_: BecomeArgs,
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        return p.to_path_buf();
    }
    std::env::current_dir()
        .map(|d| d.join(p))
        .unwrap_or_else(|_| p.to_path_buf())
}

fn path_var(p: &Option<PathBuf>) -> Value {
    p.as_deref()
        .map(|p| Value::String(absolute(p).display().to_string()))
        .unwrap_or_else(|| Value::String(String::new()))
}

/// The variables `site.yaml` reads, from the command line.
pub fn site_vars(args: &UpArgs) -> Map<String, Value> {
    let mut stage_timeouts = Map::new();
    for (stage, d) in &args.stage_timeout {
        stage_timeouts.insert(stage.name().into(), json!(d.as_secs()));
    }
    // `--timeout` bounds every stage too (each stage is its own apply).
    for stage in Stage::ALL {
        let t = stage_timeouts
            .get(stage.name())
            .and_then(Value::as_u64)
            .map(Duration::from_secs)
            .unwrap_or_else(|| rookery_kube::engine::default_stage_timeout(stage))
            .min(args.timeout);
        stage_timeouts.insert(stage.name().into(), json!(t.as_secs()));
    }
    let s = |o: &Option<String>| Value::String(o.clone().unwrap_or_default());
    let mut m = Map::new();
    m.insert(
        "rookery_stack".into(),
        json!(absolute(&args.stack).display().to_string()),
    );
    m.insert("rookery_facts".into(), path_var(&args.facts));
    m.insert("rookery_bundle_dir".into(), path_var(&args.bundle_dir));
    m.insert("rookery_include_loop".into(), json!(args.include_loop));
    m.insert(
        "rookery_force_conflicts".into(),
        json!(args.force_conflicts),
    );
    m.insert(
        "rookery_stage_timeouts".into(),
        Value::Object(stage_timeouts),
    );
    m.insert("kubeconfig_file".into(), path_var(&args.cluster.kubeconfig));
    m.insert("kubeconfig_from".into(), s(&args.cluster.kubeconfig_from));
    m.insert("kube_context".into(), s(&args.cluster.context));
    m.insert("api_endpoint".into(), s(&args.cluster.api_endpoint));
    m.insert(
        "request_timeout".into(),
        json!(args.cluster.request_timeout),
    );
    m
}

pub async fn run(args: UpArgs, out: Output) -> ExitCode {
    let vars = Value::Object(site_vars(&args));
    // The command line's variables first; the user's `-e` after them wins.
    let mut extra = vec![vars.to_string()];
    extra.extend(args.extra_vars.iter().cloned());
    let (playbook, text) = match &args.playbook {
        Some(p) => (p.clone(), None),
        None => (PathBuf::from("playbooks/site.yaml"), Some(SITE_YAML)),
    };
    if !out.quiet {
        eprintln!(
            "rookery up: running {}{} with stack {}",
            playbook.display(),
            if text.is_some() { " (built in)" } else { "" },
            args.stack.display()
        );
    }
    let pargs = PlayArgs {
        playbook,
        inventory: args.inventory,
        check: args.check,
        diff: args.diff,
        limit: args.limit,
        tags: vec![],
        skip_tags: vec![],
        extra_vars: extra,
        forks: args.forks,
        list_tasks: false,
        list_hosts: false,
        syntax_check: false,
        connect: args.connect,
        timeout: args.agent_timeout,
        become_: args.become_,
        retry_file: None,
        // The built-in playbook has no directory of its own to put one in; re-run `up`.
        no_retry_file: true,
    };
    let code = play::run_playbook(pargs, out, text).await;
    if code == ExitCode::from(exit::OK) && !out.quiet {
        eprintln!("rookery up: done");
    }
    code
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::output::OutputFormat;

    /// The playbook `rookery up` runs parses with the runner's modules, and has one
    /// `storage_stack` task per stage, in the stack's order.
    #[test]
    fn site_yaml_parses_and_applies_every_stage_in_order() {
        let ssh = ConnectArgs {
            accept_new_host_keys: false,
            insecure_ignore_host_keys: false,
            known_hosts: None,
            ssh_config: None,
            agent_binary: Vec::new(),
            connect_timeout: 10,
        };
        let out = Output::new(OutputFormat::Human, 0, true);
        let env =
            crate::kube_modules::KubeEnv::new(ssh, out, Arc::new(rookery_kube::events::Silent));
        let mut registry = rookery_playbook::Registry::builtin();
        crate::kube_modules::register(&mut registry, &env);
        let pb = rookery_playbook::parse_playbook(SITE_YAML, Path::new("site.yaml"), &registry)
            .unwrap_or_else(|e| panic!("{e}"));
        let stages: Vec<String> = pb
            .plays
            .iter()
            .flat_map(|p| &p.tasks)
            .filter(|t| t.module == "storage_stack")
            .map(|t| t.args["stage"].as_str().unwrap_or_default().to_string())
            .collect();
        let all: Vec<String> = Stage::ALL.iter().map(|s| s.name().to_string()).collect();
        assert_eq!(stages, all);
        // The shipped file is the one built in.
        let file = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../playbooks/site.yaml"),
        )
        .unwrap_or_default();
        assert_eq!(file, SITE_YAML);
    }
}
