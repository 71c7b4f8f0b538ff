"""NUMA: prefer hosts where the VM fits inside few host NUMA nodes.

A VM spread over several host NUMA nodes pays remote-memory latency; a host whose free
memory is scattered in small pieces over its nodes can no longer take a large
NUMA-bound VM. The numbers come from the per-node free capacity in the host table (the
inventory's topology minus what the VMs use).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.hosts import BoolArray, FloatArray, HostTable
from novacron.coordinator.placement.request import NumaPolicy, PlacementRequest
from novacron.coordinator.placement.weighers.base import WEIGHERS, Weigher
from novacron.coordinator.placement.weighers.common import (
    IdentityCache,
    indicator,
    ratio,
    readonly,
    zeros,
)


def freest_first(per_node_free: FloatArray) -> list[FloatArray]:
    """Per host NUMA node rank, the free amount of the host's freest, second freest ...
    node (a missing node or an overcommitted one counts as 0).

    A compare-exchange network over the few node columns: numpy's row-wise sort of a
    (hosts, nodes) array costs a Python-level call per host, this a few ufuncs per node
    pair.
    """
    ranked = [np.fmax(per_node_free[:, node], 0.0) for node in range(per_node_free.shape[1])]
    for end in range(len(ranked) - 1, 0, -1):
        for i in range(end):
            high = np.maximum(ranked[i], ranked[i + 1])
            ranked[i + 1] = np.minimum(ranked[i], ranked[i + 1])
            ranked[i] = high
    return ranked


def nodes_needed(ranked: tuple[FloatArray, ...], amount: float) -> FloatArray:
    """Fewest nodes whose free amounts add up to ``amount``, freest first (NaN: not even
    all of them together)."""
    needed = np.ones_like(ranked[0])
    reached = ranked[0].copy()
    for more in ranked[1:]:
        needed += reached < amount
        reached += more
    needed[reached < amount] = np.nan
    return needed


@dataclass(frozen=True, eq=False)
class Topology:
    """The request-independent part: nodes ranked by free capacity, per host."""

    vcpus: tuple[FloatArray, ...]  # freest node first
    memory_mib: tuple[FloatArray, ...]
    unknown: BoolArray  # hosts without NUMA data
    largest_vcpus: FloatArray
    largest_memory_mib: FloatArray
    fragmentation: FloatArray


_TOPOLOGY: IdentityCache[Topology] = IdentityCache()


def topology(hosts: HostTable) -> Topology:
    vcpus, memory = hosts.numa_free_vcpus, hosts.numa_free_memory_mib

    def compute() -> Topology:
        ranked_vcpus = freest_first(vcpus)
        ranked_memory = freest_first(memory)
        unknown = np.isnan(memory[:, 0])  # a host with NUMA data has node 0
        largest_vcpus = ranked_vcpus[0].copy()
        largest_vcpus[unknown] = np.nan
        largest_memory = ranked_memory[0].copy()
        largest_memory[unknown] = np.nan
        total_memory = np.sum(ranked_memory, axis=0)
        fragmentation = 1.0 - ratio(largest_memory, total_memory)
        # A host with no free memory at all has nothing to fragment.
        fragmentation[total_memory <= 0] = 0.0
        fragmentation[unknown] = np.nan
        return Topology(
            tuple(readonly(a) for a in ranked_vcpus),
            tuple(readonly(a) for a in ranked_memory),
            unknown,
            readonly(largest_vcpus),
            readonly(largest_memory),
            readonly(fragmentation),
        )

    return _TOPOLOGY.get((vcpus, memory), compute)


@WEIGHERS.register("numa", order=40)
class NumaWeigher(Weigher):
    """NUMA locality of this VM and of the capacity left on each node."""

    factors = (
        Factor(
            factor_id="numa_nodes_needed",
            name="NUMA nodes spanned",
            category=Category.PERFORMANCE,
            unit="nodes",
            default_weight=0.5,
            scope=Scope.REQUEST,
            source="inventory:numa + allocation",
            description=(
                "fewest host NUMA nodes whose free vCPUs and memory hold the VM (1 = local "
                "memory only)"
            ),
            higher_is_better=False,
            objective="performance",
        ),
        Factor(
            factor_id="numa_preferred_fit",
            name="Preferred NUMA fit",
            category=Category.PERFORMANCE,
            unit="bool",
            default_weight=1.5,  # the request asked for it explicitly
            scope=Scope.REQUEST,
            source="inventory:numa + allocation + request",
            description=(
                "1 when the VM fits in the number of host NUMA nodes it asked for "
                "(numa_policy preferred; the same on every host otherwise)"
            ),
            higher_is_better=True,
            objective="performance",
        ),
        Factor(
            factor_id="numa_largest_free_vcpus",
            name="Freest NUMA node vCPUs",
            category=Category.RESOURCE,
            unit="vcpus",
            default_weight=0.25,
            scope=Scope.HOST,
            source="inventory:numa + allocation",
            description="free vCPUs of the host's freest NUMA node (room for NUMA-bound VMs)",
            higher_is_better=True,
            objective="spread",
        ),
        Factor(
            factor_id="numa_largest_free_memory_mib",
            name="Freest NUMA node memory",
            category=Category.RESOURCE,
            unit="mib",
            default_weight=0.25,
            scope=Scope.HOST,
            source="inventory:numa + allocation",
            description="free memory of the host's freest NUMA node (room for NUMA-bound VMs)",
            higher_is_better=True,
            objective="spread",
        ),
        Factor(
            factor_id="numa_memory_fragmentation",
            name="NUMA memory fragmentation",
            category=Category.PERFORMANCE,
            unit="ratio",
            default_weight=0.25,
            scope=Scope.HOST,
            source="inventory:numa + allocation",
            description=(
                "share of the host's free memory outside its freest NUMA node (0 = all in "
                "one node; high = scattered in pieces no large VM can use locally)"
            ),
            higher_is_better=False,
            objective="performance",
        ),
    )

    def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
        if hosts.numa_free_vcpus.shape[1] == 0:  # no host has NUMA data
            unknown = np.full(len(hosts), np.nan)
            return {factor.factor_id: unknown for factor in self.factors}
        nodes = topology(hosts)
        # NaN on either side (no fit even over all nodes) stays NaN.
        needed = np.maximum(
            nodes_needed(nodes.vcpus, request.vcpus),
            nodes_needed(nodes.memory_mib, request.memory_mib),
        )
        needed[nodes.unknown] = np.nan
        if request.numa_policy is NumaPolicy.PREFERRED:
            preferred = indicator(needed <= request.numa_nodes, ~np.isnan(needed))
        else:
            preferred = zeros(hosts)
        return {
            "numa_nodes_needed": needed,
            "numa_preferred_fit": preferred,
            "numa_largest_free_vcpus": nodes.largest_vcpus,
            "numa_largest_free_memory_mib": nodes.largest_memory_mib,
            "numa_memory_fragmentation": nodes.fragmentation,
        }
