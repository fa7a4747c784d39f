//! The node-side audit trail: every destructive step is recorded before and after it
//! happens, both as an [`Event::Audit`] for the runner's log and as one JSON line appended to
//! a log on the node (default [`DEFAULT_NODE_LOG`], mode 0600).
//!
//! The "before" line is written (and fsynced) *before* the step runs; if it cannot be
//! written the step does not run. That way the node log can never miss a write that
//! happened, even when the connection to the runner is gone.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use rookery_proto::{AuditRecord, DeviceIdentity, Event, Signature};

pub const DEFAULT_NODE_LOG: &str = "/var/log/rookery/prepare.log";

/// Why an audit line could not be recorded (the destructive step is then skipped).
#[derive(Debug, thiserror::Error)]
#[error("cannot append to the node audit log {path}")]
pub struct AuditError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// RFC 3339 UTC timestamp with milliseconds, without a date crate.
pub fn now_rfc3339() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm), valid for all dates after 1970.
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

/// Writes audit records for one prepare request.
pub struct Auditor<'a> {
    path: PathBuf,
    run_id: String,
    emit: &'a mut dyn FnMut(Event),
}

impl<'a> Auditor<'a> {
    pub fn new(path: Option<&str>, run_id: &str, emit: &'a mut dyn FnMut(Event)) -> Self {
        Auditor {
            path: PathBuf::from(path.filter(|p| !p.is_empty()).unwrap_or(DEFAULT_NODE_LOG)),
            run_id: run_id.to_string(),
            emit,
        }
    }

    pub fn progress(&mut self, message: String) {
        (self.emit)(Event::Progress { message });
    }

    fn append(&self, line: &str) -> io::Result<()> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)?;
        f.write_all(line.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_data()
    }

    /// Records one step. `result: None` is the "about to happen" line.
    pub fn record(
        &mut self,
        device: &DeviceIdentity,
        action: &str,
        before: &[Signature],
        after: &[Signature],
        result: Option<String>,
    ) -> Result<(), AuditError> {
        let rec = AuditRecord {
            time: now_rfc3339(),
            run_id: self.run_id.clone(),
            device: device.clone(),
            action: action.to_string(),
            signatures_before: before.to_vec(),
            signatures_after: after.to_vec(),
            result,
        };
        let line = serde_json::to_string(&rec).map_err(|e| AuditError {
            path: self.path.clone(),
            source: io::Error::other(e),
        })?;
        // Node log first: it is the record that survives a lost connection.
        let res = self.append(&line).map_err(|source| AuditError {
            path: self.path.clone(),
            source,
        });
        (self.emit)(Event::Audit(Box::new(rec)));
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_shape() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
        assert!(t.as_str() > "2024-01-01");
    }

    #[test]
    fn node_log_is_private_and_appended() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/prepare.log");
        let mut events = Vec::new();
        let mut emit = |e: Event| events.push(e);
        let mut a = Auditor::new(p.to_str(), "run-1", &mut emit);
        let id = DeviceIdentity {
            path: "/dev/loop9".into(),
            serial: None,
            wwn: None,
            by_id: None,
            size_bytes: 1,
        };
        a.record(&id, "zero-head", &[], &[], None).unwrap();
        a.record(&id, "zero-head", &[], &[], Some("ok".into()))
            .unwrap();
        let text = fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 2);
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(events.len(), 2);
    }
}
