//! Every signature a wipe must remove: the whole device (via [`signatures::scan`]) plus the
//! *contents* of every partition, whether the partition is known from the on-disk GPT, the
//! DOS table, or the kernel.
//!
//! Partition contents matter because wiping only the partition table hides a filesystem at,
//! say, 3 GiB from every scanner without erasing it; `wipefs` avoids that by wiping each
//! partition before the disk, and so does the agent. All offsets returned are absolute from
//! the start of the whole device.
//!
//! The probe reports this list ([`rookery_proto::BlockDevice::wipe_signatures`]) and prepare
//! computes it again through the descriptor it writes with; a wipe consent is bound to the
//! two being equal, so both must come from this one function.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

use rookery_proto::{Signature, SignatureKind};

use super::signatures;
use crate::host::KernelPartition;

/// A byte range of the device that is (or was) a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub len: u64,
}

/// Signatures of the whole device and of its partitions' contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// The scan of the whole device on its own (what the availability verdict reads).
    pub whole: signatures::ScanResult,
    /// Whole device and partition contents, offsets absolute, sorted by offset.
    pub signatures: Vec<Signature>,
    /// Partition ranges seen (on-disk tables and kernel partitions), for re-scanning after
    /// the tables are gone.
    pub regions: Vec<Region>,
}

impl Found {
    pub fn is_clean(&self) -> bool {
        self.signatures.is_empty()
    }
}

/// A window `[base, base+len)` of a file as its own `Read + Seek`.
struct Window<'a> {
    f: &'a File,
    base: u64,
    len: u64,
    pos: u64,
}

impl Read for Window<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(self.len - self.pos) as usize;
        let got = self.f.read_at(&mut buf[..n], self.base + self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Seek for Window<'_> {
    fn seek(&mut self, p: SeekFrom) -> io::Result<u64> {
        let new = match p {
            SeekFrom::Start(o) => Some(o),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = new.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(self.pos)
    }
}

fn scan_window(f: &File, base: u64, len: u64, lss: u32) -> io::Result<signatures::ScanResult> {
    let mut w = Window {
        f,
        base,
        len,
        pos: 0,
    };
    signatures::scan(&mut w, len, lss)
}

/// DOS partition entries (4 primary slots at 0x1BE): `(start, len)` in bytes for every
/// non-empty, non-protective slot that lies inside the device.
fn dos_regions(sector0: &[u8], size: u64) -> Vec<Region> {
    if sector0.len() < 512 || sector0[510] != 0x55 || sector0[511] != 0xAA {
        return Vec::new();
    }
    (0..4)
        .filter_map(|i| {
            let e = &sector0[0x1BE + 16 * i..0x1BE + 16 * (i + 1)];
            let kind = e[4];
            let start = u64::from(u32::from_le_bytes([e[8], e[9], e[10], e[11]])) * 512;
            let len = u64::from(u32::from_le_bytes([e[12], e[13], e[14], e[15]])) * 512;
            // 0xEE is the protective entry in front of a GPT: it spans the disk, not data.
            (kind != 0 && kind != 0xEE && len > 0 && start > 0 && start + len <= size)
                .then_some(Region { start, len })
        })
        .collect()
}

/// Scans the device open as `f` (`size` bytes, logical sectors of `lss`) and every partition
/// on it: the kernel's `partitions`, the on-disk tables' entries, and `known` regions
/// remembered from an earlier scan (the tables may be gone by now).
pub fn scan_device(
    f: &File,
    size: u64,
    lss: u32,
    partitions: &[KernelPartition],
    known: &[Region],
) -> io::Result<Found> {
    let lss = lss.max(512);
    let whole = scan_window(f, 0, size, lss)?;
    let mut regions: Vec<Region> = known.to_vec();
    for e in &whole.gpt_entries {
        let start = e.first_lba.saturating_mul(u64::from(lss));
        let end = e.last_lba.saturating_add(1).saturating_mul(u64::from(lss));
        if e.last_lba >= e.first_lba && end <= size && start > 0 {
            regions.push(Region {
                start,
                len: end - start,
            });
        }
    }
    if whole
        .signatures
        .iter()
        .any(|s| s.kind == SignatureKind::Mbr)
    {
        let mut s0 = vec![0u8; 512];
        f.read_exact_at(&mut s0, 0)?;
        regions.extend(dos_regions(&s0, size));
    }
    regions.extend(
        partitions
            .iter()
            .filter(|p| p.size_bytes > 0)
            .map(|p| Region {
                start: p.start_bytes,
                len: p.size_bytes,
            }),
    );
    regions.sort_by_key(|r| (r.start, r.len));
    regions.dedup();

    let mut sigs = whole.signatures.clone();
    for r in &regions {
        let part = scan_window(f, r.start, r.len, lss)?;
        for mut s in part.signatures {
            // A partition's own table signatures (a nested DOS/GPT) are still ours to erase;
            // only its offset needs translating.
            s.offset += r.start;
            if !sigs
                .iter()
                .any(|x| x.kind == s.kind && x.offset == s.offset)
            {
                sigs.push(s);
            }
        }
    }
    sigs.sort_by_key(|s| (s.offset, s.kind));
    Ok(Found {
        whole,
        signatures: sigs,
        regions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dos_entries() {
        let mut s0 = vec![0u8; 512];
        s0[510] = 0x55;
        s0[511] = 0xAA;
        // slot 0: type 0x83, start 2048, 4096 sectors
        s0[0x1BE + 4] = 0x83;
        s0[0x1BE + 8..0x1BE + 12].copy_from_slice(&2048u32.to_le_bytes());
        s0[0x1BE + 12..0x1BE + 16].copy_from_slice(&4096u32.to_le_bytes());
        // slot 1: protective, ignored
        s0[0x1CE + 4] = 0xEE;
        s0[0x1CE + 8..0x1CE + 12].copy_from_slice(&1u32.to_le_bytes());
        s0[0x1CE + 12..0x1CE + 16].copy_from_slice(&4096u32.to_le_bytes());
        let r = dos_regions(&s0, 100 << 20);
        assert_eq!(
            r,
            vec![Region {
                start: 2048 * 512,
                len: 4096 * 512
            }]
        );
        // entry past the end of the device is ignored
        assert!(dos_regions(&s0, 1 << 20).is_empty());
    }
}
