//! The VM lab itself: a guest boots from the debootstrap image, answers SSH only on loopback
//! with the pinned host key, and its own `lsblk` shows the disks the other VM tests rely on
//! (NVMe non-rotational, SATA HDD rotational at 7200 rpm, virtio root disk), with no egress.

use rookery_tests::vm::{self, Lab, LabOptions};

#[test]
fn guest_sees_nvme_and_sata_hdd() {
    if !vm::prerequisites() {
        return;
    }
    let lab = Lab::start(&LabOptions::default()).unwrap();
    let g = &lab.guests[0];
    eprintln!(
        "vmlab timing: image {:.1?}, boot {:.1?}",
        lab.image.elapsed, lab.boot_elapsed
    );

    let lsblk = lab.ssh_ok(g, "lsblk -dn -o NAME,ROTA,TRAN,SERIAL");
    let row = |name: &str| -> Vec<String> {
        lsblk
            .lines()
            .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
            .find(|cols| cols.first().is_some_and(|n| n == name))
            .unwrap_or_else(|| panic!("{name} missing from the guest's lsblk:\n{lsblk}"))
    };
    assert_eq!(
        row("nvme0n1")[1..],
        ["0", "nvme", g.nvme_serial.as_str()],
        "{lsblk}"
    );
    assert_eq!(
        row("sda")[1..],
        ["1", "sata", g.hdd_serial.as_str()],
        "{lsblk}"
    );
    assert_eq!(row("vda")[1..], ["1", g.root_serial.as_str()], "{lsblk}");
    assert_eq!(lab.ssh_ok(g, "findmnt -no SOURCE /").trim(), "/dev/vda");
    // Native NVMe multipath: the per-controller path node exists and is hidden.
    assert_eq!(lab.ssh_ok(g, "cat /sys/block/nvme0c0n1/hidden").trim(), "1");
    assert!(
        lab.ssh_ok(g, "ls /dev/disk/by-id/")
            .contains(&g.nvme_serial)
    );

    // restrict=on: the guest cannot reach anything outside (the host's gateway included).
    let egress = lab.ssh(
        g,
        "timeout 5 bash -c 'exec 3<>/dev/tcp/10.0.2.2/22' 2>/dev/null",
    );
    assert!(
        !egress.status.success(),
        "guest reached 10.0.2.2:22 despite restrict=on"
    );
    assert!(g.boot_to_ssh.as_secs() > 0);
}
