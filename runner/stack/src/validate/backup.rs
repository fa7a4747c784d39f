//! Backup rules: locations, schedules, durations and credentials (k8s-facts §7,
//! k8s-pitfalls §7, §8 and "Kopia repo password").

use std::path::Path;

use crate::credential::{CredentialRef, Resolved};
use crate::findings::Finding;
use crate::model::{BackupStrategy, Stack};
use crate::timefmt::{parse_cron, parse_go_duration};

/// The only object-store plugin Rookery installs is velero-plugin-for-aws.
fn is_aws(provider: &str) -> bool {
    provider == "aws" || provider == "velero.io/aws"
}

/// At least one BSL, provider `aws`, region and URL shape for S3-compatible endpoints.
pub fn check_backup_locations(b: &BackupStrategy) -> Vec<Finding> {
    let mut out = Vec::new();
    if b.backup_storage_locations.is_empty() {
        out.push(Finding::error(
            "backup-location",
            "backupStrategy.backupStorageLocations",
            "no backup storage location: Velero would have nowhere to write backups",
            "add one (provider `aws` works for AWS S3, MinIO and Ceph RGW)",
        ));
    }
    for (i, l) in b.backup_storage_locations.iter().enumerate() {
        let path = format!("backupStrategy.backupStorageLocations[{i}]");
        if !is_aws(&l.provider) {
            out.push(Finding::error(
                "backup-provider",
                format!("{path}.provider"),
                format!(
                    "provider `{}`: Rookery installs only velero-plugin-for-aws",
                    l.provider
                ),
                "use `aws` (any S3-compatible store)",
            ));
        }
        if l.bucket.is_empty() {
            out.push(Finding::error(
                "backup-location",
                format!("{path}.bucket"),
                "empty bucket name",
                "name the bucket",
            ));
        }
        if let Some(url) = &l.s3_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                out.push(Finding::error(
                    "backup-location",
                    format!("{path}.s3Url"),
                    format!("`{url}` is not an http(s) URL"),
                    "write it as `https://host:port`",
                ));
            }
            if l.region.is_none() && !l.config.contains_key("region") {
                out.push(Finding::error(
                    "backup-location",
                    format!("{path}.region"),
                    "an S3-compatible endpoint (`s3Url`) still needs a `region` for the AWS plugin",
                    "set `region` to any non-empty string, e.g. `us-east-1`",
                ));
            }
        }
    }
    out
}

/// At most one default BSL (CRD: "only one BSL may be default").
pub fn check_default_backup_location(b: &BackupStrategy) -> Vec<Finding> {
    let defaults: Vec<usize> = b
        .backup_storage_locations
        .iter()
        .enumerate()
        .filter(|(_, l)| l.default)
        .map(|(i, _)| i)
        .collect();
    match defaults.as_slice() {
        [] if !b.backup_storage_locations.is_empty() => vec![Finding::warning(
            "default-backup-location",
            "backupStrategy.backupStorageLocations",
            "no backup storage location is `default: true`; backups and schedules without `storageLocation` have no target",
            "set `default: true` on one location",
        )],
        [] | [_] => vec![],
        [_, rest @ ..] => rest
            .iter()
            .map(|i| {
                Finding::error(
                    "default-backup-location",
                    format!("backupStrategy.backupStorageLocations[{i}].default"),
                    format!(
                        "`{}` is a second default backup storage location; Velero allows one",
                        b.backup_storage_locations[*i].name
                    ),
                    "set `default: true` on exactly one location",
                )
            })
            .collect(),
    }
}

