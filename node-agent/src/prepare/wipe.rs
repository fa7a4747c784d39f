//! The wipe engine: turns a device that carries signatures into a raw device Rook accepts,
//! following Rook's documented zap procedure (notes/device-facts.md §2.4) without calling
//! `sgdisk`, `wipefs` or `dd` — the agent does the writes itself.
//!
//! # Write order (crash safety)
//!
//! The steps run in this order, each fsynced and audited before the next:
//!
//! 1. remove this device's idle `ceph--*` device-mapper holders ([`remove_holders`]; LVM
//!    leftovers, only when the kernel has device-mapper). They hold the disk, so this is the
//!    one step before the writable exclusive open; every later step, down to the final
//!    scan, goes through that single descriptor ([`wipe`]);
//! 2. zero the BlueStore label replicas at 1000/100/10/1 GiB (the 1 MiB at each offset);
//! 3. zero the start of every partition (contents first: a filesystem inside a partition is
//!    only findable while the partition table still points at it);
//! 4. erase any other signature found outside the head, the tail and the steps above;
//! 5. zero the last MiB (backup GPT, md 0.90/1.0 superblocks);
//! 6. zero the head ([`HEAD_BYTES`]), written from its end towards offset 0 so the primary
//!    signatures at the very start (PMBR, primary GPT, superblocks, LVM label, BlueStore
//!    label) are the last bytes to go;
//! 7. optional BLKDISCARD; flush (fsync + BLKFLSBUF); BLKRRPART and deletion of stale
//!    kernel partitions;
//! 8. scan again through the same descriptor (whole device and every partition region seen
//!    before) and report clean only if nothing is left.
//!
//! Invariant: everything that can only be found *through* the head (partition contents) is
//! erased before the head, and every other signature is found by a scan on its own. So a
//! run killed after any step leaves a device whose remaining signatures are all still
//! visible to the next scan: the next run sees "not clean" and, with consent, finishes;
//! or nothing detectable remains and it reports ok. Nothing is ever reported clean by
//! assumption — only by the final scan.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::process::Command;

use rookery_proto::{AuditAction, DeviceIdentity, Signature};

use super::audit::Auditor;
use super::ioctl;
use crate::host::{Disk, Holder, OsPaths};
use crate::probe::contents::{self, Found, Region};
use crate::test_hooks;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// Zeroed at the start of the device: ceph-volume's `lvm zap` zeroes 10 MiB, which also
/// covers LVM's default 1 MiB metadata area and every superblock libblkid probes.
pub const HEAD_BYTES: u64 = 10 * MIB;
/// Zeroed at the end: backup GPT (last LBA + entries) and md/zfs end labels.
pub const TAIL_BYTES: u64 = MIB;
/// Zeroed at each BlueStore replica offset (Rook zeroes 200 KiB there).
pub const REPLICA_BYTES: u64 = MIB;
/// BlueStore (Squid+) label replicas besides offset 0.
pub const REPLICA_OFFSETS: [u64; 4] = [1000 * GIB, 100 * GIB, 10 * GIB, GIB];
/// Zeroed at the start of each partition.
pub const PARTITION_HEAD_BYTES: u64 = MIB;

/// Why a wipe stopped.
#[derive(Debug, thiserror::Error)]
pub enum WipeError {
    #[error("step {step} on {path} failed")]
    Step {
        path: String,
        step: String,
        #[source]
        source: io::Error,
    },
    #[error("audit record for step {step} could not be written; the step was not run")]
    Audit {
        step: String,
        #[source]
        source: rookery_audit::AuditFileError,
    },
    #[error("cannot remove device-mapper holder {name} of {path}")]
    Holder {
        path: String,
        name: String,
        #[source]
        source: io::Error,
    },
}

/// What a finished wipe did.
#[derive(Debug, Default)]
pub struct WipeOutcome {
    pub steps: Vec<String>,
    pub after: Found,
    /// Non-fatal remarks (discard unsupported, partition re-read unsupported, ...).
    pub notes: Vec<String>,
}

