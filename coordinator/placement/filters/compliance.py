"""Compliance tags the workload needs (``pci-dss``, ``hipaa`` ...)."""

from __future__ import annotations

from novacron.coordinator.placement.filters.base import FILTERS, Filter, Rejection
from novacron.coordinator.placement.hosts import HostTable
from novacron.coordinator.placement.request import PlacementRequest


@FILTERS.register("compliance", order=23)
class ComplianceFilter(Filter):
    """The host must carry every requested tag; one reason per missing tag."""

    def reject(self, hosts: HostTable, request: PlacementRequest) -> tuple[Rejection, ...]:
        tags = hosts.flags["compliance"]
        return tuple(
            Rejection(f"not certified {tag}", ~tags.has_all((tag,)))
            for tag in dict.fromkeys(request.compliance)
        )
