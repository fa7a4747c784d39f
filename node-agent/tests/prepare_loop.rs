//! Device preparation against REAL loop devices, one case per state of issue 4 item 8:
//! blank, GPT with a partition, backup-GPT only, empty DOS table, ext4, xfs, LVM PV with a
//! `ceph-*` VG/LV, BlueStore label (+ replica at 1 GiB, and a replica alone), mounted,
//! active swap, read-only, smaller than 5 GiB, held open exclusively by another process;
//! plus identity mismatches, check mode, the audit trail, idempotent re-runs (device bytes
//! checksummed before/after) and recovery after the agent is SIGKILLed mid-wipe.
//!
//! This kernel has no device-mapper (`/dev/mapper/control` is missing), so the LVM case
//! carries on-disk LVM metadata only (PV label + a `ceph-*` VG with an inactive LV), which
//! is exactly what a reused disk carries; the dm-holder removal path is not exercised here.
//!
//! Needs root, `losetup`, `sgdisk`, `sfdisk`, `partx`, `mkfs.ext4`, `mkfs.xfs`, `mkswap`,
//! `pvcreate`/`vgcreate`/`lvcreate` (lvm2). Under `ROOKERY_REQUIRE_REAL=1` a missing
//! prerequisite fails the test; otherwise the test prints SKIPPED and passes.
//! `ceph-volume` (if installed) is asked for its verdict after each wipe.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rookery_agent::prepare::{PAUSE_ENV, handle_prepare};
use rookery_proto::{
    AuditRecord, DeviceIdentity, DeviceOutcome, DevicePlan, Event, PrepareAction, PrepareRequest,
    RejectReason, Response, SignatureKind,
};
use sha2::{Digest, Sha256};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
const ROLE_ENV: &str = "ROOKERY_PREPARE_TEST_ROLE";

// ---------------------------------------------------------------------------------------
// prerequisites

fn required() -> bool {
    std::env::var("ROOKERY_REQUIRE_REAL").is_ok_and(|v| v == "1" || v == "true")
}

fn have(p: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(p).is_file()))
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// True when the test may run; fails under ROOKERY_REQUIRE_REAL=1, else prints SKIPPED.
fn prereqs(tools: &[&str]) -> bool {
    let mut missing: Vec<String> = tools
        .iter()
        .filter(|t| !have(t))
        .map(|t| t.to_string())
        .collect();
    if !is_root() {
        missing.push("root".into());
    }
    if !Path::new("/dev/loop-control").exists() {
        missing.push("/dev/loop-control".into());
    }
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    if required() {
        panic!("prerequisite missing: {what} (ROOKERY_REQUIRE_REAL=1 forbids skipping)");
    }
    eprintln!("SKIPPED: prerequisite missing: {what}");
    false
}

// ---------------------------------------------------------------------------------------
// loop device harness

fn sh(script: &str) -> String {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "command failed: {script}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Loop {
    dev: String,
    file: PathBuf,
    dir: tempfile::TempDir,
    mounts: Vec<PathBuf>,
    swap: bool,
    lvm_vg: Option<String>,
}

impl Loop {
    fn new(size: u64) -> Loop {
        Self::with_flags(size, "")
    }

    fn with_flags(size: u64, flags: &str) -> Loop {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("disk.img");
        File::create(&file).unwrap().set_len(size).unwrap();
        Self::attach(dir, file, flags)
    }

