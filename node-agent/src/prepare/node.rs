//! What the node says about one block device right now: which kernel device a planned
//! [`DeviceIdentity`] resolves to, and every reason it must never be written to (mounted,
//! root, active swap, read-only, foreign holders, held open).
//!
//! Kept separate from the wipe engine so the refusal rules are checked from fresh kernel
//! state immediately before any write, whatever the runner believed at plan time. Reads
//! sysfs, `/proc/self/mountinfo`, `/proc/swaps` and `/dev/disk/by-id` only — no udev, no
//! external tools (this lab's kernels have neither udevd nor device-mapper).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rookery_proto::{DeviceIdentity, RejectReason};

/// Where sysfs and /dev live; tests keep the real ones, the indirection only makes the
/// resolution rules readable in one place.
const SYS_BLOCK: &str = "/sys/block";
const BY_ID: &str = "/dev/disk/by-id";

/// Minimum OSD size: ceph-volume rejects anything strictly smaller than 5 GiB.
pub const MIN_OSD_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// One whole block device (not a partition) as the kernel shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDevice {
    /// Kernel name, e.g. `sdb`, `loop3`.
    pub name: String,
    /// `/dev/<name>`.
    pub path: String,
    pub size_bytes: u64,
    pub logical_sector_size: u32,
    pub rotational: bool,
    pub read_only: bool,
    pub serial: Option<String>,
    pub wwn: Option<String>,
    /// `/dev/disk/by-id/*` links resolving to this device.
    pub by_id: Vec<String>,
    /// `major:minor`.
    pub devno: String,
    pub partitions: Vec<KernelPartition>,
}

/// A partition the kernel currently knows (`/sys/block/X/X*/partition`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelPartition {
    pub name: String,
    pub path: String,
    pub number: u32,
    pub start_bytes: u64,
    pub size_bytes: u64,
    pub devno: String,
}

fn read_trim(p: impl AsRef<Path>) -> Option<String> {
    let s = fs::read_to_string(p).ok()?;
    let t = s.trim().trim_matches('\0').trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn read_u64(p: impl AsRef<Path>) -> Option<u64> {
    read_trim(p)?.parse().ok()
}

/// SCSI VPD page 0x80 (unit serial number): 4-byte header, then the ASCII serial.
fn vpd80_serial(p: &Path) -> Option<String> {
    let b = fs::read(p).ok()?;
    if b.len() <= 4 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([b[2], b[3]]));
    let end = (4 + len).min(b.len());
    let s = String::from_utf8_lossy(&b[4..end])
        .trim()
        .trim_matches('\0')
        .to_string();
    (!s.is_empty()).then_some(s)
}

/// Compares identifiers the way a human would: case, surrounding blanks and the `0x`
/// prefix some tools print in front of a WWN are not significant.
pub fn same_id(a: &str, b: &str) -> bool {
    fn norm(s: &str) -> String {
        let s = s.trim().to_ascii_lowercase();
        s.strip_prefix("0x").map(str::to_string).unwrap_or(s)
    }
    norm(a) == norm(b)
}

fn by_id_links() -> Vec<(String, PathBuf)> {
    let Ok(rd) = fs::read_dir(BY_ID) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf)> = rd
        .flatten()
        .filter_map(|e| {
            let link = e.path();
            let target = fs::canonicalize(&link).ok()?;
            Some((link.to_string_lossy().into_owned(), target))
        })
        .collect();
    out.sort();
    out
}

