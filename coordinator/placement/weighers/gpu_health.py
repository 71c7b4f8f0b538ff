"""GPU health for GPU VMs: uncorrectable ECC, XID errors, retired pages, temperature.

A GPU that logs uncorrectable ECC errors or XID faults crashes the workloads using it;
retired pages (remapped rows) show memory wearing out. These only matter to VMs that get
a GPU passed through, so for other requests every host reads the same.
"""

from __future__ import annotations

from collections.abc import Mapping

from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.hosts import FloatArray, HostTable
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.weighers.base import WEIGHERS, Weigher
from novacron.coordinator.placement.weighers.common import plain_telemetry, zeros


@WEIGHERS.register("gpu_health", order=60)
class GpuHealthWeigher(Weigher):
    """GPU error counters and temperature (GPU VMs only)."""

    factors = (
        Factor(
            factor_id="gpu_ecc_uncorrected_24h",
            name="GPU uncorrectable ECC (24 h)",
            category=Category.INFRASTRUCTURE,
            unit="errors",
            default_weight=1.5,  # each one kills the CUDA context using that memory
            scope=Scope.REQUEST,
            source="telemetry:gpu_ecc_uncorrected_errors_increase_24h",
            description="new uncorrectable GPU ECC errors in the last day, all GPUs",
            higher_is_better=False,
            objective="reliability",
        ),
        Factor(
            factor_id="gpu_xid_events_1h",
            name="GPU XID errors (1 h)",
            category=Category.INFRASTRUCTURE,
            unit="events",
            default_weight=1.0,
            scope=Scope.REQUEST,
            source="telemetry:gpu_xid_events_increase_1h",
            description="critical GPU XID events in the last hour, all GPUs",
            higher_is_better=False,
            objective="reliability",
        ),
        Factor(
            factor_id="gpu_retired_pages",
            name="GPU retired pages",
            category=Category.INFRASTRUCTURE,
            unit="pages",
            default_weight=1.0,
            scope=Scope.REQUEST,
            source="telemetry:gpu_retired_pages_last_1h",
            description="retired GPU memory pages or remapped rows, all GPUs (memory wear)",
            higher_is_better=False,
            objective="reliability",
        ),
        Factor(
            factor_id="gpu_temp_celsius",
            name="GPU temperature",
            category=Category.PERFORMANCE,
            unit="celsius",
            default_weight=0.5,  # hot GPUs throttle their clocks
            scope=Scope.REQUEST,
            source="telemetry:gpu_temp_max_celsius_last_15m",
            description="hottest GPU of the host now",
            higher_is_better=False,
            objective="performance",
        ),
    )

    def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
        if request.gpus == 0:
            return {factor.factor_id: zeros(hosts) for factor in self.factors}
        return plain_telemetry(hosts, self.factors)
