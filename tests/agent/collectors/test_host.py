"""The host collector against a real-shaped procfs fixture tree and the real /proc."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from novacron.agent.collectors.base import CollectorContext, registry
from novacron.agent.collectors.host import (
    NODE_EXPORTER_DISK_EXCLUDE,
    DiskIO,
    HostCollector,
    HostReadings,
    HostSettings,
    NetIO,
)
from novacron.agent.config import parse_config
from novacron.agent.sample import to_jsonable
from novacron.protos.runtime.tomlconfig import ConfigError
from tests.fixtures.procfs import PIDS, write_procfs_tree

LOGGER = "novacron.agent.collectors.host"


@pytest.fixture
def procfs(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    write_procfs_tree(root, tick=0)
    return root


def make_collector(root: Path, settings: HostSettings | None = None) -> HostCollector:
    return HostCollector(CollectorContext(procfs_root=root), settings or HostSettings())


def two_collections(root: Path, collector: HostCollector | None = None) -> HostReadings:
    collector = collector or make_collector(root)
    collector.collect(1000.0)
    write_procfs_tree(root, tick=1)
    return collector.collect(1010.0)


def disks_of(readings: HostReadings) -> dict[str, DiskIO]:
    assert readings.disks is not None
    return {disk.device: disk for disk in readings.disks}


def interfaces_of(readings: HostReadings) -> dict[str, NetIO]:
    assert readings.interfaces is not None
    return {net.interface: net for net in readings.interfaces}


@pytest.fixture(autouse=True)
def restore_psutil_root() -> Iterator[None]:
    """The collector points psutil (a process-wide global) at fixture roots: undo it."""
    saved = psutil.PROCFS_PATH
    yield
    psutil.PROCFS_PATH = saved


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_registered_and_enabled_by_default() -> None:
    info = registry()["host"]
    assert info.factory is HostCollector
    assert info.default_enabled is True


def test_points_psutil_at_the_procfs_root(procfs: Path) -> None:
    make_collector(procfs).collect(1.0)
    assert str(procfs) == psutil.PROCFS_PATH


def test_first_collection_has_counters_but_no_rates(procfs: Path) -> None:
    readings = make_collector(procfs).collect(1000.0)
    assert readings.interval_seconds is None
    assert readings.uptime_seconds == 350_000.25
    assert readings.cpu_total is not None
    assert readings.cpu_total.utilisation_percent is None
    assert readings.context_switches_per_second is None
    sda = disks_of(readings)["sda"]
    assert sda.read_ops == 1_200_000
    assert sda.read_bytes == 409_600_000 * 512
    assert sda.read_ops_per_second is None
    assert sda.await_ms is None
    eno1 = interfaces_of(readings)["eno1"]
    assert eno1.received_bytes == 987_654_321_000
    assert eno1.received_bytes_per_second is None
    assert readings.swap is not None
    assert readings.swap.swapped_in_bytes == 65_536 * 4096
    assert readings.swap.swap_in_bytes_per_second is None


def test_cpu_shares_from_two_snapshots(procfs: Path) -> None:
    readings = two_collections(procfs)
    assert readings.interval_seconds == 10.0
    total = readings.cpu_total
    assert total is not None
    assert total.cpu == "all"
    assert total.utilisation_percent == pytest.approx(55.0)
    assert total.user_percent == pytest.approx(35.0)
    assert total.system_percent == pytest.approx(10.0)
    assert total.iowait_percent == pytest.approx(5.0)
    assert total.steal_percent == pytest.approx(8.0)
    assert readings.per_cpu is not None
    assert [c.cpu for c in readings.per_cpu] == ["cpu0", "cpu1", "cpu2", "cpu3"]
    assert [c.utilisation_percent for c in readings.per_cpu] == pytest.approx([40, 50, 60, 70])
    assert [c.steal_percent for c in readings.per_cpu] == pytest.approx([8, 8, 8, 8])


def test_system_rates_load_memory_and_swap(procfs: Path) -> None:
    readings = two_collections(procfs)
    assert readings.context_switches_per_second == 25_000.0
    assert readings.interrupts_per_second == 12_000.0
    assert readings.process_count == len(PIDS)
    assert readings.uptime_seconds == 350_010.25
    assert readings.load is not None
    assert (readings.load.load_1m, readings.load.load_5m, readings.load.load_15m) == (
        2.5,
        1.75,
        1.2,
    )
    memory = readings.memory
    assert memory is not None
    assert memory.total_bytes == 65_843_212 * 1024
    assert memory.available_bytes == 41_234_567 * 1024
    assert memory.used_bytes == (65_843_212 - 41_234_567) * 1024
    assert memory.free_bytes == 8_123_456 * 1024
    assert memory.cached_bytes == (30_000_000 + 1_112_480) * 1024  # Cached + SReclaimable
    assert memory.buffers_bytes == 512_000 * 1024
    swap = readings.swap
    assert swap is not None
    assert swap.total_bytes == 8_388_604 * 1024
    assert swap.used_bytes == (8_388_604 - 8_126_460) * 1024
    assert swap.swap_in_bytes_per_second == 1_048_576.0
    assert swap.swap_out_bytes_per_second == 524_288.0


def test_disk_rates_latency_and_busy(procfs: Path) -> None:
    disks = disks_of(two_collections(procfs))
    # loop devices and partitions are left out by the node_exporter default
    assert sorted(disks) == ["dm-0", "nvme0n1", "sda"]
    sda, nvme, dm = disks["sda"], disks["nvme0n1"], disks["dm-0"]
    assert sda.read_ops_per_second == 12.0
    assert sda.write_ops_per_second == 8.0
    assert sda.read_bytes_per_second == 1_048_576.0
    assert sda.write_bytes_per_second == 524_288.0
    assert sda.await_ms == pytest.approx(10.0)
    assert sda.busy_percent == pytest.approx(25.0)
    assert sda.in_flight_ops == 2
    assert nvme.read_ops_per_second == 500.0
    assert nvme.read_bytes_per_second == 20_480_000.0
    assert nvme.await_ms == pytest.approx(0.3)
    assert nvme.busy_percent == pytest.approx(90.0)
    # no I/O completed: no latency (not 0 ms), and an idle device is 0 % busy
    assert dm.read_ops_per_second == 0.0
    assert dm.await_ms is None
    assert dm.busy_percent == 0.0


def test_network_rates(procfs: Path) -> None:
    interfaces = interfaces_of(two_collections(procfs))
    assert sorted(interfaces) == ["eno1", "virbr0"]  # lo is left out by default
    eno1 = interfaces["eno1"]
    assert eno1.received_bytes_per_second == 1_250_000.0
    assert eno1.sent_bytes_per_second == 500_000.0
    assert eno1.received_packets_per_second == 1_000.0
    assert eno1.sent_packets_per_second == 600.0
    assert eno1.receive_errors_per_second == 0.0
    assert eno1.transmit_errors_per_second == 1.0
    assert eno1.receive_drops_per_second == 2.0
    assert eno1.transmit_drops_per_second == 0.0
    assert eno1.transmit_errors == 17 + 10
    assert interfaces["virbr0"].sent_bytes_per_second == 200_000.0


def test_exclude_patterns_are_settings(procfs: Path) -> None:
    settings = HostSettings(disk_exclude_pattern="", interface_exclude_pattern="^virbr")
    readings = make_collector(procfs, settings).collect(1.0)
    assert sorted(disks_of(readings)) == [
        "dm-0",
        "loop0",
        "nvme0n1",
        "nvme0n1p1",
        "sda",
        "sda1",
        "sda2",
    ]
    assert sorted(interfaces_of(readings)) == ["eno1", "lo"]


def test_counter_reset_gives_no_rate_never_negative(procfs: Path) -> None:
    collector = make_collector(procfs)
    collector.collect(1000.0)
    write_procfs_tree(procfs, tick=1)
    # eno1's driver was reloaded: its counters restarted from zero
    net_dev = procfs / "net/dev"
    lines = net_dev.read_text().splitlines()
    lines = [
        "  eno1: 5000 40 0 0 0 0 0 0 7000 50 0 0 0 0 0 0" if "eno1" in line else line
        for line in lines
    ]
    net_dev.write_text("\n".join(lines) + "\n")
    interfaces = interfaces_of(collector.collect(1010.0))
    eno1 = interfaces["eno1"]
    assert eno1.received_bytes == 5000
    assert eno1.received_bytes_per_second is None
    assert eno1.sent_packets_per_second is None
    assert interfaces["virbr0"].received_bytes_per_second == 100_000.0
    # and the interval after the reset has rates again, from the new baseline
    write_procfs_tree(procfs, tick=2)
    eno1_next = interfaces_of(collector.collect(1020.0))["eno1"]
    expected = (987_654_321_000 + 2 * 12_500_000 - 5000) / 10
    assert eno1_next.received_bytes_per_second == expected


def test_reboot_gives_no_rates(procfs: Path) -> None:
    collector = make_collector(procfs)
    write_procfs_tree(procfs, tick=5)
    collector.collect(1000.0)
    write_procfs_tree(procfs, tick=0)  # uptime and every counter went back
    readings = collector.collect(1010.0)
    assert readings.interval_seconds is None
    assert readings.context_switches_per_second is None
    assert readings.cpu_total is not None
    assert readings.cpu_total.utilisation_percent is None
    sda = disks_of(readings)["sda"]
    assert sda.read_ops_per_second is None


def test_same_uptime_twice_gives_no_rates(procfs: Path) -> None:
    collector = make_collector(procfs)
    collector.collect(1000.0)
    readings = collector.collect(1001.0)
    assert readings.interval_seconds is None
    assert disks_of(readings)["sda"].read_ops_per_second is None


@pytest.mark.parametrize(
    ("missing", "sections"),
    [
        ("meminfo", ["memory", "swap"]),
        ("diskstats", ["disks"]),
        ("net/dev", ["interfaces"]),
        ("loadavg", ["load"]),
        ("uptime", ["uptime_seconds", "interval_seconds"]),
        ("stat", ["cpu_total", "per_cpu", "context_switches_per_second"]),
    ],
)
def test_missing_file_gives_none_section_and_one_log_line(
    procfs: Path, caplog: pytest.LogCaptureFixture, missing: str, sections: list[str]
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    collector = make_collector(procfs)
    collector.collect(1000.0)
    write_procfs_tree(procfs, tick=1)
    (procfs / missing).unlink()
    readings = collector.collect(1010.0)
    for section in sections:
        assert getattr(readings, section) is None, section
    # everything else still has data
    assert readings.process_count == len(PIDS)
    if missing != "diskstats":
        assert readings.disks
    if missing != "meminfo":
        assert readings.memory is not None
    missing_logs = [r for r in caplog.records if r.getMessage() == "host source missing"]
    assert missing_logs
    assert all(getattr(r, "path", "").endswith(missing) for r in missing_logs)
    # logged once, not every cycle
    count = len(caplog.records)
    collector.collect(1020.0)
    assert len(caplog.records) == count


def test_missing_vmstat_gives_unknown_swap_activity_not_zero(
    procfs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (procfs / "vmstat").unlink()
    with pytest.warns(RuntimeWarning):  # psutil's own complaint
        readings = make_collector(procfs).collect(1.0)
    assert readings.swap is not None
    assert readings.swap.total_bytes == 8_388_604 * 1024
    assert readings.swap.swapped_in_bytes is None
    assert readings.swap.swap_in_bytes_per_second is None
    assert any(getattr(r, "path", "").endswith("vmstat") for r in caplog.records)


def test_empty_procfs_root_gives_an_empty_reading(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    readings = make_collector(tmp_path / "nowhere").collect(1.0)
    assert readings.memory is None
    assert readings.disks is None
    assert readings.per_cpu is None
    assert readings.process_count is None
    assert readings.unavailable == ()
    assert "host source missing" in messages(caplog)


def test_malformed_stat_is_logged_with_the_error(
    procfs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (procfs / "stat").write_text("cpu  1 2 three 4\n")
    readings = make_collector(procfs).collect(1.0)
    assert readings.cpu_total is None
    record = next(r for r in caplog.records if r.getMessage().endswith("malformed"))
    assert "ValueError" in record.__dict__["error"]
    assert readings.memory is not None


def test_malformed_diskstats_line_is_skipped_and_logged(
    procfs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    diskstats = procfs / "diskstats"
    diskstats.write_text(diskstats.read_text() + "   8      16 sdb 1 2 three\n")
    disks = disks_of(make_collector(procfs).collect(1.0))
    assert sorted(disks) == ["dm-0", "nvme0n1", "sda"]
    record = next(r for r in caplog.records if r.getMessage() == "malformed lines skipped")
    assert record.__dict__["path"] == str(diskstats)
    assert record.__dict__["lines"] == ["8: 8      16 sdb 1 2 three (unexpected field count 6)"]


def test_malformed_net_dev_line_is_skipped_and_logged(
    procfs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    net_dev = procfs / "net/dev"
    net_dev.write_text(net_dev.read_text() + "  eth9: 1 2 x 4 5 6 7 8 9 10 11 12 13 14 15 16\n")
    interfaces = interfaces_of(make_collector(procfs).collect(1.0))
    assert sorted(interfaces) == ["eno1", "virbr0"]
    record = next(r for r in caplog.records if r.getMessage() == "malformed lines skipped")
    assert "eth9" in record.__dict__["lines"][0]
    assert "non-integer counter" in record.__dict__["lines"][0]


def test_vanished_disk_and_interface_are_reported_unavailable(procfs: Path) -> None:
    collector = make_collector(procfs)
    collector.collect(1000.0)
    write_procfs_tree(procfs, tick=1)
    diskstats = procfs / "diskstats"
    diskstats.write_text(
        "".join(line for line in diskstats.read_text().splitlines(True) if " sda " not in line)
    )
    net_dev = procfs / "net/dev"
    net_dev.write_text(
        "".join(line for line in net_dev.read_text().splitlines(True) if "virbr0" not in line)
    )
    readings = collector.collect(1010.0)
    assert "sda" not in disks_of(readings)
    assert [(u.device, u.reason, u.unavailable_since) for u in readings.unavailable] == [
        ("disk:sda", "no longer discovered", 1010.0),
        ("net:virbr0", "no longer discovered", 1010.0),
    ]
    # it comes back: no longer unavailable, and no rate against a stale reading
    write_procfs_tree(procfs, tick=2)
    readings = collector.collect(1020.0)
    assert readings.unavailable == ()
    assert disks_of(readings)["sda"].read_ops_per_second is None


def test_unreadable_diskstats_marks_known_disks_unavailable(procfs: Path) -> None:
    collector = make_collector(procfs)
    collector.collect(1000.0)
    (procfs / "diskstats").unlink()
    readings = collector.collect(1010.0)
    assert readings.disks is None
    assert {u.device: u.reason for u in readings.unavailable} == {
        "disk:dm-0": "diskstats unreadable",
        "disk:nvme0n1": "diskstats unreadable",
        "disk:sda": "diskstats unreadable",
    }


def test_cpu_count_change_restarts_per_cpu_shares(procfs: Path) -> None:
    collector = make_collector(procfs)
    collector.collect(1000.0)
    write_procfs_tree(procfs, tick=1)
    stat = procfs / "stat"
    stat.write_text("".join(x for x in stat.read_text().splitlines(True) if "cpu3" not in x))
    readings = collector.collect(1010.0)
    assert readings.per_cpu is not None
    assert len(readings.per_cpu) == 3
    assert all(c.utilisation_percent is None for c in readings.per_cpu)


def test_readings_are_json_ready(procfs: Path) -> None:
    data = json.loads(json.dumps(to_jsonable(two_collections(procfs))))
    assert data["cpu_total"]["utilisation_percent"] == pytest.approx(55.0)
    assert data["disks"][2]["device"] == "sda"
    assert data["unavailable"] == []


def test_summary_lines(procfs: Path) -> None:
    collector = make_collector(procfs)
    first = HostCollector.summarize(collector.collect(1000.0))
    assert "rates: none yet (they need a second collection); totals are since boot" in first
    assert "disk sda     1200000 reads 800000 writes, read 195.3 GiB written 97.7 GiB" in first
    assert any(line.startswith("cpu          usage needs a second collection") for line in first)
    write_procfs_tree(procfs, tick=1)
    lines = HostCollector.summarize(collector.collect(1010.0))
    text = "\n".join(lines)
    assert "55.0% busy, iowait 5.0%, steal 8.0% (4 CPUs); load 2.50 1.75 1.20" in text
    assert "disk sda     12.0 r/s 8.0 w/s, read 1.0 MiB/s write 512.0 KiB/s" in text
    assert "await 10.00 ms, busy 25.0%" in text
    assert "4 processes, 25000 context switches/s" in text
    assert "rates: none yet" not in text


@pytest.mark.parametrize("key", ["disk_exclude_pattern", "interface_exclude_pattern"])
def test_invalid_pattern_is_a_config_error_naming_the_key(key: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({"collectors": {"host": {key: "(unclosed"}}}, "agent.toml")
    assert error.value.key == f"collectors.host.{key}"
    assert "not a valid regular expression" in str(error.value)


def test_default_disk_exclusion_matches_node_exporter() -> None:
    assert HostSettings().disk_exclude_pattern == NODE_EXPORTER_DISK_EXCLUDE


def test_real_proc_types() -> None:
    collector = HostCollector(CollectorContext(), HostSettings())
    collector.collect(1.0)
    readings = collector.collect(2.0)
    assert isinstance(readings.uptime_seconds, float)
    assert readings.cpu_total is not None
    assert readings.per_cpu is not None
    assert len(readings.per_cpu) == psutil.cpu_count()
    assert readings.memory is not None
    assert readings.memory.total_bytes == psutil.virtual_memory().total
    assert isinstance(readings.process_count, int)
    assert readings.load is not None
    assert isinstance(readings.load.load_1m, float)
    assert readings.swap is not None
    assert isinstance(readings.disks, tuple)
    assert isinstance(readings.interfaces, tuple)
    for disk in readings.disks:
        assert isinstance(disk.read_ops, int)
        assert disk.busy_percent is None or 0.0 <= disk.busy_percent <= 100.0
    if readings.interval_seconds is not None:  # /proc/uptime moved on (0.01 s resolution)
        assert readings.context_switches_per_second is not None
        assert readings.context_switches_per_second >= 0
    json.dumps(to_jsonable(readings))
