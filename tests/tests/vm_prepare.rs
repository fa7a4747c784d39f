//! `rookery prepare` over SSH on a real QEMU guest whose NVMe namespace and SATA HDD carry
//! what a reused server has (GPT + ext4 + LVM PV partitions on the HDD; an active `ceph-*`
//! VG/LV with XFS on the NVMe): it refuses without consent and changes nothing, `--check`
//! changes nothing, `--wipe` leaves both disks clean as the guest's own wipefs/blkid/lsblk see
//! them, a re-run does nothing, and the root disk is refused whatever the flags.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rookery_proto::{DeviceOutcome, PrepareAction};
use rookery_tests::bins;
use rookery_tests::vm::{self, Lab, LabOptions, clean_check_script, dirty_disks_script};
use serde_json::Value;

fn prepare(
    inventory: &Path,
    audit: &Path,
    extra: &[&str],
) -> (Output, Vec<DeviceOutcome>, Duration) {
    let t0 = Instant::now();
    let out = Command::new(bins::rookery())
        .args([
            "prepare",
            "--connect-timeout",
            vm::CONNECT_TIMEOUT,
            "-o",
            "json",
            "-i",
        ])
        .arg(inventory)
        .arg("--audit-log")
        .arg(audit)
        .args(extra)
        .env("ROOKERY_AGENT", bins::agent())
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run rookery: {e}"));
    let elapsed = t0.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "rookery prepare {extra:?}: {} in {elapsed:.1?}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("`rookery prepare -o json` printed no JSON document: {e}\n{stdout}")
    });
    let devices = json["hosts"]
        .as_array()
        .unwrap_or_else(|| panic!("no `hosts` array in {json:#}"))
        .iter()
        .flat_map(|h| h["devices"].as_array().cloned().unwrap_or_default())
        .map(|d| {
            serde_json::from_value::<DeviceOutcome>(d.clone())
                .unwrap_or_else(|e| panic!("device outcome does not parse: {e}\n{d:#}"))
        })
        .collect();
    (out, devices, elapsed)
}

