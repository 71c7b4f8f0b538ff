"""Fault domains: spread anti-affinity groups over racks and zones, and load over racks.

Anti-affinity keeps replicas off one host; a rack's power feed or switch and a zone's
failures take down every host in them, so replicas in different racks and zones survive
more. Independently of groups, spreading allocated vCPUs over racks and zones keeps
any one rack's loss small (a pack request inverts these two, consolidating racks).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.hosts import FloatArray, HostTable
from novacron.coordinator.placement.request import GroupPolicy, PlacementRequest
from novacron.coordinator.placement.settings import PlacementSettings
from novacron.coordinator.placement.weighers.base import WEIGHERS, Weigher
from novacron.coordinator.placement.weighers.common import (
    IdentityCache,
    capacity,
    free,
    group_member_counts,
    group_with,
    groups,
    ratio,
    readonly,
    zeros,
)


@WEIGHERS.register("fault_domain", order=150)
class FaultDomainWeigher(Weigher):
    """Anti-affinity members per rack and zone; free vCPU share per rack and zone."""

    factors = (
        Factor(
            factor_id="group_rack_members_anti",
            name="Replicas in rack",
            category=Category.INFRASTRUCTURE,
            unit="vms",
            default_weight=1.0,
            scope=Scope.GROUP,
            source="inventory:rack + server group members",
            description=(
                "members of the VM's anti-affinity group already in the host's rack (one "
                "rack failure would take them together)"
            ),
            higher_is_better=False,
            objective="reliability",
        ),
        Factor(
            factor_id="group_zone_members_anti",
            name="Replicas in zone",
            category=Category.INFRASTRUCTURE,
            unit="vms",
            default_weight=0.5,
            scope=Scope.GROUP,
            source="inventory:zone + server group members",
            description="members of the VM's anti-affinity group already in the host's zone",
            higher_is_better=False,
            objective="reliability",
        ),
        Factor(
            factor_id="rack_free_vcpus_ratio",
            name="Rack free vCPU share",
            category=Category.RESOURCE,
            unit="ratio",
            default_weight=0.25,
            scope=Scope.HOST,
            source="inventory:rack + allocation",
            description="free share of the allocatable vCPUs of the host's whole rack",
            higher_is_better=True,
            objective="spread",
        ),
        Factor(
            factor_id="zone_free_vcpus_ratio",
            name="Zone free vCPU share",
            category=Category.RESOURCE,
            unit="ratio",
            default_weight=0.25,
            scope=Scope.HOST,
            source="inventory:zone + allocation",
            description="free share of the allocatable vCPUs of the host's whole zone",
            higher_is_better=True,
            objective="spread",
        ),
    )

    def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
        racks = groups(hosts, "rack")
        zones = groups(hosts, "zone")
        values = dict(_free_shares(hosts, self.settings))
        group = group_with(request, GroupPolicy.ANTI_AFFINITY)
        if group is None:
            values["group_rack_members_anti"] = zeros(hosts)
            values["group_zone_members_anti"] = zeros(hosts)
        else:
            members = group_member_counts(hosts, group)
            values["group_rack_members_anti"] = racks.sum(members)
            values["group_zone_members_anti"] = zones.sum(members)
        return values


_FREE_SHARES: IdentityCache[Mapping[str, FloatArray]] = IdentityCache()


def _free_shares(hosts: HostTable, settings: PlacementSettings) -> Mapping[str, FloatArray]:
    """Free vCPU share per rack and per zone (once per table: no request in it)."""
    free_vcpus = free(hosts, settings, "vcpus")
    allocatable = capacity(hosts, settings, "vcpus")

    def compute() -> Mapping[str, FloatArray]:
        out = {}
        for factor_id, text in (
            ("rack_free_vcpus_ratio", "rack"),
            ("zone_free_vcpus_ratio", "zone"),
        ):
            split = groups(hosts, text)
            out[factor_id] = readonly(
                ratio(split.sum(free_vcpus, skip_nan=True), split.sum(allocatable, skip_nan=True))
            )
        return MappingProxyType(out)

    inputs = (hosts.texts["rack"], hosts.texts["zone"], free_vcpus, allocatable)
    return _FREE_SHARES.get(inputs, compute)
