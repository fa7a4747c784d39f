//! Reaching the cluster from the command line: the flags every cluster command shares
//! (`--kubeconfig`, `--context`, `--kubeconfig-from HOST`), fetching a K3s server's
//! kubeconfig over the existing SSH transport, and drawing the engine's events — a progress
//! line per stage on a terminal, plain lines otherwise, one JSON object per line with `-o json`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rookery_inventory::Inventory;
use rookery_kube::events::{Change, Event, Reporter};
use rookery_kube::{Cluster, KubeError, Target, kubeconfig};
use rookery_proto::{ReadFileRequest, Request, Response};
use rookery_stack::Stack;
use rookery_stack::desired::Stage;
use rookery_transport::Connector;

use crate::connect::ConnectArgs;
use crate::exit;
use crate::output::{Output, OutputFormat};
use crate::probe::error_chain;

/// Where K3s writes its admin kubeconfig.
pub const K3S_KUBECONFIG: &str = "/etc/rancher/k3s/k3s.yaml";

/// How to reach the API server (shared by `apply`, `diff`, `status`, `backup`, ...).
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// kubeconfig file (default: $KUBECONFIG, then ~/.kube/config; or the stack's
    /// `kubeconfig: {fromHost: ...}`).
    #[arg(long, value_name = "FILE", help_heading = "Cluster")]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context (default: its current context).
    #[arg(long, value_name = "NAME", help_heading = "Cluster")]
    pub context: Option<String>,
    /// Read the kubeconfig from this inventory host's K3s server over SSH (with its become),
    /// point it at the host's address (only `server` changes; CA verification stays) and keep
    /// it 0600 under ~/.config/rookery/kubeconfig/.
    #[arg(
        long,
        value_name = "HOST",
        help_heading = "Cluster",
        conflicts_with = "kubeconfig"
    )]
    pub kubeconfig_from: Option<String>,
    /// With --kubeconfig-from: the API server's address as seen from here (host, host:port or
    /// URL; default: the host's ansible_host). It must be in the server's certificate.
    #[arg(long, value_name = "ADDRESS", help_heading = "Cluster")]
    pub api_endpoint: Option<String>,
    /// Seconds allowed for each API request.
    #[arg(long, value_name = "S", default_value_t = 30, help_heading = "Cluster")]
    pub request_timeout: u64,
}

/// An error for the command line: exit code and message (hint separate).
pub struct Failure {
    pub code: u8,
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    pub fn print(&self) {
        eprintln!("error: {}", self.message);
        if let Some(h) = &self.hint {
            eprintln!("  hint: {h}");
        }
    }
}

impl From<KubeError> for Failure {
    fn from(e: KubeError) -> Self {
        Failure {
            code: exit::CLUSTER,
            hint: e.hint(),
            message: describe(&e),
        }
    }
}

/// The error with the detail people need on separate lines (conflicting fields, immutable
/// changes, the objects a timeout left not ready).
pub fn describe(e: &KubeError) -> String {
    use std::fmt::Write as _;
    let mut s = error_chain(e);
    match e {
        KubeError::Immutable(changes) => {
            for c in changes {
                let _ = write!(
                    s,
                    "\n  {}: `{}` is {} on the cluster, the stack says {}",
                    c.object, c.field, c.live, c.desired
                );
            }
        }
        KubeError::WaitTimeout { blockers, .. } => {
            s = e
                .to_string()
                .split("; not ready:")
                .next()
                .unwrap_or_default()
                .to_string();
            for b in blockers {
                let _ = write!(s, "\n  not ready: {}: {}", b.object, b.last);
            }
        }
        KubeError::StageFailed { errors, .. } => {
            for err in errors {
                let _ = write!(s, "\n  {}", error_chain(err));
            }
        }
        _ => {}
    }
    s
}

/// Connect: `--kubeconfig`/`KUBECONFIG`/`~/.kube/config`, or a fetched K3s kubeconfig when
/// `--kubeconfig-from` (or the stack's `kubeconfig.fromHost`) says so and no file was named.
pub async fn connect(
    args: &ClusterArgs,
    stack: Option<&Stack>,
    inventory: Option<&Inventory>,
    ssh: &ConnectArgs,
    out: &Output,
) -> Result<Cluster, Failure> {
    let kubeconfig = kubeconfig_file(args, stack, inventory, ssh, out).await?;
    let target = Target {
        kubeconfig,
        context: args.context.clone(),
        request_timeout: Duration::from_secs(args.request_timeout.max(1)),
    };
    Ok(rookery_kube::connect(&target).await?)
}

