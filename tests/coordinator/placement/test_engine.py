"""The engine over small hand-built tables and test-only plugins (engine_support).

Table-driven: each case states a fleet, a request and what must come out, so a
change in normalisation, weighting, filtering or ranking shows as a named case.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from novacron.coordinator.placement.engine import (
    PARETO_MAX_INPUT,
    Policy,
    UnknownHost,
    _non_dominated,
    explain,
    filter_rejections,
    select,
)
from novacron.coordinator.placement.hosts import HostTable
from novacron.coordinator.placement.hosts_synthetic import synthetic_hosts
from novacron.coordinator.placement.request import GroupPolicy, PlacementRequest, ServerGroup
from novacron.coordinator.placement.settings import PlacementSettings
from tests.coordinator.placement.engine_support import make_policy, registries
from tests.coordinator.placement.tables import host_table

SMALL = PlacementRequest(vcpus=2, memory_mib=4096)
NAN = float("nan")


@dataclass(frozen=True)
class Case:
    name: str
    hosts: Sequence[Mapping[str, Any]]
    request: PlacementRequest = SMALL
    objectives: Mapping[str, float] | None = None
    overrides: Mapping[str, float] | None = None
    expected_order: tuple[str, ...] = ()
    expected_filtered: Mapping[tuple[str, str], int] = field(default_factory=dict)


CASES = [
    Case(
        "reliability wins over free memory by default (weight 2 x objective 2)",
        [
            {"host_id": "roomy-risky", "failure_probability": 0.4},
            {"host_id": "tight-safe", "memory_mib_used": 100_000, "failure_probability": 0.01},
        ],
        expected_order=("tight-safe", "roomy-risky"),
    ),
    Case(
        "spread-only objectives prefer free memory",
        [
            {"host_id": "roomy-risky", "failure_probability": 0.4},
            {"host_id": "tight-safe", "memory_mib_used": 100_000, "failure_probability": 0.01},
        ],
        objectives={"spread": 1.0},
        expected_order=("roomy-risky", "tight-safe"),
    ),
    Case(
        "pack inverts spread: the fullest host first",
        [
            {"host_id": "empty"},
            {"host_id": "half", "memory_mib_used": 60_000},
            {"host_id": "full", "memory_mib_used": 120_000},
        ],
        objectives={"pack": 1.0},
        expected_order=("full", "half", "empty"),
    ),
    Case(
        "a negative weight override packs too",
        [{"host_id": "empty"}, {"host_id": "full", "memory_mib_used": 120_000}],
        objectives={"spread": 1.0},
        overrides={"free_memory_mib": -1.0},
        expected_order=("full", "empty"),
    ),
    Case(
        "capacity and maintenance filters count each host once, at the first filter",
        [
            {"host_id": "ok"},
            {"host_id": "maint-and-full", "maintenance": 1, "memory_mib_used": 131_000},
            {"host_id": "full", "memory_mib_used": 131_000},
        ],
        expected_order=("ok",),
        expected_filtered={
            ("TestStateFilter", "in maintenance"): 1,
            ("TestCapacityFilter", "lack 4096 MiB free memory"): 1,
        },
    ),
    Case(
        "excluded hosts (migration source, ignore list) are removed first",
        [{"host_id": "a"}, {"host_id": "b"}, {"host_id": "c"}],
        request=PlacementRequest(vcpus=1, memory_mib=1, current_host="a", ignore_hosts=("b",)),
        expected_order=("c",),
        expected_filtered={
            ("excluded_hosts", "the VM's current host (migration source)"): 1,
            ("excluded_hosts", "host on the request's ignore list"): 1,
        },
    ),
    Case(
        "an inventory column named after a factor overrides the weigher (energy objective)",
        [
            {"host_id": "hungry", "power_idle_watts": 300.0},
            {"host_id": "frugal", "power_idle_watts": 90.0},
        ],
        objectives={"energy": 1.0},
        expected_order=("frugal", "hungry"),
    ),
    Case(
        "equal hosts rank by table row (deterministic ties)",
        [{"host_id": "z"}, {"host_id": "y"}, {"host_id": "x"}],
        expected_order=("z", "y", "x"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_select_cases(case: Case) -> None:
    table = host_table(case.hosts)
    decision = select(
        table,
        case.request,
        make_policy(),
        objectives=case.objectives,
        weight_overrides=case.overrides,
    )
    assert tuple(h.host_id for h in decision.hosts) == case.expected_order
    assert [h.rank for h in decision.hosts] == list(range(1, len(case.expected_order) + 1))
    assert {(c.filter, c.reason): c.hosts for c in decision.filtered_out} == dict(
        case.expected_filtered
    )
    assert decision.hosts_considered == len(case.hosts)
    assert decision.hosts_passed == len(case.expected_order)
    assert decision.snapshot_at_seconds == table.taken_at_seconds


def test_scores_follow_the_documented_formula() -> None:
    table = host_table(
        [
            {"host_id": "a", "memory_mib_used": 0, "failure_probability": 0.1},
            {"host_id": "b", "memory_mib_used": 65536, "failure_probability": 0.3},
            {"host_id": "c", "memory_mib_used": 131072 - 8192, "failure_probability": 0.2},
        ]
    )
    decision = select(table, SMALL, make_policy(), max_results=3)
    by_host = {h.host_id: h for h in decision.hosts}
    # free memory: a best (1), c worst (0), b in between; failure: a 1, b 0, c 0.5.
    # Weights: free memory 1 x spread 1 = 1; failure 2 x reliability 2 = 4; mass 5.
    expected_free = {"a": 1.0, "b": (65536 - 8192) / (131072 - 8192), "c": 0.0}
    expected_fail = {"a": 1.0, "b": 0.0, "c": 0.5}
    for host_id, ranked in by_host.items():
        scores = {s.factor_id: s for s in ranked.factor_scores}
        assert scores["free_memory_mib"].normalized == pytest.approx(expected_free[host_id])
        assert scores["failure_probability_24h"].normalized == pytest.approx(expected_fail[host_id])
        assert scores["failure_probability_24h"].weight == 4.0
        assert ranked.score == pytest.approx(
            (expected_free[host_id] * 1 + expected_fail[host_id] * 4) / 5
        )
        assert ranked.score == pytest.approx(sum(s.contribution for s in ranked.factor_scores))
        assert ranked.confidence == 1.0
    # the factor with weight 0 (energy is not in the default profile) is not reported
    assert decision.factor_ids == ("free_memory_mib", "failure_probability_24h")


def test_missing_data_is_neutral_and_lowers_confidence() -> None:
    table = host_table(
        [
            {"host_id": "good", "failure_probability": 0.0},
            {"host_id": "unknown", "failure_probability": NAN},
            {"host_id": "bad", "failure_probability": 0.5},
        ]
    )
    decision = select(table, SMALL, make_policy(), objectives={"reliability": 1.0})
    ranked = {h.host_id: h for h in decision.hosts}
    assert [h.host_id for h in decision.hosts] == ["good", "unknown", "bad"]
    assert ranked["unknown"].score == pytest.approx(0.5)
    assert ranked["unknown"].confidence == pytest.approx(0.0)
    assert math.isnan(ranked["unknown"].factor_scores[0].raw)
    assert ranked["good"].confidence == 1.0


def test_constant_factor_is_no_preference() -> None:
    table = host_table([{"host_id": "a"}, {"host_id": "b"}])
    decision = select(table, SMALL, make_policy(), objectives={"spread": 1.0})
    for ranked in decision.hosts:
        assert ranked.factor_scores[0].normalized == 0.5


def test_stale_and_unknown_hosts_have_lower_confidence() -> None:
    table = host_table(
        [
            {"host_id": "live"},
            {"host_id": "stale", "liveness": 1},
            {"host_id": "gone", "liveness": 2},
        ]
    )
    confidence = {h.host_id: h.confidence for h in select(table, SMALL, make_policy()).hosts}
    assert confidence == {"live": 1.0, "stale": 0.5, "gone": 0.25}


def test_pros_and_cons_name_the_value_and_its_place() -> None:
    rows = [{"host_id": f"h{i}", "failure_probability": 0.01 + i / 100} for i in range(20)]
    rows.append({"host_id": "risky", "failure_probability": 0.31, "memory_mib_used": 0})
    decision = select(host_table(rows), SMALL, make_policy(), max_results=21)
    risky = next(h for h in decision.hosts if h.host_id == "risky")
    assert "24 h failure probability 0.31 (worst of 21 candidates)" in risky.cons
    best = decision.hosts[0]
    assert best.host_id == "h0"
    assert any(p.startswith("24 h failure probability 0.01 (best of") for p in best.pros)


def test_max_results_and_top_k_equal_a_full_sort() -> None:
    rng = np.random.default_rng(7)
    rows = [
        {
            "host_id": f"h{i:03d}",
            "failure_probability": float(rng.random()),
            "memory_mib_used": float(rng.integers(0, 100_000)),
        }
        for i in range(300)
    ]
    policy = make_policy()
    top = select(host_table(rows), SMALL, policy, max_results=7)
    everything = select(host_table(rows), SMALL, policy, max_results=300)
    assert [h.host_id for h in top.hosts] == [h.host_id for h in everything.hosts[:7]]
    scores = [h.score for h in everything.hosts]
    assert scores == sorted(scores, reverse=True)


def test_no_valid_host_is_an_answer_with_reasons() -> None:
    rows = [{"host_id": f"h{i}", "zone": "az1" if i < 40 else "az2"} for i in range(50)]
    request = PlacementRequest(vcpus=1, memory_mib=1, gpus=2, zone="az1")
    decision = select(host_table(rows), request, make_policy())
    assert decision.no_valid_host
    assert decision.hosts == ()
    assert decision.no_valid_host_reasons == (
        "TestZoneFilter: 10 of 50 hosts not in zone az1",
        "TestCapacityFilter: all 40 remaining hosts lack 2 free GPUs",
    )


def test_empty_fleet() -> None:
    decision = select(host_table([]), SMALL, make_policy())
    assert decision.no_valid_host
    assert decision.no_valid_host_reasons == ("the fleet snapshot holds no hosts",)


@pytest.mark.parametrize(
    ("objectives", "overrides", "max_results", "message"),
    [
        ({"speed": 1.0}, None, 10, "unknown objective 'speed'"),
        (None, {"nope": 1.0}, 10, "unknown factor id 'nope'"),
        (None, {"free_memory_mib": NAN}, 10, "weight_overrides.free_memory_mib"),
        ({"spread": float("inf")}, None, 10, "objectives.spread"),
        (None, None, 0, "max_results"),
    ],
)
def test_invalid_requests_are_value_errors(
    objectives: Mapping[str, float] | None,
    overrides: Mapping[str, float] | None,
    max_results: int,
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        select(
            host_table([{"host_id": "a"}]),
            SMALL,
            make_policy(),
            objectives=objectives,
            weight_overrides=overrides,
            max_results=max_results,
        )


def test_policy_rejects_unknown_names_in_settings() -> None:
    filters, weighers = registries()
    with pytest.raises(ValueError, match="disabled_filters: unknown filter 'Nope'"):
        Policy.from_settings(PlacementSettings(disabled_filters=("Nope",)), filters, weighers)
    with pytest.raises(ValueError, match="weights: unknown factor id 'nope'"):
        Policy.from_settings(PlacementSettings(weights={"nope": 1.0}), filters, weighers)
    policy = Policy.from_settings(
        PlacementSettings(disabled_filters=("TestZoneFilter",), weights={"free_memory_mib": 3.0}),
        filters,
        weighers,
    )
    assert [f.name for f in policy.filters] == [
        "excluded_hosts",
        "TestStateFilter",
        "TestCapacityFilter",
    ]
    assert policy.base_weights[policy.factor_index["free_memory_mib"]] == 3.0


def test_pareto_set_is_non_dominated_over_objectives() -> None:
    rows = [
        {"host_id": "roomy-risky", "failure_probability": 0.4},
        {"host_id": "tight-safe", "memory_mib_used": 100_000, "failure_probability": 0.01},
        {"host_id": "dominated", "memory_mib_used": 110_000, "failure_probability": 0.3},
    ]
    decision = select(
        host_table(rows),
        SMALL,
        make_policy(),
        objectives={"spread": 1, "reliability": 1},
        want_pareto=True,
    )
    points = {p.host_id: dict(p.objective_scores) for p in decision.pareto}
    assert set(points) == {"roomy-risky", "tight-safe"}
    assert points["roomy-risky"] == {"spread": 1.0, "reliability": 0.0}
    assert points["tight-safe"]["reliability"] == 1.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=40))
def test_non_dominated_matches_brute_force(values: list[tuple[int, int]]) -> None:
    points = np.array(values, dtype=np.float64)
    expected = [
        not any(
            all(o >= p for o, p in zip(other, point, strict=True)) and other != point
            for other in values
        )
        for point in values
    ]
    assert _non_dominated(points).tolist() == expected
    assert PARETO_MAX_INPUT >= 1000


def test_explain_a_filtered_host_lists_every_rejecting_filter() -> None:
    rows: list[dict[str, Any]] = [
        {"host_id": "ok"},
        {"host_id": "bad", "maintenance": 1, "memory_mib_used": 131_000, "zone": "az2"},
    ]
    request = PlacementRequest(vcpus=1, memory_mib=4096, zone="")
    explanation = explain(host_table(rows), request, make_policy(), "bad")
    assert not explanation.chosen
    assert [(r.filter, r.reason) for r in explanation.filter_rejections] == [
        ("TestStateFilter", "in maintenance"),
        ("TestCapacityFilter", "lack 4096 MiB free memory"),
    ]
    assert explanation.evaluation is None
    assert explanation.winner is not None and explanation.winner.host_id == "ok"
    assert "bad was not considered" in explanation.summary


def test_explain_a_losing_host_compares_factors_with_the_winner() -> None:
    rows = [
        {"host_id": "winner", "failure_probability": 0.01},
        {"host_id": "middle", "failure_probability": 0.2},
        {"host_id": "loser", "failure_probability": 0.4, "memory_mib_used": 0},
    ]
    explanation = explain(host_table(rows), SMALL, make_policy(), "loser")
    assert not explanation.chosen
    assert explanation.evaluation is not None and explanation.evaluation.rank == 3
    deltas = [abs(c.delta) for c in explanation.comparisons]
    assert deltas == sorted(deltas, reverse=True)
    assert explanation.comparisons[0].factor_id == "failure_probability_24h"
    assert explanation.comparisons[0].delta < 0
    assert "ranks 3 of 3" in explanation.summary
    assert "24 h failure probability" in explanation.summary


def test_explain_the_winner_and_unknown_hosts() -> None:
    table = host_table([{"host_id": "a"}, {"host_id": "b", "failure_probability": 0.3}])
    explanation = explain(table, SMALL, make_policy(), "a")
    assert explanation.chosen and explanation.comparisons == ()
    assert explanation.evaluation == explanation.winner
    with pytest.raises(UnknownHost):
        explain(table, SMALL, make_policy(), "nope")


def test_explain_agrees_with_select_on_rank() -> None:
    rng = np.random.default_rng(3)
    rows = [{"host_id": f"h{i}", "failure_probability": float(rng.random() / 2)} for i in range(30)]
    table = host_table(rows)
    decision = select(table, SMALL, make_policy(), max_results=30)
    for ranked in decision.hosts[:5]:
        evaluation = explain(table, SMALL, make_policy(), ranked.host_id).evaluation
        assert evaluation is not None
        assert evaluation.rank == ranked.rank
        assert evaluation.score == pytest.approx(ranked.score)


# ---------------------------------------------------------------------- real plugins


@functools.cache
def _real_fleet() -> tuple[HostTable, Policy]:
    settings = PlacementSettings()
    return synthetic_hosts(300, seed=11, settings=settings), Policy.from_settings(settings)


@settings(max_examples=40, deadline=None)
@given(
    vcpus=st.integers(1, 64),
    memory_gib=st.integers(1, 512),
    gpus=st.integers(0, 4),
    zone=st.sampled_from(["", "az1", "az2", "az3", "nowhere"]),
    anti_affine_to=st.lists(st.integers(0, 299), max_size=5),
    ignore=st.lists(st.integers(0, 299), max_size=5),
)
def test_returned_hosts_satisfy_every_hard_constraint(
    vcpus: int,
    memory_gib: int,
    gpus: int,
    zone: str,
    anti_affine_to: list[int],
    ignore: list[int],
) -> None:
    hosts, policy = _real_fleet()
    ids = [str(h) for h in hosts.host_ids]
    group = ServerGroup(
        "g", GroupPolicy.ANTI_AFFINITY, member_hosts=tuple(ids[i] for i in anti_affine_to)
    )
    request = PlacementRequest(
        vcpus=vcpus,
        memory_mib=memory_gib * 1024,
        gpus=gpus,
        zone=zone,
        server_group=group,
        ignore_hosts=tuple(ids[i] for i in ignore),
    )
    decision = select(hosts, request, policy, max_results=20)
    s = policy.settings
    for ranked in decision.hosts:
        row = ranked.row
        # every registered filter accepts it ...
        assert filter_rejections(hosts, request, policy, row) == ()
        # ... and, checked here independently, the request's own hard constraints hold
        assert hosts.free("vcpus", s.cpu_allocation_ratio)[row] >= vcpus
        assert hosts.free("memory_mib", s.ram_allocation_ratio)[row] >= memory_gib * 1024
        assert hosts.free("gpus")[row] >= gpus
        assert not zone or hosts.texts["zone"][row] == zone
        assert ranked.host_id not in group.member_hosts
        assert ranked.host_id not in request.ignore_hosts
        assert hosts.numbers["maintenance"][row] == 0 and hosts.numbers["cordoned"][row] == 0
        assert hosts.numbers["liveness"][row] == 0  # stale and unknown hosts are filtered
    assert decision.hosts_passed >= len(decision.hosts)
    if zone == "nowhere":
        assert decision.no_valid_host and decision.no_valid_host_reasons
