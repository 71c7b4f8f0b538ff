"""Failure risk: the prediction, the VMs a failure would take down, missing predictions."""

from __future__ import annotations

import math

from novacron.coordinator.placement.weighers.failure_risk import FailureRiskWeigher
from tests.coordinator.placement.tables import host_table, request
from tests.coordinator.placement.weighers.weighing import assert_raw, weigh

NAN = math.nan


def test_probability_blast_radius_and_missing() -> None:
    hosts = host_table(
        [
            {"failure_probability": 0.1, "vm_count": 3},
            {"failure_probability": 0.4},
            {"failure_probability": NAN, "vm_count": 2},
        ]
    )
    assert_raw(
        weigh(FailureRiskWeigher, hosts, request()),
        {
            "failure_probability": [0.1, 0.4, NAN],
            "expected_vms_disrupted": [0.4, 0.4, NAN],
            "failure_prediction_missing": [0, 0, 1],
        },
    )
