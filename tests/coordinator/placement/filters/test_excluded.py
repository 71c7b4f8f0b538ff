"""The request's own exclusions: migration source and ignore list."""

from __future__ import annotations

import pytest

from novacron.coordinator.placement.filters.excluded import ExcludedHostsFilter
from tests.coordinator.placement.tables import host_table, rejected, request

HOSTS = host_table([{"host_id": h} for h in ("a", "b", "c")])
SOURCE = "the VM's current host (migration source)"
IGNORED = "host on the request's ignore list"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, {}),
        ({"current_host": "b"}, {SOURCE: ["b"]}),
        ({"ignore_hosts": ("a", "c", "zz")}, {IGNORED: ["a", "c"]}),
        # The source on the ignore list too counts once, as the source.
        ({"current_host": "a", "ignore_hosts": ("a", "c")}, {SOURCE: ["a"], IGNORED: ["c"]}),
        ({"current_host": "gone"}, {}),
    ],
)
def test_excluded_hosts(fields: dict[str, object], expected: dict[str, list[str]]) -> None:
    assert rejected(ExcludedHostsFilter, HOSTS, request(**fields)) == expected
