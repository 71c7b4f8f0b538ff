"""I/O contention: disk latency tail and I/O wait, as measured."""

from __future__ import annotations

import math

from novacron.coordinator.placement.weighers.io_contention import IoContentionWeigher
from tests.coordinator.placement.tables import host_table, request
from tests.coordinator.placement.weighers.weighing import assert_raw, weigh


def test_readings_pass_through() -> None:
    hosts = host_table(
        [
            {"disk_await_ms_p99_15m": 45.0, "cpu_iowait_percent_mean_15m": 12.0},
            {"disk_await_ms_p99_15m": 1.5, "cpu_iowait_percent_mean_15m": 0.2},
            {},
        ]
    )
    assert_raw(
        weigh(IoContentionWeigher, hosts, request()),
        {"disk_await_p99_ms": [45.0, 1.5, math.nan], "cpu_iowait_percent": [12.0, 0.2, math.nan]},
    )
