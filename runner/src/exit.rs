//! Exit codes, documented in the README. Host outcomes are bit flags (like Ansible's 2 and 4)
//! so a script can tell "some host failed" from "some host was unreachable" from both;
//! input and usage errors get codes of their own instead of colliding with host outcomes.
//! The constants live in `rookery-diagnostic`, so library error types can name them.

use std::process::ExitCode;

pub use rookery_diagnostic::exit::*;

/// Combine per-host outcomes into one exit code.
pub fn from_host_counts(failed: usize, unreachable: usize) -> ExitCode {
    let mut code = OK;
    if failed > 0 {
        code |= HOSTS_FAILED;
    }
    if unreachable > 0 {
        code |= HOSTS_UNREACHABLE;
    }
    ExitCode::from(code)
}
