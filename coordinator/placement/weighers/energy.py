"""Energy: the power and carbon a placement adds, from the inventory's power figures.

Power is modelled linearly between the host's idle and maximum draw in proportion to
the share of its CPUs in use (the SPECpower-style model); a VM adds its vCPU share of
the dynamic range, and waking an empty host adds its whole idle draw. Carbon is that
power times the grid intensity where the host runs.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.hosts import FloatArray, HostTable
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.weighers.base import WEIGHERS, Weigher
from novacron.coordinator.placement.weighers.common import indicator, ratio

WATTS_PER_KILOWATT = 1000.0


@WEIGHERS.register("energy", order=190)
class EnergyWeigher(Weigher):
    """Marginal power and carbon of the placement, power efficiency, empty hosts."""

    factors = (
        Factor(
            factor_id="incremental_power_watts",
            name="Added power",
            category=Category.OPERATIONAL,
            unit="watts",
            default_weight=1.0,
            scope=Scope.REQUEST,
            source="inventory:power_idle_watts,power_max_watts + allocation + request",
            description=(
                "power the VM adds: its share of the host's CPUs times (max - idle) watts, "
                "plus the idle draw when it wakes an empty host"
            ),
            higher_is_better=False,
            objective="energy",
        ),
        Factor(
            factor_id="incremental_carbon_g_per_hour",
            name="Added carbon",
            category=Category.OPERATIONAL,
            unit="gCO2/h",
            default_weight=1.0,
            scope=Scope.REQUEST,
            source="inventory:carbon_g_per_kwh + incremental_power_watts",
            description="added power times the grid carbon intensity where the host runs",
            higher_is_better=False,
            objective="energy",
        ),
        Factor(
            factor_id="carbon_g_per_kwh",
            name="Carbon intensity",
            category=Category.OPERATIONAL,
            unit="gCO2/kWh",
            default_weight=0.5,
            scope=Scope.HOST,
            source="inventory:carbon_g_per_kwh",
            description="carbon intensity of the electricity where the host runs",
            higher_is_better=False,
            objective="energy",
        ),
        Factor(
            factor_id="watts_per_cpu",
            name="Power per CPU",
            category=Category.OPERATIONAL,
            unit="watts/cpu",
            default_weight=0.5,
            scope=Scope.HOST,
            source="inventory:power_max_watts + allocation",
            description="maximum power draw per logical CPU (older hosts draw more per core)",
            higher_is_better=False,
            objective="energy",
        ),
        Factor(
            factor_id="power_idle_ratio",
            name="Idle power share",
            category=Category.OPERATIONAL,
            unit="ratio",
            default_weight=0.25,
            scope=Scope.HOST,
            source="inventory:power_idle_watts,power_max_watts",
            description=(
                "idle draw as a share of maximum (low = energy-proportional: pays off when "
                "lightly loaded)"
            ),
            higher_is_better=False,
            objective="energy",
        ),
        Factor(
            factor_id="opens_empty_host",
            name="Wakes an empty host",
            category=Category.OPERATIONAL,
            unit="bool",
            default_weight=1.0,
            scope=Scope.HOST,
            source="allocation",
            description="1 when the host runs no VM yet (placing here keeps one more host busy)",
            higher_is_better=False,
            objective="energy",
        ),
    )

    def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
        idle = hosts.number("power_idle_watts")
        peak = hosts.number("power_max_watts")
        cpus = hosts.numbers["vcpus_total"]
        empty = hosts.numbers["vm_count"] <= 0
        cpu_share = np.minimum(ratio(float(request.vcpus), cpus), 1.0)
        added = cpu_share * np.maximum(peak - idle, 0.0)
        added[empty] += idle[empty]
        carbon = hosts.number("carbon_g_per_kwh")
        return {
            "incremental_power_watts": added,
            "incremental_carbon_g_per_hour": added / WATTS_PER_KILOWATT * carbon,
            "carbon_g_per_kwh": carbon,
            "watts_per_cpu": ratio(peak, cpus),
            "power_idle_ratio": ratio(idle, peak),
            "opens_empty_host": indicator(empty),
        }
