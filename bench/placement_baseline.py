"""The placement benchmark's baseline: the same filters and weighers, one host at a time.

This is the shape of Nova's FilterScheduler: a HostState per host (here a one-row
:class:`HostTable` view, built once per fleet outside the timing, as Nova keeps its
host-state cache), and per request a Python loop over the hosts asking every filter
whether the host passes, then per host and factor the raw value, then per factor a
min-max normalisation over the passing hosts and a weighted sum, all in plain Python,
then a sort. The rules themselves are the production plugins evaluated on the one-row
view, so the baseline cannot drift from them; what differs from :mod:`.engine` is only
the per-host loop, which is what the ratio measures.

Some factors describe a host through the others (rack and zone aggregates, group
counts, ranks): one host's row cannot compute them. Nova hands its weighers the whole
host list for those; so does the baseline: such factors (found once per fleet by
comparing the one-row value with the fleet-wide value on sample hosts, outside the
timing) are computed by the plugin over the whole fleet once per request, inside the
timing.

Kept in ``bench/`` only: it exists for the ratio and for the check that it ranks hosts
exactly like the engine (:func:`assert_same_ranking`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

import numpy as np

from novacron.coordinator.placement.engine import Decision, Policy
from novacron.coordinator.placement.hosts import FlagMatrix, HostTable
from novacron.coordinator.placement.request import PlacementRequest

SAMPLE_HOSTS = 24  # hosts compared when deciding which factors need the whole fleet
SCORE_TOLERANCE = 1e-9  # sums in another order differ in the last bits; closer = a tie


def row_view(hosts: HostTable, row: int) -> HostTable:
    """Host ``row`` alone as a one-row table (every column sliced, nothing shared)."""
    keep = slice(row, row + 1)
    return replace(
        hosts,
        host_ids=hosts.host_ids[keep].copy(),
        numbers=MappingProxyType({k: v[keep].copy() for k, v in hosts.numbers.items()}),
        texts=MappingProxyType({k: v[keep].copy() for k, v in hosts.texts.items()}),
        flags=MappingProxyType(
            {k: FlagMatrix(v.vocabulary, v.matrix[keep].copy()) for k, v in hosts.flags.items()}
        ),
        labels=MappingProxyType({k: v[keep].copy() for k, v in hosts.labels.items()}),
        numa_free_vcpus=hosts.numa_free_vcpus[keep].copy(),
        numa_free_memory_mib=hosts.numa_free_memory_mib[keep].copy(),
        features=hosts.features[keep].copy(),
        group_members=MappingProxyType({k: v[keep].copy() for k, v in hosts.group_members.items()}),
    )


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


@dataclass(frozen=True)
class BaselineFleet:
    """One fleet prepared for the per-host loop: the views and the fleet-wide factors."""

    hosts: HostTable
    views: tuple[HostTable, ...]
    fleet_wide: frozenset[str]  # factor ids needing the whole fleet


def prepare(
    hosts: HostTable, policy: Policy, requests: Sequence[PlacementRequest]
) -> BaselineFleet:
    """Build the per-host views and find the fleet-wide factors (outside any timing)."""
    views = tuple(row_view(hosts, row) for row in range(len(hosts)))
    sample = np.linspace(0, len(hosts) - 1, min(SAMPLE_HOSTS, len(hosts))).astype(int).tolist()
    fleet_wide: set[str] = set()
    for request in requests:
        for weigher in policy.weighers:
            whole = weigher.raw(hosts, request)
            for row in sample:
                alone = weigher.raw(views[row], request)
                for factor in weigher.factors:
                    key = factor.factor_id
                    if not _same(float(whole[key][row]), float(alone[key][0])):
                        fleet_wide.add(key)
    return BaselineFleet(hosts, views, frozenset(fleet_wide))


@dataclass(frozen=True)
class BaselineHost:
    host_id: str
    row: int
    score: float


def select_baseline(
    fleet: BaselineFleet,
    request: PlacementRequest,
    policy: Policy,
    *,
    objectives: Mapping[str, float] | None = None,
    max_results: int = 10,
) -> list[BaselineHost]:
    """Rank hosts for ``request`` with a Python loop per host (see the module docstring)."""
    hosts, views = fleet.hosts, fleet.views
    excluded = request.excluded_hosts
    passing: list[int] = []
    for row, view in enumerate(views):  # host_passes, per host, per filter
        if str(view.host_ids[0]) in excluded:
            continue
        if all(not any(bool(r.hosts[0]) for r in f.reject(view, request)) for f in policy.filters):
            passing.append(row)
    if not passing:
        return []
    all_weights, _ = policy.weights(objectives, None)
    active = [i for i, weight in enumerate(all_weights.tolist()) if weight != 0.0]
    wanted = {policy.factors[i].factor_id for i in active}
    raw: dict[str, list[float]] = {policy.factors[i].factor_id: [] for i in active}
    for weigher in policy.weighers:
        ids = [f.factor_id for f in weigher.factors if f.factor_id in wanted]
        if not ids:
            continue
        context_ids = [f for f in ids if f in fleet.fleet_wide and f not in hosts.numbers]
        whole = weigher.raw(hosts, request) if context_ids else {}
        local_ids = [f for f in ids if f not in fleet.fleet_wide and f not in hosts.numbers]
        for row in passing:
            values = weigher.raw(views[row], request) if local_ids else {}
            for factor_id in ids:
                if factor_id in hosts.numbers:  # a table column overrides the weigher
                    raw[factor_id].append(float(hosts.numbers[factor_id][row]))
                elif factor_id in fleet.fleet_wide:
                    raw[factor_id].append(float(whole[factor_id][row]))
                else:
                    raw[factor_id].append(float(values[factor_id][0]))
    mass = sum(abs(float(all_weights[i])) for i in active)
    scores = [0.0] * len(passing)
    for i in active:
        factor = policy.factors[i]
        weight = float(all_weights[i]) / mass
        column = raw[factor.factor_id]
        measured = [v for v in column if not math.isnan(v)]
        low = min(measured) if measured else math.nan
        high = max(measured) if measured else math.nan
        for k, value in enumerate(column):
            if math.isnan(value) or not high > low:
                normalized = 0.5
            else:
                normalized = (value - low) / (high - low)
                if not factor.higher_is_better:
                    normalized = 1.0 - normalized
            scores[k] += weight * normalized
    ranked = sorted(range(len(passing)), key=lambda k: (-scores[k], passing[k]))
    return [
        BaselineHost(str(hosts.host_ids[passing[k]]), passing[k], scores[k])
        for k in ranked[:max_results]
    ]


def assert_same_ranking(decision: Decision, baseline: Sequence[BaselineHost]) -> None:
    """The engine and the baseline return the same hosts in the same order (hosts whose
    scores tie within :data:`SCORE_TOLERANCE` may swap)."""
    engine = [(h.host_id, h.score) for h in decision.hosts]
    loop = [(h.host_id, h.score) for h in baseline]
    assert len(engine) == len(loop), f"engine returned {len(engine)} hosts, baseline {len(loop)}"
    for (engine_id, engine_score), (loop_id, loop_score) in zip(engine, loop, strict=True):
        assert abs(engine_score - loop_score) <= SCORE_TOLERANCE, (
            f"rank mismatch: engine {engine_id} {engine_score:.12f}, "
            f"baseline {loop_id} {loop_score:.12f}"
        )
