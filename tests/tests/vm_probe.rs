//! `rookery probe` against a real QEMU guest over SSH: the emulated NVMe namespace is class
//! nvme (not rotational, transport nvme), the SATA HDD is class hdd, the root disk (virtio
//! `vda`, which also claims to be rotational) is never offered, the hidden NVMe multipath
//! path node and empty loop devices are not listed, every by-id link reported resolves, in
//! the guest itself, to the device it was reported for, and a disk's stable id does not change
//! when partitions, filesystems or LVM are put on it.

use std::process::Command;
use std::time::Instant;

use rookery_proto::{BlockDevice, DeviceClass, RejectReason, Transport};
use rookery_tests::bins;
use rookery_tests::vm::{self, Lab, LabOptions, dirty_disks_script};
use serde_json::Value;

/// Every JSON object in the output that has the shape of a probed block device. The
/// surrounding report structure belongs to the probe command; the device objects are the
/// protocol's `BlockDevice`, which is the contract this test holds the tool to.
fn devices(v: &Value, out: &mut Vec<BlockDevice>) {
    match v {
        Value::Object(map) => {
            if map.contains_key("rotational")
                && map.contains_key("class")
                && map.contains_key("path")
            {
                match serde_json::from_value::<BlockDevice>(v.clone()) {
                    Ok(d) => out.push(d),
                    Err(e) => panic!(
                        "device object does not parse as rookery_proto::BlockDevice: {e}\n{v:#}"
                    ),
                }
                return;
            }
            map.values().for_each(|x| devices(x, out));
        }
        Value::Array(items) => items.iter().for_each(|x| devices(x, out)),
        _ => {}
    }
}

