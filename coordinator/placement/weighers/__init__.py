"""Placement weighers: importing this package registers every weigher in ``WEIGHERS``.

One module per concern; each owns the catalogue factors it computes (see
:mod:`novacron.coordinator.placement.catalog` and ``docs/placement-factors.md``).
"""

from novacron.coordinator.placement.weighers import (
    anomaly,
    balance,
    cost,
    disk_health,
    energy,
    failure_risk,
    fault_domain,
    fit,
    gpu,
    gpu_health,
    group_hardware,
    io_contention,
    memory_health,
    migration,
    network,
    network_locality,
    noisy_neighbour,
    numa,
    operational,
    performance,
    rack_health,
    soft_affinity,
    spread,
    thermal,
)
from novacron.coordinator.placement.weighers.base import WEIGHERS, Weigher

__all__ = [
    "WEIGHERS",
    "Weigher",
    "anomaly",
    "balance",
    "cost",
    "disk_health",
    "energy",
    "failure_risk",
    "fault_domain",
    "fit",
    "gpu",
    "gpu_health",
    "group_hardware",
    "io_contention",
    "memory_health",
    "migration",
    "network",
    "network_locality",
    "noisy_neighbour",
    "numa",
    "operational",
    "performance",
    "rack_health",
    "soft_affinity",
    "spread",
    "thermal",
]
