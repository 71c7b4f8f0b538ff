"""Performance: measured load, headroom after the VM, vCPU overcommit, CPU features."""

from __future__ import annotations

import math

from novacron.coordinator.placement.weighers.performance import PerformanceWeigher
from tests.coordinator.placement.tables import host_table, request
from tests.coordinator.placement.weighers.weighing import assert_raw, weigh

NAN = math.nan


def test_measured_headroom_after_the_vm() -> None:
    hosts = host_table(
        [
            {
                "vcpus_used": 30,
                "cpu_util_percent_mean_15m": 25,
                "mem_used_percent_p95_15m": 50,
                "swap_out_bytes_per_second_mean_15m": 0,
                "cpu_flags": ("avx2", "sse4_2", "aes"),
            },
            {"cpu_util_percent_mean_15m": 100, "mem_used_percent_p95_15m": 99},
        ]
    )
    assert_raw(
        weigh(PerformanceWeigher, hosts, request(vcpus=2, memory_mib=4096)),
        {
            "cpu_util_percent": [25, 100],
            "mem_used_p95_percent": [50, 99],
            "swap_out_bytes_per_second": [0, NAN],
            # 24 of 32 CPUs idle, minus 2; none idle, minus 2.
            "measured_cpu_headroom_after": [22, -2],
            "measured_memory_headroom_after_mib": [65536 - 4096, 131072 * 0.01 - 4096],
            "vcpu_overcommit_after": [1.0, 2 / 32],
            "cpu_flag_count": [3, NAN],  # no flags known is not "no features"
        },
    )
