"""Balance: keep each host's resources used in step (Kubernetes' balanced allocation).

A host whose vCPUs are 90 % allocated while its memory is 20 % allocated has a
bottleneck and idle capacity behind it. The shares compared are vCPUs, memory, and
disk and GPUs where the host has them. These factors serve ``performance`` (no resource
of the host runs hot), so a pack request leaves them as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.hosts import FloatArray, HostTable
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.settings import PlacementSettings
from novacron.coordinator.placement.weighers.base import WEIGHERS, Weigher
from novacron.coordinator.placement.weighers.common import (
    IdentityCache,
    capacity,
    nan_to,
    per_unit,
    ratio,
    readonly,
    requested,
)

# Every host has these; disk and GPUs count only on hosts that have them.
CORE = ("vcpus", "memory_mib")
OPTIONAL = ("disk_gib", "gpus")


@dataclass(frozen=True, eq=False)
class Shares:
    """Used shares per resource before placement, and what one unit of each adds.

    Resources a host lacks (optional ones) read 0 in both and are left out of the host's
    ``count``, so sums over resources need no masks. Depends on the table only, so it is
    computed once per table (:class:`IdentityCache`).
    """

    resources: tuple[str, ...]
    used: tuple[FloatArray, ...]  # used / allocatable
    per_unit: tuple[FloatArray, ...]  # 1 / allocatable
    count: FloatArray  # resources the host has
    stddev: FloatArray  # imbalance before placement


def statistics(shares: list[FloatArray], count: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Standard deviation (over the resources a host has) and maximum of ``shares``."""
    total = shares[0].copy()
    squares = shares[0] * shares[0]
    highest = shares[0].copy()
    for share in shares[1:]:
        total += share
        squares += share * share
        np.maximum(highest, share, out=highest)  # NaN (unknown capacity) propagates
    mean = total / count
    variance = squares / count - mean * mean
    return np.sqrt(np.maximum(variance, 0.0)), highest  # rounding can dip below 0


_SHARES: IdentityCache[Shares] = IdentityCache()


def shares_before(hosts: HostTable, settings: PlacementSettings) -> Shares:
    totals = {r: capacity(hosts, settings, r) for r in CORE + OPTIONAL}
    used = {r: hosts.numbers[f"{r}_used"] for r in CORE + OPTIONAL}

    def compute() -> Shares:
        resources: list[str] = []
        shares: list[FloatArray] = []
        units: list[FloatArray] = []
        count = np.full(len(hosts), float(len(CORE)))
        for resource in CORE + OPTIONAL:
            total = totals[resource]
            share = ratio(used[resource], total)
            unit = per_unit(hosts, settings, resource)
            if resource in OPTIONAL:
                present = total > 0
                if not present.any():  # no host has it (GPUs in most fleets)
                    continue
                count += present
                share, unit = nan_to(share, 0.0), nan_to(unit, 0.0)
            resources.append(resource)
            shares.append(share)
            units.append(unit)
        stddev, _ = statistics(shares, count)
        return Shares(
            tuple(resources),
            tuple(readonly(a) for a in shares),
            tuple(readonly(a) for a in units),
            readonly(count),
            readonly(stddev),
        )

    arrays = tuple(totals[r] for r in CORE + OPTIONAL) + tuple(used[r] for r in CORE + OPTIONAL)
    return _SHARES.get(arrays, compute)


@WEIGHERS.register("balance", order=30)
class BalanceWeigher(Weigher):
    """How evenly the host's resources are used once this VM is placed."""

    factors = (
        Factor(
            factor_id="balance_stddev_after",
            name="Resource imbalance",
            category=Category.RESOURCE,
            unit="ratio",
            default_weight=1.0,
            scope=Scope.REQUEST,
            source="allocation + request",
            description=(
                "standard deviation of the used shares of vCPUs, memory, disk and GPUs "
                "after placing the VM (0 = all used alike)"
            ),
            higher_is_better=False,
            objective="performance",
        ),
        Factor(
            factor_id="balance_improvement",
            name="Balance improvement",
            category=Category.RESOURCE,
            unit="ratio",
            default_weight=0.5,
            scope=Scope.REQUEST,
            source="allocation + request",
            description=(
                "how much placing the VM evens out the host (imbalance before minus after; "
                "positive = the VM fills the host's under-used resource)"
            ),
            higher_is_better=True,
            objective="performance",
        ),
        Factor(
            factor_id="dominant_share_after",
            name="Dominant share",
            category=Category.RESOURCE,
            unit="ratio",
            default_weight=0.5,
            scope=Scope.REQUEST,
            source="allocation + request",
            description=(
                "used share of the host's most allocated resource after placing the VM "
                "(the resource that runs out first)"
            ),
            higher_is_better=False,
            objective="performance",
        ),
    )

    def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
        before = shares_before(hosts, self.settings)
        after = [
            share + requested(request, resource) * unit if requested(request, resource) else share
            for resource, share, unit in zip(
                before.resources, before.used, before.per_unit, strict=True
            )
        ]
        stddev, dominant = statistics(after, before.count)
        return {
            "balance_stddev_after": stddev,
            "balance_improvement": before.stddev - stddev,
            "dominant_share_after": dominant,
        }
