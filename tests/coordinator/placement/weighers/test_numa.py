"""NUMA: nodes the VM would span, preferred fit, freest node, fragmentation."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from novacron.coordinator.placement.request import NumaPolicy
from novacron.coordinator.placement.weighers.numa import NumaWeigher, freest_first
from tests.coordinator.placement.tables import host_table, request
from tests.coordinator.placement.weighers.weighing import assert_raw, weigh

NAN = math.nan
HOSTS = host_table(
    [
        {"host_id": "even", "numa_free_vcpus": [8, 8], "numa_free_memory_mib": [16384, 16384]},
        {"host_id": "lopsided", "numa_free_vcpus": [4, 12], "numa_free_memory_mib": [8192, 24576]},
        # One node overcommitted: it offers nothing, it does not subtract.
        {"host_id": "overdrawn", "numa_free_vcpus": [-2, 6], "numa_free_memory_mib": [0, 12288]},
        {"host_id": "no_numa"},
    ]
)


def test_small_vm_fits_one_node_everywhere_it_can() -> None:
    values = weigh(NumaWeigher, HOSTS, request(vcpus=6, memory_mib=12288))
    assert_raw(
        values,
        {
            "numa_nodes_needed": [1, 1, 1, NAN],
            "numa_preferred_fit": [0, 0, 0, 0],  # policy none: the same everywhere
            "numa_largest_free_vcpus": [8, 12, 6, NAN],
            "numa_largest_free_memory_mib": [16384, 24576, 12288, NAN],
            "numa_memory_fragmentation": [0.5, 0.25, 0.0, NAN],
        },
    )


def test_large_vm_spans_nodes_or_does_not_fit() -> None:
    values = weigh(
        NumaWeigher,
        HOSTS,
        request(vcpus=10, memory_mib=20000, numa_policy=NumaPolicy.PREFERRED, numa_nodes=1),
    )
    assert_raw(
        values,
        {
            "numa_nodes_needed": [2, 1, NAN, NAN],
            "numa_preferred_fit": [0, 1, NAN, NAN],
        },
    )
    two_nodes = weigh(
        NumaWeigher,
        HOSTS,
        request(vcpus=10, memory_mib=20000, numa_policy=NumaPolicy.PREFERRED, numa_nodes=2),
    )
    assert_raw(two_nodes, {"numa_preferred_fit": [1, 1, NAN, NAN]})


def test_fleet_without_numa_data_is_unknown() -> None:
    values = weigh(NumaWeigher, host_table([{}, {}]), request())
    for factor_id, column in values.items():
        assert np.isnan(column).all(), factor_id


@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 20), st.integers(1, 6)),
        elements=st.floats(-8, 64) | st.just(math.nan),
    )
)
def test_freest_first_ranks_like_a_sort(per_node: np.ndarray) -> None:
    ranked = np.stack(freest_first(per_node), axis=1)
    expected = -np.sort(-np.fmax(per_node, 0.0), axis=1)
    assert np.array_equal(ranked, expected)
