//! The playbook language: plays, tasks, handlers and `import_playbook`, parsed into typed
//! structs that remember where each task came from. The keyword set follows Ansible's
//! spelling; anything else in a play or task is an error at `file:line:col` (a typo must never
//! turn into a silently ignored setting). Module arguments are checked against the module
//! registry at load time, before anything runs on a host.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use rookery_yaml::{Node, NodeKind};

use crate::modules::Registry;
use crate::yaml::{Document, Location, YamlError, key_path};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("{location}: import_playbook `{target}` imports itself (cycle)")]
    ImportCycle { location: Location, target: String },
}

impl rookery_diagnostic::Diagnostic for LoadError {
    fn exit_code(&self) -> u8 {
        rookery_diagnostic::exit::INPUT
    }
}

/// A playbook with every `import_playbook` expanded in place.
#[derive(Debug, Clone)]
pub struct Playbook {
    pub path: PathBuf,
    pub plays: Vec<Play>,
}

#[derive(Debug, Clone)]
pub struct Play {
    pub name: String,
    /// Ansible host pattern (a list in YAML is joined with `:`).
    pub hosts: String,
    pub become_: Option<bool>,
    pub vars: Map<String, Value>,
    /// Paths as written (templated at run time), relative to `dir`.
    pub vars_files: Vec<String>,
    /// Batch sizes; the last one repeats. Empty = all hosts at once.
    pub serial: Vec<Serial>,
    pub gather_facts: bool,
    /// A failed or unreachable host stops the whole run after the task it failed in: no
    /// later task or play runs on any host (a bring-up must not go on with a host missing).
    pub any_errors_fatal: bool,
    pub tags: Vec<String>,
    pub check_mode: Option<bool>,
    pub tasks: Vec<Task>,
    pub handlers: Vec<Task>,
    /// Directory of the file the play is in (`copy: src`, `template: src`, `vars_files`).
    pub dir: PathBuf,
    pub location: Location,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Serial {
    Count(usize),
    Percent(f64),
}

#[derive(Debug, Clone)]
pub struct Task {
    pub name: Option<String>,
    pub module: String,
    /// Raw (untemplated) arguments; a free-form string is under `_raw_params`.
    pub args: Value,
    /// All must hold (Ansible ANDs a list).
    pub when: Vec<String>,
    pub register: Option<String>,
    /// A list, or a string template that must render to a list.
    pub loop_: Option<Value>,
    /// `with_items`: nested lists are flattened one level (Ansible's behaviour).
    pub loop_flatten: bool,
    pub loop_var: String,
    pub loop_label: Option<String>,
    pub tags: Vec<String>,
    pub ignore_errors: bool,
    pub changed_when: Vec<String>,
    pub failed_when: Vec<String>,
    pub notify: Vec<String>,
    /// Handler aliases (`listen`).
    pub listen: Vec<String>,
    /// Only `localhost` (the control machine) is supported.
    pub delegate_to: Option<String>,
    pub check_mode: Option<bool>,
    pub become_: Option<bool>,
    pub vars: Map<String, Value>,
    pub location: Location,
}

impl Task {
    /// What output shows: the name, else `module args`.
    pub fn display_name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        match self.args.get("_raw_params").and_then(Value::as_str) {
            Some(raw) => format!("{} {}", self.module, raw),
            None => self.module.clone(),
        }
    }
}

/// Keywords a task may carry besides its module.
const TASK_KEYWORDS: &[&str] = &[
    "name",
    "when",
    "register",
    "loop",
    "with_items",
    "loop_control",
    "tags",
    "ignore_errors",
    "changed_when",
    "failed_when",
    "notify",
    "listen",
    "delegate_to",
    "check_mode",
    "become",
    "args",
    "vars",
];

