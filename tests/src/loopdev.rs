//! Real loop devices over sparse files, for device tests (probe verdicts, wipes).
//!
//! A [`LoopDevice`] owns a sparse backing file in its own temp dir and a `/dev/loopN`
//! attached with `losetup --find --show`; `Drop` detaches it and removes the file, and when
//! that fails prints the exact commands a human must run.
//!
//! Partitions: kernels without the GPT/MBR parsers (like this lab's) never create
//! `/dev/loopNpM` on their own, even with `losetup -P`; [`LoopDevice::sync_partitions`] runs
//! `partx -u` (BLKPG ioctls from user space), which works with and without the parsers.
//!
//! Needs root, `losetup`, `partx` and `/dev/loop-control`; check with [`LoopDevice::prerequisites`].
//!
//! [`Untouched`] is how every wipe test proves it touched nothing but its target: a
//! byte-exact digest of other devices (content and kernel partitions) before and after.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// Serialises this process's loop attaches, so a test that detaches a device and attaches
/// another file at the same name is not raced by a `losetup --find` of a parallel test.
static ATTACH: Mutex<()> = Mutex::new(());

/// One attached loop device. Detached and deleted on drop.
pub struct LoopDevice {
    dev: PathBuf,
    name: String,
    file: PathBuf,
    // Kept for its Drop (removes the directory holding the backing file).
    _dir: tempfile::TempDir,
}

/// Options for [`LoopDevice::with`].
#[derive(Debug, Clone)]
pub struct LoopOptions {
    pub size_bytes: u64,
    /// `losetup -r`: the kernel reports `ro=1`.
    pub read_only: bool,
    /// `losetup --sector-size` (512 or 4096 for a 4Kn disk).
    pub sector_size: Option<u32>,
    /// Force `queue/rotational` (loop copies it from the backing fs otherwise).
    pub rotational: Option<bool>,
}

impl LoopOptions {
    pub fn new(size_bytes: u64) -> Self {
        LoopOptions {
            size_bytes,
            read_only: false,
            sector_size: None,
            rotational: None,
        }
    }
}

