#!/usr/bin/env python3
"""Benchmark `rookery probe` against its peers on N real loopback sshd hosts.

Peers, measured in the same run over the same hosts:
  ssh-true  parallel `ssh -o BatchMode=yes host true` (one OpenSSH client per host)
  pyinfra   pyinfra fact gathering (hostname, distro, kernel, arch, CPUs, memory, block devices)
  ansible   `ansible all -m setup` (ansible-core, forks=N, pipelining on)
  rookery   `rookery probe` with the agent already on the hosts (warm); the first run, which
            uploads the agent, is reported separately.

Each figure is the median of --runs runs. Ratios are peer / rookery (warm).
Nothing here asserts a time: this is a report, not a test.

Usage: bench/probe_bench.py [--hosts 10,50] [--runs 3] [--rookery PATH] [--agent PATH]
       [--peers ssh-true,pyinfra,ansible] [--json FILE]
Needs root (sshd per host), openssh-server, python3-venv; pyinfra and ansible-core are
installed from PyPI into a venv under $ROOKERY_BENCH_CACHE (default /var/cache/rookery-bench).
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("ROOKERY_BENCH_CACHE", "/var/cache/rookery-bench"))
BASE_PORT = 24000
PYPI = ["ansible-core==2.19.*", "pyinfra==3.*"]


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


class Lab:
    """N sshd servers on 127.0.0.1, each with its own host key, killed on exit."""

    def __init__(self, n, workdir: Path):
        self.n = n
        self.dir = workdir
        self.procs = []
        self.key = workdir / "id_ed25519"
        self.known_hosts = workdir / "known_hosts"
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)])
        Path("/run/sshd").mkdir(exist_ok=True)
        # root's authorized_keys would be touched by a plain setup; use AuthorizedKeysFile instead.
        auth = workdir / "authorized_keys"
        shutil.copy(f"{self.key}.pub", auth)
        os.chmod(auth, 0o600)
        lines = []
        for i in range(n):
            hdir = workdir / f"host{i}"
            hdir.mkdir()
            hk = hdir / "ssh_host_ed25519_key"
            sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hk)])
            port = BASE_PORT + i
            cfg = hdir / "sshd_config"
            cfg.write_text(
                f"Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\n"
                f"AuthorizedKeysFile {auth}\nPermitRootLogin prohibit-password\n"
                "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                f"PidFile {hdir}/sshd.pid\nMaxStartups 100:30:200\nMaxSessions 50\n"
                "LogLevel ERROR\n"
            )
            self.procs.append(
                subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(cfg)], stderr=subprocess.DEVNULL)
            )
            pub = (hdir / "ssh_host_ed25519_key.pub").read_text().split()
            lines.append(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
        self.known_hosts.write_text("".join(lines))
        self._wait_ready()

    def _wait_ready(self):
        import socket

        deadline = time.time() + 30
        for i in range(self.n):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", BASE_PORT + i), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        raise SystemExit(f"sshd on port {BASE_PORT + i} did not start")
                    time.sleep(0.05)

    def ports(self):
        return [BASE_PORT + i for i in range(self.n)]

    def ssh_opts(self):
        return [
            "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-i", str(self.key),
            "-o", "ControlMaster=no", "-o", "ControlPath=none",
        ]

    def write_inventory(self, path: Path):
        common = " ".join(self.ssh_opts()[:-4])
        hosts = "".join(
            f"        h{i}: {{ansible_port: {p}}}\n" for i, p in enumerate(self.ports())
        )
        path.write_text(
            "all:\n  vars:\n    ansible_host: 127.0.0.1\n    ansible_user: root\n"
            f"    ansible_ssh_private_key_file: {self.key}\n"
            f"    ansible_ssh_common_args: \"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes\"\n"
            "    ansible_python_interpreter: /usr/bin/python3\n"
            f"  children:\n    nodes:\n      hosts:\n{hosts}"
        )

    def close(self):
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()


def venv():
    v = CACHE / "venv"
    marker = v / ".installed"
    if not marker.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        sh([sys.executable, "-m", "venv", str(v)])
        sh([str(v / "bin/pip"), "install", "-q", *PYPI])
        marker.write_text(" ".join(PYPI))
    return v


def timed(cmd, env=None, cwd=None):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        sys.stderr.write(f"command failed ({r.returncode}): {' '.join(map(str, cmd))[:200]}\n{r.stderr[-2000:]}\n{r.stdout[-2000:]}\n")
        raise SystemExit(1)
    return dt


def bench_ssh_true(lab):
    script = " ".join(
        f"ssh {' '.join(lab.ssh_opts())} -p {p} root@127.0.0.1 true &" for p in lab.ports()
    ) + " wait"
    return lambda: timed(["bash", "-c", script])


def bench_rookery(lab, inv, rookery, agent, forks):
    env = dict(os.environ, ROOKERY_AGENT=str(agent), NO_COLOR="1")
    cmd = [str(rookery), "probe", "-i", str(inv), "-o", "json", "-f", str(forks)]
    return lambda: timed(cmd, env=env)


def bench_ansible(lab, inv, v, forks):
    env = dict(os.environ, ANSIBLE_PIPELINING="True", ANSIBLE_HOST_KEY_CHECKING="True",
               ANSIBLE_FORKS=str(forks), ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_SSH_ARGS="-o ControlMaster=auto -o ControlPersist=60s")
    cmd = [str(v / "bin/ansible"), "all", "-i", str(inv), "-m", "setup", "-f", str(forks)]
    return lambda: timed(cmd, env=env)


PYINFRA_DEPLOY = """
from pyinfra import host
from pyinfra.facts.server import Hostname, LinuxDistribution, KernelVersion, Arch, Os
from pyinfra.facts.hardware import Cpus, Memory, BlockDevices
for fact in (Hostname, LinuxDistribution, KernelVersion, Arch, Cpus, Memory, BlockDevices):
    host.get_fact(fact)
