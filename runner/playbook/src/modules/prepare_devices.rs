//! `prepare_devices`: make the host's OSD devices raw for Rook (issue 4), the playbook form
//! of `rookery prepare`. Same selection (`rookery_devices`), same consent and refusal rules,
//! same agent-side wipe with its audit trail.
//!
//! ```yaml
//! - prepare_devices:
//!     devices: "{{ rookery_devices }}"   # default: the host's rookery_devices
//!     stack: stacks/lab/stack.yaml        # or: the devices the stack puts on this host
//!     wipe: true                          # consent for entries with `wipe: true` (= --wipe)
//!     include_loop: false
//!     discard: false
//!     audit_log: ~/.local/state/rookery/audit.jsonl   # control machine (default)
//!     node_audit_log: /var/log/rookery/prepare.log   # on the node (default)
//! ```
//!
//! Query (no side effects): probe, build the plan, ask the agent in check mode. All devices
//! ok → ok. Any device refused, still needing consent, or a named device missing → failed
//! (a play must not continue as if the disks were ready). Otherwise "changed" with one line
//! per device to wipe, and with `--diff` the signatures before → after. Apply: the agent
//! wipes and verifies; every destructive step goes to the audit logs.

use rookery_proto::{DeviceOutcome, Event, PrepareAction, Request, Response};
use rookery_transport::{AgentSession, SessionError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Action, Change, FileDiff, Flex, Module, ModuleCtx, ModuleError, ModuleResult, Query, RunsOn,
    parse_args,
};

use rookery_devices as devices;

use devices::audit::{AuditLog, default_path, new_run_id};
use devices::plan::plan_host;
use devices::plan::{HostPlan, PlannedAction};
use devices::prepare::{
    AgentCalls, HostStatus, PrepareError, PrepareOptions, probe_facts, run_host,
};
use devices::spec::{Selection, VAR, parse_host_specs};

/// Which devices a stack file puts on a host (`prepare_devices: {stack: FILE}`). The runner
/// fills it with the matcher `rookery plan` uses, so this crate needs no stack model.
pub trait StackDevices: Send + Sync {
    /// The host's OSD devices in the stack at `stack`, given its fresh facts.
    fn selections(
        &self,
        stack: &std::path::Path,
        host: &str,
        facts: &rookery_proto::HostFacts,
    ) -> Result<Vec<Selection>, String>;
}

/// The agent session as the prepare flow's [`AgentCalls`] (`rookery prepare` uses it too).
pub struct SessionCalls<'a>(pub &'a AgentSession);

impl AgentCalls for SessionCalls<'_> {
    type Error = SessionError;

    fn call(
        &self,
        req: Request,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> impl std::future::Future<Output = Result<Response, SessionError>> + Send {
        self.0.call_with_events(req, on_event)
    }
}

/// A lost connection stays a session error, so the executor reports the host unreachable.
fn module_error(e: PrepareError) -> ModuleError {
    match e {
        PrepareError::Call { source, op } => match source.downcast::<SessionError>() {
            Ok(s) => ModuleError::Session(*s),
            Err(source) => ModuleError::Prepare(PrepareError::Call { op, source }),
        },
        other => ModuleError::Prepare(other),
    }
}

#[derive(Default)]
pub struct PrepareDevicesModule {
    stack_devices: Option<std::sync::Arc<dyn StackDevices>>,
}

impl PrepareDevicesModule {
    /// The module with `stack:` support.
    pub fn with_stack_devices(s: std::sync::Arc<dyn StackDevices>) -> Self {
        PrepareDevicesModule {
            stack_devices: Some(s),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default)]
    devices: Option<Value>,
    stack: Option<String>,
    wipe: Option<Flex>,
    include_loop: Option<Flex>,
    discard: Option<Flex>,
    audit_log: Option<String>,
    node_audit_log: Option<String>,
}

