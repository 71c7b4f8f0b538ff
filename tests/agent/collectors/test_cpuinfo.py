"""The CPU inventory collector: py-cpuinfo parsing, caching, NUMA layout, summary."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from novacron.agent.collectors import cpuinfo
from novacron.agent.collectors._numa import NumaNode
from novacron.agent.collectors.base import CollectorContext, registry
from novacron.agent.collectors.cpuinfo import (
    CpuFeatures,
    CpuInfoCollector,
    CpuInfoSettings,
    CpuInventory,
    cpu_features,
    parse_cache_size,
    parse_hz,
    parse_py_cpuinfo,
    run_py_cpuinfo,
)
from novacron.agent.config import parse_config
from novacron.agent.sample import to_jsonable
from novacron.protos.runtime.tomlconfig import ConfigError
from tests.fixtures.cpuinfo import py_cpuinfo_recording
from tests.fixtures.numa import GIB, write_numa_tree
from tests.fixtures.procfs import write_procfs_tree

LOGGER = "novacron.agent.collectors.cpuinfo"


class FakePyCpuinfo:
    """Stands in for the py-cpuinfo subprocess and counts how often it is asked."""

    def __init__(self, info: dict[str, Any] | Exception) -> None:
        self.info = info
        self.calls = 0

    def __call__(self, timeout_seconds: float) -> dict[str, Any]:
        self.calls += 1
        if isinstance(self.info, Exception):
            raise self.info
        return self.info


@pytest.fixture
def fake_py_cpuinfo(monkeypatch: pytest.MonkeyPatch) -> FakePyCpuinfo:
    fake = FakePyCpuinfo(py_cpuinfo_recording())
    monkeypatch.setattr(cpuinfo, "run_py_cpuinfo", fake)
    return fake


@pytest.fixture(autouse=True)
def restore_psutil_root() -> Iterator[None]:
    """The collector points psutil (a process-wide global) at fixture roots: undo it."""
    saved = psutil.PROCFS_PATH
    yield
    psutil.PROCFS_PATH = saved


def fixture_collector(tmp_path: Path, nodes: int | None = 2) -> CpuInfoCollector:
    sysfs, procfs = tmp_path / "sys", tmp_path / "proc"
    sysfs.mkdir(exist_ok=True)
    if nodes is not None:
        write_numa_tree(sysfs, nodes=nodes, cpus_per_node=8, memory_per_node_bytes=32 * GIB)
    write_procfs_tree(procfs)
    return CpuInfoCollector(
        CollectorContext(sysfs_root=sysfs, procfs_root=procfs), CpuInfoSettings()
    )


def test_registered_and_enabled_by_default() -> None:
    info = registry()["cpuinfo"]
    assert info.factory is CpuInfoCollector
    assert info.default_enabled is True


def test_parse_recorded_py_cpuinfo() -> None:
    processor = parse_py_cpuinfo(py_cpuinfo_recording())
    assert processor.model == "AMD EPYC"
    assert processor.vendor == "AuthenticAMD"
    assert processor.arch == "X86_64"
    assert processor.bits == 64
    assert processor.advertised_frequency_mhz == 2445.434
    assert processor.actual_frequency_mhz == 2445.434
    assert processor.l2_cache_bytes == 1_048_576
    assert processor.l3_cache_bytes == 524_288
    assert processor.flags is not None
    assert {"avx2", "aes", "sse4_2", "hypervisor"} <= set(processor.flags)
    assert list(processor.flags) == sorted(processor.flags)


def test_partial_or_odd_py_cpuinfo_gives_none() -> None:
    empty = parse_py_cpuinfo({})
    assert empty.model is None
    assert empty.flags is None
    assert empty.advertised_frequency_mhz is None
    odd = parse_py_cpuinfo(
        {
            "brand_raw": "  ",
            "bits": "64",
            "arch": 7,
            "hz_advertised": [0, 0],
            "hz_actual": "fast",
            "l2_cache_size": "lots",
            "flags": "avx2 aes",
        }
    )
    assert (odd.model, odd.bits, odd.arch) == (None, None, None)
    assert (odd.advertised_frequency_mhz, odd.actual_frequency_mhz) == (None, None)
    assert odd.l2_cache_bytes is None
    assert odd.flags is None
    assert parse_py_cpuinfo({"flags": ["AVX2", 3, "aes", "aes"]}).flags == ("aes", "avx2")


@pytest.mark.parametrize(
    ("value", "mhz"),
    [([2_000_000_000, 0], 2000.0), ((2_445_434_000, 0), 2445.434), ([0, 0], None), ([], None)],
)
def test_parse_hz(value: Any, mhz: float | None) -> None:
    assert parse_hz(value) == mhz


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (1_048_576, 1_048_576),
        ("512 KB", 512 * 1024),
        ("1 MiB", 1024**2),
        ("36608 KB", 36608 * 1024),
        ("32M", 32 * 1024**2),
        ("4096", 4096),
        (0, None),
        ("", None),
        ("big", None),
        (True, None),
        (None, None),
    ],
)
def test_parse_cache_size(value: Any, size: int | None) -> None:
    assert parse_cache_size(value) == size


@pytest.mark.parametrize(
    ("flags", "features"),
    [
        (None, CpuFeatures(None, None, None, None, None)),
        ((), CpuFeatures(False, False, False, False, False)),
        (("aes", "avx2", "sse4_2", "vmx"), CpuFeatures(True, True, False, True, True)),
        (("avx512f", "svm"), CpuFeatures(True, False, True, False, False)),
    ],
)
def test_cpu_features(flags: tuple[str, ...] | None, features: CpuFeatures) -> None:
    assert cpu_features(flags) == features


def test_two_node_layout(tmp_path: Path, fake_py_cpuinfo: FakePyCpuinfo) -> None:
    inventory = fixture_collector(tmp_path, nodes=2).collect(1.0)
    assert inventory.numa_nodes == (
        NumaNode(0, tuple(range(8)), 32 * GIB, (10, 21)),
        NumaNode(1, tuple(range(8, 16)), 32 * GIB, (21, 10)),
    )
    assert inventory.sockets == 2
    assert inventory.processor.model == "AMD EPYC"
    assert inventory.features.avx2 is True
    assert inventory.features.virtualization is False
    # psutil read the fixture procfs meminfo
    assert inventory.memory_total_bytes == 65_843_212 * 1024


def test_one_node_layout(tmp_path: Path, fake_py_cpuinfo: FakePyCpuinfo) -> None:
    inventory = fixture_collector(tmp_path, nodes=1).collect(1.0)
    assert inventory.numa_nodes == (NumaNode(0, tuple(range(8)), 32 * GIB, (10,)),)
    assert inventory.sockets == 1


def test_many_nodes_sorted_numerically(tmp_path: Path, fake_py_cpuinfo: FakePyCpuinfo) -> None:
    sysfs = tmp_path / "sys"
    write_numa_tree(sysfs, nodes=12, cpus_per_node=2, memory_per_node_bytes=GIB)
    collector = CpuInfoCollector(CollectorContext(sysfs_root=sysfs), CpuInfoSettings())
    nodes = collector.collect(1.0).numa_nodes
    assert [n.node for n in nodes] == list(range(12))
    assert nodes[10].cpus == (20, 21)
    assert nodes[11].distances == (21,) * 11 + (10,)


def test_missing_node_dir_gives_no_numa_layout(
    tmp_path: Path, fake_py_cpuinfo: FakePyCpuinfo, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    inventory = fixture_collector(tmp_path, nodes=None).collect(1.0)
    assert inventory.numa_nodes == ()
    assert inventory.sockets is None
    record = next(r for r in caplog.records if r.getMessage() == "no NUMA layout in sysfs")
    assert record.levelno == logging.DEBUG
    assert record.__dict__["path"] == str(tmp_path / "sys/devices/system/node")
    assert "numa         no layout" in CpuInfoCollector.summarize(inventory)


def test_malformed_node_file_skips_only_that_value(
    tmp_path: Path, fake_py_cpuinfo: FakePyCpuinfo, caplog: pytest.LogCaptureFixture
) -> None:
    collector = fixture_collector(tmp_path, nodes=2)
    node1 = tmp_path / "sys/devices/system/node/node1"
    (node1 / "cpulist").write_text("8-x\n")
    (node1 / "meminfo").unlink()
    inventory = collector.collect(1.0)
    assert inventory.numa_nodes[1] == NumaNode(1, None, None, (21, 10))
    assert inventory.numa_nodes[0].cpus == tuple(range(8))
    record = next(r for r in caplog.records if r.getMessage() == "malformed NUMA file, skipped")
    assert record.levelno == logging.WARNING
    assert record.__dict__["path"] == str(node1 / "cpulist")
    assert record.__dict__["content"] == "8-x"


def test_memory_only_node_has_no_cpus(tmp_path: Path, fake_py_cpuinfo: FakePyCpuinfo) -> None:
    collector = fixture_collector(tmp_path, nodes=2)
    (tmp_path / "sys/devices/system/node/node1/cpulist").write_text("\n")
    inventory = collector.collect(1.0)
    assert inventory.numa_nodes[1].cpus == ()
    assert any("CPUs none" in line for line in CpuInfoCollector.summarize(inventory))


def test_collect_uses_the_cache_and_refresh_reads_again(
    tmp_path: Path, fake_py_cpuinfo: FakePyCpuinfo
) -> None:
    collector = fixture_collector(tmp_path)
    assert fake_py_cpuinfo.calls == 0  # constructing reads nothing
    first = collector.collect(1.0)
    assert fake_py_cpuinfo.calls == 1
    for now in (2.0, 3.0, 4.0):
        assert collector.collect(now) is first
    assert fake_py_cpuinfo.calls == 1
    refreshed = collector.refresh()
    assert fake_py_cpuinfo.calls == 2
    assert collector.collect(5.0) is refreshed
    assert refreshed.read_at_seconds >= first.read_at_seconds
    assert fake_py_cpuinfo.calls == 2


def test_refresh_sees_hardware_changes(tmp_path: Path, fake_py_cpuinfo: FakePyCpuinfo) -> None:
    collector = fixture_collector(tmp_path, nodes=1)
    assert len(collector.collect(1.0).numa_nodes) == 1
    write_numa_tree(tmp_path / "sys", nodes=2)
    assert len(collector.collect(2.0).numa_nodes) == 1  # cached
    assert len(collector.refresh().numa_nodes) == 2


def test_py_cpuinfo_failure_gives_unknown_model_and_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(
        cpuinfo, "run_py_cpuinfo", FakePyCpuinfo(subprocess.TimeoutExpired(["python"], 20))
    )
    inventory = fixture_collector(tmp_path).collect(1.0)
    assert inventory.processor.model is None
    assert inventory.features.avx2 is None
    assert inventory.numa_nodes  # the rest is still there
    record = next(r for r in caplog.records if r.name == LOGGER)
    assert record.getMessage() == "py-cpuinfo failed; CPU model and flags unknown"
    assert "TimeoutExpired" in record.__dict__["error"]
    assert "model        unknown (unknown vendor), unknown arch" in CpuInfoCollector.summarize(
        inventory
    )


def test_failed_refresh_keeps_the_processor_read_before(
    tmp_path: Path, fake_py_cpuinfo: FakePyCpuinfo, caplog: pytest.LogCaptureFixture
) -> None:
    collector = fixture_collector(tmp_path)
    collector.collect(1.0)
    fake_py_cpuinfo.info = ValueError("py-cpuinfo exited with 1")
    refreshed = collector.refresh()
    assert refreshed.processor.model == "AMD EPYC"
    assert "keeping the CPU model" in caplog.records[-1].getMessage()


def write_fake_python(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def test_run_py_cpuinfo_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(write_fake_python(tmp_path / "py", "exec sleep 30")))
    with pytest.raises(subprocess.TimeoutExpired):
        run_py_cpuinfo(0.3)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("echo 'Failed to find cpu info' >&2; exit 1", "exited with 1: Failed to find cpu info"),
        ("echo '[1, 2]'", "printed list, not an object"),
        ("echo 'not json'", "Expecting value"),
    ],
)
def test_run_py_cpuinfo_bad_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, message: str
) -> None:
    monkeypatch.setattr(sys, "executable", str(write_fake_python(tmp_path / "py", body)))
    with pytest.raises(ValueError, match=message):
        run_py_cpuinfo(10)


def test_run_py_cpuinfo_passes_isolated_module_args(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args_file = tmp_path / "args"
    script = write_fake_python(tmp_path / "py", f'echo "$@" > {args_file}; echo "{{}}"')
    monkeypatch.setattr(sys, "executable", str(script))
    assert run_py_cpuinfo(10) == {}
    assert args_file.read_text().strip() == "-I -m cpuinfo --json"


def test_summary(tmp_path: Path, fake_py_cpuinfo: FakePyCpuinfo) -> None:
    inventory = fixture_collector(tmp_path).collect(1.0)
    lines = CpuInfoCollector.summarize(inventory)
    assert lines[0] == "model        AMD EPYC (AuthenticAMD), X86_64 64-bit"
    assert lines[1].startswith("topology     2 sockets, ")
    assert "2445 MHz advertised, 2445 MHz actual" in lines[2]
    assert "cache        L2 1.0 MiB, L3 512.0 KiB" in lines
    assert "memory       62.8 GiB" in lines
    assert "numa node0   CPUs 0-7, 32.0 GiB, distances 10 21" in lines
    assert "numa node1   CPUs 8-15, 32.0 GiB, distances 21 10" in lines
    assert (
        "flags        virtualization (vmx/svm) no, avx2 yes, avx512f no, aes yes, sse4_2 yes"
        in lines
    )
    assert lines[-1] == f"host         {os.uname().nodename}, kernel {os.uname().release}"


def test_inventory_is_json_ready(tmp_path: Path, fake_py_cpuinfo: FakePyCpuinfo) -> None:
    data = json.loads(json.dumps(to_jsonable(fixture_collector(tmp_path).collect(1.0))))
    assert data["processor"]["model"] == "AMD EPYC"
    assert data["features"]["aes"] is True
    assert data["numa_nodes"][1]["cpus"] == list(range(8, 16))
    assert data["numa_nodes"][1]["memory_total_bytes"] == 32 * GIB


def test_timeout_setting_is_range_checked() -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({"collectors": {"cpuinfo": {"py_cpuinfo_timeout_seconds": 0}}}, "a.toml")
    assert error.value.key == "collectors.cpuinfo.py_cpuinfo_timeout_seconds"


def test_real_machine() -> None:
    """This machine, for real: py-cpuinfo subprocess, psutil, /sys."""
    inventory: CpuInventory = CpuInfoCollector(CollectorContext(), CpuInfoSettings()).collect(1.0)
    assert isinstance(inventory.processor.model, str)
    assert inventory.processor.flags
    assert inventory.threads == psutil.cpu_count()
    assert inventory.memory_total_bytes == psutil.virtual_memory().total
    assert inventory.hostname == os.uname().nodename
    if Path("/sys/devices/system/node/node0").is_dir():
        assert inventory.numa_nodes[0].node == 0
        all_cpus = {cpu for node in inventory.numa_nodes for cpu in node.cpus or ()}
        assert len(all_cpus) == inventory.threads