/// One zeroing step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZeroStep {
    pub action: AuditAction,
    pub start: u64,
    pub len: u64,
}

/// The zeroing steps for a device of `size` bytes with the given findings, in write order
/// (see the module docs). Pure, so the order is unit-tested.
pub fn plan_steps(size: u64, found: &Found) -> Vec<ZeroStep> {
    let head = HEAD_BYTES.min(size);
    let tail_start = size.saturating_sub(TAIL_BYTES).max(head);
    let mut steps = Vec::new();
    let covered = |steps: &[ZeroStep], off: u64, len: u64| {
        off + len <= head
            || off >= tail_start
            || steps
                .iter()
                .any(|s| off >= s.start && off + len <= s.start + s.len)
    };
    for off in REPLICA_OFFSETS {
        if off >= head && off < tail_start {
            let len = REPLICA_BYTES.min(tail_start - off);
            steps.push(ZeroStep {
                action: AuditAction::ZeroBluestoreReplica(off),
                start: off,
                len,
            });
        }
    }
    let mut parts: Vec<Region> = found.regions.clone();
    parts.sort_by_key(|r| std::cmp::Reverse(r.start));
    for r in parts {
        let len = PARTITION_HEAD_BYTES.min(r.len);
        if r.start >= size || covered(&steps, r.start, len) {
            continue;
        }
        let len = len.min(size - r.start);
        steps.push(ZeroStep {
            action: AuditAction::ZeroPartition(r.start),
            start: r.start,
            len,
        });
    }
    let mut sigs: Vec<&Signature> = found.signatures.iter().collect();
    sigs.sort_by_key(|s| std::cmp::Reverse(s.offset));
    for s in sigs {
        // Round out to 4 KiB so the magic and its sector neighbours go.
        let start = s.offset & !4095;
        let end = (s.offset + s.length.max(1)).div_ceil(4096) * 4096;
        let end = end.min(size);
        if end <= start || covered(&steps, start, end - start) {
            continue;
        }
        steps.push(ZeroStep {
            action: AuditAction::Erase {
                name: s.kind.blkid_name().to_string(),
                offset: s.offset,
            },
            start,
            len: end - start,
        });
    }
    if tail_start < size {
        steps.push(ZeroStep {
            action: AuditAction::ZeroTail,
            start: tail_start,
            len: size - tail_start,
        });
    }
    steps.push(ZeroStep {
        action: AuditAction::ZeroHead,
        start: 0,
        len: head,
    });
    steps
}

/// Writes zeros over `[start, start+len)`. The head step is written backwards (highest
/// MiB first) and its first 4 KiB last, each part synced before the next, so a kill leaves
/// the primary signatures in place for as long as possible.
fn zero_range(f: &File, start: u64, len: u64, backwards: bool) -> io::Result<()> {
    let zeros = vec![0u8; MIB as usize];
    let mut chunks: Vec<(u64, u64)> = Vec::new();
    let mut off = start;
    let end = start + len;
    while off < end {
        let n = MIB.min(end - off);
        chunks.push((off, n));
        off += n;
    }
    if backwards {
        chunks.reverse();
        // Split the first chunk so the sector-0 page is the very last write.
        if let Some(&(o, n)) = chunks.last()
            && o == 0
            && n > 4096
        {
            chunks.pop();
            chunks.push((4096, n - 4096));
            chunks.push((0, 4096));
        }
    }
    for (o, n) in chunks {
        f.write_all_at(&zeros[..n as usize], o)?;
        if backwards {
            f.sync_data()?;
        }
    }
    f.sync_data()
}

