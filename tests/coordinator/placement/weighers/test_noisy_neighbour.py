"""Noisy neighbours: steal, load, burstiness, busy CPUs per allocated vCPU, VMs per CPU."""

from __future__ import annotations

import math

from novacron.coordinator.placement.weighers.noisy_neighbour import NoisyNeighbourWeigher
from tests.coordinator.placement.tables import host_table, request
from tests.coordinator.placement.weighers.weighing import assert_raw, weigh

NAN = math.nan


def test_neighbour_load() -> None:
    hosts = host_table(
        [
            # 32 CPUs 50 % busy = 16 busy CPUs for 16 allocated vCPUs.
            {
                "vcpus_used": 16,
                "vm_count": 8,
                "cpu_util_percent_mean_15m": 50,
                "cpu_steal_percent_mean_15m": 3,
                "load_per_cpu_mean_15m": 0.9,
                "cpu_util_percent_std_15m": 20,
            },
            # Idle neighbours: 64 vCPUs allocated, 8 CPUs busy.
            {"vcpus_used": 64, "vm_count": 4, "cpu_util_percent_mean_15m": 25},
            # Empty host: no neighbours to be noisy.
            {"cpu_util_percent_mean_15m": 2},
            {"vm_count": 2},  # no telemetry
        ]
    )
    assert_raw(
        weigh(NoisyNeighbourWeigher, hosts, request()),
        {
            "neighbour_busy_per_vcpu": [1.0, 0.125, 0.0, 0.0],
            "vms_per_cpu": [8 / 32, 4 / 32, 0.0, 2 / 32],
            "cpu_steal_percent": [3, NAN, NAN, NAN],
            "load_per_cpu": [0.9, NAN, NAN, NAN],
            "cpu_util_std_percent": [20, NAN, NAN, NAN],
        },
    )


def test_unknown_busyness_with_neighbours_is_unknown() -> None:
    values = weigh(NoisyNeighbourWeigher, host_table([{"vcpus_used": 8}]), request())
    assert math.isnan(values["neighbour_busy_per_vcpu"][0])
