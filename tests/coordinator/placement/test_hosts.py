"""HostTable.allocate / allocate_many against a plain one-allocation-at-a-time reference."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from novacron.coordinator.placement.hosts import Allocation, HostTable
from novacron.coordinator.placement.hosts_synthetic import synthetic_hosts

HOSTS = 12
USED = ("vcpus_used", "memory_mib_used", "disk_gib_used", "gpus_used", "vm_count")


def fleet() -> HostTable:
    """Synthetic hosts (2 or 4 NUMA nodes, NaN padded) plus one host without NUMA data."""
    table = synthetic_hosts(HOSTS, seed=3)
    vcpus = table.numa_free_vcpus.copy()
    memory = table.numa_free_memory_mib.copy()
    vcpus[5] = memory[5] = np.nan
    return replace(table, numa_free_vcpus=vcpus, numa_free_memory_mib=memory)


def reference(table: HostTable, allocations: Sequence[Allocation]) -> dict[str, np.ndarray]:
    """What each allocation does, written out per allocation in plain Python."""
    used = {name: table.numbers[name].tolist() for name in USED}
    numa_vcpus = table.numa_free_vcpus.tolist()
    numa_memory = table.numa_free_memory_mib.tolist()
    groups = {g: v.tolist() for g, v in table.group_members.items()}
    for a in allocations:
        for name, amount in zip(
            USED, (a.vcpus, a.memory_mib, a.disk_gib, a.gpus, a.vms), strict=True
        ):
            used[name][a.row] += amount
        nodes = [m for m in numa_memory[a.row] if not math.isnan(m)]  # NaN padding left out
        if nodes:
            node = numa_memory[a.row].index(max(nodes))  # the freest node, first on ties
            numa_vcpus[a.row][node] -= a.vcpus
            numa_memory[a.row][node] -= a.memory_mib
        if a.group_id:
            members = groups.setdefault(a.group_id, [0.0] * len(table))
            members[a.row] += a.vms
    out = {name: np.array(values) for name, values in used.items()}
    out["numa_free_vcpus"] = np.array(numa_vcpus)
    out["numa_free_memory_mib"] = np.array(numa_memory)
    out.update({f"group:{g}": np.array(v) for g, v in groups.items()})
    return out


def observed(table: HostTable) -> dict[str, np.ndarray]:
    out = {name: table.numbers[name] for name in USED}
    out["numa_free_vcpus"] = table.numa_free_vcpus
    out["numa_free_memory_mib"] = table.numa_free_memory_mib
    out.update({f"group:{g}": v for g, v in table.group_members.items()})
    return out


allocations = st.lists(
    st.builds(
        Allocation,
        row=st.integers(0, HOSTS - 1),
        vcpus=st.integers(-4, 16).map(float),
        memory_mib=st.sampled_from([-2048.0, 0.0, 768.0, 4096.0, 65536.0]),
        disk_gib=st.integers(0, 100).map(float),
        gpus=st.integers(0, 2).map(float),
        vms=st.integers(-1, 2),
        group_id=st.sampled_from(["", "", "web", "db"]),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(allocations)
def test_allocate_many_is_each_allocation_in_turn(batch: list[Allocation]) -> None:
    table = fleet()
    expected = reference(table, batch)
    many = observed(table.allocate_many(batch))
    chained = table
    for a in batch:
        chained = chained.allocate(
            a.row,
            vcpus=a.vcpus,
            memory_mib=a.memory_mib,
            disk_gib=a.disk_gib,
            gpus=a.gpus,
            vms=a.vms,
            group_id=a.group_id,
        )
    assert sorted(many) == sorted(expected) == sorted(observed(chained))
    for name, values in expected.items():
        np.testing.assert_array_equal(many[name], values, err_msg=name)
        np.testing.assert_array_equal(observed(chained)[name], values, err_msg=name)


def test_allocate_copies_only_what_changes_and_leaves_the_table_alone() -> None:
    table = fleet()
    before = {name: column.copy() for name, column in observed(table).items()}
    after = table.allocate(5, vcpus=2, memory_mib=1024)  # host 5 has no NUMA data
    assert after.numa_free_memory_mib is table.numa_free_memory_mib
    assert after.numbers["liveness"] is table.numbers["liveness"]
    assert after.features is table.features
    assert after.numbers["vcpus_used"][5] == table.numbers["vcpus_used"][5] + 2
    for name, column in observed(table).items():
        np.testing.assert_array_equal(column, before[name])
    with pytest.raises(ValueError, match="read-only"):
        after.numbers["vcpus_used"][0] = 1.0
    assert table.allocate_many([]) is table
