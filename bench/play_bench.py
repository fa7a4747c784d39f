#!/usr/bin/env python3
"""Benchmark `rookery play` against `ansible-playbook` on N real loopback sshd hosts (issue 3,
item 9), running the same file unchanged: bench/play/bench-20.yaml, twenty tasks in the shared
subset (command, shell, copy incl. a 3 MiB file, file, template, debug, set_fact, assert,
wait_for; plain `{{ var }}` references; simple `when` expressions).

For each N, and each of --runs rounds, alternating the tools so both see the same machine load:
  fresh      the state directory is removed first, so every task that changes something does
             (the playbook converges from nothing)
  converged  the same playbook again at once: every task must report ok/skipped, none changed

Both tools are checked, not just timed: every host must finish with failed=0 unreachable=0, and
the converged run must report changed=0 for every host. Ratios are ansible / rookery.

Usage: bench/play_bench.py [--hosts 10,50] [--runs 3] [--rookery PATH] [--agent PATH]
       [--tools ansible,rookery] [--json FILE]
ansible-playbook runs with pipelining on and forks=N; rookery with -f N. Needs root, sshd,
and the venv of bench/lab.py (ansible-core from PyPI).
"""

import argparse
import datetime
import json
import os
import random
import re
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab import REPO, Failed, Lab, busy_note, median, peer_env, run, venv  # noqa: E402

PLAY_DIR = Path(__file__).resolve().parent / "play"
STATE_DIR = Path("/tmp/rookery-playbench")  # bench_root in the playbook
BLOB_BYTES = 3 * 1024 * 1024


def prepare_playbook(work: Path) -> Path:
    """A copy of bench/play plus files/blob.bin (3 MiB, fixed content: binaries stay out of git)."""
    dst = work / "play"
    shutil.copytree(PLAY_DIR, dst)
    (dst / "files").mkdir(exist_ok=True)
    (dst / "files/blob.bin").write_bytes(random.Random(20261124).randbytes(BLOB_BYTES))
    return dst / "bench-20.yaml"


RECAP_LINE = re.compile(
    r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)", re.M
)


def ansible_runner(lab, inv, playbook, v):
    env = dict(peer_env(v), ANSIBLE_PIPELINING="True", ANSIBLE_HOST_KEY_CHECKING="True",
               ANSIBLE_FORKS=str(lab.n), ANSIBLE_RETRY_FILES_ENABLED="False")
    cmd = [str(v / "bin/ansible-playbook"), "-i", str(inv), "-f", str(lab.n), str(playbook)]

    def once():
        dt, r = run(cmd, env=env)
        recap = {m[0]: dict(zip(["ok", "changed", "unreachable", "failed", "skipped"], map(int, m[1:])))
                 for m in RECAP_LINE.findall(r.stdout)}
        return dt, recap, r

    return once


def rookery_runner(lab, inv, playbook, rookery, agent):
    env = dict(os.environ, NO_COLOR="1")
    cmd = [str(rookery), "play", "-i", str(inv), "-o", "json", "-f", str(lab.n), "--no-retry-file",
           "--agent-binary", str(agent), str(playbook)]

    def once():
        dt, r = run(cmd, env=env)
        recap = {}
        for line in r.stdout.splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") == "recap":
                recap = {h: {k: int(c.get(k, 0) or 0) for k in ("ok", "changed", "unreachable", "failed", "skipped")}
                         for h, c in ev["hosts"].items()}
        return dt, recap, r

    return once


