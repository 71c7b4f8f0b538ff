"""Hard server group rules: affinity (same host) and anti-affinity (different hosts)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from novacron.coordinator.placement.filters.base import FILTERS, Filter, Rejection
from novacron.coordinator.placement.hosts import FloatArray, HostTable
from novacron.coordinator.placement.request import GroupPolicy, PlacementRequest, ServerGroup


def group_members_per_host(hosts: HostTable, group: ServerGroup) -> FloatArray:
    """Members of ``group`` on each host.

    Two sources may know the same members: the request's ``member_hosts`` (the
    scheduler's view) and the table's ``group_members`` (current VMs, claims, or a
    simulation's placements). Taking the larger count per host never double-counts one
    member and never misses one either source knows.
    """
    from_request = np.zeros(len(hosts))
    for host_id, count in Counter(group.member_hosts).items():
        row = hosts.index.get(host_id)
        if row is not None:
            from_request[row] = count
    from_table = hosts.group_members.get(group.group_id)
    return from_request if from_table is None else np.maximum(from_request, from_table)


@FILTERS.register("server_group", order=60)
class ServerGroupFilter(Filter):
    """Only hard groups filter; soft ones are weighed.

    Anti-affinity removes hosts already running ``max_members_per_host`` members (1 by
    default: Nova's rule). Affinity, once any member runs, removes every host without
    one; the group's first member may go anywhere. Members on hosts outside the table
    (a host gone from the fleet) leave affinity with no host, which is the honest answer.
    """

    def reject(self, hosts: HostTable, request: PlacementRequest) -> tuple[Rejection, ...]:
        group = request.server_group
        if group is None or not group.hard:
            return ()
        members = group_members_per_host(hosts, group)
        if group.policy is GroupPolicy.ANTI_AFFINITY:
            limit = max(1, group.max_members_per_host)
            words = "a member" if limit == 1 else f"{limit} members"
            return (
                Rejection(
                    f"anti-affinity: host already runs {words} of group {group.group_id}",
                    members >= limit,
                ),
            )
        if not group.member_hosts and not members.any():
            return ()
        return (
            Rejection(f"affinity: host runs no member of group {group.group_id}", members == 0),
        )
