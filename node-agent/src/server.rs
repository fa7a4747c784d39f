//! The protocol server behind `rookery-agent serve`: marker line, then one JSON
//! [`RunnerFrame`] per stdin line answered by [`AgentFrame`] lines on stdout, until EOF.
//!
//! Requests are handled one after another; a slow request (a wipe) streams `Event` frames
//! with its id before its response so the runner can show progress. A malformed line gets an
//! `Error` response and the session continues: one bad frame must not cost the connection.

use std::io::{self, BufRead, Write};

use rookery_proto::{
    AgentError, AgentFrame, AgentMessage, ErrorCode, Event, HelloResponse, MARKER,
    PROTOCOL_VERSION, Request, Response, RunnerFrame,
};

use crate::{exec, files, prepare, probe};

/// sha256 of the running executable (via `/proc/self/exe`, which survives a rename or
/// deletion of the file on disk).
pub fn self_sha256() -> io::Result<String> {
    files::sha256_file(std::path::Path::new("/proc/self/exe"))
}

/// Serves one session over `input`/`output`. Returns when `input` reaches EOF; an error
/// means the output side is gone (nobody is listening any more).
pub fn serve<R: BufRead, W: Write>(mut input: R, mut output: W) -> io::Result<()> {
    writeln!(output, "{MARKER}")?;
    output.flush()?;
    let mut greeted = false;
    let mut own_sha: Option<String> = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let text = match std::str::from_utf8(&line) {
            Ok(t) => t.trim(),
            Err(_) => {
                let err = bad_request("frame is not UTF-8".into());
                write_frame(&mut output, 0, AgentMessage::Response(err))?;
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        let frame: RunnerFrame = match rookery_proto::frame::decode_runner_frame(text.as_bytes()) {
            Ok(f) => f,
            Err(e) => {
                // Answer with the id if the frame got that far, so the runner's waiter wakes.
                let err = bad_request(format!("cannot parse request frame: {e}"));
                write_frame(&mut output, e.id.unwrap_or(0), AgentMessage::Response(err))?;
                continue;
            }
        };
        let id = frame.id;
        let response = match frame.request {
            Request::Hello(h) => {
                if h.protocol_version != PROTOCOL_VERSION {
                    error(
                        ErrorCode::ProtocolMismatch,
                        format!(
                            "runner {} speaks protocol {}, agent {} speaks {PROTOCOL_VERSION}",
                            h.runner_version,
                            h.protocol_version,
                            env!("CARGO_PKG_VERSION")
                        ),
                    )
                } else {
                    greeted = true;
                    if own_sha.is_none() {
                        own_sha = self_sha256().ok();
                    }
                    Response::Hello(HelloResponse {
                        protocol_version: PROTOCOL_VERSION,
                        agent_version: env!("CARGO_PKG_VERSION").to_string(),
                        self_sha256: own_sha.clone(),
                        euid: nix::unistd::geteuid().as_raw(),
                    })
                }
            }
            _ if !greeted => error(
                ErrorCode::ProtocolMismatch,
                "the first request must be hello".into(),
            ),
            request => {
                let mut sink_err: Option<io::Error> = None;
                let out = &mut output;
                let mut emit = |ev: Event| {
                    if sink_err.is_none()
                        && let Err(e) = write_frame(out, id, AgentMessage::Event(ev))
                    {
                        sink_err = Some(e);
                    }
                };
                let r = handle(request, &mut emit);
                if let Some(e) = sink_err {
                    return Err(e);
                }
                r
            }
        };
        write_frame(&mut output, id, AgentMessage::Response(response))?;
    }
}

/// Dispatches one request (after the handshake).
pub fn handle(request: Request, emit: &mut dyn FnMut(Event)) -> Response {
    fn wrap<T>(r: Result<T, AgentError>, ok: impl FnOnce(T) -> Response) -> Response {
        match r {
            Ok(v) => ok(v),
            Err(e) => Response::Error(e),
        }
    }
    match request {
        Request::Hello(_) => error(ErrorCode::BadRequest, "hello was already answered".into()),
        Request::Probe(p) => Response::Probe(Box::new(probe::probe_host(&p))),
        Request::Exec(e) => wrap(exec::exec(&e), Response::Exec),
        Request::Stat(s) => wrap(files::stat(&s), Response::Stat),
        Request::ReadFile(r) => wrap(files::read_file(&r), Response::ReadFile),
        Request::WriteFile(w) => wrap(files::write_file(&w), Response::WriteFile),
        Request::FileState(f) => wrap(files::file_state(&f), Response::FileState),
        Request::Prepare(p) => prepare::handle_prepare(&p, emit),
        Request::Readiness(r) => prepare::handle_readiness(&r),
    }
}

fn error(code: ErrorCode, message: String) -> Response {
    Response::Error(AgentError { code, message })
}

fn bad_request(message: String) -> Response {
    error(ErrorCode::BadRequest, message)
}

fn write_frame<W: Write>(out: &mut W, id: u64, body: AgentMessage) -> io::Result<()> {
    let frame = AgentFrame { id, body };
    let json = serde_json::to_string(&frame).map_err(io::Error::other)?;
    out.write_all(json.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_proto::{ExecRequest, HelloRequest, StatRequest};

    fn run(lines: &[String]) -> Vec<AgentFrame> {
        let input = lines.join("\n") + "\n";
        let mut out = Vec::new();
        serve(input.as_bytes(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut it = text.lines();
        assert_eq!(it.next(), Some(MARKER));
        it.map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn frame(id: u64, request: Request) -> String {
        serde_json::to_string(&RunnerFrame { id, request }).unwrap()
    }

    fn hello() -> Request {
        Request::Hello(HelloRequest {
            protocol_version: PROTOCOL_VERSION,
            runner_version: "test".into(),
        })
    }

    #[test]
    fn hello_first_then_requests() {
        let stat = Request::Stat(StatRequest {
            path: "/".into(),
            checksum: false,
        });
        let f = run(&[
            frame(1, stat.clone()),
            frame(2, hello()),
            "{not json".into(),
            r#"{"id":9,"request":{"op":"nope"}}"#.into(),
            frame(3, stat),
        ]);
        assert_eq!(f.len(), 5);
        assert!(matches!(
            &f[0].body,
            AgentMessage::Response(Response::Error(AgentError {
                code: ErrorCode::ProtocolMismatch,
                ..
            }))
        ));
        match &f[1].body {
            AgentMessage::Response(Response::Hello(h)) => {
                assert_eq!(h.protocol_version, PROTOCOL_VERSION);
                assert_eq!(h.agent_version, env!("CARGO_PKG_VERSION"));
                assert_eq!(h.self_sha256.as_ref().map(|s| s.len()), Some(64));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(f[2].id, 0);
        assert!(matches!(
            &f[2].body,
            AgentMessage::Response(Response::Error(AgentError {
                code: ErrorCode::BadRequest,
                ..
            }))
        ));
        assert_eq!(f[3].id, 9);
        assert!(matches!(&f[4].body, AgentMessage::Response(Response::Stat(s)) if s.exists));
    }

    #[test]
    fn exec_over_the_protocol() {
        let f = run(&[
            frame(1, hello()),
            frame(
                2,
                Request::Exec(ExecRequest {
                    argv: vec!["/bin/echo".into(), "hi".into()],
                    stdin: None,
                    cwd: None,
                    env: vec![],
                    timeout_secs: Some(10),
                }),
            ),
        ]);
        match &f[1].body {
            AgentMessage::Response(Response::Exec(r)) => {
                assert_eq!(r.rc, Some(0));
                assert_eq!(r.stdout, "hi\n");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wrong_protocol_version_is_refused() {
        let f = run(&[frame(
            1,
            Request::Hello(HelloRequest {
                protocol_version: PROTOCOL_VERSION + 1,
                runner_version: "future".into(),
            }),
        )]);
        assert!(matches!(
            &f[0].body,
            AgentMessage::Response(Response::Error(AgentError {
                code: ErrorCode::ProtocolMismatch,
                ..
            }))
        ));
    }
}
