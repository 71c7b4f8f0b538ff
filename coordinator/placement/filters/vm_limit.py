"""A cap on VMs per host (licensing, blast radius, hypervisor limits)."""

from __future__ import annotations

import numpy as np

from novacron.coordinator.placement.filters.base import FILTERS, Filter, Rejection
from novacron.coordinator.placement.hosts import FloatArray, HostTable
from novacron.coordinator.placement.request import PlacementRequest


def vm_limits(hosts: HostTable, default_max_vms: int) -> FloatArray:
    """Each host's VM limit: its own ``max_vms``, else the default (0 or NaN: none = inf)."""
    default = float(default_max_vms) if default_max_vms > 0 else np.inf
    own = hosts.numbers["max_vms"]
    return np.where(np.isnan(own), default, own)


@FILTERS.register("vm_limit", order=70)
class VmLimitFilter(Filter):
    """Hosts at their limit (inventory ``max_vms``, else ``default_max_vms``) are removed."""

    def reject(self, hosts: HostTable, request: PlacementRequest) -> tuple[Rejection, ...]:
        limits = vm_limits(hosts, self.settings.default_max_vms)
        return (Rejection("host at its VM limit", hosts.numbers["vm_count"] >= limits),)
