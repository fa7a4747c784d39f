//! `rookery play playbooks/prepare.yaml` over three real QEMU guests at once: every guest's
//! NVMe namespace and SATA HDD start with partitions, filesystems and a `ceph-*` LVM volume;
//! one run with `prepare_wipe=true` leaves all six disks clean (as each guest's own tools see
//! them), the hosts are worked on in parallel, and a second run changes nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use rookery_tests::bins;
use rookery_tests::vm::{self, Lab, LabOptions, clean_check_script, dirty_disks_script};
use serde_json::Value;

struct Run {
    ok: bool,
    recap: BTreeMap<String, Value>,
    /// Per host: the prepare_devices task's duration.
    task_ms: Vec<u64>,
    duration_ms: u64,
}

fn play(inventory: &Path, extra: &[&str]) -> Run {
    let t0 = Instant::now();
    let out = Command::new(bins::rookery())
        .args([
            "play",
            "--connect-timeout",
            vm::CONNECT_TIMEOUT,
            "-o",
            "json",
            "-i",
        ])
        .arg(inventory)
        .arg(bins::repo_root().join("playbooks/prepare.yaml"))
        .args(extra)
        .env("ROOKERY_AGENT", bins::agent())
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run rookery: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "rookery play {extra:?}: {} in {:.1?}\nstderr:\n{}",
        out.status,
        t0.elapsed(),
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON event: {e}: {l}")))
        .collect();
    let recap = events
        .iter()
        .find(|e| e["event"] == "recap")
        .unwrap_or_else(|| {
            panic!(
                "rookery play exited {} with no recap event; stdout:\n{stdout}\nstderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let task_ms = events
        .iter()
        .filter(|e| e["event"] == "host_result" && e["result"].get("devices").is_some())
        .filter_map(|e| e["duration_ms"].as_u64())
        .collect();
    if !out.status.success() {
        eprintln!("events:\n{stdout}");
    }
    Run {
        ok: out.status.success(),
        recap: recap["hosts"]
            .as_object()
            .map(|m| m.clone().into_iter().collect())
            .unwrap_or_default(),
        task_ms,
        duration_ms: recap["duration_ms"].as_u64().unwrap_or(0),
    }
}

#[test]
fn prepare_playbook_wipes_three_guests_in_parallel() {
    if !vm::prerequisites() {
        return;
    }
    // The playbook must load (modules known) before three guests are worth booting.
    let list = Command::new(bins::rookery())
        .args([
            "play",
            "--list-tasks",
            "-i",
            "inventories/vagrant.yaml",
            "playbooks/prepare.yaml",
        ])
        .current_dir(bins::repo_root())
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "playbooks/prepare.yaml does not load: {}{}",
        String::from_utf8_lossy(&list.stdout),
        String::from_utf8_lossy(&list.stderr)
    );
    let lab = Lab::start(&LabOptions {
        guests: 3,
        ..LabOptions::default()
    })
    .unwrap();
    let inventory = lab
        .write_inventory("play.yaml", |g| {
            format!(
                "      rookery_devices:\n        - {{serial: {}, wipe: true}}\n        - {{serial: {}, wipe: true}}\n",
                g.nvme_serial, g.hdd_serial
            )
        })
        .unwrap();
    std::thread::scope(|s| {
        for g in &lab.guests {
            let lab = &lab;
            s.spawn(move || lab.ssh_ok(g, &dirty_disks_script(g)));
        }
    });

    let first = play(&inventory, &["-e", "prepare_wipe=true"]);
    assert!(first.ok, "first run failed; recap: {:?}", first.recap);
    assert_eq!(first.recap.len(), 3, "{:?}", first.recap);
    for (host, stats) in &first.recap {
        assert_eq!(stats["failed"], 0, "{host}: {stats}");
        assert_eq!(stats["unreachable"], 0, "{host}: {stats}");
        assert!(
            stats["changed"].as_u64().unwrap_or(0) >= 1,
            "{host} reported no change: {stats}"
        );
    }
    for g in &lab.guests {
        for dev in ["/dev/sda", "/dev/nvme0n1"] {
            lab.ssh_ok(g, &clean_check_script(dev));
        }
    }
    // In parallel: the play took clearly less than the hosts' prepare tasks one after another.
    let serial_ms: u64 = first.task_ms.iter().sum();
    eprintln!(
        "vmlab timing: boot of 3 guests {:.1?}, play (wipe) {} ms, prepare task per host {:?} ms",
        lab.boot_elapsed, first.duration_ms, first.task_ms
    );
    assert_eq!(
        first.task_ms.len(),
        3,
        "prepare_devices results: {:?}",
        first.task_ms
    );
    assert!(
        first.duration_ms * 10 < serial_ms * 9,
        "play took {} ms for prepare tasks summing to {serial_ms} ms: hosts were not run in parallel",
        first.duration_ms
    );

    let second = play(&inventory, &["-e", "prepare_wipe=true"]);
    assert!(second.ok, "second run failed; recap: {:?}", second.recap);
    for (host, stats) in &second.recap {
        assert_eq!(
            stats["changed"], 0,
            "{host} changed on the second run: {stats}"
        );
        assert_eq!(stats["failed"], 0, "{host}: {stats}");
    }
}
