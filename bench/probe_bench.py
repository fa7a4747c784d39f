#!/usr/bin/env python3
"""Benchmark `rookery probe` against its peers on N real loopback sshd hosts (issue 2, item 8).

Peers, measured in the same run over the same hosts:
  ssh-true  parallel `ssh -o BatchMode=yes host true` (one OpenSSH client per host)
  pyinfra   `pyinfra INVENTORY fact ...` for hostname, distro, kernel, arch, CPUs, memory,
            block devices (pyinfra 3.x, --parallel N)
  ansible   `ansible all -m setup` (ansible-core, forks=N, pipelining on, OpenSSH defaults
            incl. ControlPersist=60s, so runs after the first reuse master connections)
  rookery   `rookery probe -o json` with the agent already on the hosts (warm); the first run,
            which uploads the agent (all hosts share one machine, so N concurrent uploads race
            for one cache path), is reported separately.

Every run is checked, not just timed: rookery's JSON must say ok for all N hosts, ansible must
print SUCCESS for all N, pyinfra must return each fact for all N, every `ssh true` must exit 0.
Each figure is the median of --runs runs. Ratios are peer / rookery (warm).
Nothing here asserts a time: this is a report, not a test.

Usage: bench/probe_bench.py [--hosts 10,50] [--runs 3] [--rookery PATH] [--agent PATH]
       [--peers ssh-true,pyinfra,ansible] [--json FILE] [--keep-agent]
Needs root (sshd per host), openssh-server, python3-venv; pyinfra and ansible-core are
installed from PyPI into a venv under $ROOKERY_BENCH_CACHE (default /var/cache/rookery-bench).
"""

import argparse
import datetime
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab import REPO, Failed, Lab, busy_note, median, peer_env, run, venv  # noqa: E402

PYINFRA_FACTS = [
    "server.Hostname", "server.LinuxDistribution", "server.KernelVersion", "server.Arch",
    "hardware.Cpus", "hardware.Memory", "hardware.BlockDevices",
]


def bench_ssh_true(lab):
    # `wait PID` per client: a bare `wait` would hide failed connections.
    clients = " ".join(
        f"ssh {' '.join(lab.ssh_opts())} -p {p} root@127.0.0.1 true & pids+=($!);" for p in lab.ports()
    )
    script = f"pids=(); {clients} rc=0; for p in \"${{pids[@]}}\"; do wait $p || rc=1; done; exit $rc"

    def once():
        return run(["bash", "-c", script])[0]

    return once


def bench_rookery(lab, inv, rookery, agent, forks):
    env = dict(os.environ, NO_COLOR="1")
    cmd = [str(rookery), "probe", "-i", str(inv), "-o", "json", "-f", str(forks), "--agent-binary", str(agent)]

    def once(stats=None):
        dt, r = run(cmd, env=env)
        doc = json.loads(r.stdout)
        ok = [h for h in doc["hosts"] if h["status"] == "ok" and h.get("facts")]
        if len(ok) != lab.n or doc["recap"]["ok"] != lab.n:
            bad = [f"{h['host']}: {h['status']} {h.get('error')}" for h in doc["hosts"] if h["status"] != "ok"]
            raise Failed(f"rookery probe: {len(ok)}/{lab.n} hosts ok\n" + "\n".join(bad[:10]))
        if stats is not None:
            stats["uploaded"] = sum(1 for h in doc["hosts"] if h.get("agent_uploaded"))
            stats["host_ms"] = sorted(h.get("duration_ms", 0) for h in doc["hosts"])
        return dt

    return once


ANSIBLE_LINE = re.compile(r"^(\S+) \| (SUCCESS|CHANGED|FAILED!|UNREACHABLE!|FAILED)", re.M)


def bench_ansible(lab, inv, v, forks):
    env = dict(
        peer_env(v), ANSIBLE_PIPELINING="True", ANSIBLE_HOST_KEY_CHECKING="True",
        ANSIBLE_FORKS=str(forks), ANSIBLE_STDOUT_CALLBACK="oneline", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
    )
    cmd = [str(v / "bin/ansible"), "all", "-i", str(inv), "-m", "setup", "-f", str(forks)]

    def once():
        dt, r = run(cmd, env=env)
        states = dict(ANSIBLE_LINE.findall(r.stdout))
        good = [h for h in lab.names() if states.get(h) == "SUCCESS"]
        if len(good) != lab.n:
            raise Failed(f"ansible -m setup: {len(good)}/{lab.n} SUCCESS: {states}\n{r.stderr[-2000:]}")
        return dt

    return once


