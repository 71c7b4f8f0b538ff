"""Strict NUMA fit: each guest NUMA node inside its own host NUMA node."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from novacron.coordinator.placement.filters.base import FILTERS, Filter, Rejection
from novacron.coordinator.placement.hosts import HostTable
from novacron.coordinator.placement.request import NumaPolicy, PlacementRequest


def numa_guest_node(request: PlacementRequest) -> tuple[int, int]:
    """vCPUs and MiB of one guest NUMA node (the VM split evenly, rounded up)."""
    nodes = request.numa_nodes
    return math.ceil(request.vcpus / nodes), math.ceil(request.memory_mib / nodes)


def numa_nodes_fitting(hosts: HostTable, request: PlacementRequest) -> npt.NDArray[np.intp]:
    """Per host: how many of its NUMA nodes can each hold one guest node."""
    vcpus, memory_mib = numa_guest_node(request)
    fits = (hosts.numa_free_vcpus >= vcpus) & (hosts.numa_free_memory_mib >= memory_mib)
    counts: npt.NDArray[np.intp] = fits.sum(axis=1)
    return counts


@FILTERS.register("numa", order=50)
class NumaFilter(Filter):
    """Only the strict policy filters; "preferred" is a weigher's business.

    The guest's ``numa_nodes`` nodes are identical (vCPUs and memory split evenly, rounded
    up), so the VM fits exactly when at least ``numa_nodes`` distinct host nodes each have
    room for one of them. The host table's NUMA free capacity already includes the
    allocation ratios.
    """

    def reject(self, hosts: HostTable, request: PlacementRequest) -> tuple[Rejection, ...]:
        if request.numa_policy is not NumaPolicy.STRICT:
            return ()
        unknown = np.all(np.isnan(hosts.numa_free_memory_mib), axis=1)
        nodes = request.numa_nodes
        words = "one NUMA node" if nodes == 1 else f"{nodes} NUMA nodes"
        return (
            Rejection("NUMA topology unknown", unknown),
            Rejection(
                f"VM does not fit in {words}",
                ~unknown & (numa_nodes_fitting(hosts, request) < nodes),
            ),
        )
