//! The control-machine audit log: one JSON line per destructive step, before and after it
//! happens — the runner's own "about to ask host X to wipe Y" and "host X reported Z", and
//! every audit event the agent streams while it works.
//!
//! Default location `$XDG_STATE_HOME/rookery/audit.jsonl` (else
//! `~/.local/state/rookery/audit.jsonl`); directory 0700, file 0600, append-only, one
//! fsync per line so a crash of the runner never loses a line already reported.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use rookery_proto::{AuditRecord, DeviceIdentity, Signature};

/// One line of the control audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlAuditRecord {
    pub time: String,
    pub run_id: String,
    pub host: String,
    pub device: DeviceIdentity,
    pub action: String,
    #[serde(default)]
    pub signatures_before: Vec<Signature>,
    #[serde(default)]
    pub signatures_after: Vec<Signature>,
    /// `None` on the "before" line.
    #[serde(default)]
    pub result: Option<String>,
    /// `runner` for the runner's own lines, `agent` for lines relayed from the node.
    pub source: String,
}

impl ControlAuditRecord {
    pub fn from_agent(host: &str, rec: AuditRecord) -> Self {
        ControlAuditRecord {
            time: rec.time,
            run_id: rec.run_id,
            host: host.to_string(),
            device: rec.device,
            action: rec.action,
            signatures_before: rec.signatures_before,
            signatures_after: rec.signatures_after,
            result: rec.result,
            source: "agent".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot append to the audit log {path}")]
pub struct AuditLogError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
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

/// RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// A run id shared by the runner's and the agents' audit lines of one invocation.
pub fn new_run_id() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}-{}", d.as_millis(), std::process::id())
}

/// An append-only JSON-lines file.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    /// Opens (creating directory 0700 and file 0600) and checks it is writable now, so a
    /// run never starts wiping with an audit log it cannot write.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AuditLogError> {
        let path = path.as_ref().to_path_buf();
        let err = |source| AuditLogError {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(err)?;
        }
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(err)?;
        Ok(AuditLog { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&self, rec: &ControlAuditRecord) -> Result<(), AuditLogError> {
        let err = |source| AuditLogError {
            path: self.path.clone(),
            source,
        };
        let line = serde_json::to_string(rec).map_err(|e| err(io::Error::other(e)))?;
        let mut f = OpenOptions::new()
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(err)?;
        f.write_all(format!("{line}\n").as_bytes()).map_err(err)?;
        f.sync_data().map_err(err)
    }

    /// Reads every record back (for tests and `--check` summaries).
    pub fn read_all(&self) -> Result<Vec<ControlAuditRecord>, AuditLogError> {
        let text = fs::read_to_string(&self.path).map_err(|source| AuditLogError {
            path: self.path.clone(),
            source,
        })?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).map_err(|e| AuditLogError {
                    path: self.path.clone(),
                    source: io::Error::other(e),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn append_and_read_back() {
        // std only (no tempfile): this crate is also compiled inside `rookery` for now.
        let d = std::env::temp_dir().join(format!("rookery-audit-test-{}", new_run_id()));
        let log = AuditLog::open(d.join("state/rookery/audit.jsonl")).unwrap();
        let id = DeviceIdentity {
            path: "/dev/sdb".into(),
            serial: Some("S1".into()),
            wwn: None,
            by_id: None,
            size_bytes: 10,
        };
        let agent = AuditRecord {
            time: now_rfc3339(),
            run_id: "r".into(),
            device: id.clone(),
            action: "zero-head".into(),
            signatures_before: vec![],
            signatures_after: vec![],
            result: None,
        };
        log.append(&ControlAuditRecord::from_agent("node1", agent))
            .unwrap();
        let all = log.read_all().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].host, "node1");
        assert_eq!(all[0].source, "agent");
        let mode = fs::metadata(log.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(log.path().parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        fs::remove_dir_all(&d).unwrap();
    }
}
