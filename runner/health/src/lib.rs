//! rookery-health: "is my storage healthy and are my backups real?" as plain functions.
//!
//! - [`snapshot::Snapshot`]: the cluster's objects read at one moment (by `rookery-kube`),
//!   Secrets reduced to their key names, plus the plan's stable device ids and the agents'
//!   node checks.
//! - [`status::build`]: the one-screen report of `rookery status`.
//! - [`doctor::checks`]: the troubleshooting list as findings (ok / warn / fail, the object,
//!   the evidence, a hint), and [`exit_code`] from the worst one.
//! - [`render`]: the human renderings; JSON is the reports' `Serialize`.

pub mod ceph;
pub mod doctor;
pub mod render;
pub mod snapshot;
pub mod status;
pub mod velero;

pub use doctor::{Finding, Severity};
pub use snapshot::{Listed, Snapshot};
pub use status::StatusReport;

/// `rookery doctor`'s exit code: 0 when every check is ok, 16 when the worst finding is a
/// warning, 32 when a check fails (the README's table: 16 "attention", 32 "not healthy").
pub fn exit_code(findings: &[Finding]) -> u8 {
    match doctor::worst(findings) {
        Severity::Ok => 0,
        Severity::Warn => 16,
        Severity::Fail => 32,
    }
}