/// Reads one whole device from sysfs. `None` when `name` is not a block device.
pub fn read_device(name: &str) -> Option<NodeDevice> {
    let sys = Path::new(SYS_BLOCK).join(name);
    let size_sectors = read_u64(sys.join("size"))?;
    let dev_dir = sys.join("device");
    let serial = read_trim(dev_dir.join("serial"))
        .or_else(|| read_trim(sys.join("serial")))
        .or_else(|| vpd80_serial(&dev_dir.join("vpd_pg80")));
    let wwn = read_trim(sys.join("wwid")).or_else(|| read_trim(dev_dir.join("wwid")));
    let path = format!("/dev/{name}");
    let by_id = by_id_links()
        .into_iter()
        .filter(|(l, t)| t == Path::new(&path) && !crate::probe::is_content_link(l))
        .map(|(l, _)| l)
        .collect();
    let mut partitions = Vec::new();
    if let Ok(rd) = fs::read_dir(&sys) {
        for e in rd.flatten() {
            let p = e.path();
            if !p.join("partition").exists() {
                continue;
            }
            let pname = e.file_name().to_string_lossy().into_owned();
            partitions.push(KernelPartition {
                path: format!("/dev/{pname}"),
                number: read_u64(p.join("partition")).unwrap_or(0) as u32,
                start_bytes: read_u64(p.join("start")).unwrap_or(0) * 512,
                size_bytes: read_u64(p.join("size")).unwrap_or(0) * 512,
                devno: read_trim(p.join("dev")).unwrap_or_default(),
                name: pname,
            });
        }
    }
    partitions.sort_by_key(|p| p.number);
    Some(NodeDevice {
        name: name.to_string(),
        path,
        size_bytes: size_sectors * 512,
        logical_sector_size: read_u64(sys.join("queue/logical_block_size")).unwrap_or(512) as u32,
        rotational: read_trim(sys.join("queue/rotational")).as_deref() != Some("0"),
        read_only: read_trim(sys.join("ro")).as_deref() == Some("1"),
        serial,
        wwn,
        by_id,
        devno: read_trim(sys.join("dev")).unwrap_or_default(),
        partitions,
    })
}

fn all_devices() -> Vec<NodeDevice> {
    let Ok(rd) = fs::read_dir(SYS_BLOCK) else {
        return Vec::new();
    };
    let mut names: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // Hidden NVMe multipath paths (nvme0c0n1) share the namespace head's serial and WWID;
    // counting them would make every NVMe identity ambiguous. The probe skips them too.
    names
        .iter()
        .filter(|n| read_trim(Path::new(SYS_BLOCK).join(n).join("hidden")).as_deref() != Some("1"))
        .filter_map(|n| read_device(n))
        .collect()
}

/// Why a planned identity could not be resolved to exactly one device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("no device on this node has {what} {value:?}")]
    NotFound { what: &'static str, value: String },
    #[error("{what} {value:?} matches several devices ({}); refusing to guess", .devices.join(", "))]
    Ambiguous {
        what: &'static str,
        value: String,
        devices: Vec<String>,
    },
    #[error("the planned identifiers point at different devices ({}); refusing", .devices.join(", "))]
    Conflicting { devices: Vec<String> },
    #[error("{path} is {actual} bytes but the plan says {planned} bytes; refusing")]
    SizeMismatch {
        path: String,
        planned: u64,
        actual: u64,
    },
}

/// Re-resolves a planned identity against the node's current devices.
///
/// Every identifier the plan carries (by-id link, serial, WWN) must name exactly one device
/// and all of them the same one, and its size must equal the planned size. The kernel path
/// is only used when the plan has no stable identifier at all (loop devices): `/dev/sdX`
/// names move between boots, so they are never trusted over a serial.
pub fn resolve(id: &DeviceIdentity) -> Result<NodeDevice, ResolveError> {
    let devices = all_devices();
    let mut picks: Vec<String> = Vec::new();
    fn pick_one(
        what: &'static str,
        value: &str,
        hits: Vec<&NodeDevice>,
    ) -> Result<String, ResolveError> {
        match hits.as_slice() {
            [] => Err(ResolveError::NotFound {
                what,
                value: value.to_string(),
            }),
            [one] => Ok(one.name.clone()),
            many => Err(ResolveError::Ambiguous {
                what,
                value: value.to_string(),
                devices: many.iter().map(|d| d.path.clone()).collect(),
            }),
        }
    }
    if let Some(link) = id.by_id.as_deref().filter(|s| !s.is_empty()) {
        let target = fs::canonicalize(link).ok();
        let hits = devices
            .iter()
            .filter(|d| target.as_deref() == Some(Path::new(&d.path)))
            .collect();
        picks.push(pick_one("by-id link", link, hits)?);
    }
    if let Some(serial) = id.serial.as_deref().filter(|s| !s.is_empty()) {
        let hits = devices
            .iter()
            .filter(|d| d.serial.as_deref().is_some_and(|s| same_id(s, serial)))
            .collect();
        picks.push(pick_one("serial", serial, hits)?);
    }
    if let Some(wwn) = id.wwn.as_deref().filter(|s| !s.is_empty()) {
        let hits = devices
            .iter()
            .filter(|d| d.wwn.as_deref().is_some_and(|s| same_id(s, wwn)))
            .collect();
        picks.push(pick_one("WWN", wwn, hits)?);
    }
    if picks.is_empty() {
        let target = fs::canonicalize(&id.path).unwrap_or_else(|_| PathBuf::from(&id.path));
        let hits = devices
            .iter()
            .filter(|d| Path::new(&d.path) == target)
            .collect();
        picks.push(pick_one("path", &id.path, hits)?);
    }
    let mut names = picks;
    names.sort();
    names.dedup();
    if names.len() != 1 {
        return Err(ResolveError::Conflicting {
            devices: names.iter().map(|n| format!("/dev/{n}")).collect(),
        });
    }
    let dev = devices
        .into_iter()
        .find(|d| d.name == names[0])
        .ok_or_else(|| ResolveError::NotFound {
            what: "path",
            value: id.path.clone(),
        })?;
    if dev.size_bytes != id.size_bytes {
        return Err(ResolveError::SizeMismatch {
            path: dev.path,
            planned: id.size_bytes,
            actual: dev.size_bytes,
        });
    }
    Ok(dev)
}

