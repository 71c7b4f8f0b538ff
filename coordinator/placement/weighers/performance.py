"""Performance headroom: measured CPU and memory load, swapping, vCPU overcommit, CPU
features.

Allocations say what was promised; telemetry says what is used. A host can have free
allocatable vCPUs and still run hot (busy VMs) or be short of memory (host daemons,
page cache pressure), so the measured headroom left after this VM is weighed too.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.hosts import FloatArray, HostTable
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.weighers.base import WEIGHERS, Weigher
from novacron.coordinator.placement.weighers.common import (
    flag_counts,
    plain_telemetry,
    ratio,
)


@WEIGHERS.register("performance", order=120)
class PerformanceWeigher(Weigher):
    """Measured CPU/memory load and headroom, swapping, overcommit, CPU feature count."""

    factors = (
        Factor(
            factor_id="cpu_util_percent",
            name="CPU busy",
            category=Category.PERFORMANCE,
            unit="percent",
            default_weight=1.0,
            scope=Scope.HOST,
            source="telemetry:cpu_util_percent_mean_15m",
            description="average busy share of all CPUs, last 15 min",
            higher_is_better=False,
            objective="performance",
        ),
        Factor(
            factor_id="mem_used_p95_percent",
            name="Memory pressure",
            category=Category.PERFORMANCE,
            unit="percent",
            default_weight=1.0,
            scope=Scope.HOST,
            source="telemetry:mem_used_percent_p95_15m",
            description="95th percentile of used memory share, last 15 min",
            higher_is_better=False,
            objective="performance",
        ),
        Factor(
            factor_id="swap_out_bytes_per_second",
            name="Swapping",
            category=Category.PERFORMANCE,
            unit="bytes/s",
            default_weight=1.0,  # a swapping host slows every VM on it
            scope=Scope.HOST,
            source="telemetry:swap_out_bytes_per_second_mean_15m",
            description="swap-out rate, mean of the last 15 min",
            higher_is_better=False,
            objective="performance",
        ),
        Factor(
            factor_id="measured_cpu_headroom_after",
            name="Measured CPU headroom",
            category=Category.PERFORMANCE,
            unit="cpus",
            default_weight=0.5,
            scope=Scope.REQUEST,
            source="telemetry:cpu_util_percent_mean_15m + inventory + request",
            description="idle logical CPUs now minus the VM's vCPUs (negative: it will contend)",
            higher_is_better=True,
            objective="performance",
        ),
        Factor(
            factor_id="measured_memory_headroom_after_mib",
            name="Measured memory headroom",
            category=Category.PERFORMANCE,
            unit="mib",
            default_weight=0.5,
            scope=Scope.REQUEST,
            source="telemetry:mem_used_percent_p95_15m + inventory + request",
            description=(
                "memory unused at the 15-min p95 minus the VM's memory (negative: the host "
                "will swap or balloon)"
            ),
            higher_is_better=True,
            objective="performance",
        ),
        Factor(
            factor_id="vcpu_overcommit_after",
            name="vCPU overcommit",
            category=Category.PERFORMANCE,
            unit="vcpus/cpu",
            default_weight=0.5,
            scope=Scope.REQUEST,
            source="allocation + request",
            description="allocated vCPUs per logical CPU once the VM is placed",
            higher_is_better=False,
            objective="performance",
        ),
        Factor(
            factor_id="cpu_flag_count",
            name="CPU features",
            category=Category.PERFORMANCE,
            unit="flags",
            default_weight=0.25,  # a newer CPU generation exposes more (AVX-512, AMX ...)
            scope=Scope.HOST,
            source="inventory:cpu_flags",
            description="CPU feature flags the host exposes (newer generations expose more)",
            higher_is_better=True,
            objective="performance",
        ),
    )

    def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
        values = plain_telemetry(hosts, self.factors)
        cpus = hosts.numbers["vcpus_total"]
        memory = hosts.numbers["memory_mib_total"]
        idle_share = 1.0 - values["cpu_util_percent"] / 100.0
        unused_share = 1.0 - values["mem_used_p95_percent"] / 100.0
        values["measured_cpu_headroom_after"] = idle_share * cpus - request.vcpus
        values["measured_memory_headroom_after_mib"] = unused_share * memory - request.memory_mib
        values["vcpu_overcommit_after"] = ratio(hosts.numbers["vcpus_used"] + request.vcpus, cpus)
        flags = flag_counts(hosts, "cpu_flags")
        values["cpu_flag_count"] = np.where(flags > 0, flags, np.nan)  # 0: not inventoried
        return values