/// VSLs only mean something for native (EBS) snapshots; CephFS CSI snapshots use none.
pub fn check_volume_snapshot_locations(b: &BackupStrategy) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, l) in b.volume_snapshot_locations.iter().enumerate() {
        let path = format!("backupStrategy.volumeSnapshotLocations[{i}]");
        out.push(Finding::warning(
            "volume-snapshot-location",
            path.clone(),
            format!(
                "volume snapshot location `{}` is only used for native cloud-disk snapshots; CephFS volumes are snapshotted through CSI and never use it",
                l.name
            ),
            "remove it on bare metal",
        ));
        if !is_aws(&l.provider) {
            out.push(Finding::error(
                "backup-provider",
                format!("{path}.provider"),
                format!(
                    "provider `{}`: Rookery installs only velero-plugin-for-aws",
                    l.provider
                ),
                "use `aws`",
            ));
        }
        if is_aws(&l.provider) && l.region.is_none() && !l.config.contains_key("region") {
            out.push(Finding::error(
                "volume-snapshot-location",
                format!("{path}.region"),
                "the AWS plugin requires `region` for a volume snapshot location",
                "set `region`",
            ));
        }
    }
    out
}

/// TTLs and timeouts are Go durations.
pub fn check_durations(b: &BackupStrategy) -> Vec<Finding> {
    let mut items: Vec<(String, &str)> = Vec::new();
    if let Some(t) = &b.default_backup_ttl {
        items.push(("backupStrategy.defaultBackupTTL".into(), t));
    }
    if let Some(d) = &b.drill {
        if let Some(t) = &d.rto {
            items.push(("backupStrategy.drill.rto".into(), t));
        }
        if let Some(t) = &d.rpo {
            items.push(("backupStrategy.drill.rpo".into(), t));
        }
    }
    for (i, s) in b.schedules.iter().enumerate() {
        if let Some(t) = &s.ttl {
            items.push((format!("backupStrategy.schedules[{i}].ttl"), t));
        }
        if let Some(t) = &s.csi_snapshot_timeout {
            items.push((
                format!("backupStrategy.schedules[{i}].csiSnapshotTimeout"),
                t,
            ));
        }
    }
    items
        .into_iter()
        .filter_map(|(path, v)| {
            parse_go_duration(v).err().map(|e| {
                Finding::error(
                    "duration",
                    path,
                    format!("not a Go duration: {e}"),
                    "write hours, minutes, seconds, e.g. `720h` (30 days) or `1h30m`",
                )
            })
        })
        .collect()
}

/// Cron syntax and references to existing locations.
pub fn check_schedules(b: &BackupStrategy) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, s) in b.schedules.iter().enumerate() {
        let path = format!("backupStrategy.schedules[{i}]");
        if let Err(e) = parse_cron(&s.schedule) {
            out.push(Finding::error(
                "cron",
                format!("{path}.schedule"),
                format!("`{}` is not a schedule Velero accepts: {e}", s.schedule),
                "use 5-field cron (`0 3 * * *`) or `@daily`/`@every 6h`",
            ));
        }
        if let Some(loc) = &s.storage_location
            && !b.backup_storage_locations.iter().any(|l| &l.name == loc)
        {
            out.push(Finding::error(
                "schedule-location",
                format!("{path}.storageLocation"),
                format!("no backup storage location named `{loc}`"),
                "name one of `backupStorageLocations`",
            ));
        }
    }
    out
}

/// Per-schedule options that need a component the strategy turned off (k8s-facts §7:
/// `--default-volumes-to-fs-backup` and the data mover need node-agent; CSI needs EnableCSI).
pub fn check_backup_modes(b: &BackupStrategy) -> Vec<Finding> {
    let mut out = Vec::new();
    if !b.enable_snapshot_backups && !b.enable_filesystem_backups {
        out.push(Finding::warning(
            "backup-modes",
            "backupStrategy",
            "snapshot and filesystem backups are both off: backups contain Kubernetes objects but no volume data",
            "enable `enableSnapshotBackups` and/or `enableFilesystemBackups`",
        ));
    }
    for (i, s) in b.schedules.iter().enumerate() {
        let path = format!("backupStrategy.schedules[{i}]");
        if s.default_volumes_to_fs_backup == Some(true) && !b.enable_filesystem_backups {
            out.push(Finding::error(
                "backup-modes",
                format!("{path}.defaultVolumesToFsBackup"),
                "filesystem backup needs the node-agent, which `enableFilesystemBackups: false` leaves out",
                "set `enableFilesystemBackups: true`",
            ));
        }
        if s.snapshot_move_data == Some(true) && !b.enable_filesystem_backups {
            out.push(Finding::error(
                "backup-modes",
                format!("{path}.snapshotMoveData"),
                "the data mover runs in the node-agent, which `enableFilesystemBackups: false` leaves out",
                "set `enableFilesystemBackups: true`",
            ));
        }
        if s.snapshot_volumes == Some(true) && !b.enable_snapshot_backups {
            out.push(Finding::error(
                "backup-modes",
                format!("{path}.snapshotVolumes"),
                "CSI snapshots need `--features=EnableCSI`, which `enableSnapshotBackups: false` leaves out; Velero would skip them",
                "set `enableSnapshotBackups: true`",
            ));
        }
    }
    out
}

