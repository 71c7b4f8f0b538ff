"""Energy: added power (dynamic share plus idle draw of an empty host), carbon, efficiency."""

from __future__ import annotations

import math

from novacron.coordinator.placement.weighers.energy import EnergyWeigher
from tests.coordinator.placement.tables import host_table, request
from tests.coordinator.placement.weighers.weighing import assert_raw, weigh

NAN = math.nan
POWER = {"power_idle_watts": 100.0, "power_max_watts": 300.0, "carbon_g_per_kwh": 400.0}


def test_marginal_power_and_carbon() -> None:
    hosts = host_table([{**POWER, "vm_count": 3}, POWER, {"vm_count": 1}])
    assert_raw(
        weigh(EnergyWeigher, hosts, request(vcpus=4)),
        {
            # 4 of 32 CPUs x 200 W dynamic range; the empty host also wakes its 100 W idle.
            "incremental_power_watts": [25.0, 125.0, NAN],
            "incremental_carbon_g_per_hour": [10.0, 50.0, NAN],
            "carbon_g_per_kwh": [400.0, 400.0, NAN],
            "watts_per_cpu": [300 / 32, 300 / 32, NAN],
            "power_idle_ratio": [1 / 3, 1 / 3, NAN],
            "opens_empty_host": [0, 1, 0],
        },
    )