fn actions(devices: &[DeviceOutcome]) -> Vec<(String, PrepareAction)> {
    let mut v: Vec<_> = devices
        .iter()
        .map(|d| (d.resolved_path.clone().unwrap_or_default(), d.action))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn prepare_refuses_without_consent_then_wipes_nvme_and_hdd() {
    if !vm::prerequisites() {
        return;
    }
    let lab = Lab::start(&LabOptions::default()).unwrap();
    let g = &lab.guests[0];
    let audit = lab.run_dir().join("audit.jsonl");
    let inventory = lab
        .write_inventory("prepare.yaml", |g| {
            format!(
                "      rookery_devices:\n        - {{serial: {}, wipe: true}}\n        - {{serial: {}, wipe: true}}\n",
                g.nvme_serial, g.hdd_serial
            )
        })
        .unwrap();
    lab.ssh_ok(g, &dirty_disks_script(g));
    let state = "lsblk -rn -o NAME,FSTYPE /dev/sda /dev/nvme0n1; vgs --noheadings -o vg_name";
    let dirty = lab.ssh_ok(g, state);
    assert!(
        dirty.contains("sda1 ext4") && dirty.contains("ceph-vmlab-"),
        "{dirty}"
    );

    // No --wipe: nothing happens, both devices need consent, non-zero exit.
    let (out, devs, _) = prepare(&inventory, &audit, &[]);
    assert!(
        !out.status.success(),
        "prepare without --wipe succeeded on disks with data"
    );
    assert_eq!(
        actions(&devs),
        [
            ("/dev/nvme0n1".into(), PrepareAction::NeedsConsent),
            ("/dev/sda".into(), PrepareAction::NeedsConsent)
        ],
        "{devs:#?}"
    );
    assert_eq!(lab.ssh_ok(g, state), dirty, "disks changed without consent");

    // --check --wipe: says it would wipe, changes nothing.
    let (out, devs, _) = prepare(&inventory, &audit, &["--check", "--wipe"]);
    assert!(
        out.status.success(),
        "--check --wipe failed: {}",
        out.status
    );
    assert_eq!(
        actions(&devs),
        [
            ("/dev/nvme0n1".into(), PrepareAction::WouldWipe),
            ("/dev/sda".into(), PrepareAction::WouldWipe)
        ],
        "{devs:#?}"
    );
    assert_eq!(lab.ssh_ok(g, state), dirty, "--check changed the disks");

    // --wipe: both wiped, the ceph LV on the NVMe removed, signatures reported.
    let (out, devs, wipe_time) = prepare(&inventory, &audit, &["--wipe"]);
    assert!(
        out.status.success(),
        "prepare --wipe failed: {}",
        out.status
    );
    assert_eq!(
        actions(&devs),
        [
            ("/dev/nvme0n1".into(), PrepareAction::Wiped),
            ("/dev/sda".into(), PrepareAction::Wiped)
        ],
        "{devs:#?}"
    );
    for d in &devs {
        // The identity carried through plan and audit is the disk's own (serial-based), not
        // a link derived from its contents (lvm-pv-uuid-*), which the wipe itself destroys.
        let serial = d.identity.serial.clone().unwrap_or_default();
        assert!(
            d.identity
                .by_id
                .as_deref()
                .is_none_or(|l| l.contains(&serial)
                    || l.contains("/wwn-")
                    || l.contains("/nvme-eui.")),
            "identity by-id link is not a device identity: {d:#?}"
        );
        assert!(
            !d.signatures_before.is_empty(),
            "no signatures reported before wiping: {d:#?}"
        );
        assert!(d.signatures_after.is_empty(), "signatures left: {d:#?}");
    }
    let nvme = devs
        .iter()
        .find(|d| d.resolved_path.as_deref() == Some("/dev/nvme0n1"))
        .unwrap();
    assert!(
        !nvme.removed_holders.is_empty(),
        "the ceph LV on nvme0n1 was not reported removed: {nvme:#?}"
    );
    for dev in ["/dev/sda", "/dev/nvme0n1"] {
        lab.ssh_ok(g, &clean_check_script(dev));
    }
    let vgs = lab.ssh_ok(g, "vgs --noheadings -o vg_name; dmsetup ls");
    assert!(!vgs.contains("ceph-vmlab"), "ceph VG/LV left behind: {vgs}");
    let node_log = lab.ssh_ok(g, "cat /var/log/rookery/*.log 2>/dev/null | wc -l");
    assert!(node_log.trim() != "0", "no audit lines on the node");
    let control_log = std::fs::read_to_string(&audit).unwrap();
    assert!(
        control_log.contains(&g.nvme_serial) && control_log.contains(&g.hdd_serial),
        "{control_log}"
    );

    // Re-run: nothing to do, nothing written.
    let audit_lines = control_log.lines().count();
    let (out, devs, rerun_time) = prepare(&inventory, &audit, &["--wipe"]);
    assert!(out.status.success());
    assert_eq!(
        actions(&devs),
        [
            ("/dev/nvme0n1".into(), PrepareAction::Ok),
            ("/dev/sda".into(), PrepareAction::Ok)
        ],
        "{devs:#?}"
    );
    let after = std::fs::read_to_string(&audit).unwrap_or_default();
    assert!(
        !after
            .lines()
            .skip(audit_lines)
            .any(|l| l.contains("\"wipe") || l.contains("zero")),
        "re-run logged destructive steps:\n{after}"
    );
    eprintln!(
        "vmlab timing: boot {:.1?}, prepare --wipe {wipe_time:.1?}, re-run {rerun_time:.1?}",
        lab.boot_elapsed
    );

    // The root disk, named explicitly with wipe: true and --wipe: refused, untouched.
    let root_inv = lab
        .write_inventory("root.yaml", |_| {
            "      rookery_devices:\n        - {name: /dev/vda, wipe: true}\n".to_string()
        })
        .unwrap();
    let (out, devs, _) = prepare(&root_inv, &audit, &["--wipe"]);
    assert!(
        !out.status.success(),
        "wiping the root disk was not refused"
    );
    assert!(
        devs.iter().all(|d| d.action == PrepareAction::Refused),
        "{devs:#?}"
    );
    assert_eq!(
        lab.ssh_ok(g, "blkid -p -s TYPE -o value /dev/vda").trim(),
        "ext4"
    );
    assert_eq!(lab.ssh_ok(g, "findmnt -no SOURCE /").trim(), "/dev/vda");
}