/// Ansible task keywords rookery does not implement: named in the error instead of being
/// mistaken for a module.
const UNSUPPORTED_TASK_KEYWORDS: &[&str] = &[
    "block",
    "rescue",
    "always",
    "include_tasks",
    "import_tasks",
    "include_role",
    "import_role",
    "with_dict",
    "with_list",
    "with_fileglob",
    "with_together",
    "with_nested",
    "until",
    "retries",
    "delay",
    "async",
    "poll",
    "run_once",
    "become_user",
    "environment",
    "throttle",
    "any_errors_fatal",
    "ignore_unreachable",
    "no_log",
    "diff",
    "local_action",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskKeywords {
    name: Option<String>,
    when: Option<Conditions>,
    register: Option<String>,
    #[serde(rename = "loop")]
    loop_: Option<Value>,
    with_items: Option<Value>,
    loop_control: Option<LoopControl>,
    tags: Option<StrList>,
    #[serde(default, deserialize_with = "flex_bool_opt")]
    ignore_errors: Option<bool>,
    changed_when: Option<Conditions>,
    failed_when: Option<Conditions>,
    notify: Option<StrList>,
    listen: Option<StrList>,
    delegate_to: Option<String>,
    #[serde(default, deserialize_with = "flex_bool_opt")]
    check_mode: Option<bool>,
    #[serde(default, rename = "become", deserialize_with = "flex_bool_opt")]
    become_: Option<bool>,
    args: Option<Map<String, Value>>,
    vars: Option<Map<String, Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoopControl {
    loop_var: Option<String>,
    label: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlay {
    name: Option<String>,
    hosts: StrList,
    #[serde(default, rename = "become", deserialize_with = "flex_bool_opt")]
    become_: Option<bool>,
    #[serde(default)]
    vars: Map<String, Value>,
    #[serde(default)]
    vars_files: StrList,
    serial: Option<SerialSpec>,
    #[serde(default, deserialize_with = "flex_bool_opt")]
    gather_facts: Option<bool>,
    #[serde(default, deserialize_with = "flex_bool_opt")]
    any_errors_fatal: Option<bool>,
    #[serde(default)]
    tags: StrList,
    #[serde(default, deserialize_with = "flex_bool_opt")]
    check_mode: Option<bool>,
    /// Checked to be lists here; each task is parsed from its node by `parse_task`.
    #[serde(default)]
    #[allow(dead_code)]
    tasks: Vec<serde::de::IgnoredAny>,
    #[serde(default)]
    #[allow(dead_code)]
    handlers: Vec<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImport {
    import_playbook: String,
    /// Accepted (Ansible allows a name on imports); plays carry their own names.
    #[allow(dead_code)]
    name: Option<String>,
}

/// A string or a list of strings.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(untagged)]
enum StrList {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl StrList {
    fn into_vec(self) -> Vec<String> {
        match self {
            StrList::None => vec![],
            StrList::One(s) => vec![s],
            StrList::Many(v) => v,
        }
    }
}

/// `when:` and friends: a bool, a string, a number, or a list of those.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Conditions {
    One(Scalar),
    Many(Vec<Scalar>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Scalar {
    fn into_expr(self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Str(s) => s,
        }
    }
}

impl Conditions {
    fn into_vec(self) -> Vec<String> {
        match self {
            Conditions::One(s) => vec![s.into_expr()],
            Conditions::Many(v) => v.into_iter().map(Scalar::into_expr).collect(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum SerialSpec {
    One(SerialItem),
    Many(Vec<SerialItem>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum SerialItem {
    Count(u64),
    Text(String),
}

/// Ansible accepts `yes`/`no`/`true`/`false` in any case for booleans; YAML 1.2 (the playbook schema)
/// reads `yes` as a string, so accept both spellings here.
fn flex_bool_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        B(bool),
        S(String),
    }
    match Option::<B>::deserialize(d)? {
        None => Ok(None),
        Some(B::B(b)) => Ok(Some(b)),
        Some(B::S(s)) => match parse_bool_word(&s) {
            Some(b) => Ok(Some(b)),
            None => Err(serde::de::Error::custom(format!(
                "expected a boolean (true/false/yes/no), found `{s}`"
            ))),
        },
    }
}

/// `yes`/`no`/`on`/`off`/`true`/`false` (any case).
pub fn parse_bool_word(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "y" => Some(true),
        "no" | "false" | "off" | "n" => Some(false),
        _ => None,
    }
}

/// Load a playbook file, expanding `import_playbook`, and check every task against `registry`.
pub fn load_playbook(path: &Path, registry: &Registry) -> Result<Playbook, LoadError> {
    let mut plays = Vec::new();
    let mut chain = HashSet::new();
    load_into(path, registry, &mut plays, &mut chain, None)?;
    Ok(Playbook {
        path: path.to_path_buf(),
        plays,
    })
}

/// Parse playbook text (for tests and `--syntax-check`-like uses); `path` labels errors and
/// its directory anchors relative paths.
pub fn parse_playbook(text: &str, path: &Path, registry: &Registry) -> Result<Playbook, LoadError> {
    let doc = Document::parse(text, path)?;
    let mut plays = Vec::new();
    let mut chain = HashSet::new();
    chain.insert(canonical(path));
    plays_from_doc(&doc, registry, &mut plays, &mut chain)?;
    Ok(Playbook {
        path: path.to_path_buf(),
        plays,
    })
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

fn load_into(
    path: &Path,
    registry: &Registry,
    plays: &mut Vec<Play>,
    chain: &mut HashSet<PathBuf>,
    from: Option<(Location, String)>,
) -> Result<(), LoadError> {
    let key = canonical(path);
    if chain.contains(&key) {
        let (location, target) = from.unwrap_or_else(|| {
            (
                Location {
                    file: std::sync::Arc::new(path.to_path_buf()),
                    line: 1,
                    column: 1,
                },
                path.display().to_string(),
            )
        });
        return Err(LoadError::ImportCycle { location, target });
    }
    let doc = Document::load(path)?;
    chain.insert(key.clone());
    plays_from_doc(&doc, registry, plays, chain)?;
    chain.remove(&key);
    Ok(())
}

fn plays_from_doc(
    doc: &Document,
    registry: &Registry,
    plays: &mut Vec<Play>,
    chain: &mut HashSet<PathBuf>,
) -> Result<(), LoadError> {
    let dir = doc
        .file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    let entries: &[Node] = match &doc.root.kind {
        NodeKind::Seq(s) => s,
        _ if doc.root.is_null() => &[],
        _ => {
            return Err(doc
                .error("", "a playbook is a list of plays (`- hosts: ...`)")
                .into());
        }
    };
    for (i, entry) in entries.iter().enumerate() {
        let path = format!("[{i}]");
        let is_import = entry.get("import_playbook").is_some();
        if is_import {
            let raw: RawImport = doc.typed(&path, entry)?;
            let target = dir.join(&raw.import_playbook);
            let location = doc.location(&key_path(&path, "import_playbook"));
            if !target.is_file() {
                return Err(doc
                    .error(
                        &key_path(&path, "import_playbook"),
                        format!("imported playbook `{}` does not exist", target.display()),
                    )
                    .into());
            }
            load_into(
                &target,
                registry,
                plays,
                chain,
                Some((location, raw.import_playbook)),
            )?;
            continue;
        }
        plays.push(parse_play(doc, &path, entry, &dir, registry)?);
    }
    Ok(())
}

fn parse_play(
    doc: &Document,
    path: &str,
    value: &Node,
    dir: &Path,
    registry: &Registry,
) -> Result<Play, YamlError> {
    if value.as_map().is_some() {
        for unsupported in [
            "roles",
            "pre_tasks",
            "post_tasks",
            "strategy",
            "remote_user",
        ] {
            if value.get(unsupported).is_some() {
                return Err(doc.error(
                    &key_path(path, unsupported),
                    format!("play keyword `{unsupported}` is not supported by rookery"),
                ));
            }
        }
    }
    let raw: RawPlay = doc.typed(path, value)?;
    let hosts = raw.hosts.into_vec().join(":");
    if hosts.trim().is_empty() {
        return Err(doc.error(&key_path(path, "hosts"), "`hosts` is empty"));
    }
    let serial = match raw.serial {
        None => vec![],
        Some(SerialSpec::One(i)) => vec![parse_serial(doc, path, i)?],
        Some(SerialSpec::Many(v)) => v
            .into_iter()
            .map(|i| parse_serial(doc, path, i))
            .collect::<Result<_, _>>()?,
    };
    let vars = raw.vars;
    let items = |key: &str| value.get(key).and_then(Node::as_seq).unwrap_or_default();
    let mut tasks = Vec::new();
    for (j, t) in items("tasks").iter().enumerate() {
        tasks.push(parse_task(
            doc,
            &format!("{path}.tasks[{j}]"),
            t,
            registry,
            false,
        )?);
    }
    let mut handlers = Vec::new();
    for (j, t) in items("handlers").iter().enumerate() {
        handlers.push(parse_task(
            doc,
            &format!("{path}.handlers[{j}]"),
            t,
            registry,
            true,
        )?);
    }
    // A notify that matches no handler would silently never fire (Ansible errors too).
    let known: HashSet<&str> = handlers
        .iter()
        .flat_map(|h| h.name.iter().chain(h.listen.iter()))
        .map(String::as_str)
        .collect();
    for (kind, list) in [("tasks", &tasks), ("handlers", &handlers)] {
        for (j, t) in list.iter().enumerate() {
            if let Some(n) = t.notify.iter().find(|n| !known.contains(n.as_str())) {
                return Err(doc.error(
                    &format!("{path}.{kind}[{j}].notify"),
                    format!("no handler named (or listening to) `{n}` in this play"),
                ));
            }
        }
    }
    let location = doc.location(path);
    Ok(Play {
        name: raw.name.unwrap_or_else(|| hosts.clone()),
        hosts,
        become_: raw.become_,
        vars,
        vars_files: raw.vars_files.into_vec(),
        serial,
        // Ansible gathers facts unless told not to; same default so shared playbooks agree.
        gather_facts: raw.gather_facts.unwrap_or(true),
        any_errors_fatal: raw.any_errors_fatal.unwrap_or(false),
        tags: raw.tags.into_vec(),
        check_mode: raw.check_mode,
        tasks,
        handlers,
        dir: dir.to_path_buf(),
        location,
    })
}

fn parse_serial(doc: &Document, path: &str, item: SerialItem) -> Result<Serial, YamlError> {
    let at = key_path(path, "serial");
    match item {
        SerialItem::Count(0) => Err(doc.error(&at, "serial must be at least 1")),
        SerialItem::Count(n) => Ok(Serial::Count(usize::try_from(n).unwrap_or(usize::MAX))),
        SerialItem::Text(s) => {
            let t = s.trim();
            if let Some(p) = t.strip_suffix('%') {
                match p.trim().parse::<f64>() {
                    Ok(v) if v > 0.0 && v <= 100.0 => Ok(Serial::Percent(v)),
                    _ => Err(doc.error(&at, format!("bad serial percentage `{s}` (1%..100%)"))),
                }
            } else {
                match t.parse::<usize>() {
                    Ok(n) if n > 0 => Ok(Serial::Count(n)),
                    _ => Err(doc.error(
                        &at,
                        format!("bad serial `{s}`: a count (2), a percentage (\"30%\") or a list"),
                    )),
                }
            }
        }
    }
}

fn parse_task(
    doc: &Document,
    path: &str,
    value: &Node,
    registry: &Registry,
    is_handler: bool,
) -> Result<Task, YamlError> {
    let Some(map) = value.as_map() else {
        return Err(doc.error(path, "a task is a mapping (`- name: ...` plus one module)"));
    };
    let mut keywords = Vec::new();
    let mut module: Option<(String, Node)> = None;
    for (k, v) in map {
        let key = k.key_text();
        let key = key.as_str();
        let at = key_path(path, key);
        if TASK_KEYWORDS.contains(&key) {
            keywords.push((k.clone(), v.clone()));
        } else if UNSUPPORTED_TASK_KEYWORDS.contains(&key) {
            return Err(doc.error(
                &at,
                format!("task keyword `{key}` is not supported by rookery"),
            ));
        } else if registry.get(key).is_some() {
            if let Some((first, _)) = &module {
                return Err(doc.error(
                    &at,
                    format!("a task runs exactly one module; found `{first}` and `{key}`"),
                ));
            }
            module = Some((key.to_string(), v.clone()));
        } else {
            let mut names = registry.names();
            names.sort_unstable();
            return Err(doc.error(
                &at,
                format!(
                    "unknown task keyword or module `{key}` (modules: {})",
                    names.join(", ")
                ),
            ));
        }
    }
    let kw: TaskKeywords = doc.typed(path, &value.with_pairs(keywords))?;
    let Some((module, raw_args)) = module else {
        return Err(doc.error(
            path,
            format!(
                "task {}has no module (one of: {})",
                kw.name
                    .as_ref()
                    .map(|n| format!("`{n}` "))
                    .unwrap_or_default(),
                registry.names().join(", ")
            ),
        ));
    };
    let args_path = key_path(path, &module);
    let mut args: Map<String, Value> = match raw_args.scalar_value() {
        _ if raw_args.as_map().is_some() => doc.typed(&args_path, &raw_args)?,
        Some(Value::Null) => Map::new(),
        Some(Value::String(s)) => {
            let mut m = Map::new();
            m.insert("_raw_params".into(), Value::String(s));
            m
        }
        _ => {
            return Err(doc.error(
                &args_path,
                format!(
                    "module arguments must be a mapping or a string, found {}",
                    raw_args.describe()
                ),
            ));
        }
    };
    if let Some(extra) = kw.args {
        for (k, v) in extra {
            args.entry(k).or_insert(v);
        }
    }
    let args = Value::Object(args);
    if let Some(m) = registry.get(&module) {
        // The task's name too: a playbook of many `k8s` tasks needs more than the key path.
        let task = kw
            .name
            .as_ref()
            .map(|n| format!("task `{n}`: "))
            .unwrap_or_default();
        m.check_args(&args)
            .map_err(|e| doc.error(&args_path, format!("{task}module `{module}`: {e}")))?;
    }
    if kw.loop_.is_some() && kw.with_items.is_some() {
        return Err(doc.error(path, "use either `loop` or `with_items`, not both"));
    }
    let loop_flatten = kw.with_items.is_some();
    let loop_ = kw.loop_.or(kw.with_items);
    if let Some(l) = &loop_
        && !(l.is_array() || l.is_string())
    {
        return Err(doc.error(
            &key_path(path, "loop"),
            "loop takes a list or a template that renders to a list",
        ));
    }
    if let Some(d) = &kw.delegate_to
        && !is_localhost(d)
    {
        return Err(doc.error(
            &key_path(path, "delegate_to"),
            format!("delegate_to supports only `localhost` (the control machine), not `{d}`"),
        ));
    }
    if !is_handler && kw.listen.is_some() {
        return Err(doc.error(&key_path(path, "listen"), "`listen` belongs to handlers"));
    }
    let vars = kw.vars.unwrap_or_default();
    let lc = kw.loop_control.unwrap_or_default();
    Ok(Task {
        name: kw.name,
        module,
        args,
        when: kw.when.map(Conditions::into_vec).unwrap_or_default(),
        register: kw.register,
        loop_,
        loop_flatten,
        loop_var: lc.loop_var.unwrap_or_else(|| "item".into()),
        loop_label: lc.label,
        tags: kw.tags.map(StrList::into_vec).unwrap_or_default(),
        ignore_errors: kw.ignore_errors.unwrap_or(false),
        changed_when: kw
            .changed_when
            .map(Conditions::into_vec)
            .unwrap_or_default(),
        failed_when: kw.failed_when.map(Conditions::into_vec).unwrap_or_default(),
        notify: kw.notify.map(StrList::into_vec).unwrap_or_default(),
        listen: kw.listen.map(StrList::into_vec).unwrap_or_default(),
        delegate_to: kw.delegate_to,
        check_mode: kw.check_mode,
        become_: kw.become_,
        vars,
        location: doc.location(path),
    })
}

/// Names that mean the control machine.
pub fn is_localhost(name: &str) -> bool {
    matches!(name, "localhost" | "127.0.0.1" | "::1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Playbook, LoadError> {
        parse_playbook(text, Path::new("pb.yaml"), &Registry::builtin())
    }

    #[test]
    fn parses_plays_and_tasks() {
        let pb = parse(
            r#"
- name: one
  hosts: [web, db]
  become: yes
  serial: [1, "50%"]
  vars: {a: 1}
  tasks:
    - name: run
      command: echo hi
      register: out
      when: a == 1
      loop: [1, 2]
      loop_control: {loop_var: n}
      tags: t1
      notify: restart
    - shell:
        cmd: ls
        chdir: /tmp
    - ansible.builtin.debug: {msg: hi}
  handlers:
    - name: restart
      listen: [x]
      debug: {msg: restarting}
"#,
        )
        .unwrap();
        let p = &pb.plays[0];
        assert_eq!(p.hosts, "web:db");
        assert_eq!(p.become_, Some(true));
        assert_eq!(p.serial, vec![Serial::Count(1), Serial::Percent(50.0)]);
        let t = &p.tasks[0];
        assert_eq!(t.module, "command");
        assert_eq!(t.args["_raw_params"], "echo hi");
        assert_eq!(t.loop_var, "n");
        assert_eq!(t.when, vec!["a == 1"]);
        assert_eq!(t.tags, vec!["t1"]);
        assert_eq!((t.location.line, t.location.column), (8, 7));
        assert_eq!(p.tasks[1].args["chdir"], "/tmp");
        assert_eq!(p.handlers[0].listen, vec!["x"]);
    }

    #[test]
    fn unknown_keys_point_at_the_key() {
        let e = parse(
            "- hosts: all\n  tasks:\n    - name: x\n      debug: {msg: hi}\n      whenn: true\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("pb.yaml:5:7:"), "{e}");
        assert!(e.contains("unknown task keyword or module `whenn`"), "{e}");
        let e = parse("- hosts: all\n  taks: []\n").unwrap_err().to_string();
        assert!(e.contains("pb.yaml:"), "{e}");
        assert!(e.contains("unknown field `taks`"), "{e}");
        let e = parse("- hosts: all\n  tasks:\n    - copy: {src: a, dest: /b, mod: 1}\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("pb.yaml:3:7:"), "{e}");
        assert!(e.contains("unknown field `mod`"), "{e}");
        let e = parse("- hosts: all\n  tasks:\n    - debug: {msg: a}\n      command: ls\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("exactly one module"), "{e}");
        let e = parse("- hosts: all\n  tasks:\n    - command: ls\n      notify: nobody\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("pb.yaml:4:7:") && e.contains("`nobody`"),
            "{e}"
        );
        let e = parse("- hosts: all\n  tasks:\n    - name: x\n      block: []\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`block` is not supported"), "{e}");
        let e = parse("- hosts: all\n  tasks:\n    - assert: {that: \"x | length > 0\"}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("filter `| length`"), "{e}");
    }

    #[test]
    fn import_playbook_and_cycles() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "- import_playbook: b.yaml\n- hosts: all\n  tasks: []\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("b.yaml"), "- hosts: b\n  tasks: []\n").unwrap();
        let pb = load_playbook(&dir.path().join("a.yaml"), &Registry::builtin()).unwrap();
        assert_eq!(pb.plays.len(), 2);
        assert_eq!(pb.plays[0].hosts, "b");
        std::fs::write(dir.path().join("c.yaml"), "- import_playbook: c.yaml\n").unwrap();
        let e = load_playbook(&dir.path().join("c.yaml"), &Registry::builtin()).unwrap_err();
        assert!(e.to_string().contains("cycle"), "{e}");
    }
}
