"""Enough free vCPUs, memory and disk, with the configured overcommit ratios."""

from __future__ import annotations

import numpy as np

from novacron.coordinator.placement.filters.base import FILTERS, Filter, Rejection
from novacron.coordinator.placement.hosts import HostTable
from novacron.coordinator.placement.request import PlacementRequest


@FILTERS.register("capacity", order=40)
class CapacityFilter(Filter):
    """Free = total x allocation ratio - used, per resource; each shortfall is its own reason.

    A host whose capacity is not known (NaN) is removed under "... capacity unknown"
    rather than passed: placing on it could overbook. Disk is checked only when the VM
    asks for local disk.
    """

    def reject(self, hosts: HostTable, request: PlacementRequest) -> tuple[Rejection, ...]:
        settings = self.settings
        checks = [
            ("vcpus", "vCPUs", request.vcpus, settings.cpu_allocation_ratio),
            ("memory_mib", "memory", request.memory_mib, settings.ram_allocation_ratio),
        ]
        if request.disk_gib > 0:
            checks.append(("disk_gib", "disk", request.disk_gib, settings.disk_allocation_ratio))
        rejections = []
        for resource, words, amount, ratio in checks:
            free = hosts.free(resource, ratio)
            unknown = np.isnan(free)
            rejections.append(Rejection(f"{words} capacity unknown", unknown))
            rejections.append(Rejection(f"not enough free {words}", ~unknown & (free < amount)))
        return tuple(rejections)
