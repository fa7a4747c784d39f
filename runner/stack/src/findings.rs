//! Validation findings: what `rookery plan` reports before anything touches a cluster.
//!
//! Every rule returns a list of [`Finding`]s instead of failing fast, so one run shows every
//! problem in the stack at once, each tied to the key path it is about.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// Stable machine-readable identifier, e.g. `placement`, `default-storage-class`.
    pub code: &'static str,
    /// Key path in the stack file, e.g. `storageClasses[0].filesystem.metadataPool`.
    pub path: String,
    pub message: String,
    /// What to change so the finding goes away.
    pub hint: String,
}

impl Finding {
    pub fn error(
        code: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Finding {
            severity: Severity::Error,
            code,
            path: path.into(),
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn warning(
        code: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Finding {
            severity: Severity::Warning,
            code,
            path: path.into(),
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// True when any finding is an error (the plan must not be applied).
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}
