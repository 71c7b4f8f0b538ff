"""Fit: how this VM's shape fits what the host has left (bin packing, stranding).

A host whose leftover vCPUs and memory come in the same proportion as the VM keeps its
capacity usable; one left with plenty of memory but no vCPUs has stranded that memory.
These factors serve the ``energy`` objective (efficiency: fewer hosts doing the work);
they are not part of ``spread``, so a pack request does not turn them upside down.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.hosts import FloatArray, HostTable
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.weighers.base import WEIGHERS, Weigher
from novacron.coordinator.placement.weighers.common import RESOURCES, free, per_unit, requested


@WEIGHERS.register("fit", order=20)
class FitWeigher(Weigher):
    """Room left for more VMs of this size, and capacity this shape would strand."""

    factors = (
        Factor(
            factor_id="fit_count",
            name="More VMs of this size",
            category=Category.RESOURCE,
            unit="vms",
            default_weight=0.5,
            scope=Scope.REQUEST,
            source="allocation + request",
            description=(
                "VMs of the requested size that would still fit after placing this one "
                "(the scarcest resource decides)"
            ),
            higher_is_better=True,
            objective="spread",
        ),
        Factor(
            factor_id="best_fit_slack",
            name="Best-fit slack",
            category=Category.RESOURCE,
            unit="ratio",
            default_weight=0.5,
            scope=Scope.REQUEST,
            source="allocation + request",
            description=(
                "share of the host's scarcest requested resource left after placing the VM "
                "(small = a tight best fit that fills the host)"
            ),
            higher_is_better=False,
            objective="energy",
        ),
        Factor(
            factor_id="stranded_vcpus_after",
            name="Stranded vCPUs",
            category=Category.RESOURCE,
            unit="vcpus",
            default_weight=0.5,
            scope=Scope.REQUEST,
            source="allocation + request",
            description=(
                "free vCPUs left over once the host is filled with VMs of this shape "
                "(another resource runs out first)"
            ),
            higher_is_better=False,
            objective="energy",
        ),
        Factor(
            factor_id="stranded_memory_after_mib",
            name="Stranded memory",
            category=Category.RESOURCE,
            unit="mib",
            default_weight=0.5,
            scope=Scope.REQUEST,
            source="allocation + request",
            description=(
                "free memory left over once the host is filled with VMs of this shape "
                "(another resource runs out first)"
            ),
            higher_is_better=False,
            objective="energy",
        ),
        Factor(
            factor_id="leftover_shape_mismatch",
            name="Leftover shape mismatch",
            category=Category.RESOURCE,
            unit="ratio",
            default_weight=0.25,
            scope=Scope.REQUEST,
            source="allocation + request",
            description=(
                "how far the vCPUs and memory left after placement are from the VM's "
                "proportions: |v - m| / max(v, m), v and m counted in VM sizes (0 = same "
                "proportions, 1 = one of them used up)"
            ),
            higher_is_better=False,
            objective="energy",
        ),
    )

    def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
        settings = self.settings
        left: dict[str, FloatArray] = {}  # free after placing the VM
        sizes: dict[str, FloatArray] = {}  # that, in multiples of the VM's amount
        fits: FloatArray | None = None
        slack: FloatArray | None = None
        for resource in RESOURCES:
            amount = requested(request, resource)
            if amount <= 0:
                continue
            left[resource] = free(hosts, settings, resource) - amount
            sizes[resource] = left[resource] * (1.0 / amount)
            count = np.floor(sizes[resource])
            share = left[resource] * per_unit(hosts, settings, resource)
            # fmin: a resource unknown on a host (NaN) does not hide the others.
            fits = count if fits is None else np.fmin(fits, count)
            slack = share if slack is None else np.fmin(slack, share)
        assert fits is not None and slack is not None  # vCPUs and memory are always >= 1
        filled = np.maximum(fits, 0.0)
        in_vcpus = np.maximum(sizes["vcpus"], 0.0)
        in_memory = np.maximum(sizes["memory_mib"], 0.0)
        larger = np.maximum(in_vcpus, in_memory)
        with np.errstate(divide="ignore", invalid="ignore"):
            mismatch = np.abs(in_vcpus - in_memory) / larger
        mismatch[larger == 0] = 0.0  # both used up exactly: a perfect fit, not a mismatch
        return {
            "fit_count": fits,
            "best_fit_slack": slack,
            "stranded_vcpus_after": np.maximum(left["vcpus"] - filled * request.vcpus, 0.0),
            "stranded_memory_after_mib": np.maximum(
                left["memory_mib"] - filled * request.memory_mib, 0.0
            ),
            "leftover_shape_mismatch": mismatch,
        }
