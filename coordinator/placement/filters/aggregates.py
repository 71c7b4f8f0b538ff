"""Host aggregates the VM must land in (Nova's aggregate isolation)."""

from __future__ import annotations

from novacron.coordinator.placement.filters.base import FILTERS, Filter, Rejection
from novacron.coordinator.placement.hosts import HostTable
from novacron.coordinator.placement.request import PlacementRequest


@FILTERS.register("aggregates", order=21)
class AggregatesFilter(Filter):
    """The host must belong to every requested aggregate; one reason per aggregate."""

    def reject(self, hosts: HostTable, request: PlacementRequest) -> tuple[Rejection, ...]:
        member = hosts.flags["aggregates"]
        return tuple(
            Rejection(f"not in aggregate {name}", ~member.has_all((name,)))
            for name in dict.fromkeys(request.aggregates)
        )
