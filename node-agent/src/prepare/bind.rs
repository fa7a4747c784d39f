//! Binding the planned identity to an open file descriptor, so the device that was checked is
//! the device that is written.
//!
//! The identity is resolved by name through sysfs ([`super::node::resolve`]); a disk can be
//! pulled and another one take its name, or a loop device can be re-attached to another
//! file, between that and the open. So prepare opens the device once and verifies *that
//! descriptor*: `fstat` must give the block device number sysfs resolved; the serial, WWN and
//! size are read again through `/sys/dev/block/MAJ:MIN` (the number, not the name); the
//! by-id link must still point at that number; and the kernel's disk sequence number, taken
//! from the descriptor itself (`BLKGETDISKSEQ`), must be the one resolved (and planned).
//! While the descriptor stays open the kernel will not hand its number to another device, and
//! a loop device cannot be re-attached. Every scan, write, `BLKRRPART` and the final
//! verification go through it. When a reopen cannot be avoided (Ceph LVs hold the disk until
//! `dmsetup` removes them, so the writable exclusive open comes after), the new descriptor is
//! verified the same way.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};

use rookery_proto::DeviceIdentity;

use super::ioctl;
use super::node::same_id;
use crate::host::{Devno, Disk, OsPaths};

/// How the descriptor is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `O_RDONLY`: reading only, without claiming the device (refused devices are still
    /// scanned so the report says what they hold).
    Read,
    /// `O_RDONLY|O_EXCL`: fails with EBUSY while anything holds the device.
    ReadExclusive,
    /// `O_RDWR|O_EXCL`: nobody can mount or claim the device while the wipe runs.
    WriteExclusive,
}

/// An open descriptor verified to be the planned device.
#[derive(Debug)]
pub struct Bound {
    pub file: File,
    pub access: Access,
    /// The disk as sysfs shows it now, read through the descriptor's device number.
    pub disk: Disk,
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("{path} is held by another process (exclusive open failed)")]
    Busy { path: String },
    #[error("cannot open {path}")]
    Open {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} is no longer a block device")]
    NotBlock { path: String },
    #[error("{path} now opens device {found}, not the {expected} that was checked; refusing")]
    Moved {
        path: String,
        expected: String,
        found: Devno,
    },
    #[error("device {devno} ({path}) is gone from sysfs; refusing")]
    Gone { path: String, devno: Devno },
    #[error("{path} changed identity since it was checked: {what} was {then}, is {now}; refusing")]
    Changed {
        path: String,
        what: &'static str,
        then: String,
        now: String,
    },
}

fn text(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "none".into())
}

/// Opens `resolved` and verifies the descriptor against it and the plan's identity `id`.
pub fn open_bound(
    os: &OsPaths,
    resolved: &Disk,
    id: &DeviceIdentity,
    access: Access,
) -> Result<Bound, BindError> {
    let path = resolved.path.clone();
    let mut oo = OpenOptions::new();
    oo.read(true);
    match access {
        Access::Read => {}
        Access::ReadExclusive => {
            oo.custom_flags(nix::libc::O_EXCL);
        }
        Access::WriteExclusive => {
            oo.write(true).custom_flags(nix::libc::O_EXCL);
        }
    }
    let file = match oo.open(&path) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => {
            return Err(BindError::Busy { path });
        }
        Err(source) => return Err(BindError::Open { path, source }),
    };
    let meta = file.metadata().map_err(|source| BindError::Open {
        path: path.clone(),
        source,
    })?;
    if !meta.file_type().is_block_device() {
        return Err(BindError::NotBlock { path });
    }
    let found = Devno::from_dev_t(meta.rdev());
    if resolved.devno != Some(found) {
        return Err(BindError::Moved {
            path,
            expected: resolved
                .devno
                .map_or_else(|| "unknown device".into(), |d| d.to_string()),
            found,
        });
    }
    let now = os.disk_at(found).ok_or_else(|| BindError::Gone {
        path: path.clone(),
        devno: found,
    })?;
    let changed = |what: &'static str, then: String, now: String| BindError::Changed {
        path: path.clone(),
        what,
        then,
        now,
    };
    if now.name != resolved.name {
        return Err(changed("the kernel name", resolved.name.clone(), now.name));
    }
    if now.size_bytes != id.size_bytes {
        return Err(changed(
            "the size",
            id.size_bytes.to_string(),
            now.size_bytes.to_string(),
        ));
    }
    for (what, planned, current) in [
        ("the serial", &id.serial, &now.serial),
        ("the WWN", &id.wwn, &now.wwn),
    ] {
        if let Some(p) = planned.as_deref().filter(|s| !s.is_empty())
            && !current.as_deref().is_some_and(|c| same_id(c, p))
        {
            return Err(changed(what, p.to_string(), text(current)));
        }
    }
    if let Some(link) = id.by_id.as_deref().filter(|s| !s.is_empty()) {
        let target = std::fs::metadata(link)
            .map(|m| Devno::from_dev_t(m.rdev()))
            .ok();
        if target != Some(found) {
            return Err(changed(
                "the device behind the by-id link",
                format!("{found}"),
                target.map_or_else(|| "missing".into(), |t| t.to_string()),
            ));
        }
    }
    // The sequence number from the descriptor itself; sysfs's copy only on kernels without
    // the ioctl (both are absent before Linux 5.15, which leaves name, number and serial).
    let seq = match ioctl::disk_seq(&file) {
        Ok(s) => Some(s),
        Err(e) if e.raw_os_error() == Some(nix::libc::ENOTTY) => now.diskseq,
        Err(e) => return Err(BindError::Open { path, source: e }),
    };
    for expected in [resolved.diskseq, id.diskseq].into_iter().flatten() {
        if seq.is_some_and(|s| s != expected) {
            return Err(changed(
                "the disk sequence number (a re-attached or replaced device)",
                expected.to_string(),
                text(&seq.map(|s| s.to_string())),
            ));
        }
    }
    Ok(Bound {
        file,
        access,
        disk: now,
    })
}
