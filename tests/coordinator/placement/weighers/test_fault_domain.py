"""Fault domains: anti-affinity members per rack and zone; free vCPU share per rack, zone."""

from __future__ import annotations

import math

from novacron.coordinator.placement.request import GroupPolicy, ServerGroup
from novacron.coordinator.placement.weighers.fault_domain import FaultDomainWeigher
from tests.coordinator.placement.tables import host_table, request
from tests.coordinator.placement.weighers.weighing import assert_raw, weigh

NAN = math.nan
# 128 allocatable vCPUs per host (32 x 4).
HOSTS = host_table(
    [
        {"host_id": "a", "rack": "r1", "zone": "z1", "vcpus_used": 64},
        {"host_id": "b", "rack": "r1", "zone": "z1"},
        {"host_id": "c", "rack": "r2", "zone": "z1", "vcpus_used": 128},
        {"host_id": "d", "rack": "r3", "zone": "z2"},
        {"host_id": "e", "vcpus_total": NAN},  # nothing known
    ],
    group_members={"db": [1, 0, 1, 0, 0]},
)


def test_replicas_per_fault_domain() -> None:
    group = ServerGroup("db", GroupPolicy.ANTI_AFFINITY)
    assert_raw(
        weigh(FaultDomainWeigher, HOSTS, request(server_group=group)),
        {
            "group_rack_members_anti": [1, 1, 1, 0, NAN],
            "group_zone_members_anti": [2, 2, 2, 0, NAN],
            "rack_free_vcpus_ratio": [0.75, 0.75, 0.0, 1.0, NAN],
            "zone_free_vcpus_ratio": [0.5, 0.5, 0.5, 1.0, NAN],
        },
    )


def test_without_anti_affinity_only_load_counts() -> None:
    group = ServerGroup("db", GroupPolicy.AFFINITY)
    values = weigh(FaultDomainWeigher, HOSTS, request(server_group=group))
    assert values["group_rack_members_anti"].tolist() == [0] * 5
    assert values["group_zone_members_anti"].tolist() == [0] * 5
