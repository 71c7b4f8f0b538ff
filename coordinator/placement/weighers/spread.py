"""Spread: prefer hosts with more free capacity (a negative objective weight packs).

The classic Nova RAM/CPU/disk weighers. Absolute free amounts favour big hosts; the
free shares favour emptier hosts whatever their size; both are listed so an operator can
weight either. All values come from the allocations (VMs plus active claims) after the
configured overcommit ratios.
"""

from __future__ import annotations

from collections.abc import Mapping

from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.hosts import FloatArray, HostTable
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.weighers.base import WEIGHERS, Weigher
from novacron.coordinator.placement.weighers.common import free, free_share, nan_to, ratio


@WEIGHERS.register("spread", order=10)
class SpreadWeigher(Weigher):
    """Free vCPUs, memory, disk and VM slots: more free is better for spreading."""

    factors = (
        Factor(
            factor_id="free_vcpus",
            name="Free vCPUs",
            category=Category.RESOURCE,
            unit="vcpus",
            default_weight=1.0,  # capacity spread: the baseline every other weight compares to
            scope=Scope.HOST,
            source="allocation",
            description="vCPUs not yet allocated, after the CPU allocation ratio",
            higher_is_better=True,
            objective="spread",
        ),
        Factor(
            factor_id="free_memory_mib",
            name="Free memory",
            category=Category.RESOURCE,
            unit="mib",
            default_weight=1.0,
            scope=Scope.HOST,
            source="allocation",
            description="memory not yet allocated, after the RAM allocation ratio",
            higher_is_better=True,
            objective="spread",
        ),
        Factor(
            factor_id="free_disk_gib",
            name="Free disk",
            category=Category.RESOURCE,
            unit="gib",
            default_weight=0.5,  # local disk is rarely the scarce resource
            scope=Scope.HOST,
            source="allocation",
            description="local disk not yet allocated, after the disk allocation ratio",
            higher_is_better=True,
            objective="spread",
        ),
        Factor(
            factor_id="free_vcpus_ratio",
            name="Free vCPU share",
            category=Category.RESOURCE,
            unit="ratio",
            default_weight=0.5,  # size-neutral companion of free_vcpus
            scope=Scope.HOST,
            source="allocation",
            description="free vCPUs as a share of the host's allocatable vCPUs",
            higher_is_better=True,
            objective="spread",
        ),
        Factor(
            factor_id="free_memory_ratio",
            name="Free memory share",
            category=Category.RESOURCE,
            unit="ratio",
            default_weight=0.5,
            scope=Scope.HOST,
            source="allocation",
            description="free memory as a share of the host's allocatable memory",
            higher_is_better=True,
            objective="spread",
        ),
        Factor(
            factor_id="free_disk_ratio",
            name="Free disk share",
            category=Category.RESOURCE,
            unit="ratio",
            default_weight=0.25,
            scope=Scope.HOST,
            source="allocation",
            description="free local disk as a share of the allocatable disk (NaN: no local disk)",
            higher_is_better=True,
            objective="spread",
        ),
        Factor(
            factor_id="free_vm_slots_ratio",
            name="Free VM slots",
            category=Category.RESOURCE,
            unit="ratio",
            default_weight=0.25,
            scope=Scope.HOST,
            source="allocation + inventory:max_vms",
            description="share of the per-host VM limit still free (1 where there is no limit)",
            higher_is_better=True,
            objective="spread",
        ),
        Factor(
            factor_id="vm_count",
            name="VMs on host",
            category=Category.RESOURCE,
            unit="vms",
            default_weight=0.5,  # fewer VMs: smaller blast radius, fewer neighbours
            scope=Scope.HOST,
            source="allocation",
            description="VMs placed on the host, active claims included",
            higher_is_better=False,
            objective="spread",
        ),
    )

    def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
        settings = self.settings
        free_vcpus = free(hosts, settings, "vcpus")
        free_memory = free(hosts, settings, "memory_mib")
        free_disk = free(hosts, settings, "disk_gib")
        vm_count = hosts.numbers["vm_count"]
        limit = hosts.numbers["max_vms"]
        if settings.default_max_vms:
            limit = nan_to(limit, float(settings.default_max_vms))
        slots = 1.0 - ratio(vm_count, limit)
        return {
            "free_vcpus": free_vcpus,
            "free_memory_mib": free_memory,
            "free_disk_gib": free_disk,
            "free_vcpus_ratio": free_share(hosts, settings, "vcpus"),
            "free_memory_ratio": free_share(hosts, settings, "memory_mib"),
            "free_disk_ratio": free_share(hosts, settings, "disk_gib"),
            "free_vm_slots_ratio": nan_to(slots, 1.0),
            "vm_count": vm_count,
        }
