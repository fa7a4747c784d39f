//! Developer tasks, so the README's commands stay one line each.
//!
//! - `cargo xtask agent`: build the static, size-optimised `rookery-agent` and print its size.
//! - `cargo xtask build`: the agent plus a release `rookery`, both copied to `target/dist/`.
//! - `cargo xtask test`: fmt + clippy, build the binaries the end-to-end tests drive (and a
//!   debug agent with the `test-hooks` fault hooks for the crash tests, kept apart from the
//!   shipped one), then run every test in the workspace with their paths exported.
//!   `--no-lint` skips fmt/clippy.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const AGENT_TARGET: &str = "x86_64-unknown-linux-gnu";

fn main() {
    if let Err(err) = run() {
        eprintln!("xtask: error: {err:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = args
        .split_first()
        .map(|(t, r)| (t.as_str(), r))
        .unwrap_or(("help", &[]));
    match task {
        "agent" => {
            let path = build_agent()?;
            println!("{}", path.display());
            Ok(())
        }
        "build" => build_dist(),
        "test" => test(rest),
        _ => {
            eprintln!("usage: cargo xtask <agent|build|test [--no-lint] [-- cargo test args]>");
            Ok(())
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn status(mut cmd: Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let st = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed with {st}");
    }
    Ok(())
}

/// Static glibc (`crt-static`) so the agent needs nothing on the node but a kernel; built for an
/// explicit target so the flag does not reach build scripts and proc-macros.
fn build_agent() -> Result<PathBuf> {
    let mut cmd = cargo();
    cmd.args([
        "build",
        "--profile",
        "agent",
        "-p",
        "rookery-agent",
        "--target",
        AGENT_TARGET,
    ]);
    cmd.env("RUSTFLAGS", "-C target-feature=+crt-static");
    status(cmd)?;
    let path = target_dir().join(AGENT_TARGET).join("agent/rookery-agent");
    let size = std::fs::metadata(&path)
        .with_context(|| format!("{}", path.display()))?
        .len();
    eprintln!(
        "xtask: agent {} ({} bytes, {:.2} MiB, stripped, static)",
        path.display(),
        size,
        size as f64 / 1048576.0
    );
    Ok(path)
}

fn build_dist() -> Result<()> {
    let agent = build_agent()?;
    let mut cmd = cargo();
    cmd.args(["build", "--release", "-p", "rookery"]);
    status(cmd)?;
    let dist = target_dir().join("dist");
    std::fs::create_dir_all(&dist)?;
    std::fs::copy(&agent, dist.join("rookery-agent"))?;
    std::fs::copy(target_dir().join("release/rookery"), dist.join("rookery"))?;
    println!("{}", dist.join("rookery").display());
    Ok(())
}

fn test(rest: &[String]) -> Result<()> {
    let lint = !rest.iter().any(|a| a == "--no-lint");
    let passthrough: Vec<&String> = rest.iter().skip_while(|a| *a != "--").skip(1).collect();
    if lint {
        let mut fmt = cargo();
        fmt.args(["fmt", "--all", "--", "--check"]);
        status(fmt)?;
        let mut clippy = cargo();
        clippy.args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]);
        status(clippy)?;
    }
    let agent = build_agent()?;
    let mut build = cargo();
    build.args(["build", "-p", "rookery"]);
    status(build)?;
    // The crash tests' agent: same code plus the fault hooks, under its own name so nothing
    // can mistake it for the agent that ships (which `build_agent` builds without them).
    let mut hooks = cargo();
    // (`--features test-hooks`, not `rookery-agent/test-hooks`: the latter names the crate's
    // dev-dependency on itself and leaves the binary without the hooks.)
    hooks.args(["build", "-p", "rookery-agent", "--features", "test-hooks"]);
    status(hooks)?;
    let hooks_agent = target_dir().join("debug/rookery-agent-test-hooks");
    std::fs::copy(target_dir().join("debug/rookery-agent"), &hooks_agent)
        .with_context(|| format!("cannot write {}", hooks_agent.display()))?;
    let rookery = target_dir().join("debug/rookery");
    let mut test = cargo();
    test.args(["test", "--workspace", "--no-fail-fast"]);
    if !passthrough.is_empty() {
        test.arg("--");
        test.args(passthrough);
    }
    test.env("ROOKERY_BIN", &rookery)
        .env("ROOKERY_AGENT_BIN", &agent)
        .env("ROOKERY_AGENT", &agent)
        .env("ROOKERY_AGENT_TEST_HOOKS_BIN", &hooks_agent);
    status(test)
}
