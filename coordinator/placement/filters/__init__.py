"""Placement filters: importing this package registers every filter in ``FILTERS``."""

from novacron.coordinator.placement.filters import (  # noqa: F401 - imported to register
    aggregates,
    capacity,
    compliance,
    cpu_arch,
    cpu_flags,
    excluded,
    gpu,
    host_state,
    labels,
    numa,
    server_group,
    vm_limit,
    zone,
)
from novacron.coordinator.placement.filters.base import FILTERS, Filter, FilterVerdict, Rejection

__all__ = ["FILTERS", "Filter", "FilterVerdict", "Rejection"]
