//! Developer tasks, so the README's commands stay one line each.
//!
//! - `cargo xtask agent`: build the static (musl), size-optimised `rookery-agent` for x86_64
//!   and aarch64 and print their sizes.
//! - `cargo xtask build`: both agents plus a release `rookery`, copied to `target/dist/`
//!   (`rookery-agent-x86_64`, `rookery-agent-aarch64`, where `rookery` looks for them).
//! - `cargo xtask test`: fmt + clippy, build the binaries the end-to-end tests drive (and a
//!   debug agent with the `test-hooks` fault hooks for the crash tests, kept apart from the
//!   shipped one), then run every test in the workspace with their paths exported.
//!   `--no-lint` skips fmt/clippy.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// (architecture as `uname -m` names it, Rust target) of every agent that ships.
const AGENT_TARGETS: [(&str, &str); 2] = [
    ("x86_64", "x86_64-unknown-linux-musl"),
    ("aarch64", "aarch64-unknown-linux-musl"),
];

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
            for (_, path) in build_agents()? {
                println!("{}", path.display());
            }
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

/// Static musl builds, so the agent needs nothing on the node but a kernel (and is smaller
/// than static glibc); built for explicit targets so the flags do not reach build scripts and
/// proc-macros. aarch64 links with the toolchain's own `rust-lld`: no cross C toolchain needed.
/// Returns (architecture, path) per agent.
fn build_agents() -> Result<Vec<(&'static str, PathBuf)>> {
    let mut out = Vec::new();
    for (arch, target) in AGENT_TARGETS {
        let mut cmd = cargo();
        cmd.args([
            "build",
            "--profile",
            "agent",
            "-p",
            "rookery-agent",
            "--target",
            target,
        ]);
        cmd.env("RUSTFLAGS", "-C target-feature=+crt-static");
        if arch == "aarch64" {
            cmd.env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER", "rust-lld");
        }
        status(cmd).with_context(|| {
            format!("building the {arch} agent (needs `rustup target add {target}`)")
        })?;
        let path = target_dir().join(target).join("agent/rookery-agent");
        let size = std::fs::metadata(&path)
            .with_context(|| format!("{}", path.display()))?
            .len();
        eprintln!(
            "xtask: agent {arch} {} ({} bytes, {:.2} MiB, stripped, static musl)",
            path.display(),
            size,
            size as f64 / 1048576.0
        );
        out.push((arch, path));
    }
    Ok(out)
}

/// The x86_64 agent, which the loop-device, sshd and local tests on this machine run.
fn native_agent(agents: &[(&str, PathBuf)]) -> Result<PathBuf> {
    agents
        .iter()
        .find(|(a, _)| *a == std::env::consts::ARCH)
        .map(|(_, p)| p.clone())
        .with_context(|| format!("no agent built for {}", std::env::consts::ARCH))
}

fn build_dist() -> Result<()> {
    let agents = build_agents()?;
    let mut cmd = cargo();
    cmd.args(["build", "--release", "-p", "rookery"]);
    status(cmd)?;
    let dist = target_dir().join("dist");
    std::fs::create_dir_all(&dist)?;
    // A plain `rookery-agent` from an older build would be taken for a third agent.
    let _ = std::fs::remove_file(dist.join("rookery-agent"));
    for (arch, path) in &agents {
        std::fs::copy(path, dist.join(format!("rookery-agent-{arch}")))?;
    }
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
    let agents = build_agents()?;
    let agent = native_agent(&agents)?;
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
    // The aarch64 agent, run under qemu-user by tests/tests/agent_aarch64.rs.
    if let Some((_, p)) = agents.iter().find(|(a, _)| *a == "aarch64") {
        test.env("ROOKERY_AGENT_AARCH64_BIN", p);
    }
    status(test)
}
