//! Exit codes, documented in the README. Host outcomes are bit flags (like Ansible's 2 and 4)
//! so a script can tell "some host failed" from "some host was unreachable" from both;
//! input and usage errors get codes of their own instead of colliding with host outcomes.

/// Everything went as asked.
pub const OK: u8 = 0;
/// An unexpected error (I/O on the control machine, a bug).
pub const ERROR: u8 = 1;
/// At least one host failed (bit flag).
pub const HOSTS_FAILED: u8 = 2;
/// At least one host was unreachable (bit flag; 6 = failed and unreachable hosts).
pub const HOSTS_UNREACHABLE: u8 = 4;
/// Validation found errors (`rookery plan`, `rookery prepare` refusals).
pub const VALIDATION: u8 = 8;
/// `diff`: the cluster differs from the stack (changes pending; bit flag).
pub const CHANGES: u8 = 16;
/// The cluster refused the stack or did not become healthy: an API error, a conflict, an
/// immutable field, a failed or timed-out wait, a refused prune, an unreachable API server.
pub const CLUSTER: u8 = 32;
/// Bad command-line usage.
pub const USAGE: u8 = 64;
/// An input file (inventory, playbook, stack, vars) is invalid.
pub const INPUT: u8 = 65;
/// Interrupted (Ctrl-C).
pub const INTERRUPTED: u8 = 130;
