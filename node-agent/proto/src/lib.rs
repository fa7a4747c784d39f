//! The runner ↔ agent protocol.
//!
//! Transport: the runner starts `rookery-agent serve` over an SSH exec channel (or as a
//! local child process). The agent first prints [`MARKER`] on a line of its own; everything
//! before that line is shell start-up noise (rc files, motd, sudo chatter) and is discarded.
//! After the marker each line on stdout is one JSON [`AgentFrame`]; each line the runner
//! writes to stdin is one JSON [`RunnerFrame`]. The agent exits when stdin reaches EOF, killing
//! the commands it still runs for that session (the runner closes after its last answer).
//! stderr carries human-readable logs only and is never parsed.
//!
//! The first request on a connection must be [`Request::Hello`]; the agent answers with
//! [`Response::Hello`] carrying its [`PROTOCOL_VERSION`] and build version.
//!
//! When changing this protocol: additive changes (new optional fields with
//! `#[serde(default)]`, new enum variants the old side never receives) keep the version;
//! anything else bumps [`PROTOCOL_VERSION`], and the runner refuses an agent that speaks
//! another version (it re-uploads its own build instead).

pub mod device;
pub mod facts;
pub mod frame;
pub mod prepare;

use serde::{Deserialize, Serialize};

pub use device::*;
pub use facts::*;
pub use prepare::*;

/// Bump on any breaking change to the frames below.
///
/// 2: a wipe consent needs [`DevicePlan::expected_signatures`] (an agent refuses a consent
/// without it) and [`RejectReason::OsdActive`] is new, so a version-1 runner must not drive a
/// version-2 agent.
pub const PROTOCOL_VERSION: u32 = 2;

/// Printed by the agent, alone on a line, right before the first frame.
pub const MARKER: &str = "\u{1}ROOKERY-AGENT-PROTOCOL-1\u{2}";

/// Exit code of the bootstrap shell snippet when the agent binary is missing or corrupt on the
/// node, so the runner knows to upload it.
pub const EXIT_NEED_UPLOAD: i32 = 86;
/// Exit code of `rookery-agent serve --expect-sha256 H` when its own file does not hash to H.
pub const EXIT_SELF_CHECK_FAILED: i32 = 87;

/// Longest frame (one JSON line, without its newline) either side writes or accepts. The
/// largest legitimate frames are an `Exec` result (two streams of at most 16 MiB each, which
/// JSON escaping can grow) and a `WriteFile` request; the agent answers with an error
/// instead of writing a larger frame, and a reader closes the session (runner) or refuses
/// the frame (agent) when the limit is passed, so a broken peer cannot exhaust memory.
pub const MAX_FRAME_BYTES: usize = 64 << 20;

/// Output of one command captured per stream (stdout, stderr); the rest is discarded and
/// the result says `truncated`.
pub const MAX_CAPTURE_BYTES: usize = 16 << 20;

/// Correlates a response with its request. Events carry the id of the request they belong to.
pub type RequestId = u64;

/// One line written by the runner to the agent's stdin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunnerFrame {
    pub id: RequestId,
    pub request: Request,
}

/// One line written by the agent to its stdout after the marker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentFrame {
    pub id: RequestId,
    #[serde(flatten)]
    pub body: AgentMessage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "body")]
pub enum AgentMessage {
    /// The final answer to request `id`.
    Response(Response),
    /// Progress for a long request `id`; zero or more before its response.
    Event(Event),
}

