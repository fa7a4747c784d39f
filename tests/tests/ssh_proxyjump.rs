//! ProxyJump (from `ansible_ssh_common_args: -o ProxyJump=...`): the target is reached
//! through a direct-tcpip channel of the jump host's connection. A jump host that refuses
//! forwarding makes the target unreachable, which shows the path really goes through it.

use rookery_tests::require::prerequisite;
use rookery_tests::sshd::{SshLab, missing_prerequisite, run_probe_json};

fn ready() -> bool {
    let missing = missing_prerequisite();
    prerequisite(missing.is_none(), missing.as_deref().unwrap_or(""))
}

#[test]
fn probe_through_a_jump_host() {
    if !ready() {
        return;
    }
    let mut lab = SshLab::start(2).unwrap();
    lab.add_host("AllowTcpForwarding no").unwrap();
    let kh = lab.known_hosts("known_hosts", &[0, 1, 2]).unwrap();
    let target = lab.hosts[0].port;
    let jump = lab.hosts[1].port;
    let closed_jump = lab.hosts[2].port;
    let via = |port: u16| format!("ansible_ssh_common_args: '-o ProxyJump=root@127.0.0.1:{port}'");
    let inv = lab
        .inventory(
            "inv.yaml",
            &[
                lab.host_entry("via-jump", target, "root", &[&via(jump)]),
                lab.host_entry("via-nofwd", target, "root", &[&via(closed_jump)]),
            ],
        )
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
    assert_eq!(run.status("via-jump"), "ok", "{run}");
    assert_eq!(run.status("via-nofwd"), "unreachable", "{run}");
    assert!(
        run.error("via-nofwd").contains("through the jump host"),
        "{run}"
    );
    assert_eq!(run.code, Some(4), "{run}");
}
