"""CPU feature flags the VM needs (AVX-512, AES-NI, SEV ...)."""

from __future__ import annotations

from novacron.coordinator.placement.filters.base import FILTERS, Filter, Rejection
from novacron.coordinator.placement.hosts import HostTable
from novacron.coordinator.placement.request import PlacementRequest


@FILTERS.register("cpu_flags", order=31)
class CpuFlagsFilter(Filter):
    """One reason per missing flag, so "no valid host" says which flag was rare."""

    def reject(self, hosts: HostTable, request: PlacementRequest) -> tuple[Rejection, ...]:
        flags = hosts.flags["cpu_flags"]
        return tuple(
            Rejection(f"CPU lacks flag {flag}", ~flags.has_all((flag,)))
            for flag in dict.fromkeys(request.cpu_flags)
        )