/// Every referenced credential resolves. Values are read but never printed.
pub fn check_credentials(stack: &Stack, stack_dir: &Path) -> Vec<Finding> {
    let mut refs: Vec<(String, &CredentialRef)> = Vec::new();
    if let Some(b) = &stack.backup_strategy {
        for (i, l) in b.backup_storage_locations.iter().enumerate() {
            if let Some(c) = &l.credential {
                refs.push((
                    format!("backupStrategy.backupStorageLocations[{i}].credential"),
                    c,
                ));
            }
        }
        for (i, l) in b.volume_snapshot_locations.iter().enumerate() {
            if let Some(c) = &l.credential {
                refs.push((
                    format!("backupStrategy.volumeSnapshotLocations[{i}].credential"),
                    c,
                ));
            }
        }
    }
    if let Some(c) = &stack.security.kopia_repository_password {
        refs.push(("security.kopiaRepositoryPassword".into(), c));
    }
    refs.into_iter()
        .filter_map(|(path, c)| match c.resolve(stack_dir) {
            Ok(Resolved::Value(_)) => None,
            Ok(Resolved::InCluster(s)) if s.name.is_empty() || s.key.is_empty() => {
                Some(Finding::error(
                    "credential",
                    path,
                    "secret reference needs both `name` and `key`",
                    "write `{secret: {name: NAME, key: KEY}}`",
                ))
            }
            Ok(Resolved::InCluster(_)) => None,
            Err(e) => Some(Finding::error(
                "credential",
                path,
                format!("credential {c} does not resolve: {e}"),
                match c {
                    CredentialRef::Env(n) => format!("export {n} before running rookery"),
                    CredentialRef::File(_) => {
                        "create the file (relative paths are relative to the stack file)".into()
                    }
                    CredentialRef::Secret(_) => String::new(),
                },
            )),
        })
        .collect()
}

/// Kopia's repository password: Velero's built-in default is a public constant, and an
/// existing Secret must have the name and key Velero reads (k8s-facts §7).
pub fn check_kopia_password(stack: &Stack) -> Vec<Finding> {
    let Some(b) = &stack.backup_strategy else {
        return vec![];
    };
    let uses_kopia = b.enable_filesystem_backups
        || b.schedules
            .iter()
            .any(|s| s.snapshot_move_data == Some(true));
    match &stack.security.kopia_repository_password {
        None if uses_kopia => vec![Finding::warning(
            "kopia-password",
            "security.kopiaRepositoryPassword",
            "no Kopia repository password: Velero uses its built-in `static-passw0rd`, and it can never be changed once backups exist",
            "set `security.kopiaRepositoryPassword: {env: NAME}` (or `{file: PATH}`) before the first backup",
        )],
        Some(CredentialRef::Secret(s))
            if s.name != "velero-repo-credentials" || s.key != "repository-password" =>
        {
            vec![Finding::error(
                "kopia-password",
                "security.kopiaRepositoryPassword.secret",
                format!(
                    "Velero reads the Kopia password only from Secret `velero-repo-credentials`, key `repository-password` (not `{}`/`{}`)",
                    s.name, s.key
                ),
                "reference `{secret: {name: velero-repo-credentials, key: repository-password}}` or use `{env: NAME}`",
            )]
        }
        _ => vec![],
    }
}
