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

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

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
        let dev = run("losetup", &args)?.trim().to_string();
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

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let d = self.path_str();
        // Remove partition nodes first: a loop device with registered partitions detaches
        // fine, but stale BLKPG partitions would confuse the next user of loopN.
        let _ = run("partx", &["-d", &d]);
        if let Err(e) = run("losetup", &["-d", &d]) {
            eprintln!(
                "rookery-tests: could not detach {d}: {e:#}\n  clean up by hand with:\n    \
                 umount {d}* ; swapoff {d} ; losetup -d {d} ; rm -f {}",
                self.file.display()
            );
        }
    }
}
