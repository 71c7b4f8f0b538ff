"""Assembling a host table from columns: what a left-out column means."""

from __future__ import annotations

import math

import numpy as np
import pytest

from novacron.coordinator.fleet import Liveness
from novacron.coordinator.placement.hosts_columns import assemble


def test_left_out_columns_mean_empty_live_and_not_known() -> None:
    hosts = assemble(["a", "b"], numbers={"vcpus_total": [4, 8], "memory_mib_total": [1, 2]})
    assert hosts.numbers["vcpus_used"].tolist() == [0, 0]
    assert hosts.numbers["liveness"].tolist() == [Liveness.LIVE] * 2
    assert math.isnan(hosts.numbers["failure_probability"][0])
    assert math.isnan(hosts.numbers["max_vms"][0]) and math.isnan(
        hosts.numbers["disk_gib_total"][0]
    )
    assert hosts.texts["zone"].tolist() == ["", ""]
    assert hosts.flags["cpu_flags"].has_all(()).tolist() == [True, True]
    assert hosts.numa_free_vcpus.shape == (2, 0) and np.isnan(hosts.features).all()
    with pytest.raises(ValueError, match="read-only"):
        hosts.numbers["vcpus_total"][0] = 1


def test_ragged_numa_rows_and_named_features() -> None:
    hosts = assemble(
        ["a", "b"],
        numbers={"vcpus_total": [4, 8], "memory_mib_total": [1, 2]},
        numa_free_vcpus=[[2, 2], [8]],
        numa_free_memory_mib=[[1, 1], [2]],
        features={"cpu_util_percent_mean_15m": [10.0, 20.0]},
    )
    np.testing.assert_array_equal(hosts.numa_free_vcpus, [[2, 2], [8, np.nan]])
    assert hosts.feature("cpu_util_percent_mean_15m").tolist() == [10.0, 20.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"host_ids": ["a", "a"]}, "host 'a' appears twice"),
        ({"numbers": {"vcpus_total": [1, 2]}}, "needs the column memory_mib_total"),
        ({"numbers": {"vcpus_total": [1], "memory_mib_total": [1, 2]}}, "vcpus_total has shape"),
        ({"features": {"no_such_feature": [1, 2]}}, "unknown node feature 'no_such_feature'"),
        ({"numa_free_vcpus": [[1]]}, "NUMA matrix has shape"),
        ({"flags": {"cpu_flags": [("avx2",)]}}, "flag column cpu_flags has 1 rows"),
    ],
)
def test_inconsistent_columns_are_refused(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "host_ids": ["a", "b"],
        "numbers": {"vcpus_total": [4, 8], "memory_mib_total": [1, 2]},
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        assemble(**arguments)  # type: ignore[arg-type]
