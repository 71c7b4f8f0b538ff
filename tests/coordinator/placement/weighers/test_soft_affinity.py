"""Soft server groups: members per host, and members beyond the anti-affinity allowance."""

from __future__ import annotations

import pytest

from novacron.coordinator.placement.request import GroupPolicy, ServerGroup
from novacron.coordinator.placement.weighers.soft_affinity import SoftAffinityWeigher
from tests.coordinator.placement.tables import host_table, request
from tests.coordinator.placement.weighers.weighing import assert_raw, weigh

HOSTS = host_table([{}, {}, {}], group_members={"web": [0, 1, 2]})


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        (
            ServerGroup("web", GroupPolicy.AFFINITY, hard=False),
            {
                "soft_affinity_members": [0, 1, 2],
                "soft_anti_affinity_members": [0, 0, 0],
                "soft_anti_affinity_excess": [0, 0, 0],
            },
        ),
        (
            ServerGroup("web", GroupPolicy.ANTI_AFFINITY, hard=False),
            {
                "soft_affinity_members": [0, 0, 0],
                "soft_anti_affinity_members": [0, 1, 2],
                "soft_anti_affinity_excess": [0, 1, 2],
            },
        ),
        (
            ServerGroup("web", GroupPolicy.ANTI_AFFINITY, hard=False, max_members_per_host=2),
            {"soft_anti_affinity_members": [0, 1, 2], "soft_anti_affinity_excess": [0, 0, 1]},
        ),
        # Hard groups are the server-group filter's business.
        (
            ServerGroup("web", GroupPolicy.ANTI_AFFINITY, hard=True),
            {"soft_anti_affinity_members": [0, 0, 0], "soft_anti_affinity_excess": [0, 0, 0]},
        ),
        (None, {"soft_affinity_members": [0, 0, 0], "soft_anti_affinity_members": [0, 0, 0]}),
    ],
)
def test_members(group: ServerGroup | None, expected: dict[str, list[float]]) -> None:
    assert_raw(weigh(SoftAffinityWeigher, HOSTS, request(server_group=group)), expected)
