"""Synthetic fleets: deterministic, realistic, complete and fast."""

from __future__ import annotations

import time

import numpy as np

from novacron.coordinator.fleet import Liveness
from novacron.coordinator.placement.hosts_synthetic import synthetic_hosts
from novacron.models.schema import NODE


def test_same_seed_same_fleet_other_seed_other_fleet() -> None:
    one, again, other = synthetic_hosts(300, 7), synthetic_hosts(300, 7), synthetic_hosts(300, 8)
    for name, column in one.numbers.items():
        np.testing.assert_array_equal(column, again.numbers[name])
    np.testing.assert_array_equal(one.features, again.features)
    assert not np.array_equal(one.numbers["vcpus_used"], other.numbers["vcpus_used"])


def test_fleet_is_mixed_and_plausible() -> None:
    hosts = synthetic_hosts(5000, 1)
    numbers = hosts.numbers
    assert len(hosts) == 5000 and len(set(hosts.host_ids.tolist())) == 5000
    gpu = numbers["gpus_total"] > 0
    assert 0.05 < gpu.mean() < 0.15
    assert (hosts.texts["gpu_model"][gpu] != "").all() and (
        hosts.texts["gpu_model"][~gpu] == ""
    ).all()
    assert set(hosts.texts["arch"].tolist()) == {"x86_64", "aarch64"}
    assert (
        len(set(hosts.texts["zone"].tolist())) == 3 and len(set(hosts.texts["rack"].tolist())) > 100
    )
    # Used never exceeds what overcommit allows; GPUs never overbooked.
    assert (numbers["vcpus_used"] <= numbers["vcpus_total"] * 2).all()
    assert (numbers["memory_mib_used"] < numbers["memory_mib_total"]).all()
    assert (numbers["gpus_used"] <= numbers["gpus_total"]).all()
    # Some hosts in every troubled state; failing hosts show it in their telemetry.
    liveness = numbers["liveness"]
    assert (liveness == Liveness.STALE).any() and (liveness == Liveness.UNKNOWN).any()
    assert numbers["maintenance"].any() and numbers["cordoned"].any()
    failing = numbers["failure_probability"] > 0.3
    assert 0.005 < failing.mean() < 0.05
    troubled = (hosts.feature("smart_reallocated_sectors_increase_24h") > 0) | (
        hosts.feature("ecc_corrected_errors_rate_per_hour_24h") > 10
    )
    assert troubled[failing & (liveness != Liveness.UNKNOWN)].mean() > 0.9
    assert troubled[~failing].mean() < 0.01
    # Every NODE feature has data on most hosts (GPU features on GPU hosts).
    assert hosts.feature_names == NODE.feature_names
    has_data = ~np.isnan(hosts.features[gpu])
    assert has_data.mean(axis=0).min() > 0.9
    # NUMA: every host has its nodes, and their free capacity adds up to the host's.
    nodes = (~np.isnan(hosts.numa_free_vcpus)).sum(axis=1)
    assert set(nodes.tolist()) == {1, 2, 4}
    np.testing.assert_allclose(
        np.nansum(hosts.numa_free_vcpus, axis=1), hosts.free("vcpus", 4.0), rtol=1e-9
    )
    for column in ("power_idle_watts", "cost_per_hour", "carbon_g_per_kwh", "hardware_age_years"):
        assert (numbers[column] > 0).all()


def test_fifty_thousand_hosts_in_a_few_seconds() -> None:
    started = time.perf_counter()
    hosts = synthetic_hosts(50_000, 3)
    assert len(hosts) == 50_000
    assert time.perf_counter() - started < 5.0  # ~0.3 s on a quiet machine
