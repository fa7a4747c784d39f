//! Host facts and block-device inventory (read-only).
//!
//! Owns everything `Request::Probe` answers: hostname, OS, kernel, CPUs, memory, and every
//! block device from `/sys/block` with its signatures and availability verdict. Nothing here
//! ever opens a device for writing; the only device opens are `O_RDONLY` (signature scan) and
//! `O_RDONLY|O_EXCL` (the kernel's "is anyone holding this?" test, which takes no lock
//! beyond the open itself and is closed at once).
//!
//! OS access goes through [`OsPaths`] (sysfs, procfs, /dev and /etc roots) so the parsing is
//! plain functions over files; the tests still run against real loop devices.
//!
//! Entry points for other modules (the wipe code of issue 4 uses them):
//! * [`probe_device`]: one device by kernel name or path, fully probed with its verdict.
//! * [`signatures::scan`]: the signature scan over any `Read + Seek`.

pub mod signatures;
pub mod verdict;

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rookery_proto::{
    BlockDevice, DeviceClass, DeviceKind, HostFacts, OsRelease, Partition, ProbeRequest,
    SkippedDevice, Transport,
};

use verdict::VerdictInputs;

/// Why a single device could not be probed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("block device {0} not found in /sys/block")]
    NotFound(String),
    #[error("{0} is a partition, not a whole block device")]
    Partition(String),
    #[error("block device {name} is not probed: {reason}")]
    Skipped { name: String, reason: String },
    #[error("cannot read {path}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// Roots of the OS interfaces the probe reads. [`OsPaths::default`] is the real system.
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

/// Probes this host: facts plus every block device (as [`ProbeRequest`] selects).
pub fn probe_host(req: &ProbeRequest) -> HostFacts {
    OsPaths::default().host_facts(req)
}

/// Probes one whole block device, given as a kernel name (`sdb`), a `/dev` path, or any
/// symlink to it (`/dev/disk/by-id/...`). Loop devices are refused unless `include_loop`.
/// Partitions are refused ([`ProbeError::Partition`]); probe their disk instead.
pub fn probe_device(name_or_path: &str, include_loop: bool) -> Result<BlockDevice, ProbeError> {
    OsPaths::default().device(name_or_path, include_loop)
}

/// Mount table, swap list and the like, read once per probe and shared by all devices.
#[derive(Debug, Default)]
struct SystemState {
    /// (major:minor, mountpoint, mount source)
    mounts: Vec<(String, String, String)>,
    /// Canonical paths of active swap areas.
    swaps: Vec<PathBuf>,
    /// (link path, canonical target) under /dev/disk/by-id
    by_id: Vec<(String, PathBuf)>,
    by_path: Vec<(String, PathBuf)>,
}

