//! The node-side audit trail: every destructive step is recorded before and after it
//! happens, both as an [`Event::Audit`] for the runner's log and as one JSON line appended to
//! a log on the node (default [`DEFAULT_NODE_LOG`], mode 0600), written by the same
//! [`rookery_audit::JsonLines`] the runner's control log uses.
//!
//! The "before" line is written (and fsynced) *before* the step runs; if it cannot be
//! written the step does not run. That way the node log can never miss a write that
//! happened, even when the connection to the runner is gone.

use rookery_audit::{AuditFileError, JsonLines, now_rfc3339};
use rookery_proto::{AuditAction, AuditRecord, DeviceIdentity, Event, Signature};

pub const DEFAULT_NODE_LOG: &str = "/var/log/rookery/prepare.log";

/// Writes audit records for one prepare request.
pub struct Auditor<'a> {
    log: JsonLines,
    run_id: String,
    emit: &'a mut dyn FnMut(Event),
}

impl<'a> Auditor<'a> {
    pub fn new(path: Option<&str>, run_id: &str, emit: &'a mut dyn FnMut(Event)) -> Self {
        Auditor {
            log: JsonLines::at(path.filter(|p| !p.is_empty()).unwrap_or(DEFAULT_NODE_LOG)),
            run_id: run_id.to_string(),
            emit,
        }
    }

    pub fn progress(&mut self, message: String) {
        (self.emit)(Event::Progress { message });
    }

    /// Records one step. `result: None` is the "about to happen" line.
    pub fn record(
        &mut self,
        device: &DeviceIdentity,
        action: AuditAction,
        before: &[Signature],
        after: &[Signature],
        result: Option<String>,
    ) -> Result<(), AuditFileError> {
        let rec = AuditRecord {
            time: now_rfc3339(),
            run_id: self.run_id.clone(),
            device: device.clone(),
            action,
            signatures_before: before.to_vec(),
            signatures_after: after.to_vec(),
            result,
        };
        // Node log first: it is the record that survives a lost connection.
        let res = self.log.append(&rec);
        (self.emit)(Event::Audit(Box::new(rec)));
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

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
            diskseq: None,
        };
        a.record(&id, AuditAction::ZeroHead, &[], &[], None)
            .unwrap();
        a.record(&id, AuditAction::ZeroHead, &[], &[], Some("ok".into()))
            .unwrap();
        let text = fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains("\"action\":\"zero-head\""), "{text}");
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(events.len(), 2);
    }
}
