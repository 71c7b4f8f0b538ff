"""The installed ``novacron-agent`` console script, run as a real subprocess."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from novacron.agent.cli import build_parser
from tests.fixtures.numa import GIB, write_numa_tree
from tests.fixtures.processes import console_script
from tests.fixtures.procfs import write_procfs_tree

AGENT = console_script("novacron-agent")


@dataclass(frozen=True)
class Node:
    config: Path
    sysfs: Path
    procfs: Path

    def args(self) -> list[str]:
        return [
            "--config",
            str(self.config),
            "--sysfs-root",
            str(self.sysfs),
            "--procfs-root",
            str(self.procfs),
        ]


def agent(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AGENT, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Node:
    root = tmp_path_factory.mktemp("node")
    write_procfs_tree(root / "proc")
    write_numa_tree(root / "sys", nodes=2, cpus_per_node=8, memory_per_node_bytes=32 * GIB)
    config = root / "agent.toml"
    config.write_text('[agent]\nnode_id = "cli-test-node"\n')
    return Node(config, root / "sys", root / "proc")


@pytest.fixture(scope="module")
def table(node: Node) -> subprocess.CompletedProcess[str]:
    return agent("collect", "--once", "--collectors", "host,cpuinfo", *node.args())


@pytest.fixture(scope="module")
def as_json(node: Node) -> subprocess.CompletedProcess[str]:
    return agent("collect", "--once", "--json", "--collectors", "host,cpuinfo", *node.args())


@pytest.fixture(scope="module")
def inventory_json(node: Node) -> subprocess.CompletedProcess[str]:
    return agent("inventory", "--json", *node.args())


def test_collect_prints_the_summary_table(table: subprocess.CompletedProcess[str]) -> None:
    assert table.returncode == 0, table.stderr
    out = table.stdout
    assert out.startswith("node cli-test-node  ")
    assert re.search(r"^COLLECTOR\s+STATUS\s+DURATION$", out, re.MULTILINE)
    assert re.search(r"^host\s+ok\s+[\d.]+ ms$", out, re.MULTILINE), out
    assert re.search(r"^cpuinfo\s+ok\s+[\d.]+ ms$", out, re.MULTILINE), out
    assert "FAILED" not in out
    # only the two chosen collectors ran
    assert sorted(re.findall(r"^== (\S+)$", out, re.MULTILINE)) == ["cpuinfo", "host", "scores"]
    # the fixture procfs and sysfs, not this machine
    assert "load 2.50 1.75 1.20" in out
    assert "memory       23.5 GiB used of 62.8 GiB" in out
    assert re.search(r"^  disk sda ", out, re.MULTILINE)
    assert "numa node1   CPUs 8-15, 32.0 GiB, distances 21 10" in out
    assert "rates: none yet (they need a second collection); totals are since boot" in out


def test_collect_json_is_one_object(as_json: subprocess.CompletedProcess[str]) -> None:
    assert as_json.returncode == 0, as_json.stderr
    lines = as_json.stdout.strip().splitlines()
    assert len(lines) == 1
    sample = json.loads(lines[0])
    assert list(sample)[:2] == ["node_id", "timestamp_seconds"]
    assert set(sample) == {"node_id", "timestamp_seconds", "host", "cpuinfo", "scores"}
    assert sample["node_id"] == "cli-test-node"
    assert isinstance(sample["timestamp_seconds"], float)
    for name in ("host", "cpuinfo"):
        report = sample[name]
        assert set(report) == {"ok", "duration_seconds", "error", "collected_at_seconds", "data"}
        assert report["ok"] is True
        assert report["error"] is None
        assert report["duration_seconds"] > 0
    host = sample["host"]["data"]
    assert host["memory"]["total_bytes"] == 65_843_212 * 1024
    assert [d["device"] for d in host["disks"]] == ["dm-0", "nvme0n1", "sda"]
    assert host["cpu_total"]["utilisation_percent"] is None  # one collection: no rates
    cpu = sample["cpuinfo"]["data"]
    assert [n["cpus"] for n in cpu["numa_nodes"]] == [list(range(8)), list(range(8, 16))]
    assert cpu["sockets"] == 2


def test_inventory_prints_the_model_line(
    node: Node, inventory_json: subprocess.CompletedProcess[str]
) -> None:
    assert inventory_json.returncode == 0, inventory_json.stderr
    report = json.loads(inventory_json.stdout)
    assert report["ok"] is True
    model = report["data"]["processor"]["model"]
    assert model, "py-cpuinfo found no model on this machine"

    printed = agent("inventory", *node.args())
    assert printed.returncode == 0, printed.stderr
    lines = printed.stdout.splitlines()
    assert lines[0].startswith(f"model        {model} (")
    assert lines[1].startswith("topology     2 sockets, ")
    assert "numa node0   CPUs 0-7, 32.0 GiB, distances 10 21" in lines
    assert any(line.startswith("flags        virtualization (vmx/svm) ") for line in lines)


def _subcommands() -> list[str]:
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(sub.choices)


@pytest.mark.parametrize("command", ["", *_subcommands()])
def test_help_exits_zero(command: str) -> None:
    result = agent(*([command] if command else []), "--help", timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: novacron-agent")


def test_version() -> None:
    result = agent("--version", timeout=30)
    assert result.returncode == 0
    assert re.fullmatch(r"novacron-agent \S+\n", result.stdout)


def test_unknown_config_key_exits_2_naming_key_and_file(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("[agent]\ninterval_seconds = 5\npoll_everything = true\n")
    result = agent("collect", "--once", "--config", str(config), timeout=30)
    assert result.returncode == 2
    assert f"{config}: agent.poll_everything: unknown key" in result.stderr
    assert result.stdout == ""


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "absent.toml"
    result = agent("inventory", "--config", str(config), timeout=30)
    assert result.returncode == 2
    assert f"{config}: config file not found" in result.stderr


def test_unknown_collector_exits_2_naming_it(node: Node) -> None:
    result = agent("collect", "--once", "--collectors", "host,nosuch", "--config", str(node.config))
    assert result.returncode == 2
    assert "--collectors: nosuch: unknown collector" in result.stderr


def test_collect_loop_keeps_going_when_cycles_overrun_the_interval(
    node: Node, tmp_path: Path
) -> None:
    """A cycle longer than the interval starts the next one at once, never crashes."""
    import signal
    import time

    config = tmp_path / "fast.toml"
    config.write_text('[agent]\nnode_id = "loop"\ninterval_seconds = 0.001\n')
    args = [
        AGENT,
        "collect",
        "--json",
        "--collectors",
        "host",
        "--config",
        str(config),
        "--sysfs-root",
        str(node.sysfs),
        "--procfs-root",
        str(node.procfs),
    ]
    out_path = tmp_path / "out.jsonl"
    with out_path.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.PIPE, text=True)
        try:
            # Wait for cycles, not for a fixed time: start-up (imports, model loading)
            # is slow on a loaded machine.
            deadline = time.monotonic() + 60
            while out_path.read_bytes().count(b"\n") < 4 and time.monotonic() < deadline:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.1)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    lines = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert len(lines) >= 4, err
    stamps = [line["timestamp_seconds"] for line in lines]
    assert stamps == sorted(stamps)
    assert proc.returncode == 130
