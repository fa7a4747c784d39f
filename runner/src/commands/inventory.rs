//! `rookery inventory list|graph|host`: show what an inventory resolves to, so a user can
//! check hosts, groups, variables and connection settings before running anything.
//! Secrets (become passwords, `*password*`, `*secret*`, `*token*`, vault values) are always
//! printed as `<redacted>`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rookery_inventory::{ConnectionKind, Host, Inventory, InventoryError, redact};
use serde_json::{Value, json};

use crate::exit;
use crate::output::{Output, OutputFormat};

#[derive(Debug, Clone, clap::Args)]
pub struct InventorySource {
    /// Inventory file (YAML or INI, Ansible format) or a directory of them.
    #[arg(
        short = 'i',
        long = "inventory",
        env = "ROOKERY_INVENTORY",
        value_name = "PATH",
        global = true
    )]
    pub inventory: Option<PathBuf>,
}

/// `rookery inventory [-i PATH] <list|graph|host>`; `-i` is accepted before or after the
/// action (`global`), which the derive cannot express for an enum, hence the small manual
/// `Subcommand` impl below that wraps [`InventoryArgs`].
#[derive(Debug)]
pub struct InventoryCommand(pub InventoryArgs);

#[derive(Debug, clap::Args)]
pub struct InventoryArgs {
    #[command(flatten)]
    pub source: InventorySource,
    #[command(subcommand)]
    pub action: InventoryAction,
}

impl clap::FromArgMatches for InventoryCommand {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        InventoryArgs::from_arg_matches(m).map(InventoryCommand)
    }
    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(m)
    }
}

impl clap::Subcommand for InventoryCommand {
    fn augment_subcommands(cmd: clap::Command) -> clap::Command {
        <InventoryArgs as clap::Args>::augment_args(cmd)
    }
    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        <InventoryArgs as clap::Args>::augment_args_for_update(cmd)
    }
    fn has_subcommand(name: &str) -> bool {
        <InventoryAction as clap::Subcommand>::has_subcommand(name)
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum InventoryAction {
    /// List resolved hosts: address, port, user, connection and groups (`-o json`: all
    /// variables, secrets redacted).
    List {
        /// Only hosts matching this Ansible pattern (`group`, `host`, `web*`, `a:&b`,
        /// `a:!b`, `~regex`, `@retry-file`). A name that matches nothing is an error.
        #[arg(long, short = 'l', value_name = "PATTERN")]
        limit: Option<String>,
    },
    /// Show the group tree, like `ansible-inventory --graph`.
    Graph {
        /// Start from this group instead of `all`.
        #[arg(value_name = "GROUP")]
        group: Option<String>,
        /// Also print each host's variables (secrets redacted).
        #[arg(long)]
        vars: bool,
    },
    /// Show one host: its resolved variables (secrets redacted), its connection settings
    /// and the ssh options rookery ignores. `-v` adds where each variable was set.
    Host {
        /// Inventory name of the host.
        name: String,
    },
}

pub async fn run(cmd: InventoryCommand, out: Output) -> ExitCode {
    let InventoryCommand(args) = cmd;
    let Some(path) = args.source.inventory else {
        eprintln!("error: no inventory given: pass -i/--inventory PATH or set ROOKERY_INVENTORY");
        return ExitCode::from(exit::USAGE);
    };
    let stdout = std::io::stdout();
    match execute(&path, args.action, out, &mut stdout.lock()) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(Failure::Inventory(err)) => ExitCode::from(crate::error::report(&err)),
        Err(Failure::Io(err)) if err.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::from(exit::OK)
        }
        Err(Failure::Io(err)) => {
            crate::cli::report_error(&anyhow::Error::from(err).context("cannot write output"));
            ExitCode::from(exit::ERROR)
        }
    }
}

enum Failure {
    Inventory(InventoryError),
    Io(std::io::Error),
}

