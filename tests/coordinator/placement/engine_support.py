"""Test-only filters and weighers for the engine's tests.

The real filters and weighers live in their own modules with their own tests; the
engine, claims and service tests use these few, registered in local registries, so
each test states exactly which rules are in play. Host tables come from
:func:`tests.coordinator.placement.tables.host_table`.
"""

from __future__ import annotations

from collections.abc import Mapping

from novacron.coordinator.placement.engine import Policy
from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.filters.base import Filter, Rejection
from novacron.coordinator.placement.filters.excluded import ExcludedHostsFilter
from novacron.coordinator.placement.hosts import (
    FloatArray,
    HostTable,
)
from novacron.coordinator.placement.registry import Registry
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.settings import PlacementSettings
from novacron.coordinator.placement.weighers.base import Weigher


def factor(
    factor_id: str,
    *,
    higher_is_better: bool = True,
    default_weight: float = 1.0,
    objective: str = "spread",
    unit: str = "ratio",
    name: str | None = None,
) -> Factor:
    return Factor(
        factor_id=factor_id,
        name=name or factor_id.replace("_", " "),
        category=Category.RESOURCE,
        unit=unit,
        default_weight=default_weight,
        scope=Scope.HOST,
        source="test",
        description=f"test factor {factor_id}",
        higher_is_better=higher_is_better,
        objective=objective,
    )


def registries() -> tuple[Registry[Filter], Registry[Weigher]]:
    """Local registries holding the test plugins below (never the global ones)."""
    filters: Registry[Filter] = Registry("filter")
    weighers: Registry[Weigher] = Registry("weigher")
    filters.register("excluded_hosts", order=0)(ExcludedHostsFilter)

    @filters.register("TestCapacityFilter", order=10)
    class CapacityFilter(Filter):
        """Free vCPUs, memory and GPUs (with the settings' overcommit ratios)."""

        def reject(self, hosts: HostTable, request: PlacementRequest) -> tuple[Rejection, ...]:
            s = self.settings
            return (
                Rejection(
                    f"lack {request.vcpus} free vCPUs",
                    hosts.free("vcpus", s.cpu_allocation_ratio) < request.vcpus,
                ),
                Rejection(
                    f"lack {request.memory_mib} MiB free memory",
                    hosts.free("memory_mib", s.ram_allocation_ratio) < request.memory_mib,
                ),
                Rejection(f"lack {request.gpus} free GPUs", hosts.free("gpus") < request.gpus),
            )

    @filters.register("TestZoneFilter", order=5)
    class ZoneFilter(Filter):
        """Hosts outside the requested zone."""

        def reject(self, hosts: HostTable, request: PlacementRequest) -> tuple[Rejection, ...]:
            if not request.zone:
                return ()
            return (Rejection(f"not in zone {request.zone}", hosts.texts["zone"] != request.zone),)

    @filters.register("TestStateFilter", order=1)
    class StateFilter(Filter):
        """Hosts in maintenance."""

        def reject(self, hosts: HostTable, request: PlacementRequest) -> tuple[Rejection, ...]:
            return (Rejection("in maintenance", hosts.numbers["maintenance"] > 0),)

    @weighers.register("TestFreeWeigher")
    class FreeWeigher(Weigher):
        """Free memory (spread)."""

        factors = (factor("free_memory_mib", unit="mib", name="Free memory"),)

        def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
            return {"free_memory_mib": hosts.free("memory_mib") - request.memory_mib}

    @weighers.register("TestRiskWeigher")
    class RiskWeigher(Weigher):
        """Failure probability (reliability) and an optional energy column."""

        factors = (
            factor(
                "failure_probability_24h",
                higher_is_better=False,
                default_weight=2.0,
                objective="reliability",
                unit="probability",
                name="24 h failure probability",
            ),
            factor("power_idle_watts", higher_is_better=False, objective="energy", unit="W"),
        )

        def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
            return {
                "failure_probability_24h": hosts.numbers["failure_probability"],
                "power_idle_watts": hosts.number("power_idle_watts"),
            }

    return filters, weighers


def make_policy(settings: PlacementSettings | None = None) -> Policy:
    """A Policy over the test plugins above."""
    filters, weighers = registries()
    return Policy.from_settings(settings or PlacementSettings(), filters, weighers)
