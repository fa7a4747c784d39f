//! Real OpenSSH `sshd` servers on loopback ports, for the SSH transport and probe tests.
//!
//! An [`SshLab`] owns a temp dir with a generated client key (ed25519, no passphrase), a
//! fake `$HOME` for the runner (so the real `~/.ssh` of whoever runs the tests is never read
//! or written), and N `sshd -D -e -f CONFIG` processes, each with its own host key, port and
//! config. Processes are killed in `Drop`. Users for become and rc-noise cases are created
//! with [`ensure_user`]; they persist on the machine (tests re-use them idempotently).
//!
//! Needs root, `/usr/sbin/sshd` and `ssh-keygen` (Debian: `openssh-server`), and `sudo` for
//! the become cases.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub const SSHD: &str = "/usr/sbin/sshd";

/// Why the lab cannot run here, or None when it can.
pub fn missing_prerequisite() -> Option<String> {
    if !crate::require::is_root() {
        return Some("root (sshd on loopback, test users)".into());
    }
    if !Path::new(SSHD).exists() {
        return Some(format!("{SSHD} (apt-get install openssh-server)"));
    }
    if !crate::require::have_program("ssh-keygen") {
        return Some("ssh-keygen (apt-get install openssh-client)".into());
    }
    None
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

pub fn keygen(path: &Path, passphrase: &str) -> Result<()> {
    run(Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            passphrase,
            "-C",
            "rookery-test",
            "-f",
        ])
        .arg(path))?;
    Ok(())
}

/// A port nobody listens on right now (bound, then released).
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// The agent binary to ship: `$ROOKERY_AGENT_BIN`, then the static build, then the debug
/// build (same machine, so a dynamically linked agent runs too).
pub fn agent_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("ROOKERY_AGENT_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::bins::repo_root().join("target"));
    let st = target.join("x86_64-unknown-linux-musl/agent/rookery-agent");
    if st.exists() {
        return st;
    }
    let dbg = target.join("debug/rookery-agent");
    assert!(
        dbg.exists(),
        "no rookery-agent binary: run `cargo build -p rookery-agent` (or `cargo xtask agent`)"
    );
    dbg
}

/// One running sshd.
pub struct SshdHost {
    pub port: u16,
    pub dir: PathBuf,
    config: PathBuf,
    /// `ssh-ed25519 AAAA...` of this host's key.
    pub host_key: String,
    child: Option<Child>,
}