impl From<InventoryError> for Failure {
    fn from(e: InventoryError) -> Self {
        Failure::Inventory(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(e)
    }
}

fn load(path: &Path, out: &Output) -> Result<Inventory, InventoryError> {
    let inv = Inventory::load(path)?;
    if !out.quiet {
        for w in inv.warnings() {
            eprintln!("warning: {w}");
        }
    }
    Ok(inv)
}

fn execute(
    path: &Path,
    action: InventoryAction,
    out: Output,
    w: &mut impl Write,
) -> Result<(), Failure> {
    let inv = load(path, &out)?;
    match action {
        InventoryAction::List { limit } => {
            let hosts = inv.select(limit.as_deref().unwrap_or("all"))?;
            list(w, &hosts, out)?;
        }
        InventoryAction::Graph { group, vars } => {
            let root = group.as_deref().unwrap_or("all");
            if inv.group(root).is_none() {
                // Reuse the pattern machinery for its "did you mean" message.
                inv.select(root)?;
                return Err(InventoryError::Pattern {
                    pattern: root.to_owned(),
                    message: format!("`{root}` is a host, not a group"),
                }
                .into());
            }
            match out.format {
                OutputFormat::Json => {
                    writeln!(w, "{}", to_pretty(&graph_json(&inv, root, vars)))?;
                }
                OutputFormat::Human => {
                    let mut lines = Vec::new();
                    graph_lines(&inv, root, 0, vars, &mut lines);
                    for l in lines {
                        writeln!(w, "{l}")?;
                    }
                }
            }
        }
        InventoryAction::Host { name } => {
            let Some(host) = inv.host(&name) else {
                let near: Vec<&str> = inv
                    .hosts()
                    .iter()
                    .map(|h| h.name.as_str())
                    .filter(|h| strsim_close(&name, h))
                    .collect();
                let hint = if inv.group(&name).is_some() {
                    format!("; `{name}` is a group (try `rookery inventory list --limit {name}`)")
                } else {
                    match near.as_slice() {
                        [] => String::new(),
                        [one] => format!("; did you mean `{one}`?"),
                        many => format!("; did you mean one of {}?", many.join(", ")),
                    }
                };
                return Err(InventoryError::Pattern {
                    pattern: name.clone(),
                    message: format!("no host named `{name}` in the inventory{hint}"),
                }
                .into());
            };
            let doc = host_json(host, out.verbose > 0);
            match out.format {
                OutputFormat::Json => writeln!(w, "{}", to_pretty(&doc))?,
                OutputFormat::Human => host_human(w, host, out.verbose > 0)?,
            }
        }
    }
    w.flush()?;
    Ok(())
}

fn strsim_close(a: &str, b: &str) -> bool {
    // A cheap closeness test: same length +-1 and few differing positions, or a prefix.
    b.starts_with(a) || a.starts_with(b) || {
        let (x, y): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        x.len().abs_diff(y.len()) <= 1
            && x.iter().zip(&y).filter(|(p, q)| p != q).count() + x.len().abs_diff(y.len()) <= 2
    }
}

fn to_pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

fn kind_name(h: &Host) -> &'static str {
    match h.connection.kind {
        ConnectionKind::Ssh => "ssh",
        ConnectionKind::Local => "local",
    }
}

fn list(w: &mut impl Write, hosts: &[&Host], out: Output) -> std::io::Result<()> {
    if out.format == OutputFormat::Json {
        let doc: Vec<Value> = hosts
            .iter()
            .map(|h| {
                json!({
                    "name": h.name,
                    "groups": h.groups,
                    "connection": h.connection.to_redacted_json(),
                    "vars": redact(&h.vars),
                })
            })
            .collect();
        return writeln!(w, "{}", to_pretty(&Value::Array(doc)));
    }
    let header = [
        "HOST",
        "ADDRESS",
        "PORT",
        "USER",
        "CONNECTION",
        "BECOME",
        "GROUPS",
    ];
    let rows: Vec<[String; 7]> = hosts
        .iter()
        .map(|h| {
            let c = &h.connection;
            let local = c.kind == ConnectionKind::Local;
            [
                h.name.clone(),
                if local { "-".into() } else { c.address.clone() },
                match c.port {
                    Some(p) if !local => p.to_string(),
                    _ => "-".into(),
                },
                c.user
                    .clone()
                    .filter(|_| !local)
                    .unwrap_or_else(|| "-".into()),
                match &c.proxy_jump {
                    Some(j) if !local => format!("ssh via {j}"),
                    _ => kind_name(h).into(),
                },
                if c.become_ {
                    c.become_user.clone().unwrap_or_else(|| "root".into())
                } else {
                    "-".into()
                },
                h.groups.join(","),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (i, cell) in r.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}  ", width = widths[i]));
            }
        }
        s
    };
    if !out.quiet {
        let h = line(&header);
        if out.color {
            writeln!(w, "\x1b[1m{h}\x1b[0m")?;
        } else {
            writeln!(w, "{h}")?;
        }
    }
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        writeln!(w, "{}", line(&cells))?;
    }
    Ok(())
}

