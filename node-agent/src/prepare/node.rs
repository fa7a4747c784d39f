//! What the node says about one planned device right now: which disk a planned
//! [`DeviceIdentity`] resolves to, what is stacked on it, and every reason it must never be
//! written to (mounted, root, active swap, read-only, foreign holders, a running OSD).
//!
//! Kept apart from the wipe engine so the refusal rules are checked from fresh kernel state
//! immediately before any write, whatever the runner believed at plan time. Everything is
//! read through [`OsPaths`] (sysfs, procfs, `/dev`), the same reader the probe uses; the only
//! device opens here are the read-only "is this LV in use?" tests on Ceph LVs.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rookery_proto::{DeviceIdentity, MIN_OSD_BYTES, RejectReason};

use crate::host::{Disk, Holder, OsPaths};

/// Compares identifiers the way a human would: case, surrounding blanks and the `0x`
/// prefix some tools print in front of a WWN are not significant.
pub fn same_id(a: &str, b: &str) -> bool {
    fn norm(s: &str) -> String {
        let s = s.trim().to_ascii_lowercase();
        s.strip_prefix("0x").map(str::to_string).unwrap_or(s)
    }
    norm(a) == norm(b)
}

/// Every whole disk the kernel shows, without hidden NVMe multipath paths (`nvme0c0n1`
/// shares the namespace head's serial and WWID; counting it would make every NVMe identity
/// ambiguous, and the probe skips it too).
fn all_disks(os: &OsPaths) -> Vec<Disk> {
    let links = os.links();
    os.block_names()
        .iter()
        .filter_map(|n| os.disk_with(n, &links))
        .filter(|d| !d.hidden)
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
    #[error(
        "{path} is named by its path alone, which only identifies loop devices; a disk needs \
         its serial, WWN or /dev/disk/by-id link in the plan; refusing"
    )]
    PathOnly { path: String },
    #[error("{path} is {actual} bytes but the plan says {planned} bytes; refusing")]
    SizeMismatch {
        path: String,
        planned: u64,
        actual: u64,
    },
    #[error(
        "{path} was re-attached or replaced since the plan (kernel diskseq {planned} then, \
         {now} now); refusing"
    )]
    Reattached {
        path: String,
        planned: u64,
        now: u64,
    },
}

/// Re-resolves a planned identity against the node's current disks.
///
/// Every identifier the plan carries (by-id link, serial, WWN) must name exactly one disk and
/// all of them the same one; its size must equal the planned size and, when both sides know
/// it, its `diskseq` the planned one. A bare path is accepted for loop devices only:
/// `/dev/sdX` names move between boots and hot-plugs, so a disk is never named by it.
pub fn resolve(os: &OsPaths, id: &DeviceIdentity) -> Result<Disk, ResolveError> {
    let disks = all_disks(os);
    let mut picks: Vec<String> = Vec::new();
    fn pick_one(what: &'static str, value: &str, hits: Vec<&Disk>) -> Result<String, ResolveError> {
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
        let target = std::fs::canonicalize(link).ok();
        let hits = disks
            .iter()
            .filter(|d| target.is_some() && target == std::fs::canonicalize(&d.path).ok())
            .collect();
        picks.push(pick_one("by-id link", link, hits)?);
    }
    if let Some(serial) = id.serial.as_deref().filter(|s| !s.is_empty()) {
        let hits = disks
            .iter()
            .filter(|d| d.serial.as_deref().is_some_and(|s| same_id(s, serial)))
            .collect();
        picks.push(pick_one("serial", serial, hits)?);
    }
    if let Some(wwn) = id.wwn.as_deref().filter(|s| !s.is_empty()) {
        let hits = disks
            .iter()
            .filter(|d| d.wwn.as_deref().is_some_and(|s| same_id(s, wwn)))
            .collect();
        picks.push(pick_one("WWN", wwn, hits)?);
    }
    let path_only = picks.is_empty();
    if path_only {
        let target = std::fs::canonicalize(&id.path).ok();
        let hits = disks
            .iter()
            .filter(|d| {
                d.path == id.path
                    || (target.is_some() && target == std::fs::canonicalize(&d.path).ok())
            })
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
    let disk = disks
        .into_iter()
        .find(|d| d.name == names[0])
        .ok_or_else(|| ResolveError::NotFound {
            what: "path",
            value: id.path.clone(),
        })?;
    if path_only && !disk.is_loop() {
        return Err(ResolveError::PathOnly { path: disk.path });
    }
    if disk.size_bytes != id.size_bytes {
        return Err(ResolveError::SizeMismatch {
            path: disk.path,
            planned: id.size_bytes,
            actual: disk.size_bytes,
        });
    }
    if let (Some(planned), Some(now)) = (id.diskseq, disk.diskseq)
        && planned != now
    {
        return Err(ResolveError::Reattached {
            path: disk.path,
            planned,
            now,
        });
    }
    Ok(disk)
}

/// LVM escapes `-` in VG names as `--` in dm names, so a `ceph-*` VG's LVs all start with
/// `ceph--`. Only these are ours to remove.
pub fn is_ceph_lv(h: &Holder) -> bool {
    h.dm_name
        .as_deref()
        .is_some_and(|n| n.starts_with("ceph--"))
}

/// dm-crypt mappings carry a `CRYPT-` dm uuid (ceph-volume's encrypted OSDs among them).
fn is_crypt(h: &Holder) -> bool {
    h.dm_uuid
        .as_deref()
        .is_some_and(|u| u.starts_with("CRYPT-"))
}

/// What is stacked on a disk, sorted into what a wipe may remove and what forbids it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stack {
    /// Every holder, recursively (their mounts and swaps count as the disk's).
    pub all: Vec<Holder>,
    /// `ceph--*` LVs that live on this disk alone, with nothing stacked on them: removed with
    /// `dmsetup remove` before the wipe.
    pub ceph: Vec<Holder>,
    /// Why the stack forbids a wipe (foreign holders, an open encrypted OSD, ...).
    pub refusals: Vec<RejectReason>,
}

