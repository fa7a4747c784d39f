//! Node readiness checks for Rook: each check is read-only (no `modprobe`, no package
//! manager) and reports a status plus a hint the operator can act on.
//!
//! Check ids are stable (`kernel-module-rbd`, `kernel-module-ceph`, `kernel-version`,
//! `lvm2`, `data-dir`, `time-sync`) so the runner and tests can match on them.

use std::fs;
use std::path::Path;

use rookery_proto::{CheckStatus, ReadinessCheck, ReadinessReport, ReadinessRequest};

use super::ioctl;

fn check(id: &str, status: CheckStatus, message: String, hint: Option<&str>) -> ReadinessCheck {
    ReadinessCheck {
        id: id.to_string(),
        status,
        message,
        hint: hint.map(str::to_string),
    }
}

/// How a kernel module is available without loading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleState {
    Loaded,
    BuiltIn,
    Loadable,
    Missing,
}

/// Looks `module` up in `/sys/module`, `/proc/modules`, then `modules.builtin` and
/// `modules.dep` of the running kernel under `modules_root` (normally `/lib/modules/<rel>`).
pub fn module_state(module: &str, modules_root: &Path) -> ModuleState {
    let loaded = fs::read_to_string("/proc/modules")
        .map(|s| {
            s.lines()
                .any(|l| l.split_whitespace().next() == Some(module))
        })
        .unwrap_or(false);
    if loaded {
        return ModuleState::Loaded;
    }
    let file_is = |line: &str| {
        let path = line.split(':').next().unwrap_or("");
        let base = path.rsplit('/').next().unwrap_or("");
        // rbd.ko, rbd.ko.xz, rbd.ko.zst, rbd.ko.gz
        base.split(".ko").next() == Some(module) && base.contains(".ko")
    };
    let in_list = |file: &str| {
        fs::read_to_string(modules_root.join(file))
            .map(|s| s.lines().any(file_is))
            .unwrap_or(false)
    };
    if in_list("modules.builtin") {
        return ModuleState::BuiltIn;
    }
    if in_list("modules.dep") {
        return ModuleState::Loadable;
    }
    // Built-in modules with parameters also show up in /sys/module; built-in rbd registers
    // its bus and built-in ceph its filesystem type even without /lib/modules (kernels
    // booted without a modules tree, like Firecracker's).
    if Path::new("/sys/module").join(module).exists() || registered_by_kernel(module) {
        return ModuleState::BuiltIn;
    }
    ModuleState::Missing
}

fn registered_by_kernel(module: &str) -> bool {
    match module {
        "rbd" => Path::new("/sys/bus/rbd").exists(),
        "ceph" => fs::read_to_string("/proc/filesystems")
            .map(|s| {
                s.lines()
                    .any(|l| l.split_whitespace().last() == Some("ceph"))
            })
            .unwrap_or(false),
        _ => false,
    }
}

/// `(major, minor)` from a kernel release such as `6.8.0-45-generic`.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

fn kernel_check(release: &str) -> ReadinessCheck {
    match kernel_version(release) {
        Some(v) if v >= (5, 11) => check(
            "kernel-version",
            CheckStatus::Pass,
            format!("kernel {release}: msgr2 secure mode and CephFS quotas supported"),
            None,
        ),
        Some(v) if v >= (4, 17) => check(
            "kernel-version",
            CheckStatus::Warn,
            format!(
                "kernel {release} is older than 5.11: the kernel RBD/CephFS clients cannot use msgr2 secure mode"
            ),
            Some(
                "keep `network.connections.encryption` off, or upgrade the kernel to 5.11 or later",
            ),
        ),
        Some(_) => check(
            "kernel-version",
            CheckStatus::Fail,
            format!(
                "kernel {release} is older than 4.17: CephFS quotas and recent RBD features are missing"
            ),
            Some("upgrade the kernel (5.11 or later recommended)"),
        ),
        None => check(
            "kernel-version",
            CheckStatus::Warn,
            format!("cannot parse kernel release {release:?}"),
            None,
        ),
    }
}

fn module_check(module: &str, release: &str) -> ReadinessCheck {
    let root = Path::new("/lib/modules").join(release);
    let id = format!("kernel-module-{module}");
    let what = if module == "rbd" {
        "RBD volumes (ceph-csi rbd)"
    } else {
        "the CephFS kernel client"
    };
    match module_state(module, &root) {
        ModuleState::Loaded => check(&id, CheckStatus::Pass, format!("{module} is loaded"), None),
        ModuleState::BuiltIn => check(
            &id,
            CheckStatus::Pass,
            format!("{module} is built into the kernel"),
            None,
        ),
        ModuleState::Loadable => check(
            &id,
            CheckStatus::Pass,
            format!(
                "{module} is loadable ({})",
                root.join("modules.dep").display()
            ),
            None,
        ),
        ModuleState::Missing => check(
            &id,
            CheckStatus::Fail,
            format!("kernel module {module} not found for kernel {release}; {what} will not work"),
            Some(
                "install the kernel's extra modules (e.g. `linux-modules-extra-$(uname -r)` on Ubuntu, `kernel-modules-extra` on RHEL-likes)",
            ),
        ),
    }
}

fn find_program(names: &[&str]) -> Option<String> {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin"] {
        for n in names {
            let p = Path::new(dir).join(n);
            if p.is_file() {
                return Some(p.to_string_lossy().into_owned());
            }
        }
    }
    None
}

