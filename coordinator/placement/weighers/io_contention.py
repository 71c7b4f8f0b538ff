"""I/O contention: how long the host's disks make I/O wait.

VM disks on a host share its local drives (or its storage uplink); a host already
showing long tail latency and CPUs waiting on I/O gives a new VM slow disks.
"""

from __future__ import annotations

from collections.abc import Mapping

from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.hosts import FloatArray, HostTable
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.weighers.base import WEIGHERS, Weigher
from novacron.coordinator.placement.weighers.common import plain_telemetry


@WEIGHERS.register("io_contention", order=100)
class IoContentionWeigher(Weigher):
    """Disk latency tail and I/O wait."""

    factors = (
        Factor(
            factor_id="disk_await_p99_ms",
            name="Disk latency (p99)",
            category=Category.PERFORMANCE,
            unit="ms",
            default_weight=1.0,
            scope=Scope.HOST,
            source="telemetry:disk_await_ms_p99_15m",
            description="99th percentile of the worst disk's average I/O latency, last 15 min",
            higher_is_better=False,
            objective="performance",
        ),
        Factor(
            factor_id="cpu_iowait_percent",
            name="I/O wait",
            category=Category.PERFORMANCE,
            unit="percent",
            default_weight=1.0,
            scope=Scope.HOST,
            source="telemetry:cpu_iowait_percent_mean_15m",
            description="CPU time spent waiting on I/O, last 15 min",
            higher_is_better=False,
            objective="performance",
        ),
    )

    def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
        return plain_telemetry(hosts, self.factors)
