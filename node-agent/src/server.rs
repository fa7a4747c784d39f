//! The protocol server behind `rookery-agent serve`: marker line, then one JSON
//! [`RunnerFrame`] per stdin line answered by [`AgentFrame`] lines on stdout, until EOF.
//!
//! # Concurrency and deadlines
//!
//! The main thread only reads frames. Every request after Hello runs on a thread of its own
//! and writes its events and its response under one output lock, so frames never interleave
//! and a slow request (a wipe, a long command) never holds up the next one. That is the
//! simplest design that keeps one hung request from wedging the host: a read stuck in the
//! kernel (a dead disk, a FIFO nobody writes) cannot be interrupted in Linux, so no
//! cancellation scheme could free the thread, but on its own thread it holds only its slot.
//! Bounds on top of that:
//!
//! - at most [`MAX_IN_FLIGHT`] requests run at once; the reader waits for a free slot;
//! - everything that runs a program has a deadline and kills the program's process group at
//!   it (`Exec`: its `timeout_secs`, [`crate::exec::DEFAULT_TIMEOUT`] when absent; the
//!   agent's own `dmsetup`/`timedatectl` calls: short fixed deadlines), and the probe gives
//!   each device's reads a deadline of their own;
//! - `Prepare` requests run one at a time (two wipes on one host never interleave);
//! - at EOF (the runner closed the session or died) every running command's process group is
//!   killed, requests with effects (`Prepare`, `Exec`, file writes) are waited for so they end
//!   at a step boundary, and read-only requests still running after a short grace are
//!   abandoned: `main` exits.
//!
//! A malformed or oversized line gets an `Error` response and the session continues: one bad
//! frame must not cost the connection.

use std::io::{self, BufRead, Write};
use std::sync::{Arc, Condvar, Mutex};

use rookery_proto::{
    AgentError, AgentFrame, AgentMessage, ErrorCode, Event, HelloResponse, MARKER, MAX_FRAME_BYTES,
    PROTOCOL_VERSION, Request, Response, RunnerFrame,
};

use crate::{exec, files, prepare, probe};

/// Requests running at once; more wait in the reader (the runner pipelines only a few).
pub const MAX_IN_FLIGHT: usize = 32;
/// How long read-only requests still running at EOF may take to finish before they are
/// abandoned.
const EOF_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// sha256 of the running executable (via `/proc/self/exe`, which survives a rename or
/// deletion of the file on disk).
pub fn self_sha256() -> io::Result<String> {
    files::sha256_file(std::path::Path::new("/proc/self/exe"))
}

/// The output side and the bookkeeping shared by the request threads.
struct Shared<W> {
    out: Mutex<W>,
    /// The first write error: the runner is gone.
    broken: Mutex<Option<io::Error>>,
    slots: Mutex<Slots>,
    freed: Condvar,
    /// The commands this session started.
    commands: exec::Session,
}

#[derive(Default)]
struct Slots {
    running: usize,
    /// Running requests with effects, waited for at EOF.
    with_effects: usize,
}

impl<W: Write> Shared<W> {
    fn send(&self, id: u64, body: AgentMessage) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = write_frame(&mut *out, id, body) {
            let mut b = self.broken.lock().unwrap_or_else(|e| e.into_inner());
            if b.is_none() {
                *b = Some(e);
            }
        }
    }

    fn take_broken(&self) -> Option<io::Error> {
        self.broken.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

fn has_effects(r: &Request) -> bool {
    matches!(
        r,
        Request::Prepare(_) | Request::Exec(_) | Request::WriteFile(_) | Request::FileState(_)
    )
}

/// What one bounded line read gave.
enum Line {
    Eof,
    Frame,
    /// Longer than [`MAX_FRAME_BYTES`]; the whole line was consumed and discarded.
    TooLong,
}

/// `read_until(b'\n')` that never holds more than `max` bytes: an oversized line is read to
/// its end and dropped.
fn read_line_bounded<R: BufRead>(r: &mut R, buf: &mut Vec<u8>, max: usize) -> io::Result<Line> {
    buf.clear();
    let mut overflow = false;
    loop {
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            return Ok(match (overflow, buf.is_empty()) {
                (true, _) => Line::TooLong,
                (false, true) => Line::Eof,
                (false, false) => Line::Frame,
            });
        }
        let (take, done) = match avail.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        if !overflow && buf.len() + take > max + 1 {
            overflow = true;
            buf.clear();
        }
        if !overflow {
            buf.extend_from_slice(&avail[..take]);
        }
        r.consume(take);
        if done {
            return Ok(if overflow { Line::TooLong } else { Line::Frame });
        }
    }
}