def bench_pyinfra(lab, workdir, v, n):
    inv = workdir / "pyinfra_inventory.py"
    hosts = ",\n    ".join(
        f"('{h}', {{'ssh_hostname': '127.0.0.1', 'ssh_port': {p}, 'ssh_user': 'root', "
        f"'ssh_key': '{lab.key}', 'ssh_known_hosts_file': '{lab.known_hosts}', "
        "'ssh_strict_host_key_checking': 'yes'})"
        for h, p in zip(lab.names(), lab.ports())
    )
    inv.write_text(f"nodes = [\n    {hosts},\n]\n")
    cmd = [str(v / "bin/pyinfra"), "--json", "-y", "--parallel", str(n), str(inv), "fact", *PYINFRA_FACTS]
    env = peer_env(v)

    def once():
        dt, r = run(cmd, cwd=workdir, env=env)
        doc = json.loads(r.stdout)
        for fact in PYINFRA_FACTS:
            got = doc.get(fact) or {}
            missing = [h for h in lab.names() if got.get(h) in (None, "")]
            if missing:
                raise Failed(f"pyinfra: fact {fact} missing for {len(missing)} hosts, e.g. {missing[:5]}\n{r.stderr[-2000:]}")
        return dt

    return once


def clear_agent_cache():
    # Root logins keep the agent in /var/lib/rookery: clear it for a true first run.
    for p in Path("/var/lib/rookery").glob("agent-*"):
        p.unlink(missing_ok=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", default="10,50")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rookery", default=str(REPO / "target/dist/rookery"))
    ap.add_argument("--agent", default=str(REPO / "target/dist/rookery-agent-x86_64"))
    ap.add_argument("--peers", default="ssh-true,pyinfra,ansible")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--keep-agent", action="store_true",
                    help="do not clear /var/lib/rookery/agent-* before the first run")
    ap.add_argument("--clean-rc", action="store_true",
                    help="sshd sets SHLVL=1 so bash skips root's ~/.bashrc for every tool (shows the rc-file cost)")
    args = ap.parse_args()
    for p in (args.rookery, args.agent):
        if not Path(p).exists():
            raise SystemExit(f"{p} missing: run `cargo xtask build` first")
    peers = [p for p in args.peers.split(",") if p]
    v = venv() if {"pyinfra", "ansible"} & set(peers) else None
    results = []
    notes = [f"before: {busy_note()}",
             "rc: sshd SetEnv SHLVL=1, root's ~/.bashrc skipped" if args.clean_rc
             else "rc: root's ~/.bashrc (pyenv init) runs on every exec"]
    for n in [int(x) for x in args.hosts.split(",")]:
        with tempfile.TemporaryDirectory(prefix=f"rookery-bench-{n}-") as d:
            work = Path(d)
            lab = Lab(n, work, clean_rc=args.clean_rc)
            try:
                inv = lab.write_inventory(work / "inventory.yaml")
                if not args.keep_agent:
                    clear_agent_cache()
                row = {"hosts": n}
                rook = bench_rookery(lab, inv, args.rookery, args.agent, n)
                first = {}
                row["rookery_first"] = rook(first)
                row["first_uploads"] = first.get("uploaded")
                warm, times, warm_uploads = {}, [], 0
                for _ in range(args.runs):
                    times.append(rook(warm))
                    warm_uploads += warm["uploaded"]
                # Should be 0: other users of /var/lib/rookery (tests) may clear it mid-run.
                row["warm_uploads"] = warm_uploads
                row["rookery"] = median(times)
                row["rookery_runs"] = times
                row["warm_host_ms_max"] = warm["host_ms"][-1] if warm.get("host_ms") else None
                print(f"{n} hosts: rookery first {row['rookery_first']:.2f} s ({row['first_uploads']} uploads), "
                      f"warm {times} ({warm_uploads} uploads)", file=sys.stderr)
                benches = {
                    "ssh-true": lambda: bench_ssh_true(lab),
                    "pyinfra": lambda: bench_pyinfra(lab, work, v, n),
                    "ansible": lambda: bench_ansible(lab, inv, v, n),
                }
                for p in peers:
                    fn = benches[p]()
                    ts = [fn() for _ in range(args.runs)]
                    row[p] = median(ts)
                    row[f"{p}_runs"] = ts
                    print(f"{n} hosts: {p} {ts}", file=sys.stderr)
                results.append(row)
            except Failed as e:
                raise SystemExit(f"{n} hosts: {e}")
            finally:
                lab.close()
    notes.append(f"after: {busy_note()}")
    agent_size = os.path.getsize(args.agent)
    cols = ["rookery", "rookery_first"] + [p for p in ["ssh-true", "pyinfra", "ansible"] if p in peers]
    print(f"\nrookery probe vs peers, N loopback sshd hosts on one machine ({os.cpu_count()} cores), "
          f"median of {args.runs}, {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}")
    print(f"agent: {agent_size} bytes ({agent_size / 1048576:.2f} MiB), static, stripped")
    for note in notes:
        print(f"- {note}")
    print()
    print("| hosts | " + " | ".join(cols) + " | " + " | ".join(f"{p}/rookery" for p in cols[2:]) + " |")
    print("|---" * (1 + len(cols) + len(cols) - 2) + "|")
    for r in results:
        cells = [f"{r[c]:.2f} s" for c in cols]
        ratios = [f"{r[p] / r['rookery']:.1f}x" for p in cols[2:]]
        print(f"| {r['hosts']} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps({"agent_bytes": agent_size, "notes": notes, "results": results}, indent=2))


if __name__ == "__main__":
    main()
