"""Network: NIC speed, errors, drops, bandwidth per VM, VMs per host in the rack."""

from __future__ import annotations

import math

from novacron.coordinator.placement.weighers.network import NetworkWeigher
from tests.coordinator.placement.tables import host_table, request
from tests.coordinator.placement.weighers.weighing import assert_raw, weigh

NAN = math.nan


def test_links_and_rack_density() -> None:
    hosts = host_table(
        [
            {
                "rack": "r1",
                "vm_count": 4,
                "nic_speed_mbps": 10000,
                "net_errors_per_second_mean_15m": 0.5,
                "net_drops_per_second_mean_15m": 2.0,
            },
            {"rack": "r1", "vm_count": 2, "nic_speed_mbps": 25000},
            {"rack": "r2", "nic_speed_mbps": 100000},
            {"vm_count": 9},  # rack unknown, speed unknown
        ]
    )
    assert_raw(
        weigh(NetworkWeigher, hosts, request()),
        {
            "nic_speed_mbps": [10000, 25000, 100000, NAN],
            "nic_mbps_per_vm_after": [2000, 25000 / 3, 100000, NAN],
            "rack_vms_per_host": [3, 3, 0, NAN],
            "net_errors_per_second": [0.5, NAN, NAN, NAN],
            "net_drops_per_second": [2.0, NAN, NAN, NAN],
        },
    )
