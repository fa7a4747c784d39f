//! The availability verdict: can Ceph (via Rook) use this device, and if not, why.
//!
//! Pure function over an already-probed [`BlockDevice`] so the rules are testable without
//! devices. The rules are ceph-volume inventory's (16.2.x, `notes/device-facts.md` §1) plus
//! the gaps it leaves open (§0.3, §6): mounted, root, swap, holders, exclusive-open busy,
//! DOS tables, backup-only GPT, BlueStore replicas, bare LVM PVs.

use rookery_proto::{
    BlockDevice, DeviceKind, MIN_OSD_BYTES, RejectReason, SignatureKind, Transport,
};

/// Facts that are not fields of [`BlockDevice`] but feed the verdict.
#[derive(Debug, Clone, Default)]
pub struct VerdictInputs {
    /// The signature scan failed with this message: the device is never "available".
    pub unreadable: Option<String>,
    /// A GPT entry has a ceph-disk type GUID or a PARTLABEL containing "ceph".
    pub used_by_ceph_disk: bool,
}

/// All reasons the device is rejected, in a stable order; empty means available.
pub fn reject_reasons(dev: &BlockDevice, extra: &VerdictInputs) -> Vec<RejectReason> {
    let mut r = Vec::new();
    if let Some(e) = &extra.unreadable {
        r.push(RejectReason::Unreadable(e.clone()));
    }
    if dev.read_only {
        r.push(RejectReason::ReadOnly);
    }
    // ceph-volume stopped rejecting removable devices, but a hot-plugged stick is never an
    // OSD we want to wipe; we keep the conservative answer.
    if dev.removable {
        r.push(RejectReason::Removable);
    }
    if dev.transport == Transport::Usb {
        r.push(RejectReason::Usb);
    }
    if dev.size_bytes < MIN_OSD_BYTES {
        r.push(RejectReason::TooSmall);
    }
    if dev.kind == DeviceKind::Loop {
        r.push(RejectReason::LoopDevice);
    }
    if !dev.partitions.is_empty() {
        r.push(RejectReason::HasPartitions);
    }
    let mut tables: Vec<&str> = Vec::new();
    let mut fs: Vec<String> = Vec::new();
    let mut lvm = false;
    let mut bluestore = false;
    for s in &dev.signatures {
        match s.kind {
            SignatureKind::Mbr => tables.push("dos"),
            SignatureKind::ProtectiveMbr | SignatureKind::GptPrimary | SignatureKind::GptBackup => {
                tables.push("gpt")
            }
            SignatureKind::Lvm2 => {
                lvm = true;
                fs.push(s.kind.blkid_name().to_string());
            }
            SignatureKind::Bluestore => {
                bluestore = true;
                // blkid (and so ceph-volume's "Has a FileSystem") only sees the label at 0.
                if s.offset == 0 {
                    fs.push(s.kind.blkid_name().to_string());
                }
            }
            SignatureKind::Other => fs.push(s.label.clone().unwrap_or_else(|| "unknown".into())),
            _ => fs.push(s.kind.blkid_name().to_string()),
        }
    }
    tables.dedup();
    for t in tables {
        let reason = RejectReason::HasPartitionTable(t.to_string());
        if !r.contains(&reason) {
            r.push(reason);
        }
    }
    fs.dedup();
    for f in fs {
        r.push(RejectReason::HasFilesystem(f));
    }
    if lvm {
        r.push(RejectReason::LvmMember);
    }
    if bluestore {
        r.push(RejectReason::BluestoreLabel);
    }
    if extra.used_by_ceph_disk {
        r.push(RejectReason::UsedByCephDisk);
    }
    for m in &dev.mountpoints {
        r.push(RejectReason::Mounted(m.clone()));
    }
    if dev.holds_root {
        r.push(RejectReason::HoldsRoot);
    }
    if dev.swap {
        r.push(RejectReason::ActiveSwap);
    }
    if !dev.holders.is_empty() {
        r.push(RejectReason::HasHolders(dev.holders.clone()));
    }
    if dev.in_use {
        r.push(RejectReason::InUse);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_proto::{DeviceClass, Signature};

    fn blank() -> BlockDevice {
        BlockDevice {
            name: "sdb".into(),
            path: "/dev/sdb".into(),
            kind: DeviceKind::Disk,
            size_bytes: MIN_OSD_BYTES,
            logical_sector_size: 512,
            physical_sector_size: 512,
            rotational: false,
            transport: Transport::Sata,
            class: DeviceClass::Ssd,
            model: None,
            vendor: None,
            serial: None,
            wwn: None,
            by_id: vec![],
            by_path: vec![],
            removable: false,
            read_only: false,
            partitions: vec![],
            holders: vec![],
            mountpoints: vec![],
            swap: false,
            holds_root: false,
            in_use: false,
            signatures: vec![],
            wipe_signatures: vec![],
            diskseq: None,
            available: false,
            reject_reasons: vec![],
        }
    }

    fn sig(kind: SignatureKind, offset: u64) -> Signature {
        Signature {
            kind,
            offset,
            length: 8,
            label: None,
            uuid: None,
        }
    }

    #[test]
    fn size_floor_is_binary_gib_inclusive() {
        let mut d = blank();
        assert!(reject_reasons(&d, &Default::default()).is_empty());
        d.size_bytes = MIN_OSD_BYTES - 1;
        assert_eq!(
            reject_reasons(&d, &Default::default()),
            vec![RejectReason::TooSmall]
        );
    }

    #[test]
    fn unreadable_is_never_available() {
        let d = blank();
        let r = reject_reasons(
            &d,
            &VerdictInputs {
                unreadable: Some("EIO".into()),
                ..Default::default()
            },
        );
        assert_eq!(r, vec![RejectReason::Unreadable("EIO".into())]);
    }

    #[test]
    fn gpt_reported_once_and_replica_bluestore_is_not_a_filesystem() {
        let mut d = blank();
        d.signatures = vec![
            sig(SignatureKind::ProtectiveMbr, 510),
            sig(SignatureKind::GptPrimary, 512),
            sig(SignatureKind::GptBackup, 1 << 30),
            sig(SignatureKind::Bluestore, 1 << 30),
        ];
        assert_eq!(
            reject_reasons(&d, &Default::default()),
            vec![
                RejectReason::HasPartitionTable("gpt".into()),
                RejectReason::BluestoreLabel
            ]
        );
    }

    #[test]
    fn lvm_is_filesystem_and_member() {
        let mut d = blank();
        d.signatures = vec![sig(SignatureKind::Lvm2, 0x218)];
        assert_eq!(
            reject_reasons(&d, &Default::default()),
            vec![
                RejectReason::HasFilesystem("LVM2_member".into()),
                RejectReason::LvmMember
            ]
        );
    }
}
