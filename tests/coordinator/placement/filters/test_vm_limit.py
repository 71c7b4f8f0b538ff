"""Per-host VM limit: the host's own max_vms, else the settings' default."""

from __future__ import annotations

import pytest

from novacron.coordinator.placement.filters.vm_limit import VmLimitFilter
from novacron.coordinator.placement.settings import PlacementSettings
from tests.coordinator.placement.tables import host_table, rejected, request

HOSTS = host_table(
    [
        {"host_id": "own_limit_reached", "max_vms": 10, "vm_count": 10},
        {"host_id": "own_limit_room", "max_vms": 10, "vm_count": 9},
        {"host_id": "busy", "vm_count": 40},
        {"host_id": "quiet", "vm_count": 3},
    ]
)


@pytest.mark.parametrize(
    ("default_max_vms", "expected"),
    [
        (0, {"host at its VM limit": ["own_limit_reached"]}),
        (40, {"host at its VM limit": ["own_limit_reached", "busy"]}),
        (3, {"host at its VM limit": ["own_limit_reached", "busy", "quiet"]}),
    ],
)
def test_vm_limit(default_max_vms: int, expected: dict[str, list[str]]) -> None:
    settings = PlacementSettings(default_max_vms=default_max_vms)
    assert rejected(VmLimitFilter, HOSTS, request(), settings) == expected
