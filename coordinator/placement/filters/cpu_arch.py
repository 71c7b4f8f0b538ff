"""The image's machine architecture."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from novacron.coordinator.placement.filters.base import FILTERS, Filter, Rejection
from novacron.coordinator.placement.hosts import HostTable
from novacron.coordinator.placement.request import PlacementRequest

# Image metadata and uname spell some architectures differently.
ARCH_ALIASES: Mapping[str, str] = MappingProxyType(
    {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "ppc64el": "ppc64le"}
)


def canonical_arch(name: str) -> str:
    """``"AMD64"`` -> ``"x86_64"``: the uname spelling agents report."""
    lowered = name.strip().lower()
    return ARCH_ALIASES.get(lowered, lowered)


@FILTERS.register("cpu_arch", order=30)
class CpuArchFilter(Filter):
    """An image for one architecture boots only on hosts of that architecture."""

    def reject(self, hosts: HostTable, request: PlacementRequest) -> tuple[Rejection, ...]:
        if not request.image_arch:
            return ()
        wanted = canonical_arch(request.image_arch)
        spellings = [wanted, *(alias for alias, name in ARCH_ALIASES.items() if name == wanted)]
        host_arch = hosts.texts["arch"]
        unknown = host_arch == ""
        return (
            Rejection("CPU architecture unknown", unknown),
            Rejection(
                f"CPU architecture is not {wanted}", ~unknown & ~np.isin(host_arch, spellings)
            ),
        )
