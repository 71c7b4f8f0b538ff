"""Thermal headroom: margin, trend, minutes to the critical limit, stopped fans."""

from __future__ import annotations

import math

import pytest

from novacron.coordinator.placement.weighers.thermal import (
    RUNAWAY_HORIZON_MINUTES,
    ThermalHeadroomWeigher,
)
from tests.coordinator.placement.tables import host_table, request
from tests.coordinator.placement.weighers.weighing import weigh

NAN = math.nan


@pytest.mark.parametrize(
    ("margin", "trend", "minutes"),
    [
        (20.0, 0.5, 40.0),
        (20.0, 0.0, RUNAWAY_HORIZON_MINUTES),  # steady
        (20.0, -1.0, RUNAWAY_HORIZON_MINUTES),  # cooling
        (20.0, 0.005, RUNAWAY_HORIZON_MINUTES),  # noise, not a trend
        (-5.0, 1.0, 0.0),  # already past the limit
        (5000.0, 1.0, RUNAWAY_HORIZON_MINUTES),  # capped at a day
        (20.0, NAN, RUNAWAY_HORIZON_MINUTES),  # no trend yet: assume steady
        (NAN, 1.0, NAN),  # no sensors
    ],
)
def test_minutes_to_critical(margin: float, trend: float, minutes: float) -> None:
    hosts = host_table(
        [{"temp_margin_celsius_min_15m": margin, "temp_max_celsius_trend_30m": trend}]
    )
    values = weigh(ThermalHeadroomWeigher, hosts, request())
    assert values["thermal_runaway_minutes"].tolist() == pytest.approx([minutes], nan_ok=True)


def test_fans_and_plain_readings() -> None:
    hosts = host_table(
        [
            {
                "fan_min_rpm_last_15m": 0,
                "fan_min_rpm_trend_30m": -300,
                "temp_max_celsius_last_15m": 88,
            },
            {
                "fan_min_rpm_last_15m": 4200,
                "fan_min_rpm_trend_30m": 0,
                "temp_max_celsius_last_15m": 45,
            },
            {},
        ]
    )
    values = weigh(ThermalHeadroomWeigher, hosts, request())
    assert values["fan_stopped"].tolist() == pytest.approx([1, 0, NAN], nan_ok=True)
    assert values["fan_trend_rpm_per_minute"].tolist() == pytest.approx([-300, 0, NAN], nan_ok=True)
    assert values["temp_max_celsius"].tolist() == pytest.approx([88, 45, NAN], nan_ok=True)
