//! Real QEMU guests for the end-to-end tests: each guest has a virtio root disk (`vda`), one
//! emulated NVMe namespace (`nvme0n1`) and one emulated SATA HDD reporting 7200 rpm (`sda`),
//! so the agent sees real NVMe/ATA sysfs trees, udev by-id links and NVMe's hidden multipath
//! node — things loop devices cannot show.
//!
//! The guest image comes from `tests/vmlab/build-image.sh` (debootstrap, cached outside the
//! repo). Guests use QEMU user networking with `restrict=on` (no egress) and only an SSH port
//! forwarded on 127.0.0.1. The image carries one baked-in host key, pinned in a per-run
//! known_hosts, so host-key checking stays strict. TCG is used unless `ROOKERY_VMLAB_ACCEL=kvm`:
//! on these machines KVM is a paravirtual nested one on which stock guest kernels crawl
//! (see the shared notes, vm-lab.md). Every QEMU this module starts is killed by its PID in
//! `Drop`; if that fails, the exact command to finish the job is printed.

use std::fmt::Write as _;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bins;
use crate::require::{have_program, is_root, prerequisite};

/// Programs the lab needs on the host (Debian packages in brackets in the message).
const HOST_PROGRAMS: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("qemu-img", "qemu-utils"),
    ("debootstrap", "debootstrap"),
    ("mkfs.ext4", "e2fsprogs"),
    ("ssh", "openssh-client"),
    ("ssh-keygen", "openssh-client"),
    ("flock", "util-linux"),
];

/// Checks everything the lab needs; `false` means the caller should return (skip), and under
/// `ROOKERY_REQUIRE_REAL=1` this panics instead.
pub fn prerequisites() -> bool {
    for (program, package) in HOST_PROGRAMS {
        if !prerequisite(
            have_program(program),
            &format!("`{program}` for the VM lab (Debian package {package})"),
        ) {
            return false;
        }
    }
    // The image build needs root; a cached image does not, but CI starts from nothing.
    prerequisite(
        is_root() || image_dir_if_cached().is_some(),
        "root, to build the VM lab image with debootstrap",
    )
}

/// The cache holding the image and the deb cache (never inside the repository).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("ROOKERY_VMLAB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/rookery-vmlab"))
}

fn build_script() -> PathBuf {
    bins::repo_root().join("tests/vmlab/build-image.sh")
}

fn image_dir_if_cached() -> Option<PathBuf> {
    let out = Command::new("sha256sum")
        .arg(build_script())
        .output()
        .ok()?;
    let hash: String = String::from_utf8_lossy(&out.stdout)
        .chars()
        .take(16)
        .collect();
    let dir = cache_dir().join(format!("image-{hash}"));
    dir.join("READY").exists().then_some(dir)
}

/// A built guest image: kernel, initrd, root filesystem and the keys baked into it.
#[derive(Debug, Clone)]
pub struct Image {
    pub dir: PathBuf,
    /// How long `ensure_image` took (near zero when cached).
    pub elapsed: Duration,
}

impl Image {
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs.raw")
    }
    pub fn kernel(&self) -> PathBuf {
        self.dir.join("vmlinuz")
    }
    pub fn initrd(&self) -> PathBuf {
        self.dir.join("initrd.img")
    }
    /// Client key authorised for root in every guest.
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }
    /// The one host key every guest presents (`type base64 comment`).
    pub fn host_public_key(&self) -> Result<String> {
        let path = self.dir.join("ssh_host_ed25519_key.pub");
        let text = fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        Ok(text.trim().to_string())
    }
}

/// Builds the guest image, or reuses the cached one when the build script is unchanged.
pub fn ensure_image() -> Result<Image> {
    let start = Instant::now();
    let script = build_script();
    let out = Command::new("nice")
        .args(["-n", "10"])
        .arg(&script)
        .env("ROOKERY_VMLAB_CACHE", cache_dir())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed with {}", script.display(), out.status);
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !dir.join("READY").exists() {
        bail!(
            "{} printed {}, which holds no finished image",
            script.display(),
            dir.display()
        );
    }
    Ok(Image {
        dir,
        elapsed: start.elapsed(),
    })
}

