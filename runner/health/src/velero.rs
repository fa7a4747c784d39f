//! Velero facts the checks share: how often a Schedule runs, which Backups belong to it, and
//! which phases are failures (rook-velero-facts-2 §6, V:velero.io_backups.yaml).

use serde::Serialize;
use serde_json::Value;

use crate::snapshot::{SCHEDULE_LABEL, epoch, i64_at, name_of, str_at};

/// Backup phases that mean the backup did not (fully) happen.
pub const FAILED_PHASES: [&str; 3] = ["Failed", "PartiallyFailed", "FailedValidation"];

/// The longest gap between two runs of a robfig cron schedule, in seconds — the same
/// computation the stack's validation and the schedule alert use
/// ([`rookery_stack::timefmt::cron_period`]), so `doctor` and the alert agree on "late".
pub fn period_secs(schedule: &str) -> Option<i64> {
    rookery_stack::timefmt::cron_period(schedule)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .filter(|p| *p > 0)
}

/// A Backup in a line.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupBrief {
    pub name: String,
    pub phase: String,
    pub schedule: Option<String>,
    /// Seconds since it started (or was created).
    pub age_secs: Option<i64>,
    pub items_backed_up: Option<i64>,
    pub total_items: Option<i64>,
    pub errors: i64,
    pub warnings: i64,
    /// Seconds until Velero deletes it (negative: overdue).
    pub expires_in_secs: Option<i64>,
    /// Velero's words: `failureReason`, or the validation errors.
    pub reason: Option<String>,
}

pub fn brief(b: &Value, now: i64) -> BackupBrief {
    let started = str_at(b, "/status/startTimestamp")
        .or_else(|| str_at(b, "/metadata/creationTimestamp"))
        .and_then(epoch);
    let validation: Vec<&str> = b
        .pointer("/status/validationErrors")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let reason = str_at(b, "/status/failureReason")
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .or_else(|| (!validation.is_empty()).then(|| validation.join("; ")));
    BackupBrief {
        name: name_of(b).to_string(),
        phase: str_at(b, "/status/phase").unwrap_or("New").to_string(),
        schedule: str_at(
            b,
            &format!("/metadata/labels/{}", SCHEDULE_LABEL.replace('/', "~1")),
        )
        .map(str::to_string),
        age_secs: started.map(|t| now - t),
        items_backed_up: i64_at(b, "/status/progress/itemsBackedUp"),
        total_items: i64_at(b, "/status/progress/totalItems"),
        errors: i64_at(b, "/status/errors").unwrap_or(0),
        warnings: i64_at(b, "/status/warnings").unwrap_or(0),
        expires_in_secs: str_at(b, "/status/expiration")
            .and_then(epoch)
            .map(|t| t - now),
        reason,
    }
}

/// The newest Backup a Schedule created (by Velero's label), by start time.
pub fn last_backup_of<'a>(schedule: &str, backups: &'a [Value]) -> Option<&'a Value> {
    let label = format!("/metadata/labels/{}", SCHEDULE_LABEL.replace('/', "~1"));
    backups
        .iter()
        .filter(|b| str_at(b, &label) == Some(schedule))
        .max_by_key(|b| {
            str_at(b, "/status/startTimestamp")
                .or_else(|| str_at(b, "/metadata/creationTimestamp"))
                .and_then(epoch)
                .unwrap_or(0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn periods() {
        assert_eq!(period_secs("0 3 * * *"), Some(86_400));
        assert_eq!(period_secs("*/15 * * * *"), Some(900));
        assert_eq!(period_secs("0 */6 * * *"), Some(6 * 3600));
        assert_eq!(period_secs("0 1 * * 0"), Some(7 * 86_400));
        assert_eq!(period_secs("@every 1m"), Some(60));
        assert_eq!(period_secs("@daily"), Some(86_400));
        assert_eq!(period_secs("CRON_TZ=UTC 0 3 * * *"), Some(86_400));
        assert_eq!(period_secs("bad"), None);
    }

    #[test]
    fn last_backup_is_the_newest_of_its_schedule() {
        let b = |name: &str, sched: &str, t: &str| {
            json!({"metadata": {"name": name, "labels": {"velero.io/schedule-name": sched}},
                   "status": {"startTimestamp": t, "phase": "Completed"}})
        };
        let all = vec![
            b("n-1", "nightly", "2026-12-01T03:00:00Z"),
            b("n-2", "nightly", "2026-12-02T03:00:00Z"),
            b("h-1", "hourly", "2026-12-03T03:00:00Z"),
        ];
        assert_eq!(last_backup_of("nightly", &all).map(name_of), Some("n-2"));
        let brief = brief(&all[1], epoch("2026-12-02T04:00:00Z").unwrap_or(0));
        assert_eq!(brief.age_secs, Some(3600));
        assert_eq!(brief.schedule.as_deref(), Some("nightly"));
    }
}
