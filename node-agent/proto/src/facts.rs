//! Host facts: what a probe reports about the machine itself.

use serde::{Deserialize, Serialize};

use crate::device::BlockDevice;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostFacts {
    pub hostname: String,
    pub os: OsRelease,
    /// `uname -r`.
    pub kernel: String,
    /// `uname -m`, e.g. `x86_64`.
    pub arch: String,
    pub cpus: usize,
    pub memory_bytes: u64,
    pub block_devices: Vec<BlockDevice>,
    /// Devices the agent looked at and skipped without a verdict (ram, zram, loop unless
    /// asked, dm/md children), with the reason, so `-v` output can say why a disk is missing.
    #[serde(default)]
    pub skipped_devices: Vec<SkippedDevice>,
}

/// From `/etc/os-release` (falls back to `/usr/lib/os-release`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsRelease {
    pub id: String,
    pub name: String,
    pub version_id: String,
    pub pretty_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedDevice {
    pub name: String,
    pub reason: String,
}
