//! The agent session: the runner side of the JSON-lines protocol in `rookery-proto`, over any
//! byte pipe pair (an SSH exec channel or a local child's stdin/stdout).
//!
//! One reader task owns the agent's stdout and routes each frame to the caller waiting for that
//! request id, so several requests can be in flight on one connection (pipelining) while each
//! caller still sees its own progress events in order. Start-up is handled here too: skipping
//! shell noise up to the marker, answering a sudo password prompt, and telling "agent missing
//! or corrupt, upload it" apart from real failures by the exit code.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, OnceLock};
use std::time::Duration;

use rookery_proto::{
    AgentMessage, EXIT_NEED_UPLOAD, EXIT_SELF_CHECK_FAILED, Event, HelloRequest, HelloResponse,
    MARKER, MAX_FRAME_BYTES, PROTOCOL_VERSION, Request, RequestId, Response, RunnerFrame,
};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::error::SessionError;

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
pub(crate) type BoxRead = Pin<Box<dyn AsyncRead + Send>>;
pub(crate) type BoxWrite = Pin<Box<dyn AsyncWrite + Send>>;

/// Bytes of shell noise tolerated before the marker. rc files print a few lines; a megabyte
/// means the agent never started (e.g. a login shell stuck in a menu).
const MAX_NOISE: usize = 1 << 20;
/// Stderr kept for error messages (the end is what explains a failure).
const STDERR_TAIL: usize = 16 * 1024;
/// Messages queued for one request before the reader waits for its caller: an agent that
/// floods events then slows down to the caller's pace instead of filling memory.
const REQUEST_QUEUE: usize = 64;
/// How much longer than an `Exec`'s own deadline the runner waits for its answer: the agent
/// kills the process group at the deadline and then reports `timed_out` with the output.
const EXEC_GRACE: Duration = Duration::from_secs(10);

/// How the remote (or local) process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<String>,
}

impl std::fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.code, &self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "signal {s}"),
            (None, None) => write!(f, "unknown exit status"),
        }
    }
}

/// What keeps the agent's transport alive (child process, SSH connection); released on close.
pub(crate) trait Backing: Send + Sync + 'static {
    /// Called after stdin reached EOF: wait briefly for the agent to exit, then release.
    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// A started agent process before the handshake.
pub(crate) struct AgentProcess {
    pub stdin: BoxWrite,
    pub stdout: BoxRead,
    pub stderr: mpsc::UnboundedReceiver<Vec<u8>>,
    pub exit: watch::Receiver<Option<ExitInfo>>,
    pub backing: Box<dyn Backing>,
}

/// sudo's password prompt (a per-connection nonce) and the password to answer it with.
#[derive(Clone)]
pub(crate) struct BecomePrompt {
    pub prompt: String,
    pub password: String,
}

/// Why start-up failed; the transport decides what to do (upload, report).
#[derive(Debug)]
pub(crate) enum StartError {
    /// The bootstrap said the agent is missing or corrupt (exit 86/87): upload and retry. The
    /// second field is the host's architecture when the bootstrap reported it.
    NeedUpload(String, Option<String>),
    /// The bootstrap found no agent for the host's architecture (exit 88): what `uname -m`
    /// printed.
    NoAgentForArch(String),
    /// The upload script failed (exit 85): the detail is its stderr.
    Upload(String),
    Become(String),
    Failed(String),
    /// The process ended before the marker for no reason we recognise; `code` is its exit
    /// status (126: not executable).
    Exited {
        code: Option<i32>,
        detail: String,
    },
    Timeout(Duration),
    Session(SessionError),
}

#[derive(Default)]
struct Pending {
    map: HashMap<RequestId, mpsc::Sender<Incoming>>,
    closed: Option<String>,
}

enum Incoming {
    Msg(Box<AgentMessage>),
    Bad(String),
}

#[derive(Clone, Default)]
pub(crate) struct StderrTail(Arc<StdMutex<Vec<u8>>>);

impl StderrTail {
    fn push(&self, data: &[u8]) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        t.extend_from_slice(data);
        if t.len() > STDERR_TAIL {
            let cut = t.len() - STDERR_TAIL;
            t.drain(..cut);
        }
    }

    pub(crate) fn text(&self) -> String {
        let t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&t).trim().to_string()
    }

    /// The last few lines, for one-line error messages.
    pub(crate) fn last_lines(&self, n: usize) -> String {
        let text = self.text();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(n)..].join(" | ")
    }
}

