//! Probe verdicts on real loop devices: one test per disk state, asserting class, signatures
//! and the exact reject reasons. Also drives the built `rookery-agent` binary over the
//! protocol so the wire path is covered, not just the library.
//!
//! Needs root and the tools in `common::programs` (gdisk, fdisk, xfsprogs, btrfs-progs,
//! dosfstools, lvm2). Under `ROOKERY_REQUIRE_REAL=1` a missing prerequisite fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::{Fixture, GIB, Kind, MIB};
use rookery_agent::probe::probe_device;
use rookery_proto::{
    AgentFrame, AgentMessage, BlockDevice, DeviceClass, DeviceKind, HelloRequest, MARKER,
    PROTOCOL_VERSION, ProbeRequest, Request, Response, RunnerFrame, SignatureKind, Transport,
};

fn probe(fx: &Fixture) -> BlockDevice {
    let d = probe_device(&fx.lo.path_str(), true).unwrap();
    let mut reasons = d.reject_reasons.clone();
    reasons.sort();
    assert_eq!(
        reasons,
        fx.expected(),
        "{:?} on {}: signatures {:?}",
        fx.kind,
        d.path,
        d.signatures
    );
    assert!(!d.available, "loop devices are never available");
    // "Available apart from being a loop device" must match the fixture's intent.
    let only_loop = d.reject_reasons == [rookery_proto::RejectReason::LoopDevice];
    assert_eq!(
        only_loop,
        matches!(
            fx.kind,
            Kind::Blank | Kind::BlankRotational | Kind::ExactMinimum
        )
    );
    assert_eq!(d.kind, DeviceKind::Loop);
    assert_eq!(d.transport, Transport::Loop);
    d
}

fn kinds(d: &BlockDevice) -> Vec<SignatureKind> {
    d.signatures.iter().map(|s| s.kind).collect()
}

macro_rules! fixture {
    ($kind:expr) => {
        match common::build($kind) {
            Some(f) => f,
            None => return,
        }
    };
}

#[test]
fn blank_5gib_is_available_apart_from_being_a_loop_device() {
    let fx = fixture!(Kind::Blank);
    let d = probe(&fx);
    assert_eq!(d.size_bytes, 5 * GIB);
    assert_eq!(d.class, DeviceClass::Ssd);
    assert!(!d.rotational);
    assert!(d.signatures.is_empty());
    assert!(d.partitions.is_empty());
    assert!(!d.in_use);
    assert_eq!(d.logical_sector_size, 512);
}

#[test]
fn rotational_blank_is_hdd() {
    let fx = fixture!(Kind::BlankRotational);
    let d = probe(&fx);
    assert!(d.rotational);
    assert_eq!(d.class, DeviceClass::Hdd);
}

#[test]
fn exact_minimum_size_is_accepted() {
    let fx = fixture!(Kind::ExactMinimum);
    assert_eq!(probe(&fx).size_bytes, 5_368_709_120);
}

#[test]
fn one_mib_below_minimum_is_too_small() {
    let fx = fixture!(Kind::TooSmall);
    assert_eq!(probe(&fx).size_bytes, 5_368_709_120 - MIB);
}

#[test]
fn gpt_with_a_partition() {
    let fx = fixture!(Kind::GptPartition);
    let d = probe(&fx);
    assert_eq!(
        kinds(&d),
        vec![
            SignatureKind::ProtectiveMbr,
            SignatureKind::GptPrimary,
            SignatureKind::GptBackup
        ]
    );
    assert_eq!(d.signatures[2].offset, d.size_bytes - 512);
    assert_eq!(d.partitions.len(), 1);
    let p = &d.partitions[0];
    assert_eq!(p.number, 1);
    assert_eq!(p.name, format!("{}p1", fx.lo.name()));
    assert_eq!(p.start_bytes, MIB);
    assert_eq!(p.size_bytes, 100 * MIB);
}

#[test]
fn ceph_disk_partition_is_used_by_ceph_disk() {
    let fx = fixture!(Kind::CephDiskPartition);
    assert_eq!(probe(&fx).partitions.len(), 1);
}

#[test]
fn mounted_partition_makes_the_disk_mounted_and_busy() {
    let fx = fixture!(Kind::PartitionMounted);
    let d = probe(&fx);
    assert!(d.in_use);
    assert_eq!(d.partitions[0].mountpoints, d.mountpoints);
    assert_eq!(d.partitions[0].signatures[0].kind, SignatureKind::Ext4);
}

#[test]
fn gpt_on_a_4kn_disk() {
    let fx = fixture!(Kind::Gpt4Kn);
    let d = probe(&fx);
    assert_eq!(d.logical_sector_size, 4096);
    let offs: Vec<_> = d.signatures.iter().map(|s| (s.kind, s.offset)).collect();
    assert_eq!(
        offs,
        vec![
            (SignatureKind::ProtectiveMbr, 510),
            (SignatureKind::GptPrimary, 4096),
            (SignatureKind::GptBackup, d.size_bytes - 4096)
        ]
    );
}

#[test]
fn backup_only_gpt_is_detected() {
    let fx = fixture!(Kind::BackupOnlyGpt);
    let d = probe(&fx);
    assert_eq!(kinds(&d), vec![SignatureKind::GptBackup]);
    assert!(d.partitions.is_empty());
}