/// `ansible-inventory --graph` layout (as ansible-core 2.19 prints it): child groups, then
/// hosts, both in inventory order; `all` lists no hosts directly (they appear under
/// `ungrouped` or their groups).
fn graph_lines(inv: &Inventory, group: &str, depth: usize, vars: bool, out: &mut Vec<String>) {
    let indent = |depth: usize, name: &str| {
        if depth == 0 {
            name.to_owned()
        } else {
            format!("{}--{name}", "  |".repeat(depth))
        }
    };
    out.push(indent(depth, &format!("@{group}:")));
    let Some(g) = inv.group(group) else {
        return;
    };
    if vars {
        for (k, v) in redact(&g.vars) {
            out.push(indent(depth + 1, &format!("{{{k} = {}}}", show(&v))));
        }
    }
    for c in &g.children {
        graph_lines(inv, c, depth + 1, vars, out);
    }
    if group != "all" {
        for h in &g.hosts {
            out.push(indent(depth + 1, h));
            if let Some(host) = inv.host(h).filter(|_| vars) {
                for (k, v) in redact(&host.vars) {
                    out.push(indent(depth + 2, &format!("{{{k} = {}}}", show(&v))));
                }
            }
        }
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn graph_json(inv: &Inventory, group: &str, vars: bool) -> Value {
    let Some(g) = inv.group(group) else {
        return Value::Null;
    };
    let mut doc = json!({
        "name": g.name,
        "children": g.children.iter().map(|c| graph_json(inv, c, vars)).collect::<Vec<_>>(),
        "hosts": if group == "all" { &[][..] } else { &g.hosts[..] },
    });
    if vars {
        doc["vars"] = Value::Object(redact(&g.vars));
    }
    doc
}

/// Name, groups and connection first (what people check), then the variables as YAML.
fn host_human(w: &mut impl Write, h: &Host, origins: bool) -> std::io::Result<()> {
    let c = &h.connection;
    writeln!(w, "host: {}", h.name)?;
    writeln!(w, "groups: [{}]", h.groups.join(", "))?;
    writeln!(w, "connection:")?;
    if let Value::Object(conn) = c.to_redacted_json() {
        let order = [
            "kind",
            "address",
            "port",
            "user",
            "private_key_file",
            "identities_only",
            "user_known_hosts_files",
            "strict_host_key_checking",
            "proxy_jump",
            "become",
            "become_user",
            "become_password",
        ];
        for key in order {
            if let Some(v) = conn.get(key).filter(|v| !v.is_null()) {
                if v.as_array().is_some_and(Vec::is_empty) {
                    continue;
                }
                writeln!(w, "  {key}: {}", show(v))?;
            }
        }
    }
    if c.ignored_ssh_options.is_empty() {
        writeln!(w, "ignored_ssh_options: []")?;
    } else {
        writeln!(w, "ignored_ssh_options:  # not honoured by rookery")?;
        for o in &c.ignored_ssh_options {
            writeln!(w, "  - {}", serde_json::Value::String(o.clone()))?;
        }
    }
    let vars = redact(&h.vars);
    if vars.is_empty() {
        return writeln!(w, "vars: {{}}");
    }
    writeln!(w, "vars:")?;
    for (k, v) in &vars {
        let single = serde_json::Map::from_iter([(k.clone(), v.clone())]);
        let text = rookery_yaml::to_string(&single);
        let mut lines = text.lines();
        if let Some(first) = lines.next() {
            match h.var_origins.get(k).filter(|_| origins) {
                Some(loc) => writeln!(w, "  {first}  # {loc}")?,
                None => writeln!(w, "  {first}")?,
            }
        }
        for l in lines {
            writeln!(w, "  {l}")?;
        }
    }
    Ok(())
}

fn host_json(h: &Host, origins: bool) -> Value {
    let mut doc = json!({
        "name": h.name,
        "groups": h.groups,
        "connection": h.connection.to_redacted_json(),
        "vars": redact(&h.vars),
    });
    if origins {
        let o: serde_json::Map<String, Value> = h
            .var_origins
            .iter()
            .map(|(k, l)| (k.clone(), Value::String(l.to_string())))
            .collect();
        doc["var_origins"] = Value::Object(o);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(format: OutputFormat, verbose: u8) -> Output {
        Output {
            format,
            color: false,
            progress: false,
            verbose,
            quiet: false,
        }
    }

    fn run_to_string(
        text: &str,
        name: &str,
        action: InventoryAction,
        format: OutputFormat,
    ) -> Result<String, String> {
        // runner has no tempfile dev-dependency (not this module's Cargo.toml to change).
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("rookery-inv-cli-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let mut buf = Vec::new();
        let result = execute(&path, action, output(format, 0), &mut buf);
        std::fs::remove_dir_all(&dir).unwrap();
        match result {
            Ok(()) => Ok(String::from_utf8(buf).unwrap()),
            Err(Failure::Inventory(e)) => Err(e.to_string()),
            Err(Failure::Io(e)) => Err(e.to_string()),
        }
    }

    const INV: &str = "[web]\nw1 ansible_host=10.0.0.1 ansible_port=2222 ansible_user=ops\n\
        w2 ansible_connection=local ansible_become=true ansible_become_pass=hunter2\n\
        [db]\nd1 api_token=abc ansible_ssh_common_args='-o ControlMaster=auto -J jump'\n\
        [prod:children]\nweb\ndb\n";

    #[test]
    fn list_table() {
        let out = run_to_string(
            INV,
            "inv.ini",
            InventoryAction::List { limit: None },
            OutputFormat::Human,
        )
        .unwrap();
        assert_eq!(
            out,
            "HOST  ADDRESS   PORT  USER  CONNECTION    BECOME  GROUPS\n\
             w1    10.0.0.1  2222  ops   ssh           -       prod,web\n\
             w2    -         -     -     local         root    prod,web\n\
             d1    d1        -     -     ssh via jump  -       db,prod\n"
        );
        let out = run_to_string(
            INV,
            "inv.ini",
            InventoryAction::List {
                limit: Some("prod:!web".into()),
            },
            OutputFormat::Human,
        )
        .unwrap();
        assert_eq!(out.lines().count(), 2);
        let err = run_to_string(
            INV,
            "inv.ini",
            InventoryAction::List {
                limit: Some("wbe".into()),
            },
            OutputFormat::Human,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "host pattern `wbe`: no host or group matches `wbe`; did you mean `web`?"
        );
    }

    #[test]
    fn json_output_redacts_secrets() {
        let out = run_to_string(
            INV,
            "inv.ini",
            InventoryAction::List { limit: None },
            OutputFormat::Json,
        )
        .unwrap();
        assert!(!out.contains("hunter2") && !out.contains("abc"), "{out}");
        let doc: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(doc[1]["vars"]["ansible_become_pass"], json!("<redacted>"));
        assert_eq!(doc[1]["connection"]["become_password"], json!("<redacted>"));
        assert_eq!(doc[2]["vars"]["api_token"], json!("<redacted>"));
        assert_eq!(
            doc[2]["connection"]["ignored_ssh_options"],
            json!(["-o ControlMaster=auto"])
        );
    }

    #[test]
    fn graph_like_ansible_inventory() {
        let out = run_to_string(
            INV,
            "inv.ini",
            InventoryAction::Graph {
                group: None,
                vars: false,
            },
            OutputFormat::Human,
        )
        .unwrap();
        assert_eq!(
            out,
            "@all:\n  |--@ungrouped:\n  |--@prod:\n  |  |--@web:\n  |  |  |--w1\n  |  |  |--w2\n  |  |--@db:\n  |  |  |--d1\n"
        );
    }

    #[test]
    fn host_shows_connection_and_ignored_options() {
        let out = run_to_string(
            INV,
            "inv.ini",
            InventoryAction::Host { name: "d1".into() },
            OutputFormat::Human,
        )
        .unwrap();
        assert!(
            out.starts_with(
                "host: d1\ngroups: [db, prod]\nconnection:\n  kind: ssh\n  address: d1\n"
            ),
            "{out}"
        );
        assert!(out.contains("  proxy_jump: jump\n"), "{out}");
        assert!(
            out.contains(
                "ignored_ssh_options:  # not honoured by rookery\n  - \"-o ControlMaster=auto\"\n"
            ),
            "{out}"
        );
        assert!(out.contains("  api_token: <redacted>\n"), "{out}");
        let out = run_to_string(
            INV,
            "inv.ini",
            InventoryAction::Host { name: "w2".into() },
            OutputFormat::Human,
        )
        .unwrap();
        assert!(!out.contains("hunter2"), "{out}");
        assert!(out.contains("  become_password: <redacted>\n"), "{out}");
    }

    #[test]
    fn bad_inventory_is_a_located_error() {
        let err = run_to_string(
            "all:\n  children:\n    web:\n      hots:\n",
            "inv.yaml",
            InventoryAction::List { limit: None },
            OutputFormat::Human,
        )
        .unwrap_err();
        assert!(
            err.contains("inv.yaml:4:7: all.children.web.hots: unknown key `hots`"),
            "{err}"
        );
    }
}
