//! The OS seam: every read of sysfs, procfs and `/dev` that says which disk is which, what
//! sits on it and what uses it. The probe (what the runner plans with) and prepare (what the
//! agent re-checks before writing) both read the kernel through this one module, so they can
//! never disagree about a disk's serial, its partitions, its holders or its mounts.
//!
//! All paths hang off [`OsPaths`]: the real roots by default, a fake tree in unit tests
//! (hardware this lab lacks: NVMe, SAS, USB, dm-crypt stacks). Nothing here opens a device
//! node; the reads that must be tied to an open device live with their callers.

mod block;
#[cfg(test)]
pub(crate) mod fake;
mod mounts;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

pub use block::{Devno, Disk, DiskLinks, Holder, KernelPartition, is_content_link, vpd80_serial};
pub use mounts::{Mount, parse_mountinfo, unescape_octal};

/// Roots of the OS interfaces the agent reads. [`OsPaths::default`] is the real system.
#[derive(Debug, Clone)]
pub struct OsPaths {
    pub sys: PathBuf,
    pub proc_: PathBuf,
    pub dev: PathBuf,
    pub etc: PathBuf,
}

impl Default for OsPaths {
    fn default() -> Self {
        OsPaths {
            sys: "/sys".into(),
            proc_: "/proc".into(),
            dev: "/dev".into(),
            etc: "/etc".into(),
        }
    }
}

/// sysfs and procfs attributes are small; a larger file is not one of them.
const ATTR_MAX: u64 = 64 * 1024;

/// Reads a kernel attribute: bounded, surrounding whitespace and NUL padding removed (SCSI
/// and NVMe pad serials and models with both). `None` when missing, unreadable or empty.
pub fn read_attr(p: &Path) -> Option<String> {
    let mut raw = Vec::new();
    File::open(p)
        .ok()?
        .take(ATTR_MAX)
        .read_to_end(&mut raw)
        .ok()?;
    let text = String::from_utf8_lossy(&raw);
    let t = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!t.is_empty()).then(|| t.to_string())
}

/// A bounded read of a whole procfs/sysfs text file (mountinfo, swaps).
pub fn read_text(p: &Path, max: u64) -> Option<String> {
    let mut raw = Vec::new();
    File::open(p).ok()?.take(max).read_to_end(&mut raw).ok()?;
    Some(String::from_utf8_lossy(&raw).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_lose_blanks_and_nul_padding() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("serial");
        std::fs::write(&p, b"  S3Z9NB0K\0\0\n").unwrap();
        assert_eq!(read_attr(&p).as_deref(), Some("S3Z9NB0K"));
        std::fs::write(&p, b"\0\0\0\n").unwrap();
        assert_eq!(read_attr(&p), None);
        assert_eq!(read_attr(&dir.path().join("missing")), None);
    }
}
