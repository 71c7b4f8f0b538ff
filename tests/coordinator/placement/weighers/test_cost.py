"""Cost: host price, price per vCPU, and the VM's dominant share of the price."""

from __future__ import annotations

import math

from novacron.coordinator.placement.weighers.cost import CostWeigher
from tests.coordinator.placement.tables import host_table, request
from tests.coordinator.placement.weighers.weighing import assert_raw, weigh

NAN = math.nan


def test_vm_pays_its_dominant_share() -> None:
    hosts = host_table([{"cost_per_hour": 2.0}, {"cost_per_hour": 1.0, "vcpus_total": 8}, {}])
    assert_raw(
        weigh(CostWeigher, hosts, request(vcpus=4, memory_mib=8192)),
        {
            "cost_per_hour": [2.0, 1.0, NAN],
            # 128 and 32 allocatable vCPUs.
            "cost_per_vcpu_hour": [2.0 / 128, 1.0 / 32, NAN],
            # Memory (8 of 128 GiB) dominates on the first host, vCPUs (4 of 32) on the second.
            "vm_cost_per_hour": [2.0 * 8192 / 131072, 1.0 * 4 / 32, NAN],
        },
    )
