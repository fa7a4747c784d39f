//! Device fixtures on real loop devices, shared by the probe tests and the ceph-volume
//! comparison: one fixture per disk state the verdict distinguishes, each built with the
//! real tool an admin would use (sgdisk, sfdisk, mkfs.*, mkswap/swapon, LVM, mount).
//!
//! Loop devices are always rejected as `LoopDevice` (Rook/ceph-volume only take them with
//! `CEPH_VOLUME_ALLOW_LOOP_DEVICES=true`), so every expected reason list below contains
//! `LoopDevice`, and "available" for a fixture means "no reason other than LoopDevice".
//!
//! This lab has no device-mapper: the LVM fixture writes PV/VG/LV *metadata* only
//! (`lvcreate --driverloaded n`), so it covers signature + LVM detection but not dm holders.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Command, Stdio};

use rookery_proto::RejectReason;
use rookery_tests::loopdev::{LoopDevice, LoopOptions, run};
use rookery_tests::require;

pub const GIB: u64 = 1 << 30;
pub const MIB: u64 = 1 << 20;
/// ceph-volume's floor: 5368709120 bytes.
pub const MIN: u64 = 5 * GIB;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Blank,
    BlankRotational,
    GptPartition,
    CephDiskPartition,
    PartitionMounted,
    Gpt4Kn,
    BackupOnlyGpt,
    EmptyDos,
    Ext4,
    Xfs,
    Btrfs,
    Vfat,
    SwapSignature,
    ActiveSwap,
    LvmCephVg,
    BluestoreAt0,
    BluestoreReplica1G,
    Mounted,
    ReadOnly,
    TooSmall,
    ExactMinimum,
    HeldExclusive,
}

pub const ALL: &[Kind] = &[
    Kind::Blank,
    Kind::BlankRotational,
    Kind::GptPartition,
    Kind::CephDiskPartition,
    Kind::PartitionMounted,
    Kind::Gpt4Kn,
    Kind::BackupOnlyGpt,
    Kind::EmptyDos,
    Kind::Ext4,
    Kind::Xfs,
    Kind::Btrfs,
    Kind::Vfat,
    Kind::SwapSignature,
    Kind::ActiveSwap,
    Kind::LvmCephVg,
    Kind::BluestoreAt0,
    Kind::BluestoreReplica1G,
    Kind::Mounted,
    Kind::ReadOnly,
    Kind::TooSmall,
    Kind::ExactMinimum,
    Kind::HeldExclusive,
];

/// A built fixture. Dropping it undoes what the fixture did (umount, swapoff, vgremove,
/// release the exclusive claim) and then detaches the loop device.
pub struct Fixture {
    pub kind: Kind,
    pub lo: LoopDevice,
    /// Where the Mounted fixture is mounted.
    pub mountpoint: Option<tempfile::TempDir>,
    undo: Vec<(String, Vec<String>)>,
    /// The HeldExclusive fixture's `O_EXCL` descriptor. The kernel ties an exclusive claim
    /// to the open file, so any other open (this process's included) sees EBUSY: the same
    /// as another process holding the device, without a helper process.
    holder: Option<std::fs::File>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.holder.take();
        for (prog, args) in self.undo.drain(..).rev() {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            if let Err(e) = run(&prog, &a) {
                eprintln!("fixture cleanup: {e:#}");
            }
        }
    }
}

impl Fixture {
    /// The reasons the agent must give, exactly (as a sorted set).
    pub fn expected(&self) -> Vec<RejectReason> {
        use RejectReason::*;
        let fs = |t: &str| HasFilesystem(t.to_string());
        let mut v = match self.kind {
            Kind::Blank | Kind::BlankRotational | Kind::ExactMinimum => vec![],
            Kind::GptPartition => vec![HasPartitions, HasPartitionTable("gpt".into())],
            Kind::CephDiskPartition => vec![
                HasPartitions,
                HasPartitionTable("gpt".into()),
                UsedByCephDisk,
            ],
            Kind::PartitionMounted => vec![
                HasPartitions,
                HasPartitionTable("gpt".into()),
                Mounted(self.mountpoint_str()),
                InUse,
            ],
            Kind::BackupOnlyGpt | Kind::Gpt4Kn => vec![HasPartitionTable("gpt".into())],
            Kind::EmptyDos => vec![HasPartitionTable("dos".into())],
            Kind::Ext4 => vec![fs("ext4")],
            Kind::Xfs => vec![fs("xfs")],
            Kind::Btrfs => vec![fs("btrfs")],
            Kind::Vfat => vec![fs("vfat")],
            Kind::SwapSignature => vec![fs("swap")],
            Kind::ActiveSwap => vec![fs("swap"), ActiveSwap, InUse],
            Kind::LvmCephVg => vec![fs("LVM2_member"), LvmMember],
            Kind::BluestoreAt0 => vec![fs("ceph_bluestore"), BluestoreLabel],
            Kind::BluestoreReplica1G => vec![BluestoreLabel],
            Kind::Mounted => vec![fs("ext4"), Mounted(self.mountpoint_str()), InUse],
            Kind::ReadOnly => vec![ReadOnly],
            Kind::TooSmall => vec![TooSmall],
            Kind::HeldExclusive => vec![InUse],
        };
        v.push(LoopDevice);
        v.sort();
        v
    }

