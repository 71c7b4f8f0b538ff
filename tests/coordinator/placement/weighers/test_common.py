"""Shared weigher helpers: identity cache, telemetry columns, ratios, groups, members."""

from __future__ import annotations

import gc
import math

import numpy as np
import pytest

from novacron.coordinator.placement.request import GroupPolicy, ServerGroup
from novacron.coordinator.placement.settings import PlacementSettings
from novacron.coordinator.placement.weighers.common import (
    IdentityCache,
    free,
    group_member_counts,
    groups,
    nan_to,
    ratio,
    telemetry,
    telemetry_coverage,
)
from tests.coordinator.placement.tables import host_table

NAN = math.nan


def test_identity_cache_hits_per_array_and_forgets_dead_ones() -> None:
    cache: IdentityCache[float] = IdentityCache()
    calls: list[int] = []

    def compute(value: float) -> float:
        calls.append(1)
        return value

    first = np.zeros(3)
    assert cache.get((first,), lambda: compute(1.0)) == 1.0
    assert cache.get((first,), lambda: compute(2.0)) == 1.0  # hit: same array
    assert (
        cache.get((first,), lambda: compute(3.0), extra="other") == 3.0
    )  # extra is part of the key
    equal_copy = first.copy()
    assert cache.get((equal_copy,), lambda: compute(4.0)) == 4.0  # identity, not contents
    assert len(calls) == 3
    assert len(cache) == 3
    del first
    gc.collect()
    assert len(cache) == 1


def test_cached_values_survive_allocate_only_where_columns_did_not_change() -> None:
    hosts = host_table([{"cpu_util_percent_mean_15m": 40.0}, {}])
    settings = PlacementSettings()
    after = hosts.allocate(0, vcpus=4, memory_mib=1024)
    # The float64 telemetry matrix is built once and shared by the derived table.
    assert np.shares_memory(
        telemetry(after, "cpu_util_percent_mean_15m"), telemetry(hosts, "cpu_util_percent_mean_15m")
    )
    assert free(after, settings, "vcpus")[0] == free(hosts, settings, "vcpus")[0] - 4
    with pytest.raises(ValueError, match="read-only"):
        free(hosts, settings, "vcpus")[0] = 0.0


def test_telemetry_without_the_feature_is_unknown() -> None:
    hosts = host_table([{"cpu_util_percent_mean_15m": 40.0}, {}])
    assert telemetry(hosts, "cpu_util_percent_mean_15m").tolist() == pytest.approx(
        [40.0, NAN], nan_ok=True
    )
    assert np.isnan(telemetry(hosts, "no_such_feature")).all()
    assert telemetry_coverage(hosts)[1] == 0.0


def test_ratio_and_nan_to() -> None:
    assert ratio(np.array([1.0, 1.0, 1.0, 1.0]), np.array([2.0, 0.0, -1.0, NAN])).tolist() == (
        pytest.approx([0.5, NAN, NAN, NAN], nan_ok=True)
    )
    values = np.array([1.0, NAN])
    assert nan_to(values, 7.0).tolist() == [1.0, 7.0]
    assert math.isnan(values[1])  # a copy


def test_groups_by_text_column() -> None:
    hosts = host_table([{"rack": "r1"}, {"rack": "r1"}, {"rack": "r2"}, {}])
    racks = groups(hosts, "rack")
    assert racks is groups(hosts, "rack")  # once per table
    column = np.array([1.0, NAN, 5.0, 9.0])
    assert racks.size().tolist() == pytest.approx([2, 2, 1, NAN], nan_ok=True)
    assert racks.sum(column).tolist() == pytest.approx([NAN, NAN, 5, NAN], nan_ok=True)
    assert racks.sum(column, skip_nan=True).tolist() == pytest.approx([1, 1, 5, NAN], nan_ok=True)
    assert racks.mean(column).tolist() == pytest.approx([1, 1, 5, NAN], nan_ok=True)
    assert racks.lookup({"r2": 3.0}, 0.5).tolist() == [0.5, 0.5, 3.0, 0.5]


def test_group_members_take_the_larger_count_per_host() -> None:
    hosts = host_table(
        [{"host_id": "a"}, {"host_id": "b"}, {"host_id": "c"}], group_members={"g": [1, 0, 2]}
    )
    group = ServerGroup("g", GroupPolicy.AFFINITY, member_hosts=("a", "b", "b", "elsewhere"))
    assert group_member_counts(hosts, group).tolist() == [1, 2, 2]
    assert group_member_counts(hosts, ServerGroup("new", GroupPolicy.AFFINITY)).tolist() == [
        0,
        0,
        0,
    ]