"""


def bench_pyinfra(lab, workdir, v, n):
    inv = workdir / "pyinfra_inventory.py"
    hosts = ", ".join(
        f"('h{i}', {{'ssh_hostname': '127.0.0.1', 'ssh_port': {p}, 'ssh_user': 'root', "
        f"'ssh_key': '{lab.key}', 'ssh_known_hosts_file': '{lab.known_hosts}', "
        "'ssh_strict_host_key_checking': 'yes'})"
        for i, p in enumerate(lab.ports())
    )
    inv.write_text(f"nodes = [{hosts}]\n")
    deploy = workdir / "facts_deploy.py"
    deploy.write_text(PYINFRA_DEPLOY)
    cmd = [str(v / "bin/pyinfra"), "-y", "--parallel", str(n), str(inv), str(deploy)]
    return lambda: timed(cmd, cwd=workdir)


def median_of(fn, runs):
    return statistics.median(fn() for _ in range(runs))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", default="10,50")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rookery", default=str(REPO / "target/dist/rookery"))
    ap.add_argument("--agent", default=str(REPO / "target/dist/rookery-agent"))
    ap.add_argument("--peers", default="ssh-true,pyinfra,ansible")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    peers = [p for p in args.peers.split(",") if p]
    v = venv() if {"pyinfra", "ansible"} & set(peers) else None
    results = []
    for n in [int(x) for x in args.hosts.split(",")]:
        with tempfile.TemporaryDirectory(prefix=f"rookery-bench-{n}-") as d:
            work = Path(d)
            lab = Lab(n, work)
            try:
                inv = work / "inventory.yaml"
                lab.write_inventory(inv)
                # The agent cache lives in root's home on these hosts: clear it for a true first run.
                shutil.rmtree("/var/lib/rookery", ignore_errors=True)
                row = {"hosts": n}
                rook = bench_rookery(lab, inv, args.rookery, args.agent, n)
                row["rookery_first"] = rook()
                row["rookery"] = median_of(rook, args.runs)
                if "ssh-true" in peers:
                    row["ssh-true"] = median_of(bench_ssh_true(lab), args.runs)
                if "pyinfra" in peers:
                    row["pyinfra"] = median_of(bench_pyinfra(lab, work, v, n), args.runs)
                if "ansible" in peers:
                    row["ansible"] = median_of(bench_ansible(lab, inv, v, n), args.runs)
                results.append(row)
            finally:
                lab.close()
    agent_size = os.path.getsize(args.agent)
    print(f"\nrookery probe vs peers, loopback sshd hosts, {os.cpu_count()} cores, median of {args.runs}")
    print(f"agent: {agent_size} bytes ({agent_size / 1048576:.2f} MiB) static, stripped\n")
    cols = ["rookery", "rookery_first"] + [p for p in ["ssh-true", "pyinfra", "ansible"] if p in peers]
    print("| hosts | " + " | ".join(cols) + " | " + " | ".join(f"{p}/rookery" for p in cols[2:]) + " |")
    print("|---" * (1 + len(cols) + len(cols) - 2) + "|")
    for r in results:
        cells = [f"{r[c]:.2f} s" for c in cols]
        ratios = [f"{r[p] / r['rookery']:.1f}x" for p in cols[2:]]
        print(f"| {r['hosts']} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps({"agent_bytes": agent_size, "results": results}, indent=2))


if __name__ == "__main__":
    main()
