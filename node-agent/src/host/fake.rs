//! A fake sysfs + /dev tree for unit tests: hardware this lab lacks (NVMe, SATA, SAS, USB,
//! virtio) laid out as the kernel lays it out, so the probe and prepare readers can be
//! checked against the same tree.
#![allow(clippy::unwrap_used)]

use std::fs;

use super::OsPaths;

/// The tree's root; /dev nodes are sparse regular files.
pub struct FakeHost {
    pub dir: tempfile::TempDir,
}

impl FakeHost {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for d in [
            "sys/block",
            "sys/class/block",
            "sys/dev/block",
            "sys/bus",
            "proc",
            "dev/disk/by-id",
            "etc",
        ] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        FakeHost { dir }
    }

    pub fn paths(&self) -> OsPaths {
        let r = self.dir.path();
        OsPaths {
            sys: r.join("sys"),
            proc_: r.join("proc"),
            dev: r.join("dev"),
            etc: r.join("etc"),
        }
    }

    /// Adds disk `name` whose sysfs node lives at `devpath` (under sys/devices) on bus
    /// `subsystem`, with `attrs` (relative file → content) and a /dev node of `size`.
    pub fn disk(
        &self,
        name: &str,
        devpath: &str,
        subsystem: &str,
        size: u64,
        attrs: &[(&str, &str)],
    ) {
        let r = self.dir.path();
        let node = r.join("sys/devices").join(devpath).join("block").join(name);
        let device = r.join("sys/devices").join(devpath);
        fs::create_dir_all(node.join("queue")).unwrap();
        fs::create_dir_all(r.join("sys/bus").join(subsystem)).unwrap();
        std::os::unix::fs::symlink(&device, node.join("device")).unwrap();
        let sub = device.join("subsystem");
        if !sub.exists() {
            std::os::unix::fs::symlink(r.join("sys/bus").join(subsystem), sub).unwrap();
        }
        std::os::unix::fs::symlink(&node, r.join("sys/block").join(name)).unwrap();
        std::os::unix::fs::symlink(&node, r.join("sys/class/block").join(name)).unwrap();
        let defaults = [
            ("size", (size / 512).to_string()),
            ("dev", "8:0".to_string()),
            ("ro", "0".into()),
            ("removable", "0".into()),
            ("queue/rotational", "0".into()),
            ("queue/logical_block_size", "512".into()),
            ("queue/physical_block_size", "4096".into()),
        ];
        for (k, v) in defaults {
            fs::write(node.join(k), v).unwrap();
        }
        for (k, v) in attrs {
            let p = node.join(k);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, v).unwrap();
        }
        let devno = fs::read_to_string(node.join("dev")).unwrap();
        let by_devno = r.join("sys/dev/block").join(devno.trim());
        if !by_devno.exists() {
            std::os::unix::fs::symlink(&node, by_devno).unwrap();
        }
        fs::File::create(r.join("dev").join(name))
            .unwrap()
            .set_len(size)
            .unwrap();
    }
}
