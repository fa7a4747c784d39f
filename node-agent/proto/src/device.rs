//! Block devices as the agent sees them, and the availability verdict for Ceph.
//!
//! The verdict follows `ceph-volume inventory` (see `notes/device-facts.md` in the shared
//! notes) and closes its known gaps (mounted/in use, holders, empty DOS tables, backup-only
//! GPT, BlueStore replica labels), so Rook will not silently skip a disk we called usable.

use serde::{Deserialize, Serialize};

/// The smallest device ceph-volume accepts: anything strictly smaller than 5 GiB
/// (5368709120 bytes) is rejected, so it can never become an OSD and is never wiped.
pub const MIN_OSD_BYTES: u64 = 5 * 1024 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockDevice {
    /// Kernel name, e.g. `nvme0n1`, `sdb`, `loop3`.
    pub name: String,
    /// `/dev/<name>`.
    pub path: String,
    pub kind: DeviceKind,
    pub size_bytes: u64,
    pub logical_sector_size: u32,
    pub physical_sector_size: u32,
    pub rotational: bool,
    pub transport: Transport,
    pub class: DeviceClass,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub vendor: Option<String>,
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub wwn: Option<String>,
    /// `/dev/disk/by-id/...` links pointing at this device, most stable first.
    #[serde(default)]
    pub by_id: Vec<String>,
    /// `/dev/disk/by-path/...` links.
    #[serde(default)]
    pub by_path: Vec<String>,
    pub removable: bool,
    pub read_only: bool,
    #[serde(default)]
    pub partitions: Vec<Partition>,
    /// Kernel names from `/sys/block/<dev>/holders` (device-mapper, md, bcache).
    #[serde(default)]
    pub holders: Vec<String>,
    /// Mountpoints of the device and of its partitions and holders.
    #[serde(default)]
    pub mountpoints: Vec<String>,
    /// The device (or a partition/holder) is active swap.
    #[serde(default)]
    pub swap: bool,
    /// The device or one of its partitions holds `/`.
    #[serde(default)]
    pub holds_root: bool,
    /// `open(O_EXCL)` failed with EBUSY: someone holds the device.
    #[serde(default)]
    pub in_use: bool,
    /// On-disk signatures read from the device itself.
    #[serde(default)]
    pub signatures: Vec<Signature>,
    /// Every signature a wipe would erase: the device's own plus those inside each partition
    /// (kernel partitions and on-disk GPT/DOS entries), offsets from the start of the device.
    /// Computed by the same scan the agent repeats before wiping, so a wipe consent can be
    /// bound to exactly this list ([`crate::DevicePlan::expected_signatures`]).
    #[serde(default)]
    pub wipe_signatures: Vec<Signature>,
    /// The kernel's `diskseq` for this attachment of the device (Linux 5.15+): a new number
    /// whenever a disk appears or a loop device is re-attached, never reused until reboot.
    #[serde(default)]
    pub diskseq: Option<u64>,
    pub available: bool,
    #[serde(default)]
    pub reject_reasons: Vec<RejectReason>,
}

impl BlockDevice {
    /// The most stable name for this device: WWN by-id link, then serial by-id link, then
    /// any by-id link, then the kernel path.
    pub fn stable_id(&self) -> &str {
        self.by_id
            .iter()
            .find(|l| l.contains("/wwn-") || l.contains("/nvme-eui."))
            .or_else(|| self.by_id.first())
            .map(String::as_str)
            .unwrap_or(&self.path)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Disk,
    Loop,
    Mpath,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    Nvme,
    Sata,
    Sas,
    Scsi,
    Virtio,
    Usb,
    Mmc,
    Loop,
    Unknown,
}

/// The Ceph CRUSH device class Rook would assign: rotational → hdd, else nvme when the
/// device is NVMe, else ssd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceClass {
    Nvme,
    Ssd,
    Hdd,
}

impl DeviceClass {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceClass::Nvme => "nvme",
            DeviceClass::Ssd => "ssd",
            DeviceClass::Hdd => "hdd",
        }
    }
}

impl std::fmt::Display for DeviceClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub name: String,
    pub path: String,
    pub number: u32,
    pub start_bytes: u64,
    pub size_bytes: u64,
    #[serde(default)]
    pub mountpoints: Vec<String>,
    #[serde(default)]
    pub holders: Vec<String>,
    #[serde(default)]
    pub signatures: Vec<Signature>,
}

/// A signature found on the device, at a byte offset from the start of the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub kind: SignatureKind,
    pub offset: u64,
    /// Bytes that carry the magic (what wiping must zero at minimum).
    pub length: u64,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub uuid: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureKind {
    /// DOS/MBR partition table (0x55AA at 510 with a non-protective table).
    Mbr,
    /// Protective MBR in front of a GPT.
    ProtectiveMbr,
    GptPrimary,
    GptBackup,
    Ext2,
    Ext3,
    Ext4,
    Xfs,
    Btrfs,
    Vfat,
    Swap,
    Lvm2,
    /// `bluestore block device` label (offset 0, or a replica at 1/10/100/1000 GiB).
    Bluestore,
    /// Anything else the agent recognised but does not model (crypto_LUKS, md, zfs, ...).
    Other,
}

