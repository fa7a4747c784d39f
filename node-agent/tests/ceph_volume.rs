//! Side-by-side with Ceph's own verdict: for every loop-device fixture, run
//! `CEPH_VOLUME_ALLOW_LOOP_DEVICES=true ceph-volume inventory --format json <dev>` (Debian's
//! `ceph-osd` package; it also needs `udevadm` from `udev`) and check that
//!
//! * every reason ceph-volume gives is one of ours (mapped with
//!   `RejectReason::ceph_volume_reason`), and
//! * ceph-volume's `available` equals ours with `LoopDevice` ignored (ceph-volume was told to
//!   allow loops), except on the fixtures where ceph-volume 16.2.x is known to be too
//!   permissive (`Fixture::ceph_volume_gap`): there it must say available while we reject.
//!
//! ceph-volume's LVM path adds `Insufficient space (<10 extents) on vgs` when the device's VG
//! has no free extents; we reject any LVM PV outright (`LvmMember`), which implies it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{Fixture, Kind};
use rookery_agent::probe::probe_device;
use rookery_proto::RejectReason;
use rookery_tests::require;

/// ceph-volume reasons that one of our reasons implies without being its direct mapping.
fn implied(ours: &[RejectReason], cv_reason: &str) -> bool {
    cv_reason.starts_with("Insufficient space (<10 extents) on vgs")
        && ours.contains(&RejectReason::LvmMember)
}

fn compare(kind: Kind) {
    if !require::prerequisite(
        require::have_program("ceph-volume") && require::have_program("udevadm"),
        "ceph-volume (apt-get install ceph-osd udev) for the comparison",
    ) {
        return;
    }
    let Some(fx) = common::build(kind) else {
        return;
    };
    check(&fx);
}

fn check(fx: &Fixture) {
    let dev = fx.lo.path_str();
    // ceph-volume enumerates every block device and PV (lsblk, pvs) even when asked about
    // one; loop devices of tests running in parallel come and go under it, which makes it
    // fail now and then. Retry before calling it a failure.
    let mut attempts = Vec::new();
    let stdout = loop {
        let out = Command::new("ceph-volume")
            .args(["inventory", "--format", "json", &dev])
            .env("CEPH_VOLUME_ALLOW_LOOP_DEVICES", "true")
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            break stdout;
        }
        attempts.push(format!("{}{stdout}", String::from_utf8_lossy(&out.stderr)));
        assert!(
            attempts.len() < 3,
            "ceph-volume inventory {dev} failed 3 times: {attempts:#?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    let cv: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("ceph-volume output for {dev} is not JSON ({e}): {stdout}"));
    let cv_available = cv["available"].as_bool().unwrap();
    let cv_reasons: BTreeSet<String> = cv["rejected_reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();

    let ours = probe_device(&dev, true).unwrap().reject_reasons;
    eprintln!(
        "{:?}: ceph-volume available={cv_available} {cv_reasons:?}; ours {ours:?}",
        fx.kind
    );
    let mapped: BTreeSet<&str> = ours.iter().filter_map(|r| r.ceph_volume_reason()).collect();
    for r in &cv_reasons {
        assert!(
            mapped.contains(r.as_str()) || implied(&ours, r),
            "{:?}: ceph-volume says {r:?}, we do not (ours: {ours:?}, ceph-volume: {cv_reasons:?})",
            fx.kind
        );
    }
    let ours_available = ours.iter().all(|r| *r == RejectReason::LoopDevice);
    if fx.ceph_volume_gap() {
        assert!(
            cv_available && !ours_available,
            "{:?}: expected ceph-volume to miss what we reject ({ours:?}); it says available={cv_available} {cv_reasons:?}",
            fx.kind
        );
    } else {
        assert_eq!(
            cv_available, ours_available,
            "{:?}: ceph-volume available={cv_available} {cv_reasons:?}, ours {ours:?}",
            fx.kind
        );
    }
}

macro_rules! cases {
    ($($name:ident => $kind:expr,)*) => {
        $(#[test] fn $name() { compare($kind); })*
    };
}

cases! {
    cv_blank => Kind::Blank,
    cv_gpt_partition => Kind::GptPartition,
    cv_ceph_disk_partition => Kind::CephDiskPartition,
    cv_partition_mounted => Kind::PartitionMounted,
    cv_gpt_4kn => Kind::Gpt4Kn,
    cv_backup_only_gpt => Kind::BackupOnlyGpt,
    cv_empty_dos => Kind::EmptyDos,
    cv_ext4 => Kind::Ext4,
    cv_xfs => Kind::Xfs,
    cv_btrfs => Kind::Btrfs,
    cv_vfat => Kind::Vfat,
    cv_swap_signature => Kind::SwapSignature,
    cv_active_swap => Kind::ActiveSwap,
    cv_lvm_ceph_vg => Kind::LvmCephVg,
    cv_bluestore_at_0 => Kind::BluestoreAt0,
    cv_bluestore_replica => Kind::BluestoreReplica1G,
    cv_mounted => Kind::Mounted,
    cv_read_only => Kind::ReadOnly,
    cv_too_small => Kind::TooSmall,
    cv_exact_minimum => Kind::ExactMinimum,
    cv_held_exclusive => Kind::HeldExclusive,
}

/// Every fixture kind has a comparison case (keeps the list above honest).
#[test]
fn every_fixture_is_compared() {
    let src = include_str!("ceph_volume.rs");
    for k in common::ALL {
        if *k == Kind::BlankRotational {
            continue; // same verdict as Blank; rotational is not a ceph-volume reason
        }
        assert!(
            src.contains(&format!("Kind::{k:?},")),
            "{k:?} has no ceph-volume case"
        );
    }
}
