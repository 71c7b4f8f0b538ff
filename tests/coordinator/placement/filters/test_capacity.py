"""Capacity with overcommit: vCPUs, memory, disk; unknown capacity is not free capacity."""

from __future__ import annotations

import math

import pytest

from novacron.coordinator.placement.filters.capacity import CapacityFilter
from novacron.coordinator.placement.settings import PlacementSettings
from tests.coordinator.placement.tables import host_table, rejected, request

HOSTS = host_table(
    [
        # 8 threads x 4 = 32 vCPUs, 30 used: 2 free.
        {"host_id": "cpu_tight", "vcpus_total": 8, "vcpus_used": 30},
        # 64 GiB, 60 GiB used: 4 GiB free.
        {"host_id": "mem_tight", "memory_mib_total": 65536, "memory_mib_used": 61440},
        {"host_id": "disk_tight", "disk_gib_total": 500, "disk_gib_used": 450},
        {"host_id": "roomy"},
        {"host_id": "no_inventory", "vcpus_total": math.nan, "memory_mib_total": math.nan},
        {"host_id": "disk_unknown", "disk_gib_total": math.nan},
    ]
)
UNKNOWN = {"vCPUs capacity unknown": ["no_inventory"], "memory capacity unknown": ["no_inventory"]}


@pytest.mark.parametrize(
    ("fields", "settings", "expected"),
    [
        ({"vcpus": 2, "memory_mib": 4096}, PlacementSettings(), UNKNOWN),
        (
            {"vcpus": 3, "memory_mib": 4097},
            PlacementSettings(),
            {
                **UNKNOWN,
                "not enough free vCPUs": ["cpu_tight"],
                "not enough free memory": ["mem_tight"],
            },
        ),
        # Twice the memory overcommit doubles what the tight host can take.
        (
            {"vcpus": 2, "memory_mib": 8192},
            PlacementSettings(ram_allocation_ratio=2.0),
            UNKNOWN,
        ),
        # No overcommit: the CPU-tight host has no room at all (8 threads, 30 used).
        (
            {"vcpus": 1, "memory_mib": 1},
            PlacementSettings(cpu_allocation_ratio=1.0),
            {**UNKNOWN, "not enough free vCPUs": ["cpu_tight"]},
        ),
        # Disk is checked only when asked for; then unknown disk is removed too.
        (
            {"disk_gib": 60},
            PlacementSettings(),
            {
                **UNKNOWN,
                "disk capacity unknown": ["disk_unknown"],
                "not enough free disk": ["disk_tight"],
            },
        ),
        (
            {"disk_gib": 60},
            PlacementSettings(disk_allocation_ratio=1.5),
            {**UNKNOWN, "disk capacity unknown": ["disk_unknown"]},
        ),
    ],
)
def test_capacity(
    fields: dict[str, int], settings: PlacementSettings, expected: dict[str, list[str]]
) -> None:
    assert rejected(CapacityFilter, HOSTS, request(**fields), settings) == expected