#[test]
fn probe_classifies_nvme_and_hdd_in_a_real_guest() {
    if !vm::prerequisites() {
        return;
    }
    let lab = Lab::start(&LabOptions::default()).unwrap();
    let g = &lab.guests[0];
    let inventory = lab.inventory().unwrap();

    let probe = || -> (Vec<BlockDevice>, std::time::Duration) {
        let t0 = Instant::now();
        let out = Command::new(bins::rookery())
            .args([
                "probe",
                "--connect-timeout",
                vm::CONNECT_TIMEOUT,
                "-o",
                "json",
                "-i",
            ])
            .arg(&inventory)
            .env("ROOKERY_AGENT", bins::agent())
            .env("NO_COLOR", "1")
            .output()
            .unwrap_or_else(|e| panic!("cannot run rookery: {e}"));
        let elapsed = t0.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "rookery probe failed with {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            out.status
        );
        let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!("`rookery probe -o json` did not print one JSON document: {e}\n{stdout}")
        });
        let mut found = Vec::new();
        devices(&json, &mut found);
        (found, elapsed)
    };
    let (found, first) = probe();
    // Second run: the agent is already on the guest; identities must not change.
    let (again, second) = probe();
    eprintln!(
        "vmlab timing: image {:.1?}, boot {:.1?}, probe {first:.1?} (agent upload included), \
         probe again {second:.1?}",
        lab.image.elapsed, lab.boot_elapsed
    );
    let ids = |v: &[BlockDevice]| -> Vec<(String, String)> {
        v.iter()
            .map(|d| (d.name.clone(), d.stable_id().to_string()))
            .collect()
    };
    assert_eq!(
        ids(&found),
        ids(&again),
        "stable ids changed between two probes"
    );
    let by_name = |name: &str| found.iter().find(|d| d.name == name);
    let names: Vec<&str> = found.iter().map(|d| d.name.as_str()).collect();
    eprintln!("probe reported: {:?}", ids(&found));

    let nvme = by_name("nvme0n1").unwrap_or_else(|| panic!("nvme0n1 not reported; got {names:?}"));
    assert_eq!(nvme.class, DeviceClass::Nvme, "{nvme:#?}");
    assert!(!nvme.rotational, "{nvme:#?}");
    assert_eq!(nvme.transport, Transport::Nvme, "{nvme:#?}");
    assert_eq!(
        nvme.serial.as_deref(),
        Some(g.nvme_serial.as_str()),
        "{nvme:#?}"
    );
    assert_eq!(nvme.size_bytes, 8 << 30);
    assert!(
        nvme.available,
        "a blank 8 GiB NVMe namespace must be available: {nvme:#?}"
    );

    let hdd =
        by_name("sda").unwrap_or_else(|| panic!("sda (the SATA HDD) not reported; got {names:?}"));
    assert_eq!(hdd.class, DeviceClass::Hdd, "{hdd:#?}");
    assert!(hdd.rotational, "{hdd:#?}");
    assert_eq!(hdd.transport, Transport::Sata, "{hdd:#?}");
    assert_eq!(
        hdd.serial.as_deref(),
        Some(g.hdd_serial.as_str()),
        "{hdd:#?}"
    );
    assert_eq!(hdd.size_bytes, 16 << 30);
    assert!(
        hdd.available,
        "a blank 16 GiB HDD must be available: {hdd:#?}"
    );

    // The root disk is rotational too (virtio-blk's default): it must never be offered.
    if let Some(root) = by_name("vda") {
        assert!(!root.available, "root disk offered to Ceph: {root:#?}");
        assert!(
            root.holds_root || root.reject_reasons.contains(&RejectReason::HoldsRoot),
            "vda holds / but is not marked so: {root:#?}"
        );
    }
    // Hidden per-path node of native NVMe multipath, and empty loop devices: not disks.
    assert!(
        by_name("nvme0c0n1").is_none(),
        "hidden NVMe path node listed: {names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("loop")),
        "loop devices listed without asking: {names:?}"
    );

    // Stable identities: at least one by-id link per data disk, each resolving in the guest
    // to the device it was reported for, and a stable_id that is not the kernel name.
    for (dev, serial) in [(nvme, &g.nvme_serial), (hdd, &g.hdd_serial)] {
        assert!(
            dev.by_id.iter().any(|l| l.contains(serial.as_str())),
            "no by-id link with serial {serial}: {dev:#?}"
        );
        for link in &dev.by_id {
            assert!(link.starts_with("/dev/disk/by-id/"), "{link}");
            let target = lab.ssh_ok(g, &format!("readlink -f '{link}'"));
            assert_eq!(
                target.trim(),
                dev.path,
                "{link} resolves elsewhere in the guest"
            );
        }
        assert!(
            dev.stable_id().starts_with("/dev/disk/by-id/"),
            "{}",
            dev.stable_id()
        );
    }
    // The guest's own udev agrees on the NVMe WWN-style identity (nvme-eui./nvme-nvme.).
    let udev_links = lab.ssh_ok(g, "udevadm info -q symlink /dev/nvme0n1");
    for link in &nvme.by_id {
        assert!(
            udev_links
                .split_whitespace()
                .any(|l| format!("/dev/{l}") == *link),
            "{link} is not one of udev's links: {udev_links}"
        );
    }

    // A disk's identity is the disk's, not its contents': after the guest puts partitions,
    // filesystems and an LVM PV on both disks, the stable ids are unchanged (udev then also
    // links lvm-pv-uuid-* to them, and such a link vanishes with the next wipe).
    lab.ssh_ok(g, &dirty_disks_script(g));
    let (dirty, _) = probe();
    let stable = |v: &[BlockDevice], name: &str| {
        v.iter()
            .find(|d| d.name == name)
            .map(|d| d.stable_id().to_string())
    };
    for name in ["nvme0n1", "sda"] {
        assert_eq!(
            stable(&dirty, name),
            stable(&found, name),
            "{name}'s stable id changed with its contents: {:#?}",
            dirty.iter().find(|d| d.name == name)
        );
        let d = dirty.iter().find(|d| d.name == name).unwrap();
        assert!(
            !d.available,
            "{name} carries data now but is still available: {d:#?}"
        );
    }
}
