//! `rookery probe` over several real sshd hosts at once, one of them down.

use rookery_tests::require::prerequisite;
use rookery_tests::sshd::{SshLab, missing_prerequisite, run_probe_json};

fn ready() -> bool {
    let missing = missing_prerequisite();
    prerequisite(missing.is_none(), missing.as_deref().unwrap_or(""))
}

#[test]
fn parallel_hosts_with_one_port_closed() {
    if !ready() {
        return;
    }
    let lab = SshLab::start(3).unwrap();
    let kh = lab.known_hosts("known_hosts", &[0, 1, 2]).unwrap();
    // Port 1 (tcpmux) is never served: refused for sure, and no parallel test's sshd can
    // take it the way it could take a just-released ephemeral port.
    let closed = 1;
    let mut entries: Vec<String> = lab
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| lab.host_entry(&format!("node{i}"), h.port, "root", &[]))
        .collect();
    entries.push(lab.host_entry("down", closed, "root", &[]));
    let inv = lab.inventory("inv.yaml", &entries).unwrap();

    let mut cmd = lab.rookery();
    cmd.arg("probe")
        .arg("-i")
        .arg(&inv)
        .arg("--known-hosts")
        .arg(&kh);
    let run = run_probe_json(&mut cmd).unwrap();
    assert_eq!(
        run.code,
        Some(4),
        "unreachable hosts give exit code 4\n{run}"
    );
    for i in 0..3 {
        let name = format!("node{i}");
        assert_eq!(run.status(&name), "ok", "{run}");
        let facts = &run.host(&name)["facts"];
        assert!(
            facts["hostname"].as_str().is_some_and(|h| !h.is_empty()),
            "{run}"
        );
        assert!(
            facts["kernel"].as_str().is_some_and(|k| !k.is_empty()),
            "{run}"
        );
        assert!(facts["cpus"].as_u64().unwrap() >= 1, "{run}");
        assert!(facts["block_devices"].is_array(), "{run}");
        assert!(run.host(&name)["error"].is_null(), "{run}");
    }
    assert_eq!(run.status("down"), "unreachable", "{run}");
    assert!(run.error("down").contains("refused"), "{run}");
    assert!(run.host("down")["facts"].is_null());
    assert_eq!(run.json["recap"]["ok"], 3, "{run}");
    assert_eq!(run.json["recap"]["unreachable"], 1, "{run}");
    assert_eq!(run.json["recap"]["failed"], 0, "{run}");

    // Human output: the reason and an Ansible-style recap line per host.
    let out = lab
        .rookery()
        .arg("probe")
        .arg("-i")
        .arg(&inv)
        .arg("--known-hosts")
        .arg(&kh)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4));
    assert!(text.contains("PROBE RECAP"), "{text}");
    assert!(text.contains("HOST [down] UNREACHABLE"), "{text}");
    assert!(text.contains("refused"), "{text}");
    assert!(
        text.contains("DEVICE") && text.contains("AVAILABLE"),
        "{text}"
    );
    let recap_line = text
        .lines()
        .find(|l| l.starts_with("down "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        recap_line.contains("ok=0  failed=0  unreachable=1"),
        "{text}"
    );
    assert!(
        !text.contains("\x1b["),
        "NO_COLOR and a pipe: no escape codes\n{text}"
    );
}

#[test]
fn limit_selects_hosts() {
    if !ready() {
        return;
    }
    let lab = SshLab::start(2).unwrap();
    let kh = lab.known_hosts("known_hosts", &[0, 1]).unwrap();
    let entries: Vec<String> = lab
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| lab.host_entry(&format!("node{i}"), h.port, "root", &[]))
        .collect();
    let inv = lab.inventory("inv.yaml", &entries).unwrap();
    let mut cmd = lab.rookery();
    cmd.arg("probe")
        .arg("-i")
        .arg(&inv)
        .arg("--known-hosts")
        .arg(&kh)
        .args(["--limit", "node1", "--forks", "1"]);
    let run = run_probe_json(&mut cmd).unwrap();
    assert_eq!(run.code, Some(0), "{run}");
    let hosts = run.json["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 1, "{run}");
    assert_eq!(run.status("node1"), "ok", "{run}");
}

#[test]
fn bad_inventory_is_exit_65() {
    if !ready() {
        return;
    }
    let lab = SshLab::empty().unwrap();
    let inv = lab
        .write("bad.yaml", "all:\n  hosts:\n    a:\n      nonsense: [\n")
        .unwrap();
    let out = lab
        .rookery()
        .arg("probe")
        .arg("-i")
        .arg(&inv)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(65),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml"), "error names the file: {err}");
}
