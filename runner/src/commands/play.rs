//! `rookery play`: run an Ansible-style playbook against an inventory. Renders the executor's
//! events as Ansible-like text (TASK / ok / changed / fatal / PLAY RECAP, a live progress line
//! on a TTY, timings with `-v`, diffs with `--diff`) or as one JSON object per line
//! (`-o json`), writes a retry file naming failed and unreachable hosts, and maps the outcome
//! to the exit codes in `exit.rs` (2 failed hosts, 4 unreachable, 65 bad playbook/vars).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rookery_inventory::Inventory;
use rookery_playbook::events::{HostResult, HostStats, Reporter, RunEvent, Status};
use rookery_playbook::{
    Executor, HostSource, InventorySource, Playbook, Registry, RunOptions, load_playbook,
    tags_selected, vars,
};
use rookery_transport::Connector;
use serde_json::{Map, Value};

use crate::connect::{BecomeArgs, ConnectArgs, ForksArgs, connect_options};
use crate::exit;
use crate::output::{Output, OutputFormat};
use crate::report::Style;

#[derive(Debug, clap::Args)]
pub struct PlayArgs {
    /// The playbook (YAML list of plays).
    pub playbook: PathBuf,
    /// Inventory file (Ansible YAML or INI) or directory.
    #[arg(long, short = 'i', env = "ROOKERY_INVENTORY")]
    pub inventory: PathBuf,
    /// Change nothing; each task reports what it would do.
    #[arg(long, short = 'C')]
    pub check: bool,
    /// Show before/after differences of files and templates.
    #[arg(long, short = 'D')]
    pub diff: bool,
    /// Only hosts matching this pattern (`@file` reads host names from a retry file).
    #[arg(long, short = 'l', value_name = "PATTERN")]
    pub limit: Option<String>,
    /// Only tasks with these tags (comma-separated or repeated; `all`, `never`, `always`).
    #[arg(long, short = 't', value_delimiter = ',', value_name = "TAGS")]
    pub tags: Vec<String>,
    /// Skip tasks with these tags.
    #[arg(long, value_delimiter = ',', value_name = "TAGS")]
    pub skip_tags: Vec<String>,
    /// Extra variables, highest precedence: `k=v k2=v2`, `@file.yaml`, or JSON `{...}`.
    #[arg(long = "extra-vars", short = 'e', value_name = "VARS")]
    pub extra_vars: Vec<String>,
    #[command(flatten)]
    pub forks: ForksArgs,
    /// List each play's tasks (after tag selection) and exit.
    #[arg(long)]
    pub list_tasks: bool,
    /// List each play's hosts and exit.
    #[arg(long)]
    pub list_hosts: bool,
    /// Only parse the playbook (and check module arguments), then exit.
    #[arg(long)]
    pub syntax_check: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Seconds of silence allowed from a host's agent (start-up and each request).
    #[arg(long, value_name = "S", default_value_t = 600)]
    pub timeout: u64,
    #[command(flatten)]
    pub become_: BecomeArgs,
    /// Where to write the list of failed/unreachable hosts (default: `<playbook>.retry` beside
    /// the playbook, else ~/.cache/rookery/).
    #[arg(long, value_name = "FILE")]
    pub retry_file: Option<PathBuf>,
    /// Do not write a retry file.
    #[arg(long)]
    pub no_retry_file: bool,
}

pub async fn run(args: PlayArgs, out: Output) -> ExitCode {
    run_playbook(args, out, None).await
}