impl Stack {
    /// Classifies the holder tree of `disk`.
    pub fn of(disk: &Disk, all: Vec<Holder>) -> Stack {
        let mut st = Stack::default();
        let on_this_disk = |h: &Holder| {
            !h.slaves.is_empty()
                && h.slaves
                    .iter()
                    .all(|s| *s == disk.name || disk.partitions.iter().any(|p| p.name == *s))
        };
        let mut foreign = Vec::new();
        for h in all.iter().filter(|h| h.depth == 1) {
            if !is_ceph_lv(h) || !on_this_disk(h) {
                // A VG spanning several disks is left to the operator, like any other holder.
                foreign.push(h.display_name().to_string());
                continue;
            }
            let above: Vec<&Holder> = all
                .iter()
                .filter(|x| h.holders.contains(&x.kernel))
                .collect();
            if above.is_empty() {
                st.ceph.push(h.clone());
                continue;
            }
            for x in above {
                if is_crypt(x) {
                    st.refusals.push(RejectReason::OsdActive(format!(
                        "encrypted OSD mapping {} is open on {}; stop the OSD and close it \
                         (cryptsetup close {})",
                        x.display_name(),
                        h.display_name(),
                        x.display_name()
                    )));
                } else {
                    foreign.push(format!("{} (on {})", x.display_name(), h.display_name()));
                }
            }
        }
        if !foreign.is_empty() {
            st.refusals.push(RejectReason::HasHolders(foreign));
        }
        st.all = all;
        st
    }
}

/// Every reason this device must not be touched, whatever the consent: mounted (itself, a
/// partition or any holder), holds `/`, active swap, read-only, too small, held by a foreign
/// holder or by a running OSD. The exclusive open is tested separately, on the descriptor
/// prepare keeps ([`super::bind`]): Ceph LVs about to be removed keep the disk busy until
/// they are gone.
pub fn refusals(os: &OsPaths, disk: &Disk, stack: &Stack) -> Vec<RejectReason> {
    let mut reasons = Vec::new();
    let mounts = os.mounts();
    let swaps = os.swaps();
    let mut related = vec![(disk.name.as_str(), disk.devno)];
    related.extend(disk.partitions.iter().map(|p| (p.name.as_str(), p.devno)));
    related.extend(stack.all.iter().map(|h| (h.kernel.as_str(), h.devno)));
    let mut mounted: Vec<String> = Vec::new();
    let mut swap = false;
    for (name, devno) in related {
        mounted.extend(os.mountpoints_of(&mounts, name, devno));
        swap |= os.is_swap(&swaps, name);
    }
    mounted.sort();
    mounted.dedup();
    if mounted.iter().any(|m| m == "/") {
        reasons.push(RejectReason::HoldsRoot);
    }
    reasons.extend(mounted.into_iter().map(RejectReason::Mounted));
    if swap {
        reasons.push(RejectReason::ActiveSwap);
    }
    if disk.read_only {
        reasons.push(RejectReason::ReadOnly);
    }
    if disk.size_bytes < MIN_OSD_BYTES {
        reasons.push(RejectReason::TooSmall);
    }
    reasons.extend(stack.refusals.iter().cloned());
    for lv in &stack.ceph {
        if let Some(why) = lv_in_use(&os.dev.join(&lv.kernel)) {
            reasons.push(RejectReason::OsdActive(format!(
                "{}: {why}",
                lv.display_name()
            )));
        }
    }
    reasons
}

