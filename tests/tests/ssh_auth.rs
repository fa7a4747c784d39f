//! Authentication failures against a real sshd: wrong key, wrong user, encrypted keys.

use rookery_tests::require::prerequisite;
use rookery_tests::sshd::{SshLab, keygen, missing_prerequisite, run_probe_json};

fn ready() -> bool {
    let missing = missing_prerequisite();
    prerequisite(missing.is_none(), missing.as_deref().unwrap_or(""))
}

#[test]
fn wrong_key_and_wrong_user_are_refused_clearly() {
    if !ready() {
        return;
    }
    let lab = SshLab::start(1).unwrap();
    let kh = lab.known_hosts("known_hosts", &[0]).unwrap();
    let port = lab.hosts[0].port;
    let stranger = lab.path().join("stranger");
    keygen(&stranger, "").unwrap();
    let mut wrong_key = lab.host_entry("wrongkey", port, "root", &[]);
    wrong_key = wrong_key.replace(
        &lab.client_key.display().to_string(),
        &stranger.display().to_string(),
    );
    let wrong_user = lab.host_entry("wronguser", port, "no-such-user-rk", &[]);
    let good = lab.host_entry("good", port, "root", &[]);
    let inv = lab
        .inventory("inv.yaml", &[wrong_key, wrong_user, good])
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
    assert_eq!(run.code, Some(4), "{run}");
    assert_eq!(run.status("good"), "ok", "{run}");
    let e = run.error("wrongkey");
    assert!(
        e.contains("authentication as user \"root\" failed"),
        "{run}"
    );
    assert!(
        e.contains(&format!("key {} (rejected)", stranger.display())),
        "{run}"
    );
    let e = run.error("wronguser");
    assert!(
        e.contains("authentication as user \"no-such-user-rk\" failed"),
        "{run}"
    );
    assert!(
        run.host("wronguser")["hint"]
            .as_str()
            .unwrap()
            .contains("ansible_user")
    );
}

#[test]
fn encrypted_key_needs_its_passphrase() {
    if !ready() {
        return;
    }
    let lab = SshLab::start(1).unwrap();
    let kh = lab.known_hosts("known_hosts", &[0]).unwrap();
    let port = lab.hosts[0].port;
    let enc = lab.path().join("enc_key");
    keygen(&enc, "s3cret-phrase").unwrap();
    // Authorise it next to the lab key.
    let pubkey = std::fs::read_to_string(enc.with_extension("pub")).unwrap();
    let auth = lab.path().join("authorized_keys");
    let mut all = std::fs::read_to_string(&auth).unwrap();
    all.push_str(&pubkey);
    std::fs::write(&auth, all).unwrap();
    let entry = lab.host_entry("n", port, "root", &[]).replace(
        &lab.client_key.display().to_string(),
        &enc.display().to_string(),
    );
    let inv = lab.inventory("inv.yaml", &[entry]).unwrap();
    let base = |lab: &SshLab| {
        let mut c = lab.rookery();
        c.arg("probe")
            .arg("-i")
            .arg(&inv)
            .arg("--known-hosts")
            .arg(&kh);
        c
    };
    let run = run_probe_json(&mut base(&lab)).unwrap();
    assert_eq!(run.code, Some(4), "{run}");
    assert!(
        run.error("n")
            .contains("encrypted, and no passphrase given"),
        "{run}"
    );

    let run = run_probe_json(base(&lab).env("ROOKERY_SSH_PASSPHRASE", "wrong")).unwrap();
    assert!(run.error("n").contains("passphrase is wrong"), "{run}");
    assert!(!run.stdout.contains("wrong\"") && !run.stderr.contains("s3cret"));

    let run = run_probe_json(base(&lab).env("ROOKERY_SSH_PASSPHRASE", "s3cret-phrase")).unwrap();
    assert_eq!(run.code, Some(0), "{run}");
    assert!(!run.stdout.contains("s3cret") && !run.stderr.contains("s3cret"));
}
