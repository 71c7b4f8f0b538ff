"""Memory health: ECC rates, their trend, uncorrected errors."""

from __future__ import annotations

import math

from novacron.coordinator.placement.weighers.memory_health import MemoryHealthWeigher
from tests.coordinator.placement.tables import host_table, request
from tests.coordinator.placement.weighers.weighing import assert_raw, weigh

NAN = math.nan


def test_trend_is_last_hour_against_last_day() -> None:
    hosts = host_table(
        [
            {  # a DIMM getting worse now
                "ecc_corrected_errors_rate_per_hour_1h": 40,
                "ecc_corrected_errors_rate_per_hour_24h": 5,
                "ecc_uncorrected_errors_increase_24h": 0,
            },
            {  # a steady trickle
                "ecc_corrected_errors_rate_per_hour_1h": 5,
                "ecc_corrected_errors_rate_per_hour_24h": 5,
                "ecc_uncorrected_errors_increase_24h": 1,
            },
            {},  # no EDAC
        ]
    )
    assert_raw(
        weigh(MemoryHealthWeigher, hosts, request()),
        {
            "ecc_corrected_rate_1h": [40, 5, NAN],
            "ecc_corrected_rate_24h": [5, 5, NAN],
            "ecc_corrected_rising": [35, 0, NAN],
            "ecc_uncorrected_24h": [0, 1, NAN],
        },
    )
