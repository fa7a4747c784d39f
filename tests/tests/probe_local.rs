//! `connection: local`: the agent runs on the control machine without SSH.

use rookery_tests::sshd::{SshLab, run_probe_json};

#[test]
fn local_host_probes_without_ssh() {
    let lab = SshLab::empty_client_only().unwrap();
    let inv = lab
        .write(
            "local.yaml",
            "all:\n  hosts:\n    me:\n      ansible_connection: local\n    me-become:\n      \
             ansible_connection: local\n      ansible_become: true\n",
        )
        .unwrap();
    let run = run_probe_json(lab.rookery().arg("probe").arg("-i").arg(&inv)).unwrap();
    for h in ["me", "me-become"] {
        if run.status(h) != "ok" {
            // become without root needs passwordless sudo; anything else is a bug.
            assert!(
                h == "me-become" && !rookery_tests::require::is_root(),
                "{h}: {run}"
            );
            continue;
        }
        assert_eq!(run.host(h)["agent_uploaded"], false, "{run}");
        let facts = &run.host(h)["facts"];
        assert!(facts["memory_bytes"].as_u64().unwrap() > 0, "{run}");
        assert!(facts["cpus"].as_u64().unwrap() >= 1, "{run}");
    }
}