    /// Attaches an existing image file (kept in `dir`) as a loop device.
    fn attach(dir: tempfile::TempDir, file: PathBuf, flags: &str) -> Loop {
        // Other tests (and other work) attach loops concurrently: retry a lost race.
        let mut last = String::new();
        for _ in 0..5 {
            let out = Command::new("losetup")
                .args(["-f", "--show"])
                .args(flags.split_whitespace())
                .arg(&file)
                .output()
                .unwrap();
            if out.status.success() {
                let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
                return Loop {
                    dev,
                    file,
                    dir,
                    mounts: Vec::new(),
                    swap: false,
                    lvm_vg: None,
                };
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("losetup failed: {last}");
    }

    fn size(&self) -> u64 {
        fs::metadata(&self.file).unwrap().len()
    }

    fn identity(&self) -> DeviceIdentity {
        DeviceIdentity {
            path: self.dev.clone(),
            serial: None,
            wwn: None,
            by_id: None,
            size_bytes: self.size(),
        }
    }

    /// Runs a bash script with `$DEV` set to this device.
    fn sh(&self, script: &str) -> String {
        sh(&format!("DEV={}; {script}", self.dev))
    }

    fn write_at(&self, off: u64, bytes: &[u8]) {
        use std::os::unix::fs::FileExt;
        let f = OpenOptions::new().write(true).open(&self.dev).unwrap();
        f.write_all_at(bytes, off).unwrap();
        f.sync_all().unwrap();
    }

    fn mount(&mut self) -> PathBuf {
        let m = self.dir.path().join("mnt");
        fs::create_dir_all(&m).unwrap();
        sh(&format!("mount {} {}", self.dev, m.display()));
        self.mounts.push(m.clone());
        m
    }

    /// Digest of every byte range a wipe could touch (head, tail, BlueStore replica at
    /// 1 GiB) plus the backing file's mtime: an untouched device keeps both.
    fn digest(&self) -> String {
        let size = self.size();
        let mut f = File::open(&self.dev).unwrap();
        let mut h = Sha256::new();
        let mut ranges = vec![
            (0, (16 * MIB).min(size)),
            (size.saturating_sub(2 * MIB), size),
        ];
        if size > GIB + MIB {
            ranges.push((GIB, GIB + MIB));
        }
        for (a, b) in ranges {
            let mut buf = vec![0u8; (b - a) as usize];
            f.seek(SeekFrom::Start(a)).unwrap();
            f.read_exact(&mut buf).unwrap();
            h.update(&buf);
        }
        let m = fs::metadata(&self.file).unwrap().modified().unwrap();
        format!("{}/{m:?}", hex::encode(h.finalize()))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let mut cmds = Vec::new();
        if self.swap {
            cmds.push(format!("swapoff {}", self.dev));
        }
        for m in &self.mounts {
            cmds.push(format!("umount {}", m.display()));
        }
        if let Some(vg) = &self.lvm_vg {
            cmds.push(format!("vgremove -ff -y --driverloaded n {vg}"));
        }
        cmds.push(format!("partx -d {} ", self.dev));
        cmds.push(format!("losetup -d {}", self.dev));
        for c in cmds {
            let ok = Command::new("bash")
                .args(["-c", &c])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok && c.starts_with("losetup") {
                eprintln!("cleanup failed; run by hand: {c}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// running the agent code

struct Run {
    outcome: DeviceOutcome,
    events: Vec<Event>,
    log: PathBuf,
    _logdir: tempfile::TempDir,
}

fn request(ids: Vec<DeviceIdentity>, consent: bool, check: bool, log: &Path) -> PrepareRequest {
    PrepareRequest {
        devices: ids
            .into_iter()
            .map(|identity| DevicePlan {
                identity,
                wipe_consent: consent,
            })
            .collect(),
        check,
        discard: false,
        audit_log: Some(log.to_string_lossy().into_owned()),
        run_id: "test-run".into(),
    }
}

fn run_req(id: DeviceIdentity, consent: bool, check: bool, discard: bool) -> Run {
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("rookery/prepare.log");
    let mut req = request(vec![id], consent, check, &log);
    req.discard = discard;
    let mut events = Vec::new();
    let resp = handle_prepare(&req, &mut |e| events.push(e));
    let Response::Prepare(mut rep) = resp else {
        panic!("unexpected response {resp:?}")
    };
    assert_eq!(rep.devices.len(), 1);
    Run {
        outcome: rep.devices.remove(0),
        events,
        log,
        _logdir: logdir,
    }
}

fn run(l: &Loop, consent: bool, check: bool) -> Run {
    run_req(l.identity(), consent, check, false)
}

fn kinds(sigs: &[rookery_proto::Signature]) -> Vec<SignatureKind> {
    let mut k: Vec<SignatureKind> = sigs.iter().map(|s| s.kind).collect();
    k.sort();
    k.dedup();
    k
}

fn audit_lines(log: &Path) -> Vec<AuditRecord> {
    match fs::read_to_string(log) {
        Ok(s) => s
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// `ceph-volume inventory` on the device (loop devices allowed), if installed.
fn ceph_volume_available(dev: &str) -> Option<(bool, Vec<String>)> {
    if !have("ceph-volume") {
        eprintln!("note: ceph-volume not installed; skipping the ceph-volume comparison");
        return None;
    }
    let out = Command::new("ceph-volume")
        .args(["inventory", "--format", "json", dev])
        .env("CEPH_VOLUME_ALLOW_LOOP_DEVICES", "true")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ceph-volume output is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let reasons = v["rejected_reasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    Some((v["available"].as_bool().unwrap_or(false), reasons))
}

/// The full consent cycle every "has signatures" state goes through:
/// no consent → needs_consent; check → would_wipe; both leave the bytes alone; wipe →
/// wiped with the expected kinds erased; then ceph-volume agrees; then a re-run is ok and
/// touches nothing. Returns the wipe run.
fn consent_cycle(l: &Loop, expect: &[SignatureKind]) -> Run {
    let before = l.digest();
    let r = run(l, false, false);
    assert_eq!(
        r.outcome.action,
        PrepareAction::NeedsConsent,
        "{}",
        r.outcome.message
    );
    for k in expect {
        assert!(
            kinds(&r.outcome.signatures_before).contains(k),
            "expected {k:?} in {:?}",
            r.outcome.signatures_before
        );
    }
    assert!(
        audit_lines(&r.log).is_empty(),
        "no destructive step without consent"
    );
    let c = run(l, true, true);
    assert_eq!(
        c.outcome.action,
        PrepareAction::WouldWipe,
        "{}",
        c.outcome.message
    );
    assert!(audit_lines(&c.log).is_empty(), "check mode writes nothing");
    assert_eq!(l.digest(), before, "refusal/check changed the device");

    let w = run(l, true, false);
    assert_eq!(
        w.outcome.action,
        PrepareAction::Wiped,
        "{}",
        w.outcome.message
    );
    for k in expect {
        assert!(kinds(&w.outcome.signatures_before).contains(k));
    }
    assert!(
        w.outcome.signatures_after.is_empty(),
        "{:?}",
        w.outcome.signatures_after
    );
    // Independent check with util-linux: nothing left that libblkid (with FORCE_GPT as
    // wipefs uses it) can see.
    let left = l.sh("wipefs --no-act --noheadings $DEV || true");
    assert!(left.is_empty(), "wipefs still sees: {left}");
    if let Some((avail, reasons)) = ceph_volume_available(&l.dev) {
        assert!(
            avail,
            "ceph-volume says unavailable after prepare: {reasons:?}"
        );
    }

    let after = l.digest();
    let again = run(l, true, false);
    assert_eq!(
        again.outcome.action,
        PrepareAction::Ok,
        "{}",
        again.outcome.message
    );
    assert!(audit_lines(&again.log).is_empty());
    assert_eq!(l.digest(), after, "idempotent re-run touched the device");
    w
}

// ---------------------------------------------------------------------------------------
// states

/// `partx -a` right after attaching sometimes fails to read the table (the loop device's
/// capacity is still settling): retry briefly.
const PARTX_ADD: &str = "for i in 1 2 3 4 5 6 7 8 9 10; do partx -a $DEV 2>/dev/null && break; sleep 0.3; done; test -b ${DEV}p1";

const FULL: &[&str] = &[
    "losetup",
    "sgdisk",
    "sfdisk",
    "partx",
    "wipefs",
    "mkfs.ext4",
    "mkfs.xfs",
    "mkswap",
];

#[test]
fn blank_is_ok_without_consent_and_untouched() {
    if !prereqs(FULL) {
        return;
    }
    let l = Loop::new(6 * GIB);
    let d = l.digest();
    let r = run(&l, false, false);
    assert_eq!(r.outcome.action, PrepareAction::Ok, "{}", r.outcome.message);
    assert!(r.outcome.signatures_before.is_empty());
    assert_eq!(r.outcome.resolved_path.as_deref(), Some(l.dev.as_str()));
    assert!(audit_lines(&r.log).is_empty());
    assert!(r.events.iter().all(|e| !matches!(e, Event::Audit(_))));
    assert_eq!(l.digest(), d);
    if let Some((avail, reasons)) = ceph_volume_available(&l.dev) {
        assert!(avail, "{reasons:?}");
    }
}

#[test]
fn gpt_with_partition_and_xfs_inside() {
    if !prereqs(FULL) {
        return;
    }
    let l = Loop::new(6 * GIB);
    // Partition 1 at 3 GiB carries xfs: only findable through the table.
    l.sh(&format!("sgdisk -n 1:6291456:+512M -t 1:8300 $DEV >/dev/null && {PARTX_ADD} && mkfs.xfs -q -f ${{DEV}}p1"));
    let w = consent_cycle(
        &l,
        &[
            SignatureKind::ProtectiveMbr,
            SignatureKind::GptPrimary,
            SignatureKind::GptBackup,
            SignatureKind::Xfs,
        ],
    );
    let xfs = w
        .outcome
        .signatures_before
        .iter()
        .find(|s| s.kind == SignatureKind::Xfs)
        .unwrap();
    assert_eq!(
        xfs.offset,
        3 * GIB,
        "xfs inside the partition, absolute offset"
    );
    assert!(
        !Path::new(&format!("{}p1", l.dev)).exists(),
        "stale kernel partition node left behind"
    );
    // The contents are gone too, not just the table pointing at them.
    let mut buf = [0u8; 4];
    let mut f = File::open(&l.dev).unwrap();
    f.seek(SeekFrom::Start(3 * GIB)).unwrap();
    f.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, &[0, 0, 0, 0]);
    // Every destructive step was logged before and after it happened, on the node (0600)
    // and as events, with identical records.
    let lines = audit_lines(&w.log);
    let events: Vec<AuditRecord> = w
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Audit(a) => Some((**a).clone()),
            _ => None,
        })
        .collect();
    assert_eq!(lines, events);
    let steps: Vec<&str> = lines.iter().map(|a| a.action.as_str()).collect();
    for s in [
        "zero-partition@3221225472",
        "zero-tail",
        "zero-head",
        "reread-partition-table",
    ] {
        let n = lines.iter().filter(|a| a.action == s).count();
        assert_eq!(n, 2, "step {s} logged before+after: {steps:?}");
        let first = lines.iter().find(|a| a.action == s).unwrap();
        assert!(
            first.result.is_none(),
            "first line of {s} is the 'before' record"
        );
    }
    let head_pos = steps.iter().position(|s| *s == "zero-head").unwrap();
    let part_pos = steps
        .iter()
        .position(|s| s.starts_with("zero-partition"))
        .unwrap();
    let tail_pos = steps.iter().position(|s| *s == "zero-tail").unwrap();
    assert!(
        part_pos < tail_pos && tail_pos < head_pos,
        "write order: {steps:?}"
    );
    assert_eq!(lines.last().unwrap().action, "verify");
    assert_eq!(lines.last().unwrap().result.as_deref(), Some("clean"));
    let mode = fs::metadata(&w.log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn backup_gpt_only() {
    if !prereqs(FULL) {
        return;
    }
    let l = Loop::new(6 * GIB);
    // (`sgdisk -o` alone writes nothing on a blank disk, so create one partition.)
    l.sh("sgdisk -n 1:2048:+16M $DEV >/dev/null && dd if=/dev/zero of=$DEV bs=512 count=34 conv=fsync status=none");
    let w = consent_cycle(&l, &[SignatureKind::GptBackup]);
    assert_eq!(
        kinds(&w.outcome.signatures_before),
        vec![SignatureKind::GptBackup]
    );
}

#[test]
fn empty_dos_table() {
    if !prereqs(FULL) {
        return;
    }
    let l = Loop::new(6 * GIB);
    l.sh("echo 'label: dos' | sfdisk -q $DEV");
    let w = consent_cycle(&l, &[SignatureKind::Mbr]);
    assert!(w.outcome.reasons.is_empty());
}

#[test]
fn ext4() {
    if !prereqs(FULL) {
        return;
    }
    let l = Loop::new(6 * GIB);
    l.sh("mkfs.ext4 -q -F $DEV");
    let r = run(&l, false, false);
    assert!(
        r.outcome
            .reasons
            .contains(&RejectReason::HasFilesystem("ext4".into()))
    );
    consent_cycle(&l, &[SignatureKind::Ext4]);
}

#[test]
fn xfs() {
    if !prereqs(FULL) {
        return;
    }
    let l = Loop::new(6 * GIB);
    l.sh("mkfs.xfs -q -f $DEV");
    consent_cycle(&l, &[SignatureKind::Xfs]);
}

#[test]
fn lvm_pv_with_ceph_vg_on_disk_metadata_only() {
    if !prereqs(&["losetup", "wipefs", "pvcreate", "vgcreate", "lvcreate"]) {
        return;
    }
    // No device-mapper on this kernel: the LV is created inactive (metadata only).
    let mut l = Loop::new(6 * GIB);
    let vg = format!("ceph-h7test-{}", std::process::id());
    l.sh(&format!(
        "pvcreate -q -ff -y $DEV 2>/dev/null && vgcreate -q {vg} $DEV 2>/dev/null && \
         lvcreate -q --driverloaded n -an -Zn -l 100%FREE -n osd-block-1 {vg} 2>/dev/null"
    ));
    l.lvm_vg = Some(vg.clone());
    let r = run(&l, false, false);
    assert!(r.outcome.reasons.contains(&RejectReason::LvmMember));
    consent_cycle(&l, &[SignatureKind::Lvm2]);
    let pvs = sh(&format!(
        "pvs --noheadings -o pv_name {} 2>/dev/null || true",
        l.dev
    ));
    assert!(pvs.is_empty(), "LVM still sees a PV: {pvs}");
    l.lvm_vg = None;
}

fn bluestore_label() -> Vec<u8> {
    let mut b = b"bluestore block device\n0b1d2c3e-4f50-6172-8394-a5b6c7d8e9f0\n".to_vec();
    b.resize(4096, 0);
    b
}

#[test]
fn bluestore_label_with_replica() {
    if !prereqs(FULL) {
        return;
    }
    let l = Loop::new(6 * GIB);
    l.write_at(0, &bluestore_label());
    l.write_at(GIB, &bluestore_label());
    let w = consent_cycle(&l, &[SignatureKind::Bluestore]);
    let offs: Vec<u64> = w
        .outcome
        .signatures_before
        .iter()
        .filter(|s| s.kind == SignatureKind::Bluestore)
        .map(|s| s.offset)
        .collect();
    assert_eq!(offs, vec![0, GIB]);
}

#[test]
fn bluestore_replica_alone_is_not_blank() {
    if !prereqs(FULL) {
        return;
    }
    // ceph-volume 16 only looks at offset 0; a surviving replica still marks the disk as
    // another cluster's OSD for Squid+.
    let l = Loop::new(6 * GIB);
    l.write_at(GIB, &bluestore_label());
    let w = consent_cycle(&l, &[SignatureKind::Bluestore]);
    assert_eq!(w.outcome.signatures_before[0].offset, GIB);
}

#[test]
fn mounted_is_refused_even_with_consent() {
    if !prereqs(FULL) {
        return;
    }
    let mut l = Loop::new(6 * GIB);
    l.sh("mkfs.ext4 -q -F $DEV");
    let m = l.mount();
    // (No byte checksum here: the mounted ext4 itself updates its superblock/journal.)
    for (consent, check) in [(true, false), (true, true), (false, false)] {
        let r = run(&l, consent, check);
        assert_eq!(
            r.outcome.action,
            PrepareAction::Refused,
            "{}",
            r.outcome.message
        );
        assert!(
            r.outcome
                .reasons
                .contains(&RejectReason::Mounted(m.to_string_lossy().into_owned())),
            "{:?}",
            r.outcome.reasons
        );
        assert!(audit_lines(&r.log).is_empty());
        assert!(kinds(&r.outcome.signatures_before).contains(&SignatureKind::Ext4));
    }
}

#[test]
fn active_swap_is_refused() {
    if !prereqs(FULL) {
        return;
    }
    let mut l = Loop::new(6 * GIB);
    l.sh("mkswap -q $DEV >/dev/null && swapon $DEV");
    l.swap = true;
    let d = l.digest();
    let r = run(&l, true, false);
    assert_eq!(
        r.outcome.action,
        PrepareAction::Refused,
        "{}",
        r.outcome.message
    );
    assert!(r.outcome.reasons.contains(&RejectReason::ActiveSwap));
    assert!(kinds(&r.outcome.signatures_before).contains(&SignatureKind::Swap));
    assert_eq!(l.digest(), d);
}

#[test]
fn read_only_is_refused() {
    if !prereqs(FULL) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("ro.img");
    File::create(&img).unwrap().set_len(6 * GIB).unwrap();
    sh(&format!("mkfs.ext4 -q -F {}", img.display()));
    let l = Loop::attach(dir, img, "-r");
    let r = run(&l, true, false);
    assert_eq!(
        r.outcome.action,
        PrepareAction::Refused,
        "{}",
        r.outcome.message
    );
    assert!(
        r.outcome.reasons.contains(&RejectReason::ReadOnly),
        "{:?}",
        r.outcome.reasons
    );
}

#[test]
fn smaller_than_5_gib_is_refused() {
    if !prereqs(FULL) {
        return;
    }
    // One MiB under the floor (5368709120 bytes), with a filesystem: never wiped.
    let l = Loop::new(5 * GIB - MIB);
    l.sh("mkfs.ext4 -q -F $DEV");
    let d = l.digest();
    let r = run(&l, true, false);
    assert_eq!(
        r.outcome.action,
        PrepareAction::Refused,
        "{}",
        r.outcome.message
    );
    assert!(r.outcome.reasons.contains(&RejectReason::TooSmall));
    assert_eq!(l.digest(), d);
    // Exactly 5 GiB is fine.
    let ok = Loop::new(5 * GIB);
    assert_eq!(run(&ok, false, false).outcome.action, PrepareAction::Ok);
}

/// Re-executes this test binary as a helper process playing `role`.
fn spawn_role(role: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "role_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE_ENV, role)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Not a test: the body of helper processes (holder of an exclusive open, or an agent run
/// that the crash test kills).
#[test]
#[ignore = "not a test: the child-process role that the crash test re-executes and kills"]
fn role_helper() {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    let parts: Vec<&str> = role.splitn(4, ':').collect();
    match parts.as_slice() {
        ["hold", dev, ready] => {
            let _f = OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_EXCL)
                .open(dev)
                .unwrap();
            fs::write(ready, "held").unwrap();
            std::thread::sleep(Duration::from_secs(600));
        }
        ["wipe", dev, size, log] => {
            let id = DeviceIdentity {
                path: dev.to_string(),
                serial: None,
                wwn: None,
                by_id: None,
                size_bytes: size.parse().unwrap(),
            };
            let req = request(vec![id], true, false, Path::new(log));
            handle_prepare(&req, &mut |_| {});
        }
        other => panic!("unknown role {other:?}"),
    }
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn held_open_exclusively_by_another_process_is_refused() {
    if !prereqs(FULL) {
        return;
    }
    let l = Loop::new(6 * GIB);
    l.sh("mkfs.ext4 -q -F $DEV");
    let ready = l.dir.path().join("ready");
    let mut child = spawn_role(&format!("hold:{}:{}", l.dev, ready.display()));
    wait_for("holder", Duration::from_secs(30), || ready.exists());
    let d = l.digest();
    let r = run(&l, true, false);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        r.outcome.action,
        PrepareAction::Refused,
        "{}",
        r.outcome.message
    );
    assert!(
        r.outcome.reasons.contains(&RejectReason::InUse),
        "{:?}",
        r.outcome.reasons
    );
    assert_eq!(l.digest(), d);
    // Once the holder is gone the same plan goes through.
    assert_eq!(run(&l, true, false).outcome.action, PrepareAction::Wiped);
}

/// Runs the agent's prepare in a child process that pauses after `step`, SIGKILLs it
/// there, and checks that the next run still sees the device as not clean and finishes it.
fn kill_mid_wipe(l: &Loop, step: &str) -> (Vec<AuditRecord>, Run) {
    let log = l.dir.path().join(format!("kill-{step}.log"));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "role_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            ROLE_ENV,
            format!("wipe:{}:{}:{}", l.dev, l.size(), log.display()),
        )
        .env(PAUSE_ENV, step)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        &format!("step {step} done"),
        Duration::from_secs(120),
        || {
            audit_lines(&log)
                .iter()
                .any(|a| a.action.starts_with(step) && a.result.is_some())
        },
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let lines = audit_lines(&log);
    assert!(
        !lines.iter().any(|a| a.action == "verify"),
        "the child should have died before verifying: {lines:?}"
    );
    let next = run(l, true, false);
    (lines, next)
}

#[test]
fn killed_mid_wipe_then_next_run_finishes() {
    if !prereqs(FULL) {
        return;
    }
    // GPT + xfs in a partition deep in the disk: killed right after the partition contents
    // were zeroed (the table is still there), and again after the tail was zeroed.
    let l = Loop::new(6 * GIB);
    l.sh(&format!("sgdisk -n 1:6291456:+512M -t 1:8300 $DEV >/dev/null && {PARTX_ADD} && mkfs.xfs -q -f ${{DEV}}p1"));
    let (lines, next) = kill_mid_wipe(&l, "zero-partition");
    assert!(!lines.iter().any(|a| a.action == "zero-head"), "{lines:?}");
    // The head was not written, so the next run saw the table and finished the job.
    assert!(kinds(&next.outcome.signatures_before).contains(&SignatureKind::GptPrimary));
    assert_eq!(
        next.outcome.action,
        PrepareAction::Wiped,
        "{}",
        next.outcome.message
    );
    assert!(next.outcome.signatures_after.is_empty());

    let l2 = Loop::new(6 * GIB);
    l2.sh("mkfs.ext4 -q -F $DEV");
    l2.write_at(GIB, &bluestore_label());
    let (lines, next) = kill_mid_wipe(&l2, "zero-tail");
    assert!(
        lines
            .iter()
            .any(|a| a.action.starts_with("zero-bluestore-replica"))
    );
    // ext4 at the head survived the kill, so the device is still "not clean".
    assert_eq!(
        kinds(&next.outcome.signatures_before),
        vec![SignatureKind::Ext4]
    );
    assert_eq!(
        next.outcome.action,
        PrepareAction::Wiped,
        "{}",
        next.outcome.message
    );
    let again = run(&l2, true, false);
    assert_eq!(again.outcome.action, PrepareAction::Ok);
    let left = l2.sh("wipefs --no-act --noheadings $DEV || true");
    assert!(left.is_empty(), "{left}");
}

#[test]
fn identity_mismatch_is_refused() {
    if !prereqs(FULL) {
        return;
    }
    let l = Loop::new(6 * GIB);
    l.sh("mkfs.ext4 -q -F $DEV");
    let d = l.digest();
    let mut wrong_size = l.identity();
    wrong_size.size_bytes += 512;
    let r = run_req(wrong_size, true, false, false);
    assert_eq!(r.outcome.action, PrepareAction::Refused);
    assert!(r.outcome.message.contains("bytes"), "{}", r.outcome.message);

    let mut by_serial = l.identity();
    by_serial.serial = Some("NO-SUCH-SERIAL-H7".into());
    let r = run_req(by_serial, true, false, false);
    assert_eq!(r.outcome.action, PrepareAction::Refused);
    assert!(
        r.outcome.message.contains("NO-SUCH-SERIAL-H7"),
        "{}",
        r.outcome.message
    );

    let mut by_link = l.identity();
    by_link.by_id = Some("/dev/disk/by-id/does-not-exist".into());
    assert_eq!(
        run_req(by_link, true, false, false).outcome.action,
        PrepareAction::Refused
    );
    assert_eq!(l.digest(), d, "a refused identity must not be written");
}

#[test]
fn discard_on_non_rotational() {
    if !prereqs(FULL) {
        return;
    }
    let l = Loop::new(6 * GIB);
    let name = l.dev.trim_start_matches("/dev/");
    // Loop devices inherit `rotational` from the backing fs; root may set it.
    let rot = format!("/sys/block/{name}/queue/rotational");
    if fs::write(&rot, "0").is_err() {
        eprintln!("note: cannot set {rot}; discard path not exercised");
        return;
    }
    l.sh("mkfs.xfs -q -f $DEV");
    let r = run_req(l.identity(), true, false, true);
    assert_eq!(
        r.outcome.action,
        PrepareAction::Wiped,
        "{}",
        r.outcome.message
    );
    let lines = audit_lines(&r.log);
    assert!(lines.iter().any(|a| a.action == "discard"), "{lines:?}");
    // Discarded a GiB at a time with a progress line each, so the runner hears from a long
    // discard instead of timing out.
    let discarded = r
        .events
        .iter()
        .filter(|e| matches!(e, Event::Progress { message } if message.starts_with("discarding ")))
        .count();
    assert_eq!(discarded, 6, "one progress line per GiB discarded");
}

#[test]
fn gpt_on_4k_sector_device() {
    if !prereqs(FULL) {
        return;
    }
    // 4Kn: the primary GPT header is at 4096 and the backup in the last 4 KiB sector.
    let l = Loop::with_flags(6 * GIB, "--sector-size 4096");
    l.sh("sgdisk -n 1:256:+64M $DEV >/dev/null");
    let w = consent_cycle(
        &l,
        &[
            SignatureKind::ProtectiveMbr,
            SignatureKind::GptPrimary,
            SignatureKind::GptBackup,
        ],
    );
    let primary = w
        .outcome
        .signatures_before
        .iter()
        .find(|s| s.kind == SignatureKind::GptPrimary)
        .unwrap();
    assert_eq!(primary.offset, 4096);
}