#[test]
fn empty_dos_table() {
    let fx = fixture!(Kind::EmptyDos);
    assert_eq!(kinds(&probe(&fx)), vec![SignatureKind::Mbr]);
}

#[test]
fn ext4() {
    let fx = fixture!(Kind::Ext4);
    let d = probe(&fx);
    assert_eq!(kinds(&d), vec![SignatureKind::Ext4]);
    assert_eq!(d.signatures[0].offset, 0x438);
    assert!(d.signatures[0].uuid.is_some());
}

#[test]
fn xfs() {
    let fx = fixture!(Kind::Xfs);
    assert_eq!(kinds(&probe(&fx)), vec![SignatureKind::Xfs]);
}

#[test]
fn btrfs() {
    let fx = fixture!(Kind::Btrfs);
    let d = probe(&fx);
    assert_eq!(kinds(&d), vec![SignatureKind::Btrfs]);
    assert_eq!(d.signatures[0].offset, 0x10040);
}

#[test]
fn vfat_is_not_mistaken_for_a_dos_table() {
    let fx = fixture!(Kind::Vfat);
    assert_eq!(kinds(&probe(&fx)), vec![SignatureKind::Vfat]);
}

#[test]
fn swap_signature() {
    let fx = fixture!(Kind::SwapSignature);
    let d = probe(&fx);
    assert_eq!(kinds(&d), vec![SignatureKind::Swap]);
    assert!(!d.swap);
}

#[test]
fn active_swap() {
    let fx = fixture!(Kind::ActiveSwap);
    let d = probe(&fx);
    assert!(d.swap);
    assert!(d.in_use);
}

#[test]
fn lvm_pv_with_a_ceph_vg() {
    let fx = fixture!(Kind::LvmCephVg);
    let d = probe(&fx);
    assert_eq!(kinds(&d), vec![SignatureKind::Lvm2]);
    assert_eq!(d.signatures[0].offset, 0x218);
    // The VG name comes from the PV's metadata area.
    assert_eq!(
        d.signatures[0].label.as_deref(),
        Some(format!("ceph-rookery-test-{}", fx.lo.name()).as_str())
    );
}

#[test]
fn bluestore_label_at_zero() {
    let fx = fixture!(Kind::BluestoreAt0);
    let d = probe(&fx);
    assert_eq!(kinds(&d), vec![SignatureKind::Bluestore]);
    assert_eq!(
        d.signatures[0].uuid.as_deref(),
        Some("5b1c2a3e-0d4f-4e6a-9b8c-7d6e5f4a3b2c")
    );
}

#[test]
fn bluestore_replica_at_1gib() {
    let fx = fixture!(Kind::BluestoreReplica1G);
    let d = probe(&fx);
    assert_eq!(kinds(&d), vec![SignatureKind::Bluestore]);
    assert_eq!(d.signatures[0].offset, GIB);
}

#[test]
fn mounted() {
    let fx = fixture!(Kind::Mounted);
    let d = probe(&fx);
    assert_eq!(d.mountpoints.len(), 1);
    assert!(d.in_use);
    assert!(!d.holds_root);
}

#[test]
fn read_only() {
    let fx = fixture!(Kind::ReadOnly);
    assert!(probe(&fx).read_only);
}

#[test]
fn held_open_exclusively_by_another_process() {
    let fx = fixture!(Kind::HeldExclusive);
    assert!(probe(&fx).in_use);
}

/// The same verdict through the built binary and the wire protocol (marker, hello, probe).
#[test]
fn probe_over_the_protocol_matches_the_library() {
    let fx = fixture!(Kind::Ext4);
    let mut child = Command::new(env!("CARGO_BIN_EXE_rookery-agent"))
        .arg("serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for (id, request) in [
        (
            1,
            Request::Hello(HelloRequest {
                protocol_version: PROTOCOL_VERSION,
                runner_version: "test".into(),
            }),
        ),
        (
            2,
            Request::Probe(ProbeRequest {
                include_loop: true,
                only: vec![fx.lo.path_str()],
            }),
        ),
    ] {
        let line = serde_json::to_string(&RunnerFrame { id, request }).unwrap();
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    let out = BufReader::new(child.stdout.take().unwrap());
    let lines: Vec<String> = out.lines().map(|l| l.unwrap()).collect();
    assert!(child.wait().unwrap().success());
    assert_eq!(lines[0], MARKER);
    let frames: Vec<AgentFrame> = lines[1..]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(matches!(
        frames[0].body,
        AgentMessage::Response(Response::Hello(_))
    ));
    let AgentMessage::Response(Response::Probe(facts)) = &frames[1].body else {
        panic!("{:?}", frames[1]);
    };
    assert_eq!(facts.block_devices.len(), 1, "{:?}", facts.block_devices);
    let wire = &facts.block_devices[0];
    let lib = probe(&fx);
    assert_eq!(wire, &lib);
}

/// Unattached loop devices and loops without include_loop never get a verdict.
#[test]
fn loop_devices_are_skipped_unless_asked() {
    let fx = fixture!(Kind::Blank);
    let facts = rookery_agent::probe::probe_host(&ProbeRequest {
        include_loop: false,
        only: vec![fx.lo.name().to_string()],
    });
    assert!(facts.block_devices.is_empty());
    assert_eq!(facts.skipped_devices.len(), 1);
    assert!(facts.skipped_devices[0].reason.contains("loop"));
    assert!(probe_device(fx.lo.name(), false).is_err());
}
