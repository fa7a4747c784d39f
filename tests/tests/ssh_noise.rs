//! Garbage printed by the remote shell's rc files (stdout and stderr, with and without
//! newlines, even JSON that looks like a frame) does not break the protocol.

use std::process::Command;

use rookery_tests::require::{have_program, prerequisite};
use rookery_tests::sshd::{SshLab, Sudo, ensure_user, missing_prerequisite, run_probe_json};

fn ready() -> bool {
    let missing = missing_prerequisite();
    prerequisite(missing.is_none(), missing.as_deref().unwrap_or(""))
}

const NOISE: &str = r#"echo "Welcome to the noisy host, $USER"
echo '{"id":1,"kind":"response","body":{"kind":"error","value":{"code":"internal","message":"fake"}}}'
printf 'a line without newline'
echo "rc chatter on stderr" >&2
"#;

#[test]
fn rc_file_noise_is_skipped() {
    if !ready() {
        return;
    }
    let user = ensure_user("rkt-noisy", "x-Rk-3", Sudo::None).unwrap();
    user.write_home_file(".bashrc", NOISE).unwrap();
    user.write_home_file(".profile", NOISE).unwrap();
    let lab = SshLab::start(1).unwrap();
    let kh = lab.known_hosts("kh", &[0]).unwrap();
    let port = lab.hosts[0].port;

    // Prove the noise is real: OpenSSH's own client sees it on a plain command.
    if have_program("ssh") {
        let out = Command::new("ssh")
            .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"])
            .args(["-o", &format!("UserKnownHostsFile={}", kh.display())])
            .arg("-i")
            .arg(&lab.client_key)
            .args(["-p", &port.to_string()])
            .arg(format!("{}@127.0.0.1", user.name))
            .arg("true")
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Welcome to the noisy host"),
            "rc noise expected on stdout: {out:?}"
        );
    }

    let inv = lab
        .inventory("inv.yaml", &[lab.host_entry("n", port, &user.name, &[])])
        .unwrap();
    for round in ["with upload", "cached agent"] {
        let run = run_probe_json(
            lab.rookery()
                .arg("probe")
                .arg("-i")
                .arg(&inv)
                .arg("--known-hosts")
                .arg(&kh),
        )
        .unwrap();
        assert_eq!(run.code, Some(0), "{round}: {run}");
        assert_eq!(run.status("n"), "ok", "{round}: {run}");
        assert!(run.host("n")["facts"]["hostname"].is_string());
    }
}
