"""Strict NUMA fit: each guest node in a distinct host node with room for it."""

from __future__ import annotations

import pytest

from novacron.coordinator.placement.filters.numa import NumaFilter, numa_guest_node
from novacron.coordinator.placement.request import NumaPolicy
from tests.coordinator.placement.tables import host_table, rejected, request

GIB = 1024
HOSTS = host_table(
    [
        # Two nodes with 16 vCPUs / 64 GiB free each.
        {
            "host_id": "two_even",
            "numa_free_vcpus": [16, 16],
            "numa_free_memory_mib": [64 * GIB] * 2,
        },
        # Two nodes, one nearly full.
        {
            "host_id": "two_lopsided",
            "numa_free_vcpus": [30, 2],
            "numa_free_memory_mib": [120 * GIB, 4 * GIB],
        },
        # Four small nodes.
        {
            "host_id": "four_small",
            "numa_free_vcpus": [8] * 4,
            "numa_free_memory_mib": [32 * GIB] * 4,
        },
        # No NUMA data at all.
        {"host_id": "unknown"},
    ]
)
UNKNOWN = {"NUMA topology unknown": ["unknown"]}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"vcpus": 64, "memory_mib": 512 * GIB, "numa_policy": NumaPolicy.NONE}, {}),
        ({"vcpus": 64, "memory_mib": 512 * GIB, "numa_policy": NumaPolicy.PREFERRED}, {}),
        # One node of 16 vCPUs / 60 GiB: lopsided's big node and the even ones fit.
        (
            {"vcpus": 16, "memory_mib": 60 * GIB, "numa_policy": NumaPolicy.STRICT},
            {**UNKNOWN, "VM does not fit in one NUMA node": ["four_small"]},
        ),
        # Two guest nodes of 8 vCPUs / 30 GiB: lopsided's small node cannot hold one.
        (
            {
                "vcpus": 16,
                "memory_mib": 60 * GIB,
                "numa_policy": NumaPolicy.STRICT,
                "numa_nodes": 2,
            },
            {**UNKNOWN, "VM does not fit in 2 NUMA nodes": ["two_lopsided"]},
        ),
        # Three guest nodes need three host nodes.
        (
            {
                "vcpus": 12,
                "memory_mib": 12 * GIB,
                "numa_policy": NumaPolicy.STRICT,
                "numa_nodes": 3,
            },
            {**UNKNOWN, "VM does not fit in 3 NUMA nodes": ["two_even", "two_lopsided"]},
        ),
        # An odd split rounds up: 17 vCPUs over 2 nodes needs 9 per node.
        (
            {"vcpus": 17, "memory_mib": 8 * GIB, "numa_policy": NumaPolicy.STRICT, "numa_nodes": 2},
            {**UNKNOWN, "VM does not fit in 2 NUMA nodes": ["two_lopsided", "four_small"]},
        ),
    ],
)
def test_numa(fields: dict[str, object], expected: dict[str, list[str]]) -> None:
    assert rejected(NumaFilter, HOSTS, request(**fields)) == expected


def test_guest_node_size() -> None:
    assert numa_guest_node(request(vcpus=17, memory_mib=1001, numa_nodes=2)) == (9, 501)
    assert numa_guest_node(request(vcpus=8, memory_mib=4096)) == (8, 4096)
