//! Probing many hosts at once: connect to each (up to `forks` at a time), ask its agent for
//! facts, and classify the outcome as ok / failed / unreachable. Shared by `rookery probe`
//! and by commands that need fresh facts (plan, stack). One host's failure never stops the
//! others; results come back in inventory order.

use std::time::{Duration, Instant};

use rookery_diagnostic::Diagnostic;
use rookery_inventory::Host;
use rookery_proto::{HostFacts, ProbeRequest, Request, Response};
use rookery_transport::{Connector, HostPanic, fan_out_with_progress};
use serde::Serialize;

/// What probing one host gave.
#[derive(Debug, Clone)]
pub enum ProbeOutcome {
    Ok(Box<HostFacts>),
    /// The agent ran but the probe failed (the message says why).
    Failed(String),
    /// No working agent: network, host key, authentication, become, upload, start-up.
    Unreachable(String),
}

#[derive(Debug, Clone)]
pub struct HostProbe {
    /// Inventory name.
    pub host: String,
    pub outcome: ProbeOutcome,
    /// What the user can do about a failure, when known.
    pub hint: Option<String>,
    /// The agent was uploaded during this run.
    pub agent_uploaded: bool,
    pub duration: Duration,
}

impl HostProbe {
    pub fn status(&self) -> &'static str {
        match self.outcome {
            ProbeOutcome::Ok(_) => "ok",
            ProbeOutcome::Failed(_) => "failed",
            ProbeOutcome::Unreachable(_) => "unreachable",
        }
    }

    pub fn facts(&self) -> Option<&HostFacts> {
        match &self.outcome {
            ProbeOutcome::Ok(f) => Some(f),
            _ => None,
        }
    }

    pub fn error(&self) -> Option<&str> {
        match &self.outcome {
            ProbeOutcome::Ok(_) => None,
            ProbeOutcome::Failed(e) | ProbeOutcome::Unreachable(e) => Some(e),
        }
    }
}

/// `err` and its `#[source]` chain on one line (messages never repeat their source, so no
/// de-duplication is needed).
pub use rookery_diagnostic::one_line as error_chain;

async fn probe_one(
    connector: &Connector,
    name: &str,
    spec: &rookery_inventory::ConnectionSpec,
    include_loop: bool,
) -> HostProbe {
    let start = Instant::now();
    let session = match connector.connect(name, spec).await {
        Ok(s) => s,
        Err(e) => {
            return HostProbe {
                host: name.to_string(),
                outcome: ProbeOutcome::Unreachable(error_chain(&e)),
                hint: e.hint().map(|h| h.to_string()),
                agent_uploaded: false,
                duration: start.elapsed(),
            };
        }
    };
    let uploaded = session.uploaded();
    let res = session
        .call(Request::Probe(ProbeRequest {
            include_loop,
            only: vec![],
            io_timeout_secs: None,
        }))
        .await;
    let (outcome, hint) = match res {
        Ok(Response::Probe(f)) => (ProbeOutcome::Ok(f), None),
        Ok(Response::Error(e)) => (
            ProbeOutcome::Failed(format!(
                "{name}: probe failed: {} ({:?})",
                e.message, e.code
            )),
            None,
        ),
        Ok(other) => (
            ProbeOutcome::Failed(format!(
                "{name}: the agent answered the probe with an unexpected {other:?}"
            )),
            None,
        ),
        Err(e) => (
            ProbeOutcome::Failed(error_chain(&e)),
            e.hint().map(|h| h.to_string()),
        ),
    };
    session.close().await;
    HostProbe {
        host: name.to_string(),
        outcome,
        hint,
        agent_uploaded: uploaded,
        duration: start.elapsed(),
    }
}

/// Probe `hosts`, at most `forks` at a time. `progress` sees each result as it completes;
/// the returned list is in the order of `hosts`. A host whose task panicked is a failed host.
pub async fn gather(
    connector: &Connector,
    hosts: &[&Host],
    forks: usize,
    include_loop: bool,
    progress: &mut (dyn FnMut(&HostProbe) + Send),
) -> Vec<HostProbe> {
    let panicked = |i: usize, p: &HostPanic| HostProbe {
        host: hosts[i].name.clone(),
        outcome: ProbeOutcome::Failed(format!("{}: {p}", hosts[i].name)),
        hint: None,
        agent_uploaded: false,
        duration: Duration::ZERO,
    };
    let outcomes = fan_out_with_progress(
        hosts.iter().copied(),
        forks,
        |h| probe_one(connector, &h.name, &h.connection, include_loop),
        |i, r| match r {
            Ok(hp) => progress(hp),
            Err(p) => progress(&panicked(i, p)),
        },
    )
    .await;
    outcomes
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|p| panicked(i, &p)))
        .collect()
}

/// Counts for the recap and the exit code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Recap {
    pub ok: usize,
    pub failed: usize,
    pub unreachable: usize,
}

impl Recap {
    pub fn of(results: &[HostProbe]) -> Recap {
        let mut r = Recap::default();
        for h in results {
            match h.outcome {
                ProbeOutcome::Ok(_) => r.ok += 1,
                ProbeOutcome::Failed(_) => r.failed += 1,
                ProbeOutcome::Unreachable(_) => r.unreachable += 1,
            }
        }
        r
    }
}

/// One host in `rookery probe -o json` (read back by `rookery plan --facts FILE`).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct HostProbeJson {
    pub host: String,
    pub status: String,
    pub facts: Option<HostFacts>,
    pub error: Option<String>,
    #[serde(default)]
    pub hint: Option<String>,
    pub agent_uploaded: bool,
    pub duration_ms: u64,
}

/// The whole `rookery probe -o json` document.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ProbeReportJson {
    pub hosts: Vec<HostProbeJson>,
    pub recap: RecapJson,
}

#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize)]
pub struct RecapJson {
    pub ok: usize,
    pub failed: usize,
    pub unreachable: usize,
}

impl ProbeReportJson {
    pub fn from_results(results: &[HostProbe]) -> Self {
        let r = Recap::of(results);
        ProbeReportJson {
            hosts: results
                .iter()
                .map(|h| HostProbeJson {
                    host: h.host.clone(),
                    status: h.status().to_string(),
                    facts: h.facts().cloned(),
                    error: h.error().map(str::to_string),
                    hint: h.hint.clone(),
                    agent_uploaded: h.agent_uploaded,
                    duration_ms: u64::try_from(h.duration.as_millis()).unwrap_or(u64::MAX),
                })
                .collect(),
            recap: RecapJson {
                ok: r.ok,
                failed: r.failed,
                unreachable: r.unreachable,
            },
        }
    }
}
