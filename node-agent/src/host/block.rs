//! Block devices as sysfs shows them: identity (serial, WWN, by-id links, `diskseq`),
//! geometry, kernel partitions, and the holders stacked on top (device-mapper, md, bcache),
//! read by kernel name (`/sys/block/NAME`) or by device number (`/sys/dev/block/MAJ:MIN`).

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use super::{OsPaths, read_attr};

/// A block device number, `major:minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Devno {
    pub major: u32,
    pub minor: u32,
}

impl Devno {
    /// Parses sysfs's `dev` attribute (`8:16`).
    pub fn parse(s: &str) -> Option<Devno> {
        let (a, b) = s.trim().split_once(':')?;
        Some(Devno {
            major: a.parse().ok()?,
            minor: b.parse().ok()?,
        })
    }

    /// The `dev_t` the kernel reports in `st_rdev` for this device.
    pub fn dev_t(self) -> u64 {
        nix::libc::makedev(self.major, self.minor)
    }

    pub fn from_dev_t(dev: u64) -> Devno {
        Devno {
            major: nix::libc::major(dev),
            minor: nix::libc::minor(dev),
        }
    }
}

impl fmt::Display for Devno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// A partition the kernel currently knows (`/sys/block/X/X*/partition`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelPartition {
    pub name: String,
    pub path: String,
    pub number: u32,
    pub start_bytes: u64,
    pub size_bytes: u64,
    pub devno: Option<Devno>,
}

/// One whole block device (not a partition) as the kernel shows it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// Kernel name, e.g. `sdb`, `nvme0n1`, `loop3`.
    pub name: String,
    /// The device node, `/dev/<name>`.
    pub path: String,
    pub devno: Option<Devno>,
    pub size_bytes: u64,
    pub logical_sector_size: u32,
    pub physical_sector_size: u32,
    pub rotational: bool,
    pub read_only: bool,
    pub removable: bool,
    /// A hidden NVMe multipath path (`nvme0c0n1`): it shares the namespace head's identity.
    pub hidden: bool,
    pub serial: Option<String>,
    pub wwn: Option<String>,
    /// The kernel's sequence number for this attachment of the disk (Linux 5.15+).
    pub diskseq: Option<u64>,
    /// `/dev/disk/by-id/*` links to this device that name the hardware (never the links udev
    /// derives from the contents), WWN/EUI links first.
    pub by_id: Vec<String>,
    /// `/dev/disk/by-path/*` links to this device.
    pub by_path: Vec<String>,
    pub partitions: Vec<KernelPartition>,
}

impl Disk {
    pub fn is_loop(&self) -> bool {
        self.name.starts_with("loop")
    }
}

/// A device stacked on the disk, one of its partitions, or (recursively) another holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Kernel name, e.g. `dm-3`.
    pub kernel: String,
    /// device-mapper name (`ceph--<vg>-osd--block--<lv>`) when it is a dm device.
    pub dm_name: Option<String>,
    /// device-mapper uuid (`LVM-…` for an LV, `CRYPT-…` for dm-crypt).
    pub dm_uuid: Option<String>,
    pub devno: Option<Devno>,
    /// Kernel names this holder sits on (`/sys/block/<holder>/slaves`).
    pub slaves: Vec<String>,
    /// Kernel names stacked directly on this holder.
    pub holders: Vec<String>,
    /// 1 for a holder of the disk or of a partition, 2 for a holder of such a holder, ...
    pub depth: usize,
}