def checked(tool, lab, fn, converged):
    dt, recap, r = fn()
    bad = [h for h in lab.names() if h not in recap or recap[h]["failed"] or recap[h]["unreachable"]]
    if bad:
        raise Failed(f"{tool}: {len(bad)}/{lab.n} hosts not ok, e.g. {[(h, recap.get(h)) for h in bad[:3]]}\n"
                     f"{r.stdout[-3000:]}\n{r.stderr[-2000:]}")
    if converged:
        changed = {h: c["changed"] for h, c in recap.items() if c["changed"]}
        if changed:
            raise Failed(f"{tool}: the converged re-run changed something: {changed}\n{r.stdout[-3000:]}")
    return dt, recap


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", default="10,50")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rookery", default=str(REPO / "target/dist/rookery"))
    ap.add_argument("--agent", default=str(REPO / "target/dist/rookery-agent-x86_64"))
    ap.add_argument("--tools", default="ansible,rookery")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--clean-rc", action="store_true",
                    help="sshd sets SHLVL=1 so bash skips root's ~/.bashrc for every tool (shows the rc-file cost)")
    args = ap.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    if "rookery" in tools:
        for p in (args.rookery, args.agent):
            if not Path(p).exists():
                raise SystemExit(f"{p} missing: run `cargo xtask build` first")
    v = venv() if "ansible" in tools else None
    notes = [f"before: {busy_note()}",
             "rc: sshd SetEnv SHLVL=1, root's ~/.bashrc skipped" if args.clean_rc
             else "rc: root's ~/.bashrc (pyenv init) runs on every exec"]
    results = []
    for n in [int(x) for x in args.hosts.split(",")]:
        with tempfile.TemporaryDirectory(prefix=f"rookery-playbench-{n}-") as d:
            work = Path(d)
            lab = Lab(n, work, clean_rc=args.clean_rc)
            try:
                inv = lab.write_inventory(work / "inventory.yaml")
                playbook = prepare_playbook(work)
                runners = {}
                if "ansible" in tools:
                    runners["ansible"] = ansible_runner(lab, inv, playbook, v)
                if "rookery" in tools:
                    runners["rookery"] = rookery_runner(lab, inv, playbook, args.rookery, args.agent)
                    # Agent upload is the probe benchmark's business: warm the cache once, untimed.
                    shutil.rmtree(STATE_DIR, ignore_errors=True)
                    checked("rookery", lab, runners["rookery"], False)
                times = {f"{t}_{k}": [] for t in runners for k in ("fresh", "converged")}
                recaps = {}
                for i in range(args.runs):
                    for t, fn in runners.items():
                        shutil.rmtree(STATE_DIR, ignore_errors=True)
                        dt, recap = checked(t, lab, fn, False)
                        times[f"{t}_fresh"].append(dt)
                        recaps[f"{t}_fresh"] = recap
                        dt, recap = checked(t, lab, fn, True)
                        times[f"{t}_converged"].append(dt)
                        recaps[f"{t}_converged"] = recap
                    print(f"{n} hosts, round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in times.items()),
                          file=sys.stderr)
                row = {"hosts": n, "runs": times}
                row.update({k: median(v) for k, v in times.items()})
                # One host's counts per tool and phase, to show both tools did the same work.
                row["recap_h00"] = {k: r.get("h00") for k, r in recaps.items()}
                results.append(row)
            except Failed as e:
                raise SystemExit(f"{n} hosts: {e}")
            finally:
                lab.close()
                shutil.rmtree(STATE_DIR, ignore_errors=True)
    notes.append(f"after: {busy_note()}")
    print(f"\nbench/play/bench-20.yaml (20 tasks, 3 MiB copy), ansible-playbook vs rookery play, "
          f"N loopback sshd hosts on one machine ({os.cpu_count()} cores), median of {args.runs}, "
          f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}")
    for note in notes:
        print(f"- {note}")
    for r in results:
        for k, rc in r["recap_h00"].items():
            print(f"  {r['hosts']} hosts, {k}, h00: {rc}")
    print()
    both = "ansible" in tools and "rookery" in tools
    hdr = ["hosts"] + [f"{t} {k}" for t in tools for k in ("fresh", "converged")]
    if both:
        hdr += ["ratio fresh", "ratio converged"]
    print("| " + " | ".join(hdr) + " |")
    print("|---" * len(hdr) + "|")
    for r in results:
        cells = [str(r["hosts"])] + [f"{r[f'{t}_{k}']:.2f} s" for t in tools for k in ("fresh", "converged")]
        if both:
            cells += [f"{r[f'ansible_{k}'] / r[f'rookery_{k}']:.1f}x" for k in ("fresh", "converged")]
        print("| " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps({"notes": notes, "results": results}, indent=2))


if __name__ == "__main__":
    main()
