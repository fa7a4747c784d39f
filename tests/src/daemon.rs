//! Long-running helper processes of a harness (etcd, kube-apiserver, Velero, a fake S3, ...):
//! started with their output in a log file, checked while a harness waits for them, and killed
//! by PID in `Drop` — together with the children they started themselves (Velero runs its
//! plugins as child processes), found by walking `/proc` from the daemon's own PID.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// One process a harness started and owns.
pub struct Daemon {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Start `cmd` with stdin closed and stdout + stderr appended to `log`.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Result<Daemon> {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {name} ({cmd:?})"))?;
        Ok(Daemon {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the daemon's log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// An error naming the daemon, its exit status and the tail of its log when it is no
    /// longer running.
    pub fn ensure_running(&mut self) -> Result<()> {
        if let Some(st) = self.exited() {
            bail!(
                "{} exited ({st}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                self.log_tail(40)
            );
        }
        Ok(())
    }

    /// Poll `check` every 100 ms until it is true, failing when the daemon exits or `within`
    /// passes; both errors carry the tail of its log.
    pub async fn wait_until(
        &mut self,
        what: &str,
        within: Duration,
        check: impl Fn() -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            self.ensure_running()?;
            if check() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not {what} within {within:?}; last lines of {}:\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kill the daemon and its descendants; on failure, the PIDs still alive.
    fn stop(&mut self) -> Vec<u32> {
        let pid = self.child.id();
        // Collected before the kill: once the parent dies its children are re-parented and
        // can no longer be told apart from anyone else's processes.
        let descendants = descendants(pid);
        let mut left = Vec::new();
        // Our own child by PID (not a name lookup), so this cannot hit anyone else's process.
        let _ = self.child.kill();
        if self.child.wait().is_err() {
            left.push(pid);
        }
        for d in descendants {
            if !kill_and_wait(d, Duration::from_secs(5)) {
                left.push(d);
            }
        }
        left
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let left = self.stop();
        if !left.is_empty() {
            let pids: Vec<String> = left.iter().map(u32::to_string).collect();
            eprintln!(
                "harness: could not stop {} (PIDs {}); run: kill -9 {}",
                self.name,
                pids.join(", "),
                pids.join(" ")
            );
        }
    }
}

/// The last `lines` lines of a text file (empty when unreadable).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The parent PID from `/proc/PID/stat` (the field after the `(comm)`, which may itself hold
/// spaces and parentheses).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Every live descendant of `root` (children first found, grandchildren after).
fn descendants(root: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return vec![];
    };
    let pids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let parents: Vec<(u32, u32)> = pids
        .iter()
        .filter_map(|p| Some((*p, parent_of(*p)?)))
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

/// SIGKILL a process that is not our direct child and wait until `/proc` no longer shows it
/// alive (it is reaped by whoever adopted it).
fn kill_and_wait(pid: u32, within: Duration) -> bool {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            // A zombie is dead; it waits only for its new parent to reap it.
            Ok(s)
                if s.rfind(')')
                    .is_some_and(|i| s[i + 1..].trim_start().starts_with('Z')) =>
            {
                return true;
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    false
}

/// A plain-HTTP `GET` on `127.0.0.1:port` for health checks: the status code and up to 64 KiB
/// of the response, or None when nothing answers (yet).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
        .ok()?;
    let mut body = Vec::new();
    s.take(64 * 1024).read_to_end(&mut body).ok()?;
    let text = String::from_utf8_lossy(&body).to_string();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, text))
}
