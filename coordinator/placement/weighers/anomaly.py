"""Anomaly: the anomaly models' score for the host's (or its VMs') latest behaviour.

An anomalous host is not yet predicted to fail but behaves unlike itself: new VMs are
better placed elsewhere until it is understood. Hosts above ``max_anomaly_score`` are
filtered; below it the lower score is preferred.
"""

from __future__ import annotations

from collections.abc import Mapping

from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.hosts import FloatArray, HostTable
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.weighers.base import WEIGHERS, Weigher


@WEIGHERS.register("anomaly", order=85)
class AnomalyWeigher(Weigher):
    """Highest anomaly score of the host's latest frame."""

    factors = (
        Factor(
            factor_id="anomaly_score",
            name="Anomaly score",
            category=Category.INFRASTRUCTURE,
            unit="score",
            default_weight=1.5,
            scope=Scope.HOST,
            source="model:node-anomaly,vm-anomaly (highest)",
            description="highest anomaly score of the host's latest frame, node or VM (0..1)",
            higher_is_better=False,
            objective="reliability",
        ),
    )

    def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
        return {"anomaly_score": hosts.numbers["anomaly_score"]}
