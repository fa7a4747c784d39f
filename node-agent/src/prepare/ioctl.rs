//! The kernel calls device preparation needs that have no safe wrapper: the block-device
//! ioctls (flush the buffer cache, re-read the partition table, discard, delete stale kernel
//! partitions, read the disk sequence number) and a read-only `adjtimex(2)` for the
//! time-sync readiness check.
//!
//! This is the only place in the agent's prepare code that uses `unsafe`: the kernel
//! interface is `ioctl(2)` on an open block device, which Rust cannot check. Each call
//! passes a live file descriptor owned by the caller and (where needed) a pointer to a
//! properly laid-out, initialised value that outlives the call.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

// Numbers from <linux/fs.h> and <linux/blkpg.h>: all are _IO(0x12, n) even when they take
// a pointer, hence the `_bad` macro variants with explicit request codes.
nix::ioctl_none!(blkrrpart_raw, 0x12, 95);
nix::ioctl_none!(blkflsbuf_raw, 0x12, 97);
nix::ioctl_write_ptr_bad!(blkdiscard_raw, nix::request_code_none!(0x12, 119), [u64; 2]);
nix::ioctl_write_ptr_bad!(blkpg_raw, nix::request_code_none!(0x12, 105), BlkpgIoctlArg);
// BLKGETDISKSEQ is a proper _IOR(0x12, 128, __u64) (Linux 5.15+).
nix::ioctl_read!(blkgetdiskseq_raw, 0x12, 128, u64);

/// `struct blkpg_ioctl_arg`.
#[repr(C)]
struct BlkpgIoctlArg {
    op: nix::libc::c_int,
    flags: nix::libc::c_int,
    datalen: nix::libc::c_int,
    data: *mut nix::libc::c_void,
}

/// `struct blkpg_partition`.
#[repr(C)]
struct BlkpgPartition {
    start: i64,
    length: i64,
    pno: nix::libc::c_int,
    devname: [u8; 64],
    volname: [u8; 64],
}

const BLKPG_DEL_PARTITION: nix::libc::c_int = 2;

fn to_io(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// BLKFLSBUF: write back and drop the device's buffer cache so later reads (ours, blkid,
/// ceph-volume) see the media.
pub fn flush_buffers(f: &File) -> io::Result<()> {
    // SAFETY: `f` is an open block device for the whole call; BLKFLSBUF takes no argument.
    unsafe { blkflsbuf_raw(f.as_raw_fd()) }
        .map(drop)
        .map_err(to_io)
}

/// BLKRRPART: ask the kernel to re-read the partition table. EINVAL means the device does
/// not support partition scanning (e.g. a loop device without LO_FLAGS_PARTSCAN).
pub fn reread_partitions(f: &File) -> io::Result<()> {
    // SAFETY: `f` is an open block device for the whole call; BLKRRPART takes no argument.
    unsafe { blkrrpart_raw(f.as_raw_fd()) }
        .map(drop)
        .map_err(to_io)
}

/// BLKGETDISKSEQ: the disk sequence number of the device open as `f`. ENOTTY on kernels
/// older than 5.15.
pub fn disk_seq(f: &File) -> io::Result<u64> {
    let mut seq: u64 = 0;
    // SAFETY: `f` is an open block device; `seq` is a live u64 the kernel writes into, borrowed
    // mutably for the duration of the call only.
    unsafe { blkgetdiskseq_raw(f.as_raw_fd(), &mut seq) }
        .map(|_| seq)
        .map_err(to_io)
}

/// BLKDISCARD over `[start, start+len)`.
pub fn discard(f: &File, start: u64, len: u64) -> io::Result<()> {
    let range = [start, len];
    // SAFETY: `f` is an open block device; `range` is a live `[u64; 2]` (start, length) as
    // BLKDISCARD expects, borrowed for the duration of the call only.
    unsafe { blkdiscard_raw(f.as_raw_fd(), &range) }
        .map(drop)
        .map_err(to_io)
}

/// BLKPG_DEL_PARTITION for partition number `pno`: drops a kernel partition node that no
/// longer exists on disk (what `partx -d` does). The kernel refuses with EBUSY when the
/// partition is open.
pub fn delete_partition(f: &File, pno: u32) -> io::Result<()> {
    let mut part = BlkpgPartition {
        start: 0,
        length: 0,
        pno: pno as nix::libc::c_int,
        devname: [0; 64],
        volname: [0; 64],
    };
    let arg = BlkpgIoctlArg {
        op: BLKPG_DEL_PARTITION,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as nix::libc::c_int,
        data: (&mut part as *mut BlkpgPartition).cast(),
    };
    // SAFETY: `f` is an open block device; `arg` and the `part` it points to are live,
    // initialised #[repr(C)] values matching <linux/blkpg.h> for the whole call.
    unsafe { blkpg_raw(f.as_raw_fd(), &arg) }
        .map(drop)
        .map_err(to_io)
}

/// Whether the kernel clock is synchronised: `adjtimex(2)` with `modes = 0` only reads the
/// kernel NTP state; `STA_UNSYNC` clear means an NTP daemon (chrony, ntpd,
/// systemd-timesyncd) is disciplining the clock.
pub fn clock_synchronised() -> io::Result<bool> {
    // SAFETY: an all-zero `timex` is a valid value (plain integers); `modes = 0` makes the
    // call read-only; the pointer is to a live local for the duration of the call.
    let mut tx: nix::libc::timex = unsafe { std::mem::zeroed() };
    tx.modes = 0;
    // SAFETY: see above; adjtimex only writes into `tx`.
    let state = unsafe { nix::libc::adjtimex(&mut tx) };
    if state < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(state != nix::libc::TIME_ERROR && tx.status & nix::libc::STA_UNSYNC == 0)
}