/// Run a playbook: the file `args.playbook`, or `text` under that name (`rookery up`'s
/// built-in `site.yaml`). The cluster modules (`k8s`, `k8s_info`, `kubeconfig`,
/// `storage_stack`) are registered here, from the runner (see `kube_modules`).
pub async fn run_playbook(args: PlayArgs, out: Output, text: Option<&str>) -> ExitCode {
    // Stage progress as plain lines on stderr: the play's own progress line owns the TTY.
    let progress = crate::cluster::Progress::new(Output {
        progress: false,
        ..out
    });
    let env = crate::kube_modules::KubeEnv::new(args.connect.clone(), out, Arc::new(progress));
    let mut registry = Registry::builtin();
    crate::kube_modules::register(&mut registry, &env);
    let registry = Arc::new(registry);
    let loaded = match text {
        Some(t) => rookery_playbook::parse_playbook(t, &args.playbook, &registry),
        None => load_playbook(&args.playbook, &registry),
    };
    let playbook = match loaded {
        Ok(p) => p,
        Err(e) => return ExitCode::from(crate::error::report(&e)),
    };
    if args.syntax_check {
        println!("playbook: {} (syntax OK)", args.playbook.display());
        return ExitCode::from(exit::OK);
    }
    let mut extra = Map::new();
    for e in &args.extra_vars {
        match vars::parse_extra_vars(e) {
            Ok(m) => extra.extend(m),
            Err(err) => return ExitCode::from(crate::error::report(&err)),
        }
    }
    let inventory = match Inventory::load(&args.inventory) {
        Ok(i) => Arc::new(i),
        Err(e) => return ExitCode::from(crate::error::report(&e)),
    };
    env.set_inventory(args.inventory.clone(), inventory.clone());
    if !out.quiet {
        for w in inventory.warnings() {
            eprintln!("warning: {w}");
        }
    }
    let source = InventorySource {
        inventory: &inventory,
        limit: args.limit.clone(),
    };
    if args.list_hosts || args.list_tasks {
        return list(&args, &playbook, &source, &extra);
    }
    let copts = match connect_options(&args.connect, args.timeout, &args.become_) {
        Ok(o) => o,
        Err((code, msg)) => {
            eprintln!("error: {msg}");
            return ExitCode::from(code);
        }
    };
    let opts = RunOptions {
        check: args.check,
        diff: args.diff,
        forks: args.forks.forks as usize,
        tags: args.tags.clone(),
        skip_tags: args.skip_tags.clone(),
        extra_vars: extra,
    };
    let reporter: Arc<dyn Reporter> = match out.format {
        OutputFormat::Json => Arc::new(JsonReporter),
        OutputFormat::Human => Arc::new(HumanReporter::new(out, args.diff)),
    };
    let executor = Executor::new(
        registry,
        Arc::new(Connector::new(copts)),
        opts,
        reporter.clone(),
    );
    let summary = tokio::select! {
        r = executor.run(&playbook, &source) => r,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("\ninterrupted");
            return ExitCode::from(exit::INTERRUPTED);
        }
    };
    let summary = match summary {
        Ok(s) => s,
        Err(e) => return ExitCode::from(crate::error::report(&e)),
    };
    let retry = summary.retry_hosts();
    if !retry.is_empty() && !args.no_retry_file {
        match write_retry(&args, &retry.iter().cloned().collect::<Vec<_>>()) {
            Ok(path) => {
                if out.format == OutputFormat::Human && !out.quiet {
                    println!("to retry, use: --limit @{}", path.display());
                }
            }
            Err(e) => eprintln!("warning: could not write a retry file: {e}"),
        }
    }
    let failed = summary.failed_hosts.len();
    let unreachable = summary.unreachable_hosts.len();
    exit::from_host_counts(failed, unreachable)
}

/// `<playbook>.retry` beside the playbook, else in ~/.cache/rookery/.
fn write_retry(args: &PlayArgs, hosts: &[String]) -> std::io::Result<PathBuf> {
    let text = hosts.join("\n") + "\n";
    if let Some(p) = &args.retry_file {
        std::fs::write(p, &text)?;
        return Ok(p.clone());
    }
    let stem = args
        .playbook
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "playbook".into());
    let beside = args.playbook.with_file_name(format!("{stem}.retry"));
    if std::fs::write(&beside, &text).is_ok() {
        return Ok(beside);
    }
    let home = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .ok_or_else(|| std::io::Error::other("no HOME for ~/.cache"))?;
    let dir = home.join("rookery");
    std::fs::create_dir_all(&dir)?;
    let p = dir.join(format!("{stem}.retry"));
    std::fs::write(&p, &text)?;
    Ok(p)
}