/// The kubeconfig file [`connect`] uses (fetched first when the flags or the stack say so);
/// `None` means `KUBECONFIG`, then `~/.kube/config`. The playbook `kubeconfig` module calls
/// this too, so `rookery up` and `rookery apply` reach the cluster the same way.
pub async fn kubeconfig_file(
    args: &ClusterArgs,
    stack: Option<&Stack>,
    inventory: Option<&Inventory>,
    ssh: &ConnectArgs,
    out: &Output,
) -> Result<Option<PathBuf>, Failure> {
    let from_stack = stack.and_then(|s| s.kubeconfig.as_ref());
    let explicit = args.kubeconfig.is_some() || std::env::var_os("KUBECONFIG").is_some();
    let fetch = match (&args.kubeconfig_from, from_stack) {
        (Some(host), _) => Some((
            host.clone(),
            args.api_endpoint
                .clone()
                .or_else(|| from_stack.and_then(|s| s.api_endpoint.clone())),
            from_stack.and_then(|s| s.path.clone()),
        )),
        (None, Some(src)) if !explicit => Some((
            src.from_host.clone(),
            args.api_endpoint
                .clone()
                .or_else(|| src.api_endpoint.clone()),
            src.path.clone(),
        )),
        _ => None,
    };
    let kubeconfig = match fetch {
        Some((host, endpoint, path)) => {
            let inventory = inventory.ok_or_else(|| Failure {
                code: exit::USAGE,
                message: "--kubeconfig-from needs an inventory (-i) naming the host".into(),
                hint: None,
            })?;
            Some(
                fetch_kubeconfig(
                    inventory,
                    &host,
                    endpoint.as_deref(),
                    path.as_deref(),
                    ssh,
                    out,
                )
                .await?,
            )
        }
        None => args.kubeconfig.clone(),
    };
    Ok(kubeconfig)
}

/// Read `path` (default K3s's) on `host` through its agent — with the host's become, since
/// K3s writes it root-only — rewrite its `server`, and store it 0600. Returns where.
pub async fn fetch_kubeconfig(
    inventory: &Inventory,
    host: &str,
    endpoint: Option<&str>,
    path: Option<&str>,
    ssh: &ConnectArgs,
    out: &Output,
) -> Result<PathBuf, Failure> {
    let path = path.unwrap_or(K3S_KUBECONFIG);
    let h = inventory.host(host).ok_or_else(|| Failure {
        code: exit::USAGE,
        message: format!("kubeconfig host `{host}` is not in the inventory"),
        hint: Some("name an inventory host that runs the K3s server".into()),
    })?;
    let opts = ssh.options(60).map_err(|(code, message)| Failure {
        code,
        message,
        hint: None,
    })?;
    let connector = Connector::new(opts);
    let session = connector
        .connect(host, &h.connection)
        .await
        .map_err(|e| Failure {
            code: exit::HOSTS_UNREACHABLE,
            message: format!("cannot fetch the kubeconfig: {}", error_chain(&e)),
            hint: rookery_diagnostic::Diagnostic::hint(&e).map(|h| h.to_string()),
        })?;
    let answer = session
        .call(Request::ReadFile(ReadFileRequest {
            path: path.to_string(),
            max_bytes: 1 << 20,
        }))
        .await;
    session.close().await;
    let text = match answer {
        Ok(Response::ReadFile(r)) if r.is_utf8 => r.content,
        Ok(Response::ReadFile(_)) => {
            return Err(Failure {
                code: exit::HOSTS_FAILED,
                message: format!("{host}:{path} is not a text file"),
                hint: None,
            });
        }
        Ok(Response::Error(e)) => {
            return Err(Failure {
                code: exit::HOSTS_FAILED,
                message: format!("{host}: cannot read {path}: {}", e.message),
                hint: Some(format!(
                    "K3s writes it readable by root only: set `ansible_become: true` for \
                     {host}, or give the file's path with the stack's `kubeconfig.path`"
                )),
            });
        }
        Ok(_) => {
            return Err(Failure {
                code: exit::HOSTS_FAILED,
                message: format!("{host}: the agent gave an unexpected answer to reading {path}"),
                hint: None,
            });
        }
        Err(e) => {
            return Err(Failure {
                code: exit::HOSTS_FAILED,
                message: format!("{host}: cannot read {path}: {}", error_chain(&e)),
                hint: None,
            });
        }
    };
    let address = endpoint.unwrap_or(&h.connection.address);
    let rewritten = kubeconfig::rewrite_server(&text, address, &format!("{host}:{path}"))?;
    let stored = kubeconfig::store_path(host);
    kubeconfig::store(&stored, &rewritten)?;
    if !out.quiet && out.format == OutputFormat::Human {
        eprintln!(
            "kubeconfig: read {host}:{path}, server set to {address}, stored at {} (0600)",
            stored.display()
        );
    }
    Ok(stored)
}

