//! The module interface and the registry of built-in modules.
//!
//! Every module follows query-before-act (jetporch's model): [`Module::validate`] turns the
//! templated arguments into an [`Action`]; [`Action::query`] looks at the current state
//! without side effects and says either "matched" (nothing to do) or what would change (and a
//! diff); only then, and only outside check mode, [`Action::apply`] makes that change. Check
//! mode and `--diff` therefore come for free, and "changed" is honest.
//!
//! A module runs either on the host, through its agent session, or on the control machine
//! ([`RunsOn::Controller`]: `debug`, `set_fact`, `assert`). Later modules (device
//! preparation, Kubernetes apply) register themselves the same way via [`Registry::register`].

mod assert;
mod command;
mod debug;
mod file;
mod files;
mod prepare_devices;
pub use prepare_devices::{PrepareDevicesModule, SessionCalls, StackDevices};
mod probe;
mod set_fact;
mod wait_for;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rookery_transport::{AgentSession, SessionError};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::template::Templar;

/// Where a module does its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunsOn {
    /// On the host, through its agent (or on the control machine with `delegate_to: localhost`).
    Host,
    /// Always on the control machine; never connects to the host.
    Controller,
}

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// Bad arguments (after templating).
    #[error("{0}")]
    Args(String),
    /// The agent request failed at the transport level.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The agent answered with an error or something unexpected.
    #[error("{0}")]
    Failed(String),
    /// A control-machine file (copy/template `src`) could not be read.
    #[error("cannot read `{}`", .path.display())]
    LocalFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The prepare flow (`prepare_devices`) failed for the host.
    #[error(transparent)]
    Prepare(#[from] rookery_devices::prepare::PrepareError),
    /// A template (the `template` module's file) failed to render.
    #[error("template `{}`", .path.display())]
    Template {
        path: std::path::PathBuf,
        #[source]
        source: crate::template::TemplateError,
    },
}

/// Before/after text of a changed file, for `--diff`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileDiff {
    pub path: String,
    /// Unified diff; or a note when one side is binary or too large.
    pub unified: String,
}

/// What a module reports for one host (and one loop item).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ModuleResult {
    pub changed: bool,
    pub failed: bool,
    pub skipped: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
    /// Module-specific data (`rc`, `stdout`, ...), registered with the result.
    #[serde(flatten)]
    pub data: Map<String, Value>,
    #[serde(skip)]
    pub diff: Option<FileDiff>,
    /// Facts to store on the host (`set_fact`, `probe`).
    #[serde(skip)]
    pub facts: Option<Map<String, Value>>,
}

impl ModuleResult {
    pub fn ok() -> Self {
        ModuleResult::default()
    }
    pub fn changed() -> Self {
        ModuleResult {
            changed: true,
            ..Default::default()
        }
    }
    pub fn with_msg(mut self, msg: impl Into<String>) -> Self {
        self.msg = Some(msg.into());
        self
    }
    pub fn with(mut self, key: &str, v: impl Into<Value>) -> Self {
        self.data.insert(key.to_string(), v.into());
        self
    }
    /// The value `register:` stores (Ansible's shape: `changed`, `failed`, `msg`, data...).
    pub fn registered(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The answer of [`Action::query`].
#[derive(Debug, Clone)]
pub enum Query {
    /// The host already is as asked (or the module only reads): report this result.
    Matched(ModuleResult),
    /// Something must change.
    NeedsChange(Change),
}

#[derive(Debug, Clone)]
pub struct Change {
    /// Human summary of what changes ("create", "content", "mode 0644 → 0600").
    pub changes: Vec<String>,
    pub diff: Option<FileDiff>,
    /// What check mode reports instead of applying (usually changed; `command` says skipped).
    pub check_result: ModuleResult,
}

impl Change {
    pub fn new(changes: Vec<String>, diff: Option<FileDiff>) -> Self {
        let msg = format!("would change: {}", changes.join(", "));
        Change {
            check_result: ModuleResult {
                changed: true,
                msg: Some(msg),
                diff: diff.clone(),
                ..Default::default()
            },
            changes,
            diff,
        }
    }
}

/// What a module may use while it runs on one host.
pub struct ModuleCtx<'a> {
    /// Inventory name of the host the task is for.
    pub host: &'a str,
    /// The agent that does the work: the host's, or the control machine's when delegated.
    /// None for controller modules.
    pub agent: Option<&'a AgentSession>,
    pub check_mode: bool,
    pub diff: bool,
    /// Every variable the task sees (rendered).
    pub vars: &'a Value,
    pub templar: &'a Templar,
    /// Directory of the playbook file the task is in.
    pub playbook_dir: &'a Path,
}

impl ModuleCtx<'_> {
    /// The agent, or an error saying this module needs one.
    pub fn agent(&self) -> Result<&AgentSession, ModuleError> {
        self.agent.ok_or_else(|| {
            ModuleError::Failed(format!("{}: no agent session for this module", self.host))
        })
    }
}