fn list(
    args: &PlayArgs,
    playbook: &Playbook,
    source: &dyn HostSource,
    extra: &Map<String, Value>,
) -> ExitCode {
    let mut text = format!("\nplaybook: {}\n", args.playbook.display());
    let templar = rookery_playbook::Templar::new();
    for (i, play) in playbook.plays.iter().enumerate() {
        let pattern = templar
            .render_str(&play.hosts, &Value::Object(extra.clone()))
            .unwrap_or_else(|_| play.hosts.clone());
        let _ = writeln!(
            text,
            "\n  play #{} ({pattern}): {}\tTAGS: [{}]",
            i + 1,
            play.name,
            play.tags.join(", ")
        );
        if args.list_hosts {
            match source.select(&pattern) {
                Ok(hosts) => {
                    let _ = writeln!(text, "    pattern: {pattern}\n    hosts ({}):", hosts.len());
                    for h in hosts {
                        let _ = writeln!(text, "      {}", h.name);
                    }
                }
                Err(e) => {
                    eprintln!("error: play `{}`: {e}", play.name);
                    return ExitCode::from(exit::INPUT);
                }
            }
        }
        if args.list_tasks {
            let _ = writeln!(text, "    tasks:");
            for t in &play.tasks {
                let mut tags = play.tags.clone();
                tags.extend(t.tags.iter().cloned());
                if !tags_selected(&tags, &args.tags, &args.skip_tags) {
                    continue;
                }
                let _ = writeln!(
                    text,
                    "      {}\tTAGS: [{}]\t({})",
                    t.display_name(),
                    tags.join(", "),
                    t.location
                );
            }
        }
    }
    print!("{text}");
    ExitCode::from(exit::OK)
}

/// One JSON object per line on stdout.
struct JsonReporter;

impl Reporter for JsonReporter {
    fn event(&self, e: &RunEvent) {
        if let Ok(line) = serde_json::to_string(e) {
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o, "{line}");
            let _ = o.flush();
        }
    }
}

struct HumanState {
    module: String,
    task: String,
    task_started: Instant,
    hosts_total: usize,
    hosts_done: usize,
    bar: Option<indicatif::ProgressBar>,
}

/// Ansible-like text with a live progress line on a TTY.
struct HumanReporter {
    out: Output,
    style: Style,
    diff: bool,
    state: Mutex<HumanState>,
    started: Instant,
}

fn banner(title: &str) -> String {
    let width: usize = 79;
    let stars = width.saturating_sub(title.chars().count() + 1).max(3);
    format!("{title} {}", "*".repeat(stars))
}

impl HumanReporter {
    fn new(out: Output, diff: bool) -> Self {
        HumanReporter {
            out,
            style: Style { color: out.color },
            diff,
            state: Mutex::new(HumanState {
                module: String::new(),
                task: String::new(),
                task_started: Instant::now(),
                hosts_total: 0,
                hosts_done: 0,
                bar: None,
            }),
            started: Instant::now(),
        }
    }

    fn print(&self, st: &HumanState, text: &str) {
        let write = || {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(text.as_bytes());
            let _ = o.flush();
        };
        match &st.bar {
            Some(b) => b.suspend(write),
            None => write(),
        }
    }

