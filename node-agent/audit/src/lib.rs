//! The one writer of audit logs: an append-only JSON-lines file, one `fsync` per line, the
//! file created 0600 in a directory created 0700. The agent's node log and the runner's
//! control log both use it, so a line is either on disk in full or reported as an error, and
//! both logs carry the same timestamp format.
//!
//! It lives in a crate of its own because both the agent (which must stay small and never
//! pulls in the runner's crates) and the runner's device crate need it, and the protocol
//! crate is kept free of I/O.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why an audit line could not be written (or read back).
#[derive(Debug, thiserror::Error)]
#[error("cannot append to the audit log {}", .path.display())]
pub struct AuditFileError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// An append-only JSON-lines file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonLines {
    path: PathBuf,
}

impl JsonLines {
    /// Names the file without touching it; the first [`JsonLines::append`] creates it.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        JsonLines { path: path.into() }
    }

    /// Creates the file (and its directory) now and checks it is writable, so a caller can
    /// refuse to start destructive work with a log it could not write.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, AuditFileError> {
        let log = JsonLines::at(path);
        log.file().map_err(|source| log.error(source))?;
        Ok(log)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, source: io::Error) -> AuditFileError {
        AuditFileError {
            path: self.path.clone(),
            source,
        }
    }

    fn file(&self) -> io::Result<fs::File> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
    }

    /// Appends `record` as one line and syncs it to disk before returning.
    pub fn append(&self, record: &impl Serialize) -> Result<(), AuditFileError> {
        let mut line = serde_json::to_vec(record).map_err(|e| self.error(io::Error::other(e)))?;
        line.push(b'\n');
        let mut f = self.file().map_err(|e| self.error(e))?;
        // One write call per line: with O_APPEND, concurrent writers never interleave a line.
        f.write_all(&line).map_err(|e| self.error(e))?;
        f.sync_data().map_err(|e| self.error(e))
    }

    /// Every record in the file (blank lines skipped).
    pub fn read_all<T: DeserializeOwned>(&self) -> Result<Vec<T>, AuditFileError> {
        let text = fs::read_to_string(&self.path).map_err(|e| self.error(e))?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| self.error(io::Error::other(e))))
            .collect()
    }
}

/// Now as RFC 3339 UTC with milliseconds (`2026-12-04T09:15:02.123Z`).
pub fn now_rfc3339() -> String {
    rfc3339(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

/// `since_epoch` as RFC 3339 UTC with milliseconds, without a date crate.
pub fn rfc3339(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm), valid for every date after 1970.
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
        since_epoch.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn known_dates() {
        assert_eq!(rfc3339(Duration::ZERO), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day in a century leap year) 12:34:56.789
        assert_eq!(
            rfc3339(Duration::from_millis(951_827_696_789)),
            "2000-02-29T12:34:56.789Z"
        );
        assert_eq!(
            rfc3339(Duration::from_secs(4_102_444_799)),
            "2099-12-31T23:59:59.000Z"
        );
        assert!(now_rfc3339().as_str() > "2024-01-01");
    }

    #[test]
    fn private_append_only_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let log = JsonLines::at(dir.path().join("state/rookery/audit.jsonl"));
        assert!(!log.path().exists(), "naming a log does not create it");
        log.append(&serde_json::json!({"n": 1})).unwrap();
        log.append(&serde_json::json!({"n": 2})).unwrap();
        let all: Vec<serde_json::Value> = log.read_all().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1]["n"], 2);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(log.path()), 0o600);
        assert_eq!(mode(log.path().parent().unwrap()), 0o700);
    }

    #[test]
    fn open_reports_an_unwritable_place() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        fs::write(&file, "x").unwrap();
        let err = JsonLines::open(file.join("audit.jsonl")).unwrap_err();
        assert!(err.to_string().contains("plain-file"), "{err}");
    }
}
