//! Host facts and block-device inventory (read-only).
//!
//! Owns everything `Request::Probe` answers: hostname, OS, kernel, CPUs, memory, and every
//! block device from `/sys/block` with its signatures and availability verdict. Nothing here
//! ever opens a device for writing; the only device opens are `O_RDONLY` (signature scan) and
//! `O_RDONLY|O_EXCL` (the kernel's "is anyone holding this?" test, which takes no lock
//! beyond the open itself and is closed at once).
//!
//! Which disk is which (serials, WWNs, links, partitions, holders, mounts) comes from
//! [`crate::host`], the same reader prepare re-checks with before it writes.
//!
//! Device reads (the exclusive-open test and the scan) run on a thread per device, all at
//! once, under one deadline ([`DEVICE_IO_TIMEOUT`] by default): a disk whose reads hang (a
//! dying drive, a stuck controller) is reported unreadable with the reason instead of hanging
//! the whole host's probe. Its thread stays blocked in the kernel until the read returns or
//! the agent exits; nothing else waits for it.
//!
//! Entry points for other modules:
//! * [`probe_device`]: one device by kernel name or path, fully probed with its verdict.
//! * [`signatures::scan`]: the signature scan over any `Read + Seek`.
//! * [`contents::scan_device`]: the whole device plus its partitions' contents (what a wipe
//!   erases).

pub mod contents;
pub mod signatures;
pub mod verdict;

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rookery_proto::{
    BlockDevice, DeviceClass, DeviceKind, HostFacts, OsRelease, Partition, ProbeRequest,
    SkippedDevice, Transport,
};

use crate::host::{Devno, Disk, DiskLinks, Mount, read_attr};
pub use crate::host::{OsPaths, is_content_link};
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
}

/// How long the reads of every device together may take (they run in parallel); a device
/// still silent then is reported unreadable. A healthy disk answers in milliseconds, one
/// spinning up from standby in about 10 s.
pub const DEVICE_IO_TIMEOUT: Duration = Duration::from_secs(20);

/// What reading one device gave.
struct DeviceIo {
    /// Someone holds the device open exclusively.
    in_use: bool,
    scanned: std::io::Result<contents::Found>,
}

/// The reads of one device, running on their own thread.
struct PendingIo(Result<mpsc::Receiver<DeviceIo>, String>);

