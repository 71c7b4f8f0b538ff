"""Cost: what running the VM on the host costs (the inventory file's price per hour).

Serves the ``energy`` objective (efficiency), so it only counts when a request or the
config gives that objective a weight. The VM's share is the host price times the
largest share of the host's allocatable vCPUs or memory it takes (the resource it uses
most of decides how much of the host it blocks).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.hosts import FloatArray, HostTable
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.weighers.base import WEIGHERS, Weigher
from novacron.coordinator.placement.weighers.common import capacity, ratio


@WEIGHERS.register("cost", order=180)
class CostWeigher(Weigher):
    """Host price per hour, per vCPU, and the VM's share of it."""

    factors = (
        Factor(
            factor_id="cost_per_hour",
            name="Host cost",
            category=Category.OPERATIONAL,
            unit="currency/h",
            default_weight=1.0,
            scope=Scope.HOST,
            source="inventory:cost_per_hour",
            description="what the host costs to run per hour (amortised hardware, power, space)",
            higher_is_better=False,
            objective="energy",
        ),
        Factor(
            factor_id="cost_per_vcpu_hour",
            name="Cost per vCPU",
            category=Category.OPERATIONAL,
            unit="currency/h/vcpu",
            default_weight=0.5,
            scope=Scope.HOST,
            source="inventory:cost_per_hour + allocation",
            description="host cost per hour divided by its allocatable vCPUs",
            higher_is_better=False,
            objective="energy",
        ),
        Factor(
            factor_id="vm_cost_per_hour",
            name="VM cost",
            category=Category.OPERATIONAL,
            unit="currency/h",
            default_weight=1.0,
            scope=Scope.REQUEST,
            source="inventory:cost_per_hour + request",
            description=(
                "host cost per hour times the VM's dominant share of the host's allocatable "
                "vCPUs or memory"
            ),
            higher_is_better=False,
            objective="energy",
        ),
    )

    def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
        price = hosts.number("cost_per_hour")
        vcpus = capacity(hosts, self.settings, "vcpus")
        memory = capacity(hosts, self.settings, "memory_mib")
        share = np.fmax(
            ratio(float(request.vcpus), vcpus), ratio(float(request.memory_mib), memory)
        )
        return {
            "cost_per_hour": price,
            "cost_per_vcpu_hour": ratio(price, vcpus),
            "vm_cost_per_hour": price * share,
        }
