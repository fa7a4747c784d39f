//! One SSH connection per host, reused: many requests (some concurrent) over one agent
//! session, and sshd sees a single login.

use rookery_proto::{ExecRequest, Request, Response};
use rookery_tests::require::prerequisite;
use rookery_tests::sshd::{SshLab, missing_prerequisite};
use rookery_transport::Connector;

fn ready() -> bool {
    let missing = missing_prerequisite();
    prerequisite(missing.is_none(), missing.as_deref().unwrap_or(""))
}

fn echo(i: usize) -> Request {
    Request::Exec(ExecRequest {
        argv: vec!["echo".into(), format!("call-{i}")],
        stdin: None,
        cwd: None,
        env: vec![],
        timeout_secs: Some(10),
    })
}

#[test]
fn many_requests_one_connection() {
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
        // Sequential steps.
        for i in 0..5 {
            match s.call(echo(i)).await.unwrap() {
                Response::Exec(r) => assert_eq!(r.stdout.trim(), format!("call-{i}")),
                other => panic!("{other:?}"),
            }
        }
        // Concurrent steps from several tasks, each getting its own answer back.
        let mut tasks = Vec::new();
        for i in 5..25 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move { (i, s.call(echo(i)).await) }));
        }
        for t in tasks {
            let (i, r) = t.await.unwrap();
            match r.unwrap() {
                Response::Exec(r) => assert_eq!(r.stdout.trim(), format!("call-{i}")),
                other => panic!("{other:?}"),
            }
        }
        s.close().await;
    });
    let log = lab.hosts[0].log();
    assert_eq!(
        log.matches("Accepted publickey").count(),
        1,
        "a single SSH login for all requests:\n{log}"
    );
}
