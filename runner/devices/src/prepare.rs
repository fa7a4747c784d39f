//! The prepare flow, one implementation for `rookery prepare` and the `prepare_devices`
//! playbook module. Per host: optional readiness checks → the runner's audit lines for every
//! device in the plan (before anything is sent; a line that cannot be written stops the host)
//! → the agent's `prepare`, its audit events relayed into the control log → the runner's
//! "after" lines → a typed result. The front ends differ only in how they probe, connect,
//! ask for consent and print.
//!
//! The agent is reached through [`AgentCalls`], one method wide, so this crate needs no
//! transport; `rookery-playbook` implements it for the SSH/local agent session.

use std::future::Future;

use serde::{Deserialize, Serialize};

use rookery_proto::{
    AuditAction, DeviceOutcome, ErrorCode, Event, PrepareAction, PrepareRequest, ProbeRequest,
    ReadinessCheck, ReadinessRequest, Request, Response,
};

use crate::audit::{AuditLog, AuditLogError, ControlAuditRecord};
use crate::plan::{HostPlan, PlannedAction, plan_host};
use crate::spec::Selection;

/// Talking to one host's agent.
pub trait AgentCalls: Sync {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Sends one request; `on_event` sees its progress and audit events as they arrive.
    /// `Response::Error` is an `Ok`: the transport worked, the operation did not.
    fn call(
        &self,
        req: Request,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> impl Future<Output = Result<Response, Self::Error>> + Send;
}

/// How a host's run ended, for the report and the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostStatus {
    Ok,
    /// The host answered, but something failed: the request, a wipe, the audit log, or the
    /// host's task itself crashed.
    Failed,
    /// No working agent on the host.
    Unreachable,
}

impl HostStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HostStatus::Ok => "ok",
            HostStatus::Failed => "failed",
            HostStatus::Unreachable => "unreachable",
        }
    }
}

/// What went wrong for a host (besides per-device outcomes, which carry their own messages).
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("{host}: no control audit log to record the wipe in; nothing was sent")]
    NoAuditLog { host: String },
    #[error("{host}: nothing was sent: the control audit log could not record the request")]
    AuditBefore {
        host: String,
        #[source]
        source: AuditLogError,
    },
    /// The agent did its steps, but relaying or closing them in the control log failed. The
    /// node log has every step; the run must not look successful.
    #[error("{host}: the control audit log is missing lines of this run (the node's log has them)")]
    AuditAfter {
        host: String,
        #[source]
        source: AuditLogError,
    },
    #[error("{host}: {op} failed on the node: {message} ({code:?})")]
    Agent {
        host: String,
        op: &'static str,
        code: ErrorCode,
        message: String,
    },
    #[error("{host}: the agent answered {op} with an unexpected response")]
    Unexpected { host: String, op: &'static str },
    #[error("the {op} request did not complete")]
    Call {
        op: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Bad or contradictory `rookery_devices` (a named device missing or ambiguous).
    #[error("{host}: {origin}: {message}")]
    Plan {
        host: String,
        origin: String,
        message: String,
    },
}

/// How to run one host.
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    pub run_id: String,
    /// `--wipe`, or a confirmation the operator typed.
    pub consent: bool,
    /// Ask the agent in check mode: exact verdicts, nothing written, no audit lines.
    pub check: bool,
    pub discard: bool,
    /// The node's audit log (default on the node: `/var/log/rookery/prepare.log`).
    pub node_audit_log: Option<String>,
    /// Readiness checks to run before preparing (reported, never fatal).
    pub readiness: Option<ReadinessRequest>,
}

/// One host's result.
#[derive(Debug)]
pub struct HostPrepared {
    pub status: HostStatus,
    pub errors: Vec<PrepareError>,
    pub readiness: Vec<ReadinessCheck>,
    pub devices: Vec<DeviceOutcome>,
}

impl HostPrepared {
    fn new() -> Self {
        HostPrepared {
            status: HostStatus::Ok,
            errors: Vec::new(),
            readiness: Vec::new(),
            devices: Vec::new(),
        }
    }

    fn fail(&mut self, e: PrepareError) {
        self.status = HostStatus::Failed;
        self.errors.push(e);
    }
}

fn call_error<E: std::error::Error + Send + Sync + 'static>(
    op: &'static str,
    e: E,
) -> PrepareError {
    PrepareError::Call {
        op,
        source: Box::new(e),
    }
}

/// Probes the host through its agent and plans it (what the playbook module does per host;
/// `rookery prepare` probes every host first and then calls [`plan_host`] itself).
pub async fn probe_plan<A: AgentCalls>(
    agent: &A,
    host: &str,
    selections: &[Selection],
    include_loop: bool,
    consent: bool,
) -> Result<HostPlan, PrepareError> {
    let facts = probe_facts(agent, host, include_loop).await?;
    Ok(plan_host(host, &facts, selections, include_loop, consent))
}

/// The host's facts, fresh from its agent (what [`probe_plan`] plans from).
pub async fn probe_facts<A: AgentCalls>(
    agent: &A,
    host: &str,
    include_loop: bool,
) -> Result<rookery_proto::HostFacts, PrepareError> {
    let req = Request::Probe(ProbeRequest {
        include_loop,
        only: vec![],
        io_timeout_secs: None,
    });
    match agent.call(req, &mut |_| {}).await {
        Ok(Response::Probe(facts)) => Ok(*facts),
        Ok(Response::Error(e)) => Err(PrepareError::Agent {
            host: host.to_string(),
            op: "probe",
            code: e.code,
            message: e.message,
        }),
        Ok(_) => Err(PrepareError::Unexpected {
            host: host.to_string(),
            op: "probe",
        }),
        Err(e) => Err(call_error("probe", e)),
    }
}

