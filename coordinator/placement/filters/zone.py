"""The availability zone the VM asks for."""

from __future__ import annotations

from novacron.coordinator.placement.filters.base import FILTERS, Filter, Rejection
from novacron.coordinator.placement.hosts import HostTable
from novacron.coordinator.placement.request import PlacementRequest


@FILTERS.register("zone", order=20)
class ZoneFilter(Filter):
    """Hosts outside the requested zone (or in none) are removed."""

    def reject(self, hosts: HostTable, request: PlacementRequest) -> tuple[Rejection, ...]:
        if not request.zone:
            return ()
        return (Rejection(f"not in zone {request.zone}", hosts.texts["zone"] != request.zone),)