/// One module invocation with validated arguments.
#[async_trait::async_trait]
pub trait Action: Send + Sync {
    /// Look at the current state; no side effects.
    async fn query(&mut self, ctx: &ModuleCtx<'_>) -> Result<Query, ModuleError>;
    /// Make the change `query` found. Never called in check mode.
    async fn apply(
        &mut self,
        ctx: &ModuleCtx<'_>,
        change: Change,
    ) -> Result<ModuleResult, ModuleError>;
}

/// A module type: its name, where it runs, and argument validation.
pub trait Module: Send + Sync {
    fn name(&self) -> &'static str;
    fn runs_on(&self) -> RunsOn;
    /// Arguments that are not templates (expressions or variable names), left unrendered.
    fn raw_args(&self) -> &'static [&'static str] {
        &[]
    }
    /// Load-time check of the untemplated arguments (names and shapes), so typos fail before
    /// anything runs.
    fn check_args(&self, args: &Value) -> Result<(), String>;
    /// Check the templated arguments and make an action.
    fn validate(&self, args: &Value) -> Result<Box<dyn Action>, ModuleError>;
}

/// Modules by name.
#[derive(Clone)]
pub struct Registry {
    modules: BTreeMap<&'static str, Arc<dyn Module>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.modules.keys()).finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Registry {
    pub fn empty() -> Self {
        Registry {
            modules: BTreeMap::new(),
        }
    }

    /// The built-in modules.
    pub fn builtin() -> Self {
        let mut r = Self::empty();
        r.register(Arc::new(probe::ProbeModule));
        r.register(Arc::new(prepare_devices::PrepareDevicesModule::default()));
        r.register(Arc::new(command::CommandModule { shell: false }));
        r.register(Arc::new(command::CommandModule { shell: true }));
        r.register(Arc::new(files::CopyModule { template: false }));
        r.register(Arc::new(files::CopyModule { template: true }));
        r.register(Arc::new(file::FileModule));
        r.register(Arc::new(assert::AssertModule));
        r.register(Arc::new(debug::DebugModule));
        r.register(Arc::new(set_fact::SetFactModule));
        r.register(Arc::new(wait_for::WaitForModule));
        r
    }

    /// Add (or replace) a module.
    pub fn register(&mut self, m: Arc<dyn Module>) {
        self.modules.insert(m.name(), m);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Module>> {
        // Ansible's fully qualified names resolve to the same modules.
        let short = name.strip_prefix("ansible.builtin.").unwrap_or(name);
        self.modules.get(short)
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.modules.keys().copied().collect()
    }
}

/// Deserialize module arguments into `A` (which denies unknown fields); the error names the
/// argument.
pub fn parse_args<A: DeserializeOwned>(args: &Value) -> Result<A, String> {
    serde_path_to_error::deserialize::<_, A>(args).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." {
            inner
        } else {
            format!("argument `{path}`: {inner}")
        }
    })
}

/// A scalar argument written as a number or a string (templates render to strings).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Flex {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
}

impl Flex {
    pub fn text(&self) -> String {
        match self {
            Flex::Int(i) => i.to_string(),
            Flex::Float(f) => f.to_string(),
            Flex::Bool(b) => b.to_string(),
            Flex::Str(s) => s.clone(),
        }
    }
    pub fn as_u64(&self, what: &str) -> Result<u64, ModuleError> {
        match self {
            Flex::Int(i) => u64::try_from(*i)
                .map_err(|_| ModuleError::Args(format!("{what} must not be negative"))),
            other => other.text().trim().parse().map_err(|_| {
                ModuleError::Args(format!(
                    "{what} must be a whole number, found `{}`",
                    other.text()
                ))
            }),
        }
    }
    pub fn as_bool(&self, what: &str) -> Result<bool, ModuleError> {
        match self {
            Flex::Bool(b) => Ok(*b),
            other => crate::language::parse_bool_word(&other.text()).ok_or_else(|| {
                ModuleError::Args(format!(
                    "{what} must be a boolean, found `{}`",
                    other.text()
                ))
            }),
        }
    }
}

/// Parse a file mode: `"0644"`, `"644"`, `"0o644"`, or an integer whose digits are octal
/// (YAML reads an unquoted `0644` as the integer 644; Ansible users mean octal).
pub fn parse_mode(m: &Flex) -> Result<u32, ModuleError> {
    let text = m.text();
    let t = text.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    if digits.is_empty() || digits.len() > 5 || !digits.chars().all(|c| ('0'..='7').contains(&c)) {
        return Err(ModuleError::Args(format!(
            "mode `{t}` is not an octal mode like \"0644\" (symbolic modes are not supported)"
        )));
    }
    u32::from_str_radix(digits, 8).map_err(|_| ModuleError::Args(format!("bad mode `{t}`")))
}

/// An agent answer that is an error, or a response of the wrong kind, as a module error.
pub(crate) fn unexpected(op: &str, r: rookery_proto::Response) -> ModuleError {
    match r {
        rookery_proto::Response::Error(e) => {
            ModuleError::Failed(format!("{op}: {} ({:?})", e.message, e.code))
        }
        other => ModuleError::Failed(format!("{op}: unexpected agent answer {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message used to embed its source, so every chain printer showed the template
    /// error twice (and the runner needed a de-duplication heuristic).
    #[test]
    fn template_error_appears_once_in_the_chain() {
        let e = ModuleError::Template {
            path: "t.j2".into(),
            source: crate::template::TemplateError::Undefined {
                variable: "x".into(),
            },
        };
        let line = rookery_diagnostic::one_line(&e);
        assert_eq!(line, "template `t.j2`: undefined variable `x`");
    }
}