/// `--stage-timeout STAGE=DURATION` (`ceph-cluster=30m`).
pub fn parse_stage_timeout(s: &str) -> Result<(Stage, Duration), String> {
    let (stage, d) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected STAGE=DURATION, e.g. ceph-cluster=30m"))?;
    let stage = Stage::from_name(stage).ok_or_else(|| {
        format!(
            "unknown stage `{stage}`; stages: {}",
            Stage::ALL
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    Ok((stage, parse_duration(d)?))
}

/// `90s`, `5m`, `1h30m`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration ({e}); e.g. 90s, 5m, 1h"))
}

/// Draws engine events for people (stderr) or machines (stdout, JSON lines).
pub struct Progress {
    out: Output,
    state: Mutex<ProgressState>,
}

#[derive(Default)]
struct ProgressState {
    bar: Option<indicatif::ProgressBar>,
    header: String,
    applied: [usize; 3],
    stage_started: Option<std::time::Instant>,
}

/// Without a progress bar, waits shorter than this are not worth a line each.
const QUIET_WAIT: Duration = Duration::from_secs(2);

impl Progress {
    pub fn new(out: Output) -> Self {
        Progress {
            out,
            state: Mutex::default(),
        }
    }

    fn line(&self, st: &mut ProgressState, text: String) {
        match &st.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }
}

impl Reporter for Progress {
    fn event(&self, event: Event) {
        if self.out.format == OutputFormat::Json {
            if let Ok(s) = serde_json::to_string(&event) {
                println!("{s}");
            }
            return;
        }
        if self.out.quiet {
            return;
        }
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        match event {
            Event::Connected { server, context } => {
                let ctx = context
                    .map(|c| format!(" (context {c})"))
                    .unwrap_or_default();
                self.line(&mut st, format!("cluster: {server}{ctx}"));
            }
            Event::StageStarted {
                title,
                index,
                total,
                objects,
                ..
            } => {
                st.header = format!("[{index}/{total}] {title}");
                st.applied = [0; 3];
                st.stage_started = Some(std::time::Instant::now());
                if self.out.progress {
                    let bar = indicatif::ProgressBar::new_spinner();
                    if let Ok(style) =
                        indicatif::ProgressStyle::with_template("{spinner} {wide_msg} {elapsed}")
                    {
                        bar.set_style(style);
                    }
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar.set_message(format!("{}: applying {objects} objects", st.header));
                    st.bar = Some(bar);
                } else {
                    let h = st.header.clone();
                    self.line(&mut st, format!("{h}: applying {objects} objects"));
                }
            }
            Event::Applied { change, object, .. } => {
                let i = match change {
                    Change::Created => 0,
                    Change::Configured => 1,
                    Change::Unchanged => 2,
                };
                st.applied[i] += 1;
                if self.out.verbose > 0 && change != Change::Unchanged {
                    let verb = if change == Change::Created {
                        "created"
                    } else {
                        "configured"
                    };
                    self.line(&mut st, format!("    {verb} {object}"));
                }
            }
            Event::Waiting { object, reason, .. } => {
                let msg = format!("{}: waiting for {object}: {reason}", st.header);
                let waited = st.stage_started.map(|t| t.elapsed()).unwrap_or_default();
                match &st.bar {
                    Some(bar) => bar.set_message(msg),
                    None if waited >= QUIET_WAIT || self.out.verbose > 0 => {
                        self.line(&mut st, format!("    waiting for {object}: {reason}"))
                    }
                    None => {}
                }
            }
            Event::Ready { object, note, .. } => {
                if let Some(n) = note {
                    self.line(&mut st, format!("    {object} is ready: {n}"));
                } else if self.out.verbose > 0 {
                    self.line(&mut st, format!("    {object} is ready"));
                }
            }
            Event::StageDone { elapsed, .. } => {
                let [c, u, n] = st.applied;
                let text = format!(
                    "ok: {} ({c} created, {u} configured, {n} unchanged; ready in {:.1} s)",
                    st.header,
                    elapsed.as_secs_f64()
                );
                match st.bar.take() {
                    Some(bar) => bar.finish_with_message(text),
                    None => eprintln!("{text}"),
                }
            }
            Event::Pruned { object } => self.line(&mut st, format!("pruned {object}")),
            Event::Warning { message } => self.line(&mut st, format!("warning: {message}")),
        }
    }
}

impl Progress {
    /// Stop a spinner left running by a failed stage, so the error prints on a clean line.
    pub fn abandon(&self) {
        if let Ok(mut st) = self.state.lock()
            && let Some(bar) = st.bar.take()
        {
            let h = st.header.clone();
            bar.abandon_with_message(format!("FAILED: {h}"));
        }
    }
}

/// The stack file's directory (base of relative `file:` credentials).
pub fn stack_dir(stack: &Path) -> PathBuf {
    stack.parent().map(Path::to_path_buf).unwrap_or_default()
}
