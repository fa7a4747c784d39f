//! A block device whose reads can be made to hang, for "one dead disk must not hang the host"
//! tests: a loop device over a file served by a FUSE filesystem in this process. While
//! [`HungDisk::hang`] is on, the filesystem takes read requests and never answers them, so
//! reads of the loop device block in the kernel exactly as on a dying drive; [`Drop`] answers
//! the held reads (zeros), detaches the loop device and unmounts.
//!
//! Why FUSE: this kernel has no device-mapper (so no dm-delay, dm-flakey or a suspended dm
//! table), NBD and ublk are not available either, and a FIFO cannot back a loop device. FUSE
//! (`/dev/fuse`) is, and a loop device over a FUSE file is a real block device.
//!
//! Needs root and `/dev/fuse`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result};
use fuser::{
    BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    INodeNo, LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyEntry, ReplyOpen,
    Request,
};

use crate::loopdev::run;

const FILE_INO: u64 = 2;
const NAME: &str = "disk.img";

/// Why the hung-disk harness cannot run here, or None when it can.
pub fn missing_prerequisite() -> Option<String> {
    if !crate::require::is_root() {
        return Some("root (FUSE mount, loop devices)".into());
    }
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse (the fuse kernel module)".into());
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some("/dev/loop-control (loop devices)".into());
    }
    None
}

struct State {
    size: u64,
    hang: AtomicBool,
    held: Mutex<Vec<ReplyData>>,
}

impl State {
    fn release(&self) {
        self.hang.store(false, Ordering::SeqCst);
        let held: Vec<ReplyData> =
            std::mem::take(&mut *self.held.lock().unwrap_or_else(|e| e.into_inner()));
        for r in held {
            r.error(Errno::EIO);
        }
    }
}

struct Fs(Arc<State>);

fn attr(ino: u64, size: u64) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: if ino == FILE_INO {
            FileType::RegularFile
        } else {
            FileType::Directory
        },
        perm: if ino == FILE_INO { 0o644 } else { 0o755 },
        nlink: if ino == FILE_INO { 1 } else { 2 },
        uid: 0,
        gid: 0,
        rdev: 0,
        flags: 0,
        blksize: 512,
    }
}

const TTL: Duration = Duration::from_secs(3600);

impl Filesystem for Fs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if u64::from(parent) == 1 && name == NAME {
            reply.entry(&TTL, &attr(FILE_INO, self.0.size), fuser::Generation(0));
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match u64::from(ino) {
            1 => reply.attr(&TTL, &attr(1, 0)),
            FILE_INO => reply.attr(&TTL, &attr(FILE_INO, self.0.size)),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // Direct I/O: every read of the loop device reaches this process (no page cache).
        reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        if self.0.hang.load(Ordering::SeqCst) {
            // Never answered until released: the reader waits in the kernel.
            self.0
                .held
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(reply);
            return;
        }
        let n = u64::from(size).min(self.0.size.saturating_sub(offset));
        reply.data(&vec![0u8; usize::try_from(n).unwrap_or(0)]);
    }
}

/// A loop device over a FUSE file whose reads can be made to hang.
pub struct HungDisk {
    state: Arc<State>,
    loopdev: Option<String>,
    session: Option<BackgroundSession>,
    _dir: tempfile::TempDir,
}

impl HungDisk {
    /// A blank disk of `size` bytes (answering reads until [`HungDisk::hang`]).
    pub fn new(size: u64) -> Result<HungDisk> {
        let dir = tempfile::Builder::new()
            .prefix("rookery-hungdisk-")
            .tempdir()?;
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt)?;
        let state = Arc::new(State {
            size,
            hang: AtomicBool::new(false),
            held: Mutex::new(Vec::new()),
        });
        let mut cfg = Config::default();
        cfg.mount_options
            .push(MountOption::FSName("rookery-hungdisk".into()));
        let session = fuser::spawn_mount(Fs(state.clone()), &mnt, &cfg)
            .with_context(|| format!("cannot mount the FUSE file system on {}", mnt.display()))?;
        let mut disk = HungDisk {
            state,
            loopdev: None,
            session: Some(session),
            _dir: dir,
        };
        let file = mnt.join(NAME);
        let dev = run(
            "losetup",
            &["--find", "--show", "--read-only", &file.to_string_lossy()],
        )?;
        disk.loopdev = Some(dev.trim().to_string());
        Ok(disk)
    }

    /// `/dev/loopN`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(self.loopdev.clone().unwrap_or_default())
    }

    /// `loopN`.
    pub fn name(&self) -> String {
        self.name_of(self.loopdev.as_deref().unwrap_or_default())
    }

    fn name_of(&self, dev: &str) -> String {
        dev.rsplit('/').next().unwrap_or_default().to_string()
    }

    /// From now on reads are taken and never answered.
    pub fn hang(&self) {
        self.state.hang.store(true, Ordering::SeqCst);
    }

    /// Reads waiting for an answer right now.
    pub fn held_reads(&self) -> usize {
        self.state
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

impl Drop for HungDisk {
    fn drop(&mut self) {
        // Answer what is held (with EIO) so blocked readers return, then tear down.
        self.state.release();
        if let Some(dev) = self.loopdev.take() {
            let mut ok = false;
            for _ in 0..50 {
                if run("losetup", &["-d", &dev]).is_ok() {
                    ok = true;
                    break;
                }
                self.state.release();
                std::thread::sleep(Duration::from_millis(100));
            }
            if !ok {
                eprintln!("cleanup: run `losetup -d {dev}`");
            }
            // The detach completes when the kernel drops its last reference; until then the
            // loop device still holds the FUSE file and the unmount would fail with EBUSY.
            let backing = format!("/sys/block/{}/loop/backing_file", self.name_of(&dev));
            for _ in 0..100 {
                if !Path::new(&backing).exists() {
                    break;
                }
                self.state.release();
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if let Some(s) = self.session.take() {
            let mnt = self._dir.path().join("mnt");
            if let Err(e) = s.umount_and_join()
                && run("umount", &["-l", &mnt.to_string_lossy()]).is_err()
            {
                eprintln!(
                    "cleanup: unmount of {} failed ({e}): run `umount -l {}`",
                    mnt.display(),
                    mnt.display()
                );
            }
        }
    }
}