    fn mountpoint_str(&self) -> String {
        self.mountpoint
            .as_ref()
            .map(|d| d.path().to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// ceph-volume 16.2.x is known to call these available although they are not
    /// (`notes/device-facts.md` §0.3): the gaps the agent closes.
    pub fn ceph_volume_gap(&self) -> bool {
        matches!(
            self.kind,
            Kind::BackupOnlyGpt | Kind::EmptyDos | Kind::BluestoreReplica1G | Kind::HeldExclusive
        )
    }
}

/// Programs a fixture needs beyond losetup/partx.
fn programs(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::GptPartition | Kind::BackupOnlyGpt | Kind::CephDiskPartition | Kind::Gpt4Kn => {
            &["sgdisk"]
        }
        Kind::PartitionMounted => &["sgdisk", "mkfs.ext4", "mount", "umount"],
        Kind::EmptyDos => &["sfdisk"],
        Kind::Ext4 => &["mkfs.ext4"],
        Kind::Xfs => &["mkfs.xfs"],
        Kind::Btrfs => &["mkfs.btrfs"],
        Kind::Vfat => &["mkfs.vfat"],
        Kind::SwapSignature => &["mkswap"],
        Kind::ActiveSwap => &["mkswap", "swapon", "swapoff"],
        Kind::LvmCephVg => &["pvcreate", "vgcreate", "lvcreate", "vgremove", "pvremove"],
        Kind::Mounted => &["mkfs.ext4", "mount", "umount"],
        _ => &[],
    }
}

/// Builds `kind`, or returns None (after printing why) when a prerequisite is missing and
/// `ROOKERY_REQUIRE_REAL` is not set. Panics on any real failure.
pub fn build(kind: Kind) -> Option<Fixture> {
    if !require::prerequisite(
        LoopDevice::prerequisites().is_ok(),
        &format!("{:?}", LoopDevice::prerequisites()),
    ) {
        return None;
    }
    for p in programs(kind) {
        if !require::prerequisite(
            require::have_program(p),
            &format!("program {p} for the {kind:?} fixture"),
        ) {
            return None;
        }
    }
    let size = match kind {
        Kind::TooSmall => MIN - MIB,
        _ => MIN,
    };
    let mut opts = LoopOptions::new(size);
    opts.read_only = kind == Kind::ReadOnly;
    if kind == Kind::Gpt4Kn {
        opts.sector_size = Some(4096);
    }
    // The backing fs decides rotational otherwise; fix it so the class assertion is stable.
    opts.rotational = Some(kind == Kind::BlankRotational);
    let lo = LoopDevice::with(opts).unwrap();
    let dev = lo.path_str();
    let mut fx = Fixture {
        kind,
        lo,
        mountpoint: None,
        undo: Vec::new(),
        holder: None,
    };
    let sh = |prog: &str, args: &[&str]| {
        run(prog, args).unwrap_or_else(|e| panic!("{kind:?} fixture: {e:#}"));
    };
    match kind {
        Kind::Blank
        | Kind::BlankRotational
        | Kind::ReadOnly
        | Kind::TooSmall
        | Kind::ExactMinimum => {}
        Kind::GptPartition => {
            sh(
                "sgdisk",
                &["-o", "-n", "1:2048:+100M", "-t", "1:8300", &dev],
            );
            fx.lo.sync_partitions().unwrap();
        }
        Kind::CephDiskPartition => {
            // What ceph-disk (Luminous and older) left behind: a "ceph data" partition.
            sh(
                "sgdisk",
                &[
                    "-o",
                    "-n",
                    "1:2048:+100M",
                    "-t",
                    "1:4fbd7e29-9d25-41b8-afd0-062c0ceff05d",
                    "-c",
                    "1:ceph data",
                    &dev,
                ],
            );
            fx.lo.sync_partitions().unwrap();
        }
        Kind::PartitionMounted => {
            sh("sgdisk", &["-o", "-n", "1:2048:+100M", &dev]);
            fx.lo.sync_partitions().unwrap();
            let part = fx.lo.partition_path(1).to_string_lossy().into_owned();
            sh("mkfs.ext4", &["-q", "-F", &part]);
            fx.mountpoint = Some(mount(&mut fx, &part));
        }
        // A 4Kn disk: GPT headers at byte 4096 and at size - 4096. No partx, so the kernel
        // knows no partitions and only the table itself rejects the disk.
        Kind::Gpt4Kn => sh("sgdisk", &["-o", "-n", "1:0:+100M", &dev]),
        Kind::BackupOnlyGpt => {
            sh("sgdisk", &["-o", "-n", "1:2048:+100M", &dev]);
            // Wipe the PMBR, primary header and primary entries; the backup at the end stays.
            fx.lo.write_at(0, &vec![0u8; MIB as usize]).unwrap();
        }
        Kind::EmptyDos => run_stdin("sfdisk", &["--quiet", &dev], "label: dos\n"),
        Kind::Ext4 => sh("mkfs.ext4", &["-q", "-F", &dev]),
        Kind::Xfs => sh("mkfs.xfs", &["-q", "-f", &dev]),
        Kind::Btrfs => sh("mkfs.btrfs", &["-q", "-f", &dev]),
        Kind::Vfat => sh("mkfs.vfat", &["-F", "32", &dev]),
        Kind::SwapSignature => sh("mkswap", &[&dev]),
        Kind::ActiveSwap => {
            sh("mkswap", &[&dev]);
            sh("swapon", &[&dev]);
            fx.undo.push(("swapoff".into(), vec![dev.clone()]));
        }
        Kind::LvmCephVg => {
            // Named like the VGs ceph-volume creates (`ceph-<uuid>`), unique per device.
            let vg = format!("ceph-rookery-test-{}", fx.lo.name());
            sh("pvcreate", &["-ff", "-y", &dev]);
            fx.undo.push((
                "pvremove".into(),
                vec!["-ff".into(), "-y".into(), dev.clone()],
            ));
            sh("vgcreate", &[&vg, &dev]);
            fx.undo
                .push(("vgremove".into(), vec!["-f".into(), vg.clone()]));
            // /dev/mapper/control may exist without the driver (lvm2's postinst creates
            // it), so ask the kernel.
            let dm =
                std::fs::read_to_string("/proc/misc").is_ok_and(|m| m.contains("device-mapper"));
            if dm {
                sh("lvcreate", &["-y", "-n", "osd-block", "-l", "50%FREE", &vg]);
            } else {
                // No device-mapper: write the LV into the VG metadata only.
                sh(
                    "lvcreate",
                    &[
                        "--driverloaded",
                        "n",
                        "-an",
                        "-Zn",
                        "-n",
                        "osd-block",
                        "-l",
                        "50%FREE",
                        &vg,
                    ],
                );
            }
        }
        Kind::BluestoreAt0 => fx.lo.write_at(0, bluestore_label().as_bytes()).unwrap(),
        Kind::BluestoreReplica1G => fx.lo.write_at(GIB, bluestore_label().as_bytes()).unwrap(),
        Kind::Mounted => {
            sh("mkfs.ext4", &["-q", "-F", &dev]);
            let dir = tempfile::Builder::new()
                .prefix("rookery-mnt-")
                .tempdir()
                .unwrap();
            let d = dir.path().to_string_lossy().into_owned();
            sh("mount", &[&dev, &d]);
            fx.undo.push(("umount".into(), vec![d]));
            fx.mountpoint = Some(dir);
        }
        Kind::HeldExclusive => {
            fx.holder = Some(
                std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(nix::libc::O_EXCL)
                    .open(&dev)
                    .unwrap_or_else(|e| panic!("cannot hold {dev} exclusively: {e}")),
            )
        }
    }
    Some(fx)
}

/// Mounts `dev` on a fresh temp dir and registers the umount.
fn mount(fx: &mut Fixture, dev: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("rookery-mnt-")
        .tempdir()
        .unwrap();
    let d = dir.path().to_string_lossy().into_owned();
    run("mount", &[dev, &d]).unwrap();
    fx.undo.push(("umount".into(), vec![d]));
    dir
}

fn bluestore_label() -> String {
    "bluestore block device\n5b1c2a3e-0d4f-4e6a-9b8c-7d6e5f4a3b2c\n".to_string()
}

fn run_stdin(prog: &str, args: &[&str], input: &str) {
    let mut c = Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{prog} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