/// Serves one session over `input`/`output`. Returns when `input` reaches EOF (after the
/// requests with effects finished); an error means the output side is gone (nobody is
/// listening any more).
pub fn serve<R: BufRead, W: Write + Send + 'static>(mut input: R, mut output: W) -> io::Result<()> {
    writeln!(output, "{MARKER}")?;
    output.flush()?;
    let shared = Arc::new(Shared {
        out: Mutex::new(output),
        broken: Mutex::new(None),
        slots: Mutex::new(Slots::default()),
        freed: Condvar::new(),
        commands: exec::Session::default(),
    });
    let mut greeted = false;
    let mut own_sha: Option<String> = None;
    let mut line = Vec::new();
    let result = loop {
        if let Some(e) = shared.take_broken() {
            break Err(e);
        }
        let text = match read_line_bounded(&mut input, &mut line, MAX_FRAME_BYTES) {
            Err(e) => break Err(e),
            Ok(Line::Eof) => break Ok(()),
            Ok(Line::TooLong) => {
                let err = bad_request(format!(
                    "request frame larger than the limit of {} MiB",
                    MAX_FRAME_BYTES >> 20
                ));
                shared.send(0, AgentMessage::Response(err));
                continue;
            }
            Ok(Line::Frame) => match std::str::from_utf8(&line) {
                Ok(t) => t.trim(),
                Err(_) => {
                    let err = bad_request("frame is not UTF-8".into());
                    shared.send(0, AgentMessage::Response(err));
                    continue;
                }
            },
        };
        if text.is_empty() {
            continue;
        }
        let frame: RunnerFrame = match rookery_proto::frame::decode_runner_frame(text.as_bytes()) {
            Ok(f) => f,
            Err(e) => {
                // Answer with the id if the frame got that far, so the runner's waiter wakes.
                let err = bad_request(format!("cannot parse request frame: {e}"));
                shared.send(e.id.unwrap_or(0), AgentMessage::Response(err));
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
                spawn_request(&shared, id, request);
                continue;
            }
        };
        shared.send(id, AgentMessage::Response(response));
    };
    // The runner is gone: stop every command it started, let the requests with effects end
    // at a step boundary, abandon read-only ones that are stuck.
    shared.commands.end();
    let grace_end = std::time::Instant::now() + EOF_GRACE;
    let mut slots = shared.slots.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let now = std::time::Instant::now();
        let wait = if slots.with_effects > 0 {
            std::time::Duration::from_secs(1)
        } else if slots.running > 0 && now < grace_end {
            grace_end - now
        } else {
            break;
        };
        slots = shared
            .freed
            .wait_timeout(slots, wait)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    drop(slots);
    match shared.take_broken() {
        Some(e) if result.is_ok() => Err(e),
        _ => result,
    }
}

/// Runs one request on its own thread once a slot is free.
fn spawn_request<W: Write + Send + 'static>(shared: &Arc<Shared<W>>, id: u64, request: Request) {
    let effects = has_effects(&request);
    {
        let mut slots = shared.slots.lock().unwrap_or_else(|e| e.into_inner());
        while slots.running >= MAX_IN_FLIGHT {
            slots = shared.freed.wait(slots).unwrap_or_else(|e| e.into_inner());
        }
        slots.running += 1;
        if effects {
            slots.with_effects += 1;
        }
    }
    let sh = shared.clone();
    let work = move || {
        let response = handle(request, &sh.commands, &mut |ev| {
            sh.send(id, AgentMessage::Event(ev))
        });
        sh.send(id, AgentMessage::Response(response));
        let mut slots = sh.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.running -= 1;
        if effects {
            slots.with_effects -= 1;
        }
        sh.freed.notify_all();
    };
    if let Err(e) = std::thread::Builder::new()
        .name(format!("request-{id}"))
        .spawn(work)
    {
        let mut slots = shared.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.running -= 1;
        if effects {
            slots.with_effects -= 1;
        }
        drop(slots);
        let err = error(
            ErrorCode::Internal,
            format!("cannot start a thread for the request: {e}"),
        );
        shared.send(id, AgentMessage::Response(err));
    }
}

/// Dispatches one request (after the handshake); commands it runs belong to `commands`.
pub fn handle(request: Request, commands: &exec::Session, emit: &mut dyn FnMut(Event)) -> Response {
    fn wrap<T>(r: Result<T, AgentError>, ok: impl FnOnce(T) -> Response) -> Response {
        match r {
            Ok(v) => ok(v),
            Err(e) => Response::Error(e),
        }
    }
    match request {
        Request::Hello(_) => error(ErrorCode::BadRequest, "hello was already answered".into()),
        Request::Probe(p) => Response::Probe(Box::new(probe::probe_host(&p))),
        Request::Exec(e) => wrap(exec::exec(&e, commands), Response::Exec),
        Request::Stat(s) => wrap(files::stat(&s), Response::Stat),
        Request::ReadFile(r) => wrap(files::read_file(&r), Response::ReadFile),
        Request::WriteFile(w) => wrap(files::write_file(&w), Response::WriteFile),
        Request::FileState(f) => wrap(files::file_state(&f), Response::FileState),
        Request::Prepare(p) => {
            // One wipe at a time per host, whatever the runner sends.
            static PREPARE: Mutex<()> = Mutex::new(());
            let _one = PREPARE.lock().unwrap_or_else(|e| e.into_inner());
            prepare::handle_prepare(&p, emit)
        }
        Request::Readiness(r) => prepare::handle_readiness(&r),
    }
}