impl PendingIo {
    fn start(disk: &Disk) -> PendingIo {
        let disk = disk.clone();
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("probe-io".into())
            .spawn(move || {
                let path = PathBuf::from(&disk.path);
                let in_use = matches!(
                    OpenOptions::new()
                        .read(true)
                        .custom_flags(nix::libc::O_EXCL)
                        .open(&path),
                    Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY)
                );
                let scanned = File::open(&path).and_then(|f| {
                    contents::scan_device(
                        &f,
                        disk.size_bytes,
                        disk.logical_sector_size,
                        &disk.partitions,
                        &[],
                    )
                });
                let _ = tx.send(DeviceIo { in_use, scanned });
            });
        PendingIo(
            spawned
                .map(|_| rx)
                .map_err(|e| format!("cannot start a thread to read it: {e}")),
        )
    }

    /// The result, or why there is none by `deadline`.
    fn wait(self, deadline: Instant, timeout: Duration) -> Result<DeviceIo, String> {
        let rx = self.0?;
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .map_err(|_| {
                format!(
                    "no answer to reads within {}s (hung or failing disk); reads abandoned",
                    timeout.as_secs_f32()
                )
            })
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

/// Mount table, swap list and device links, read once per probe and shared by all devices.
#[derive(Debug, Default)]
struct SystemState {
    mounts: Vec<Mount>,
    /// Canonical paths of active swap areas.
    swaps: Vec<PathBuf>,
    links: DiskLinks,
}

impl OsPaths {
    pub fn host_facts(&self, req: &ProbeRequest) -> HostFacts {
        let state = self.system_state();
        let mut block_devices = Vec::new();
        let mut skipped_devices = Vec::new();
        let only: BTreeSet<String> = req.only.iter().map(|o| self.kernel_name(o)).collect();
        let mut names = self.block_names();
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
        let mut todo = Vec::new();
        for name in names {
            if !only.is_empty() && !only.contains(&name) {
                continue;
            }
            match self.classify(&name, req.include_loop, &state.links) {
                Ok((disk, kind)) => todo.push((disk, kind)),
                Err(reason) => skipped_devices.push(SkippedDevice { name, reason }),
            }
        }
        let timeout = req
            .io_timeout_secs
            .map(Duration::from_secs)
            .unwrap_or(DEVICE_IO_TIMEOUT);
        let deadline = Instant::now() + timeout;
        let pending: Vec<PendingIo> = todo.iter().map(|(d, _)| PendingIo::start(d)).collect();
        for ((disk, kind), p) in todo.into_iter().zip(pending) {
            let io = p.wait(deadline, timeout);
            block_devices.push(self.probe_one(&disk, kind, &state, io));
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
        let state = self.system_state();
        let (disk, kind) = self
            .classify(&name, include_loop, &state.links)
            .map_err(|reason| ProbeError::Skipped {
                name: name.clone(),
                reason,
            })?;
        let io =
            PendingIo::start(&disk).wait(Instant::now() + DEVICE_IO_TIMEOUT, DEVICE_IO_TIMEOUT);
        Ok(self.probe_one(&disk, kind, &state, io))
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
    fn classify(
        &self,
        name: &str,
        include_loop: bool,
        links: &DiskLinks,
    ) -> Result<(Disk, DeviceKind), String> {
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
        let Some(disk) = self.disk_with(name, links) else {
            return Err("no size in sysfs".into());
        };
        if disk.hidden {
            return Err("hidden NVMe multipath path (the namespace head is reported)".into());
        }
        if disk.size_bytes == 0 {
            return Err(if kind == DeviceKind::Loop {
                "loop device without a backing file".into()
            } else {
                "no medium (size 0)".into()
            });
        }
        Ok((disk, kind))
    }

    fn probe_one(
        &self,
        disk: &Disk,
        kind: DeviceKind,
        state: &SystemState,
        io: Result<DeviceIo, String>,
    ) -> BlockDevice {
        let name = disk.name.as_str();
        let attr = |a: &str| self.block_attr(name, a);
        let path = PathBuf::from(&disk.path);
        let transport = self.transport(name, kind);
        let class = if disk.rotational {
            DeviceClass::Hdd
        } else if transport == Transport::Nvme || name.contains("nvme") {
            DeviceClass::Nvme
        } else {
            DeviceClass::Ssd
        };

        let mut partitions = self.partitions(disk, state);
        partitions.sort_by_key(|p| p.number);
        let mut holder_names = self.holder_names(&self.sys.join("block").join(name));
        for p in &partitions {
            holder_names.extend(p.holders.iter().cloned());
        }
        holder_names.sort();
        holder_names.dedup();

        // Everything whose mount or swap makes this disk busy: itself, partitions, holders.
        let mut related: Vec<(String, Option<Devno>)> = vec![(name.to_string(), disk.devno)];
        related.extend(disk.partitions.iter().map(|p| (p.name.clone(), p.devno)));
        for h in &holder_names {
            let devno = self.class_attr(h, "dev").and_then(|d| Devno::parse(&d));
            related.push((h.clone(), devno));
        }
        let mut mountpoints = Vec::new();
        let mut swap = false;
        for (n, devno) in &related {
            mountpoints.extend(self.mountpoints_of(&state.mounts, n, *devno));
            swap |= self.is_swap(&state.swaps, n);
        }
        mountpoints.sort();
        mountpoints.dedup();
        let holds_root = mountpoints.iter().any(|m| m == "/");

        let (in_use, scanned) = match io {
            Ok(d) => (d.in_use, d.scanned.map_err(|e| e.to_string())),
            Err(reason) => (false, Err(reason)),
        };
        let mut inputs = VerdictInputs::default();
        let (signatures, wipe_signatures) = match scanned {
            Ok(found) => {
                inputs.used_by_ceph_disk = found.whole.used_by_ceph_disk();
                (found.whole.signatures, found.signatures)
            }
            Err(e) => {
                inputs.unreadable = Some(format!("{}: {e}", path.display()));
                (Vec::new(), Vec::new())
            }
        };

        let mut dev = BlockDevice {
            name: name.to_string(),
            path: disk.path.clone(),
            kind,
            size_bytes: disk.size_bytes,
            logical_sector_size: disk.logical_sector_size,
            physical_sector_size: disk.physical_sector_size,
            rotational: disk.rotational,
            transport,
            class,
            model: attr("device/model"),
            vendor: attr("device/vendor"),
            serial: disk.serial.clone(),
            wwn: disk.wwn.clone(),
            by_id: disk.by_id.clone(),
            by_path: disk.by_path.clone(),
            removable: disk.removable,
            read_only: disk.read_only,
            partitions,
            holders: holder_names,
            mountpoints,
            swap,
            holds_root,
            in_use,
            signatures,
            wipe_signatures,
            diskseq: disk.diskseq,
            available: false,
            reject_reasons: Vec::new(),
        };
        dev.reject_reasons = verdict::reject_reasons(&dev, &inputs);
        dev.available = dev.reject_reasons.is_empty();
        dev
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

    fn partitions(&self, disk: &Disk, state: &SystemState) -> Vec<Partition> {
        let dir = self.sys.join("block").join(&disk.name);
        disk.partitions
            .iter()
            .map(|p| {
                let path = Path::new(&p.path);
                Partition {
                    path: p.path.clone(),
                    number: p.number,
                    start_bytes: p.start_bytes,
                    size_bytes: p.size_bytes,
                    mountpoints: self.mountpoints_of(&state.mounts, &p.name, p.devno),
                    holders: self.holder_names(&dir.join(&p.name)),
                    // A partition we cannot read simply reports no signatures: the disk is
                    // already unavailable because it has partitions.
                    signatures: File::open(path)
                        .and_then(|mut f| {
                            signatures::scan(&mut f, p.size_bytes, disk.logical_sector_size)
                        })
                        .map(|r| r.signatures)
                        .unwrap_or_default(),
                    name: p.name.clone(),
                }
            })
            .collect()
    }

    fn system_state(&self) -> SystemState {
        SystemState {
            mounts: self.mounts(),
            swaps: self.swaps(),
            links: self.links(),
        }
    }

    fn read_trim(&self, root: &str, rel: &str) -> Option<String> {
        let base = match root {
            "proc" => &self.proc_,
            "etc" => &self.etc,
            _ => &self.sys,
        };
        read_attr(&base.join(rel))
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
    use crate::host::fake::FakeHost;
    use rookery_proto::RejectReason;

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
            io_timeout_secs: None,
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
