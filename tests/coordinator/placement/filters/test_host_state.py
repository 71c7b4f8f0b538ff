"""Host state: unknown, stale, maintenance, cordoned, failure risk, anomaly."""

from __future__ import annotations

import math

import pytest

from novacron.coordinator.fleet import Liveness
from novacron.coordinator.placement.filters.host_state import HostStateFilter
from novacron.coordinator.placement.settings import PlacementSettings
from tests.coordinator.placement.tables import host_table, rejected, request

HOSTS = host_table(
    [
        {"host_id": "live"},
        {"host_id": "stale", "liveness": Liveness.STALE},
        {"host_id": "unknown", "liveness": Liveness.UNKNOWN, "failure_probability": math.nan},
        {"host_id": "maint", "maintenance": 1},
        {"host_id": "cordoned", "cordoned": 1},
        {"host_id": "failing", "failure_probability": 0.62},
        {"host_id": "at_threshold", "failure_probability": 0.5},
        {"host_id": "no_prediction", "failure_probability": math.nan, "anomaly_score": math.nan},
        {"host_id": "odd", "anomaly_score": 0.95},
    ]
)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            PlacementSettings(),
            {
                "no recent telemetry (host state unknown)": ["unknown"],
                "telemetry is stale": ["stale"],
                "host in maintenance": ["maint"],
                "host cordoned": ["cordoned"],
                "predicted failure probability above 0.5": ["failing"],
            },
        ),
        (
            PlacementSettings(
                avoid_stale_hosts=False, max_failure_probability=0.3, max_anomaly_score=0.9
            ),
            {
                "no recent telemetry (host state unknown)": ["unknown"],
                "host in maintenance": ["maint"],
                "host cordoned": ["cordoned"],
                "predicted failure probability above 0.3": ["failing", "at_threshold"],
                "anomaly score above 0.9": ["odd"],
            },
        ),
    ],
)
def test_host_state(settings: PlacementSettings, expected: dict[str, list[str]]) -> None:
    assert rejected(HostStateFilter, HOSTS, request(), settings) == expected