/// Operations the agent performs. One variant per operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op", content = "args")]
pub enum Request {
    Hello(HelloRequest),
    /// Read-only: host facts and every block device with its availability verdict.
    Probe(ProbeRequest),
    /// Run a program (argv, no shell unless the runner asks for `/bin/sh -c`).
    Exec(ExecRequest),
    /// Read-only: metadata and sha256 of a path (for copy/template/file idempotence).
    Stat(StatRequest),
    /// Read a file's bytes (bounded), e.g. for `--diff`.
    ReadFile(ReadFileRequest),
    /// Write a file atomically (temp file + rename) with mode/owner.
    WriteFile(WriteFileRequest),
    /// Create a directory (recursively) or remove a path.
    FileState(FileStateRequest),
    /// Reconcile devices to the desired state (Ceph-ready). `check: true` changes nothing.
    Prepare(PrepareRequest),
    /// Read-only node readiness checks for Rook (kernel modules, versions, leftovers).
    Readiness(ReadinessRequest),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Response {
    Hello(HelloResponse),
    Probe(Box<HostFacts>),
    Exec(ExecResult),
    Stat(StatResult),
    ReadFile(ReadFileResult),
    WriteFile(WriteFileResult),
    FileState(FileStateResult),
    Prepare(PrepareReport),
    Readiness(ReadinessReport),
    /// The request failed as a whole; see [`AgentError`].
    Error(AgentError),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Event {
    /// Free-form progress line for a human ("wiping /dev/sdb: zeroing last 1 MiB").
    Progress { message: String },
    /// A destructive step is about to happen / has happened (feeds the runner's audit log).
    Audit(Box<AuditRecord>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentError {
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Hello missing, or a protocol version the agent does not speak.
    ProtocolMismatch,
    /// The frame did not parse (unknown op, bad JSON).
    BadRequest,
    /// The operation needs privileges the agent does not have.
    PermissionDenied,
    NotFound,
    /// Refused for safety (device in use, no consent, ...).
    Refused,
    Io,
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloRequest {
    pub protocol_version: u32,
    pub runner_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloResponse {
    pub protocol_version: u32,
    pub agent_version: String,
    /// sha256 of the agent's own executable, as it hashed itself.
    #[serde(default)]
    pub self_sha256: Option<String>,
    /// Effective uid the agent runs as (0 after become).
    pub euid: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRequest {
    /// Include loop devices (tests use loop devices over sparse files).
    #[serde(default)]
    pub include_loop: bool,
    /// Only report these device names (kernel names like `sdb`, or paths); empty = all.
    #[serde(default)]
    pub only: Vec<String>,
    /// Seconds the device reads may take before a device is reported unreadable; None =
    /// the agent's default (20 s).
    #[serde(default)]
    pub io_timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    pub argv: Vec<String>,
    #[serde(default)]
    pub stdin: Option<String>,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Kill the process group after this many seconds (the agent's default when absent is
    /// one hour: nothing the runner starts runs for ever).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecResult {
    /// None when killed by a signal or the timeout.
    pub rc: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    #[serde(default)]
    pub timed_out: bool,
    pub duration_ms: u64,
    /// stdout or stderr passed [`MAX_CAPTURE_BYTES`]; the rest was read and discarded.
    #[serde(default)]
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatRequest {
    pub path: String,
    /// Compute the sha256 of regular files.
    #[serde(default)]
    pub checksum: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatResult {
    pub exists: bool,
    #[serde(default)]
    pub file_type: Option<FileType>,
    #[serde(default)]
    pub mode: Option<u32>,
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub gid: Option<u32>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileType {
    File,
    Directory,
    Symlink,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadFileRequest {
    pub path: String,
    /// Refuse files larger than this (diffs of huge files are useless).
    pub max_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadFileResult {
    /// Base64 would bloat small text files; the runner only diffs UTF-8 text, so lossy is fine.
    pub content: String,
    pub is_utf8: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteFileRequest {
    pub path: String,
    /// Hex-free raw bytes would not survive JSON; the runner sends base64.
    pub content_base64: String,
    #[serde(default)]
    pub mode: Option<u32>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteFileResult {
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStateRequest {
    pub path: String,
    pub state: DesiredFileState,
    #[serde(default)]
    pub mode: Option<u32>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DesiredFileState {
    Directory,
    Absent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStateResult {
    pub changed: bool,
}
