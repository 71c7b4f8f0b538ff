"""Rack health: failures that hit a whole rack show first in its hosts together.

A failing PDU, top-of-rack switch or cooling unit shows as several hosts of one rack
going silent, running hot or being predicted to fail at once, and as operators putting
the rack's hosts into maintenance. A host in such a rack shares its fate.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.hosts import FloatArray, HostTable
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.weighers.base import WEIGHERS, Weigher
from novacron.coordinator.placement.weighers.common import (
    IdentityCache,
    groups,
    ratio,
    readonly,
    telemetry,
)

LIVE = 0  # fleet liveness code of a host sending frames on time


@WEIGHERS.register("rack_health", order=160)
class RackHealthWeigher(Weigher):
    """Failure risk, silence, maintenance and temperature of the host's rack."""

    factors = (
        Factor(
            factor_id="rack_failure_probability",
            name="Rack failure risk",
            category=Category.INFRASTRUCTURE,
            unit="probability",
            default_weight=0.5,
            scope=Scope.HOST,
            source="inventory:rack + model:node-failure-24h,node-failure-30m,disk-failure-7d",
            description="mean predicted failure probability of the hosts in the host's rack",
            higher_is_better=False,
            objective="reliability",
        ),
        Factor(
            factor_id="rack_unreachable_share",
            name="Rack hosts silent",
            category=Category.INFRASTRUCTURE,
            unit="ratio",
            default_weight=1.0,  # several silent hosts in one rack: switch or power trouble
            scope=Scope.HOST,
            source="inventory:rack + fleet liveness",
            description="share of the hosts in the host's rack that are stale or unknown",
            higher_is_better=False,
            objective="reliability",
        ),
        Factor(
            factor_id="rack_maintenance_share",
            name="Rack hosts in maintenance",
            category=Category.INFRASTRUCTURE,
            unit="ratio",
            default_weight=0.5,
            scope=Scope.HOST,
            source="inventory:rack + maintenance/cordon state",
            description=(
                "share of the hosts in the host's rack in maintenance or cordoned (work "
                "under way in the rack)"
            ),
            higher_is_better=False,
            objective="reliability",
        ),
        Factor(
            factor_id="rack_relative_temp_celsius",
            name="Hotter than rack",
            category=Category.INFRASTRUCTURE,
            unit="celsius",
            default_weight=0.5,
            scope=Scope.HOST,
            source="inventory:rack + telemetry:temp_max_celsius_last_15m",
            description=(
                "host's hottest sensor minus its rack's mean (a local cooling problem rather "
                "than a warm room)"
            ),
            higher_is_better=False,
            objective="reliability",
        ),
    )

    def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
        numbers = hosts.numbers
        inputs = (
            hosts.texts["rack"],
            numbers["failure_probability"],
            numbers["liveness"],
            numbers["maintenance"],
            numbers["cordoned"],
            hosts.features,
        )
        # Rack aggregates depend on the snapshot only: computed once per table.
        return _RACKS.get(inputs, lambda: _rack_health(hosts))


_RACKS: IdentityCache[Mapping[str, FloatArray]] = IdentityCache()


def _rack_health(hosts: HostTable) -> Mapping[str, FloatArray]:
    racks = groups(hosts, "rack")
    size = racks.size()
    numbers = hosts.numbers
    silent = (numbers["liveness"] != LIVE).astype(np.float64)
    held = ((numbers["maintenance"] > 0) | (numbers["cordoned"] > 0)).astype(np.float64)
    temperature = telemetry(hosts, "temp_max_celsius_last_15m")
    values = {
        "rack_failure_probability": racks.mean(numbers["failure_probability"]),
        "rack_unreachable_share": ratio(racks.sum(silent), size),
        "rack_maintenance_share": ratio(racks.sum(held), size),
        "rack_relative_temp_celsius": temperature - racks.mean(temperature),
    }
    return MappingProxyType({k: readonly(v) for k, v in values.items()})
