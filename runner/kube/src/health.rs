//! Is an object ready? Pure functions over the live object (JSON), one per readiness rule.
//! Every rule is generation-aware and none says "ready" for an object whose controller has
//! not written a status yet (apply-anchors §2.3, §9.1). `status` and `doctor` use the same
//! functions.

use rookery_stack::readiness::{AcceptedWarning, Readiness};
use serde_json::Value;

/// The verdict on one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ready {
        /// Worth showing, e.g. an accepted HEALTH_WARN and why.
        note: Option<String>,
    },
    Progressing {
        reason: String,
        /// The controller has not written a status (or not for this generation) — the engine
        /// then checks whether that controller runs at all.
        no_status: bool,
    },
    /// Failing, but controllers retry: fail only if it lasts `grace_secs`.
    Failing { reason: String, grace_secs: u64 },
    /// Terminal: fail now, with the controller's own words.
    Failed { reason: String },
}

fn progressing(reason: impl Into<String>) -> Health {
    Health::Progressing {
        reason: reason.into(),
        no_status: false,
    }
}

fn no_status(reason: impl Into<String>) -> Health {
    Health::Progressing {
        reason: reason.into(),
        no_status: true,
    }
}

fn i64_at(v: &Value, path: &[&str]) -> Option<i64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_i64()
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// The condition of `type_` in `status.conditions`.
pub fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

fn condition_true(obj: &Value, type_: &str) -> bool {
    condition(obj, type_)
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some("True")
}

/// `metadata.generation` vs `status.observedGeneration`: None when current.
fn generation_lag(obj: &Value, who: &str) -> Option<Health> {
    let generation = i64_at(obj, &["metadata", "generation"])?;
    match i64_at(obj, &["status", "observedGeneration"]) {
        Some(seen) if seen >= generation => None,
        Some(seen) => Some(no_status(format!(
            "{who} has not acted on generation {generation} yet (observed {seen})"
        ))),
        None => Some(no_status(format!(
            "{who} has not reported on generation {generation} yet"
        ))),
    }
}

/// Assess `obj` (the live object) against its rule.
pub fn assess(rule: &Readiness, obj: &Value) -> Health {
    match rule {
        Readiness::Exists => Health::Ready { note: None },
        Readiness::CrdEstablished => crd(obj),
        Readiness::DeploymentAvailable => deployment(obj),
        Readiness::DaemonSetAvailable => daemonset(obj),
        Readiness::CephClusterReady { accepted_warnings } => ceph_cluster(obj, accepted_warnings),
        // The MDS Deployments are checked by the engine (other objects).
        Readiness::CephFilesystemReady { .. } => ceph_filesystem(obj),
        Readiness::BackupStorageLocationAvailable => backup_storage_location(obj),
        Readiness::ScheduleEnabled => schedule(obj),
    }
}

fn crd(obj: &Value) -> Health {
    if let Some(c) = condition(obj, "NamesAccepted")
        && c.get("status").and_then(Value::as_str) == Some("False")
    {
        return Health::Failed {
            reason: format!(
                "names not accepted: {}",
                c.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("(no message)")
            ),
        };
    }
    match (
        condition_true(obj, "Established"),
        condition_true(obj, "NamesAccepted"),
    ) {
        (true, true) => Health::Ready { note: None },
        (false, _) => progressing("not Established yet"),
        (true, false) => progressing("names not accepted yet"),
    }
}

fn deployment(obj: &Value) -> Health {
    if let Some(c) = condition(obj, "Progressing")
        && c.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded")
    {
        return Health::Failed {
            reason: format!(
                "rollout stuck (ProgressDeadlineExceeded): {}",
                c.get("message").and_then(Value::as_str).unwrap_or("")
            ),
        };
    }
    if let Some(h) = generation_lag(obj, "the deployment controller") {
        return h;
    }
    let want = i64_at(obj, &["spec", "replicas"]).unwrap_or(1);
    let updated = i64_at(obj, &["status", "updatedReplicas"]).unwrap_or(0);
    let available = i64_at(obj, &["status", "availableReplicas"]).unwrap_or(0);
    let total = i64_at(obj, &["status", "replicas"]).unwrap_or(0);
    if updated < want {
        return progressing(format!("{updated}/{want} replicas updated"));
    }
    if total > updated {
        return progressing(format!(
            "{} old replica(s) still terminating",
            total - updated
        ));
    }
    if available < want {
        return progressing(format!("{available}/{want} replicas available"));
    }
    Health::Ready { note: None }
}

