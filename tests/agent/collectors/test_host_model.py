"""Readings from two host snapshots: rates, latency, utilisation (pure, no I/O)."""

from __future__ import annotations

import pytest

from novacron.agent.collectors._host_model import (
    HostSnapshot,
    KernelEventCounts,
    derive_readings,
    disk_io,
    interval_between,
)
from novacron.agent.collectors._procfs import DiskStats


def disk(
    reads: int = 0, writes: int = 0, read_ms: int = 0, write_ms: int = 0, io_ms: int = 0
) -> DiskStats:
    return DiskStats("sda", reads, reads * 8, read_ms, writes, writes * 8, write_ms, 0, io_ms)


def test_disk_rates_latency_and_busy() -> None:
    io = disk_io(disk(), disk(reads=30, writes=10, read_ms=60, write_ms=140, io_ms=500), 2.0)
    assert (io.read_ops_per_second, io.write_ops_per_second) == (15.0, 5.0)
    assert io.read_bytes_per_second == 30 * 8 * 512 / 2.0
    assert io.await_ms == 200 / 40
    assert io.busy_percent == 25.0


def test_busy_is_capped_at_100_percent() -> None:
    # io_ticks can run a little ahead of the uptime clock between the two reads
    assert disk_io(disk(), disk(reads=1, io_ms=2050), 2.0).busy_percent == 100.0


def test_no_completed_io_has_no_latency() -> None:
    io = disk_io(disk(reads=5, read_ms=10), disk(reads=5, read_ms=10), 1.0)
    assert io.await_ms is None
    assert io.busy_percent == 0.0


def test_reset_counters_give_no_rates() -> None:
    io = disk_io(disk(reads=1000, read_ms=5000, io_ms=9000), disk(reads=3, read_ms=4, io_ms=5), 1.0)
    assert io.read_ops == 3
    assert io.read_ops_per_second is None
    assert io.await_ms is None
    assert io.busy_percent is None


@pytest.mark.parametrize(
    ("before", "after", "interval"),
    [
        (None, 10.0, None),
        (10.0, None, None),
        (10.0, 10.0, None),
        (20.0, 10.0, None),
        (10.0, 12.5, 2.5),
    ],
)
def test_interval_from_uptime(
    before: float | None, after: float | None, interval: float | None
) -> None:
    assert (
        interval_between(HostSnapshot(uptime_seconds=before), HostSnapshot(uptime_seconds=after))
        == interval
    )


def test_derive_readings_with_sections_missing() -> None:
    before = HostSnapshot(uptime_seconds=100.0, kernel_events=KernelEventCounts(1000, 500))
    after = HostSnapshot(uptime_seconds=110.0, kernel_events=KernelEventCounts(3000, 600))
    readings = derive_readings(before, after)
    assert readings.interval_seconds == 10.0
    assert readings.context_switches_per_second == 200.0
    assert readings.interrupts_per_second == 10.0
    assert (readings.cpu_total, readings.per_cpu, readings.disks, readings.memory) == (
        None,
        None,
        None,
        None,
    )
    first = derive_readings(None, after)
    assert first.interval_seconds is None
    assert first.context_switches_per_second is None
