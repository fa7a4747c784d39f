//! Host-key checking against real sshd host keys: unknown keys refused (and recorded with
//! --accept-new-host-keys), changed keys always refused with both fingerprints.

use rookery_tests::require::prerequisite;
use rookery_tests::sshd::{SshLab, missing_prerequisite, run_probe_json};

fn ready() -> bool {
    let missing = missing_prerequisite();
    prerequisite(missing.is_none(), missing.as_deref().unwrap_or(""))
}

#[test]
fn unknown_key_refused_then_accepted_and_recorded() {
    if !ready() {
        return;
    }
    let lab = SshLab::start(1).unwrap();
    let h = &lab.hosts[0];
    let fp = h.fingerprint().unwrap();
    let inv = lab
        .inventory("inv.yaml", &[lab.host_entry("n", h.port, "root", &[])])
        .unwrap();
    // The default known_hosts is $HOME/.ssh/known_hosts (the lab's fake home: empty).
    let kh = lab.home().join(".ssh/known_hosts");

    let run = run_probe_json(lab.rookery().arg("probe").arg("-i").arg(&inv)).unwrap();
    assert_eq!(run.code, Some(4), "{run}");
    assert_eq!(run.status("n"), "unreachable", "{run}");
    let err = run.error("n");
    assert!(err.contains("host key is not known"), "{run}");
    assert!(err.contains(&fp), "the offered fingerprint is shown\n{run}");
    assert!(
        run.host("n")["hint"]
            .as_str()
            .unwrap()
            .contains("--accept-new-host-keys")
    );
    assert!(!kh.exists() || std::fs::read_to_string(&kh).unwrap().is_empty());

    let run = run_probe_json(
        lab.rookery()
            .arg("probe")
            .arg("-i")
            .arg(&inv)
            .arg("--accept-new-host-keys"),
    )
    .unwrap();
    assert_eq!(run.code, Some(0), "{run}");
    assert!(
        run.stderr.contains(&fp),
        "recording a key is reported\n{run}"
    );
    let recorded = std::fs::read_to_string(&kh).unwrap();
    assert_eq!(recorded.lines().count(), 1, "{recorded}");
    assert!(
        recorded.starts_with("|1|"),
        "recorded hashed, like HashKnownHosts: {recorded}"
    );
    assert!(recorded.contains(h.host_key.split(' ').nth(1).unwrap()));

    // Known now: no flag needed, and OpenSSH agrees with what we wrote.
    let run = run_probe_json(lab.rookery().arg("probe").arg("-i").arg(&inv)).unwrap();
    assert_eq!(run.code, Some(0), "{run}");
    let out = std::process::Command::new("ssh-keygen")
        .arg("-F")
        .arg(format!("[127.0.0.1]:{}", h.port))
        .arg("-f")
        .arg(&kh)
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen -F finds the hashed entry");
}

#[test]
fn changed_key_refused_with_both_fingerprints() {
    if !ready() {
        return;
    }
    let mut lab = SshLab::start(1).unwrap();
    let kh = lab.known_hosts("known_hosts", &[0]).unwrap();
    let old_fp = lab.hosts[0].fingerprint().unwrap();
    lab.hosts[0].regenerate_host_key().unwrap();
    let new_fp = lab.hosts[0].fingerprint().unwrap();
    assert_ne!(old_fp, new_fp);
    let inv = lab
        .inventory(
            "inv.yaml",
            &[lab.host_entry("n", lab.hosts[0].port, "root", &[])],
        )
        .unwrap();
    for accept in [false, true] {
        let mut cmd = lab.rookery();
        cmd.arg("probe")
            .arg("-i")
            .arg(&inv)
            .arg("--known-hosts")
            .arg(&kh);
        if accept {
            cmd.arg("--accept-new-host-keys");
        }
        let run = run_probe_json(&mut cmd).unwrap();
        assert_eq!(run.code, Some(4), "{run}");
        let err = run.error("n");
        assert!(err.contains("CHANGED"), "{run}");
        assert!(
            err.contains(&old_fp) && err.contains(&new_fp),
            "both fingerprints\n{run}"
        );
        assert!(
            err.contains(&format!("{}:1", kh.display())),
            "file:line of the old entry\n{run}"
        );
    }
    // The file is untouched.
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap().lines().count(),
        1,
        "a changed key is never recorded"
    );
}

#[test]
fn inventory_known_hosts_option_and_strict_no() {
    if !ready() {
        return;
    }
    let lab = SshLab::start(1).unwrap();
    let port = lab.hosts[0].port;
    // An Ansible lab idiom: no host-key checking at all for throwaway hosts.
    let inv = lab
        .inventory(
            "inv.yaml",
            &[lab.host_entry(
                "n",
                port,
                "root",
                &["ansible_ssh_common_args: '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'"],
            )],
        )
        .unwrap();
    let run = run_probe_json(lab.rookery().arg("probe").arg("-i").arg(&inv)).unwrap();
    assert_eq!(run.code, Some(0), "{run}");
    assert!(!lab.home().join(".ssh/known_hosts").exists());
}

#[test]
fn host_known_by_another_key_type() {
    if !ready() {
        return;
    }
    // The host offers Ed25519 and ECDSA keys; known_hosts has only the ECDSA one (as after
    // years of OpenSSH defaults). The handshake must ask for the key type we can verify.
    let mut lab = SshLab::empty().unwrap();
    let ecdsa = lab.path().join("ssh_host_ecdsa_key");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ecdsa", "-N", "", "-f"])
        .arg(&ecdsa)
        .status()
        .unwrap();
    assert!(st.success());
    lab.add_host(&format!("HostKey {}", ecdsa.display()))
        .unwrap();
    let port = lab.hosts[0].port;
    let pubkey = std::fs::read_to_string(ecdsa.with_extension("pub")).unwrap();
    let mut f = pubkey.split_whitespace();
    let line = format!(
        "[127.0.0.1]:{port} {} {}\n",
        f.next().unwrap(),
        f.next().unwrap()
    );
    let kh = lab.write("known_hosts", &line).unwrap();
    let inv = lab
        .inventory("inv.yaml", &[lab.host_entry("n", port, "root", &[])])
        .unwrap();
    let run = run_probe_json(
        lab.rookery()
            .arg("probe")
            .arg("-i")
            .arg(&inv)
            .arg("--known-hosts")
            .arg(&kh),
    )
    .unwrap();
    assert_eq!(run.code, Some(0), "{run}");
}
