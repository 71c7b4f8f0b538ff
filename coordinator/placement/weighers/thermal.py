"""Thermal headroom: distance to critical temperatures, how fast it shrinks, fans.

A host running close to a critical limit throttles its CPUs and, past it, shuts down.
The margin says how close it is, the trend how fast it is getting closer, and the two
together how long until it gets there. A monitored fan reading 0 rpm has stopped.
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
    indicator,
    plain_telemetry,
    readonly,
    telemetry,
)

# Rises slower than this (celsius per minute) are noise, not a trend towards the limit.
MIN_RISE_CELSIUS_PER_MINUTE = 0.01
# "Not heading for the limit within a day" is as good as it gets.
RUNAWAY_HORIZON_MINUTES = 1440.0


@WEIGHERS.register("thermal_headroom", order=90)
class ThermalHeadroomWeigher(Weigher):
    """Temperature margin, its trend, time to the critical limit, and fans."""

    factors = (
        Factor(
            factor_id="temp_margin_celsius",
            name="Thermal margin",
            category=Category.INFRASTRUCTURE,
            unit="celsius",
            default_weight=1.5,
            scope=Scope.HOST,
            source="telemetry:temp_margin_celsius_min_15m",
            description="closest approach of any sensor to its critical limit, last 15 min",
            higher_is_better=True,
            objective="reliability",
        ),
        Factor(
            factor_id="temp_max_celsius",
            name="Hottest sensor",
            category=Category.INFRASTRUCTURE,
            unit="celsius",
            default_weight=0.5,
            scope=Scope.HOST,
            source="telemetry:temp_max_celsius_last_15m",
            description="hottest temperature sensor or thermal zone now",
            higher_is_better=False,
            objective="reliability",
        ),
        Factor(
            factor_id="temp_trend_celsius_per_minute",
            name="Temperature trend",
            category=Category.INFRASTRUCTURE,
            unit="celsius/min",
            default_weight=1.0,
            scope=Scope.HOST,
            source="telemetry:temp_max_celsius_trend_30m",
            description="rise of the hottest temperature over the last 30 min (runaway)",
            higher_is_better=False,
            objective="reliability",
        ),
        Factor(
            factor_id="thermal_runaway_minutes",
            name="Minutes to critical temperature",
            category=Category.INFRASTRUCTURE,
            unit="minutes",
            default_weight=1.0,
            scope=Scope.HOST,
            source="telemetry:temp_margin_celsius_min_15m / temp_max_celsius_trend_30m",
            description=(
                "thermal margin over the current rise: minutes until a critical limit at "
                "this pace (capped at a day; a day when not rising)"
            ),
            higher_is_better=True,
            objective="reliability",
        ),
        Factor(
            factor_id="fan_stopped",
            name="Fan stopped",
            category=Category.INFRASTRUCTURE,
            unit="bool",
            default_weight=1.5,
            scope=Scope.HOST,
            source="telemetry:fan_min_rpm_last_15m (at 0 rpm)",
            description="1 when a monitored fan reads 0 rpm (headroom will go under load)",
            higher_is_better=False,
            objective="reliability",
        ),
        Factor(
            factor_id="fan_trend_rpm_per_minute",
            name="Fan speed trend",
            category=Category.INFRASTRUCTURE,
            unit="rpm/min",
            default_weight=0.5,
            scope=Scope.HOST,
            source="telemetry:fan_min_rpm_trend_30m",
            description="change of the slowest fan's speed over 30 min (negative = slowing)",
            higher_is_better=True,
            objective="reliability",
        ),
    )

    def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
        values = plain_telemetry(hosts, self.factors)
        values.update(_DERIVED.get((hosts.features,), lambda: _derived(hosts)))
        return values


_DERIVED: IdentityCache[Mapping[str, FloatArray]] = IdentityCache()


def _derived(hosts: HostTable) -> Mapping[str, FloatArray]:
    """Minutes to the critical limit and stopped fans (telemetry only: once per table)."""
    margin = telemetry(hosts, "temp_margin_celsius_min_15m")
    rise = telemetry(hosts, "temp_max_celsius_trend_30m")
    with np.errstate(divide="ignore", invalid="ignore"):
        minutes = np.maximum(margin, 0.0) / rise
    minutes[~(rise > MIN_RISE_CELSIUS_PER_MINUTE)] = RUNAWAY_HORIZON_MINUTES  # not rising
    np.minimum(minutes, RUNAWAY_HORIZON_MINUTES, out=minutes)
    minutes[np.isnan(margin)] = np.nan  # no sensors: unknown
    fan = telemetry(hosts, "fan_min_rpm_last_15m")
    return MappingProxyType(
        {
            "thermal_runaway_minutes": readonly(minutes),
            "fan_stopped": readonly(indicator(fan <= 0, ~np.isnan(fan))),
        }
    )
