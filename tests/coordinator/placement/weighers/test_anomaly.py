"""Anomaly: the latest frame's highest anomaly score, as reported."""

from __future__ import annotations

import math

from novacron.coordinator.placement.weighers.anomaly import AnomalyWeigher
from tests.coordinator.placement.tables import host_table, request
from tests.coordinator.placement.weighers.weighing import assert_raw, weigh


def test_score_passes_through() -> None:
    hosts = host_table(
        [{"anomaly_score": 0.9}, {"anomaly_score": 0.1}, {"anomaly_score": math.nan}]
    )
    assert_raw(weigh(AnomalyWeigher, hosts, request()), {"anomaly_score": [0.9, 0.1, math.nan]})