fn lvm_check(need: bool) -> ReadinessCheck {
    match (find_program(&["lvm", "pvs"]), need) {
        (Some(p), _) => check("lvm2", CheckStatus::Pass, format!("lvm2 present ({p})"), None),
        (None, true) => check(
            "lvm2",
            CheckStatus::Fail,
            "lvm2 is not installed but this cluster needs it (encryption, metadataDevice, osdsPerDevice > 1, or OSDs on partitions/LVs)".into(),
            Some("install the lvm2 package on this node"),
        ),
        (None, false) => check(
            "lvm2",
            CheckStatus::Pass,
            "lvm2 not installed (not needed for raw-device OSDs)".into(),
            None,
        ),
    }
}

/// `dataDirHostPath` must not hold an earlier cluster's state: mons would keep the old
/// fsid and the new cluster never forms.
pub fn data_dir_check(path: &str) -> ReadinessCheck {
    let p = Path::new(path);
    match fs::read_dir(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => check(
            "data-dir",
            CheckStatus::Pass,
            format!("{path} does not exist yet"),
            None,
        ),
        Err(e) => check(
            "data-dir",
            CheckStatus::Fail,
            format!("cannot read {path}: {e}"),
            Some("dataDirHostPath must be a directory Rook can create and use"),
        ),
        Ok(mut rd) => {
            if rd.next().is_none() {
                check(
                    "data-dir",
                    CheckStatus::Pass,
                    format!("{path} exists and is empty"),
                    None,
                )
            } else {
                check(
                    "data-dir",
                    CheckStatus::Fail,
                    format!("{path} is not empty: leftovers from an earlier Rook cluster"),
                    Some(
                        "a new cluster will not form on old mon data; once the old cluster is gone for good, remove it on every node (`rm -rf` the directory), and zap its OSD disks",
                    ),
                )
            }
        }
    }
}

/// Deadline of the `timedatectl` query; past it the kernel's NTP state decides.
const TIMEDATECTL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn time_check() -> ReadinessCheck {
    let ok = |how: &str| {
        check(
            "time-sync",
            CheckStatus::Pass,
            format!("clock synchronised ({how})"),
            None,
        )
    };
    if Path::new("/run/systemd/timesync/synchronized").exists() {
        return ok("systemd-timesyncd");
    }
    // timedatectl asks systemd over D-Bus, which can hang for ~25 s when the bus is stuck.
    if let Ok(out) = crate::exec::run(
        &["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
        TIMEDATECTL_TIMEOUT,
    ) && out.trim() == "yes"
    {
        return ok("timedatectl");
    }
    match ioctl::clock_synchronised() {
        Ok(true) => ok("kernel NTP state"),
        Ok(false) => check(
            "time-sync",
            CheckStatus::Warn,
            "the clock is not synchronised by NTP".into(),
            Some(
                "run chrony or systemd-timesyncd: Ceph monitors warn when clocks drift more than 0.05 s apart",
            ),
        ),
        Err(e) => check(
            "time-sync",
            CheckStatus::Warn,
            format!("cannot read the kernel clock state: {e}"),
            Some("make sure chrony or systemd-timesyncd runs on every node"),
        ),
    }
}

pub fn readiness(req: &ReadinessRequest) -> ReadinessReport {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let data_dir = if req.data_dir_host_path.is_empty() {
        "/var/lib/rook"
    } else {
        req.data_dir_host_path.as_str()
    };
    ReadinessReport {
        checks: vec![
            module_check("rbd", &release),
            module_check("ceph", &release),
            kernel_check(&release),
            lvm_check(req.need_lvm),
            data_dir_check(data_dir),
            time_check(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(kernel_version("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(kernel_version("5.4.0-150-generic"), Some((5, 4)));
        assert_eq!(kernel_check("5.11.0").status, CheckStatus::Pass);
        assert_eq!(kernel_check("5.10.0-28-amd64").status, CheckStatus::Warn);
        assert_eq!(kernel_check("4.9.0").status, CheckStatus::Fail);
    }

    #[test]
    fn modules_from_dep_files() {
        let d = tempfile::tempdir().unwrap();
        fs::write(
            d.path().join("modules.dep"),
            "kernel/drivers/block/rbd.ko.zst: kernel/net/ceph/libceph.ko.zst\nkernel/fs/ceph/ceph.ko.xz: kernel/net/ceph/libceph.ko.xz\n",
        )
        .unwrap();
        fs::write(d.path().join("modules.builtin"), "kernel/fs/ext4/ext4.ko\n").unwrap();
        // Names that merely start with the module name must not count.
        assert_eq!(module_state("rbd", d.path()), ModuleState::Loadable);
        assert_eq!(
            module_state("zzz_nonexistent", d.path()),
            ModuleState::Missing
        );
    }

    #[test]
    fn data_dir_states() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("rook");
        assert_eq!(
            data_dir_check(p.to_str().unwrap()).status,
            CheckStatus::Pass
        );
        fs::create_dir(&p).unwrap();
        assert_eq!(
            data_dir_check(p.to_str().unwrap()).status,
            CheckStatus::Pass
        );
        fs::write(p.join("mon-a"), "x").unwrap();
        let c = data_dir_check(p.to_str().unwrap());
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(c.hint.is_some());
    }
}
