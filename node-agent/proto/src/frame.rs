//! Decoding one frame line, the same way on both ends. The runner reads agent frames and the
//! agent reads runner frames from a peer it does not fully trust (a remote shell may print
//! anything after the marker), so decoding is a pure function of the bytes: it is fuzzed
//! (`fuzz/`), and a frame that does not parse still yields its `id` when one is readable, so
//! the waiter for that request wakes with an error instead of timing out.

use serde::de::DeserializeOwned;

use crate::{AgentFrame, RequestId, RunnerFrame};

/// A line that is not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFrame {
    /// The request the line claims to answer (or be), when its `id` is readable.
    pub id: Option<RequestId>,
    /// Why it does not parse (serde_json's message, with its line/column).
    pub message: String,
}

impl std::fmt::Display for BadFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BadFrame {}

/// One frame from the agent (the runner's side). `line` is trimmed of ASCII whitespace first;
/// the caller skips empty lines.
pub fn decode_agent_frame(line: &[u8]) -> Result<AgentFrame, BadFrame> {
    decode(line)
}

/// One frame from the runner (the agent's side).
pub fn decode_runner_frame(line: &[u8]) -> Result<RunnerFrame, BadFrame> {
    decode(line)
}

fn decode<T: DeserializeOwned>(line: &[u8]) -> Result<T, BadFrame> {
    let text = line.trim_ascii();
    serde_json::from_slice(text).map_err(|e| BadFrame {
        id: serde_json::from_slice::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("id").and_then(serde_json::Value::as_u64)),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_and_bad_frames() {
        let f = decode_runner_frame(b" {\"id\":7,\"request\":{\"op\":\"nope\"}}\n").unwrap_err();
        assert_eq!(f.id, Some(7));
        let f = decode_agent_frame(b"not json").unwrap_err();
        assert_eq!(f.id, None);
        assert!(decode_agent_frame(b"").is_err());
    }
}
