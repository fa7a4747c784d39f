//! Validation before anything runs: every rule of issue 5 item 2 as its own function, each
//! returning [`Finding`]s with a key path, a message that says why the cluster could not
//! become healthy, and a hint that says what to change.
//!
//! Rules work from the stack plus the [`PlannedCluster`] (the devices the probe saw), so they
//! judge the machines the stack will actually run on, not just the file.

mod backup;
mod names;
mod security;
mod storage;

use std::path::Path;

pub use backup::*;
pub use names::*;
pub use security::*;
pub use storage::*;

use crate::findings::Finding;
use crate::hosts::PlannedCluster;
use crate::model::Stack;

/// Run every rule. `stack_dir` resolves relative `file:` credentials.
pub fn validate(stack: &Stack, cluster: &PlannedCluster, stack_dir: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    out.extend(check_dns_names(stack, cluster));
    out.extend(check_unique_names(stack, cluster));
    out.extend(check_default_storage_class(stack));
    out.extend(check_k3s_local_path_default(stack));
    out.extend(check_namespace(stack));
    out.extend(check_data_dir_host_path(stack));
    out.extend(check_node_names(cluster));
    out.extend(check_devices(cluster));
    out.extend(check_device_selection(stack, cluster));
    out.extend(check_monitor_count(stack, cluster));
    out.extend(check_filesystem_shape(stack));
    out.extend(check_replica_safety(stack));
    out.extend(check_device_classes(stack, cluster));
    out.extend(check_placement(stack, cluster));
    out.extend(check_key_type(stack, cluster));
    out.extend(check_msgr2_kernels(stack, cluster));
    out.extend(check_encryption_at_rest(stack));
    out.extend(check_monitoring(stack));
    if let Some(backup) = &stack.backup_strategy {
        out.extend(check_backup_locations(backup));
        out.extend(check_default_backup_location(backup));
        out.extend(check_volume_snapshot_locations(backup));
        out.extend(check_durations(backup));
        out.extend(check_schedules(backup));
        out.extend(check_backup_modes(backup));
        out.extend(check_credentials(stack, stack_dir));
        out.extend(check_kopia_password(stack));
    }
    out.sort_by_key(|f| f.severity);
    out
}
