"""Placement filters: importing this package registers every filter in ``FILTERS``."""

from novacron.coordinator.placement.filters.base import FILTERS, Filter, FilterVerdict, Rejection

__all__ = ["FILTERS", "Filter", "FilterVerdict", "Rejection"]
