"""Operational: hardware age, how well the coordinator sees the host, untracked VMs, and
keeping scarce hosts (rare CPU features, compliance tags) for the VMs that need them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.hosts import BoolArray, FlagMatrix, FloatArray, HostTable
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.weighers.base import WEIGHERS, Weigher
from novacron.coordinator.placement.weighers.common import (
    IdentityCache,
    flag_counts,
    indicator,
    telemetry,
    telemetry_coverage,
)

LIVE = 0  # fleet liveness code of a host sending frames on time
# A CPU flag fewer than this share of the fleet's hosts have is scarce.
RARE_FLAG_SHARE = 0.1

_RARE: IdentityCache[tuple[BoolArray, FloatArray]] = IdentityCache()


def rare_flags(flags: FlagMatrix) -> tuple[BoolArray, FloatArray]:
    """Which vocabulary values are rare in the fleet, and how many each host has."""

    def compute() -> tuple[BoolArray, FloatArray]:
        hosts = flags.matrix.shape[0]
        rare = flags.matrix.sum(axis=0) < RARE_FLAG_SHARE * hosts
        counts = flags.matrix[:, rare].sum(axis=1).astype(np.float64)
        rare.setflags(write=False)
        counts.setflags(write=False)
        return rare, counts

    return _RARE.get((flags.matrix,), compute)


def held(flags: FlagMatrix, names: tuple[str, ...], among: BoolArray | None = None) -> FloatArray:
    """Per host, how many of ``names`` it has (only those marked in ``among``, if given)."""
    columns = [
        i
        for i in (flags.vocabulary.index(n) for n in set(names) if n in flags.vocabulary)
        if among is None or among[i]
    ]
    if not columns:
        return np.zeros(flags.matrix.shape[0])
    counts: FloatArray = np.sum(flags.matrix[:, columns], axis=1, dtype=np.float64)
    return counts


@WEIGHERS.register("operational", order=200)
class OperationalWeigher(Weigher):
    """Age, liveness, telemetry freshness and coverage, untracked VMs, scarce hosts."""

    factors = (
        Factor(
            factor_id="hardware_age_years",
            name="Hardware age",
            category=Category.OPERATIONAL,
            unit="years",
            default_weight=0.5,  # failure rates climb again past warranty age (bathtub)
            scope=Scope.HOST,
            source="inventory:hardware_age_years",
            description="years since the host was installed",
            higher_is_better=False,
            objective="reliability",
        ),
        Factor(
            factor_id="seconds_since_seen",
            name="Telemetry age",
            category=Category.OPERATIONAL,
            unit="seconds",
            default_weight=0.5,
            scope=Scope.HOST,
            source="fleet:last frame",
            description="seconds since the host's last telemetry frame (older = less known)",
            higher_is_better=False,
            objective="reliability",
        ),
        Factor(
            factor_id="host_not_live",
            name="Host not live",
            category=Category.OPERATIONAL,
            unit="bool",
            default_weight=1.0,
            scope=Scope.HOST,
            source="fleet liveness",
            description="1 when the host is stale or unknown (passes only when not filtered)",
            higher_is_better=False,
            objective="reliability",
        ),
        Factor(
            factor_id="telemetry_coverage",
            name="Telemetry coverage",
            category=Category.OPERATIONAL,
            unit="ratio",
            default_weight=0.5,
            scope=Scope.HOST,
            source="telemetry:all node features",
            description=(
                "share of the node features the host reports (a host without SMART or EDAC "
                "data cannot show disk or memory trouble)"
            ),
            higher_is_better=True,
            objective="reliability",
        ),
        Factor(
            factor_id="untracked_vms",
            name="Untracked VMs",
            category=Category.OPERATIONAL,
            unit="vms",
            default_weight=0.5,
            scope=Scope.HOST,
            source="telemetry:vm_running_count_last_15m + allocation",
            description=(
                "VMs the hypervisor runs beyond those the coordinator allocated (they use "
                "capacity the allocations count as free)"
            ),
            higher_is_better=False,
            objective="performance",
        ),
        Factor(
            factor_id="compliance_preservation",
            name="Unneeded compliance tags",
            category=Category.OPERATIONAL,
            unit="tags",
            default_weight=0.25,
            scope=Scope.REQUEST,
            source="inventory:compliance + request",
            description=(
                "compliance tags the host carries that the VM did not ask for (keep "
                "certified hosts for the workloads that need them)"
            ),
            higher_is_better=False,
            objective="energy",
        ),
        Factor(
            factor_id="rare_cpu_flags_unused",
            name="Unneeded rare CPU features",
            category=Category.RESOURCE,
            unit="flags",
            default_weight=0.25,
            scope=Scope.REQUEST,
            source="inventory:cpu_flags + request",
            description=(
                f"CPU flags fewer than {RARE_FLAG_SHARE:.0%} of hosts have that the VM did not "
                "ask for (keep scarce CPUs for the VMs that need them)"
            ),
            higher_is_better=False,
            objective="energy",
        ),
    )

    def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
        running = telemetry(hosts, "vm_running_count_last_15m")
        compliance = hosts.flags["compliance"]
        cpu_flags = hosts.flags["cpu_flags"]
        rare, rare_counts = rare_flags(cpu_flags)
        return {
            "hardware_age_years": hosts.number("hardware_age_years"),
            "seconds_since_seen": hosts.numbers["seconds_since_seen"],
            "host_not_live": indicator(hosts.numbers["liveness"] != LIVE),
            "telemetry_coverage": telemetry_coverage(hosts),
            "untracked_vms": np.maximum(running - hosts.numbers["vm_count"], 0.0),
            "compliance_preservation": flag_counts(hosts, "compliance")
            - held(compliance, request.compliance),
            "rare_cpu_flags_unused": rare_counts - held(cpu_flags, request.cpu_flags, rare),
        }