fn daemonset(obj: &Value) -> Health {
    if let Some(h) = generation_lag(obj, "the daemonset controller") {
        return h;
    }
    let Some(desired) = i64_at(obj, &["status", "desiredNumberScheduled"]) else {
        return no_status("not scheduled on any node yet");
    };
    let updated = i64_at(obj, &["status", "updatedNumberScheduled"]).unwrap_or(0);
    let available = i64_at(obj, &["status", "numberAvailable"]).unwrap_or(0);
    if updated < desired {
        return progressing(format!("{updated}/{desired} nodes updated"));
    }
    if available < desired {
        return progressing(format!("{available}/{desired} nodes available"));
    }
    let note = (desired == 0).then(|| "no node matches its node selector".to_string());
    Health::Ready { note }
}

/// `CODE: message` for each Ceph health check in `status.ceph.details`.
pub fn ceph_checks(obj: &Value) -> Vec<(String, String, String)> {
    let Some(details) = obj
        .pointer("/status/ceph/details")
        .and_then(Value::as_object)
    else {
        return Vec::new();
    };
    details
        .iter()
        .map(|(code, d)| {
            (
                code.clone(),
                str_at(d, &["severity"]).unwrap_or("").to_string(),
                str_at(d, &["message"]).unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn ceph_cluster(obj: &Value, accepted: &[AcceptedWarning]) -> Health {
    let Some(status) = obj.get("status") else {
        return no_status("no status from the Rook operator yet");
    };
    let phase = str_at(status, &["phase"]).unwrap_or("");
    let message = str_at(status, &["message"]).unwrap_or("");
    // Rook writes state Error whenever its condition is False (facts-2 §6, conditions.go).
    if str_at(status, &["state"]) == Some("Error") || phase == "Failure" {
        return Health::Failed {
            reason: format!("Rook reports an error: {message}"),
        };
    }
    if str_at(status, &["ceph", "health"]) == Some("HEALTH_ERR") {
        let checks = ceph_checks(obj);
        // Rook's own HEALTH_ERR when `ceph status` itself fails (details.error, Urgent).
        if let Some((_, _, msg)) = checks.iter().find(|(c, _, _)| c == "error") {
            return Health::Failed {
                reason: format!("Rook cannot get the Ceph status: {msg}"),
            };
        }
        return Health::Failed {
            reason: format!("HEALTH_ERR: {}", join_checks(&checks)),
        };
    }
    if phase != "Ready" {
        let phase = if phase.is_empty() { "no phase" } else { phase };
        return progressing(if message.is_empty() {
            phase.to_string()
        } else {
            format!("{phase}: {message}")
        });
    }
    if let Some(h) = generation_lag(obj, "the Rook operator") {
        return h;
    }
    match str_at(status, &["ceph", "health"]) {
        None => progressing("Ready; waiting for the first Ceph health check"),
        Some("HEALTH_OK") => Health::Ready { note: None },
        Some("HEALTH_WARN") => {
            let checks = ceph_checks(obj);
            let unaccepted: Vec<_> = checks
                .iter()
                .filter(|(c, _, _)| !accepted.iter().any(|a| &a.code == c))
                .cloned()
                .collect();
            if unaccepted.is_empty() {
                let mut reasons: Vec<String> = checks
                    .iter()
                    .filter_map(|(c, _, _)| accepted.iter().find(|a| &a.code == c))
                    .map(|a| format!("{} ({})", a.code, a.reason))
                    .collect();
                reasons.dedup();
                Health::Ready {
                    note: Some(format!("HEALTH_WARN accepted: {}", reasons.join("; "))),
                }
            } else {
                progressing(format!("HEALTH_WARN: {}", join_checks(&unaccepted)))
            }
        }
        Some(other) => progressing(format!("Ceph health {other}")),
    }
}

fn join_checks(checks: &[(String, String, String)]) -> String {
    if checks.is_empty() {
        return "(no details)".into();
    }
    checks
        .iter()
        .map(|(c, _, m)| format!("{c}: {m}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn ceph_filesystem(obj: &Value) -> Health {
    let Some(phase) = str_at(obj, &["status", "phase"]) else {
        return no_status("no status from the Rook operator yet");
    };
    match phase {
        // The file controller retries after a reconcile error (facts-2 §6): fail only if it
        // stays that way.
        "Failure" => Health::Failing {
            reason: format!(
                "Rook reports Failure{}",
                str_at(obj, &["status", "message"])
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
            grace_secs: 30,
        },
        "Ready" => generation_lag(obj, "the Rook operator").unwrap_or(Health::Ready { note: None }),
        other => progressing(other.to_string()),
    }
}

fn backup_storage_location(obj: &Value) -> Health {
    match str_at(obj, &["status", "phase"]) {
        None => no_status("not validated by Velero yet"),
        Some("Available") => Health::Ready { note: None },
        Some("Unavailable") => Health::Failing {
            reason: format!(
                "Velero says Unavailable: {}",
                str_at(obj, &["status", "message"]).unwrap_or("(no message)")
            ),
            grace_secs: 15,
        },
        Some(other) => progressing(other.to_string()),
    }
}

fn schedule(obj: &Value) -> Health {
    match str_at(obj, &["status", "phase"]) {
        None | Some("New") | Some("") => no_status("not validated by Velero yet"),
        Some("Enabled") => Health::Ready { note: None },
        Some("FailedValidation") => {
            let errors: Vec<&str> = obj
                .pointer("/status/validationErrors")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            Health::Failed {
                reason: format!("Velero rejected the schedule: {}", errors.join("; ")),
            }
        }
        Some(other) => progressing(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn aes() -> Vec<AcceptedWarning> {
        vec![AcceptedWarning {
            code: "AUTH_INSECURE_KEYS_ALLOWED".into(),
            reason: "aes".into(),
        }]
    }

    #[test]
    fn a_fresh_ceph_cluster_is_never_ready_by_default() {
        let rule = Readiness::CephClusterReady {
            accepted_warnings: vec![],
        };
        let h = assess(&rule, &json!({"metadata": {"generation": 1}}));
        assert!(
            matches!(
                h,
                Health::Progressing {
                    no_status: true,
                    ..
                }
            ),
            "{h:?}"
        );
    }

    #[test]
    fn ceph_cluster_gates() {
        let ready = |health: &str, details: Value, og: i64| {
            json!({"metadata": {"generation": 2}, "status": {
                "phase": "Ready", "state": "Created", "observedGeneration": og,
                "ceph": {"health": health, "details": details}}})
        };
        let rule = Readiness::CephClusterReady {
            accepted_warnings: aes(),
        };
        assert_eq!(
            assess(&rule, &ready("HEALTH_OK", json!({}), 2)),
            Health::Ready { note: None }
        );
        // An old observedGeneration: Rook has not acted on the spec change yet.
        assert!(matches!(
            assess(&rule, &ready("HEALTH_OK", json!({}), 1)),
            Health::Progressing { .. }
        ));
        let warn = ready(
            "HEALTH_WARN",
            json!({"AUTH_INSECURE_KEYS_ALLOWED": {"severity": "HEALTH_WARN", "message": "m"}}),
            2,
        );
        match assess(&rule, &warn) {
            Health::Ready { note: Some(n) } => assert!(n.contains("AUTH_INSECURE_KEYS_ALLOWED")),
            h => panic!("{h:?}"),
        }
        let other = ready(
            "HEALTH_WARN",
            json!({"MON_DISK_LOW": {"severity": "HEALTH_WARN", "message": "mon a low"}}),
            2,
        );
        assert!(matches!(assess(&rule, &other), Health::Progressing { .. }));
        let err = ready(
            "HEALTH_ERR",
            json!({"OSD_FULL": {"severity": "HEALTH_ERR", "message": "1 full osd(s)"}}),
            2,
        );
        match assess(&rule, &err) {
            Health::Failed { reason } => assert!(reason.contains("OSD_FULL: 1 full osd(s)")),
            h => panic!("{h:?}"),
        }
        let error_state = json!({"status": {"phase": "Progressing", "state": "Error",
            "message": "failed to perform validation before cluster creation"}});
        assert!(matches!(assess(&rule, &error_state), Health::Failed { .. }));
    }

    #[test]
    fn deployment_is_generation_aware() {
        // The old rollout's numbers must not count for a new generation.
        let d = json!({"metadata": {"generation": 3}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
                       "availableReplicas": 2}});
        assert!(matches!(
            assess(&Readiness::DeploymentAvailable, &d),
            Health::Progressing { .. }
        ));
        let d = json!({"metadata": {"generation": 3}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2,
                       "availableReplicas": 2}});
        assert_eq!(
            assess(&Readiness::DeploymentAvailable, &d),
            Health::Ready { note: None }
        );
    }

    #[test]
    fn bsl_unavailable_carries_velero_message() {
        let b = json!({"status": {"phase": "Unavailable", "message": "rpc error: NoSuchBucket"}});
        match assess(&Readiness::BackupStorageLocationAvailable, &b) {
            Health::Failing { reason, .. } => assert!(reason.contains("NoSuchBucket")),
            h => panic!("{h:?}"),
        }
    }
}
