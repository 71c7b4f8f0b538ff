"""Rack health: the rack's failure risk, silent hosts, maintenance, relative temperature."""

from __future__ import annotations

import math

from novacron.coordinator.placement.weighers.rack_health import RackHealthWeigher
from tests.coordinator.placement.tables import host_table, request
from tests.coordinator.placement.weighers.weighing import assert_raw, weigh

NAN = math.nan


def test_rack_aggregates() -> None:
    hosts = host_table(
        [
            {"rack": "r1", "failure_probability": 0.1, "temp_max_celsius_last_15m": 50},
            {
                "rack": "r1",
                "failure_probability": 0.3,
                "liveness": 1,
                "temp_max_celsius_last_15m": 60,
            },
            {
                "rack": "r1",
                "failure_probability": NAN,
                "maintenance": 1,
                "temp_max_celsius_last_15m": 70,
            },
            {"rack": "r2", "cordoned": 1},
            {"failure_probability": 0.9, "temp_max_celsius_last_15m": 90},  # rack unknown
        ]
    )
    assert_raw(
        weigh(RackHealthWeigher, hosts, request()),
        {
            # A host without a prediction does not count as healthy or failing.
            "rack_failure_probability": [0.2, 0.2, 0.2, 0.01, NAN],
            "rack_unreachable_share": [1 / 3, 1 / 3, 1 / 3, 0.0, NAN],
            "rack_maintenance_share": [1 / 3, 1 / 3, 1 / 3, 1.0, NAN],
            "rack_relative_temp_celsius": [-10, 0, 10, NAN, NAN],
        },
    )
