"""Shared pieces of the benchmarks: N real sshd "hosts" on loopback, the PyPI peers' venv,
and timing of a command that must succeed.

Every host is its own OpenSSH sshd (own port, own host key) on 127.0.0.1, all accepting one
generated client key for root through AuthorizedKeysFile, so root's own authorized_keys is never
touched. All hosts are the same machine: the benchmarks keep per-host paths apart by host name.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("ROOKERY_BENCH_CACHE", "/var/cache/rookery-bench"))


def _free_base(n):
    """First base port (from $ROOKERY_BENCH_PORT or 24000, in steps of 1000) with n free ports:
    other helpers or a second benchmark may hold the default range."""
    base = int(os.environ.get("ROOKERY_BENCH_PORT", "24000"))
    while base + n < 65000:
        try:
            for p in range(base, base + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
            return base
        except OSError:
            base += 1000
    raise SystemExit("no free range of loopback ports for the sshd hosts")
PYPI = ["ansible-core==2.19.*", "pyinfra==3.*"]


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


class Failed(Exception):
    """A benchmarked command failed or did not do the whole job."""


class Lab:
    """N sshd servers on 127.0.0.1, each with its own host key, killed on close()."""

    def __init__(self, n, workdir: Path, clean_rc=False):
        if os.geteuid() != 0:
            raise SystemExit("the benchmark needs root (one sshd per host)")
        if not Path("/usr/sbin/sshd").exists():
            raise SystemExit("/usr/sbin/sshd missing: apt-get install openssh-server")
        self.n = n
        self.clean_rc = clean_rc
        self.base = _free_base(n)
        self.dir = workdir
        self.procs = []
        self.key = workdir / "id_ed25519"
        self.known_hosts = workdir / "known_hosts"
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)])
        Path("/run/sshd").mkdir(exist_ok=True)
        auth = workdir / "authorized_keys"
        shutil.copy(f"{self.key}.pub", auth)
        os.chmod(auth, 0o600)
        lines = []
        try:
            for i in range(n):
                hdir = workdir / f"host{i}"
                hdir.mkdir()
                hk = hdir / "ssh_host_ed25519_key"
                sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hk)])
                port = self.base + i
                cfg = hdir / "sshd_config"
                # MaxStartups above N: the default 10:30:100 drops concurrent handshakes at random.
                cfg.write_text(
                    f"Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\n"
                    f"AuthorizedKeysFile {auth}\nPermitRootLogin prohibit-password\n"
                    "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                    f"PidFile {hdir}/sshd.pid\nMaxStartups 200:30:400\nMaxSessions 100\n"
                    "StrictModes no\nLogLevel ERROR\n"
                    # Debian's bash sources ~/.bashrc for sshd's `$SHELL -c` only while
                    # SHLVL < 2: SHLVL=1 from sshd makes it 2, so no tool pays the rc file.
                    + ("SetEnv SHLVL=1\n" if clean_rc else "")
                )
                self.procs.append(
                    subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(cfg)], stderr=subprocess.DEVNULL)
                )
                pub = (hdir / "ssh_host_ed25519_key.pub").read_text().split()
                lines.append(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
            self.known_hosts.write_text("".join(lines))
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _wait_ready(self):
        deadline = time.time() + 30
        for i, p in enumerate(self.procs):
            while True:
                if p.poll() is not None:
                    raise SystemExit(f"sshd on port {self.base + i} exited ({p.returncode}); is the port taken?")
                try:
                    socket.create_connection(("127.0.0.1", self.base + i), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        raise SystemExit(f"sshd on port {self.base + i} did not start")
                    time.sleep(0.05)

    def names(self):
        return [f"h{i:02d}" for i in range(self.n)]

    def ports(self):
        return [self.base + i for i in range(self.n)]

    def ssh_opts(self):
        """OpenSSH client options: this lab's key and known_hosts only, no connection sharing."""
        return [
            "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-i", str(self.key),
            "-o", "ControlMaster=no", "-o", "ControlPath=none",
        ]

    def write_inventory(self, path: Path):
        """One Ansible YAML inventory read unchanged by ansible and rookery."""
        hosts = "".join(f"        {h}: {{ansible_port: {p}}}\n" for h, p in zip(self.names(), self.ports()))
        path.write_text(
            "all:\n  vars:\n    ansible_host: 127.0.0.1\n    ansible_user: root\n"
            f"    ansible_ssh_private_key_file: {self.key}\n"
            f"    ansible_ssh_common_args: \"-o UserKnownHostsFile={self.known_hosts}"
            " -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes\"\n"
            "    ansible_python_interpreter: /usr/bin/python3\n"
            f"  children:\n    nodes:\n      hosts:\n{hosts}"
        )
        return path

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs = []


def venv():
    """The venv holding ansible-core and pyinfra from PyPI (created on first use)."""
    v = CACHE / "venv"
    marker = v / ".installed"
    if not marker.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        sh([sys.executable, "-m", "venv", str(v)])
        sh([str(v / "bin/pip"), "install", "-q", *PYPI])
        marker.write_text(" ".join(PYPI))
    return v


def peer_env(v):
    """Environment for the PyPI peers: the venv first on PATH (ansible finds its own tools)."""
    return dict(os.environ, PATH=f"{v / 'bin'}:{os.environ.get('PATH', '')}", NO_COLOR="1",
                ANSIBLE_NOCOLOR="1")


def run(cmd, env=None, cwd=None, ok_codes=(0,)):
    """Run cmd and return (seconds, CompletedProcess); raise Failed on an unexpected exit code."""
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    if r.returncode not in ok_codes:
        raise Failed(
            f"exit {r.returncode}: {' '.join(map(str, cmd))[:300]}\n"
            f"--- stderr (tail)\n{r.stderr[-3000:]}\n--- stdout (tail)\n{r.stdout[-3000:]}"
        )
    return dt, r


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def busy_note():
    """A warning when other work shares this machine (other helpers' sshd labs or builds skew
    every figure: the runs are CPU-bound on the sshd side)."""
    load = os.getloadavg()[0]
    others = subprocess.run(["pgrep", "-c", "-x", "rustc"], stdout=subprocess.PIPE, text=True).stdout.strip()
    sshd = subprocess.run(["pgrep", "-c", "-f", "sshd -D"], stdout=subprocess.PIPE, text=True).stdout.strip()
    return f"load {load:.1f} on {os.cpu_count()} cores, rustc processes {others or 0}, sshd -D listeners {sshd or 0}"
