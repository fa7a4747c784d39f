//! Running the built `rookery` the way the end-to-end tests do: no colour, nothing taken from
//! the caller's `KUBECONFIG`/`ROOKERY_*` environment, and every run's command line, exit code,
//! time and output in the test log.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::bins;

/// One finished run of `rookery`.
#[derive(Debug, Clone)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

/// `rookery`, isolated from the caller's environment.
pub fn rookery() -> Command {
    let mut c = Command::new(bins::rookery());
    c.env_remove("KUBECONFIG")
        .env_remove("ROOKERY_STACK")
        .env_remove("ROOKERY_INVENTORY")
        .env("NO_COLOR", "1");
    c
}

/// `rookery CMD -i INV --stack STACK --facts FACTS --bundle-dir UPSTREAM --kubeconfig KC` for a
/// stack directory laid out like `stacks/lab-3node` (see [`lab_copy`]).
pub fn with_stack(cmd: &str, stack_dir: &Path, kubeconfig: &Path) -> Command {
    let mut c = rookery();
    c.arg(cmd)
        .arg("-i")
        .arg(stack_dir.join("inventory.yaml"))
        .arg("--stack")
        .arg(stack_dir.join("stack.yaml"))
        .arg("--facts")
        .arg(stack_dir.join("facts.json"))
        .arg("--bundle-dir")
        .arg(bins::shared_dir().join("upstream"))
        .arg("--kubeconfig")
        .arg(kubeconfig);
    c
}

/// Run it to the end and log what happened.
pub fn run(cmd: &mut Command) -> Run {
    let line: Vec<String> = cmd
        .get_args()
        .map(OsStr::to_string_lossy)
        .map(|a| a.into_owned())
        .collect();
    let t0 = Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bins::rookery().display()));
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: t0.elapsed(),
    };
    eprintln!(
        "$ rookery {}\nexit {} in {:.1?}\n--- stdout\n{}--- stderr\n{}",
        line.join(" "),
        run.code,
        run.took,
        run.stdout,
        run.stderr
    );
    run
}

/// A copy of `stacks/lab-3node` (stack, inventory, facts, secrets) under `dir/lab`, to edit.
pub fn lab_copy(dir: &Path) -> PathBuf {
    let lab = bins::repo_root().join("stacks/lab-3node");
    let to = dir.join("lab");
    let copy = |from: &Path, to: &Path| {
        std::fs::copy(from, to)
            .unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", from.display(), to.display()));
    };
    std::fs::create_dir_all(to.join("secrets"))
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", to.display()));
    for f in ["stack.yaml", "inventory.yaml", "facts.json"] {
        copy(&lab.join(f), &to.join(f));
    }
    let secrets = std::fs::read_dir(lab.join("secrets"))
        .unwrap_or_else(|e| panic!("cannot read the lab's secrets: {e}"));
    for e in secrets.flatten() {
        copy(&e.path(), &to.join("secrets").join(e.file_name()));
    }
    to
}
