"""Group hardware: the CPU model most of the group's members run on."""

from __future__ import annotations

import math

import pytest

from novacron.coordinator.placement.request import GroupPolicy, ServerGroup
from novacron.coordinator.placement.weighers.group_hardware import GroupHardwareWeigher
from tests.coordinator.placement.tables import host_table, request
from tests.coordinator.placement.weighers.weighing import weigh

HOSTS = host_table(
    [
        {"host_id": "x1", "cpu_model": "Xeon 8480"},
        {"host_id": "x2", "cpu_model": "Xeon 8480"},
        {"host_id": "e1", "cpu_model": "EPYC 9654"},
        {"host_id": "blank"},
    ],
    group_members={"mpi": [1, 1, 1, 5]},  # members on a host of unknown model do not vote
)


@pytest.mark.parametrize("policy", list(GroupPolicy))
def test_majority_model(policy: GroupPolicy) -> None:
    values = weigh(GroupHardwareWeigher, HOSTS, request(server_group=ServerGroup("mpi", policy)))
    assert values["group_cpu_model_match"].tolist() == pytest.approx(
        [1, 1, 0, math.nan], nan_ok=True
    )


@pytest.mark.parametrize("group", [None, ServerGroup("new", GroupPolicy.ANTI_AFFINITY)])
def test_no_members_no_preference(group: ServerGroup | None) -> None:
    values = weigh(GroupHardwareWeigher, HOSTS, request(server_group=group))
    assert values["group_cpu_model_match"].tolist() == [0, 0, 0, 0]