impl Holder {
    /// What to call it in messages: its dm name when it has one.
    pub fn display_name(&self) -> &str {
        self.dm_name.as_deref().unwrap_or(&self.kernel)
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

/// SCSI VPD page 0x80 (unit serial number): a 4-byte header whose bytes 2-3 are the page
/// length (big-endian; byte 2 is zero on every device that fits in one byte), then the
/// serial, space- or NUL-padded. A length past the end of the data is clamped.
pub fn vpd80_serial(raw: &[u8]) -> Option<String> {
    let header = raw.get(..4)?;
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let body = raw.get(4..)?;
    let body = &body[..len.min(body.len())];
    let s = String::from_utf8_lossy(body);
    let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!s.is_empty()).then(|| s.to_string())
}

/// The `/dev/disk/by-id` and `by-path` links of the host, listed once and shared by every
/// disk read from them.
#[derive(Debug, Clone, Default)]
pub struct DiskLinks {
    by_id: Vec<(String, PathBuf)>,
    by_path: Vec<(String, PathBuf)>,
}

/// Upper bound on holder stacking depth followed (dm on dm on md …); real stacks are 2-3.
const MAX_HOLDER_DEPTH: usize = 16;

impl OsPaths {
    /// Kernel names under `/sys/block`, sorted.
    pub fn block_names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.sys.join("block"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// `/sys/block/<name>/<attr>`.
    pub fn block_attr(&self, name: &str, attr: &str) -> Option<String> {
        read_attr(&self.sys.join("block").join(name).join(attr))
    }

    /// `/sys/class/block/<name>/<attr>` (partitions and holders as well as disks).
    pub fn class_attr(&self, name: &str, attr: &str) -> Option<String> {
        read_attr(&self.sys.join("class/block").join(name).join(attr))
    }

    /// The host's `/dev/disk/by-id` and `by-path` links, for [`OsPaths::disk_with`].
    pub fn links(&self) -> DiskLinks {
        DiskLinks {
            by_id: self.disk_links("by-id"),
            by_path: self.disk_links("by-path"),
        }
    }

    /// The whole disk called `name` (`sdb`), if `/sys/block` has it.
    pub fn disk(&self, name: &str) -> Option<Disk> {
        self.disk_with(name, &self.links())
    }

    /// [`OsPaths::disk`] with the links listed once for many disks.
    pub fn disk_with(&self, name: &str, links: &DiskLinks) -> Option<Disk> {
        self.read_disk(&self.sys.join("block").join(name), name, links)
    }

    /// The whole disk with device number `devno`, read through `/sys/dev/block/MAJ:MIN`
    /// rather than by name: what answers for a file descriptor's `st_rdev`. `None` when no
    /// device has that number or it is a partition.
    pub fn disk_at(&self, devno: Devno) -> Option<Disk> {
        let dir = fs::canonicalize(self.sys.join("dev/block").join(devno.to_string())).ok()?;
        if dir.join("partition").exists() {
            return None;
        }
        let name = dir.file_name()?.to_string_lossy().into_owned();
        let disk = self.read_disk(&dir, &name, &self.links())?;
        (disk.devno == Some(devno)).then_some(disk)
    }

    fn read_disk(&self, dir: &Path, name: &str, all: &DiskLinks) -> Option<Disk> {
        let attr = |a: &str| read_attr(&dir.join(a));
        let num = |a: &str| attr(a).and_then(|s| s.parse::<u64>().ok());
        let size_sectors = num("size")?;
        let logical = num("queue/logical_block_size").unwrap_or(512).max(512) as u32;
        let physical = num("queue/physical_block_size")
            .unwrap_or(0)
            .max(u64::from(logical)) as u32;
        let path = self.dev.join(name);
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
        Some(Disk {
            name: name.to_string(),
            path: path.to_string_lossy().into_owned(),
            devno: attr("dev").and_then(|d| Devno::parse(&d)),
            size_bytes: size_sectors.saturating_mul(512),
            logical_sector_size: logical,
            physical_sector_size: physical,
            rotational: attr("queue/rotational").as_deref() == Some("1"),
            read_only: attr("ro").as_deref() == Some("1"),
            removable: attr("removable").as_deref() == Some("1"),
            hidden: attr("hidden").as_deref() == Some("1"),
            serial: attr("device/serial")
                .or_else(|| attr("serial"))
                .or_else(|| {
                    let raw = fs::read(dir.join("device/vpd_pg80")).ok()?;
                    vpd80_serial(&raw)
                }),
            wwn: attr("wwid").or_else(|| attr("device/wwid")),
            diskseq: num("diskseq"),
            by_id: links(&all.by_id),
            by_path: links(&all.by_path),
            partitions: self.kernel_partitions(dir),
        })
    }

    fn kernel_partitions(&self, dir: &Path) -> Vec<KernelPartition> {
        let Ok(rd) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in rd.filter_map(|e| e.ok()) {
            let p = e.path();
            let Some(number) = read_attr(&p.join("partition")).and_then(|s| s.parse().ok()) else {
                continue;
            };
            let num = |a: &str| {
                read_attr(&p.join(a))
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let name = e.file_name().to_string_lossy().into_owned();
            out.push(KernelPartition {
                path: self.dev.join(&name).to_string_lossy().into_owned(),
                number,
                start_bytes: num("start").saturating_mul(512),
                size_bytes: num("size").saturating_mul(512),
                devno: read_attr(&p.join("dev")).and_then(|d| Devno::parse(&d)),
                name,
            });
        }
        out.sort_by_key(|p| p.number);
        out
    }

    /// `(link, canonical target)` for every link under `/dev/disk/<sub>` (`by-id`, `by-path`).
    pub fn disk_links(&self, sub: &str) -> Vec<(String, PathBuf)> {
        let mut out: Vec<(String, PathBuf)> = fs::read_dir(self.dev.join("disk").join(sub))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let t = fs::canonicalize(e.path()).ok()?;
                        Some((e.path().to_string_lossy().into_owned(), t))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Kernel names in `<dir>/holders` (a disk's, a partition's or a holder's sysfs dir).
    pub fn holder_names(&self, dir: &Path) -> Vec<String> {
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

    /// Every holder stacked on `disk` or its partitions, followed recursively (an LV, the
    /// dm-crypt mapping opened on that LV, …), each once, nearest first.
    pub fn holder_tree(&self, disk: &Disk) -> Vec<Holder> {
        let base = self.sys.join("block").join(&disk.name);
        let mut queue: Vec<(String, usize)> = self
            .holder_names(&base)
            .into_iter()
            .chain(
                disk.partitions
                    .iter()
                    .flat_map(|p| self.holder_names(&base.join(&p.name))),
            )
            .map(|h| (h, 1))
            .collect();
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        let mut i = 0;
        while i < queue.len() {
            let (kernel, depth) = queue[i].clone();
            i += 1;
            if depth > MAX_HOLDER_DEPTH || !seen.insert(kernel.clone()) {
                continue;
            }
            let dir = self.sys.join("class/block").join(&kernel);
            let holders = self.holder_names(&dir);
            queue.extend(holders.iter().map(|h| (h.clone(), depth + 1)));
            let mut slaves: Vec<String> = fs::read_dir(dir.join("slaves"))
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            slaves.sort();
            out.push(Holder {
                dm_name: read_attr(&dir.join("dm/name")),
                dm_uuid: read_attr(&dir.join("dm/uuid")),
                devno: read_attr(&dir.join("dev")).and_then(|d| Devno::parse(&d)),
                slaves,
                holders,
                depth,
                kernel,
            });
        }
        out.sort_by_key(|h| h.depth);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpd_page_80_serials() {
        // Two-byte length (bytes 2-3), NUL and blank padding removed.
        let mut raw = vec![0x00, 0x80, 0x00, 0x0c];
        raw.extend_from_slice(b"  ZA1B2C3D\0\0");
        assert_eq!(vpd80_serial(&raw).as_deref(), Some("ZA1B2C3D"));
        // A length past the data is clamped, not a panic.
        let raw = [0x00, 0x80, 0x01, 0x00, b'A', b'B'];
        assert_eq!(vpd80_serial(&raw).as_deref(), Some("AB"));
        assert_eq!(vpd80_serial(&[0x00, 0x80, 0x00]), None);
        assert_eq!(vpd80_serial(&[0x00, 0x80, 0x00, 0x04, 0, 0, 0, 0]), None);
    }

    #[test]
    fn devno_round_trip() {
        let d = Devno::parse("259:3").unwrap_or(Devno { major: 0, minor: 0 });
        assert_eq!(d.to_string(), "259:3");
        assert_eq!(Devno::from_dev_t(d.dev_t()), d);
        assert_eq!(Devno::parse("8"), None);
    }

    #[test]
    fn content_derived_links_are_not_identities() {
        assert!(is_content_link("/dev/disk/by-id/lvm-pv-uuid-abc"));
        assert!(is_content_link("/dev/disk/by-id/md-uuid-1:2:3:4"));
        assert!(!is_content_link("/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"));
        assert!(!is_content_link(
            "/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_VMNVME01"
        ));
    }
}