struct Inner {
    host: String,
    writer: tokio::sync::Mutex<Option<BoxWrite>>,
    pending: Arc<StdMutex<Pending>>,
    next_id: AtomicU64,
    hello: OnceLock<HelloResponse>,
    uploaded: bool,
    command_timeout: Duration,
    stderr: StderrTail,
    reader: StdMutex<Option<JoinHandle<()>>>,
    backing: tokio::sync::Mutex<Option<Box<dyn Backing>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(h) = self
            .reader
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            h.abort();
        }
    }
}

/// A running agent on one host. Cheap to clone; all clones share one connection, and requests
/// from several tasks are pipelined over it.
#[derive(Clone)]
pub struct AgentSession {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AgentSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSession")
            .field("host", &self.inner.host)
            .field("hello", &self.inner.hello.get())
            .field("uploaded", &self.inner.uploaded)
            .finish()
    }
}

/// Name of a request for messages ("probe request timed out").
pub fn op_name(req: &Request) -> &'static str {
    match req {
        Request::Hello(_) => "hello",
        Request::Probe(_) => "probe",
        Request::Exec(_) => "exec",
        Request::Stat(_) => "stat",
        Request::ReadFile(_) => "read_file",
        Request::WriteFile(_) => "write_file",
        Request::FileState(_) => "file_state",
        Request::Prepare(_) => "prepare",
        Request::Readiness(_) => "readiness",
    }
}

impl AgentSession {
    /// The host name (inventory name) this session talks to.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// The agent's answer to Hello (version, euid, its own sha256).
    pub fn hello(&self) -> &HelloResponse {
        // start() sets it before handing the session out.
        self.inner.hello.get_or_init(|| HelloResponse {
            protocol_version: PROTOCOL_VERSION,
            agent_version: String::new(),
            self_sha256: None,
            euid: u32::MAX,
        })
    }

    /// True when the agent binary was (re)uploaded while connecting.
    pub fn uploaded(&self) -> bool {
        self.inner.uploaded
    }

    /// The silence allowed while waiting for the agent (`--timeout`); modules use it as the
    /// default deadline of the commands they run.
    pub fn command_timeout(&self) -> Duration {
        self.inner.command_timeout
    }

    /// The agent's recent stderr (its logs), for diagnostics.
    pub fn stderr_tail(&self) -> String {
        self.inner.stderr.text()
    }

    /// Send one request and wait for its response. `Response::Error` is returned as `Ok`: the
    /// transport worked, the operation did not (see [`AgentSession::call_ok`]).
    pub async fn call(&self, req: Request) -> Result<Response, SessionError> {
        self.call_with_events(req, &mut |_| {}).await
    }

    /// Like [`AgentSession::call`], but turns `Response::Error` into [`SessionError::Agent`].
    pub async fn call_ok(&self, req: Request) -> Result<Response, SessionError> {
        let op = op_name(&req);
        match self.call(req).await? {
            Response::Error(error) => Err(SessionError::Agent {
                host: self.inner.host.clone(),
                op,
                error,
            }),
            r => Ok(r),
        }
    }