/// Removes a `ceph--*` dm device with `dmsetup remove` (only reachable when the kernel has
/// device-mapper, which implies the lvm2/dmsetup userland on every distribution we target).
fn remove_dm(name: &str) -> io::Result<()> {
    let out = Command::new("dmsetup")
        .args(["remove", "--retry", name])
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "dmsetup remove exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

struct Ctx<'a, 'b> {
    id: &'a DeviceIdentity,
    audit: &'a mut Auditor<'b>,
    path: String,
}

impl Ctx<'_, '_> {
    fn step<T>(
        &mut self,
        action: AuditAction,
        before: &[Signature],
        run: impl FnOnce() -> io::Result<T>,
        after: impl FnOnce() -> Vec<Signature>,
    ) -> Result<T, WipeError> {
        let name = action.to_string();
        self.audit
            .record(self.id, action.clone(), before, &[], None)
            .map_err(|source| WipeError::Audit {
                step: name.clone(),
                source,
            })?;
        let res = run();
        let sigs_after = after();
        let result = match &res {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("error: {e}"),
        };
        // The step already happened: a failing "after" line must not hide its result.
        if let Err(e) = self
            .audit
            .record(self.id, action, before, &sigs_after, Some(result))
        {
            self.audit.progress(format!("warning: {e}"));
        }
        test_hooks::pause_after(&name);
        res.map_err(|source| WipeError::Step {
            path: self.path.clone(),
            step: name,
            source,
        })
    }
}

/// Removes this disk's idle `ceph--*` LVs (the caller has checked they live on this disk
/// alone and nothing uses them). Returns their names.
pub fn remove_holders(
    path: &str,
    id: &DeviceIdentity,
    holders: &[Holder],
    before: &[Signature],
    audit: &mut Auditor<'_>,
) -> Result<Vec<String>, WipeError> {
    let mut ctx = Ctx {
        id,
        audit,
        path: path.to_string(),
    };
    let mut removed = Vec::new();
    for h in holders {
        let name = h.display_name().to_string();
        ctx.step(
            AuditAction::RemoveHolder(name.clone()),
            before,
            || remove_dm(&name),
            Vec::new,
        )
        .map_err(|e| match e {
            WipeError::Step { source, .. } => WipeError::Holder {
                path: path.to_string(),
                name: name.clone(),
                source,
            },
            other => other,
        })?;
        removed.push(name);
    }
    Ok(removed)
}

/// Wipes the device open as `f` (exclusively, for writing, and verified to be `disk` by the
/// caller), then verifies through the same descriptor. The caller has already checked
/// refusals and consent, and keeps `f` open until this returns.
pub fn wipe(
    os: &OsPaths,
    f: &File,
    disk: &Disk,
    id: &DeviceIdentity,
    found: &Found,
    discard: bool,
    audit: &mut Auditor<'_>,
) -> Result<WipeOutcome, WipeError> {
    let mut out = WipeOutcome::default();
    let mut ctx = Ctx {
        id,
        audit,
        path: disk.path.clone(),
    };
    let lss = disk.logical_sector_size;
    // Kernel partitions as they are now, read by device number (never by name).
    let partitions_now = || {
        disk.devno
            .and_then(|d| os.disk_at(d))
            .map(|d| d.partitions)
            .unwrap_or_default()
    };
    let rescan = |f: &File| -> Vec<Signature> {
        contents::scan_device(f, disk.size_bytes, lss, &partitions_now(), &found.regions)
            .map(|r| r.signatures)
            .unwrap_or_default()
    };

    let mut current = found.signatures.clone();
    for s in plan_steps(disk.size_bytes, found) {
        let backwards = s.action == AuditAction::ZeroHead;
        ctx.step(
            s.action.clone(),
            &current,
            || zero_range(f, s.start, s.len, backwards),
            || rescan(f),
        )?;
        current = rescan(f);
        out.steps.push(s.action.to_string());
    }

    if discard && !disk.rotational {
        let r = ctx.step(
            AuditAction::Discard,
            &current,
            || ioctl::discard(f, 0, disk.size_bytes),
            || rescan(f),
        );
        match r {
            Ok(()) => out.steps.push(AuditAction::Discard.to_string()),
            // Discard is an optimisation; the zeroing above already removed the signatures.
            Err(e) => out
                .notes
                .push(format!("discard skipped: {}", source_text(&e))),
        }
    } else if discard {
        out.notes
            .push("discard skipped: device is rotational".to_string());
    }

    f.sync_all().map_err(|source| WipeError::Step {
        path: disk.path.clone(),
        step: "fsync".into(),
        source,
    })?;
    if let Err(e) = ioctl::flush_buffers(f) {
        out.notes.push(format!("BLKFLSBUF failed: {e}"));
    }
    let rr = ctx.step(
        AuditAction::RereadPartitionTable,
        &current,
        || {
            match ioctl::reread_partitions(f) {
                Ok(()) => {}
                // No partition scanning on this device (loop without PARTSCAN): the stale
                // kernel partitions are dropped one by one below instead.
                Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => {}
                Err(e) => return Err(e),
            }
            for p in partitions_now() {
                ioctl::delete_partition(f, p.number).map_err(|e| {
                    io::Error::new(e.kind(), format!("deleting partition {}: {e}", p.path))
                })?;
            }
            Ok(())
        },
        || rescan(f),
    );
    if let Err(e) = rr {
        out.notes
            .push(format!("partition re-read: {}", source_text(&e)));
    }
    out.steps
        .push(AuditAction::RereadPartitionTable.to_string());

    // Final verification through the same descriptor, after the buffer cache was dropped, so
    // it reads what the device holds (not what a fresh open of the name would find).
    out.after = contents::scan_device(f, disk.size_bytes, lss, &partitions_now(), &found.regions)
        .map_err(|source| WipeError::Step {
        path: disk.path.clone(),
        step: "verify".into(),
        source,
    })?;
    ctx.audit
        .record(
            id,
            AuditAction::Verify,
            &found.signatures,
            &out.after.signatures,
            Some(if out.after.is_clean() {
                "clean".into()
            } else {
                "signatures remain".into()
            }),
        )
        .ok();
    Ok(out)
}

fn source_text(e: &WipeError) -> String {
    match e {
        WipeError::Step { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_proto::SignatureKind;

    fn sig(kind: SignatureKind, offset: u64) -> Signature {
        Signature {
            kind,
            offset,
            length: 8,
            label: None,
            uuid: None,
        }
    }

    #[test]
    fn head_is_last_and_contents_before_it() {
        let size = 20 * GIB;
        let found = Found {
            whole: Default::default(),
            signatures: vec![
                sig(SignatureKind::GptPrimary, 512),
                sig(SignatureKind::Xfs, 3 * GIB),
                sig(SignatureKind::Bluestore, GIB),
                sig(SignatureKind::GptBackup, size - 512),
            ],
            regions: vec![Region {
                start: 3 * GIB,
                len: 4 * GIB,
            }],
        };
        let names: Vec<String> = plan_steps(size, &found)
            .into_iter()
            .map(|s| s.action.to_string())
            .collect();
        assert_eq!(
            names,
            vec![
                "zero-bluestore-replica@10GiB",
                "zero-bluestore-replica@1GiB",
                "zero-partition@3221225472",
                "zero-tail",
                "zero-head"
            ]
        );
    }

    #[test]
    fn small_device_skips_far_replicas_and_partitions_are_zeroed() {
        let size = 6 * GIB;
        let found = Found {
            whole: Default::default(),
            signatures: vec![],
            regions: vec![Region {
                start: 2 * GIB,
                len: GIB,
            }],
        };
        let steps = plan_steps(size, &found);
        let names: Vec<String> = steps.iter().map(|s| s.action.to_string()).collect();
        assert_eq!(
            names,
            vec![
                "zero-bluestore-replica@1GiB",
                "zero-partition@2147483648",
                "zero-tail",
                "zero-head"
            ]
        );
        let tail = &steps[2];
        assert_eq!(tail.start + tail.len, size);
        assert_eq!(steps[3].len, HEAD_BYTES);
    }

    #[test]
    fn zero_range_backwards_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img");
        std::fs::write(&p, vec![0xAAu8; 3 * MIB as usize]).unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        zero_range(&f, 0, 2 * MIB + 10, true).unwrap();
        let b = std::fs::read(&p).unwrap();
        assert!(b[..(2 * MIB + 10) as usize].iter().all(|&x| x == 0));
        assert!(b[(2 * MIB + 10) as usize..].iter().all(|&x| x == 0xAA));
    }
}