/// How to start the lab.
#[derive(Debug, Clone)]
pub struct LabOptions {
    pub guests: usize,
    pub prefix: String,
    pub memory_mib: u32,
    pub cpus: u32,
    pub nvme_size: String,
    pub hdd_size: String,
    pub boot_timeout: Duration,
}

impl Default for LabOptions {
    fn default() -> Self {
        let env_u32 = |k: &str, d: u32| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(d)
        };
        LabOptions {
            guests: 1,
            prefix: "vm".into(),
            memory_mib: env_u32("ROOKERY_VMLAB_MEMORY", 768),
            cpus: env_u32("ROOKERY_VMLAB_CPUS", 1),
            // Above Ceph's 5 GiB floor so both disks can be "available".
            nvme_size: "8G".into(),
            hdd_size: "16G".into(),
            boot_timeout: Duration::from_secs(u64::from(env_u32(
                "ROOKERY_VMLAB_BOOT_TIMEOUT",
                480,
            ))),
        }
    }
}

/// One running guest.
#[derive(Debug, Clone)]
pub struct Guest {
    pub name: String,
    pub port: u16,
    pub pid: u32,
    pub dir: PathBuf,
    pub root_serial: String,
    pub nvme_serial: String,
    pub hdd_serial: String,
    /// From QEMU start to the first successful SSH command.
    pub boot_to_ssh: Duration,
}

/// Seconds the tests give `rookery --connect-timeout`: emulated guests on a busy CI host can
/// take many seconds to complete an SSH handshake.
pub const CONNECT_TIMEOUT: &str = "60";

/// A set of running guests plus their per-run files (known_hosts, inventory, logs).
pub struct Lab {
    pub image: Image,
    pub guests: Vec<Guest>,
    pub known_hosts: PathBuf,
    /// Wall time from the first QEMU start until every guest answered SSH.
    pub boot_elapsed: Duration,
    children: Vec<Child>,
    run_dir: Option<tempfile::TempDir>,
    run_path: PathBuf,
}

fn accel_args() -> Vec<String> {
    match std::env::var("ROOKERY_VMLAB_ACCEL").as_deref() {
        // Only for hosts with real KVM; arch-capabilities breaks nested PVM (vm-lab.md).
        Ok("kvm") => vec![
            "-accel".into(),
            "kvm".into(),
            "-cpu".into(),
            "host,-arch-capabilities".into(),
        ],
        _ => vec![
            "-accel".into(),
            "tcg,thread=multi,tb-size=256".into(),
            "-cpu".into(),
            "max".into(),
        ],
    }
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
    Ok(l.local_addr()?.port())
}

