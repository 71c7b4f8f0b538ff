"""Network locality: affinity-group members in the host's rack and zone."""

from __future__ import annotations

import math

import pytest

from novacron.coordinator.placement.request import GroupPolicy, ServerGroup
from novacron.coordinator.placement.weighers.network_locality import NetworkLocalityWeigher
from tests.coordinator.placement.tables import host_table, request
from tests.coordinator.placement.weighers.weighing import assert_raw, weigh

NAN = math.nan
HOSTS = host_table(
    [
        {"host_id": "a", "rack": "r1", "zone": "z1"},
        {"host_id": "b", "rack": "r1", "zone": "z1"},
        {"host_id": "c", "rack": "r2", "zone": "z1"},
        {"host_id": "d", "rack": "r3", "zone": "z2"},
        {"host_id": "e"},  # rack and zone unknown
    ],
    group_members={"g": [2, 0, 1, 0, 0]},
)


@pytest.mark.parametrize("hard", [True, False])
def test_affinity_members_nearby(hard: bool) -> None:
    group = ServerGroup("g", GroupPolicy.AFFINITY, hard=hard)
    assert_raw(
        weigh(NetworkLocalityWeigher, HOSTS, request(server_group=group)),
        {"group_rack_members": [2, 2, 1, 0, NAN], "group_zone_members": [3, 3, 3, 0, NAN]},
    )


def test_members_the_request_names_are_counted_once() -> None:
    # The scheduler lists two members on "a" (the table knows them) and one on "d".
    group = ServerGroup("g", GroupPolicy.AFFINITY, member_hosts=("a", "a", "d", "gone"))
    assert_raw(
        weigh(NetworkLocalityWeigher, HOSTS, request(server_group=group)),
        {"group_rack_members": [2, 2, 1, 1, NAN], "group_zone_members": [3, 3, 3, 1, NAN]},
    )


@pytest.mark.parametrize("group", [None, ServerGroup("g", GroupPolicy.ANTI_AFFINITY, hard=False)])
def test_other_requests_are_indifferent(group: ServerGroup | None) -> None:
    values = weigh(NetworkLocalityWeigher, HOSTS, request(server_group=group))
    for factor_id, column in values.items():
        assert column.tolist() == [0] * 5, factor_id
