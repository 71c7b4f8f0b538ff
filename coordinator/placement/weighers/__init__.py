"""Placement weighers: importing this package registers every weigher in ``WEIGHERS``."""

from novacron.coordinator.placement.weighers.base import WEIGHERS, Weigher

__all__ = ["WEIGHERS", "Weigher"]
