"""The factor catalogue: every measurable reason to prefer one host over another.

A factor is a raw per-host value with a unit (``free_memory_mib``, ``failure_probability_24h``,
``carbon_g_per_kwh``), a direction (is more better?), a category, a default weight and
the objective it serves. Weighers compute factors' raw values; the engine normalises each
factor to 0..1 across the candidate hosts (1 = most favourable), multiplies by its weight
and sums. ``ListFactors`` and ``docs/placement-factors.md`` (generated) list the catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Category(Enum):
    RESOURCE = "resource"  # free capacity: CPU, RAM, disk, GPU
    PERFORMANCE = "performance"  # contention, latency, steal
    INFRASTRUCTURE = "infrastructure"  # hardware health: predictions, anomalies, temperatures
    NETWORK = "network"  # link speed, errors, locality
    OPERATIONAL = "operational"  # maintenance, cost, energy, age, consolidation


class Scope(Enum):
    HOST = "host"  # depends on the host only
    REQUEST = "request"  # depends on the host and the VM being placed
    GROUP = "group"  # depends on the server group's other members


@dataclass(frozen=True)
class Factor:
    factor_id: str  # stable id used in weight overrides, e.g. "free_memory_mib"
    name: str  # display name
    category: Category
    unit: str  # unit of the raw value: "mib", "probability", "celsius", "ratio", ...
    default_weight: float  # dimensionless multiplier; 0 = listed but off by default
    scope: Scope
    source: str  # where the raw value comes from, e.g. "model:node-failure-24h"
    description: str
    higher_is_better: bool
    # The objective this factor serves: "spread", "reliability", "performance" or "energy"
    # (the request's objective weights scale it; "pack" is spread with the sign inverted).
    objective: str
