"""Placement policy from the ``[placement]`` section of the coordinator config.

Overcommit ratios, the failure-risk threshold, which filters and weighers run, and the
default weights. Validated like every other section: a wrong key or value stops
start-up naming the key and the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from novacron.protos.runtime.tomlconfig import positive

OBJECTIVES = ("spread", "pack", "reliability", "performance", "energy")


@dataclass(frozen=True)
class PlacementSettings:
    cpu_allocation_ratio: float = 4.0  # vCPUs per logical CPU (Nova's default is 16; 4 is safer)
    ram_allocation_ratio: float = 1.0  # no memory overcommit by default
    disk_allocation_ratio: float = 1.0
    max_failure_probability: float = 0.5  # hosts predicted to fail above this are filtered
    max_anomaly_score: float = 1.0  # 1.0: anomalies alone never filter a host
    avoid_stale_hosts: bool = True  # stale hosts are filtered (unknown ones always are)
    default_max_vms: int = 0  # 0: no per-host VM limit unless the inventory sets one
    # Capacity kept for the host itself (hypervisor, agent, page cache), taken off what the
    # agent's inventory reports before the allocation ratios apply. Nova reserves 512 MiB by
    # default; a KVM host with an agent and a page cache needs more.
    reserved_host_vcpus: int = 0
    reserved_host_memory_mib: int = 2048
    reserved_host_disk_gib: int = 0
    default_max_results: int = 10
    # Objective weights used when a request names none (OBJECTIVES; "pack" inverts spread).
    objectives: Mapping[str, float] = field(
        default_factory=lambda: {"spread": 1.0, "reliability": 2.0, "performance": 1.0}
    )
    # Per-factor weight overrides (factor id -> weight); the catalog's defaults otherwise.
    weights: Mapping[str, float] = field(default_factory=dict)
    # Filters and weighers switched off by name (all registered ones run otherwise).
    disabled_filters: tuple[str, ...] = ()
    disabled_weighers: tuple[str, ...] = ()
    claim_ttl_seconds: float = 60.0  # default claim lifetime when a request gives none
    max_claim_ttl_seconds: float = 3600.0

    def __post_init__(self) -> None:
        positive("cpu_allocation_ratio", self.cpu_allocation_ratio)
        positive("ram_allocation_ratio", self.ram_allocation_ratio)
        positive("disk_allocation_ratio", self.disk_allocation_ratio)
        positive("claim_ttl_seconds", self.claim_ttl_seconds)
        positive("max_claim_ttl_seconds", self.max_claim_ttl_seconds)
        positive("default_max_results", self.default_max_results)
        for name in ("max_failure_probability", "max_anomaly_score"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: expected a number in 0..1, got {value!r}")
        for name in (
            "default_max_vms",
            "reserved_host_vcpus",
            "reserved_host_memory_mib",
            "reserved_host_disk_gib",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected >= 0, got {getattr(self, name)!r}")
        unknown = sorted(set(self.objectives) - set(OBJECTIVES))
        if unknown:
            raise ValueError(
                f"objectives: unknown objective {unknown[0]!r} (known: {', '.join(OBJECTIVES)})"
            )
        object.__setattr__(self, "objectives", MappingProxyType(dict(self.objectives)))
        object.__setattr__(self, "weights", MappingProxyType(dict(self.weights)))
