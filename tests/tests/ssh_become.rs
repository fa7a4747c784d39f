//! Become via sudo as a non-root login user: with the password sent on stdin (never argv),
//! with NOPASSWD, and the clear errors when the password is missing or wrong.

use rookery_diagnostic::Diagnostic;
use rookery_tests::require::{have_program, prerequisite};
use rookery_tests::sshd::{SshLab, Sudo, ensure_user, missing_prerequisite};
use rookery_transport::{ConnectError, Connector};

fn ready() -> bool {
    let missing = missing_prerequisite()
        .or_else(|| (!have_program("sudo")).then(|| "sudo (apt-get install sudo)".to_string()));
    prerequisite(missing.is_none(), missing.as_deref().unwrap_or(""))
}

const PW: &str = "Rk-become-9x";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
}

#[test]
fn sudo_with_password_on_stdin() {
    if !ready() {
        return;
    }
    let user = ensure_user("rkt-sudopw", PW, Sudo::Password).unwrap();
    let lab = SshLab::start(1).unwrap();
    let kh = lab.known_hosts("kh", &[0]).unwrap();
    let port = lab.hosts[0].port;
    let ok = lab.host_entry(
        "n",
        port,
        &user.name,
        &[
            "ansible_become: true",
            &format!("ansible_become_password: {PW}"),
        ],
    );
    let spec = lab.spec(&[ok], "n").unwrap();
    let connector = Connector::new(lab.connect_options(&kh).unwrap());
    rt().block_on(async {
        let s = connector
            .connect("n", &spec)
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(s.hello().euid, 0, "become gives root");
        // A request through the sudo'd agent works.
        let r = s
            .call(rookery_proto::Request::Exec(rookery_proto::ExecRequest {
                argv: vec!["id".into(), "-u".into()],
                stdin: None,
                cwd: None,
                env: vec![],
                timeout_secs: Some(10),
            }))
            .await
            .unwrap();
        match r {
            rookery_proto::Response::Exec(x) => assert_eq!(x.stdout.trim(), "0"),
            other => panic!("{other:?}"),
        }
        s.close().await;
    });
    // The password never reaches the remote command line (sshd logs the command at VERBOSE
    // only as a session; check the log anyway) nor any output.
    assert!(!lab.hosts[0].log().contains(PW));

    // Wrong password: a clear become error, not a hang.
    let bad = lab.host_entry(
        "n",
        port,
        &user.name,
        &["ansible_become: true", "ansible_become_password: wrong-pw"],
    );
    let spec = lab.spec(&[bad], "n").unwrap();
    let e = rt().block_on(connector.connect("n", &spec)).unwrap_err();
    assert!(matches!(e, ConnectError::BecomeFailed { .. }), "{e:?}");
    assert!(e.to_string().contains("rejected"), "{e}");
    assert!(!e.to_string().contains("wrong-pw"));

    // No password although sudo needs one: sudo -n fails fast with a clear message.
    let none = lab.host_entry("n", port, &user.name, &["ansible_become: true"]);
    let spec = lab.spec(&[none], "n").unwrap();
    let e = rt().block_on(connector.connect("n", &spec)).unwrap_err();
    assert!(matches!(e, ConnectError::BecomeFailed { .. }), "{e:?}");
    assert!(e.to_string().contains("needs a password"), "{e}");
    assert!(e.hint().is_some());
}

#[test]
fn sudo_nopasswd_and_plain_user() {
    if !ready() {
        return;
    }
    let user = ensure_user("rkt-sudonp", PW, Sudo::NoPassword).unwrap();
    let lab = SshLab::start(1).unwrap();
    let kh = lab.known_hosts("kh", &[0]).unwrap();
    let port = lab.hosts[0].port;
    let connector = Connector::new(lab.connect_options(&kh).unwrap());
    let become_ = lab.host_entry("n", port, &user.name, &["ansible_become: true"]);
    let plain = lab.host_entry("n", port, &user.name, &[]);
    rt().block_on(async {
        let s = connector
            .connect("n", &lab.spec(&[become_], "n").unwrap())
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(s.hello().euid, 0);
        s.close().await;
        let s = connector
            .connect("n", &lab.spec(&[plain], "n").unwrap())
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_ne!(
            s.hello().euid,
            0,
            "without become the agent runs as the login user"
        );
        s.close().await;
    });
}

/// The become password goes only to a host whose key was verified in known_hosts. On first
/// contact under accept-new the key is recorded but the password is withheld (sudo runs with
/// `-n` and says a password is required), so the next run, against a now known key, sends
/// it; with host-key checking off it is never sent, while a NOPASSWD host still works.
#[test]
fn become_password_only_to_verified_hosts() {
    if !ready() {
        return;
    }
    let user = ensure_user("rkt-tofu", PW, Sudo::Password).unwrap();
    let nopw = ensure_user("rkt-tofu-nopw", PW, Sudo::NoPassword).unwrap();
    let lab = SshLab::start(1).unwrap();
    let port = lab.hosts[0].port;
    let entry = |name: &str| {
        lab.host_entry(
            "n",
            port,
            name,
            &[
                "ansible_become: true",
                &format!("ansible_become_password: {PW}"),
            ],
        )
    };
    let spec = lab.spec(&[entry(&user.name)], "n").unwrap();
    let kh = lab.write("kh-empty", "").unwrap();

    // First contact, accept-new: recorded, password withheld.
    let mut opts = lab.connect_options(&kh).unwrap();
    opts.accept_new_host_keys = true;
    let connector = Connector::new(opts.clone());
    let e = rt().block_on(connector.connect("n", &spec)).unwrap_err();
    assert!(matches!(e, ConnectError::BecomeFailed { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("it was not sent") && text.contains("seen for the first time"),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&kh).unwrap().lines().count(), 1);

    // Second run: the key is known now, the password goes to sudo and become works.
    let connector = Connector::new(opts);
    let s = rt()
        .block_on(connector.connect("n", &spec))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(s.hello().euid, 0);
    rt().block_on(s.close());

    // Checking off: never sent, even though the key is in the file it would be checked in.
    let kh2 = lab.write("kh-empty-2", "").unwrap();
    let mut opts = lab.connect_options(&kh2).unwrap();
    opts.insecure_ignore_host_keys = true;
    let connector = Connector::new(opts);
    let e = rt().block_on(connector.connect("n", &spec)).unwrap_err();
    assert!(
        e.to_string().contains("not sent") && e.to_string().contains("not verified"),
        "{e}"
    );
    assert!(
        std::fs::read_to_string(&kh2).unwrap().is_empty(),
        "nothing recorded when checking is off"
    );
    // A NOPASSWD host needs no password: it still works unverified.
    let spec = lab.spec(&[entry(&nopw.name)], "n").unwrap();
    let s = rt()
        .block_on(connector.connect("n", &spec))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(s.hello().euid, 0);
    rt().block_on(s.close());
}