impl SshdHost {
    /// This host's line for a known_hosts file.
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}", self.port, self.host_key)
    }

    /// The SHA256 fingerprint as `ssh-keygen -l` prints it (`SHA256:...`).
    pub fn fingerprint(&self) -> Result<String> {
        let out = run(Command::new("ssh-keygen")
            .arg("-l")
            .arg("-f")
            .arg(self.dir.join("ssh_host_ed25519_key.pub")))?;
        out.split_whitespace()
            .nth(1)
            .map(str::to_string)
            .context("ssh-keygen -l printed no fingerprint")
    }

    /// sshd's own log (it runs with `-e`), for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// Replace the host key (a "reinstalled" host) and restart sshd on the same port.
    pub fn regenerate_host_key(&mut self) -> Result<()> {
        self.stop();
        let key = self.dir.join("ssh_host_ed25519_key");
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(key.with_extension("pub"));
        keygen(&key, "")?;
        self.host_key = read_pub(&key.with_extension("pub"))?;
        self.spawn()
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn spawn(&mut self) -> Result<()> {
        let log = std::fs::File::create(self.dir.join("sshd.log"))?;
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {SSHD}"))?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(st)) = c.try_wait()
            {
                bail!("sshd on port {} exited ({st}): {}", self.port, self.log());
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 7];
                if s.read_exact(&mut buf).is_ok() && &buf == b"SSH-2.0" {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("sshd on port {} did not come up: {}", self.port, self.log())
    }
}

impl Drop for SshdHost {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_pub(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let mut f = text.split_whitespace();
    match (f.next(), f.next()) {
        (Some(t), Some(k)) => Ok(format!("{t} {k}")),
        _ => bail!("{} is not a public key", path.display()),
    }
}

/// A set of sshd servers plus the client side (key, fake home).
pub struct SshLab {
    dir: tempfile::TempDir,
    /// Private key every host accepts (for root and every test user).
    pub client_key: PathBuf,
    pub hosts: Vec<SshdHost>,
}

impl SshLab {
    /// Start `n` hosts with the default config.
    pub fn start(n: usize) -> Result<SshLab> {
        let mut lab = SshLab::empty()?;
        for _ in 0..n {
            lab.add_host("")?;
        }
        Ok(lab)
    }

    /// No hosts yet; add them with [`SshLab::add_host`].
    pub fn empty() -> Result<SshLab> {
        std::fs::create_dir_all("/run/sshd").context("mkdir /run/sshd (sshd's privsep dir)")?;
        let dir = tempfile::Builder::new()
            .prefix("rookery-sshlab-")
            .tempdir()?;
        // sshd reads authorized_keys as the target user: the path must be readable by all.
        set_mode(dir.path(), 0o755)?;
        let client_key = dir.path().join("id_ed25519");
        keygen(&client_key, "")?;
        let auth = dir.path().join("authorized_keys");
        std::fs::copy(client_key.with_extension("pub"), &auth)?;
        set_mode(&auth, 0o644)?;
        std::fs::create_dir_all(dir.path().join("home/.ssh"))?;
        Ok(SshLab {
            dir,
            client_key,
            hosts: vec![],
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Only the client side (temp dir, fake home, key): for `connection: local` tests, which
    /// need neither root nor sshd.
    pub fn empty_client_only() -> Result<SshLab> {
        let dir = tempfile::Builder::new()
            .prefix("rookery-sshlab-")
            .tempdir()?;
        let client_key = dir.path().join("id_ed25519");
        std::fs::create_dir_all(dir.path().join("home/.ssh"))?;
        Ok(SshLab {
            dir,
            client_key,
            hosts: vec![],
        })
    }

    /// The runner's `$HOME` in tests (its `.ssh/known_hosts` starts empty).
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Start one more sshd; `extra` is appended to its sshd_config (e.g. `Match User x` +
    /// `ForceCommand ...`).
    pub fn add_host(&mut self, extra: &str) -> Result<&mut SshdHost> {
        let idx = self.hosts.len();
        let hdir = self.dir.path().join(format!("host{idx}"));
        std::fs::create_dir_all(&hdir)?;
        let key = hdir.join("ssh_host_ed25519_key");
        keygen(&key, "")?;
        let host_key = read_pub(&key.with_extension("pub"))?;
        let auth = self.dir.path().join("authorized_keys");
        let mut last_err = None;
        for _ in 0..5 {
            let port = free_port()?;
            let config = hdir.join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\n\
                     AuthorizedKeysFile {}\nStrictModes no\nPermitRootLogin prohibit-password\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                     MaxStartups 200:30:400\nMaxSessions 50\nLogLevel VERBOSE\n\
                     AcceptEnv none\n{extra}\n",
                    key.display(),
                    hdir.join("sshd.pid").display(),
                    auth.display(),
                ),
            )?;
            let mut h = SshdHost {
                port,
                dir: hdir.clone(),
                config,
                host_key: host_key.clone(),
                child: None,
            };
            match h.spawn() {
                Ok(()) => {
                    self.hosts.push(h);
                    let n = self.hosts.len();
                    return Ok(&mut self.hosts[n - 1]);
                }
                // A parallel test may have taken the port between bind and sshd.
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("sshd did not start")))
    }

    /// Write a known_hosts file listing `hosts` (indexes), return its path.
    pub fn known_hosts(&self, name: &str, hosts: &[usize]) -> Result<PathBuf> {
        let p = self.dir.path().join(name);
        let text: String = hosts
            .iter()
            .map(|i| format!("{}\n", self.hosts[*i].known_hosts_line()))
            .collect();
        std::fs::write(&p, text)?;
        Ok(p)
    }

    /// Write `name` in the lab dir with `content`, return its path.
    pub fn write(&self, name: &str, content: &str) -> Result<PathBuf> {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content)?;
        Ok(p)
    }

    /// One YAML inventory host entry (indented for `all.hosts`) for host `idx` logging in as
    /// `user` with the lab key; `extra` lines are added as more host vars (`key: value`).
    pub fn host_entry(&self, name: &str, port: u16, user: &str, extra: &[&str]) -> String {
        let mut s = format!(
            "    {name}:\n      ansible_host: 127.0.0.1\n      ansible_port: {port}\n      \
             ansible_user: {user}\n      ansible_ssh_private_key_file: {}\n",
            self.client_key.display()
        );
        for e in extra {
            s.push_str(&format!("      {e}\n"));
        }
        s
    }

    /// Write an inventory made of `entries` (from [`SshLab::host_entry`]).
    pub fn inventory(&self, file: &str, entries: &[String]) -> Result<PathBuf> {
        let mut text = String::from("all:\n  hosts:\n");
        for e in entries {
            text.push_str(e);
        }
        self.write(file, &text)
    }

    /// `rookery` with an isolated environment: fake `$HOME`, no ssh-agent, no colour, the
    /// agent binary from [`agent_binary`].
    pub fn rookery(&self) -> Command {
        let mut c = Command::new(crate::bins::rookery());
        c.env("HOME", self.home())
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("ROOKERY_SSH_PASSPHRASE")
            .env_remove("ROOKERY_INVENTORY")
            .env("NO_COLOR", "1")
            .env("ROOKERY_AGENT", agent_binary())
            .stdin(Stdio::null());
        c
    }
}

pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

/// How a test user may use sudo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sudo {
    None,
    /// `NOPASSWD: ALL`.
    NoPassword,
    /// `ALL` with the user's password.
    Password,
}

/// A local account the lab's sshd servers accept with the lab key.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub name: String,
    pub home: PathBuf,
}

impl TestUser {
    /// Where the agent is cached for this user on the "node".
    pub fn agent_dir(&self) -> PathBuf {
        self.home.join(".cache/rookery")
    }

    /// Write a file in the user's home, owned by the user.
    pub fn write_home_file(&self, rel: &str, content: &str) -> Result<()> {
        let p = self.home.join(rel);
        std::fs::write(&p, content)?;
        run(Command::new("chown").arg(&self.name).arg(&p))?;
        Ok(())
    }
}

/// Create (or reset) user `name` with bash as shell, `password` set, the given sudo rule,
/// and a clean home (its agent cache removed). Retries useradd while another test holds
/// the passwd lock.
pub fn ensure_user(name: &str, password: &str, sudo: Sudo) -> Result<TestUser> {
    let exists = Command::new("id")
        .arg("-u")
        .arg(name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !exists {
        let mut last = String::new();
        let mut ok = false;
        for _ in 0..50 {
            let out = Command::new("useradd")
                .args(["-m", "-s", "/bin/bash", name])
                .output()
                .context("cannot run useradd")?;
            // 9 = already exists (a parallel test created it).
            if out.status.success() || out.status.code() == Some(9) {
                ok = true;
                break;
            }
            last = String::from_utf8_lossy(&out.stderr).to_string();
            std::thread::sleep(Duration::from_millis(100));
        }
        if !ok {
            bail!("useradd {name} failed: {last}");
        }
    }
    let mut chpasswd = Command::new("chpasswd")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run chpasswd")?;
    if let Some(mut stdin) = chpasswd.stdin.take() {
        use std::io::Write;
        writeln!(stdin, "{name}:{password}")?;
    }
    let out = chpasswd.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "chpasswd for {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let sudoers = PathBuf::from(format!("/etc/sudoers.d/rookery-test-{name}"));
    match sudo {
        Sudo::None => {
            let _ = std::fs::remove_file(&sudoers);
        }
        Sudo::NoPassword | Sudo::Password => {
            let rule = if sudo == Sudo::NoPassword {
                format!("{name} ALL=(ALL) NOPASSWD: ALL\n")
            } else {
                format!("{name} ALL=(ALL) ALL\n")
            };
            let tmp = sudoers.with_extension("tmp");
            std::fs::write(&tmp, rule)?;
            set_mode(&tmp, 0o440)?;
            std::fs::rename(&tmp, &sudoers)?;
        }
    }
    let home = PathBuf::from(
        run(Command::new("getent").args(["passwd", name]))?
            .trim()
            .split(':')
            .nth(5)
            .unwrap_or_default(),
    );
    if home.as_os_str().is_empty() {
        bail!("user {name} has no home directory");
    }
    let user = TestUser {
        name: name.to_string(),
        home,
    };
    let _ = std::fs::remove_dir_all(user.agent_dir());
    // A clean, quiet rc: tests that want noise write their own.
    user.write_home_file(".bashrc", "")?;
    user.write_home_file(".profile", "")?;
    Ok(user)
}

/// The result of one `rookery probe -o json` run.
#[derive(Debug)]
pub struct ProbeRun {
    pub code: Option<i32>,
    pub json: serde_json::Value,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl ProbeRun {
    /// The `hosts[]` entry for `name` (panics with the whole output when absent).
    pub fn host(&self, name: &str) -> &serde_json::Value {
        self.json["hosts"]
            .as_array()
            .and_then(|hs| hs.iter().find(|h| h["host"] == name))
            .unwrap_or_else(|| panic!("host {name} not in probe output:\n{self}"))
    }

    pub fn status(&self, name: &str) -> String {
        self.host(name)["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn error(&self, name: &str) -> String {
        self.host(name)["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl std::fmt::Display for ProbeRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// Run `cmd` (a `rookery probe ...` from [`SshLab::rookery`]) with `-o json` added.
pub fn run_probe_json(cmd: &mut Command) -> Result<ProbeRun> {
    cmd.args(["-o", "json"]);
    let start = Instant::now();
    let out = cmd.output().context("cannot run rookery")?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    Ok(ProbeRun {
        code: out.status.code(),
        json,
        stdout,
        stderr,
        elapsed: start.elapsed(),
    })
}

/// Library-level access for tests that need more than the CLI shows (euid, timeouts).
impl SshLab {
    /// The connection spec of `host` in an inventory made of `entries`.
    pub fn spec(
        &self,
        entries: &[String],
        host: &str,
    ) -> Result<rookery_inventory::ConnectionSpec> {
        let path = self.inventory(&format!("spec-{host}.yaml"), entries)?;
        let inv = rookery_inventory::Inventory::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(inv
            .host(host)
            .with_context(|| format!("{host} not in inventory"))?
            .connection
            .clone())
    }

    /// Connect options isolated from the real `~/.ssh`: lab known_hosts `kh`, an empty ssh
    /// config, the test agent binary.
    pub fn connect_options(&self, kh: &Path) -> Result<rookery_transport::ConnectOptions> {
        let agent = rookery_transport::AgentBinary::load(agent_binary())?;
        let mut o = rookery_transport::ConnectOptions::new(agent);
        o.known_hosts = Some(kh.to_path_buf());
        o.ssh_config = Some(self.write("ssh_config", "")?);
        o.connect_timeout = Duration::from_secs(10);
        o.command_timeout = Duration::from_secs(30);
        Ok(o)
    }
}
