"""Hosts the request itself rules out: the migration source and the ignore list."""

from __future__ import annotations

import numpy as np

from novacron.coordinator.placement.filters.base import FILTERS, Filter, Rejection
from novacron.coordinator.placement.hosts import HostTable
from novacron.coordinator.placement.request import PlacementRequest


@FILTERS.register("excluded_hosts", order=0)
class ExcludedHostsFilter(Filter):
    """Never return the VM's current host (a migration) or a host the caller ignores."""

    def reject(self, hosts: HostTable, request: PlacementRequest) -> tuple[Rejection, ...]:
        rejections = []
        if request.current_host:
            rejections.append(
                Rejection(
                    "the VM's current host (migration source)",
                    hosts.host_ids == request.current_host,
                )
            )
        ignored = [h for h in request.ignore_hosts if h != request.current_host]
        if ignored:
            rejections.append(
                Rejection("host on the request's ignore list", np.isin(hosts.host_ids, ignored))
            )
        return tuple(rejections)
