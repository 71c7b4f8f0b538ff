"""Agent overhead against Debian's prometheus-node-exporter, in one run.

Both run side by side for the same wall time against the same fixture node (>= 50
domains, >= 24 disks, 2 GPUs, 4 memory controllers; real /proc): the agent collects
every second (all collectors, smartctl subprocesses included), node_exporter is scraped
every second over HTTP. Prints CPU seconds (user+system, children included) and peak
RSS (VmHWM) of each and the ratios. node_exporter covers less ground (no SMART, libvirt
or NVML), so a ratio near 1 means the agent does more for the same cost.

    .venv/bin/python -m bench.agent_overhead [--seconds 60]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from tests.fixtures.node import build_fixture_node
from tests.fixtures.processes import console_script, free_port

NODE_EXPORTER = "prometheus-node-exporter"


@dataclass
class Usage:
    own_cpu_seconds: float
    children_cpu_seconds: float  # waited-for subprocesses (smartctl for the agent)
    peak_rss_bytes: int

    @property
    def cpu_seconds(self) -> float:
        return self.own_cpu_seconds + self.children_cpu_seconds


def measure(proc: subprocess.Popen[Any]) -> Usage:
    """CPU (own, and waited-for children) and peak RSS so far; the process must be alive."""
    p = psutil.Process(proc.pid)
    if p.status() == psutil.STATUS_ZOMBIE:
        raise RuntimeError(f"{p.name()} exited early (status {proc.poll()})")
    t = p.cpu_times()
    peak_kib = 0
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak_kib = int(line.split()[1])
    return Usage(t.user + t.system, t.children_user + t.children_system, peak_kib * 1024)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--domains", type=int, default=50)
    parser.add_argument("--disks", type=int, default=24)
    parser.add_argument(
        "--warmup",
        type=float,
        default=10.0,
        help="seconds excluded from the steady-state figures (imports, first SMART poll)",
    )
    args = parser.parse_args()

    exporter = shutil.which(NODE_EXPORTER) or f"/usr/bin/{NODE_EXPORTER}"
    agent = console_script("novacron-agent")
    with tempfile.TemporaryDirectory(prefix="novacron-bench-") as tmp:
        node = build_fixture_node(
            Path(tmp),
            domains=args.domains,
            disks=args.disks,
            gpus=2,
            memory_controllers=4,
            fake_procfs=False,
        )
        agent_cmd = [str(agent), "collect", "--json", *node.agent_args()]
        config = node.config.read_text().replace("[agent]\n", "[agent]\ninterval_seconds = 1.0\n")
        node.config.write_text(config)
        port = free_port()
        exporter_cmd = [
            exporter,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--path.sysfs={node.sysfs_root}",
            "--path.procfs=/proc",
            "--log.level=error",
        ]
        # One JSON line per finished cycle (the full typed sample, serialisation included:
        # a conservative stand-in for framing it for the coordinator).
        agent_out = (Path(tmp) / "agent.jsonl").open("wb")
        agent_proc = subprocess.Popen(
            agent_cmd, env=node.env(), stdout=agent_out, stderr=subprocess.DEVNULL
        )
        exporter_proc = subprocess.Popen(
            exporter_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        scrapes = 0
        warm: tuple[Usage, Usage] | None = None
        try:
            started = time.monotonic()
            deadline = started + args.seconds
            next_scrape = started
            while time.monotonic() < deadline:
                if warm is None and time.monotonic() - started >= args.warmup:
                    warm = (measure(agent_proc), measure(exporter_proc))
                if time.monotonic() >= next_scrape:
                    try:
                        url = f"http://127.0.0.1:{port}/metrics"
                        with urllib.request.urlopen(url, timeout=5) as r:
                            r.read()
                            scrapes += 1
                    except OSError:
                        pass
                    next_scrape += 1.0
                time.sleep(max(0.0, min(next_scrape, deadline) - time.monotonic()))
            agent_usage = measure(agent_proc)
            exporter_usage = measure(exporter_proc)
        finally:
            stop(agent_proc)
            stop(exporter_proc)
            agent_out.close()
        cycles = (Path(tmp) / "agent.jsonl").read_bytes().count(b"\n")

    steady_seconds = args.seconds - args.warmup
    print(
        f"fixture node: {args.domains} domains, {args.disks} disks, 2 GPUs, 4 memory "
        f"controllers; {args.seconds:.0f} s at a 1 s interval (agent cycles {cycles}, "
        f"node_exporter scrapes {scrapes}); SMART polled at its default interval"
    )
    header = (
        f"{'':26}{'CPU s total':>12}{'of it children':>15}{'steady ms/s':>12}{'peak RSS MiB':>13}"
    )
    print(header)
    rows = {"novacron-agent": (agent_usage, 0), "node_exporter (baseline)": (exporter_usage, 1)}
    steady: dict[str, float] = {}
    for label, (usage, index) in rows.items():
        if warm is not None and steady_seconds > 0:
            steady[label] = (usage.cpu_seconds - warm[index].cpu_seconds) / steady_seconds * 1000
        print(
            f"{label:26}{usage.cpu_seconds:>12.2f}{usage.children_cpu_seconds:>15.2f}"
            f"{steady.get(label, float('nan')):>12.1f}{usage.peak_rss_bytes / 2**20:>13.1f}"
        )
    cpu_ratio = agent_usage.cpu_seconds / max(exporter_usage.cpu_seconds, 1e-9)
    rss_ratio = agent_usage.peak_rss_bytes / max(exporter_usage.peak_rss_bytes, 1)
    line = f"ratio agent/baseline: CPU total {cpu_ratio:.2f}x"
    if len(steady) == 2:
        baseline = max(steady["node_exporter (baseline)"], 1e-9)
        line += f", steady-state CPU {steady['novacron-agent'] / baseline:.2f}x"
    print(line + f", peak RSS {rss_ratio:.2f}x")
    print(
        "note: the fixture's smartctl is a Python stand-in (about 50 ms CPU a call, "
        "a real smartctl is a few ms); node_exporter reads no SMART, libvirt or NVML."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
