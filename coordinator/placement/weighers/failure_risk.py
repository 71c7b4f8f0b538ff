"""Failure risk: the failure predictors' probability that the host fails soon.

The strongest reliability factor: a VM placed on a host that fails loses its work and
needs evacuating. Hosts above ``max_failure_probability`` are filtered; below it this
weigher still prefers the lower risk. A host whose models gave no prediction is not
assumed healthy: it is slightly disfavoured and its score is less confident.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.hosts import FloatArray, HostTable
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.weighers.base import WEIGHERS, Weigher
from novacron.coordinator.placement.weighers.common import indicator

FAILURE_MODELS = "model:node-failure-24h,node-failure-30m,disk-failure-7d (highest)"


@WEIGHERS.register("failure_risk", order=80)
class FailureRiskWeigher(Weigher):
    """Predicted failure probability, the VMs it would take down, missing predictions."""

    factors = (
        Factor(
            factor_id="failure_probability",
            name="Failure probability",
            category=Category.INFRASTRUCTURE,
            unit="probability",
            default_weight=3.0,  # the strongest single factor: losing the host loses the VM
            scope=Scope.HOST,
            source=FAILURE_MODELS,
            description="highest failure probability the host's failure models predict",
            higher_is_better=False,
            objective="reliability",
        ),
        Factor(
            factor_id="expected_vms_disrupted",
            name="VMs a failure would take down",
            category=Category.INFRASTRUCTURE,
            unit="vms",
            default_weight=0.5,
            scope=Scope.HOST,
            source=f"{FAILURE_MODELS} + allocation",
            description=(
                "failure probability times the VMs the host would run with this one (the "
                "expected blast radius: risky hosts should not collect VMs)"
            ),
            higher_is_better=False,
            objective="reliability",
        ),
        Factor(
            factor_id="failure_prediction_missing",
            name="No failure prediction",
            category=Category.INFRASTRUCTURE,
            unit="bool",
            default_weight=0.5,
            scope=Scope.HOST,
            source=FAILURE_MODELS,
            description="1 when no failure model scored the host's latest frame (risk unknown)",
            higher_is_better=False,
            objective="reliability",
        ),
    )

    def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
        probability = hosts.numbers["failure_probability"]
        return {
            "failure_probability": probability,
            "expected_vms_disrupted": probability * (hosts.numbers["vm_count"] + 1.0),
            "failure_prediction_missing": indicator(np.isnan(probability)),
        }