impl Module for PrepareDevicesModule {
    fn name(&self) -> &'static str {
        "prepare_devices"
    }
    fn runs_on(&self) -> RunsOn {
        RunsOn::Host
    }
    fn check_args(&self, args: &Value) -> Result<(), String> {
        parse_args::<Args>(args).map(|_| ())
    }
    fn validate(&self, args: &Value) -> Result<Box<dyn Action>, ModuleError> {
        let a: Args = parse_args(args).map_err(ModuleError::Args)?;
        let flag = |f: &Option<Flex>, what: &str| -> Result<bool, ModuleError> {
            Ok(f.as_ref()
                .map(|f| f.as_bool(what))
                .transpose()?
                .unwrap_or(false))
        };
        let stack = match a.stack.filter(|s| !s.trim().is_empty()) {
            None => None,
            Some(_) if a.devices.is_some() => {
                return Err(ModuleError::Args(
                    "give either `devices` or `stack`, not both".into(),
                ));
            }
            Some(path) => match &self.stack_devices {
                Some(s) => Some((std::path::PathBuf::from(path), s.clone())),
                None => {
                    return Err(ModuleError::Args(
                        "`stack` needs the rookery runner (it reads the stack file)".into(),
                    ));
                }
            },
        };
        Ok(Box::new(PrepareDevicesAction {
            stack,
            wipe: flag(&a.wipe, "wipe")?,
            include_loop: flag(&a.include_loop, "include_loop")?,
            discard: flag(&a.discard, "discard")?,
            devices: a.devices,
            audit_log: a.audit_log,
            node_audit_log: a.node_audit_log,
            planned: None,
        }))
    }
}

struct PrepareDevicesAction {
    devices: Option<Value>,
    stack: Option<(std::path::PathBuf, std::sync::Arc<dyn StackDevices>)>,
    wipe: bool,
    include_loop: bool,
    discard: bool,
    audit_log: Option<String>,
    node_audit_log: Option<String>,
    /// The plan query showed (and checked on the node), run for real by apply: the consent
    /// is bound to what query reported.
    planned: Option<(HostPlan, PrepareOptions)>,
}

fn line(o: &DeviceOutcome) -> String {
    format!("{}: {}", o.action.as_str(), o.message)
}

fn sig_text(o: &[rookery_proto::Signature]) -> String {
    if o.is_empty() {
        return "(no signatures)\n".into();
    }
    o.iter()
        .map(|s| format!("{} at {}\n", s.kind.blkid_name(), s.offset))
        .collect()
}

