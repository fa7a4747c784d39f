//! A server that authenticates and then never confirms the session channel (or never answers
//! the exec request), while still answering keepalives, must cost a host a timeout, not the
//! run: opening the channel is bounded by the connect timeout like the handshake, and the
//! agent's start-up by the command timeout.
//!
//! OpenSSH's sshd cannot be made to stall exactly there, so the server is russh's own server
//! implementation (a real SSH server over TCP on loopback) whose handler holds the channel
//! open request, or the exec request, without answering.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rookery_tests::require::prerequisite;
use rookery_tests::sshd::{SshLab, missing_prerequisite};
use rookery_transport::{ConnectError, Connector};
use russh::server::{Auth, ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelId};

fn ready() -> bool {
    // Root is not needed, but the lab's key generation and layout are shared with sshd tests.
    let missing = missing_prerequisite();
    prerequisite(missing.is_none(), missing.as_deref().unwrap_or(""))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stall {
    ChannelOpen,
    Exec,
}

/// Holds what it must never answer, so nothing is answered by a drop either.
#[derive(Clone)]
struct Stalling {
    how: Stall,
    held: Arc<Mutex<Vec<ChannelOpenHandle>>>,
    channels: Arc<Mutex<Vec<Channel<Msg>>>>,
}

impl russh::server::Handler for Stalling {
    type Error = russh::Error;

    async fn auth_publickey(
        &mut self,
        _user: &str,
        _key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        match self.how {
            Stall::ChannelOpen => self.held.lock().unwrap().push(reply),
            Stall::Exec => reply.accept().await,
        }
        self.channels.lock().unwrap().push(channel);
        Ok(())
    }

    async fn exec_request(
        &mut self,
        _channel: ChannelId,
        _data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // No channel_success: the client's exec(want_reply) waits for ever.
        Ok(())
    }
}

fn serve(how: Stall, host_key: russh::keys::PrivateKey) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let config = Arc::new(russh::server::Config {
        keys: vec![host_key],
        auth_rejection_time: Duration::from_millis(10),
        auth_rejection_time_initial: Some(Duration::ZERO),
        ..Default::default()
    });
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let handler = Stalling {
                how,
                held: Arc::default(),
                channels: Arc::default(),
            };
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (config, handler) = (config.clone(), handler.clone());
                tokio::spawn(async move {
                    if let Ok(s) = russh::server::run_stream(config, sock, handler).await {
                        let _ = s.await;
                    }
                });
            }
        });
    });
    port
}

fn stalls_for(how: Stall) -> (ConnectError, Duration) {
    let lab = SshLab::empty().unwrap();
    let key_path = lab.path().join("stall_host_key");
    rookery_tests::sshd::keygen(&key_path, "").unwrap();
    let host_key = russh::keys::load_secret_key(&key_path, None).unwrap();
    let port = serve(how, host_key);
    let public = std::fs::read_to_string(key_path.with_extension("pub")).unwrap();
    let mut f = public.split_whitespace();
    let kh = lab
        .write(
            "kh",
            &format!(
                "[127.0.0.1]:{port} {} {}\n",
                f.next().unwrap(),
                f.next().unwrap()
            ),
        )
        .unwrap();
    let spec = lab
        .spec(&[lab.host_entry("stall", port, "root", &[])], "stall")
        .unwrap();
    let mut opts = lab.connect_options(&kh).unwrap();
    opts.connect_timeout = Duration::from_secs(2);
    opts.command_timeout = Duration::from_secs(3);
    let connector = Connector::new(opts);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let start = Instant::now();
    let r = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), connector.connect("stall", &spec)).await
    });
    let e = match r {
        Err(_) => panic!("the connection hung past 60 s"),
        Ok(Ok(_)) => panic!("a stalling server cannot give an agent session"),
        Ok(Err(e)) => e,
    };
    (e, start.elapsed())
}

#[test]
fn channel_open_that_is_never_confirmed_times_out() {
    if !ready() {
        return;
    }
    let (e, _) = stalls_for(Stall::ChannelOpen);
    assert!(matches!(e, ConnectError::Timeout { .. }), "{e:?}");
    assert!(
        e.to_string().contains(
            "stall: connect (opening an SSH session channel for the agent) timed out after 2s"
        ),
        "{e}"
    );
}

/// russh sends the exec request without waiting for its reply; the agent's start-up (no
/// marker within the command timeout) is what bounds a server that never runs the command.
#[test]
fn exec_that_is_never_answered_times_out() {
    if !ready() {
        return;
    }
    let (e, took) = stalls_for(Stall::Exec);
    assert!(matches!(e, ConnectError::Timeout { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("stall: starting the agent timed out after 3s"),
        "{e}"
    );
    assert!(took < Duration::from_secs(50), "{took:?}");
}
