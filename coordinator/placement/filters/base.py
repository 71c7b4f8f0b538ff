"""The filter contract: one small class per rule, vectorised as masks over all hosts.

A filter looks at the whole :class:`HostTable` at once and returns, per reason, the
boolean mask of hosts it rejects for that reason ("insufficient free memory"). The
engine removes a host at the first filter (in pipeline order) that rejects it and
counts it under that filter and reason; ``ExplainHost`` lists every rejecting filter.
Filters are pure: same table and request, same answer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from novacron.coordinator.placement.hosts import BoolArray, HostTable
from novacron.coordinator.placement.registry import Registry
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.settings import PlacementSettings


@dataclass(frozen=True)
class Rejection:
    """Hosts one filter removes for one reason."""

    reason: str  # plain words, e.g. "insufficient free memory"
    hosts: BoolArray  # True = rejected for this reason


@dataclass(frozen=True)
class FilterVerdict:
    filter: str
    rejections: tuple[Rejection, ...]

    def rejected(self, size: int) -> BoolArray:
        """Hosts rejected for any reason."""
        result = np.zeros(size, dtype=np.bool_)
        for rejection in self.rejections:
            result |= rejection.hosts
        return result

    def reasons_for(self, row: int) -> tuple[str, ...]:
        return tuple(r.reason for r in self.rejections if r.hosts[row])


class Filter(ABC):
    """A hard constraint. Subclasses register with ``@FILTERS.register(name, order=...)``."""

    name: ClassVar[str]

    def __init__(self, settings: PlacementSettings) -> None:
        self.settings = settings

    @abstractmethod
    def reject(self, hosts: HostTable, request: PlacementRequest) -> tuple[Rejection, ...]:
        """The hosts this filter removes, per reason (empty tuple: nothing to check)."""

    def verdict(self, hosts: HostTable, request: PlacementRequest) -> FilterVerdict:
        rejections = tuple(r for r in self.reject(hosts, request) if r.hosts.any())
        return FilterVerdict(self.name, rejections)


FILTERS: Registry[Filter] = Registry("filter")
