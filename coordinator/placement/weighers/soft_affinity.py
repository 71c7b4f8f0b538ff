"""Soft server groups: prefer (affinity) or avoid (anti-affinity) hosts with members.

Hard groups are filters; a soft group is a wish the scheduler may break when nothing
else fits (Nova's soft-affinity and soft-anti-affinity weighers). Anti-affinity allows
``max_members_per_host`` members per host before a host counts as violating it. The
same on every host for requests without a soft group.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.hosts import FloatArray, HostTable
from novacron.coordinator.placement.request import GroupPolicy, PlacementRequest
from novacron.coordinator.placement.weighers.base import WEIGHERS, Weigher
from novacron.coordinator.placement.weighers.common import group_member_counts, soft_group, zeros


@WEIGHERS.register("soft_affinity", order=170)
class SoftAffinityWeigher(Weigher):
    """Members of the VM's soft server group on each host."""

    factors = (
        Factor(
            factor_id="soft_affinity_members",
            name="Soft affinity members",
            category=Category.OPERATIONAL,
            unit="vms",
            default_weight=2.0,  # the user asked for it: outweighs most single preferences
            scope=Scope.GROUP,
            source="server group members",
            description="members of the VM's soft affinity group already on the host",
            higher_is_better=True,
            objective="performance",
        ),
        Factor(
            factor_id="soft_anti_affinity_members",
            name="Soft anti-affinity members",
            category=Category.OPERATIONAL,
            unit="vms",
            default_weight=1.0,
            scope=Scope.GROUP,
            source="server group members",
            description="members of the VM's soft anti-affinity group already on the host",
            higher_is_better=False,
            objective="reliability",
        ),
        Factor(
            factor_id="soft_anti_affinity_excess",
            name="Soft anti-affinity violation",
            category=Category.OPERATIONAL,
            unit="vms",
            default_weight=2.0,
            scope=Scope.GROUP,
            source="server group members + request",
            description=(
                "members the host would run beyond the group's max_members_per_host once "
                "the VM is placed (0 = the wish is kept)"
            ),
            higher_is_better=False,
            objective="reliability",
        ),
    )

    def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
        affinity = soft_group(request, GroupPolicy.AFFINITY)
        anti = soft_group(request, GroupPolicy.ANTI_AFFINITY)
        values = {
            "soft_affinity_members": zeros(hosts),
            "soft_anti_affinity_members": zeros(hosts),
            "soft_anti_affinity_excess": zeros(hosts),
        }
        if affinity is not None:
            values["soft_affinity_members"] = group_member_counts(hosts, affinity)
        if anti is not None:
            members = group_member_counts(hosts, anti)
            values["soft_anti_affinity_members"] = members
            values["soft_anti_affinity_excess"] = np.maximum(
                members + 1.0 - anti.max_members_per_host, 0.0
            )
        return values