/// Runs `plan` on its host. Outside check mode `audit` must be given: nothing is sent to a
/// host whose request the control log could not record.
pub async fn run_host<A: AgentCalls>(
    agent: &A,
    plan: &HostPlan,
    opts: &PrepareOptions,
    audit: Option<&AuditLog>,
    on_progress: &mut (dyn FnMut(&str) + Send),
) -> HostPrepared {
    let host = plan.host.as_str();
    let mut out = HostPrepared::new();
    if let Some(r) = &opts.readiness {
        match agent.call(Request::Readiness(r.clone()), &mut |_| {}).await {
            Ok(Response::Readiness(r)) => out.readiness = r.checks,
            // Reported, not fatal: the devices can be prepared whatever the readiness says.
            Ok(Response::Error(e)) => out.errors.push(PrepareError::Agent {
                host: host.to_string(),
                op: "readiness",
                code: e.code,
                message: e.message,
            }),
            Ok(_) => out.errors.push(PrepareError::Unexpected {
                host: host.to_string(),
                op: "readiness",
            }),
            Err(e) => out.errors.push(call_error("readiness", e)),
        }
    }
    let devices = plan.requests(opts.consent);
    let audit = if opts.check {
        None
    } else {
        match audit {
            Some(a) => Some(a),
            None if devices.is_empty() => None,
            None => {
                out.fail(PrepareError::NoAuditLog {
                    host: host.to_string(),
                });
                return out;
            }
        }
    };
    // Every device in the plan gets its runner lines, blank or not: the consent sent with a
    // blank device is part of what this run asked for.
    if let Some(log) = audit {
        let mut lines: Vec<ControlAuditRecord> = Vec::new();
        for e in &plan.entries {
            let (action, result) = if e.action == PlannedAction::Refused {
                (
                    AuditAction::RefusedByPlan,
                    Some(format!("refused: {}", e.reason)),
                )
            } else {
                (AuditAction::PrepareRequest, None)
            };
            lines.push(ControlAuditRecord::runner(
                host,
                &opts.run_id,
                &e.identity,
                action,
                &e.signatures,
                &[],
                result,
            ));
        }
        for line in &lines {
            if let Err(source) = log.append(line) {
                out.fail(PrepareError::AuditBefore {
                    host: host.to_string(),
                    source,
                });
                return out;
            }
        }
    }
    if devices.is_empty() {
        return out;
    }
    let req = PrepareRequest {
        devices,
        check: opts.check,
        discard: opts.discard,
        audit_log: opts.node_audit_log.clone(),
        run_id: opts.run_id.clone(),
    };
    let sent: Vec<_> = req.devices.iter().map(|d| d.identity.clone()).collect();
    let mut relay_error: Option<AuditLogError> = None;
    let answer = {
        let relay_error = &mut relay_error;
        let mut on_event = |ev: Event| match ev {
            Event::Audit(rec) => {
                if let Some(log) = audit
                    && let Err(e) = log.append(&ControlAuditRecord::from_agent(host, *rec))
                    && relay_error.is_none()
                {
                    *relay_error = Some(e);
                }
            }
            Event::Progress { message } => on_progress(&message),
        };
        agent.call(Request::Prepare(req), &mut on_event).await
    };
    match answer {
        Ok(Response::Prepare(rep)) => out.devices = rep.devices,
        Ok(Response::Error(e)) => out.fail(PrepareError::Agent {
            host: host.to_string(),
            op: "prepare",
            code: e.code,
            message: e.message,
        }),
        Ok(_) => out.fail(PrepareError::Unexpected {
            host: host.to_string(),
            op: "prepare",
        }),
        Err(e) => out.fail(call_error("prepare", e)),
    }
    if let Some(log) = audit {
        let failure = out.errors.last().map(ToString::to_string);
        for identity in &sent {
            let o = out.devices.iter().find(|o| o.identity == *identity);
            let entry = plan.entries.iter().find(|e| e.identity == *identity);
            let result = match o {
                Some(o) => format!("{}: {}", o.action.as_str(), o.message),
                None => format!(
                    "no answer: {}",
                    failure
                        .clone()
                        .unwrap_or_else(|| "the agent did not report it".into())
                ),
            };
            let rec = ControlAuditRecord::runner(
                host,
                &opts.run_id,
                identity,
                AuditAction::PrepareRequest,
                o.map_or_else(
                    || entry.map(|e| e.signatures.as_slice()).unwrap_or_default(),
                    |o| o.signatures_before.as_slice(),
                ),
                o.map(|o| o.signatures_after.as_slice()).unwrap_or_default(),
                Some(result),
            );
            if let Err(e) = log.append(&rec)
                && relay_error.is_none()
            {
                relay_error = Some(e);
            }
        }
    }
    if let Some(source) = relay_error {
        out.fail(PrepareError::AuditAfter {
            host: host.to_string(),
            source,
        });
    }
    if out
        .devices
        .iter()
        .any(|d| d.action == PrepareAction::Failed)
    {
        out.status = HostStatus::Failed;
    }
    out
}
