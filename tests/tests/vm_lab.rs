//! The VM lab itself: three guests boot together from the debootstrap image, answer SSH only
//! on loopback with the pinned host key, and each guest's own `lsblk` shows the disks the other
//! VM tests rely on (NVMe non-rotational, SATA HDD rotational, virtio root disk, NVMe's hidden
//! multipath node), with its own serials and hostname, and no network egress.

use rookery_tests::vm::{self, Lab, LabOptions};

#[test]
fn three_guests_see_nvme_and_sata_hdd() {
    if !vm::prerequisites() {
        return;
    }
    let lab = Lab::start(&LabOptions {
        guests: 3,
        ..LabOptions::default()
    })
    .unwrap();
    eprintln!(
        "vmlab timing: image {:.1?}, boot of {} guests {:.1?} (each: {:?})",
        lab.image.elapsed,
        lab.guests.len(),
        lab.boot_elapsed,
        lab.guests.iter().map(|g| g.boot_to_ssh).collect::<Vec<_>>()
    );

    // One SSH round trip per guest, all guests at once: each handshake costs the emulated
    // guest real CPU time.
    const FACTS: &str = "hostname; echo ---; lsblk -dn -o NAME,ROTA,TRAN,SERIAL; echo ---; \
        findmnt -no SOURCE /; echo ---; cat /sys/block/nvme0c0n1/hidden; echo ---; \
        ls /dev/disk/by-id/; echo ---; \
        if timeout 5 bash -c 'exec 3<>/dev/tcp/10.0.2.2/22' 2>/dev/null; then echo egress; \
        else echo no-egress; fi";
    let facts: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = lab
            .guests
            .iter()
            .map(|g| {
                let lab = &lab;
                s.spawn(move || lab.ssh_ok(g, FACTS))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (g, out) in lab.guests.iter().zip(&facts) {
        let parts: Vec<&str> = out.split("---\n").map(str::trim).collect();
        let [hostname, lsblk, root, hidden, by_id, egress] = parts[..] else {
            panic!("unexpected output from {}:\n{out}", g.name);
        };
        assert_eq!(hostname, g.name);
        let row = |name: &str| -> Vec<String> {
            lsblk
                .lines()
                .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
                .find(|cols| cols.first().is_some_and(|n| n == name))
                .unwrap_or_else(|| panic!("{name} missing from {}'s lsblk:\n{lsblk}", g.name))
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
        assert_eq!(root, "/dev/vda");
        // Native NVMe multipath: the per-controller path node exists and is hidden.
        assert_eq!(hidden, "1");
        assert!(by_id.contains(&g.nvme_serial), "{by_id}");
        assert!(by_id.contains(&g.hdd_serial), "{by_id}");
        // restrict=on: the guest reaches nothing outside, not even the host's gateway address.
        assert_eq!(
            egress, "no-egress",
            "{} reached 10.0.2.2:22 despite restrict=on",
            g.name
        );
    }
    // QEMU listens on loopback only.
    let ss = std::process::Command::new("ss").args(["-Hltnp"]).output();
    if let Ok(ss) = ss {
        for line in String::from_utf8_lossy(&ss.stdout).lines() {
            if lab
                .guests
                .iter()
                .any(|g| line.contains(&format!("pid={},", g.pid)))
            {
                assert!(
                    line.contains("127.0.0.1:"),
                    "QEMU listens beyond loopback: {line}"
                );
            }
        }
    }
}