/// Runs a command and returns its stdout; an error carries the command line and stderr.
pub fn run(prog: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(prog)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .with_context(|| format!("cannot run {prog}"))?;
    if !out.status.success() {
        bail!(
            "`{prog} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl LoopDevice {
    /// What is missing for loop devices here, if anything (for `require::prerequisite`).
    pub fn prerequisites() -> Result<(), String> {
        if !crate::require::is_root() {
            return Err("root (loop devices)".into());
        }
        for p in ["losetup", "partx"] {
            if !crate::require::have_program(p) {
                return Err(format!("program {p} (util-linux)"));
            }
        }
        if !Path::new("/dev/loop-control").exists() {
            return Err("/dev/loop-control (loop driver)".into());
        }
        Ok(())
    }

    /// A read-write loop device of `size_bytes` over a sparse file. Panics on failure (tests).
    pub fn new(size_bytes: u64) -> LoopDevice {
        match Self::with(LoopOptions::new(size_bytes)) {
            Ok(l) => l,
            Err(e) => panic!("cannot create a {size_bytes}-byte loop device: {e:#}"),
        }
    }

    pub fn with(opts: LoopOptions) -> Result<LoopDevice> {
        let dir = tempfile::Builder::new()
            .prefix("rookery-loop-")
            .tempdir()
            .context("cannot create a temp dir for the loop backing file")?;
        let file = dir.path().join("disk.img");
        std::fs::File::create(&file)
            .and_then(|f| f.set_len(opts.size_bytes))
            .with_context(|| format!("cannot create sparse file {}", file.display()))?;
        let file_s = file.to_string_lossy().into_owned();
        let mut args = vec!["--find", "--show"];
        if opts.read_only {
            args.push("--read-only");
        }
        let ss;
        if let Some(s) = opts.sector_size {
            ss = s.to_string();
            args.push("--sector-size");
            args.push(&ss);
        }
        args.push(&file_s);
        let dev = {
            let _serial = ATTACH.lock().unwrap_or_else(PoisonError::into_inner);
            run("losetup", &args)?.trim().to_string()
        };
        if !dev.starts_with("/dev/loop") {
            bail!("losetup printed {dev:?} instead of a loop device path");
        }
        let name = dev.trim_start_matches("/dev/").to_string();
        let lo = LoopDevice {
            dev: PathBuf::from(&dev),
            name,
            file,
            _dir: dir,
        };
        if let Some(r) = opts.rotational {
            lo.set_rotational(r)?;
        }
        Ok(lo)
    }

    /// `/dev/loopN`.
    pub fn path(&self) -> &Path {
        &self.dev
    }

    /// `/dev/loopN` as a string (for command arguments).
    pub fn path_str(&self) -> String {
        self.dev.to_string_lossy().into_owned()
    }

    /// Kernel name, `loopN`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The sparse backing file (writing it bypasses the loop device's page cache; prefer the
    /// device path).
    pub fn backing_file(&self) -> &Path {
        &self.file
    }

    /// The temp dir that holds the backing file (and is removed with it).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// A small disk no plan ever names: a DOS table with two kernel partitions, and non-zero
    /// bytes in every MiB (head, both partitions, tail). A stray write, discard or partition
    /// deletion aimed at another device shows up in its [`content_digest`].
    pub fn bystander() -> Result<LoopDevice> {
        const MIB: usize = 1 << 20;
        let lo = LoopDevice::with(LoopOptions::new(64 * MIB as u64))?;
        let dev = std::fs::OpenOptions::new()
            .write(true)
            .open(&lo.dev)
            .with_context(|| format!("cannot open {} for writing", lo.dev.display()))?;
        for i in 0..64 {
            let block: Vec<u8> = (0..4096).map(|j| (i * 31 + j % 251 + 1) as u8).collect();
            dev.write_all_at(&block, (i * MIB) as u64)?;
        }
        dev.sync_all()?;
        // Two primary partitions, 1-17 MiB and 17-33 MiB (type 0x83), and the 0x55AA marker.
        let mut mbr = vec![0u8; 512];
        for (slot, start) in [(0usize, 2048u32), (1, 34816)] {
            let e = 0x1BE + 16 * slot;
            mbr[e + 4] = 0x83;
            mbr[e + 8..e + 12].copy_from_slice(&start.to_le_bytes());
            mbr[e + 12..e + 16].copy_from_slice(&32768u32.to_le_bytes());
        }
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        lo.write_at(0, &mbr)?;
        lo.sync_partitions()?;
        Ok(lo)
    }

    /// Detaches this device and attaches `file` at the same `/dev/loopN`: another medium
    /// under the same name, as a swapped disk would be. Fails (and the test should retry with
    /// a fresh device) if another process takes the freed device first.
    pub fn reattach(&self, file: &Path) -> Result<()> {
        reattach(&self.path_str(), file)
    }

    /// `/dev/loopNpM`.
    pub fn partition_path(&self, number: u32) -> PathBuf {
        PathBuf::from(format!("{}p{number}", self.dev.display()))
    }

    /// Makes the kernel's partition list match the on-disk table (`partx -u`, falling back
    /// to `partx -a` on an empty kernel list, since old partx versions only add).
    pub fn sync_partitions(&self) -> Result<()> {
        let d = self.path_str();
        if run("partx", &["-u", &d]).is_err() {
            run("partx", &["-a", &d])?;
        }
        Ok(())
    }

    /// Writes `queue/rotational` (root can, for any block queue).
    pub fn set_rotational(&self, rotational: bool) -> Result<()> {
        let p = format!("/sys/block/{}/queue/rotational", self.name);
        std::fs::write(&p, if rotational { "1" } else { "0" })
            .with_context(|| format!("cannot write {p}"))
    }

    /// Writes `data` at byte `offset` of the device (through the device, so readers of the
    /// device see it at once) and syncs.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.dev)
            .with_context(|| format!("cannot open {} for writing", self.dev.display()))?;
        f.seek(SeekFrom::Start(offset))?;
        f.write_all(data)?;
        f.sync_all()
            .with_context(|| format!("cannot sync {}", self.dev.display()))
    }
}

/// [`LoopDevice::reattach`] by device path, for use where the `LoopDevice` is not at hand
/// (a hook that runs inside the code under test).
pub fn reattach(dev: &str, file: &Path) -> Result<()> {
    let _serial = ATTACH.lock().unwrap_or_else(PoisonError::into_inner);
    let _ = run("partx", &["-d", dev]);
    run("losetup", &["-d", dev])?;
    let f = file.to_string_lossy();
    run("losetup", &[dev, &f]).with_context(|| {
        format!("{dev} was taken by another process after the detach; retry the test")
    })?;
    Ok(())
}

const CHUNK: u64 = 64 << 10;

/// A byte-exact digest of a loop device: the sha256 of every non-zero 64 KiB chunk (with its
/// index), its size, and the kernel's partitions of it. Only the backing file's data extents
/// are read (a hole reads as zeros), so a 6 GiB sparse device takes milliseconds; the
/// device's cache is flushed to the file first, so a write not yet synced still counts.
pub fn content_digest(dev: &Path) -> Result<String> {
    use nix::unistd::{Whence, lseek};
    let name = dev
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .with_context(|| format!("{} has no device name", dev.display()))?;
    let sys = Path::new("/sys/block").join(&name);
    let attr = |a: &str| -> Result<String> {
        std::fs::read_to_string(sys.join(a))
            .map(|s| s.trim().to_string())
            .with_context(|| format!("cannot read {}", sys.join(a).display()))
    };
    let size: u64 = attr("size")?.parse::<u64>().context("size")? * 512;
    let backing = attr("loop/backing_file")?;
    let device = File::open(dev).with_context(|| format!("cannot open {}", dev.display()))?;
    device
        .sync_all()
        .with_context(|| format!("cannot flush {}", dev.display()))?;
    let file = File::open(&backing).with_context(|| format!("cannot open {backing}"))?;
    let mut h = Sha256::new();
    h.update(size.to_le_bytes());
    let mut buf = vec![0u8; CHUNK as usize];
    let mut next_chunk = 0u64;
    let mut pos = 0i64;
    loop {
        let data = match lseek(&file, pos, Whence::SeekData) {
            Ok(d) => d as u64,
            Err(nix::errno::Errno::ENXIO) => break,
            Err(e) => bail!("SEEK_DATA on {backing}: {e}"),
        };
        if data >= size {
            break;
        }
        let hole = lseek(&file, data as i64, Whence::SeekHole)
            .map(|h| h as u64)
            .unwrap_or(size)
            .min(size);
        for chunk in (data / CHUNK).max(next_chunk)..hole.div_ceil(CHUNK) {
            let off = chunk * CHUNK;
            let n = CHUNK.min(size - off) as usize;
            device
                .read_exact_at(&mut buf[..n], off)
                .with_context(|| format!("reading {} at {off}", dev.display()))?;
            if buf[..n].iter().any(|&b| b != 0) {
                h.update(chunk.to_le_bytes());
                h.update(&buf[..n]);
            }
            next_chunk = chunk + 1;
        }
        pos = hole as i64;
    }
    let mut parts: Vec<String> = std::fs::read_dir(&sys)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().join("partition").exists())
                .map(|e| {
                    let p = e.path();
                    let r = |a: &str| std::fs::read_to_string(p.join(a)).unwrap_or_default();
                    format!(
                        "{} {} {}",
                        e.file_name().to_string_lossy(),
                        r("start").trim(),
                        r("size").trim()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    parts.sort();
    h.update(parts.join("\n").as_bytes());
    let mut hex = String::new();
    for b in h.finalize() {
        hex.push_str(&format!("{b:02x}"));
    }
    Ok(hex)
}

/// Devices a test must leave alone, digested before the step under test; check them after it
/// with [`Untouched::assert_unchanged`].
#[derive(Debug)]
pub struct Untouched {
    before: Vec<(PathBuf, String)>,
}

impl Untouched {
    /// Digests `devs` now. Panics (a test helper) when one cannot be read.
    #[track_caller]
    pub fn snapshot<P: AsRef<Path>>(devs: impl IntoIterator<Item = P>) -> Untouched {
        let before = devs
            .into_iter()
            .map(|d| {
                let d = d.as_ref().to_path_buf();
                let digest = content_digest(&d)
                    .unwrap_or_else(|e| panic!("cannot digest {}: {e:#}", d.display()));
                (d, digest)
            })
            .collect();
        Untouched { before }
    }

    /// Panics naming every device whose bytes or kernel partitions changed.
    #[track_caller]
    pub fn assert_unchanged(&self) {
        let changed: Vec<String> = self
            .before
            .iter()
            .filter(|(d, was)| content_digest(d).ok().as_ref() != Some(was))
            .map(|(d, _)| d.display().to_string())
            .collect();
        assert!(
            changed.is_empty(),
            "devices that were not the target changed: {}",
            changed.join(", ")
        );
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let d = self.path_str();
        // Remove partition nodes first: a loop device with registered partitions detaches
        // fine, but stale BLKPG partitions would confuse the next user of loopN.
        let _ = run("partx", &["-d", &d]);
        let detached = {
            let _serial = ATTACH.lock().unwrap_or_else(PoisonError::into_inner);
            run("losetup", &["-d", &d])
        };
        if let Err(e) = detached {
            eprintln!(
                "rookery-tests: could not detach {d}: {e:#}\n  clean up by hand with:\n    \
                 umount {d}* ; swapoff {d} ; losetup -d {d} ; rm -f {}",
                self.file.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The neighbour check must be able to fail: one byte, a discard-like hole punched by
    /// zeroing, or one dropped kernel partition each change the digest.
    #[test]
    fn the_digest_sees_one_byte_and_one_partition() {
        let pre = LoopDevice::prerequisites();
        if !crate::require::prerequisite(pre.is_ok(), pre.as_ref().err().map_or("", |s| s)) {
            return;
        }
        let lo = LoopDevice::bystander().unwrap();
        let first = content_digest(lo.path()).unwrap();
        assert_eq!(content_digest(lo.path()).unwrap(), first, "stable");
        let u = Untouched::snapshot([lo.path()]);
        u.assert_unchanged();

        lo.write_at((40 << 20) + 8192, &[1]).unwrap();
        let one_byte = content_digest(lo.path()).unwrap();
        assert_ne!(one_byte, first);
        assert!(std::panic::catch_unwind(|| u.assert_unchanged()).is_err());

        lo.write_at((40 << 20) + 8192, &[0]).unwrap();
        assert_eq!(
            content_digest(lo.path()).unwrap(),
            first,
            "same bytes, same digest"
        );

        run("partx", &["-d", "--nr", "2", &lo.path_str()]).unwrap();
        assert_ne!(
            content_digest(lo.path()).unwrap(),
            first,
            "a partition went away"
        );
    }
}
