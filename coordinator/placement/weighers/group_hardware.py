"""Group hardware: keep a server group's members on one CPU model.

Members of a group usually run one distributed workload (replicas, MPI ranks, shards);
the slowest member sets its pace, so the same CPU model for all of them gives even
performance and identical CPU features. Counted for any server group with members.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.hosts import FloatArray, HostTable
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.weighers.base import WEIGHERS, Weigher
from novacron.coordinator.placement.weighers.common import (
    group_member_counts,
    groups,
    indicator,
    zeros,
)


@WEIGHERS.register("group_hardware", order=220)
class GroupHardwareWeigher(Weigher):
    """Whether the host has the CPU model most of the group's members run on."""

    factors = (
        Factor(
            factor_id="group_cpu_model_match",
            name="Group's CPU model",
            category=Category.PERFORMANCE,
            unit="bool",
            default_weight=0.5,
            scope=Scope.GROUP,
            source="inventory:cpu_model + server group members",
            description=(
                "1 when the host has the CPU model most members of the VM's server group "
                "run on (even performance across the group)"
            ),
            higher_is_better=True,
            objective="performance",
        ),
    )

    def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
        group = request.server_group
        if group is None:
            return {"group_cpu_model_match": zeros(hosts)}
        models = groups(hosts, "cpu_model")
        members = np.where(models.known, group_member_counts(hosts, group), 0.0)
        per_model = np.bincount(models.inverse, weights=members, minlength=len(models.values))
        if not per_model.any():
            return {"group_cpu_model_match": zeros(hosts)}
        majority = int(np.argmax(per_model))
        return {"group_cpu_model_match": indicator(models.inverse == majority, models.known)}
