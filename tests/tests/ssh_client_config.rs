//! Settings from the user's OpenSSH client config (`~/.ssh/config`) and keys from a running
//! ssh-agent, so an inventory that only names hosts works like `ssh HOST` would.

use std::process::{Command, Stdio};

use rookery_tests::require::{have_program, prerequisite};
use rookery_tests::sshd::{SshLab, missing_prerequisite, run_probe_json};

fn ready() -> bool {
    let missing = missing_prerequisite();
    prerequisite(missing.is_none(), missing.as_deref().unwrap_or(""))
}

#[test]
fn host_alias_resolved_from_ssh_config() {
    if !ready() {
        return;
    }
    let lab = SshLab::start(1).unwrap();
    let kh = lab.known_hosts("known_hosts", &[0]).unwrap();
    let config = format!(
        "# rookery test\nHost lab-*\n  HostName 127.0.0.1\n  Port {}\n  User root\n  IdentityFile {}\n  \
         UserKnownHostsFile {}\nHost *\n  User nobody\n",
        lab.hosts[0].port,
        lab.client_key.display(),
        kh.display()
    );
    std::fs::write(lab.home().join(".ssh/config"), config).unwrap();
    let inv = lab.write("inv.ini", "[nodes]\nlab-one\n").unwrap();
    let run = run_probe_json(lab.rookery().arg("probe").arg("-i").arg(&inv)).unwrap();
    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(run.status("lab-one"), "ok", "{run}");
}

#[test]
fn ssh_agent_keys_are_used() {
    if !ready() {
        return;
    }
    if !prerequisite(
        have_program("ssh-agent") && have_program("ssh-add"),
        "ssh-agent and ssh-add (openssh-client)",
    ) {
        return;
    }
    let lab = SshLab::start(1).unwrap();
    let kh = lab.known_hosts("known_hosts", &[0]).unwrap();
    let sock = lab.path().join("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _agent = {
        for _ in 0..100 {
            if sock.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let st = Command::new("ssh-add")
            .arg(&lab.client_key)
            .env("SSH_AUTH_SOCK", &sock)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        if let Ok(Some(st)) = agent.try_wait() {
            panic!("ssh-agent exited: {st}");
        }
        Kill(agent)
    };
    // No key file anywhere: only the agent holds the key.
    let entry = format!(
        "    n:\n      ansible_host: 127.0.0.1\n      ansible_port: {}\n      ansible_user: root\n",
        lab.hosts[0].port
    );
    let inv = lab.inventory("inv.yaml", &[entry]).unwrap();
    let mut cmd = lab.rookery();
    cmd.arg("probe")
        .arg("-i")
        .arg(&inv)
        .arg("--known-hosts")
        .arg(&kh);
    let without = run_probe_json(&mut cmd).unwrap();
    assert_eq!(without.status("n"), "unreachable", "{without}");
    let mut cmd = lab.rookery();
    cmd.arg("probe")
        .arg("-i")
        .arg(&inv)
        .arg("--known-hosts")
        .arg(&kh)
        .env("SSH_AUTH_SOCK", &sock);
    let with = run_probe_json(&mut cmd).unwrap();
    assert_eq!(with.code, Some(0), "{with}");
}