fn error(code: ErrorCode, message: String) -> Response {
    Response::Error(AgentError { code, message })
}

fn bad_request(message: String) -> Response {
    error(ErrorCode::BadRequest, message)
}

/// Writes one frame. A response that would pass [`MAX_FRAME_BYTES`] (which the runner would
/// refuse, closing the session) is replaced by an error saying so; an oversized event is
/// dropped with a note on stderr.
fn write_frame<W: Write>(out: &mut W, id: u64, body: AgentMessage) -> io::Result<()> {
    let is_response = matches!(body, AgentMessage::Response(_));
    let frame = AgentFrame { id, body };
    let mut json = serde_json::to_string(&frame).map_err(io::Error::other)?;
    if json.len() > MAX_FRAME_BYTES {
        if !is_response {
            eprintln!(
                "rookery-agent: dropped an event of {} bytes for request {id}",
                json.len()
            );
            return Ok(());
        }
        let err = error(
            ErrorCode::Io,
            format!(
                "the response is {} MiB, more than the frame limit of {} MiB (for a command, \
                 redirect its output to a file on the host)",
                json.len() >> 20,
                MAX_FRAME_BYTES >> 20
            ),
        );
        let frame = AgentFrame {
            id,
            body: AgentMessage::Response(err),
        };
        json = serde_json::to_string(&frame).map_err(io::Error::other)?;
    }
    out.write_all(json.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_proto::{ExecRequest, HelloRequest, StatRequest};

    /// An output the request threads can share with the test.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The runner's side of a session: `lines`, then EOF only once `want` frames came back
    /// (a runner closes after its answers; EOF before them would end the commands).
    struct Input {
        data: std::io::Cursor<Vec<u8>>,
        out: Buf,
        want: usize,
    }

    impl io::Read for Input {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.data.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            let start = std::time::Instant::now();
            loop {
                let have = String::from_utf8_lossy(&self.out.0.lock().unwrap())
                    .lines()
                    .count()
                    .saturating_sub(1);
                if have >= self.want || start.elapsed() > std::time::Duration::from_secs(30) {
                    return Ok(0);
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }

    fn run(lines: &[String]) -> Vec<AgentFrame> {
        run_until(lines, lines.len())
    }

    fn run_until(lines: &[String], want: usize) -> Vec<AgentFrame> {
        let out = Buf::default();
        let input = Input {
            data: std::io::Cursor::new((lines.join("\n") + "\n").into_bytes()),
            out: out.clone(),
            want,
        };
        serve(io::BufReader::new(input), out.clone()).unwrap();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
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
    fn oversized_frame_is_refused_and_the_session_goes_on() {
        let big = format!(
            r#"{{"id":5,"request":{{"op":"stat","args":{{"path":"{}"}}}}}}"#,
            "a".repeat(MAX_FRAME_BYTES + 10)
        );
        let f = run(&[
            frame(1, hello()),
            big,
            frame(
                2,
                Request::Stat(StatRequest {
                    path: "/".into(),
                    checksum: false,
                }),
            ),
        ]);
        assert_eq!(f.len(), 3, "{f:?}");
        match &f[1].body {
            AgentMessage::Response(Response::Error(e)) => {
                assert_eq!(e.code, ErrorCode::BadRequest);
                assert!(
                    e.message.contains("larger than the limit of 64 MiB"),
                    "{e:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&f[2].body, AgentMessage::Response(Response::Stat(s)) if s.exists));
    }

    #[test]
    fn a_hung_request_does_not_hold_up_the_next_one() {
        // Reading a FIFO nobody writes blocks in the kernel: a real stuck read.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let lines = [
            frame(1, hello()),
            frame(
                2,
                Request::ReadFile(rookery_proto::ReadFileRequest {
                    path: fifo.to_string_lossy().into_owned(),
                    max_bytes: 10,
                }),
            ),
            frame(
                3,
                Request::Stat(StatRequest {
                    path: "/".into(),
                    checksum: false,
                }),
            ),
        ];
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(run_until(&lines, 2));
        });
        let f = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the session ends although one request is stuck");
        let ids: Vec<u64> = f.iter().map(|f| f.id).collect();
        assert_eq!(
            ids,
            vec![1, 3],
            "the stat is answered, the stuck read is not"
        );
        // Release the stuck reader.
        let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
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
