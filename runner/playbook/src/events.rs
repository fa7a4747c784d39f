//! What a run reports as it goes: one [`RunEvent`] per play/task start, per host result and
//! a final recap. The executor only emits events; a [`Reporter`] renders them (the CLI's
//! human output, or one JSON object per line with `-o json`, where the `event` field names
//! the variant).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::modules::FileDiff;

/// Outcome of one task on one host (per loop item, or aggregated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Changed,
    Skipped,
    Failed,
    /// Failed, but the task has `ignore_errors: true`.
    Ignored,
    Unreachable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Changed => "changed",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
            Status::Ignored => "ignored",
            Status::Unreachable => "unreachable",
        }
    }
}

/// Per-host counters, as in Ansible's PLAY RECAP (`ok` includes changed tasks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HostStats {
    pub ok: u32,
    pub changed: u32,
    pub unreachable: u32,
    pub failed: u32,
    pub skipped: u32,
    pub rescued: u32,
    pub ignored: u32,
}

impl HostStats {
    pub fn count(&mut self, s: Status) {
        match s {
            Status::Ok => self.ok += 1,
            Status::Changed => {
                self.ok += 1;
                self.changed += 1;
            }
            Status::Skipped => self.skipped += 1,
            Status::Failed => self.failed += 1,
            Status::Ignored => {
                self.ok += 1;
                self.ignored += 1;
            }
            Status::Unreachable => self.unreachable += 1,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HostResult {
    pub host: String,
    pub task: String,
    pub status: Status,
    /// Loop item label (per-item events); None for a plain task or a loop's aggregate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// This is the aggregate event of a loop (its items were reported before).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub loop_summary: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
    /// What changed or would change ("create", "mode 0644 -> 0600").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<FileDiff>,
    /// The registered result (module data).
    pub result: Value,
    /// Ran on the control machine (`delegate_to: localhost`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub delegated: bool,
    pub check_mode: bool,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    PlaybookStart {
        playbook: String,
        check: bool,
    },
    PlayStart {
        name: String,
        hosts: Vec<String>,
        location: String,
    },
    /// A `serial` batch begins (only for plays with `serial`).
    BatchStart {
        play: String,
        batch: usize,
        batches: usize,
        hosts: Vec<String>,
    },
    /// The play's pattern matched no (remaining) host.
    NoHosts {
        play: String,
    },
    TaskStart {
        name: String,
        module: String,
        location: String,
        handler: bool,
        hosts: usize,
    },
    HostResult(HostResult),
    TaskEnd {
        name: String,
        duration_ms: u64,
    },
    PlayEnd {
        name: String,
    },
    /// `any_errors_fatal`: these hosts failed or were unreachable, so nothing more runs.
    Aborted {
        play: String,
        hosts: Vec<String>,
    },
    Recap {
        hosts: BTreeMap<String, HostStats>,
        /// Why each unreachable host was unreachable.
        unreachable: BTreeMap<String, String>,
        duration_ms: u64,
    },
}

/// Receives events as they happen (from several hosts at once; keep it quick).
pub trait Reporter: Send + Sync {
    fn event(&self, e: &RunEvent);
}

/// Drops everything (tests, `--list-*`).
pub struct NullReporter;

impl Reporter for NullReporter {
    fn event(&self, _: &RunEvent) {}
}

/// Collects events in memory (tests).
#[derive(Default)]
pub struct CollectingReporter {
    pub events: std::sync::Mutex<Vec<RunEvent>>,
}

impl Reporter for CollectingReporter {
    fn event(&self, e: &RunEvent) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e.clone());
    }
}

impl CollectingReporter {
    /// Host results of the task named `task`.
    pub fn results_for(&self, task: &str) -> Vec<HostResult> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|e| match e {
                RunEvent::HostResult(r) if r.task == task => Some(r.clone()),
                _ => None,
            })
            .collect()
    }
}