    fn host_line(&self, st: &HumanState, r: &HostResult) -> Option<String> {
        let s = self.style;
        // A loop's aggregate repeats its items, unless the loop itself failed.
        if r.loop_summary && !matches!(r.status, Status::Failed | Status::Unreachable) {
            return None;
        }
        let host = match &r.item {
            Some(i) => format!("[{}] => (item={i})", r.host),
            None if r.delegated => format!("[{} -> localhost]", r.host),
            None => format!("[{}]", r.host),
        };
        let mut line = match r.status {
            Status::Ok => s.green(&format!("ok: {host}")),
            Status::Changed => s.yellow(&format!("changed: {host}")),
            Status::Skipped => {
                if self.out.quiet {
                    return None;
                }
                format!("skipping: {host}")
            }
            // Ansible's spelling: `failed: [h] (item=x) => ...` for an item.
            Status::Failed | Status::Ignored if r.item.is_some() => s.red(&format!(
                "failed: [{}] (item={}) => {}",
                r.host,
                r.item.clone().unwrap_or_default(),
                r.msg.clone().unwrap_or_default()
            )),
            Status::Failed | Status::Ignored => s.red(&format!(
                "fatal: {host}: FAILED! => {}",
                r.msg.clone().unwrap_or_default()
            )),
            Status::Unreachable => s.red(&format!(
                "fatal: {host}: UNREACHABLE! => {}",
                r.msg.clone().unwrap_or_default()
            )),
        };
        if self.out.quiet && matches!(r.status, Status::Ok | Status::Changed) {
            return None;
        }
        if matches!(r.status, Status::Changed) && !r.changes.is_empty() {
            line.push_str(&s.dim(&format!(" ({})", r.changes.join(", "))));
        }
        if matches!(r.status, Status::Skipped)
            && r.check_mode
            && r.msg.is_some()
            && self.out.verbose > 0
        {
            line.push_str(&s.dim(&format!(" ({})", r.msg.clone().unwrap_or_default())));
        }
        // debug shows its message; failed commands show their output.
        if st.module == "debug" && r.status == Status::Ok {
            let body = match (&r.msg, r.result.as_object()) {
                (Some(m), _) => serde_json::json!({ "msg": m }),
                (None, Some(o)) => {
                    let mut o = o.clone();
                    for k in ["changed", "failed", "skipped"] {
                        o.remove(k);
                    }
                    Value::Object(o)
                }
                _ => Value::Null,
            };
            line.push_str(&format!(
                " => {}",
                serde_json::to_string_pretty(&body).unwrap_or_default()
            ));
        } else if matches!(r.status, Status::Failed | Status::Ignored) {
            for k in ["rc", "stdout", "stderr"] {
                match r.result.get(k) {
                    Some(Value::String(v)) if !v.is_empty() => {
                        let _ = write!(line, "\n    {k}: {}", v.trim_end());
                    }
                    Some(Value::Number(n)) => {
                        let _ = write!(line, "\n    {k}: {n}");
                    }
                    _ => {}
                }
            }
        } else if self.out.verbose > 0 && !matches!(r.status, Status::Skipped) {
            let mut o = r.result.as_object().cloned().unwrap_or_default();
            for k in ["changed", "failed", "skipped"] {
                o.remove(k);
            }
            if !o.is_empty() {
                line.push_str(&s.dim(&format!(" => {}", Value::Object(o))));
            }
        }
        if self.out.verbose > 0 {
            line.push_str(&s.dim(&format!(" [{}ms]", r.duration_ms)));
        }
        line.push('\n');
        if r.status == Status::Ignored {
            line.push_str("...ignoring\n");
        }
        if self.diff
            && let Some(d) = &r.diff
        {
            for l in d.unified.lines() {
                let colored = if l.starts_with('+') && !l.starts_with("+++") {
                    s.green(l)
                } else if l.starts_with('-') && !l.starts_with("---") {
                    s.red(l)
                } else {
                    l.to_string()
                };
                line.push_str(&colored);
                line.push('\n');
            }
        }
        Some(line)
    }

    fn recap(
        &self,
        hosts: &BTreeMap<String, HostStats>,
        unreachable: &BTreeMap<String, String>,
        ms: u64,
    ) -> String {
        let s = self.style;
        let width = hosts.keys().map(|h| h.len()).max().unwrap_or(0);
        let mut t = format!("\n{}\n", banner("PLAY RECAP"));
        for (h, st) in hosts {
            let name = format!("{h:<width$}");
            let name = if st.failed > 0 || st.unreachable > 0 {
                s.red(&name)
            } else if st.changed > 0 {
                s.yellow(&name)
            } else {
                s.green(&name)
            };
            let _ = writeln!(
                t,
                "{name} : ok={:<4} changed={:<4} unreachable={:<4} failed={:<4} skipped={:<4} rescued={:<4} ignored={}",
                st.ok, st.changed, st.unreachable, st.failed, st.skipped, st.rescued, st.ignored
            );
        }
        for (h, why) in unreachable {
            let _ = writeln!(t, "{}", s.dim(&format!("  {h} unreachable: {why}")));
        }
        let _ = writeln!(
            t,
            "{}",
            s.dim(&format!("\nfinished in {:.2}s", ms as f64 / 1000.0))
        );
        t
    }
}

