//! Timeouts with real components: a host whose sshd runs `sleep` instead of any command
//! (ForceCommand) never starts the agent; a request that runs too long on a working agent.

use std::time::{Duration, Instant};

use rookery_tests::require::prerequisite;
use rookery_tests::sshd::{SshLab, missing_prerequisite, run_probe_json};
use rookery_transport::{Connector, SessionError};

fn ready() -> bool {
    let missing = missing_prerequisite();
    prerequisite(missing.is_none(), missing.as_deref().unwrap_or(""))
}

#[test]
fn hung_host_times_out_while_others_succeed() {
    if !ready() {
        return;
    }
    let mut lab = SshLab::start(1).unwrap();
    lab.add_host("ForceCommand /bin/sleep 600").unwrap();
    let kh = lab.known_hosts("kh", &[0, 1]).unwrap();
    let inv = lab
        .inventory(
            "inv.yaml",
            &[
                lab.host_entry("fine", lab.hosts[0].port, "root", &[]),
                lab.host_entry("hung", lab.hosts[1].port, "root", &[]),
            ],
        )
        .unwrap();
    let run = run_probe_json(
        lab.rookery()
            .arg("probe")
            .arg("-i")
            .arg(&inv)
            .arg("--known-hosts")
            .arg(&kh)
            .args(["--timeout", "5"]),
    )
    .unwrap();
    assert_eq!(run.code, Some(4), "{run}");
    assert_eq!(run.status("fine"), "ok", "{run}");
    assert_eq!(run.status("hung"), "unreachable", "{run}");
    assert!(run.error("hung").contains("timed out after 5"), "{run}");
    assert!(run.elapsed < Duration::from_secs(40), "{run}");
}

#[test]
fn slow_request_times_out() {
    if !ready() {
        return;
    }
    let lab = SshLab::start(1).unwrap();
    let kh = lab.known_hosts("kh", &[0]).unwrap();
    let spec = lab
        .spec(&[lab.host_entry("n", lab.hosts[0].port, "root", &[])], "n")
        .unwrap();
    let connector = Connector::new(lab.connect_options(&kh).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = connector.connect("n", &spec).await.unwrap();
        let start = Instant::now();
        let e = s
            .call_with_timeout(
                rookery_proto::Request::Exec(rookery_proto::ExecRequest {
                    argv: vec!["sleep".into(), "20".into()],
                    stdin: None,
                    cwd: None,
                    env: vec![],
                    timeout_secs: Some(30),
                }),
                Duration::from_secs(1),
                &mut |_| {},
            )
            .await
            .unwrap_err();
        assert!(
            matches!(e, SessionError::Timeout { op: "exec", .. }),
            "{e:?}"
        );
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(
            e.to_string().contains("exec request timed out after 1"),
            "{e}"
        );
    });
}
