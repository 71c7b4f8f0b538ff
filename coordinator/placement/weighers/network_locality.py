"""Network locality: put members of an affinity group in the rack and zone of the others.

Affinity groups are VMs that talk to each other (a database and its replicas' clients,
an MPI job). When they cannot share a host, the same rack keeps their traffic on one
top-of-rack switch and the same zone keeps it off inter-zone links. Counted for
affinity groups, hard or soft (a hard group whose host is full still gains from a
neighbour in the rack); the same on every host otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping

from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.hosts import FloatArray, HostTable
from novacron.coordinator.placement.request import GroupPolicy, PlacementRequest
from novacron.coordinator.placement.weighers.base import WEIGHERS, Weigher
from novacron.coordinator.placement.weighers.common import (
    group_member_counts,
    group_with,
    groups,
    zeros,
)


@WEIGHERS.register("network_locality", order=140)
class NetworkLocalityWeigher(Weigher):
    """Affinity-group members in the same rack and zone."""

    factors = (
        Factor(
            factor_id="group_rack_members",
            name="Group members in rack",
            category=Category.NETWORK,
            unit="vms",
            default_weight=1.0,
            scope=Scope.GROUP,
            source="inventory:rack + server group members",
            description=(
                "members of the VM's affinity group running in the host's rack (traffic "
                "stays on one switch)"
            ),
            higher_is_better=True,
            objective="performance",
        ),
        Factor(
            factor_id="group_zone_members",
            name="Group members in zone",
            category=Category.NETWORK,
            unit="vms",
            default_weight=0.5,
            scope=Scope.GROUP,
            source="inventory:zone + server group members",
            description="members of the VM's affinity group running in the host's zone",
            higher_is_better=True,
            objective="performance",
        ),
    )

    def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
        group = group_with(request, GroupPolicy.AFFINITY)
        if group is None:
            return {"group_rack_members": zeros(hosts), "group_zone_members": zeros(hosts)}
        members = group_member_counts(hosts, group)
        return {
            "group_rack_members": groups(hosts, "rack").sum(members),
            "group_zone_members": groups(hosts, "zone").sum(members),
        }