#[async_trait::async_trait]
impl Action for PrepareDevicesAction {
    async fn query(&mut self, ctx: &ModuleCtx<'_>) -> Result<Query, ModuleError> {
        let agent = SessionCalls(ctx.agent()?);
        let facts = probe_facts(&agent, ctx.host, self.include_loop)
            .await
            .map_err(module_error)?;
        let selections = match &self.stack {
            Some((path, source)) => {
                let path = if path.is_absolute() {
                    path.clone()
                } else {
                    ctx.playbook_dir.join(path)
                };
                source
                    .selections(&path, ctx.host, &facts)
                    .map_err(ModuleError::Failed)?
            }
            None => {
                let spec_value = self.devices.clone().or_else(|| ctx.vars.get(VAR).cloned());
                parse_host_specs(ctx.host, spec_value.as_ref())
                    .map_err(|e| ModuleError::Args(e.to_string()))?
            }
        };
        let plan = plan_host(ctx.host, &facts, &selections, self.include_loop, self.wipe);
        if let Some(p) = plan.problems.first() {
            return Err(ModuleError::Prepare(PrepareError::Plan {
                host: ctx.host.to_string(),
                origin: p.origin.clone(),
                message: p.message.clone(),
            }));
        }
        let refused: Vec<String> = plan
            .entries
            .iter()
            .filter(|e| e.action == PlannedAction::Refused)
            .map(|e| format!("{}: refused, {}", e.path, e.reason))
            .collect();
        let mut opts = PrepareOptions {
            run_id: new_run_id(),
            consent: self.wipe,
            check: true,
            discard: self.discard,
            node_audit_log: self.node_audit_log.clone(),
            readiness: None,
        };
        let mut checked = run_host(&agent, &plan, &opts, None, &mut |_| {}).await;
        if !checked.errors.is_empty() {
            return Err(module_error(checked.errors.remove(0)));
        }
        let rep_devices = checked.devices;
        let mut problems = refused;
        problems.extend(
            rep_devices
                .iter()
                .filter(|o| {
                    matches!(
                        o.action,
                        PrepareAction::Refused
                            | PrepareAction::NeedsConsent
                            | PrepareAction::Failed
                    )
                })
                .map(line),
        );
        let devices_json = serde_json::to_value(&rep_devices).unwrap_or(Value::Null);
        if !problems.is_empty() {
            let res = ModuleResult {
                failed: true,
                msg: Some(problems.join("; ")),
                ..Default::default()
            }
            .with("devices", devices_json);
            return Ok(Query::Matched(res));
        }
        let to_wipe: Vec<&DeviceOutcome> = rep_devices
            .iter()
            .filter(|o| o.action == PrepareAction::WouldWipe)
            .collect();
        if to_wipe.is_empty() {
            return Ok(Query::Matched(
                ModuleResult::ok()
                    .with_msg(format!("{} device(s) already clean", rep_devices.len()))
                    .with("devices", devices_json),
            ));
        }
        let changes: Vec<String> = to_wipe
            .iter()
            .map(|o| {
                format!(
                    "wipe {}",
                    o.resolved_path.as_deref().unwrap_or(&o.identity.path)
                )
            })
            .collect();
        let diff = ctx.diff.then(|| FileDiff {
            path: to_wipe
                .iter()
                .map(|o| o.identity.path.clone())
                .collect::<Vec<_>>()
                .join(", "),
            unified: to_wipe
                .iter()
                .map(|o| {
                    format!(
                        "--- {} (before)\n{}+++ {} (after)\n(no signatures)\n",
                        o.identity.path,
                        sig_text(&o.signatures_before),
                        o.identity.path
                    )
                })
                .collect(),
        });
        let mut change = Change::new(changes, diff);
        change.check_result = change.check_result.with("devices", devices_json);
        opts.check = false;
        self.planned = Some((plan, opts));
        Ok(Query::NeedsChange(change))
    }

    async fn apply(
        &mut self,
        ctx: &ModuleCtx<'_>,
        change: Change,
    ) -> Result<ModuleResult, ModuleError> {
        let agent = SessionCalls(ctx.agent()?);
        let (plan, opts) = self
            .planned
            .take()
            .ok_or_else(|| ModuleError::Failed("prepare_devices: apply without query".into()))?;
        let path = self
            .audit_log
            .as_ref()
            .map(std::path::PathBuf::from)
            .or_else(default_path)
            .ok_or_else(|| {
                ModuleError::Failed("no HOME for the audit log; set audit_log".into())
            })?;
        // Never wipe what cannot be recorded.
        let log =
            AuditLog::open(&path).map_err(|e| ModuleError::Failed(format!("{e}: {}", e.source)))?;
        let mut done = run_host(&agent, &plan, &opts, Some(&log), &mut |_| {}).await;
        // No answer, or steps the control log could not record: the task fails with the
        // error and its causes (the node log has every step that ran).
        if !done.errors.is_empty() {
            return Err(module_error(done.errors.remove(0)));
        }
        let failed: Vec<String> = done
            .devices
            .iter()
            .filter(|o| !matches!(o.action, PrepareAction::Ok | PrepareAction::Wiped))
            .map(line)
            .collect();
        let wiped = done
            .devices
            .iter()
            .filter(|o| o.action == PrepareAction::Wiped)
            .count();
        Ok(ModuleResult {
            changed: wiped > 0,
            failed: !failed.is_empty() || done.status != HostStatus::Ok,
            msg: Some(if failed.is_empty() {
                format!("wiped {wiped} device(s): {}", change.changes.join(", "))
            } else {
                failed.join("; ")
            }),
            diff: change.diff,
            ..Default::default()
        }
        .with(
            "devices",
            serde_json::to_value(&done.devices).unwrap_or(Value::Null),
        )
        .with("audit_log", json!(log.path().display().to_string())))
    }
}