/// A device-mapper (or md/bcache) device stacked on the disk or one of its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Kernel name, e.g. `dm-3`.
    pub kernel: String,
    /// device-mapper name (`ceph--<vg>-osd--block--<lv>`) when it is a dm device.
    pub dm_name: Option<String>,
    pub devno: String,
    /// Kernel names the holder sits on (`/sys/block/<holder>/slaves`).
    pub slaves: Vec<String>,
}

impl Holder {
    /// LVM escapes `-` in VG names as `--` in dm names, so a `ceph-*` VG's LVs all start
    /// with `ceph--`. Only these are ours to remove.
    pub fn is_ceph_leftover(&self) -> bool {
        self.dm_name
            .as_deref()
            .is_some_and(|n| n.starts_with("ceph--"))
    }

    /// A Ceph leftover that lives on `dev` alone: removing it cannot affect another disk
    /// (a VG spanning several PVs is left to the operator).
    pub fn is_ceph_leftover_of(&self, dev: &NodeDevice) -> bool {
        self.is_ceph_leftover()
            && !self.slaves.is_empty()
            && self
                .slaves
                .iter()
                .all(|s| *s == dev.name || dev.partitions.iter().any(|p| p.name == *s))
    }
}

/// Holders of the device and of its partitions.
pub fn holders(dev: &NodeDevice) -> Vec<Holder> {
    let sys = Path::new(SYS_BLOCK).join(&dev.name);
    let mut dirs = vec![sys.join("holders")];
    dirs.extend(
        dev.partitions
            .iter()
            .map(|p| sys.join(&p.name).join("holders")),
    );
    let mut out: Vec<Holder> = Vec::new();
    for d in dirs {
        let Ok(rd) = fs::read_dir(d) else { continue };
        for e in rd.flatten() {
            let kernel = e.file_name().to_string_lossy().into_owned();
            if out.iter().any(|h| h.kernel == kernel) {
                continue;
            }
            let hs = Path::new(SYS_BLOCK).join(&kernel);
            let mut slaves: Vec<String> = fs::read_dir(hs.join("slaves"))
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            slaves.sort();
            out.push(Holder {
                slaves,
                dm_name: read_trim(hs.join("dm/name")),
                devno: read_trim(hs.join("dev")).unwrap_or_default(),
                kernel,
            });
        }
    }
    out
}

fn unescape_mount(s: &str) -> String {
    // mountinfo escapes blanks and backslashes as \ooo octal.
    let mut out = String::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v as char);
            i += 4;
            continue;
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

