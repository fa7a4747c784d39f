//! The agent's life on a node: uploaded once per version to a sha256-named path in a private
//! directory, not uploaded again, and detected and replaced when corrupted. Each test logs in
//! as its own user so the agent cache is its own (root's /var/lib/rookery is shared).

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::path::Path;
use std::process::Command;

use rookery_tests::require::prerequisite;
use rookery_tests::sshd::{
    SshLab, Sudo, agent_binary, ensure_user, missing_prerequisite, run_probe_json,
};

fn ready() -> bool {
    let missing = missing_prerequisite();
    prerequisite(missing.is_none(), missing.as_deref().unwrap_or(""))
}

fn sha256(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn uploaded_once_then_reused() {
    if !ready() {
        return;
    }
    let user = ensure_user("rkt-upload", "x-Rk-1", Sudo::None).unwrap();
    let lab = SshLab::start(1).unwrap();
    let kh = lab.known_hosts("kh", &[0]).unwrap();
    let inv = lab
        .inventory(
            "inv.yaml",
            &[lab.host_entry("n", lab.hosts[0].port, &user.name, &[])],
        )
        .unwrap();
    let probe = || {
        run_probe_json(
            lab.rookery()
                .arg("probe")
                .arg("-i")
                .arg(&inv)
                .arg("--known-hosts")
                .arg(&kh),
        )
        .unwrap()
    };
    // Agents of other versions: one untouched for 40 days (removed on upload), one recent.
    std::fs::create_dir_all(user.agent_dir()).unwrap();
    let old = user.agent_dir().join("agent-0000old");
    let recent = user.agent_dir().join("agent-0000recent");
    std::fs::write(&old, "old").unwrap();
    std::fs::write(&recent, "recent").unwrap();
    assert!(
        Command::new("touch")
            .args(["-d", "40 days ago"])
            .arg(&old)
            .status()
            .unwrap()
            .success()
    );
    assert!(
        Command::new("chown")
            .arg("-R")
            .arg(&user.name)
            .arg(user.home.join(".cache"))
            .status()
            .unwrap()
            .success()
    );

    let first = probe();
    assert_eq!(first.code, Some(0), "{first}");
    assert!(!old.exists(), "stale agent versions are cleaned up");
    assert!(recent.exists(), "recent ones are kept");
    assert_eq!(first.host("n")["agent_uploaded"], true, "{first}");
    let sha = sha256(&agent_binary());
    let remote = user.agent_dir().join(format!("agent-{sha}"));
    assert!(remote.exists(), "agent at {}", remote.display());
    assert_eq!(sha256(&remote), sha);
    assert_eq!(mode(&user.agent_dir()), 0o700, "private directory");
    assert_eq!(mode(&remote), 0o700);
    let leftovers: Vec<_> = std::fs::read_dir(user.agent_dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "no temp files left behind");

    let second = probe();
    assert_eq!(second.code, Some(0), "{second}");
    assert_eq!(
        second.host("n")["agent_uploaded"],
        false,
        "not uploaded again\n{second}"
    );
}

#[test]
fn corrupted_agent_is_detected_and_replaced() {
    if !ready() {
        return;
    }
    let user = ensure_user("rkt-corrupt", "x-Rk-2", Sudo::None).unwrap();
    let lab = SshLab::start(1).unwrap();
    let kh = lab.known_hosts("kh", &[0]).unwrap();
    let inv = lab
        .inventory(
            "inv.yaml",
            &[lab.host_entry("n", lab.hosts[0].port, &user.name, &[])],
        )
        .unwrap();
    let probe = || {
        run_probe_json(
            lab.rookery()
                .arg("probe")
                .arg("-i")
                .arg(&inv)
                .arg("--known-hosts")
                .arg(&kh),
        )
        .unwrap()
    };
    assert_eq!(probe().code, Some(0));
    let sha = sha256(&agent_binary());
    let remote = user.agent_dir().join(format!("agent-{sha}"));

    // Flip bytes in the middle (still an executable ELF of the same size), then truncate:
    // both must be caught before the file is run.
    for damage in ["flip", "truncate"] {
        let mut bytes = std::fs::read(&remote).unwrap();
        if damage == "flip" {
            let mid = bytes.len() / 2;
            for b in &mut bytes[mid..mid + 64] {
                *b ^= 0xff;
            }
        } else {
            bytes.truncate(bytes.len() / 3);
        }
        std::fs::write(&remote, &bytes).unwrap();
        assert_ne!(sha256(&remote), sha);
        let run = probe();
        assert_eq!(run.code, Some(0), "{damage}: {run}");
        assert_eq!(
            run.host("n")["agent_uploaded"],
            true,
            "{damage}: replaced\n{run}"
        );
        assert_eq!(sha256(&remote), sha, "{damage}: the good agent is back");
    }
}

/// Become with a password on first contact: the upload channel stores the agent and then runs
/// it through `sudo -S`, answering the prompt on that same channel.
#[test]
fn upload_then_sudo_with_password_on_one_channel() {
    if !ready() {
        return;
    }
    const PW: &str = "x-Rk-3";
    let user = ensure_user("rkt-uploadpw", PW, Sudo::Password).unwrap();
    let lab = SshLab::start(1).unwrap();
    let kh = lab.known_hosts("kh", &[0]).unwrap();
    let probe = |pw: &str| {
        let inv = lab
            .inventory(
                "inv.yaml",
                &[lab.host_entry(
                    "n",
                    lab.hosts[0].port,
                    &user.name,
                    &[
                        "ansible_become: true",
                        &format!("ansible_become_password: {pw}"),
                    ],
                )],
            )
            .unwrap();
        run_probe_json(
            lab.rookery()
                .arg("probe")
                .arg("-i")
                .arg(&inv)
                .arg("--known-hosts")
                .arg(&kh),
        )
        .unwrap()
    };
    let sha = sha256(&agent_binary());
    let remote = user.agent_dir().join(format!("agent-{sha}"));

    // Wrong password right after an upload: a become error, and the agent is stored anyway.
    let _ = std::fs::remove_dir_all(user.agent_dir());
    let bad = probe("wrong-pw");
    assert_ne!(bad.status("n"), "ok", "{bad}");
    assert!(bad.to_string().contains("rejected"), "{bad}");
    assert!(remote.exists(), "agent at {}", remote.display());

    let _ = std::fs::remove_dir_all(user.agent_dir());
    let first = probe(PW);
    assert_eq!(first.code, Some(0), "{first}");
    assert_eq!(first.host("n")["agent_uploaded"], true, "{first}");
    assert_eq!(sha256(&remote), sha);
    assert_eq!(mode(&user.agent_dir()), 0o700, "private directory");
    assert!(!lab.hosts[0].log().contains(PW));
    assert!(!first.to_string().contains(PW));

    let second = probe(PW);
    assert_eq!(second.code, Some(0), "{second}");
    assert_eq!(second.host("n")["agent_uploaded"], false, "{second}");
}

/// Each host gets the agent for the architecture its `uname -m` reports (this machine's
/// sshd hosts are x86_64): given both builds, only the x86_64 one is uploaded; given only the
/// aarch64 build, the host is refused with its name and architecture, and nothing is uploaded.
#[test]
fn agent_chosen_by_the_hosts_architecture() {
    if !ready() {
        return;
    }
    let aarch64 = rookery_tests::bins::agent_aarch64();
    if !prerequisite(aarch64.is_file(), "the aarch64 agent (`cargo xtask agent`)") {
        return;
    }
    let x86_64 = agent_binary();
    let user = ensure_user("rkt-arch", "x-Rk-1", Sudo::None).unwrap();
    let _ = std::fs::remove_dir_all(user.agent_dir());
    let lab = SshLab::start(1).unwrap();
    let kh = lab.known_hosts("kh", &[0]).unwrap();
    let inv = lab
        .inventory(
            "inv.yaml",
            &[lab.host_entry("n", lab.hosts[0].port, &user.name, &[])],
        )
        .unwrap();
    let probe = |agents: String| {
        run_probe_json(
            lab.rookery()
                .env("ROOKERY_AGENT", agents)
                .arg("probe")
                .arg("-i")
                .arg(&inv)
                .arg("--known-hosts")
                .arg(&kh),
        )
        .unwrap()
    };

    let only_arm = probe(aarch64.display().to_string());
    assert_eq!(only_arm.status("n"), "unreachable", "{only_arm}");
    let err = only_arm.error("n");
    assert!(
        err.contains("n: the host's architecture is x86_64 (`uname -m`) and there is no rookery-agent for it (agents: aarch64 ("),
        "{only_arm}"
    );
    assert!(
        !user
            .agent_dir()
            .join(format!("agent-{}", sha256(&aarch64)))
            .exists()
    );

    let both = probe(format!("{}:{}", aarch64.display(), x86_64.display()));
    assert_eq!(both.status("n"), "ok", "{both}");
    assert_eq!(both.host("n")["agent_uploaded"], true, "{both}");
    assert!(
        user.agent_dir()
            .join(format!("agent-{}", sha256(&x86_64)))
            .is_file()
    );
    assert!(
        !user
            .agent_dir()
            .join(format!("agent-{}", sha256(&aarch64)))
            .exists()
    );
    // The next run finds the x86_64 agent in one exec, as before.
    let again = probe(format!("{}:{}", aarch64.display(), x86_64.display()));
    assert_eq!(again.host("n")["agent_uploaded"], false, "{again}");
}