impl SignatureKind {
    /// The name `blkid`/`wipefs` would print, so messages match what admins know.
    pub fn blkid_name(self) -> &'static str {
        match self {
            SignatureKind::Mbr | SignatureKind::ProtectiveMbr => "dos",
            SignatureKind::GptPrimary | SignatureKind::GptBackup => "gpt",
            SignatureKind::Ext2 => "ext2",
            SignatureKind::Ext3 => "ext3",
            SignatureKind::Ext4 => "ext4",
            SignatureKind::Xfs => "xfs",
            SignatureKind::Btrfs => "btrfs",
            SignatureKind::Vfat => "vfat",
            SignatureKind::Swap => "swap",
            SignatureKind::Lvm2 => "LVM2_member",
            SignatureKind::Bluestore => "ceph_bluestore",
            SignatureKind::Other => "other",
        }
    }

    pub fn is_partition_table(self) -> bool {
        matches!(
            self,
            SignatureKind::Mbr
                | SignatureKind::ProtectiveMbr
                | SignatureKind::GptPrimary
                | SignatureKind::GptBackup
        )
    }
}

/// Why Ceph cannot use a device. `ceph_volume_reason` gives the string `ceph-volume
/// inventory` prints for the same condition (None where ceph-volume has no such check).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "detail")]
pub enum RejectReason {
    ReadOnly,
    Removable,
    Usb,
    /// Smaller than 5 GiB (5368709120 bytes).
    TooSmall,
    /// A loop device (Rook only takes them with `CEPH_VOLUME_ALLOW_LOOP_DEVICES=true`).
    LoopDevice,
    HasPartitions,
    HasPartitionTable(String),
    HasFilesystem(String),
    LvmMember,
    BluestoreLabel,
    /// A partition carries a ceph-disk PARTLABEL/PARTTYPE.
    UsedByCephDisk,
    Mounted(String),
    HoldsRoot,
    ActiveSwap,
    /// device-mapper/md/bcache stacked on top.
    HasHolders(Vec<String>),
    /// Exclusive open failed (EBUSY).
    InUse,
    /// A Ceph LV on this device is in use by a running OSD (open, locked, or an encrypted
    /// OSD's dm-crypt mapping is open on it): stop the OSD first.
    OsdActive(String),
    /// Could not be read (EIO, permission): never "available" when unsure.
    Unreadable(String),
}

impl RejectReason {
    /// What `ceph-volume inventory` 16.2.x says for this condition, for side-by-side comparison.
    pub fn ceph_volume_reason(&self) -> Option<&'static str> {
        match self {
            RejectReason::ReadOnly => Some("read-only"),
            RejectReason::Removable => Some("removable"),
            RejectReason::Usb => Some("id_bus"),
            RejectReason::TooSmall => Some("Insufficient space (<5GB)"),
            RejectReason::LoopDevice => {
                Some("Device type is not acceptable. It should be raw device or partition")
            }
            RejectReason::HasPartitions => Some("Has partitions"),
            RejectReason::HasPartitionTable(t) if t == "gpt" => Some("Has GPT headers"),
            RejectReason::HasPartitionTable(_) => None,
            RejectReason::HasFilesystem(_) => Some("Has a FileSystem"),
            RejectReason::LvmMember => Some("LVM detected"),
            RejectReason::BluestoreLabel => Some("Has BlueStore device label"),
            RejectReason::UsedByCephDisk => Some("Used by ceph-disk"),
            RejectReason::Mounted(_)
            | RejectReason::HoldsRoot
            | RejectReason::ActiveSwap
            | RejectReason::HasHolders(_)
            | RejectReason::InUse
            | RejectReason::OsdActive(_)
            | RejectReason::Unreadable(_) => None,
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RejectReason::ReadOnly => write!(f, "read-only"),
            RejectReason::Removable => write!(f, "removable"),
            RejectReason::Usb => write!(f, "USB device"),
            RejectReason::TooSmall => write!(f, "smaller than 5 GiB"),
            RejectReason::LoopDevice => write!(f, "loop device"),
            RejectReason::HasPartitions => write!(f, "has partitions"),
            RejectReason::HasPartitionTable(t) => write!(f, "has a {t} partition table"),
            RejectReason::HasFilesystem(t) => write!(f, "has a {t} filesystem"),
            RejectReason::LvmMember => write!(f, "LVM physical volume"),
            RejectReason::BluestoreLabel => write!(f, "has a Ceph BlueStore label"),
            RejectReason::UsedByCephDisk => write!(f, "used by ceph-disk"),
            RejectReason::Mounted(m) => write!(f, "mounted at {m}"),
            RejectReason::HoldsRoot => write!(f, "holds the root filesystem"),
            RejectReason::ActiveSwap => write!(f, "active swap"),
            RejectReason::HasHolders(h) => write!(f, "held by {}", h.join(", ")),
            RejectReason::InUse => write!(f, "in use (exclusive open failed)"),
            RejectReason::OsdActive(d) => write!(f, "in use by a running Ceph OSD ({d})"),
            RejectReason::Unreadable(e) => write!(f, "unreadable: {e}"),
        }
    }
}