impl Reporter for HumanReporter {
    fn event(&self, e: &RunEvent) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match e {
            RunEvent::PlaybookStart { check, .. } => {
                if *check && !self.out.quiet {
                    self.print(&st, "(check mode: nothing will be changed)\n");
                }
            }
            RunEvent::PlayStart { name, .. } => {
                if !self.out.quiet {
                    self.print(&st, &format!("\n{}\n", banner(&format!("PLAY [{name}]"))));
                }
            }
            RunEvent::BatchStart {
                batch,
                batches,
                hosts,
                ..
            } => {
                if !self.out.quiet {
                    let s = self.style;
                    self.print(
                        &st,
                        &format!(
                            "{}\n",
                            s.dim(&format!("batch {batch}/{batches}: {}", hosts.join(", ")))
                        ),
                    );
                }
            }
            RunEvent::NoHosts { .. } => {
                self.print(&st, "skipping: no hosts matched\n");
            }
            RunEvent::Aborted { play, hosts } => {
                // Printed even under -q: it is why the rest of the run did not happen.
                self.print(
                    &st,
                    &format!(
                        "\nNO MORE HOSTS LEFT: {} failed or could not be reached in `{play}` \
                         (any_errors_fatal); nothing after it ran\n",
                        hosts.join(", ")
                    ),
                );
            }
            RunEvent::TaskStart {
                name,
                module,
                handler,
                hosts,
                location,
            } => {
                st.module = module.clone();
                st.task = name.clone();
                st.task_started = Instant::now();
                st.hosts_total = *hosts;
                st.hosts_done = 0;
                if !self.out.quiet {
                    let kind = if *handler { "RUNNING HANDLER" } else { "TASK" };
                    let mut t = format!("\n{}\n", banner(&format!("{kind} [{name}]")));
                    if self.out.verbose > 1 {
                        t.push_str(&self.style.dim(&format!("task path: {location}\n")));
                    }
                    self.print(&st, &t);
                }
                if self.out.progress {
                    let bar = st.bar.get_or_insert_with(|| {
                        let b = indicatif::ProgressBar::new_spinner();
                        if let Ok(style) =
                            indicatif::ProgressStyle::with_template("{spinner} {wide_msg}")
                        {
                            b.set_style(style);
                        }
                        b.enable_steady_tick(Duration::from_millis(120));
                        b
                    });
                    bar.set_message(format!(
                        "{name}: 0/{hosts} hosts [{:.0}s total]",
                        self.started.elapsed().as_secs_f64()
                    ));
                }
            }
            RunEvent::HostResult(r) => {
                if !r.loop_summary && r.item.is_some() {
                    // Items are progress within one host; count the host when its
                    // aggregate arrives.
                } else {
                    st.hosts_done += 1;
                }
                if let Some(line) = self.host_line(&st, r) {
                    self.print(&st, &line);
                }
                if let Some(b) = &st.bar {
                    b.set_message(format!(
                        "{}: {}/{} hosts [{:.1}s, {:.0}s total]",
                        st.task,
                        st.hosts_done,
                        st.hosts_total,
                        st.task_started.elapsed().as_secs_f64(),
                        self.started.elapsed().as_secs_f64()
                    ));
                }
            }
            RunEvent::TaskEnd { duration_ms, .. } => {
                if self.out.verbose > 0 && !self.out.quiet {
                    let t = self
                        .style
                        .dim(&format!("  ({:.2}s)\n", *duration_ms as f64 / 1000.0));
                    self.print(&st, &t);
                }
            }
            RunEvent::PlayEnd { .. } => {}
            RunEvent::Recap {
                hosts,
                unreachable,
                duration_ms,
            } => {
                if let Some(b) = st.bar.take() {
                    b.finish_and_clear();
                }
                let t = self.recap(hosts, unreachable, *duration_ms);
                self.print(&st, &t);
            }
        }
    }
}
