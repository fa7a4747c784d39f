//! The control-machine audit log: one JSON line per destructive step, before and after it
//! happens — the runner's own "about to ask host X to prepare Y" and "host X reported Z",
//! and every audit event the agent streams while it works.
//!
//! Default location `$XDG_STATE_HOME/rookery/audit.jsonl` (else
//! `~/.local/state/rookery/audit.jsonl`); directory 0700, file 0600, append-only, one
//! fsync per line (the writer is [`rookery_audit::JsonLines`], shared with the node log), so
//! a crash of the runner never loses a line already reported.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use rookery_proto::{AuditAction, AuditRecord, DeviceIdentity, Signature};

pub use rookery_audit::{AuditFileError as AuditLogError, now_rfc3339};

/// Who wrote a control audit line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditSource {
    /// The runner's own lines (request sent, answer received, refused by the plan).
    Runner,
    /// A line relayed from the node's agent.
    Agent,
}

/// One line of the control audit log: the agent's record plus where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlAuditRecord {
    #[serde(flatten)]
    pub record: AuditRecord,
    pub host: String,
    pub source: AuditSource,
}

impl ControlAuditRecord {
    pub fn from_agent(host: &str, record: AuditRecord) -> Self {
        ControlAuditRecord {
            record,
            host: host.to_string(),
            source: AuditSource::Agent,
        }
    }

    /// A runner line, stamped now. `result: None` is the "before" line.
    pub fn runner(
        host: &str,
        run_id: &str,
        device: &DeviceIdentity,
        action: AuditAction,
        signatures_before: &[Signature],
        signatures_after: &[Signature],
        result: Option<String>,
    ) -> Self {
        ControlAuditRecord {
            record: AuditRecord {
                time: now_rfc3339(),
                run_id: run_id.to_string(),
                device: device.clone(),
                action,
                signatures_before: signatures_before.to_vec(),
                signatures_after: signatures_after.to_vec(),
                result,
            },
            host: host.to_string(),
            source: AuditSource::Runner,
        }
    }
}

/// `$XDG_STATE_HOME/rookery/audit.jsonl`, else `$HOME/.local/state/rookery/audit.jsonl`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
        return Some(PathBuf::from(x).join("rookery/audit.jsonl"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".local/state/rookery/audit.jsonl"))
}

/// A run id shared by the runner's and the agents' audit lines of one invocation.
pub fn new_run_id() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}-{}", d.as_millis(), std::process::id())
}

/// The control audit log.
#[derive(Debug, Clone)]
pub struct AuditLog {
    file: rookery_audit::JsonLines,
}

impl AuditLog {
    /// Opens (creating directory 0700 and file 0600) and checks it is writable now, so a
    /// run never starts wiping with an audit log it cannot write.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AuditLogError> {
        Ok(AuditLog {
            file: rookery_audit::JsonLines::open(path.as_ref())?,
        })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    pub fn append(&self, rec: &ControlAuditRecord) -> Result<(), AuditLogError> {
        self.file.append(rec)
    }

    /// Reads every record back (for tests and `--check` summaries).
    pub fn read_all(&self) -> Result<Vec<ControlAuditRecord>, AuditLogError> {
        self.file.read_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_lines_are_the_agent_record_flattened_plus_host_and_source() {
        let d = tempfile::tempdir().unwrap();
        let log = AuditLog::open(d.path().join("state/rookery/audit.jsonl")).unwrap();
        let id = DeviceIdentity {
            path: "/dev/sdb".into(),
            serial: Some("S1".into()),
            wwn: None,
            by_id: None,
            size_bytes: 10,
            diskseq: None,
        };
        let agent = AuditRecord {
            time: now_rfc3339(),
            run_id: "r".into(),
            device: id.clone(),
            action: AuditAction::ZeroHead,
            signatures_before: vec![],
            signatures_after: vec![],
            result: None,
        };
        log.append(&ControlAuditRecord::from_agent("node1", agent.clone()))
            .unwrap();
        log.append(&ControlAuditRecord::runner(
            "node1",
            "r",
            &id,
            AuditAction::PrepareRequest,
            &[],
            &[],
            Some("wiped".into()),
        ))
        .unwrap();
        let all = log.read_all().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].record, agent);
        assert_eq!(all[0].source, AuditSource::Agent);
        assert_eq!(all[1].source, AuditSource::Runner);
        // The line format is flat, as it always was.
        let text = std::fs::read_to_string(log.path()).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["action"], "zero-head");
        assert_eq!(first["host"], "node1");
        assert_eq!(first["source"], "agent");
        assert_eq!(first["device"]["serial"], "S1");
    }
}
