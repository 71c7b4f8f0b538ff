"""Noisy neighbours: how much the VMs already on a host compete for its CPUs.

Steal time is CPU the hypervisor underneath took away; run-queue length per CPU and
bursty utilisation show neighbours that will take CPU from a new VM; measured busy
CPUs per allocated vCPU shows how hard the neighbours actually use what they were given.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.hosts import FloatArray, HostTable
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.weighers.base import WEIGHERS, Weigher
from novacron.coordinator.placement.weighers.common import plain_telemetry, ratio, telemetry


@WEIGHERS.register("noisy_neighbour", order=110)
class NoisyNeighbourWeigher(Weigher):
    """CPU steal, load, burstiness and how busy the neighbours' vCPUs are."""

    factors = (
        Factor(
            factor_id="cpu_steal_percent",
            name="CPU steal",
            category=Category.PERFORMANCE,
            unit="percent",
            default_weight=1.0,
            scope=Scope.HOST,
            source="telemetry:cpu_steal_percent_mean_15m",
            description="CPU time stolen by the hypervisor underneath, last 15 min",
            higher_is_better=False,
            objective="performance",
        ),
        Factor(
            factor_id="load_per_cpu",
            name="Load per CPU",
            category=Category.PERFORMANCE,
            unit="ratio",
            default_weight=1.0,
            scope=Scope.HOST,
            source="telemetry:load_per_cpu_mean_15m",
            description="1-minute load average per logical CPU, mean of the last 15 min",
            higher_is_better=False,
            objective="performance",
        ),
        Factor(
            factor_id="cpu_util_std_percent",
            name="CPU burstiness",
            category=Category.PERFORMANCE,
            unit="percent",
            default_weight=0.5,
            scope=Scope.HOST,
            source="telemetry:cpu_util_percent_std_15m",
            description="standard deviation of CPU busy over 15 min (bursty neighbours)",
            higher_is_better=False,
            objective="performance",
        ),
        Factor(
            factor_id="neighbour_busy_per_vcpu",
            name="Neighbour vCPU busyness",
            category=Category.PERFORMANCE,
            unit="ratio",
            default_weight=0.5,
            scope=Scope.HOST,
            source="telemetry:cpu_util_percent_mean_15m + allocation",
            description=(
                "busy logical CPUs per allocated vCPU (0 on an empty host; high = the "
                "neighbours use what they were given)"
            ),
            higher_is_better=False,
            objective="performance",
        ),
        Factor(
            factor_id="vms_per_cpu",
            name="VMs per CPU",
            category=Category.PERFORMANCE,
            unit="vms/cpu",
            default_weight=0.5,
            scope=Scope.HOST,
            source="allocation",
            description="VMs per logical CPU (more neighbours per core, more contention)",
            higher_is_better=False,
            objective="performance",
        ),
    )

    def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
        values = plain_telemetry(hosts, self.factors)
        cpus = hosts.numbers["vcpus_total"]
        used = hosts.numbers["vcpus_used"]
        busy_cpus = telemetry(hosts, "cpu_util_percent_mean_15m") / 100.0 * cpus
        values["neighbour_busy_per_vcpu"] = np.where(used == 0, 0.0, ratio(busy_cpus, used))
        values["vms_per_cpu"] = ratio(hosts.numbers["vm_count"], cpus)
        return values
