"""The weigher contract: one small class per concern, owning one or more catalog factors.

A weigher computes the raw value of each of its factors for the candidate hosts (NaN =
not measured on that host). Normalisation to 0..1, weights, objectives and the final sum
are the engine's job, the same for every weigher, so weighers stay small and testable
table-driven.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

from novacron.coordinator.placement.factors import Factor
from novacron.coordinator.placement.hosts import FloatArray, HostTable
from novacron.coordinator.placement.registry import Registry
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.settings import PlacementSettings


class Weigher(ABC):
    """Soft preferences. Subclasses register with ``@WEIGHERS.register(name)``."""

    name: ClassVar[str]
    factors: ClassVar[tuple[Factor, ...]]

    def __init__(self, settings: PlacementSettings) -> None:
        self.settings = settings

    @abstractmethod
    def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
        """Factor id -> raw value for every host in ``hosts`` (all rows; NaN = unknown).

        The engine slices the candidate rows; computing over all rows keeps weighers
        simple and is cheap with numpy.
        """


WEIGHERS: Registry[Weigher] = Registry("weigher")