fn run_checked(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Lab {
    /// Builds (or reuses) the image, boots `opts.guests` guests in parallel and waits until
    /// each answers SSH, or fails after `opts.boot_timeout` with the tail of its serial log.
    pub fn start(opts: &LabOptions) -> Result<Lab> {
        let image = ensure_image()?;
        eprintln!(
            "vmlab: image {} ready in {:.1?}",
            image.dir.display(),
            image.elapsed
        );
        let run_dir = tempfile::Builder::new()
            .prefix("rookery-vmlab-")
            .tempdir()
            .context("cannot create the lab's run directory")?;
        let run_path = run_dir.path().to_path_buf();
        let mut lab = Lab {
            known_hosts: run_path.join("known_hosts"),
            image,
            guests: Vec::new(),
            boot_elapsed: Duration::ZERO,
            children: Vec::new(),
            run_dir: Some(run_dir),
            run_path,
        };
        let host_key = lab.image.host_public_key()?;
        let start = Instant::now();
        let mut started = Vec::new();
        for i in 1..=opts.guests {
            let guest = lab.spawn(opts, i)?;
            started.push((guest, Instant::now()));
        }
        let mut kh = String::new();
        for (g, _) in &started {
            let _ = writeln!(kh, "[127.0.0.1]:{} {host_key}", g.port);
        }
        fs::write(&lab.known_hosts, kh).context("cannot write the lab's known_hosts")?;
        for (idx, (mut guest, t0)) in started.into_iter().enumerate() {
            lab.wait_ssh(idx, &guest, t0, opts.boot_timeout)?;
            guest.boot_to_ssh = t0.elapsed();
            eprintln!(
                "vmlab: {} answered SSH on 127.0.0.1:{} after {:.1?}",
                guest.name, guest.port, guest.boot_to_ssh
            );
            lab.guests.push(guest);
        }
        lab.boot_elapsed = start.elapsed();
        Ok(lab)
    }

    fn spawn(&mut self, opts: &LabOptions, i: usize) -> Result<Guest> {
        let name = format!("{}{i}", opts.prefix);
        let dir = self.run_path.join(&name);
        fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
        let root = dir.join("root.qcow2");
        run_checked(
            Command::new("qemu-img")
                .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
                .arg(self.image.rootfs())
                .arg(&root),
        )?;
        for (file, size) in [
            ("nvme0.qcow2", &opts.nvme_size),
            ("hdd0.qcow2", &opts.hdd_size),
        ] {
            run_checked(
                Command::new("qemu-img")
                    .args(["create", "-q", "-f", "qcow2"])
                    .arg(dir.join(file))
                    .arg(size),
            )?;
        }
        let root_serial = format!("VMROOT{i:02}");
        let nvme_serial = format!("VMNVME{i:02}");
        let hdd_serial = format!("VMHDD{i:02}");
        let machine_id: String = {
            // A distinct machine-id per guest (systemd refuses an all-zero one).
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or_default();
            let seed = u64::from(std::process::id())
                ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ nanos;
            format!("{:016x}{:016x}", seed | 1, seed.rotate_left(17) | 1)
        };
        // Retry with another port when the one we picked was taken in between.
        for _attempt in 0..3 {
            let port = free_port()?;
            let pidfile = dir.join("qemu.pid");
            let log = fs::File::create(dir.join("qemu.log")).context("qemu.log")?;
            let mut cmd = Command::new("nice");
            cmd.args(["-n", "10", "qemu-system-x86_64"])
                .args(["-name", &format!("vmlab-{name},process=vmlab-{name}")])
                .args(["-machine", "q35", "-nodefaults", "-display", "none", "-monitor", "none"])
                // A guest kernel panic (panic=-1 reboots at once) ends QEMU, so the harness
                // reports it with the serial log instead of waiting out the boot timeout.
                .arg("-no-reboot")
                .args(accel_args())
                .args(["-smp", &opts.cpus.to_string(), "-m", &opts.memory_mib.to_string()])
                .arg("-kernel")
                .arg(self.image.kernel())
                .arg("-initrd")
                .arg(self.image.initrd())
                // no_timer_check: on a loaded host the starved emulated CPU fails the kernel's
                // IO-APIC timer check and the guest panics ("IO-APIC + timer doesn't work!").
                .args([
                    "-append",
                    &format!(
                        "console=ttyS0 root=LABEL=vmroot rw net.ifnames=0 quiet \
                         no_timer_check panic=-1 \
                         systemd.hostname={name} systemd.machine_id={machine_id}"
                    ),
                ])
                .arg("-serial")
                .arg(format!("file:{}", dir.join("serial.log").display()))
                .arg("-pidfile")
                .arg(&pidfile)
                .arg("-drive")
                .arg(format!("file={},if=none,id=root,format=qcow2", root.display()))
                .args(["-device", &format!("virtio-blk-pci,drive=root,serial={root_serial}")])
                .arg("-drive")
                .arg(format!("file={},if=none,id=nvm0,format=qcow2,discard=unmap", dir.join("nvme0.qcow2").display()))
                // An NVM subsystem makes the controller multipath-capable (CMIC), so the guest
                // kernel creates the hidden per-path node `nvme0c0n1` as on real servers.
                .args([
                    "-device",
                    &format!("nvme-subsys,id=subsys0,nqn=nqn.2026-11.rookery.vmlab:{name}"),
                    "-device",
                    &format!("nvme,id=nvme0,serial={nvme_serial},subsys=subsys0"),
                    "-device",
                    "nvme-ns,drive=nvm0,bus=nvme0,nsid=1",
                ])
                .arg("-drive")
                .arg(format!("file={},if=none,id=hdd0,format=qcow2", dir.join("hdd0.qcow2").display()))
                // q35's built-in ICH9 AHCI: the guest sees TRAN sata and rotational=1.
                .args([
                    "-device",
                    &format!("ide-hd,drive=hdd0,bus=ide.0,rotation_rate=7200,serial={hdd_serial},model=VMLAB HDD 7200"),
                ])
                .args([
                    "-netdev",
                    &format!("user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22"),
                    "-device",
                    "virtio-net-pci,netdev=net0,romfile=",
                ])
                .stdin(Stdio::null())
                .stdout(log.try_clone().context("qemu.log")?)
                .stderr(log);
            let mut child = cmd.spawn().context("cannot start qemu-system-x86_64")?;
            std::thread::sleep(Duration::from_millis(700));
            if let Some(status) = child.try_wait()? {
                let log = fs::read_to_string(dir.join("qemu.log")).unwrap_or_default();
                if log.contains("hostfwd") || log.contains("forwarding rule") {
                    continue;
                }
                bail!(
                    "qemu for {name} exited at once with {status}: {}",
                    log.trim()
                );
            }
            let pid = child.id();
            self.children.push(child);
            return Ok(Guest {
                name,
                port,
                pid,
                dir,
                root_serial,
                nvme_serial,
                hdd_serial,
                boot_to_ssh: Duration::ZERO,
            });
        }
        bail!("qemu for {name}: no free loopback port after 3 attempts")
    }

    fn wait_ssh(
        &mut self,
        idx: usize,
        guest: &Guest,
        t0: Instant,
        timeout: Duration,
    ) -> Result<()> {
        loop {
            if let Some(status) = self.children[idx].try_wait()? {
                bail!(
                    "qemu for {} exited with {status} before SSH was up; qemu.log: {}; serial: {}",
                    guest.name,
                    fs::read_to_string(guest.dir.join("qemu.log"))
                        .unwrap_or_default()
                        .trim(),
                    tail(&guest.dir.join("serial.log"), 20)
                );
            }
            let out = self
                .ssh_command_timeout(guest, "true", 15)
                .output()
                .context("cannot run ssh")?;
            if out.status.success() {
                return Ok(());
            }
            if t0.elapsed() > timeout {
                bail!(
                    "{} did not answer SSH on 127.0.0.1:{} within {timeout:?} (last ssh error: {}); serial log tail:\n{}",
                    guest.name,
                    guest.port,
                    String::from_utf8_lossy(&out.stderr).trim(),
                    tail(&guest.dir.join("serial.log"), 30)
                );
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// The run directory (logs, disks, known_hosts, inventories). Kept after the run when
    /// `ROOKERY_VMLAB_KEEP=1`.
    pub fn run_dir(&self) -> &Path {
        &self.run_path
    }

    /// The `ssh` options every connection to the lab uses: strict host-key checking against
    /// the per-run known_hosts, the lab key only.
    pub fn ssh_options(&self) -> Vec<String> {
        vec![
            "-i".into(),
            self.image.client_key().display().to_string(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "LogLevel=ERROR".into(),
        ]
    }

    fn ssh_command(&self, guest: &Guest, script: &str) -> Command {
        self.ssh_command_timeout(guest, script, 60)
    }

    /// `connect_timeout` bounds TCP connect and the SSH banner: a guest under TCG on a loaded
    /// host can take many seconds to answer, so commands get a generous bound and only the
    /// readiness polling a short one.
    fn ssh_command_timeout(&self, guest: &Guest, script: &str, connect_timeout: u32) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(self.ssh_options())
            .args(["-o", &format!("ConnectTimeout={connect_timeout}")])
            .args([
                "-p",
                &guest.port.to_string(),
                "root@127.0.0.1",
                "--",
                script,
            ])
            .stdin(Stdio::null());
        cmd
    }

    /// Runs a shell command as root in the guest.
    pub fn ssh(&self, guest: &Guest, script: &str) -> Output {
        match self.ssh_command(guest, script).output() {
            Ok(o) => o,
            Err(e) => panic!("cannot run ssh to {}: {e}", guest.name),
        }
    }

    /// Runs a shell command as root in the guest and returns its stdout; panics (this is a
    /// test helper) with stdout and stderr when it fails.
    pub fn ssh_ok(&self, guest: &Guest, script: &str) -> String {
        let out = self.ssh(guest, script);
        assert!(
            out.status.success(),
            "on {}: `{script}` failed with {}\nstdout: {}\nstderr: {}",
            guest.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes an Ansible YAML inventory of the guests (root over SSH, strict host keys against
    /// the per-run known_hosts) and returns its path. `host_vars` adds YAML lines (indented by
    /// the caller's choice of 6 spaces) under each host.
    pub fn write_inventory(
        &self,
        file: &str,
        host_vars: impl Fn(&Guest) -> String,
    ) -> Result<PathBuf> {
        let mut y = String::new();
        y.push_str("all:\n  vars:\n    ansible_user: root\n");
        let _ = writeln!(
            y,
            "    ansible_ssh_private_key_file: {}",
            self.image.client_key().display()
        );
        let _ = writeln!(
            y,
            "    ansible_ssh_common_args: \"-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes\"",
            self.known_hosts.display()
        );
        y.push_str("  hosts:\n");
        for g in &self.guests {
            let _ = writeln!(
                y,
                "    {}:\n      ansible_host: 127.0.0.1\n      ansible_port: {}",
                g.name, g.port
            );
            y.push_str(&host_vars(g));
        }
        let path = self.run_path.join(file);
        fs::write(&path, y).with_context(|| format!("{}", path.display()))?;
        Ok(path)
    }

    /// The inventory with no extra host variables.
    pub fn inventory(&self) -> Result<PathBuf> {
        self.write_inventory("inventory.yaml", |_| String::new())
    }
}

/// Shell run in a guest to leave the data disks the way a reused server has them: on the HDD
/// a GPT with an ext4 partition and an LVM PV partition; on the NVMe namespace an LVM PV with
/// an active `ceph-*` VG and LV (as an old OSD leaves it) carrying an XFS filesystem.
pub fn dirty_disks_script(guest: &Guest) -> String {
    let vg = format!("ceph-vmlab-{}", guest.name);
    format!(
        "set -e
sgdisk -o -n1:0:+2G -t1:8300 -n2:0:+4G -t2:8e00 /dev/sda >/dev/null
partprobe /dev/sda; udevadm settle
mkfs.ext4 -q -F -L vmlab-old /dev/sda1
pvcreate -q -ff -y /dev/sda2
pvcreate -q -ff -y /dev/nvme0n1
vgcreate -q {vg} /dev/nvme0n1
lvcreate -q -y -n osd-block-vmlab -l 100%FREE {vg}
mkfs.xfs -q -f /dev/{vg}/osd-block-vmlab
udevadm settle"
    )
}

/// Shell that succeeds only when `dev` carries no signature anywhere the guest's own tools
/// look (wipefs, blkid low-level probe), has no partitions or holders, and its first and last
/// MiB are zero.
pub fn clean_check_script(dev: &str) -> String {
    format!(
        "set -e
test -z \"$(wipefs -n {dev})\" || {{ echo \"wipefs still sees: $(wipefs -n {dev})\"; exit 1; }}
rc=0; blkid -p {dev} || rc=$?; test $rc -eq 2 || {{ echo \"blkid -p {dev} exit $rc\"; exit 1; }}
test \"$(lsblk -rn -o NAME {dev} | wc -l)\" -eq 1 || {{ lsblk {dev}; exit 1; }}
test -z \"$(ls /sys/class/block/$(basename {dev})/holders)\" || {{ echo holders left; exit 1; }}
test \"$(dd if={dev} bs=1M count=1 status=none | tr -d '\\0' | wc -c)\" -eq 0 || {{ echo first MiB not zero; exit 1; }}
last=$(( $(blockdev --getsize64 {dev}) / 1048576 - 1 ))
test \"$(dd if={dev} bs=1M skip=$last count=1 status=none | tr -d '\\0' | wc -c)\" -eq 0 || {{ echo last MiB not zero; exit 1; }}"
    )
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Lab {
    fn drop(&mut self) {
        let mut leftover = Vec::new();
        for child in &mut self.children {
            let pid = child.id();
            // The PID is our own child (not a name lookup), so this cannot hit anyone else's VM.
            let _ = child.kill();
            if child.wait().is_err() {
                leftover.push(pid);
            }
        }
        if !leftover.is_empty() {
            let pids: Vec<String> = leftover.iter().map(u32::to_string).collect();
            eprintln!(
                "vmlab: could not reap QEMU PIDs {}; run: kill {}",
                pids.join(", "),
                pids.join(" ")
            );
        }
        if std::env::var("ROOKERY_VMLAB_KEEP").is_ok_and(|v| v == "1")
            && let Some(dir) = self.run_dir.take()
        {
            let kept = dir.keep();
            eprintln!("vmlab: kept run directory {}", kept.display());
        }
    }
}