    /// Send one request; `on_event` sees its progress events as they arrive. The command
    /// timeout bounds the silence between messages, not the whole request, so a long
    /// operation that reports progress is not cut off. An `Exec` with its own deadline is
    /// waited for at least that long (plus a grace period): the agent enforces the deadline
    /// and answers `timed_out`, which says more than a runner-side timeout would.
    pub async fn call_with_events(
        &self,
        req: Request,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<Response, SessionError> {
        let mut timeout = self.inner.command_timeout;
        if let Request::Exec(e) = &req
            && let Some(secs) = e.timeout_secs
        {
            timeout = timeout.max(Duration::from_secs(secs).saturating_add(EXEC_GRACE));
        }
        self.call_inner(req, on_event, timeout).await
    }

    /// Like [`AgentSession::call_with_events`] with an explicit silence timeout for this call.
    pub async fn call_with_timeout(
        &self,
        req: Request,
        timeout: Duration,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<Response, SessionError> {
        self.call_inner(req, on_event, timeout).await
    }

    async fn call_inner(
        &self,
        req: Request,
        on_event: &mut (dyn FnMut(Event) + Send),
        timeout: Duration,
    ) -> Result<Response, SessionError> {
        let inner = &self.inner;
        let op = op_name(&req);
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::channel(REQUEST_QUEUE);
        {
            let mut p = inner.pending.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(reason) = &p.closed {
                return Err(self.closed_error(reason));
            }
            p.map.insert(id, tx);
        }
        // Removes the entry on every exit path, including the caller dropping this future.
        let _guard = PendingGuard {
            pending: inner.pending.clone(),
            id,
        };
        let mut line = serde_json::to_vec(&RunnerFrame { id, request: req }).map_err(|e| {
            SessionError::Protocol {
                host: inner.host.clone(),
                detail: format!("cannot encode the {op} request: {e}"),
            }
        })?;
        line.push(b'\n');
        {
            let mut w = inner.writer.lock().await;
            let Some(w) = w.as_mut() else {
                return Err(self.closed_error("the session was closed"));
            };
            let res = async {
                w.write_all(&line).await?;
                w.flush().await
            }
            .await;
            if let Err(source) = res {
                return Err(SessionError::Write {
                    host: inner.host.clone(),
                    source,
                });
            }
        }
        loop {
            match tokio::time::timeout(timeout, rx.recv()).await {
                Err(_) => {
                    return Err(SessionError::Timeout {
                        host: inner.host.clone(),
                        op,
                        after: timeout,
                    });
                }
                Ok(None) => {
                    let reason = inner
                        .pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .closed
                        .clone()
                        .unwrap_or_else(|| "the agent went away".into());
                    return Err(self.closed_error(&reason));
                }
                Ok(Some(Incoming::Msg(msg))) => match *msg {
                    AgentMessage::Event(ev) => on_event(ev),
                    AgentMessage::Response(r) => return Ok(r),
                },
                Ok(Some(Incoming::Bad(detail))) => {
                    return Err(SessionError::Protocol {
                        host: inner.host.clone(),
                        detail: format!("bad answer to the {op} request: {detail}"),
                    });
                }
            }
        }
    }

    fn closed_error(&self, reason: &str) -> SessionError {
        let tail = self.inner.stderr.last_lines(3);
        let detail = if tail.is_empty() {
            reason.to_string()
        } else {
            format!("{reason}; agent stderr: {tail}")
        };
        SessionError::Closed {
            host: self.inner.host.clone(),
            detail,
        }
    }

    /// End the session: EOF to the agent (it exits), then release the connection. Other
    /// clones of this session see "closed" afterwards.
    pub async fn close(self) {
        if let Some(mut w) = self.inner.writer.lock().await.take() {
            let _ = w.shutdown().await;
        }
        if let Some(b) = self.inner.backing.lock().await.take() {
            b.close().await;
        }
    }
}

struct PendingGuard {
    pending: Arc<StdMutex<Pending>>,
    id: RequestId,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .remove(&self.id);
    }
}

/// What one bounded line read gave.
#[derive(Debug, PartialEq, Eq)]
enum LineRead {
    Eof,
    Line,
    /// The line passed `max` bytes; what was read of it is discarded.
    TooLong,
}

/// `read_until(b'\n')` that stops at `max` bytes instead of growing without bound.
async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<LineRead> {
    buf.clear();
    loop {
        let avail = r.fill_buf().await?;
        if avail.is_empty() {
            return Ok(if buf.is_empty() {
                LineRead::Eof
            } else {
                LineRead::Line
            });
        }
        let (take, done) = match avail.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        if buf.len() + take > max + 1 {
            r.consume(take);
            buf.clear();
            return Ok(LineRead::TooLong);
        }
        buf.extend_from_slice(&avail[..take]);
        r.consume(take);
        if done {
            return Ok(LineRead::Line);
        }
    }
}

/// Hands `msg` to the caller waiting for `id`, if any. The sender is cloned out of the lock:
/// a full queue makes the reader wait for that caller, never while holding the map.
async fn route(pending: &StdMutex<Pending>, id: RequestId, msg: Incoming, done: bool) -> bool {
    let tx = {
        let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
        if done {
            p.map.remove(&id)
        } else {
            p.map.get(&id).cloned()
        }
    };
    match tx {
        Some(tx) => {
            let _ = tx.send(msg).await;
            true
        }
        None => false,
    }
}

async fn read_loop(host: String, reader: BoxRead, pending: Arc<StdMutex<Pending>>) {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut line = Vec::new();
    let reason = loop {
        match read_line_bounded(&mut reader, &mut line, MAX_FRAME_BYTES).await {
            Ok(LineRead::Eof) => break "the agent exited".to_string(),
            Err(e) => break format!("reading from the agent failed: {e}"),
            Ok(LineRead::TooLong) => {
                // Past this point the stream cannot be trusted to be in step: stop reading.
                break format!(
                    "the agent sent a frame larger than the limit of {} MiB; the session was closed",
                    MAX_FRAME_BYTES >> 20
                );
            }
            Ok(LineRead::Line) => {}
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        match rookery_proto::frame::decode_agent_frame(text) {
            Ok(frame) => {
                let done = matches!(frame.body, AgentMessage::Response(_));
                let id = frame.id;
                if !route(&pending, id, Incoming::Msg(Box::new(frame.body)), done).await {
                    tracing::debug!(
                        "{host}: agent answered request {id} that nobody waits for (timed out?)"
                    );
                }
            }
            Err(err) => {
                // Fail the request the frame belongs to, if its id is readable; a frame
                // without one is logged and skipped.
                let id = err.id;
                let snippet: String = String::from_utf8_lossy(text).chars().take(200).collect();
                tracing::warn!("{host}: unparsable frame from the agent ({err}): {snippet}");
                if let Some(id) = id {
                    route(&pending, id, Incoming::Bad(err.to_string()), true).await;
                }
            }
        }
    };
    let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
    p.closed = Some(reason);
    p.map.clear();
}

/// Follows stderr: keeps its tail for errors, logs it at debug level, and reports each sudo
/// password prompt (which has no trailing newline, so it is matched in the unread text).
fn spawn_stderr_watcher(
    host: String,
    mut stderr: mpsc::UnboundedReceiver<Vec<u8>>,
    tail: StderrTail,
    prompt: Option<String>,
) -> mpsc::UnboundedReceiver<()> {
    let (prompt_tx, prompt_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut unread: Vec<u8> = Vec::new();
        while let Some(chunk) = stderr.recv().await {
            tail.push(&chunk);
            unread.extend_from_slice(&chunk);
            if let Some(p) = &prompt {
                while let Some(pos) = find(&unread, p.as_bytes()) {
                    let _ = prompt_tx.send(());
                    unread.drain(..pos + p.len());
                }
            }
            while let Some(nl) = unread.iter().position(|b| *b == b'\n') {
                let l: Vec<u8> = unread.drain(..=nl).collect();
                tracing::debug!(
                    "{host} agent stderr: {}",
                    String::from_utf8_lossy(&l).trim_end()
                );
            }
            if unread.len() > STDERR_TAIL {
                unread.clear();
            }
        }
    });
    prompt_rx
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn noise_head(buf: &[u8]) -> String {
    let text = String::from_utf8_lossy(buf);
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(5)
        .map(|l| l.chars().take(160).collect())
        .collect();
    if lines.is_empty() {
        "no output".into()
    } else {
        format!("output began: {}", lines.join(" | "))
    }
}

/// Bring up the protocol on a started agent process: skip noise to the marker (answering a
/// sudo prompt if one appears), then exchange Hello.
pub(crate) async fn start(
    host: &str,
    proc: AgentProcess,
    become_prompt: Option<BecomePrompt>,
    uploaded: bool,
    command_timeout: Duration,
) -> Result<AgentSession, StartError> {
    let AgentProcess {
        mut stdin,
        mut stdout,
        stderr,
        mut exit,
        backing,
    } = proc;
    let tail = StderrTail::default();
    let mut prompts = spawn_stderr_watcher(
        host.to_string(),
        stderr,
        tail.clone(),
        become_prompt.as_ref().map(|b| b.prompt.clone()),
    );

    let mut marker_line = MARKER.as_bytes().to_vec();
    marker_line.push(b'\n');
    let scan = async {
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        let mut answered = 0u32;
        loop {
            tokio::select! {
                n = stdout.read(&mut chunk) => {
                    let n = n.map_err(|e| StartError::Failed(format!("reading the agent's output failed: {e}")))?;
                    if n == 0 {
                        return Ok(Err(buf));
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(pos) = find(&buf, &marker_line) {
                        let rest = buf.split_off(pos + marker_line.len());
                        return Ok(Ok(rest));
                    }
                    if buf.len() > MAX_NOISE {
                        return Err(StartError::Failed(format!(
                            "more than {} KiB of output without the agent's marker; {}",
                            MAX_NOISE / 1024, noise_head(&buf)
                        )));
                    }
                }
                Some(()) = prompts.recv() => {
                    let Some(b) = &become_prompt else { continue };
                    answered += 1;
                    if answered > 1 {
                        return Err(StartError::Become("sudo rejected the become password".into()));
                    }
                    let mut line = b.password.clone().into_bytes();
                    line.push(b'\n');
                    let res = async { stdin.write_all(&line).await?; stdin.flush().await }.await;
                    if let Err(e) = res {
                        return Err(StartError::Failed(format!("cannot send the become password: {e}")));
                    }
                }
            }
        }
    };
    let scanned = match tokio::time::timeout(command_timeout, scan).await {
        Err(_) => {
            let t = tail.last_lines(3);
            return Err(if t.contains("password") {
                StartError::Become(format!("sudo still waiting for a password: {t}"))
            } else {
                StartError::Timeout(command_timeout)
            });
        }
        Ok(r) => r?,
    };
    let rest = match scanned {
        Ok(rest) => rest,
        Err(noise) => {
            // Exit status may trail EOF by a moment (SSH sends it after the data).
            let status =
                tokio::time::timeout(Duration::from_secs(5), exit.wait_for(|e| e.is_some()))
                    .await
                    .ok()
                    .and_then(|r| r.ok().and_then(|e| e.clone()));
            // Give the stderr watcher a moment to take in the last chunk.
            tokio::time::sleep(Duration::from_millis(20)).await;
            // Dropped, not closed: over SSH the connection stays up for the upload.
            drop(backing);
            return Err(classify_exit(status, &tail, &noise));
        }
    };

    let pending = Arc::new(StdMutex::new(Pending::default()));
    let reader_stream: BoxRead = Box::pin(std::io::Cursor::new(rest).chain(stdout));
    let reader = tokio::spawn(read_loop(host.to_string(), reader_stream, pending.clone()));
    let session = AgentSession {
        inner: Arc::new(Inner {
            host: host.to_string(),
            writer: tokio::sync::Mutex::new(Some(stdin)),
            pending,
            next_id: AtomicU64::new(1),
            hello: OnceLock::new(),
            uploaded,
            command_timeout,
            stderr: tail,
            reader: StdMutex::new(Some(reader)),
            backing: tokio::sync::Mutex::new(Some(backing)),
        }),
    };
    let hello = session
        .call(Request::Hello(HelloRequest {
            protocol_version: PROTOCOL_VERSION,
            runner_version: env!("CARGO_PKG_VERSION").to_string(),
        }))
        .await
        .map_err(StartError::Session)?;
    let hello = match hello {
        Response::Hello(h) => h,
        Response::Error(e) => {
            return Err(StartError::Failed(format!(
                "the agent refused Hello: {} ({:?})",
                e.message, e.code
            )));
        }
        other => {
            return Err(StartError::Failed(format!(
                "the agent answered Hello with {other:?}"
            )));
        }
    };
    if hello.protocol_version != PROTOCOL_VERSION {
        return Err(StartError::Session(SessionError::VersionMismatch {
            host: host.to_string(),
            agent: hello.protocol_version,
            runner: PROTOCOL_VERSION,
        }));
    }
    let _ = session.inner.hello.set(hello);
    Ok(session)
}

/// The architecture the bootstrap script reported on stderr (its last `rookery-arch=` line).
fn reported_arch(tail: &StderrTail) -> Option<String> {
    tail.text()
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(crate::ssh::bootstrap::ARCH_PREFIX))
        .map(|a| a.trim().to_string())
}

fn classify_exit(status: Option<ExitInfo>, tail: &StderrTail, noise: &[u8]) -> StartError {
    let err = tail.last_lines(3);
    let code = status.as_ref().and_then(|s| s.code);
    let arch = reported_arch(tail);
    if code == Some(EXIT_NEED_UPLOAD) {
        return StartError::NeedUpload(
            "the agent is not on the host or its checksum is wrong".into(),
            arch,
        );
    }
    if code == Some(crate::ssh::bootstrap::EXIT_NO_AGENT_FOR_ARCH) {
        return StartError::NoAgentForArch(arch.unwrap_or_default());
    }
    if code == Some(crate::ssh::bootstrap::EXIT_UPLOAD_FAILED) {
        return StartError::Upload(if err.is_empty() {
            "the upload script failed".into()
        } else {
            err
        });
    }
    if code == Some(EXIT_SELF_CHECK_FAILED) {
        return StartError::NeedUpload(
            "the agent's self-check found a corrupt binary".into(),
            arch,
        );
    }
    let lower = err.to_lowercase();
    if lower.contains("a password is required") {
        return StartError::Become(
            "sudo needs a password and none was given (ansible_become_password)".into(),
        );
    }
    if lower.contains("incorrect password") || lower.contains("sorry, try again") {
        return StartError::Become("sudo rejected the become password".into());
    }
    if lower.contains("not in the sudoers") || lower.contains("not allowed to execute") {
        return StartError::Become(err);
    }
    if lower.contains("sudo: not found") || lower.contains("sudo: command not found") {
        return StartError::Become("sudo is not installed on the host".into());
    }
    let status = status
        .map(|s| s.to_string())
        .unwrap_or_else(|| "no exit status".into());
    let mut detail = format!(
        "it ended ({status}) before its protocol marker; {}",
        noise_head(noise)
    );
    if !err.is_empty() {
        detail.push_str(&format!("; stderr: {err}"));
    }
    StartError::Exited { code, detail }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_proto::{AgentFrame, ProbeRequest, RunnerFrame};

    struct NoBacking;
    impl Backing for NoBacking {
        fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
            Box::pin(async {})
        }
    }

    /// A fake agent on the far end of an in-memory pipe: prints noise, the marker, then answers
    /// Hello and Exec (with one progress event, replying out of order to exercise routing).
    async fn fake_agent(
        stdin: tokio::io::DuplexStream,
        mut stdout: tokio::io::DuplexStream,
        protocol_version: u32,
        probe_held: Arc<tokio::sync::Notify>,
    ) {
        stdout
            .write_all(format!("Welcome!\nrc noise {{\"id\":1}}\n{MARKER}\n").as_bytes())
            .await
            .unwrap();
        let mut lines = BufReader::new(stdin).lines();
        let mut held: Option<RequestId> = None;
        while let Ok(Some(l)) = lines.next_line().await {
            let f: RunnerFrame = serde_json::from_str(&l).unwrap();
            let mut out = Vec::new();
            match f.request {
                Request::Hello(_) => out.push(AgentFrame {
                    id: f.id,
                    body: AgentMessage::Response(Response::Hello(HelloResponse {
                        protocol_version,
                        agent_version: "fake".into(),
                        self_sha256: None,
                        euid: 0,
                    })),
                }),
                Request::Probe(_) => {
                    held = Some(f.id);
                    probe_held.notify_one();
                }
                Request::Exec(e) => {
                    out.push(AgentFrame {
                        id: f.id,
                        body: AgentMessage::Event(Event::Progress {
                            message: "working".into(),
                        }),
                    });
                    out.push(AgentFrame {
                        id: f.id,
                        body: AgentMessage::Response(Response::Exec(rookery_proto::ExecResult {
                            rc: Some(0),
                            stdout: e.argv.join(" "),
                            stderr: String::new(),
                            timed_out: false,
                            duration_ms: 0,
                            truncated: false,
                        })),
                    });
                    if let Some(h) = held.take() {
                        out.push(AgentFrame {
                            id: h,
                            body: AgentMessage::Response(Response::Error(
                                rookery_proto::AgentError {
                                    code: rookery_proto::ErrorCode::Internal,
                                    message: "late".into(),
                                },
                            )),
                        });
                    }
                }
                _ => {}
            }
            for f in out {
                let mut s = serde_json::to_vec(&f).unwrap();
                s.push(b'\n');
                stdout.write_all(&s).await.unwrap();
            }
        }
    }

    fn process(version: u32) -> AgentProcess {
        process_notify(version).0
    }

    /// Also returns a notification fired when the fake agent has taken in a probe request.
    fn process_notify(version: u32) -> (AgentProcess, Arc<tokio::sync::Notify>) {
        let (runner_w, agent_r) = tokio::io::duplex(4096);
        let (agent_w, runner_r) = tokio::io::duplex(4096);
        let held = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(fake_agent(agent_r, agent_w, version, held.clone()));
        (pipes(runner_w, runner_r), held)
    }

    fn pipes(stdin: tokio::io::DuplexStream, stdout: tokio::io::DuplexStream) -> AgentProcess {
        let (_tx, stderr) = mpsc::unbounded_channel();
        let (_etx, exit) = watch::channel(None);
        AgentProcess {
            stdin: Box::pin(stdin),
            stdout: Box::pin(stdout),
            stderr,
            exit,
            backing: Box::new(NoBacking),
        }
    }

    /// The far end of a session for scripted tests: answers Hello, then hands every other
    /// request to the test.
    async fn scripted(
        runner_w: tokio::io::DuplexStream,
        runner_r: tokio::io::DuplexStream,
        agent_r: tokio::io::DuplexStream,
        mut agent_w: tokio::io::DuplexStream,
    ) -> (
        AgentSession,
        tokio::io::Lines<BufReader<tokio::io::DuplexStream>>,
        tokio::io::DuplexStream,
    ) {
        let agent = tokio::spawn(async move {
            agent_w
                .write_all(format!("{MARKER}\n").as_bytes())
                .await
                .unwrap();
            let mut lines = BufReader::new(agent_r).lines();
            let l = lines.next_line().await.unwrap().unwrap();
            let f: RunnerFrame = serde_json::from_str(&l).unwrap();
            let hello = AgentFrame {
                id: f.id,
                body: AgentMessage::Response(Response::Hello(HelloResponse {
                    protocol_version: PROTOCOL_VERSION,
                    agent_version: "scripted".into(),
                    self_sha256: None,
                    euid: 0,
                })),
            };
            let mut out = serde_json::to_vec(&hello).unwrap();
            out.push(b'\n');
            agent_w.write_all(&out).await.unwrap();
            (lines, agent_w)
        });
        let s = start(
            "h1",
            pipes(runner_w, runner_r),
            None,
            false,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
        let (lines, w) = agent.await.unwrap();
        (s, lines, w)
    }

    fn exec(args: &[&str]) -> Request {
        Request::Exec(rookery_proto::ExecRequest {
            argv: args.iter().map(|s| s.to_string()).collect(),
            stdin: None,
            cwd: None,
            env: vec![],
            timeout_secs: None,
        })
    }

    #[tokio::test]
    async fn handshake_pipelining_events_and_timeout() {
        let (proc, probe_held) = process_notify(PROTOCOL_VERSION);
        let s = start("h1", proc, None, false, Duration::from_millis(500))
            .await
            .unwrap();
        assert_eq!(s.hello().agent_version, "fake");
        // The probe is only answered after the exec: two requests in flight at once.
        let s2 = s.clone();
        let probe = tokio::spawn(async move {
            s2.call_with_timeout(
                Request::Probe(ProbeRequest::default()),
                Duration::from_secs(5),
                &mut |_| {},
            )
            .await
        });
        // The exec must reach the agent after the probe: wait until the agent holds it (a
        // sleep here lost that race on a loaded machine).
        probe_held.notified().await;
        let mut events = Vec::new();
        let r = s
            .call_with_events(exec(&["echo", "hi"]), &mut |e| events.push(e))
            .await
            .unwrap();
        assert!(matches!(r, Response::Exec(ref x) if x.stdout == "echo hi"));
        assert_eq!(events.len(), 1);
        assert!(matches!(probe.await.unwrap().unwrap(), Response::Error(_)));
        // Unanswered request: the command timeout fires and the session stays usable.
        let e = s
            .call(Request::Probe(ProbeRequest::default()))
            .await
            .unwrap_err();
        assert!(matches!(e, SessionError::Timeout { .. }), "{e}");
        assert!(s.call(exec(&["x"])).await.is_ok());
        s.close().await;
    }

    #[tokio::test]
    async fn oversized_frame_closes_the_session_with_a_clear_error() {
        let (runner_w, agent_r) = tokio::io::duplex(64 * 1024);
        let (agent_w, runner_r) = tokio::io::duplex(64 * 1024);
        let (s, mut lines, mut agent_w) = scripted(runner_w, runner_r, agent_r, agent_w).await;
        let s2 = s.clone();
        let call = tokio::spawn(async move { s2.call(exec(&["x"])).await });
        lines.next_line().await.unwrap().unwrap();
        // A wrapper that prints endlessly without a newline after the marker: more than the
        // limit, in chunks, and never a newline.
        let chunk = vec![b'y'; 1 << 20];
        let writer = tokio::spawn(async move {
            for _ in 0..(MAX_FRAME_BYTES >> 20) + 2 {
                if agent_w.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
        let e = tokio::time::timeout(Duration::from_secs(20), call)
            .await
            .expect("the oversized frame ends the call")
            .unwrap()
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("h1") && text.contains("larger than the limit of 64 MiB"),
            "{text}"
        );
        // Later calls fail at once with the same reason.
        let e = s.call(exec(&["y"])).await.unwrap_err();
        assert!(e.to_string().contains("larger than the limit"), "{e}");
        writer.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn event_flood_is_bounded_by_the_slow_caller() {
        use std::sync::atomic::AtomicUsize;
        const FLOOD: usize = 20_000;
        let (runner_w, agent_r) = tokio::io::duplex(4096);
        let (agent_w, runner_r) = tokio::io::duplex(4096);
        let (s, mut lines, mut agent_w) = scripted(runner_w, runner_r, agent_r, agent_w).await;
        let written = Arc::new(AtomicUsize::new(0));
        let w2 = written.clone();
        let agent = tokio::spawn(async move {
            let l = lines.next_line().await.unwrap().unwrap();
            let f: RunnerFrame = serde_json::from_str(&l).unwrap();
            for i in 0..FLOOD {
                let ev = AgentFrame {
                    id: f.id,
                    body: AgentMessage::Event(Event::Progress {
                        message: format!("event {i}"),
                    }),
                };
                let mut out = serde_json::to_vec(&ev).unwrap();
                out.push(b'\n');
                if agent_w.write_all(&out).await.is_err() {
                    return;
                }
                w2.fetch_add(1, Ordering::SeqCst);
            }
        });
        // The caller takes the first event and then stalls (an fsync per audit line, say).
        let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
        let caller = tokio::spawn(async move {
            let mut first = true;
            let _ = s
                .call_with_timeout(exec(&["x"]), Duration::from_secs(60), &mut move |_| {
                    if first {
                        first = false;
                        let _ = gate_rx.recv();
                    }
                })
                .await;
        });
        // Wait until the agent cannot write any more (or wrote everything: unbounded).
        let mut last = usize::MAX;
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = written.load(Ordering::SeqCst);
            if now == FLOOD || now == last {
                break;
            }
            last = now;
        }
        let queued = written.load(Ordering::SeqCst);
        assert!(
            queued < FLOOD / 4,
            "{queued} of {FLOOD} events taken in while the caller was stalled"
        );
        let _ = gate_tx.send(());
        agent.abort();
        caller.abort();
    }

    #[tokio::test]
    async fn exec_is_awaited_past_its_own_deadline() {
        let (runner_w, agent_r) = tokio::io::duplex(4096);
        let (agent_w, runner_r) = tokio::io::duplex(4096);
        let (s, mut lines, mut agent_w) = scripted(runner_w, runner_r, agent_r, agent_w).await;
        // A session whose silence allowance (30 s) is shorter than the exec's own deadline:
        // the runner must not give up first. Paused time makes the wait instant.
        tokio::time::pause();
        let mut req = exec(&["sleep", "100"]);
        if let Request::Exec(e) = &mut req {
            e.timeout_secs = Some(100);
        }
        let s2 = s.clone();
        let call = tokio::spawn(async move { s2.call(req).await });
        let l = lines.next_line().await.unwrap().unwrap();
        let f: RunnerFrame = serde_json::from_str(&l).unwrap();
        tokio::time::sleep(Duration::from_secs(105)).await;
        let answer = AgentFrame {
            id: f.id,
            body: AgentMessage::Response(Response::Exec(rookery_proto::ExecResult {
                rc: None,
                stdout: String::new(),
                stderr: String::new(),
                timed_out: true,
                duration_ms: 100_000,
                truncated: false,
            })),
        };
        let mut out = serde_json::to_vec(&answer).unwrap();
        out.push(b'\n');
        agent_w.write_all(&out).await.unwrap();
        let r = call.await.unwrap().unwrap();
        assert!(matches!(r, Response::Exec(ref x) if x.timed_out), "{r:?}");
    }

    #[tokio::test]
    async fn version_mismatch_refused() {
        let e = start("h1", process(99), None, false, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(
            e,
            StartError::Session(SessionError::VersionMismatch { agent: 99, .. })
        ));
    }

    #[tokio::test]
    async fn eof_without_marker_maps_exit_86_to_upload() {
        let (runner_w, _agent_r) = tokio::io::duplex(64);
        let (mut agent_w, runner_r) = tokio::io::duplex(64);
        agent_w.write_all(b"noise\n").await.unwrap();
        drop(agent_w);
        let (_tx, stderr) = mpsc::unbounded_channel();
        let (_etx, exit) = watch::channel(Some(ExitInfo {
            code: Some(EXIT_NEED_UPLOAD),
            signal: None,
        }));
        let p = AgentProcess {
            stdin: Box::pin(runner_w),
            stdout: Box::pin(runner_r),
            stderr,
            exit,
            backing: Box::new(NoBacking),
        };
        let e = start("h1", p, None, false, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(e, StartError::NeedUpload(..)), "{e:?}");
    }
}
