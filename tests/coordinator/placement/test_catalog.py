"""The factor catalogue: size, categories, unique ids, sources, and every weigher's output.

The direction tests are the catalogue's safety net: for each kind of bad news (a higher
failure probability, a hotter host, a slower disk, a fuller host, a dearer host) no
factor of the objective it concerns may favour the host with the bad news.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from novacron.coordinator.placement.catalog import FACTOR_OBJECTIVES, catalog, check_factors
from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.hosts import REQUIRED_NUMBERS, HostTable
from novacron.coordinator.placement.hosts_synthetic import synthetic_hosts
from novacron.coordinator.placement.request import (
    GroupPolicy,
    NumaPolicy,
    PlacementRequest,
    ServerGroup,
)
from novacron.coordinator.placement.settings import PlacementSettings
from novacron.coordinator.placement.weighers import WEIGHERS
from novacron.coordinator.placement.weighers.common import plain_feature
from novacron.models.schema import NODE
from tests.coordinator.placement.tables import host_table

FACTORS = catalog()
BY_ID = {factor.factor_id: factor for factor in FACTORS}


def test_at_least_a_hundred_factors_in_all_five_categories() -> None:
    assert len(FACTORS) >= 100
    counts = Counter(factor.category for factor in FACTORS)
    assert set(counts) == set(Category)
    assert min(counts.values()) >= 5


def test_ids_unique_and_every_weigher_declares_its_own() -> None:
    assert len(BY_ID) == len(FACTORS)
    owners = Counter(factor.factor_id for info in WEIGHERS for factor in info.plugin.factors)
    assert max(owners.values()) == 1


def test_fields_are_usable() -> None:
    for factor in FACTORS:
        assert factor.factor_id.isidentifier(), factor
        assert factor.name and factor.unit and factor.source and factor.description, factor
        assert factor.objective in FACTOR_OBJECTIVES, factor
        assert isinstance(factor.scope, Scope)
        assert 0.0 <= factor.default_weight <= 3.0, factor


def test_default_weights_mostly_on_and_failure_risk_strongest() -> None:
    active = [f for f in FACTORS if f.default_weight > 0]
    assert len(active) > len(FACTORS) / 2
    reliability = [f for f in FACTORS if f.objective == "reliability"]
    strongest = max(reliability, key=lambda f: f.default_weight)
    assert strongest.factor_id == "failure_probability"


def test_telemetry_sources_name_node_features() -> None:
    plain = [(f, plain_feature(f)) for f in FACTORS if plain_feature(f) is not None]
    assert len(plain) >= 30
    for factor, feature in plain:
        assert feature in NODE.feature_names, factor.factor_id


def test_disabled_weigher_takes_its_factors_along() -> None:
    factors = catalog(PlacementSettings(disabled_weighers=("disk_health", "cost")))
    ids = {f.factor_id for f in factors}
    assert "smart_failing_disks" not in ids and "cost_per_hour" not in ids
    assert len(factors) == len(FACTORS) - 13 - 3
    with pytest.raises(ValueError, match="disabled_weighers"):
        catalog(PlacementSettings(disabled_weighers=("no_such_weigher",)))


@pytest.mark.parametrize(
    ("change", "message"),
    [({"objective": "pack"}, "unknown objective"), ({"default_weight": -1.0}, "default weight")],
)
def test_check_factors_rejects(change: dict[str, object], message: str) -> None:
    factor = dataclasses.replace(FACTORS[0], **change)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        check_factors([factor])


# --- every weigher on a realistic fleet ---------------------------------------------

FLEET = synthetic_hosts(400, seed=3)
REQUESTS = (
    PlacementRequest(vcpus=2, memory_mib=4096),
    PlacementRequest(vcpus=16, memory_mib=131072, disk_gib=200, numa_policy=NumaPolicy.PREFERRED),
    PlacementRequest(
        vcpus=8,
        memory_mib=65536,
        gpus=2,
        gpu_model=str(FLEET.texts["gpu_model"][FLEET.numbers["gpus_total"] > 0][0]),
        server_group=ServerGroup(
            "g", GroupPolicy.ANTI_AFFINITY, hard=False, member_hosts=tuple(FLEET.host_ids[:4])
        ),
        current_host=str(FLEET.host_ids[7]),
    ),
    PlacementRequest(
        vcpus=4,
        memory_mib=8192,
        server_group=ServerGroup("a", GroupPolicy.AFFINITY, member_hosts=(str(FLEET.host_ids[9]),)),
    ),
)


def _all_raw(hosts: HostTable, request: PlacementRequest) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    settings_ = PlacementSettings()
    for info in WEIGHERS:
        values = info.plugin(settings_).raw(hosts, request)
        assert set(values) == {f.factor_id for f in info.plugin.factors}, info.name
        out.update(values)
    return out


@pytest.mark.parametrize("request_", REQUESTS)
@pytest.mark.parametrize("hosts", [FLEET, host_table([{}, {"vcpus_used": 8}])])
def test_every_factor_computed_with_the_right_shape(
    hosts: HostTable, request_: PlacementRequest
) -> None:
    values = _all_raw(hosts, request_)
    assert set(values) == set(BY_ID)
    for factor_id, column in values.items():
        assert column.shape == (len(hosts),), factor_id
        assert column.dtype == np.float64, factor_id
        assert not np.isinf(column).any(), factor_id  # NaN means unknown; inf never


def test_realistic_fleet_gives_most_factors_a_spread() -> None:
    values = _all_raw(FLEET, REQUESTS[2])
    varying = [f for f, column in values.items() if np.nanmax(column) > np.nanmin(column)]
    assert len(varying) >= 0.8 * len(values)


def test_factor_named_like_a_table_column_computes_that_column() -> None:
    """The engine takes a table column over a weigher's value when the ids match; both
    must then mean the same thing."""
    values = _all_raw(FLEET, REQUESTS[0])
    shared = [f for f in BY_ID if f in FLEET.numbers]
    assert {"vm_count", "failure_probability", "anomaly_score"} <= set(shared)
    for factor_id in shared:
        assert np.array_equal(values[factor_id], FLEET.numbers[factor_id], equal_nan=True)
    for factor_id in BY_ID:
        if factor_id in REQUIRED_NUMBERS:
            assert factor_id in shared


# --- directions -----------------------------------------------------------------------

# A healthy, half-used host with every NODE feature at its neutral value.
BASE: Mapping[str, object] = {
    **{feature.name: feature.fill for feature in NODE.features},
    "temp_max_celsius_trend_30m": 0.2,
    "vcpus_used": 32,
    "memory_mib_used": 32768,
    "vm_count": 4,
    "rack": "r1",
    "zone": "z1",
    "power_idle_watts": 120.0,
    "power_max_watts": 400.0,
    "cost_per_hour": 1.5,
    "carbon_g_per_kwh": 300.0,
    "nic_speed_mbps": 25000.0,
    "hardware_age_years": 3.0,
}
# (column, range of plausible values, does a higher value mean worse, objectives hit)
BAD_NEWS = [
    ("failure_probability", (0.0, 1.0), True, {"reliability"}),
    ("anomaly_score", (0.0, 1.0), True, {"reliability"}),
    ("temp_margin_celsius_min_15m", (-10.0, 80.0), False, {"reliability"}),
    ("smart_failing_disks_last_1h", (0.0, 8.0), True, {"reliability"}),
    ("smart_pending_sectors_increase_24h", (0.0, 500.0), True, {"reliability"}),
    ("ecc_uncorrected_errors_increase_24h", (0.0, 50.0), True, {"reliability"}),
    ("ecc_corrected_errors_rate_per_hour_1h", (0.0, 1000.0), True, {"reliability"}),
    ("disk_await_ms_p99_15m", (0.0, 500.0), True, {"performance"}),
    ("cpu_steal_percent_mean_15m", (0.0, 50.0), True, {"performance"}),
    ("cpu_util_percent_mean_15m", (0.0, 100.0), True, {"performance"}),
    ("vcpus_used", (0.0, 256.0), True, {"spread"}),
    ("memory_mib_used", (0.0, 131072.0), True, {"spread"}),
    ("cost_per_hour", (0.1, 20.0), True, {"energy"}),
    ("carbon_g_per_kwh", (10.0, 900.0), True, {"energy"}),
]


@settings(max_examples=25, deadline=None)
@given(case=st.sampled_from(BAD_NEWS), data=st.data())
def test_bad_news_never_helps(
    case: tuple[str, tuple[float, float], bool, set[str]], data: st.DataObject
) -> None:
    column, (low, high), higher_is_worse, objectives = case
    good, bad = sorted(
        data.draw(st.lists(st.floats(low, high), min_size=2, max_size=2, unique=True))
    )
    # A difference below the comparison tolerance (0 vs 1e-197) is no news at all.
    assume(bad - good > (high - low) * 1e-6)
    if not higher_is_worse:
        good, bad = bad, good
    hosts = host_table(
        [{**BASE, "host_id": "good", column: good}, {**BASE, "host_id": "bad", column: bad}]
    )
    request = PlacementRequest(vcpus=4, memory_mib=8192)
    values = _all_raw(hosts, request)
    compared = 0
    for factor_id, raw in values.items():
        factor: Factor = BY_ID[factor_id]
        if factor.objective not in objectives or np.isnan(raw).any():
            continue
        advantage = raw if factor.higher_is_better else -raw
        assert advantage[1] <= advantage[0] + 1e-9, (factor_id, column, good, bad)
        compared += advantage[1] < advantage[0] - 1e-9
    # The bad news shows somewhere (a column no factor reads would make this vacuous).
    assert compared >= 1, column
