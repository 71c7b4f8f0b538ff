"""The placement engine: filters as masks, factors as one matrix, a weighted sum, top-k.

Pure functions of (:class:`HostTable`, :class:`PlacementRequest`, :class:`Policy`): no
I/O, no clock except a perf counter for ``analysis_seconds``, so ``SelectHosts``, the
what-if simulator, evacuation and consolidation share this one code path.

**Filters.** Every enabled filter in pipeline order (the request's own exclusions,
migration source and ignore list, are the first filter), each a boolean mask over all
rows. A host
is counted under the first filter (and that filter's first reason) that rejects it.
Once no host is left, later filters are skipped by :func:`select` (they cannot change
the counts); :func:`explain` runs them all, to list every reason a named host fails.

**Factors.** Every weigher that owns a factor with a non-zero effective weight computes
raw values over all rows; a factor whose id is also a numeric column of the table (an
inventory file, ``HOSTS.csv``) takes that column instead. The candidates' raw values
form one (factors x candidates) matrix. Per factor (row) over the candidates:

* min-max normalisation to 0..1, then the direction (``higher_is_better``; otherwise
  ``1 - x``): 1 is the most favourable candidate;
* a constant row (every candidate equal, or one candidate) carries no preference and
  normalises to 0.5 for everyone, so it shifts all scores equally and never reorders;
* NaN (not measured on that host) normalises to a neutral 0.5 and lowers the host's
  confidence.

**Weights.** ``weight = weight_overrides[id]`` else ``settings.weights[id]`` else
``factor.default_weight``, times the objective weight of ``factor.objective`` from the
request's objectives (else the configured profile). "pack" is spread inverted: a spread
factor's objective weight is ``spread - pack``. An objective missing from the profile
weighs 0, so its factors are off. Factors with an effective weight of 0 are not
computed and not reported. ``contribution = normalized * weight / sum(|weights|)`` and
``score = sum(contributions)``, in -1..1.

**Confidence** = (share of the |weight| mass that was measured on the host) x
freshness, where freshness is 1.0 for a live host, 0.5 for a stale one and 0.25 for an
unknown one (``liveness`` codes of :mod:`.hosts`; a host never seen is unknown).

**Ranking** uses ``np.argpartition`` for the top k, then orders those by score (ties by
table row, so results are deterministic). Per-factor scores, pros and cons are built
only for the returned hosts.

**Pareto set** (on request): per objective with a non-zero weight, the objective score
is the |weight|-weighted mean of its factors' favourable values (``normalized``, or
``1 - normalized`` for a negative weight). The input is capped to the
:data:`PARETO_MAX_INPUT` best candidates by combined score, so the dominance test
(vectorised, O(n^2 m)) stays within a few milliseconds; a candidate outside that cap is
dominated on the combined score by a thousand others and is rarely Pareto-optimal.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from novacron.coordinator.placement.factors import Factor
from novacron.coordinator.placement.filters import FILTERS, Filter
from novacron.coordinator.placement.hosts import BoolArray, FloatArray, HostTable
from novacron.coordinator.placement.registry import Registry
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.settings import OBJECTIVES, PlacementSettings
from novacron.coordinator.placement.weighers import WEIGHERS, Weigher

IntArray = npt.NDArray[np.intp]

#: Most candidates (best by combined score) the Pareto dominance test looks at.
PARETO_MAX_INPUT = 1000
#: Most pros and most cons per returned host.
MAX_PROS_CONS = 3
#: A factor's contribution must differ from the candidates' mean by this much (score
#: units) to be worth a pro or con; smaller differences are noise to a reader.
PRO_CON_MIN_DELTA = 0.002
#: Confidence multiplier by liveness code (0 live, 1 stale, 2 unknown; NaN = unknown).
FRESHNESS = (1.0, 0.5, 0.25)
# Units printed without a unit word (the number speaks for itself).
_DIMENSIONLESS_UNITS = frozenset({"", "probability", "ratio", "score", "fraction", "bool"})
_UNIT_TEXT = {"mib": "MiB", "gib": "GiB", "celsius": "°C", "percent": "%", "seconds": "s"}


# ---------------------------------------------------------------------- results


class FactorScore(NamedTuple):
    """One factor's part in a host's score (see the module docstring for the formulas).

    A NamedTuple rather than a dataclass: a response builds one per factor per returned
    host (over a thousand per call), and tuples are several times cheaper to create.
    """

    factor_id: str
    raw: float  # in the factor's unit; NaN = not measured
    normalized: float  # 0..1 across the candidates, 1 = most favourable
    weight: float  # effective weight (override/config/default x objective weight)
    contribution: float  # normalized * weight / sum(|weights|)


@dataclass(frozen=True)
class RankedHost:
    host_id: str
    row: int  # row in the HostTable decided over
    rank: int  # 1 = best
    score: float  # sum of contributions, -1..1
    confidence: float  # 0..1
    factor_scores: tuple[FactorScore, ...]
    pros: tuple[str, ...]
    cons: tuple[str, ...]


@dataclass(frozen=True)
class FilterCount:
    """Hosts one filter removed for one reason (each host counted once, at its first)."""

    filter: str
    reason: str
    hosts: int


@dataclass(frozen=True)
class ParetoPoint:
    host_id: str
    objective_scores: Mapping[str, float]  # objective -> 0..1


@dataclass(frozen=True)
class Decision:
    hosts: tuple[RankedHost, ...]  # best first
    filtered_out: tuple[FilterCount, ...]  # pipeline order
    no_valid_host_reasons: tuple[str, ...]
    pareto: tuple[ParetoPoint, ...]
    hosts_considered: int
    hosts_passed: int
    analysis_seconds: float
    snapshot_at_seconds: float
    factor_ids: tuple[str, ...] = ()  # the factors that carried weight, in policy order
    weights: tuple[float, ...] = ()  # their effective weights
    objectives: Mapping[str, float] = field(default_factory=dict)  # the profile used

    @property
    def no_valid_host(self) -> bool:
        return self.hosts_passed == 0


@dataclass(frozen=True)
class FilterRejection:
    filter: str
    reason: str


@dataclass(frozen=True)
class FactorComparison:
    factor_id: str
    host_contribution: float
    winner_contribution: float
    delta: float  # host - winner; negative: the host lost on this factor


@dataclass(frozen=True)
class Explanation:
    host_id: str
    chosen: bool
    filter_rejections: tuple[FilterRejection, ...]  # every rejecting filter, pipeline order
    evaluation: RankedHost | None  # the host's score when it passed
    winner: RankedHost | None  # unset when no host passed
    comparisons: tuple[FactorComparison, ...]  # largest |delta| first
    summary: str


class UnknownHost(LookupError):
    """The named host is not in the host table."""


# ---------------------------------------------------------------------- policy


@dataclass(frozen=True, eq=False)
class Policy:
    """Enabled filters and weighers, instantiated once, and the factor vectors they imply.

    Everything per-factor the engine needs on each call (order, default weights,
    directions, objectives) is precomputed here as arrays, so a decision costs a few
    numpy passes rather than a Python loop per factor.
    """

    settings: PlacementSettings
    filters: tuple[Filter, ...]  # pipeline order
    weighers: tuple[Weigher, ...]
    factors: tuple[Factor, ...]  # every factor of the enabled weighers, catalogue order
    factor_index: Mapping[str, int] = field(init=False)
    base_weights: FloatArray = field(init=False)  # config weight else default, per factor
    higher_is_better: BoolArray = field(init=False)
    objective_of: tuple[str, ...] = field(init=False)
    # Per weigher, the indices of its factors in ``factors``.
    weigher_factors: tuple[IntArray, ...] = field(init=False)

    def __post_init__(self) -> None:
        index: dict[str, int] = {}
        for i, factor in enumerate(self.factors):
            if factor.factor_id in index:
                raise ValueError(f"factor {factor.factor_id!r} is owned by two weighers")
            index[factor.factor_id] = i
        unknown = sorted(set(self.settings.weights) - set(index))
        if unknown:
            raise ValueError(f"weights: unknown factor id {unknown[0]!r}")
        base = np.array(
            [self.settings.weights.get(f.factor_id, f.default_weight) for f in self.factors],
            dtype=np.float64,
        )
        base.setflags(write=False)
        direction = np.array([f.higher_is_better for f in self.factors], dtype=np.bool_)
        direction.setflags(write=False)
        per_weigher = tuple(
            np.array([index[f.factor_id] for f in weigher.factors], dtype=np.intp)
            for weigher in self.weighers
        )
        object.__setattr__(self, "factor_index", MappingProxyType(index))
        object.__setattr__(self, "base_weights", base)
        object.__setattr__(self, "higher_is_better", direction)
        object.__setattr__(self, "objective_of", tuple(f.objective for f in self.factors))
        object.__setattr__(self, "weigher_factors", per_weigher)

    @classmethod
    def from_settings(
        cls,
        settings: PlacementSettings,
        filters: Registry[Filter] = FILTERS,
        weighers: Registry[Weigher] = WEIGHERS,
    ) -> Policy:
        """Instantiate every enabled plugin; unknown names in the settings are ValueErrors."""
        for key, registry, names in (
            ("disabled_filters", filters, settings.disabled_filters),
            ("disabled_weighers", weighers, settings.disabled_weighers),
        ):
            unknown = [name for name in names if name not in registry]
            if unknown:
                known = ", ".join(registry.names()) or "none registered"
                raise ValueError(f"{key}: unknown {registry.kind} {unknown[0]!r} (known: {known})")
        active_filters = tuple(
            info.plugin(settings)
            for info in filters
            if info.default_enabled and info.name not in settings.disabled_filters
        )
        active_weighers = tuple(
            info.plugin(settings)
            for info in weighers
            if info.default_enabled and info.name not in settings.disabled_weighers
        )
        factors = tuple(factor for weigher in active_weighers for factor in weigher.factors)
        return cls(settings, active_filters, active_weighers, factors)

    def factor(self, factor_id: str) -> Factor:
        return self.factors[self.factor_index[factor_id]]

    def weights(
        self,
        objectives: Mapping[str, float] | None = None,
        weight_overrides: Mapping[str, float] | None = None,
    ) -> tuple[FloatArray, Mapping[str, float]]:
        """Effective weight per factor and the objective profile used.

        ValueError (the caller's INVALID_ARGUMENT) for an unknown objective or factor id
        or a non-finite number.
        """
        profile = dict(objectives if objectives else self.settings.objectives)
        for name, value in profile.items():
            if name not in OBJECTIVES:
                raise ValueError(
                    f"objectives: unknown objective {name!r} (known: {', '.join(OBJECTIVES)})"
                )
            if not math.isfinite(value):
                raise ValueError(f"objectives.{name}: expected a finite number, got {value!r}")
        weights = self.base_weights.copy()
        for factor_id, value in (weight_overrides or {}).items():
            position = self.factor_index.get(factor_id)
            if position is None:
                raise ValueError(f"weight_overrides: unknown factor id {factor_id!r}")
            if not math.isfinite(value):
                raise ValueError(
                    f"weight_overrides.{factor_id}: expected a finite number, got {value!r}"
                )
            weights[position] = value
        scale = {name: _objective_weight(profile, name) for name in set(self.objective_of)}
        weights *= np.array([scale[name] for name in self.objective_of], dtype=np.float64)
        return weights, MappingProxyType(profile)


def _objective_weight(profile: Mapping[str, float], objective: str) -> float:
    """How much ``objective`` counts; spread and pack are one axis with opposite signs."""
    if objective == "spread":
        return profile.get("spread", 0.0) - profile.get("pack", 0.0)
    if objective == "pack":
        return profile.get("pack", 0.0) - profile.get("spread", 0.0)
    return profile.get(objective, 0.0)


# ---------------------------------------------------------------------- filtering


@dataclass(frozen=True)
class _Filtered:
    passed: BoolArray
    counts: tuple[FilterCount, ...]
    remaining_before: tuple[int, ...]  # hosts left before each count's filter ran


def _run_filters(hosts: HostTable, request: PlacementRequest, policy: Policy) -> _Filtered:
    alive = np.ones(len(hosts), dtype=np.bool_)
    counts: list[FilterCount] = []
    before: list[int] = []
    for plugin in policy.filters:
        if not alive.any():
            break
        remaining = int(alive.sum())
        for rejection in plugin.reject(hosts, request):
            removed = rejection.hosts & alive
            count = int(removed.sum())
            if count:
                counts.append(FilterCount(plugin.name, rejection.reason, count))
                before.append(remaining)
                alive &= ~removed
    return _Filtered(alive, tuple(counts), tuple(before))


def _no_valid_host_reasons(filtered: _Filtered, total: int) -> tuple[str, ...]:
    """Plain sentences, pipeline order, e.g. "GpuFilter: all 40 remaining hosts: ..."."""
    if total == 0:
        return ("the fleet snapshot holds no hosts",)
    by_filter: dict[str, list[tuple[FilterCount, int]]] = {}
    for count, before in zip(filtered.counts, filtered.remaining_before, strict=True):
        by_filter.setdefault(count.filter, []).append((count, before))
    sentences = []
    for name, entries in by_filter.items():
        entries.sort(key=lambda entry: -entry[0].hosts)
        parts = []
        for count, before in entries[:3]:
            hosts = "hosts" if before == total else "remaining hosts"
            if count.hosts == before:
                parts.append(f"all {before} {hosts} {count.reason}")
            else:
                parts.append(f"{count.hosts} of {before} {hosts} {count.reason}")
        sentences.append(f"{name}: " + "; ".join(parts))
    return tuple(sentences)


# ---------------------------------------------------------------------- scoring


@dataclass(frozen=True, eq=False)
class _Scoring:
    """Everything about the candidates needed to rank them and to explain any of them."""

    candidates: IntArray  # table rows
    factor_positions: IntArray  # positions in policy.factors with a non-zero weight
    weights: FloatArray  # effective weights of those factors
    norm_weights: FloatArray  # weights / sum|weights|
    # (active factors, candidates) raw values with each missing cell replaced by its
    # factor's ``fill`` (so matrix products work); ``missing`` says where.
    filled: FloatArray
    missing: BoolArray
    fill: FloatArray  # per factor: the highest measured value (0 when none)
    missing_count: FloatArray  # per factor, over the candidates
    low: FloatArray  # per factor over the candidates (NaN when none measured)
    span: FloatArray  # high - low; 0 or NaN: no preference (0.5)
    higher_is_better: BoolArray
    mean_normalized: FloatArray  # per factor, across the candidates
    scores: FloatArray  # per candidate
    confidence: FloatArray  # per candidate
    objectives: Mapping[str, float]

    def normalized(self, columns: IntArray) -> FloatArray:
        """(active factors, selected candidates) normalised values, missing -> 0.5."""
        varies = (self.span > 0)[:, None]
        safe_span = np.where(self.span > 0, self.span, 1.0)[:, None]
        # (raw - low) / span rather than raw * scale + offset: the ends are exactly 0 and 1.
        values = (self.filled[:, columns] - np.nan_to_num(self.low)[:, None]) / safe_span
        values = np.where(self.higher_is_better[:, None], values, 1.0 - values)
        values = np.where(varies & ~self.missing[:, columns], values, 0.5)
        return np.asarray(values, dtype=np.float64)


def _raw_matrix(
    hosts: HostTable,
    request: PlacementRequest,
    policy: Policy,
    positions: IntArray,
    candidates: IntArray,
) -> FloatArray:
    """(len(positions), len(candidates)) raw values; table columns win over weighers.

    Gathered row by row into one preallocated matrix with ``take(mode="clip")``: the
    candidates come from ``flatnonzero`` and are always in range, and the clip mode
    skips numpy's bounds-checked, buffered path (about half the cost at 10k hosts).
    """
    wanted = set(positions.tolist())
    columns: dict[int, FloatArray] = {}
    for weigher, owned in zip(policy.weighers, policy.weigher_factors, strict=True):
        needed = [p for p in owned.tolist() if p in wanted]
        for p in needed:
            column = hosts.numbers.get(policy.factors[p].factor_id)
            if column is not None:
                columns[p] = column
        computed = [p for p in needed if p not in columns]
        if not computed:
            continue
        values = weigher.raw(hosts, request)
        for p in computed:
            factor_id = policy.factors[p].factor_id
            try:
                columns[p] = values[factor_id]
            except KeyError:
                raise RuntimeError(
                    f"weigher {weigher.name} returned no values for its factor {factor_id!r}"
                ) from None
    out = np.empty((len(positions), len(candidates)), dtype=np.float64)
    everyone = len(candidates) == len(hosts)  # candidates are sorted rows: all of them
    for i, p in enumerate(positions.tolist()):
        if everyone:
            out[i] = columns[p]
        else:
            np.take(columns[p], candidates, out=out[i], mode="clip")
    return out


def _score(
    hosts: HostTable,
    request: PlacementRequest,
    policy: Policy,
    candidates: IntArray,
    *,
    objectives: Mapping[str, float] | None,
    weight_overrides: Mapping[str, float] | None,
) -> _Scoring:
    """Normalise and sum the (factors x candidates) matrix in a few whole-matrix passes.

    No BLAS: the two reductions over the matrix are ``np.einsum`` (numpy's own
    single-threaded loops), not ``@``. At these shapes (about 100 x 10k) a BLAS
    matrix-vector product is at best 0.1 ms faster, and OpenBLAS starts a thread per
    core for it: on a busy host those threads spin against each other and the
    coordinator's own threads, and a 10 ms decision took over 100 ms. Keeping BLAS out of
    the engine makes its latency independent of the process's BLAS settings, so nothing
    has to limit BLAS threads for the rest of the coordinator (model training wants them).

    Missing (NaN) cells are sparse in practice (a telemetry gap on a few hosts), so they
    are handled as index lists: each takes its factor's ``fill`` value, and per candidate
    the score correction and the unmeasured |weight| mass are ``bincount`` sums over its
    missing cells, exact in float64.
    """
    all_weights, profile = policy.weights(objectives, weight_overrides)
    positions = np.flatnonzero(all_weights != 0.0)
    weights = all_weights[positions]
    mass = float(np.abs(weights).sum())
    norm_weights = weights / mass if mass > 0 else weights
    raw = _raw_matrix(hosts, request, policy, positions, candidates)
    factor_count, count = raw.shape

    missing = np.isnan(raw)
    if factor_count and count:
        low = np.fmin.reduce(raw, axis=1)  # fmin/fmax skip NaN; all-NaN rows give NaN
        high = np.fmax.reduce(raw, axis=1)
    else:
        low = high = np.zeros(factor_count)
    span = high - low
    varies = span > 0  # False for constant rows and all-NaN rows (NaN > 0 is False)
    safe_span = np.where(varies, span, 1.0)
    up = policy.higher_is_better[positions]
    scale = np.where(varies, np.where(up, 1.0, -1.0) / safe_span, 0.0)
    offset = np.where(varies, np.where(up, -low, high) / safe_span, 0.5)
    # Missing cells take the row's highest value, so no NaN poisons the sums below.
    fill = np.where(np.isnan(high), 0.0, high)
    filled = raw
    # score = sum_f w_f * (scale_f * raw + offset_f) over measured cells + 0.5 w_f over
    # missing ones; the missing cells' fill value is taken back out by the correction.
    correction = np.zeros(count)
    unmeasured = np.zeros(count)  # share of the |weight| mass not measured
    missing_count = np.zeros(factor_count)
    holed = np.flatnonzero(missing.any(axis=1))
    if len(holed):
        # (2-D ``np.nonzero`` is ten times slower than this on a 100 x 10k matrix.)
        cell, column_of = np.divmod(np.flatnonzero(missing[holed]), count)
        factor_of = holed[cell]
        filled[factor_of, column_of] = fill[factor_of]
        at_fill = scale * fill + offset
        correction = _sums_by(column_of, (norm_weights * (0.5 - at_fill))[factor_of], count)
        unmeasured = _sums_by(column_of, np.abs(norm_weights)[factor_of], count)
        missing_count = np.bincount(factor_of, minlength=factor_count).astype(np.float64)
    scores = (
        np.einsum("f,fc->c", norm_weights * scale, filled)
        + float((norm_weights * offset).sum())
        + correction
    )
    measured_share = 1.0 - unmeasured if mass > 0 else np.ones(count)
    liveness = hosts.numbers["liveness"][candidates]
    codes = np.clip(np.where(np.isnan(liveness), 2, liveness), 0, 2).astype(np.intp)
    confidence = np.clip(measured_share, 0.0, 1.0) * np.asarray(FRESHNESS)[codes]

    measured_count = count - missing_count
    measured_sum = np.einsum("fc->f", filled) - fill * missing_count
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_measured = measured_sum / measured_count
    mean_normalized = (
        np.where(measured_count > 0, mean_measured * scale + offset, 0.5) * measured_count
        + 0.5 * missing_count
    ) / max(count, 1)
    return _Scoring(
        candidates=candidates,
        factor_positions=positions,
        weights=weights,
        norm_weights=norm_weights,
        filled=filled,
        missing=missing,
        fill=fill,
        missing_count=missing_count,
        low=low,
        span=span,
        higher_is_better=up,
        mean_normalized=mean_normalized,
        scores=np.asarray(scores, dtype=np.float64).reshape(count),
        confidence=np.asarray(confidence, dtype=np.float64).reshape(count),
        objectives=profile,
    )


def _sums_by(index: IntArray, weights: FloatArray, length: int) -> FloatArray:
    """Per position ``0..length-1``, the sum of the ``weights`` at that ``index``."""
    return np.asarray(np.bincount(index, weights, minlength=length), dtype=np.float64)


def _order(scoring: _Scoring, limit: int) -> IntArray:
    """Candidate columns of the best ``limit`` candidates, best first (ties: table row)."""
    count = len(scoring.candidates)
    limit = min(limit, count)
    if limit <= 0:
        return np.empty(0, dtype=np.intp)
    negative = -scoring.scores
    if limit < count:
        # Everything tied with the k-th score is kept so that the row tie-break is exact.
        kth = np.partition(negative, limit - 1)[limit - 1]
        top = np.flatnonzero(negative <= kth)
    else:
        top = np.arange(count)
    ordered = top[np.lexsort((scoring.candidates[top], negative[top]))]
    return ordered[:limit]


# ---------------------------------------------------------------------- ranked hosts


def _ranked(
    hosts: HostTable, policy: Policy, scoring: _Scoring, columns: IntArray, ranks: Sequence[int]
) -> tuple[RankedHost, ...]:
    """The returned hosts with their factor scores, pros and cons.

    Everything per host is read from a few (factors x returned hosts) arrays turned into
    Python lists once; the factor scores are built by ``tuple.__new__`` over ``zip``
    (C loops, no Python ``__new__`` per factor: a response holds ~1000 of them).
    """
    if not len(columns):
        return ()
    normalized = scoring.normalized(columns)
    contributions = normalized * scoring.norm_weights[:, None]
    deltas = (contributions - (scoring.mean_normalized * scoring.norm_weights)[:, None]).T
    orders = np.argsort(deltas, axis=1).tolist()
    missing = scoring.missing[:, columns].T.tolist()
    raws = np.where(scoring.missing[:, columns], np.nan, scoring.filled[:, columns]).T.tolist()
    factor_ids = [policy.factors[p].factor_id for p in scoring.factor_positions.tolist()]
    weights = scoring.weights.tolist()
    new = tuple.__new__
    result = []
    for j, (column, rank) in enumerate(zip(columns.tolist(), ranks, strict=True)):
        scores = tuple(
            map(
                new,
                repeat(FactorScore),
                zip(
                    factor_ids,
                    raws[j],
                    normalized[:, j].tolist(),
                    weights,
                    contributions[:, j].tolist(),
                    strict=True,
                ),
            )
        )
        pros, cons = _pros_cons(
            policy, scoring, column, delta=deltas[j].tolist(), order=orders[j], missing=missing[j]
        )
        row = int(scoring.candidates[column])
        result.append(
            RankedHost(
                host_id=str(hosts.host_ids[row]),
                row=row,
                rank=rank,
                score=float(scoring.scores[column]),
                confidence=float(scoring.confidence[column]),
                factor_scores=scores,
                pros=pros,
                cons=cons,
            )
        )
    return tuple(result)


def _pros_cons(
    policy: Policy,
    scoring: _Scoring,
    column: int,
    *,
    delta: Sequence[float],
    order: Sequence[int],
    missing: Sequence[bool],
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Largest contributions above / below the candidates' mean, in plain words.

    ``order`` sorts the factors by ``delta`` (contribution minus the candidates' mean);
    ``missing`` says which factors were not measured on the host.
    """
    pros: list[str] = []
    for i in order[::-1][: MAX_PROS_CONS * 2]:
        if delta[i] < PRO_CON_MIN_DELTA or len(pros) == MAX_PROS_CONS:
            break
        if not missing[i]:
            pros.append(_describe(policy, scoring, i, column))
    cons: list[str] = []
    for i in order[: MAX_PROS_CONS * 2]:
        if delta[i] > -PRO_CON_MIN_DELTA or len(cons) == MAX_PROS_CONS:
            break
        cons.append(_describe(policy, scoring, i, column))
    return tuple(pros), tuple(cons)


def _describe(policy: Policy, scoring: _Scoring, i: int, column: int) -> str:
    """E.g. "24 h failure probability 0.31 (worst 10% of candidates)"."""
    factor = policy.factors[int(scoring.factor_positions[i])]
    if scoring.missing[i, column]:
        return f"{factor.name}: no data on this host"
    value = float(scoring.filled[i, column])
    text = f"{factor.name} {_format_value(value, factor.unit)}"
    measured = len(scoring.candidates) - int(scoring.missing_count[i])
    if measured < 2 or not scoring.span[i] > 0:
        return text
    row = scoring.filled[i]
    fill = float(scoring.fill[i])
    missing = int(scoring.missing_count[i])
    # Missing cells hold ``fill`` (the row's highest value): take them back out of the counts.
    above = int(np.count_nonzero(row > value)) - (missing if fill > value else 0)
    below = int(np.count_nonzero(row < value)) - (missing if fill < value else 0)
    # The favourable end includes the weight's sign: a negative weight prefers the other.
    favourable_high = bool(factor.higher_is_better) == bool(scoring.weights[i] > 0)
    better, worse = (above, below) if favourable_high else (below, above)
    if better == 0:
        return f"{text} (best of {measured} candidates)"
    if worse == 0:
        return f"{text} (worst of {measured} candidates)"
    if (better + 1) / measured <= 0.1:
        return f"{text} (best {math.ceil(100 * (better + 1) / measured)}% of candidates)"
    if (worse + 1) / measured <= 0.1:
        return f"{text} (worst {math.ceil(100 * (worse + 1) / measured)}% of candidates)"
    return f"{text} (better than {round(100 * worse / measured)}% of candidates)"


def _format_value(value: float, unit: str) -> str:
    if value == int(value) and abs(value) < 1e15:
        number = str(int(value))
    elif abs(value) >= 100:
        number = f"{value:.0f}"
    elif abs(value) >= 1:
        number = f"{value:.2f}".rstrip("0").rstrip(".")
    else:
        number = f"{value:.3g}"
    if unit.lower() in _DIMENSIONLESS_UNITS:
        return number
    return f"{number} {_UNIT_TEXT.get(unit.lower(), unit)}"


# ---------------------------------------------------------------------- pareto


def _pareto(hosts: HostTable, policy: Policy, scoring: _Scoring) -> tuple[ParetoPoint, ...]:
    objective_names = [
        name
        for name in OBJECTIVES
        if scoring.objectives.get(name, 0.0) > 0
        and any(
            policy.objective_of[p] in _objective_axis(name)
            for p in scoring.factor_positions.tolist()
        )
    ]
    if not objective_names or not len(scoring.candidates):
        return ()
    columns = _order(scoring, PARETO_MAX_INPUT)
    normalized = scoring.normalized(columns)
    favourable = np.where(scoring.weights[:, None] >= 0, normalized, 1.0 - normalized)
    objective_of = [policy.objective_of[p] for p in scoring.factor_positions.tolist()]
    points = np.empty((len(columns), len(objective_names)))
    for k, name in enumerate(objective_names):
        mine = np.array([o in _objective_axis(name) for o in objective_of])
        weights = np.abs(scoring.weights) * mine
        values = np.einsum("f,fc->c", weights, favourable) / weights.sum()
        # "pack" reads the spread factors the other way round.
        points[:, k] = 1.0 - values if name == "pack" else values
    keep = _non_dominated(points)
    return tuple(
        ParetoPoint(
            host_id=str(hosts.host_ids[scoring.candidates[columns[i]]]),
            objective_scores=MappingProxyType(
                {name: float(points[i, k]) for k, name in enumerate(objective_names)}
            ),
        )
        for i in np.flatnonzero(keep).tolist()
    )


def _objective_axis(name: str) -> tuple[str, ...]:
    return ("spread", "pack") if name in ("spread", "pack") else (name,)


def _non_dominated(points: FloatArray) -> BoolArray:
    """Rows no other row beats on every column (>= everywhere, > somewhere); higher wins."""
    count = len(points)
    dominated = np.zeros(count, dtype=np.bool_)
    block = 256  # bounds the (block, n, m) temporaries to a few MiB
    for start in range(0, count, block):
        chunk = points[start : start + block]
        at_least = (points[:, None, :] >= chunk[None, :, :]).all(axis=2)
        better = (points[:, None, :] > chunk[None, :, :]).any(axis=2)
        dominated[start : start + block] = (at_least & better).any(axis=0)
    return ~dominated


# ---------------------------------------------------------------------- entry points


def select(
    hosts: HostTable,
    request: PlacementRequest,
    policy: Policy,
    *,
    objectives: Mapping[str, float] | None = None,
    weight_overrides: Mapping[str, float] | None = None,
    max_results: int = 10,
    want_pareto: bool = False,
) -> Decision:
    """Rank the hosts that can take ``request``, best first (see the module docstring).

    "No valid host" is a Decision with no hosts and reasons, not an exception.
    ValueError: unknown objective or factor id, non-finite weight, max_results < 1.
    """
    started = time.perf_counter()
    if max_results < 1:
        raise ValueError(f"max_results: must be >= 1, got {max_results}")
    policy.weights(objectives, weight_overrides)  # validate even when nothing passes
    filtered = _run_filters(hosts, request, policy)
    candidates = np.flatnonzero(filtered.passed)
    ranked: tuple[RankedHost, ...] = ()
    pareto: tuple[ParetoPoint, ...] = ()
    reasons: tuple[str, ...] = ()
    factor_ids: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()
    profile: Mapping[str, float] = MappingProxyType(dict(objectives or policy.settings.objectives))
    if len(candidates):
        scoring = _score(
            hosts,
            request,
            policy,
            candidates,
            objectives=objectives,
            weight_overrides=weight_overrides,
        )
        columns = _order(scoring, max_results)
        ranked = _ranked(hosts, policy, scoring, columns, range(1, len(columns) + 1))
        if want_pareto:
            pareto = _pareto(hosts, policy, scoring)
        factor_ids = tuple(policy.factors[p].factor_id for p in scoring.factor_positions.tolist())
        weights = tuple(scoring.weights.tolist())
        profile = scoring.objectives
    else:
        reasons = _no_valid_host_reasons(filtered, len(hosts))
    return Decision(
        hosts=ranked,
        filtered_out=filtered.counts,
        no_valid_host_reasons=reasons,
        pareto=pareto,
        hosts_considered=len(hosts),
        hosts_passed=len(candidates),
        analysis_seconds=time.perf_counter() - started,
        snapshot_at_seconds=hosts.taken_at_seconds,
        factor_ids=factor_ids,
        weights=weights,
        objectives=profile,
    )


def filter_rejections(
    hosts: HostTable, request: PlacementRequest, policy: Policy, row: int
) -> tuple[FilterRejection, ...]:
    """Every filter (and reason) that rejects host ``row``, in pipeline order."""
    found: list[FilterRejection] = []
    for plugin in policy.filters:
        found += [
            FilterRejection(plugin.name, rejection.reason)
            for rejection in plugin.reject(hosts, request)
            if rejection.hosts[row]
        ]
    return tuple(found)


def explain(
    hosts: HostTable,
    request: PlacementRequest,
    policy: Policy,
    host_id: str,
    *,
    objectives: Mapping[str, float] | None = None,
    weight_overrides: Mapping[str, float] | None = None,
) -> Explanation:
    """Why ``host_id`` was or was not chosen; UnknownHost if it is not in the table."""
    row = hosts.index.get(host_id)
    if row is None:
        raise UnknownHost(f"host {host_id!r} is not in the fleet snapshot")
    policy.weights(objectives, weight_overrides)
    rejections = filter_rejections(hosts, request, policy, row)
    candidates = np.flatnonzero(_run_filters(hosts, request, policy).passed)
    if not len(candidates):
        summary = f"No host passed the filters, so none was chosen. {_rejection_text(rejections)}"
        return Explanation(host_id, False, rejections, None, None, (), summary.strip())
    scoring = _score(
        hosts, request, policy, candidates, objectives=objectives, weight_overrides=weight_overrides
    )
    best = _order(scoring, 1)
    (winner,) = _ranked(hosts, policy, scoring, best, (1,))
    if rejections:
        summary = (
            f"{host_id} was not considered: {_rejection_text(rejections)} "
            f"{winner.host_id} was chosen with score {winner.score:.3f} "
            f"among {len(candidates)} hosts that passed."
        )
        return Explanation(host_id, False, rejections, None, winner, (), summary)
    column = int(np.searchsorted(candidates, row))
    mine = scoring.scores[column]
    ahead = scoring.scores > mine
    ties_before = (scoring.scores == mine) & (candidates < row)
    rank = int(ahead.sum() + ties_before.sum()) + 1
    (evaluation,) = _ranked(hosts, policy, scoring, np.array([column], dtype=np.intp), (rank,))
    if rank == 1:
        summary = (
            f"{host_id} was chosen: best score {evaluation.score:.3f} of "
            f"{len(candidates)} hosts that passed the filters (confidence "
            f"{evaluation.confidence:.2f})." + _because(evaluation.pros, "In its favour")
        )
        return Explanation(host_id, True, (), evaluation, winner, (), summary)
    comparisons = _compare(evaluation, winner)
    lost = [c for c in comparisons if c.delta < 0][:3]
    summary = (
        f"{host_id} passed every filter and ranks {rank} of {len(candidates)} with score "
        f"{evaluation.score:.3f}, {winner.score - evaluation.score:.3f} behind "
        f"{winner.host_id} ({winner.score:.3f})."
    )
    if lost:
        summary += (
            " It lost most on "
            + ", ".join(f"{policy.factor(c.factor_id).name} ({c.delta:+.3f})" for c in lost)
            + "."
        )
    summary += _because(evaluation.cons, "Against it")
    return Explanation(host_id, False, (), evaluation, winner, comparisons, summary)


def _compare(host: RankedHost, winner: RankedHost) -> tuple[FactorComparison, ...]:
    theirs = {score.factor_id: score.contribution for score in winner.factor_scores}
    comparisons = [
        FactorComparison(
            score.factor_id,
            score.contribution,
            theirs.get(score.factor_id, 0.0),
            score.contribution - theirs.get(score.factor_id, 0.0),
        )
        for score in host.factor_scores
    ]
    comparisons.sort(key=lambda c: (-abs(c.delta), c.factor_id))
    return tuple(comparisons)


def _rejection_text(rejections: Iterable[FilterRejection]) -> str:
    parts = [f"{r.filter} ({r.reason})" for r in rejections]
    return f"Rejected by {'; '.join(parts)}." if parts else ""


def _because(items: Sequence[str], label: str) -> str:
    return f" {label}: {'; '.join(items)}." if items else ""