/// Every reason this device must not be touched, whatever the consent: mounted (itself, a
/// partition or a holder), holds `/`, active swap, read-only, held by a non-Ceph holder.
/// The exclusive-open test is separate ([`exclusive_open_busy`]) because Ceph holders we
/// are about to remove keep the device busy until they are gone.
pub fn refusals(dev: &NodeDevice, holders: &[Holder]) -> Vec<RejectReason> {
    let mut reasons = Vec::new();
    let mut devnos: Vec<&str> = vec![dev.devno.as_str()];
    devnos.extend(dev.partitions.iter().map(|p| p.devno.as_str()));
    devnos.extend(holders.iter().map(|h| h.devno.as_str()));
    let mut paths: Vec<PathBuf> = vec![PathBuf::from(&dev.path)];
    paths.extend(dev.partitions.iter().map(|p| PathBuf::from(&p.path)));
    for h in holders {
        paths.push(PathBuf::from(format!("/dev/{}", h.kernel)));
        if let Some(n) = &h.dm_name {
            paths.push(PathBuf::from(format!("/dev/mapper/{n}")));
        }
    }
    let canon = |s: &str| fs::canonicalize(s).unwrap_or_else(|_| PathBuf::from(s));
    let ours = |devno: &str, source: &str| {
        (!devno.is_empty() && devnos.contains(&devno)) || paths.iter().any(|p| *p == canon(source))
    };

    if let Ok(mi) = fs::read_to_string("/proc/self/mountinfo") {
        for line in mi.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let Some(sep) = f.iter().position(|x| *x == "-") else {
                continue;
            };
            let (Some(devno), Some(mnt), Some(source)) = (f.get(2), f.get(4), f.get(sep + 2))
            else {
                continue;
            };
            if ours(devno, &unescape_mount(source)) {
                let mnt = unescape_mount(mnt);
                if mnt == "/" {
                    reasons.push(RejectReason::HoldsRoot);
                }
                let r = RejectReason::Mounted(mnt);
                if !reasons.contains(&r) {
                    reasons.push(r);
                }
            }
        }
    }
    if let Ok(sw) = fs::read_to_string("/proc/swaps") {
        for line in sw.lines().skip(1) {
            if let Some(src) = line.split_whitespace().next()
                && paths.iter().any(|p| *p == canon(&unescape_mount(src)))
                && !reasons.contains(&RejectReason::ActiveSwap)
            {
                reasons.push(RejectReason::ActiveSwap);
            }
        }
    }
    if dev.read_only {
        reasons.push(RejectReason::ReadOnly);
    }
    let foreign: Vec<String> = holders
        .iter()
        .filter(|h| !h.is_ceph_leftover_of(dev))
        .map(|h| h.dm_name.clone().unwrap_or_else(|| h.kernel.clone()))
        .collect();
    if !foreign.is_empty() {
        reasons.push(RejectReason::HasHolders(foreign));
    }
    reasons
}

/// `open(O_RDONLY|O_EXCL)` on a block device fails with EBUSY when anything holds it:
/// a mount, swap, a dm/md holder, or another exclusive opener (see open(2)).
pub fn exclusive_open_busy(path: &str) -> io::Result<bool> {
    use std::os::unix::fs::OpenOptionsExt;
    match fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_EXCL)
        .open(path)
    {
        Ok(_) => Ok(false),
        Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => Ok(true),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_compare_loosely() {
        assert!(same_id("0x5000C500A1B2C3D4", "5000c500a1b2c3d4"));
        assert!(same_id(" S3Z9NB0K ", "s3z9nb0k"));
        assert!(!same_id("abc", "abd"));
    }

    #[test]
    fn mount_escapes() {
        assert_eq!(unescape_mount("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape_mount("/plain"), "/plain");
    }

    #[test]
    fn ceph_holders_only() {
        let h = |n: &str| Holder {
            kernel: "dm-0".into(),
            dm_name: Some(n.into()),
            devno: "253:0".into(),
            slaves: vec!["sdb".into()],
        };
        assert!(h("ceph--1234-osd--block--5678").is_ceph_leftover());
        let dev = |name: &str| NodeDevice {
            name: name.into(),
            path: format!("/dev/{name}"),
            size_bytes: 0,
            logical_sector_size: 512,
            rotational: true,
            read_only: false,
            serial: None,
            wwn: None,
            by_id: vec![],
            devno: String::new(),
            partitions: vec![],
        };
        assert!(h("ceph--1234-osd--block--5678").is_ceph_leftover_of(&dev("sdb")));
        // Sitting on another disk (too): not ours to remove.
        assert!(!h("ceph--1234-osd--block--5678").is_ceph_leftover_of(&dev("sdc")));
        assert!(!h("vg0-root").is_ceph_leftover());
        assert!(!h("cephfoo").is_ceph_leftover());
    }
}