impl OsPaths {
    pub fn host_facts(&self, req: &ProbeRequest) -> HostFacts {
        let state = self.system_state();
        let mut block_devices = Vec::new();
        let mut skipped_devices = Vec::new();
        let only: BTreeSet<String> = req.only.iter().map(|o| self.kernel_name(o)).collect();
        let mut names: Vec<String> = fs::read_dir(self.sys.join("block"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort_by_key(|a| natural_key(a));
        // A requested device that is not a whole disk here must not vanish silently.
        for asked in &req.only {
            let name = self.kernel_name(asked);
            if !names.contains(&name) {
                let reason = if self
                    .sys
                    .join("class/block")
                    .join(&name)
                    .join("partition")
                    .exists()
                {
                    "a partition, not a whole block device (ask for its disk)"
                } else {
                    "not found in /sys/block"
                };
                skipped_devices.push(SkippedDevice {
                    name: asked.clone(),
                    reason: reason.into(),
                });
            }
        }
        for name in names {
            if !only.is_empty() && !only.contains(&name) {
                continue;
            }
            match self.classify(&name, req.include_loop) {
                Ok(kind) => block_devices.push(self.probe_one(&name, kind, &state)),
                Err(reason) => skipped_devices.push(SkippedDevice { name, reason }),
            }
        }
        HostFacts {
            hostname: self
                .read_trim("proc", "sys/kernel/hostname")
                .unwrap_or_default(),
            os: self.os_release(),
            kernel: self
                .read_trim("proc", "sys/kernel/osrelease")
                .unwrap_or_default(),
            arch: std::env::consts::ARCH.to_string(),
            cpus: self.cpus(),
            memory_bytes: self.memory_bytes(),
            block_devices,
            skipped_devices,
        }
    }

    /// See [`probe_device`].
    pub fn device(
        &self,
        name_or_path: &str,
        include_loop: bool,
    ) -> Result<BlockDevice, ProbeError> {
        let name = self.kernel_name(name_or_path);
        if !self.sys.join("block").join(&name).exists() {
            if self
                .sys
                .join("class/block")
                .join(&name)
                .join("partition")
                .exists()
            {
                return Err(ProbeError::Partition(name));
            }
            return Err(ProbeError::NotFound(name_or_path.to_string()));
        }
        let kind = self
            .classify(&name, include_loop)
            .map_err(|reason| ProbeError::Skipped {
                name: name.clone(),
                reason,
            })?;
        Ok(self.probe_one(&name, kind, &self.system_state()))
    }

    /// Kernel name for a name or path: `/dev/disk/by-id/x` → `sdb`, `/dev/sdb` → `sdb`.
    fn kernel_name(&self, name_or_path: &str) -> String {
        if !name_or_path.contains('/') {
            return name_or_path.to_string();
        }
        let p = fs::canonicalize(name_or_path).unwrap_or_else(|_| PathBuf::from(name_or_path));
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| name_or_path.to_string())
    }

    /// Which devices get a verdict; the `Err` is the reason a device is skipped.
    fn classify(&self, name: &str, include_loop: bool) -> Result<DeviceKind, String> {
        let attr = |a: &str| self.block_attr(name, a);
        if name.starts_with("ram") || name.starts_with("zram") {
            return Err("RAM disk".into());
        }
        if name.starts_with("dm-") || name.starts_with("md") {
            return Err("device-mapper/md device: reported as a holder of its disks".into());
        }
        if name.starts_with("sr") || name.starts_with("fd") {
            return Err("optical or floppy drive".into());
        }
        if name.starts_with("rbd") || name.starts_with("nbd") {
            return Err("network block device".into());
        }
        let kind = if name.starts_with("loop") {
            if !include_loop {
                return Err("loop device (probed only when loop devices are asked for)".into());
            }
            DeviceKind::Loop
        } else {
            DeviceKind::Disk
        };
        if attr("hidden").as_deref() == Some("1") {
            return Err("hidden NVMe multipath path (the namespace head is reported)".into());
        }
        if attr("size")
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
            == 0
        {
            return Err(if kind == DeviceKind::Loop {
                "loop device without a backing file".into()
            } else {
                "no medium (size 0)".into()
            });
        }
        Ok(kind)
    }

    fn probe_one(&self, name: &str, kind: DeviceKind, state: &SystemState) -> BlockDevice {
        let attr = |a: &str| self.block_attr(name, a);
        let num = |a: &str| attr(a).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        let path = self.dev.join(name);
        let size_bytes = num("size") * 512;
        let logical = num("queue/logical_block_size").max(512) as u32;
        let physical = num("queue/physical_block_size").max(logical as u64) as u32;
        let rotational = attr("queue/rotational").as_deref() == Some("1");
        let transport = self.transport(name, kind);
        let class = if rotational {
            DeviceClass::Hdd
        } else if transport == Transport::Nvme || name.contains("nvme") {
            DeviceClass::Nvme
        } else {
            DeviceClass::Ssd
        };
        let dev_no = attr("dev").unwrap_or_default();

        let mut partitions = self.partitions(name, logical, state);
        partitions.sort_by_key(|p| p.number);
        let holders = self.holders(&self.sys.join("block").join(name));
        let mut holder_names: Vec<String> = holders.clone();
        for p in &partitions {
            holder_names.extend(p.holders.iter().cloned());
        }
        holder_names.sort();
        holder_names.dedup();

        // Everything whose mount or swap makes this disk busy: itself, partitions, holders.
        let mut related: Vec<(String, String)> = vec![(name.to_string(), dev_no.clone())];
        for p in &partitions {
            related.push((
                p.name.clone(),
                self.class_attr(&p.name, "dev").unwrap_or_default(),
            ));
        }
        for h in &holder_names {
            related.push((h.clone(), self.class_attr(h, "dev").unwrap_or_default()));
        }
        let mut mountpoints = Vec::new();
        let mut swap = false;
        for (n, devno) in &related {
            mountpoints.extend(self.mountpoints_of(n, devno, state));
            let p = fs::canonicalize(self.dev.join(n)).unwrap_or_else(|_| self.dev.join(n));
            swap |= state.swaps.contains(&p);
        }
        mountpoints.sort();
        mountpoints.dedup();
        let holds_root = mountpoints.iter().any(|m| m == "/");

        let in_use = matches!(
            OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_EXCL)
                .open(&path),
            Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY)
        );

