//! Paths of the binaries under test. `cargo xtask test` builds them first and exports
//! `ROOKERY_BIN` and `ROOKERY_AGENT_BIN`; otherwise the usual target paths are tried.

use std::path::PathBuf;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The `rookery` runner binary.
pub fn rookery() -> PathBuf {
    if let Some(p) = std::env::var_os("ROOKERY_BIN") {
        return PathBuf::from(p);
    }
    let p = target_dir().join("debug/rookery");
    assert!(
        p.exists(),
        "{} not found: run `cargo xtask test` (or `cargo build -p rookery`) first",
        p.display()
    );
    p
}

/// The static `rookery-agent` binary (what gets uploaded to hosts).
pub fn agent() -> PathBuf {
    if let Some(p) = std::env::var_os("ROOKERY_AGENT_BIN") {
        return PathBuf::from(p);
    }
    let p = target_dir().join("x86_64-unknown-linux-musl/agent/rookery-agent");
    assert!(
        p.exists(),
        "{} not found: run `cargo xtask agent` first",
        p.display()
    );
    p
}

/// The static aarch64 `rookery-agent` (`$ROOKERY_AGENT_AARCH64_BIN`, exported by `cargo xtask
/// test`, else the `cargo xtask agent` build), run under qemu-user on this x86_64 machine.
pub fn agent_aarch64() -> PathBuf {
    std::env::var_os("ROOKERY_AGENT_AARCH64_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("aarch64-unknown-linux-musl/agent/rookery-agent"))
}

/// A debug `rookery-agent` built with `--features test-hooks` (fault hooks such as pausing
/// mid-wipe), for crash tests only: `$ROOKERY_AGENT_TEST_HOOKS_BIN` (exported by `cargo xtask
/// test`), else `target/debug/rookery-agent-test-hooks`. Tests check its `--version` says
/// "(test hooks)" before relying on it.
pub fn agent_with_test_hooks() -> PathBuf {
    std::env::var_os("ROOKERY_AGENT_TEST_HOOKS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("debug/rookery-agent-test-hooks"))
}

/// Whether `agent` is a build with the test hooks (its `--version` says so).
pub fn has_test_hooks(agent: &std::path::Path) -> bool {
    std::process::Command::new(agent)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("(test hooks)"))
}

/// The repository root (for inventories/, playbooks/, ...).
pub fn repo_root() -> PathBuf {
    workspace_root()
}

/// `../shared` beside the repository (upstream manifests, notes). `ROOKERY_SHARED` overrides.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("ROOKERY_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared"))
}