/// Whether a Ceph LV is in use, tested before `dmsetup remove` so a running OSD is reported
/// as that rather than as a failed removal. An exclusive open fails while a filesystem is
/// mounted on it or something claimed it; a BlueStore OSD holds `flock(LOCK_EX)` on its block
/// device instead. The lock taken here is released at once when the descriptor closes.
fn lv_in_use(node: &Path) -> Option<String> {
    use nix::fcntl::{Flock, FlockArg};
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_EXCL)
        .open(node)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => {
            return Some("open exclusively by another process (mounted or claimed)".into());
        }
        // Cannot tell: `dmsetup remove` refuses an open device anyway.
        Err(_) => return None,
    };
    match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(_) => None,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            Some("locked by a running OSD (BlueStore holds its lock)".into())
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Devno;
    use crate::host::fake::FakeHost;

    /// The probe reports identities the runner plans with; prepare resolves them with the
    /// same reader, so every identifier the probe gives (a VPD page 0x80 serial with a
    /// 2-byte length and NUL padding, a NUL-padded NVMe serial, WWNs, diskseq) finds its disk.
    #[test]
    fn what_the_probe_reports_is_what_prepare_resolves() {
        let h = FakeHost::new();
        h.disk(
            "sdb",
            "pci0000:00/0000:00:03.0/host1/target1:0:0/1:0:0:0",
            "scsi",
            10 << 30,
            &[
                ("dev", "8:16"),
                ("device/vpd_pg80", "\0\u{80}\0\u{0c}ZA1B2C3D\0\0\0\0"),
                ("device/wwid", "naa.5000c500a1b2c3d4"),
                ("diskseq", "17"),
            ],
        );
        h.disk(
            "nvme0n1",
            "pci0000:00/0000:00:04.0/nvme/nvme0",
            "nvme",
            20 << 30,
            &[
                ("dev", "259:0"),
                ("device/serial", "S5GXNF0R123456\0\0\0\0  "),
                ("wwid", "eui.002538b111b2c3d4"),
            ],
        );
        let os = h.paths();
        let facts = os.host_facts(&rookery_proto::ProbeRequest::default());
        assert_eq!(facts.block_devices.len(), 2);
        for d in &facts.block_devices {
            assert!(
                d.serial.as_deref().is_some_and(|s| !s.contains('\0')),
                "{:?}",
                d.serial
            );
            let id = DeviceIdentity {
                path: d.path.clone(),
                serial: d.serial.clone(),
                wwn: d.wwn.clone(),
                by_id: None,
                size_bytes: d.size_bytes,
                diskseq: d.diskseq,
            };
            let got = resolve(&os, &id).unwrap_or_else(|e| panic!("{}: {e}", d.name));
            assert_eq!(got.name, d.name);
            assert_eq!(
                os.disk_at(got.devno.unwrap()).map(|x| x.name),
                Some(d.name.clone())
            );
        }
        let sdb = &facts
            .block_devices
            .iter()
            .find(|d| d.name == "sdb")
            .unwrap();
        assert_eq!(sdb.serial.as_deref(), Some("ZA1B2C3D"));
        assert_eq!(sdb.diskseq, Some(17));
        // A plan made before the disk was replaced (another diskseq) does not resolve.
        let stale = DeviceIdentity {
            path: sdb.path.clone(),
            serial: sdb.serial.clone(),
            wwn: None,
            by_id: None,
            size_bytes: sdb.size_bytes,
            diskseq: Some(16),
        };
        assert!(matches!(
            resolve(&os, &stale),
            Err(ResolveError::Reattached { .. })
        ));
        // A disk named by its path alone does not resolve at all.
        let bare = DeviceIdentity {
            serial: None,
            diskseq: None,
            ..stale
        };
        assert!(matches!(
            resolve(&os, &bare),
            Err(ResolveError::PathOnly { .. })
        ));
    }

    #[test]
    fn ids_compare_loosely() {
        assert!(same_id("0x5000C500A1B2C3D4", "5000c500a1b2c3d4"));
        assert!(same_id(" S3Z9NB0K ", "s3z9nb0k"));
        assert!(!same_id("abc", "abd"));
    }

    fn disk(name: &str) -> Disk {
        Disk {
            name: name.into(),
            path: format!("/dev/{name}"),
            devno: Some(Devno {
                major: 8,
                minor: 16,
            }),
            size_bytes: 10 << 30,
            logical_sector_size: 512,
            physical_sector_size: 512,
            rotational: true,
            read_only: false,
            removable: false,
            hidden: false,
            serial: None,
            wwn: None,
            diskseq: None,
            by_id: vec![],
            by_path: vec![],
            partitions: vec![],
        }
    }

    fn holder(
        kernel: &str,
        dm: &str,
        uuid: &str,
        slaves: &[&str],
        above: &[&str],
        depth: usize,
    ) -> Holder {
        Holder {
            kernel: kernel.into(),
            dm_name: Some(dm.into()),
            dm_uuid: Some(uuid.into()),
            devno: None,
            slaves: slaves.iter().map(|s| s.to_string()).collect(),
            holders: above.iter().map(|s| s.to_string()).collect(),
            depth,
        }
    }

    #[test]
    fn only_idle_ceph_lvs_of_this_disk_are_removable() {
        let lv = holder(
            "dm-0",
            "ceph--1234-osd--block--5678",
            "LVM-x",
            &["sdb"],
            &[],
            1,
        );
        let st = Stack::of(&disk("sdb"), vec![lv.clone()]);
        assert_eq!(st.ceph, vec![lv.clone()]);
        assert!(st.refusals.is_empty());
        // The same LV seen from another disk it does not live on: not ours.
        let st = Stack::of(&disk("sdc"), vec![lv]);
        assert!(st.ceph.is_empty());
        assert!(
            matches!(&st.refusals[..], [RejectReason::HasHolders(h)] if h[0].starts_with("ceph--"))
        );
        // A VG spanning two disks: left to the operator.
        let span = holder(
            "dm-0",
            "ceph--1234-osd--block--5678",
            "LVM-x",
            &["sdb", "sdc"],
            &[],
            1,
        );
        assert!(Stack::of(&disk("sdb"), vec![span]).ceph.is_empty());
        let other = holder("dm-1", "vg0-root", "LVM-y", &["sdb"], &[], 1);
        let st = Stack::of(&disk("sdb"), vec![other]);
        assert_eq!(
            st.refusals,
            vec![RejectReason::HasHolders(vec!["vg0-root".into()])]
        );
    }

    #[test]
    fn an_open_encrypted_osd_on_a_ceph_lv_is_reported_before_any_dmsetup() {
        let lv = holder(
            "dm-0",
            "ceph--a-osd--block--b",
            "LVM-x",
            &["sdb"],
            &["dm-1"],
            1,
        );
        let crypt = holder(
            "dm-1",
            "cryptosd-b",
            "CRYPT-LUKS2-abc-cryptosd-b",
            &["dm-0"],
            &[],
            2,
        );
        let st = Stack::of(&disk("sdb"), vec![lv, crypt]);
        assert!(
            st.ceph.is_empty(),
            "an LV with an open mapping is not removed"
        );
        assert!(
            matches!(&st.refusals[..], [RejectReason::OsdActive(m)] if m.contains("cryptosd-b") && m.contains("ceph--a-osd--block--b")),
            "{:?}",
            st.refusals
        );
        // Anything else stacked on the LV is a foreign holder.
        let lv = holder(
            "dm-0",
            "ceph--a-osd--block--b",
            "LVM-x",
            &["sdb"],
            &["md0"],
            1,
        );
        let md = Holder {
            dm_name: None,
            dm_uuid: None,
            ..holder("md0", "", "", &["dm-0"], &[], 2)
        };
        let st = Stack::of(&disk("sdb"), vec![lv, md]);
        assert!(
            matches!(&st.refusals[..], [RejectReason::HasHolders(h)] if h[0] == "md0 (on ceph--a-osd--block--b)")
        );
    }
}
