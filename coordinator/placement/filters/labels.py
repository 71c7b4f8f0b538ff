"""Operator labels the VM requires (``tier=gold``, ``storage=nvme`` ...)."""

from __future__ import annotations

from novacron.coordinator.placement.filters.base import FILTERS, Filter, Rejection
from novacron.coordinator.placement.hosts import HostTable
from novacron.coordinator.placement.request import PlacementRequest


@FILTERS.register("labels", order=22)
class LabelsFilter(Filter):
    """Each required label must be set to exactly the requested value."""

    def reject(self, hosts: HostTable, request: PlacementRequest) -> tuple[Rejection, ...]:
        return tuple(
            Rejection(f"label {key} is not {value!r}", hosts.label(key) != value)
            for key, value in sorted(request.required_labels.items())
        )
