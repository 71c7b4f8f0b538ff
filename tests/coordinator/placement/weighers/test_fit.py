"""Fit: more VMs of the same size, best-fit slack, stranded capacity, leftover shape."""

from __future__ import annotations

import math

import pytest

from novacron.coordinator.placement.weighers.fit import FitWeigher
from tests.coordinator.placement.tables import host_table, request
from tests.coordinator.placement.weighers.weighing import assert_raw, weigh

# 128 allocatable vCPUs (32 x 4), 128 GiB.
HOSTS = host_table(
    [
        {"host_id": "empty"},
        # Exactly one 4 vCPU / 8 GiB VM left on both resources.
        {"host_id": "last_slot", "vcpus_used": 124, "memory_mib_used": 122880},
        # Plenty of vCPUs, memory for two more: vCPUs get stranded.
        {"host_id": "memory_bound", "memory_mib_used": 106496},
    ]
)


def test_vm_of_4_vcpus_8_gib() -> None:
    values = weigh(FitWeigher, HOSTS, request(vcpus=4, memory_mib=8192))
    assert_raw(
        values,
        {
            # empty: 124 vCPUs (31 VMs) and 120 GiB (15 VMs) left -> 15 more.
            "fit_count": [15, 0, 2],
            "best_fit_slack": [122880 / 131072, 0.0, 16384 / 131072],
            "stranded_vcpus_after": [124 - 15 * 4, 0, 124 - 2 * 4],
            "stranded_memory_after_mib": [0, 0, 0],
            # |31 - 15| / 31; both used up; |31 - 2| / 31.
            "leftover_shape_mismatch": [16 / 31, 0.0, 29 / 31],
        },
    )


def test_disk_counts_when_requested() -> None:
    hosts = host_table([{"disk_gib_used": 900}, {}])
    values = weigh(FitWeigher, hosts, request(vcpus=1, memory_mib=1024, disk_gib=50))
    # 50 GiB left after the VM on the first host: one more VM, disk decides.
    assert values["fit_count"].tolist() == [1, 19]
    assert values["best_fit_slack"][0] == pytest.approx(50 / 1000)


def test_unknown_capacity_is_unknown() -> None:
    hosts = host_table([{"vcpus_total": math.nan, "memory_mib_total": math.nan}])
    values = weigh(FitWeigher, hosts, request())
    assert math.isnan(values["fit_count"][0])
    assert math.isnan(values["stranded_vcpus_after"][0])
