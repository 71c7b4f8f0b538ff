"""Hard affinity and anti-affinity from the request's members and the table's."""

from __future__ import annotations

import numpy as np
import pytest

from novacron.coordinator.placement.filters.server_group import (
    ServerGroupFilter,
    group_members_per_host,
)
from novacron.coordinator.placement.request import GroupPolicy, ServerGroup
from tests.coordinator.placement.tables import host_table, rejected, request

# The table knows one member of "db" on b (a simulation's or a claim's placement).
HOSTS = host_table(
    [{"host_id": h} for h in ("a", "b", "c", "d")], group_members={"db": [0, 1, 0, 0]}
)


def group(policy: GroupPolicy, members: tuple[str, ...] = (), **fields: object) -> ServerGroup:
    return ServerGroup("db", policy, member_hosts=members, **fields)  # type: ignore[arg-type]


ANTI = "anti-affinity: host already runs a member of group db"
AFFINITY = "affinity: host runs no member of group db"


@pytest.mark.parametrize(
    ("server_group", "expected"),
    [
        (None, {}),
        (group(GroupPolicy.ANTI_AFFINITY, hard=False, members=("a",)), {}),
        (group(GroupPolicy.ANTI_AFFINITY), {ANTI: ["b"]}),
        (group(GroupPolicy.ANTI_AFFINITY, ("a", "gone")), {ANTI: ["a", "b"]}),
        (
            group(GroupPolicy.ANTI_AFFINITY, ("a", "a", "b", "c"), max_members_per_host=2),
            {"anti-affinity: host already runs 2 members of group db": ["a"]},
        ),
        (group(GroupPolicy.AFFINITY, ("c",)), {AFFINITY: ["a", "d"]}),
        # Only members on hosts that left the fleet: no host can honour affinity.
        (group(GroupPolicy.AFFINITY, ("gone",)), {AFFINITY: ["a", "c", "d"]}),
    ],
)
def test_server_group(server_group: ServerGroup | None, expected: dict[str, list[str]]) -> None:
    assert rejected(ServerGroupFilter, HOSTS, request(server_group=server_group)) == expected


def test_first_member_of_an_affinity_group_goes_anywhere() -> None:
    empty = host_table([{"host_id": h} for h in ("a", "b")])
    assert (
        rejected(ServerGroupFilter, empty, request(server_group=group(GroupPolicy.AFFINITY))) == {}
    )


def test_members_known_to_both_sources_count_once() -> None:
    members = group_members_per_host(HOSTS, group(GroupPolicy.ANTI_AFFINITY, ("b", "c", "c")))
    np.testing.assert_array_equal(members, [0, 1, 2, 0])
