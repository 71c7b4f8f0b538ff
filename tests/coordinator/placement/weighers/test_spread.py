"""Spread: free capacity after overcommit, absolute and as shares; VM slots; VM count."""

from __future__ import annotations

import math

import pytest

from novacron.coordinator.placement.settings import PlacementSettings
from novacron.coordinator.placement.weighers.spread import SpreadWeigher
from tests.coordinator.placement.tables import host_table, request
from tests.coordinator.placement.weighers.weighing import assert_raw, weigh

NAN = math.nan
# 32 threads x 4 = 128 allocatable vCPUs, 128 GiB, 1000 GiB disk (tables.HEALTHY).
HOSTS = host_table(
    [
        {"host_id": "empty"},
        {
            "host_id": "half",
            "vcpus_used": 64,
            "memory_mib_used": 65536,
            "disk_gib_used": 500,
            "vm_count": 4,
            "max_vms": 8,
        },
        {"host_id": "no_disk", "disk_gib_total": NAN, "vm_count": 5},
    ]
)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            PlacementSettings(),
            {
                "free_vcpus": [128, 64, 128],
                "free_memory_mib": [131072, 65536, 131072],
                "free_disk_gib": [1000, 500, NAN],
                "free_vcpus_ratio": [1.0, 0.5, 1.0],
                "free_memory_ratio": [1.0, 0.5, 1.0],
                "free_disk_ratio": [1.0, 0.5, NAN],
                # No limit anywhere but on "half": 4 of 8 slots used.
                "free_vm_slots_ratio": [1.0, 0.5, 1.0],
                "vm_count": [0, 4, 5],
            },
        ),
        (
            # No overcommit and a default VM limit of 10 for hosts without their own.
            PlacementSettings(cpu_allocation_ratio=1.0, default_max_vms=10),
            {
                "free_vcpus": [32, -32, 32],
                "free_vcpus_ratio": [1.0, -1.0, 1.0],
                "free_vm_slots_ratio": [1.0, 0.5, 0.5],
            },
        ),
    ],
)
def test_free_capacity(settings: PlacementSettings, expected: dict[str, list[float]]) -> None:
    assert_raw(weigh(SpreadWeigher, HOSTS, request(), settings), expected)


def test_request_does_not_change_host_capacity() -> None:
    small = weigh(SpreadWeigher, HOSTS, request(vcpus=1, memory_mib=1))
    large = weigh(SpreadWeigher, HOSTS, request(vcpus=64, memory_mib=65536, disk_gib=100))
    for factor_id, values in small.items():
        assert values.tolist() == pytest.approx(large[factor_id].tolist(), nan_ok=True)
