//! Host-key checking against real sshd host keys: unknown keys refused (and recorded with
//! --accept-new-host-keys), changed keys always refused with both fingerprints, a known host
//! offering only another key type refused, and inventories or ssh configs that would switch
//! checking off refused unless the command line says --insecure-ignore-host-keys.

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

/// The Ansible lab idiom `-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null` in an
/// inventory must not switch checking off by itself: refused, naming the host and the
/// variable with its file:line; only `--insecure-ignore-host-keys` on the command line allows
/// it, with a warning that `-q` does not silence.
#[test]
fn inventory_cannot_switch_host_key_checking_off() {
    if !ready() {
        return;
    }
    let lab = SshLab::start(1).unwrap();
    let port = lab.hosts[0].port;
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
    assert_eq!(run.code, Some(4), "{run}");
    assert_eq!(run.status("n"), "unreachable", "{run}");
    let err = run.error("n");
    assert!(
        err.starts_with("n: StrictHostKeyChecking=no (from ansible_ssh_common_args at ")
            && err.contains(&format!("{}:", inv.display()))
            && err.contains("refused"),
        "{run}"
    );
    let hint = run.host("n")["hint"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(hint.contains("--insecure-ignore-host-keys"), "{hint}");

    // The command line may, and says so loudly even under -q.
    let run = run_probe_json(
        lab.rookery()
            .arg("probe")
            .arg("-i")
            .arg(&inv)
            .arg("-q")
            .arg("--insecure-ignore-host-keys"),
    )
    .unwrap();
    assert_eq!(run.code, Some(0), "{run}");
    assert!(
        run.stderr
            .contains("warning: --insecure-ignore-host-keys: HOST KEYS ARE NOT VERIFIED"),
        "{run}"
    );
    assert!(!lab.home().join(".ssh/known_hosts").exists());
}

/// The same settings from ~/.ssh/config are refused with the config's file:line; recording
/// new keys into /dev/null (accept-new) counts as switching checking off too.
#[test]
fn ssh_config_cannot_switch_host_key_checking_off() {
    if !ready() {
        return;
    }
    let lab = SshLab::start(1).unwrap();
    let port = lab.hosts[0].port;
    let inv = lab
        .inventory("inv.yaml", &[lab.host_entry("n", port, "root", &[])])
        .unwrap();
    let cfg = lab.home().join(".ssh/config");
    std::fs::write(&cfg, "# lab\nHost 127.0.0.1\n  StrictHostKeyChecking no\n").unwrap();
    let run = run_probe_json(lab.rookery().arg("probe").arg("-i").arg(&inv)).unwrap();
    assert_eq!(run.code, Some(4), "{run}");
    let err = run.error("n");
    assert!(
        err.contains(&format!(
            "StrictHostKeyChecking=no (from {}:3)",
            cfg.display()
        )),
        "{run}"
    );

    std::fs::write(&cfg, "Host *\n  UserKnownHostsFile /dev/null\n").unwrap();
    let run = run_probe_json(
        lab.rookery()
            .arg("probe")
            .arg("-i")
            .arg(&inv)
            .arg("--accept-new-host-keys"),
    )
    .unwrap();
    assert_eq!(run.code, Some(4), "{run}");
    assert!(
        run.error("n").contains(&format!(
            "UserKnownHostsFile=/dev/null (from {}:2)",
            cfg.display()
        )),
        "{run}"
    );
}

/// A host known only by an ECDSA key that now offers only Ed25519 is refused under
/// accept-new (OpenSSH would take the new type as "unknown" and record it).
#[test]
fn known_host_offering_only_another_key_type_is_refused() {
    if !ready() {
        return;
    }
    let lab = SshLab::start(1).unwrap();
    let port = lab.hosts[0].port;
    let ecdsa = lab.path().join("old_ecdsa");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ecdsa", "-N", "", "-f"])
        .arg(&ecdsa)
        .status()
        .unwrap();
    assert!(st.success());
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
            .arg(&kh)
            .arg("--accept-new-host-keys"),
    )
    .unwrap();
    assert_eq!(run.code, Some(4), "{run}");
    let err = run.error("n");
    assert!(
        err.contains("offered only a ssh-ed25519 key")
            && err.contains("ecdsa-sha2-nistp256")
            && err.contains(&format!("{}:1", kh.display())),
        "{run}"
    );
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap(),
        line,
        "the other key type is not recorded"
    );
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