        let mut inputs = VerdictInputs::default();
        let signatures = match scan_path(&path, size_bytes, logical) {
            Ok(r) => {
                inputs.used_by_ceph_disk = r.used_by_ceph_disk();
                r.signatures
            }
            Err(e) => {
                inputs.unreadable = Some(format!("{}: {e}", path.display()));
                Vec::new()
            }
        };

        let canon = fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        let links = |list: &[(String, PathBuf)]| -> Vec<String> {
            let mut v: Vec<String> = list
                .iter()
                .filter(|(l, t)| *t == canon && !is_content_link(l))
                .map(|(l, _)| l.clone())
                .collect();
            // Most stable first: WWN / EUI, then the rest alphabetically.
            v.sort_by_key(|l| {
                (
                    !(l.contains("/wwn-") || l.contains("/nvme-eui.")),
                    l.clone(),
                )
            });
            v
        };

        let mut dev = BlockDevice {
            name: name.to_string(),
            path: path.to_string_lossy().into_owned(),
            kind,
            size_bytes,
            logical_sector_size: logical,
            physical_sector_size: physical,
            rotational,
            transport,
            class,
            model: attr("device/model").filter(|s| !s.is_empty()),
            vendor: attr("device/vendor").filter(|s| !s.is_empty()),
            serial: self.serial(name),
            wwn: attr("wwid")
                .or_else(|| attr("device/wwid"))
                .filter(|s| !s.is_empty()),
            by_id: links(&state.by_id),
            by_path: links(&state.by_path),
            removable: attr("removable").as_deref() == Some("1"),
            read_only: attr("ro").as_deref() == Some("1"),
            partitions,
            holders: holder_names,
            mountpoints,
            swap,
            holds_root,
            in_use,
            signatures,
            available: false,
            reject_reasons: Vec::new(),
        };
        dev.reject_reasons = verdict::reject_reasons(&dev, &inputs);
        dev.available = dev.reject_reasons.is_empty();
        dev
    }

    fn serial(&self, name: &str) -> Option<String> {
        let attr = |a: &str| self.block_attr(name, a).filter(|s| !s.is_empty());
        attr("device/serial")
            .or_else(|| attr("serial"))
            .or_else(|| {
                // SCSI VPD page 0x80: 4-byte header, then the serial (length in byte 3).
                let raw =
                    fs::read(self.sys.join("block").join(name).join("device/vpd_pg80")).ok()?;
                let len = *raw.get(3)? as usize;
                let s = String::from_utf8_lossy(raw.get(4..4 + len)?)
                    .trim()
                    .to_string();
                (!s.is_empty()).then_some(s)
            })
    }

    fn transport(&self, name: &str, kind: DeviceKind) -> Transport {
        if kind == DeviceKind::Loop {
            return Transport::Loop;
        }
        let base = self.sys.join("block").join(name);
        let real = fs::canonicalize(&base)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let subsystem = fs::read_link(base.join("device/subsystem"))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        if name.starts_with("nvme") || subsystem == "nvme" || real.contains("/nvme") {
            Transport::Nvme
        } else if real.contains("/usb") {
            Transport::Usb
        } else if subsystem == "virtio" || name.starts_with("vd") {
            Transport::Virtio
        } else if name.starts_with("mmcblk") || subsystem == "mmc" {
            Transport::Mmc
        } else if subsystem == "scsi" {
            if base.join("device/sas_address").exists() || real.contains("/end_device-") {
                Transport::Sas
            } else if real.contains("/ata") {
                Transport::Sata
            } else {
                Transport::Scsi
            }
        } else {
            Transport::Unknown
        }
    }

    fn partitions(&self, disk: &str, logical: u32, state: &SystemState) -> Vec<Partition> {
        let dir = self.sys.join("block").join(disk);
        let Ok(rd) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in rd.filter_map(|e| e.ok()) {
            let pdir = e.path();
            let Some(number) = read_trim_path(&pdir.join("partition")).and_then(|s| s.parse().ok())
            else {
                continue;
            };
            let name = e.file_name().to_string_lossy().into_owned();
            let num = |a: &str| {
                read_trim_path(&pdir.join(a))
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let size_bytes = num("size") * 512;
            let devno = read_trim_path(&pdir.join("dev")).unwrap_or_default();
            let path = self.dev.join(&name);
            out.push(Partition {
                path: path.to_string_lossy().into_owned(),
                number,
                start_bytes: num("start") * 512,
                size_bytes,
                mountpoints: self.mountpoints_of(&name, &devno, state),
                holders: self.holders(&pdir),
                // A partition we cannot read simply reports no signatures: the disk is
                // already unavailable because it has partitions.
                signatures: scan_path(&path, size_bytes, logical)
                    .map(|r| r.signatures)
                    .unwrap_or_default(),
                name,
            });
        }
        out
    }

    fn holders(&self, dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir.join("holders"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    fn mountpoints_of(&self, name: &str, devno: &str, state: &SystemState) -> Vec<String> {
        let dev_path = self.dev.join(name);
        let canon = fs::canonicalize(&dev_path).unwrap_or(dev_path);
        state
            .mounts
            .iter()
            .filter(|(mm, _, src)| {
                (!devno.is_empty() && mm == devno)
                    // btrfs (and others) report an anonymous 0:N device; match the source.
                    || (src.starts_with('/')
                        && fs::canonicalize(src).is_ok_and(|s| s == canon))
            })
            .map(|(_, mp, _)| mp.clone())
            .collect()
    }

    fn system_state(&self) -> SystemState {
        let mut st = SystemState::default();
        if let Ok(text) = fs::read_to_string(self.proc_.join("self/mountinfo")) {
            st.mounts = parse_mountinfo(&text);
        }
        if let Ok(text) = fs::read_to_string(self.proc_.join("swaps")) {
            st.swaps = text
                .lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().next())
                .map(|p| {
                    let p = PathBuf::from(unescape_octal(p));
                    fs::canonicalize(&p).unwrap_or(p)
                })
                .collect();
        }
        let links = |sub: &str| -> Vec<(String, PathBuf)> {
            let dir = self.dev.join("disk").join(sub);
            fs::read_dir(&dir)
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .filter_map(|e| {
                            let t = fs::canonicalize(e.path()).ok()?;
                            Some((e.path().to_string_lossy().into_owned(), t))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        st.by_id = links("by-id");
        st.by_path = links("by-path");
        st
    }

    fn block_attr(&self, name: &str, attr: &str) -> Option<String> {
        read_trim_path(&self.sys.join("block").join(name).join(attr))
    }

    fn class_attr(&self, name: &str, attr: &str) -> Option<String> {
        read_trim_path(&self.sys.join("class/block").join(name).join(attr))
    }

    fn read_trim(&self, root: &str, rel: &str) -> Option<String> {
        let base = match root {
            "proc" => &self.proc_,
            "etc" => &self.etc,
            _ => &self.sys,
        };
        read_trim_path(&base.join(rel))
    }

    fn os_release(&self) -> OsRelease {
        let text = fs::read_to_string(self.etc.join("os-release"))
            .or_else(|_| fs::read_to_string("/usr/lib/os-release"))
            .unwrap_or_default();
        parse_os_release(&text)
    }

    fn cpus(&self) -> usize {
        self.read_trim("sys", "devices/system/cpu/online")
            .and_then(|s| count_cpu_list(&s))
            .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
            .unwrap_or(1)
    }

    fn memory_bytes(&self) -> u64 {
        fs::read_to_string(self.proc_.join("meminfo"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    }
}

/// Opens `path` read-only and scans it. The only way this module reads device contents.
fn scan_path(path: &Path, size: u64, logical: u32) -> io::Result<signatures::ScanResult> {
    let mut f = File::open(path)?;
    signatures::scan(&mut f, size, logical)
}

fn read_trim_path(p: &Path) -> Option<String> {
    fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

/// `sda` < `sdb` < `sdaa`, `loop2` < `loop10`.
fn natural_key(s: &str) -> (usize, String, u64) {
    let digits = s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (head, tail) = s.split_at(s.len() - digits);
    (head.len(), head.to_string(), tail.parse().unwrap_or(0))
}

/// `0-3,5,7-8` → 7.
fn count_cpu_list(s: &str) -> Option<usize> {
    let mut n = 0;
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            // Checked: a reversed or absurd range is "unknown", never a panic or a wrap.
            Some((a, b)) => {
                let span = b
                    .parse::<usize>()
                    .ok()?
                    .checked_sub(a.parse::<usize>().ok()?)?
                    .checked_add(1)?;
                n = usize::checked_add(n, span)?;
            }
            None => {
                part.parse::<usize>().ok()?;
                n = usize::checked_add(n, 1)?;
            }
        }
    }
    (n > 0).then_some(n)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // `\400`..`\777` do not fit a byte (u8 arithmetic would overflow): kept verbatim.
        let code = b.get(i + 1..i + 4).and_then(|d| {
            d.iter()
                .all(|c| (b'0'..=b'7').contains(c))
                .then(|| d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0')))
        });
        if let (b'\\', Some(Ok(byte))) = (b[i], code.map(u8::try_from)) {
            out.push(byte);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// (major:minor, mountpoint, source) per line of `/proc/self/mountinfo`.
fn parse_mountinfo(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some((
                f.get(2)?.to_string(),
                unescape_octal(f.get(4)?),
                unescape_octal(f.get(sep + 2)?),
            ))
        })
        .collect()
}

fn parse_os_release(text: &str) -> OsRelease {
    let mut os = OsRelease::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
        match k.trim() {
            "ID" => os.id = v,
            "NAME" => os.name = v,
            "VERSION_ID" => os.version_id = v,
            "PRETTY_NAME" => os.pretty_name = v,
            _ => {}
        }
    }
    os
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_proto::RejectReason;

    #[test]
    fn mountinfo_parsing() {
        let t = "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                 40 22 0:45 / /mnt/my\\040disk rw - btrfs /dev/loop3 rw\n";
        let m = parse_mountinfo(t);
        assert_eq!(m[0], ("254:0".into(), "/".into(), "/dev/vda".into()));
        assert_eq!(m[1].1, "/mnt/my disk");
        assert_eq!(m[1].2, "/dev/loop3");
        // `\777` overflowed u8 arithmetic (a panic in debug builds); it is kept as text.
        assert_eq!(unescape_octal("a\\777b\\101"), "a\\777bA");
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(count_cpu_list("0-3,5,7-8"), Some(7));
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list(""), None);
        // A reversed range underflowed (a panic in debug builds); a huge one overflowed.
        assert_eq!(count_cpu_list("3-1"), None);
        assert_eq!(count_cpu_list("0-18446744073709551615"), None);
    }

    #[test]
    fn os_release_parsing() {
        let os = parse_os_release(
            "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
        );
        assert_eq!(os.id, "debian");
        assert_eq!(os.version_id, "12");
        assert_eq!(os.pretty_name, "Debian GNU/Linux 12 (bookworm)");
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["loop10", "sdaa", "loop2", "sdb", "sda"];
        v.sort_by_key(|a| natural_key(a));
        assert_eq!(v, vec!["sda", "sdb", "loop2", "loop10", "sdaa"]);
    }

    /// A fake sysfs + /dev tree: hardware this lab lacks (NVMe, SATA, SAS, USB, virtio)
    /// laid out like the kernel does, with /dev nodes as sparse regular files.
    struct FakeHost {
        dir: tempfile::TempDir,
    }

    impl FakeHost {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            for d in [
                "sys/block",
                "sys/class/block",
                "sys/bus",
                "proc",
                "dev/disk/by-id",
                "etc",
            ] {
                fs::create_dir_all(dir.path().join(d)).unwrap();
            }
            FakeHost { dir }
        }

        fn paths(&self) -> OsPaths {
            let r = self.dir.path();
            OsPaths {
                sys: r.join("sys"),
                proc_: r.join("proc"),
                dev: r.join("dev"),
                etc: r.join("etc"),
            }
        }

        /// Adds disk `name` whose sysfs node lives at `devpath` (under sys/devices) on bus
        /// `subsystem`, with `attrs` (relative file → content) and a /dev node of `size`.
        fn disk(
            &self,
            name: &str,
            devpath: &str,
            subsystem: &str,
            size: u64,
            attrs: &[(&str, &str)],
        ) {
            let r = self.dir.path();
            let node = r.join("sys/devices").join(devpath).join("block").join(name);
            let device = r.join("sys/devices").join(devpath);
            fs::create_dir_all(node.join("queue")).unwrap();
            fs::create_dir_all(r.join("sys/bus").join(subsystem)).unwrap();
            std::os::unix::fs::symlink(&device, node.join("device")).unwrap();
            let sub = device.join("subsystem");
            if !sub.exists() {
                std::os::unix::fs::symlink(r.join("sys/bus").join(subsystem), sub).unwrap();
            }
            std::os::unix::fs::symlink(&node, r.join("sys/block").join(name)).unwrap();
            std::os::unix::fs::symlink(&node, r.join("sys/class/block").join(name)).unwrap();
            let defaults = [
                ("size", (size / 512).to_string()),
                ("dev", "8:0".to_string()),
                ("ro", "0".into()),
                ("removable", "0".into()),
                ("queue/rotational", "0".into()),
                ("queue/logical_block_size", "512".into()),
                ("queue/physical_block_size", "4096".into()),
            ];
            for (k, v) in defaults {
                fs::write(node.join(k), v).unwrap();
            }
            for (k, v) in attrs {
                let p = node.join(k);
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(p, v).unwrap();
            }
            fs::File::create(r.join("dev").join(name))
                .unwrap()
                .set_len(size)
                .unwrap();
        }
    }

    const GIB: u64 = 1 << 30;

    #[test]
    fn transports_and_classes_from_sysfs_layout() {
        let h = FakeHost::new();
        h.disk(
            "nvme0n1",
            "pci0000:00/0000:00:04.0/nvme/nvme0",
            "nvme",
            10 * GIB,
            &[
                ("device/model", "Samsung SSD 980 PRO 1TB                 "),
                ("device/serial", "  S5GXNF0R123456  "),
                ("wwid", "eui.002538b111b2c3d4"),
            ],
        );
        h.disk(
            "sda",
            "pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0",
            "scsi",
            10 * GIB,
            &[
                ("queue/rotational", "1"),
                ("device/model", "WDC WD40EFRX-68N"),
                ("device/vendor", "ATA     "),
                ("device/wwid", "naa.50014ee2b5c6d7e8"),
            ],
        );
        h.disk(
            "sdb",
            "pci0000:00/0000:00:03.0/host1/port-1:0/end_device-1:0/target1:0:0/1:0:0:0",
            "scsi",
            10 * GIB,
            &[("device/sas_address", "0x5000c500a1b2c3d4")],
        );
        h.disk(
            "sdc",
            "pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host2/target2:0:0/2:0:0:0",
            "scsi",
            10 * GIB,
            &[("removable", "1")],
        );
        h.disk(
            "vda",
            "pci0000:00/0000:00:05.0/virtio1",
            "virtio",
            10 * GIB,
            &[("serial", "VMROOT01")],
        );
        h.disk("ram0", "virtual", "none", GIB, &[]);
        h.disk("dm-0", "virtual2", "none", GIB, &[]);

        let facts = h.paths().host_facts(&ProbeRequest::default());
        let by_name = |n: &str| facts.block_devices.iter().find(|d| d.name == n).unwrap();

        let nvme = by_name("nvme0n1");
        assert_eq!(
            (nvme.transport, nvme.class),
            (Transport::Nvme, DeviceClass::Nvme)
        );
        assert_eq!(nvme.model.as_deref(), Some("Samsung SSD 980 PRO 1TB"));
        assert_eq!(nvme.serial.as_deref(), Some("S5GXNF0R123456"));
        assert_eq!(nvme.wwn.as_deref(), Some("eui.002538b111b2c3d4"));
        assert!(nvme.available, "{:?}", nvme.reject_reasons);
        assert_eq!(nvme.physical_sector_size, 4096);

        let sata = by_name("sda");
        assert_eq!(
            (sata.transport, sata.class),
            (Transport::Sata, DeviceClass::Hdd)
        );
        assert_eq!(sata.vendor.as_deref(), Some("ATA"));
        assert_eq!(sata.wwn.as_deref(), Some("naa.50014ee2b5c6d7e8"));

        let sas = by_name("sdb");
        assert_eq!(
            (sas.transport, sas.class),
            (Transport::Sas, DeviceClass::Ssd)
        );

        let usb = by_name("sdc");
        assert_eq!(usb.transport, Transport::Usb);
        assert_eq!(
            usb.reject_reasons,
            vec![RejectReason::Removable, RejectReason::Usb]
        );

        let vda = by_name("vda");
        assert_eq!(vda.transport, Transport::Virtio);
        assert_eq!(vda.serial.as_deref(), Some("VMROOT01"));

        let skipped: Vec<&str> = facts
            .skipped_devices
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(skipped, vec!["dm-0", "ram0"]);
        assert_eq!(facts.block_devices.len(), 5);
    }

    #[test]
    fn unreadable_device_is_never_available() {
        let h = FakeHost::new();
        h.disk(
            "sda",
            "pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0",
            "scsi",
            10 * GIB,
            &[],
        );
        fs::remove_file(h.dir.path().join("dev/sda")).unwrap();
        let d = h.paths().device("sda", false).unwrap();
        assert!(!d.available);
        assert!(matches!(d.reject_reasons[0], RejectReason::Unreadable(_)));
    }

    #[test]
    fn by_id_links_and_mountinfo_of_partitions() {
        let h = FakeHost::new();
        let r = h.dir.path();
        h.disk(
            "sda",
            "pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0",
            "scsi",
            10 * GIB,
            &[],
        );
        let part = r.join("sys/block/sda/sda1");
        fs::create_dir_all(&part).unwrap();
        for (k, v) in [
            ("partition", "1"),
            ("start", "2048"),
            ("size", "204800"),
            ("dev", "8:1"),
        ] {
            fs::write(part.join(k), v).unwrap();
        }
        std::os::unix::fs::symlink(&part, r.join("sys/class/block/sda1")).unwrap();
        fs::File::create(r.join("dev/sda1"))
            .unwrap()
            .set_len(100 << 20)
            .unwrap();
        for l in ["ata-WDC_WD40EFRX_X", "wwn-0x50014ee2b5c6d7e8"] {
            std::os::unix::fs::symlink(r.join("dev/sda"), r.join("dev/disk/by-id").join(l))
                .unwrap();
        }
        fs::create_dir_all(r.join("proc/self")).unwrap();
        fs::write(
            r.join("proc/self/mountinfo"),
            "30 1 8:1 / / rw - ext4 /dev/sda1 rw\n",
        )
        .unwrap();
        fs::write(r.join("proc/swaps"), "Filename Type Size Used Priority\n").unwrap();
        let d = h
            .paths()
            .device(
                &r.join("dev/disk/by-id/ata-WDC_WD40EFRX_X")
                    .to_string_lossy(),
                false,
            )
            .unwrap();
        assert_eq!(d.name, "sda");
        assert!(
            d.by_id[0].ends_with("/wwn-0x50014ee2b5c6d7e8"),
            "{:?}",
            d.by_id
        );
        assert_eq!(d.stable_id(), d.by_id[0]);
        assert_eq!(d.partitions.len(), 1);
        assert_eq!(d.partitions[0].start_bytes, 2048 * 512);
        assert_eq!(d.partitions[0].mountpoints, vec!["/"]);
        assert!(d.holds_root);
        assert!(d.reject_reasons.contains(&RejectReason::HoldsRoot));
        assert!(d.reject_reasons.contains(&RejectReason::HasPartitions));
        assert!(matches!(
            h.paths().device("sda1", false),
            Err(ProbeError::Partition(_))
        ));
        let facts = h.paths().host_facts(&ProbeRequest {
            include_loop: false,
            only: vec!["sda1".into(), "sdz".into()],
        });
        assert!(facts.block_devices.is_empty());
        let reasons: Vec<_> = facts
            .skipped_devices
            .iter()
            .map(|s| (s.name.as_str(), s.reason.contains("partition")))
            .collect();
        assert_eq!(reasons, vec![("sda1", true), ("sdz", false)]);
    }
}

/// by-id links that udev derives from what is written *on* the disk (an LVM PV's UUID, md
/// array names) rather than from the hardware. They vanish when the disk is wiped, so they
/// can never serve as the disk's stable identity.
pub fn is_content_link(link: &str) -> bool {
    let name = link.rsplit('/').next().unwrap_or(link);
    [
        "lvm-pv-uuid-",
        "md-uuid-",
        "md-name-",
        "dm-uuid-",
        "dm-name-",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

#[cfg(test)]
mod content_link_tests {
    use super::is_content_link;

    #[test]
    fn content_derived_links_are_not_identities() {
        assert!(is_content_link("/dev/disk/by-id/lvm-pv-uuid-abc"));
        assert!(is_content_link("/dev/disk/by-id/md-uuid-1:2:3:4"));
        assert!(!is_content_link("/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"));
        assert!(!is_content_link(
            "/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_VMNVME01"
        ));
        assert!(!is_content_link(
            "/dev/disk/by-id/ata-QEMU_HARDDISK_VMHDD01"
        ));
    }
}
