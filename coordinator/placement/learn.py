"""Learn per-factor placement weights from reported outcomes, and prove them first.

Every ``SelectHosts`` decision is stored with the ranked candidates' normalised factor
values; the scheduler later reports what happened to the VM (``ReportOutcome``: placed,
failed, migrated away, SLA missed). Each outcome on a host that was among the stored
candidates is one learning example: the chosen host's factor vector ``x_c`` and the
other candidates' ``x_j`` of that decision.

**Model.** The log-odds that the VM fares well grow with how much better its host was
than the alternatives on each factor::

    P(success) = sigmoid(b + w . (x_c - mean_j x_j))

``w`` is learned by L2-regularised logistic regression (scikit-learn); the intercept
``b`` absorbs the base success rate, so a fleet where nearly everything succeeds does
not read as evidence for any factor. Ranking hosts by ``w . x`` then ranks them by
predicted success, which is exactly how the engine uses weights (a weighted sum of the
normalised factors), so the learned ``w`` can replace the configured weights.

**Baseline.** The configured (default) weights ``w0`` get the same model with one free
scale: ``sigmoid(b0 + a * w0 . (x_c - mean_j x_j))``, ``a`` and ``b0`` fitted on the same
training outcomes, so the comparison is about the direction of the weights, not their
arbitrary scale.

**Split and metrics.** Outcomes are ordered by decision time; the earliest
``1 - test_share`` train, the latest ``test_share`` are held out (never a random split:
the fleet drifts). On the held-out outcomes both weight vectors are scored by

* ``log_loss``: mean negative log-likelihood of the outcomes (lower is better; the
  decision metric);
* ``pairwise_accuracy``: over every (outcome, alternative) pair, how often the weights
  order the pair the way the outcome says (chosen above the alternative when it
  succeeded, below when it failed; ties count half);
* ``top1_agreement``: how often the weights' own first choice among the stored
  candidates agrees with the outcome (it is the chosen host when that succeeded, another
  host when it failed).

**Decision.** Learned weights are recommended (and written by ``--apply``) only when
there are at least :data:`MIN_TEST_OUTCOMES` held-out outcomes, their held-out log-loss
is lower, and the improvement holds up: the upper end of a 95 % paired bootstrap
interval (resampling held-out outcomes, fixed seed) of ``loss_learned - loss_default``
is below zero. With outcomes that carry no signal the learned weights only fit noise,
the interval straddles zero, and the defaults stay.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from sklearn.linear_model import LogisticRegression

from novacron.coordinator.placement.engine import Policy
from novacron.coordinator.placement.hosts import FloatArray
from novacron.coordinator.placement.outcomes import (
    DecisionRecord,
    Outcome,
    OutcomeLog,
    OutcomeRecord,
)

MIN_TRAIN_OUTCOMES = 20
MIN_TEST_OUTCOMES = 20
DEFAULT_TEST_SHARE = 0.3
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
REGULARISATION_C = 1.0  # sklearn's inverse L2 strength on factor differences in -1..1
_EPSILON = 1e-12


class NotEnoughOutcomes(ValueError):
    """Too few usable outcomes to learn or to evaluate weights."""


@dataclass(frozen=True)
class Example:
    """One reported outcome with the decision it came from (normalised factor values)."""

    decided_at_seconds: float
    chosen: FloatArray  # (factors,) the host the VM went to; 0..1, NaN = not stored
    alternatives: FloatArray  # (others, factors) the other ranked candidates
    success: bool

    def relative(self) -> FloatArray:
        """``x_c - mean_j x_j``; an unstored value is the engine's neutral 0.5."""
        chosen = np.nan_to_num(self.chosen, nan=0.5)
        others = np.nan_to_num(self.alternatives, nan=0.5)
        return np.asarray(chosen - others.mean(axis=0), dtype=np.float64)


@dataclass(frozen=True)
class Metrics:
    log_loss: float
    pairwise_accuracy: float | None  # None: no held-out outcome had alternatives
    top1_agreement: float


@dataclass(frozen=True)
class LearnedWeights:
    factor_ids: tuple[str, ...]
    default_weights: Mapping[str, float]  # effective weights in use (the baseline)
    learned_weights: Mapping[str, float]  # same total |weight| as the defaults
    train_outcomes: int
    test_outcomes: int
    train_success_rate: float
    test_success_rate: float
    default_metrics: Metrics
    learned_metrics: Metrics
    log_loss_gain_ci: tuple[float, float]  # 95 % bootstrap, default - learned (> 0: better)
    beats_default: bool
    verdict: str  # one sentence for people

    def as_dict(self) -> dict[str, object]:
        return {
            "factor_ids": list(self.factor_ids),
            "default_weights": dict(self.default_weights),
            "learned_weights": dict(self.learned_weights),
            "train_outcomes": self.train_outcomes,
            "test_outcomes": self.test_outcomes,
            "train_success_rate": self.train_success_rate,
            "test_success_rate": self.test_success_rate,
            "default_metrics": self.default_metrics.__dict__,
            "learned_metrics": self.learned_metrics.__dict__,
            "log_loss_gain_ci": list(self.log_loss_gain_ci),
            "beats_default": self.beats_default,
            "verdict": self.verdict,
        }


def _sigmoid(z: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -500, 500))), dtype=np.float64)


def _losses(probability: FloatArray, success: FloatArray) -> FloatArray:
    p = np.clip(probability, _EPSILON, 1.0 - _EPSILON)
    return np.asarray(-(success * np.log(p) + (1.0 - success) * np.log(1.0 - p)))


def _fit(
    features: FloatArray, success: FloatArray, c: float = REGULARISATION_C
) -> tuple[FloatArray, float]:
    """Coefficients and intercept of the logistic model (``c``: inverse L2 strength)."""
    model = LogisticRegression(C=c, max_iter=1000)
    model.fit(features, success.astype(np.int64))
    return np.asarray(model.coef_[0], dtype=np.float64), float(model.intercept_[0])


def _ranking_metrics(
    weights: FloatArray, examples: Sequence[Example], probability: FloatArray, success: FloatArray
) -> Metrics:
    correct = 0.0
    pairs = 0
    agree = 0
    for example in examples:
        chosen = weights @ np.nan_to_num(example.chosen, nan=0.5)
        others = np.nan_to_num(example.alternatives, nan=0.5) @ weights
        above = np.where(chosen > others, 1.0, np.where(chosen == others, 0.5, 0.0))
        correct += float((above if example.success else 1.0 - above).sum())
        pairs += len(others)
        first = not len(others) or bool(chosen > others.max())
        agree += int(first == example.success)
    return Metrics(
        log_loss=float(_losses(probability, success).mean()),
        pairwise_accuracy=correct / pairs if pairs else None,
        top1_agreement=agree / len(examples),
    )


def _bootstrap_gain(default_losses: FloatArray, learned_losses: FloatArray) -> tuple[float, float]:
    """95 % interval of mean(default - learned) over resampled held-out outcomes."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    difference = default_losses - learned_losses
    picks = rng.integers(0, len(difference), size=(BOOTSTRAP_RESAMPLES, len(difference)))
    means = difference[picks].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


def learn_weights(
    factor_ids: Sequence[str],
    default_weights: FloatArray,
    examples: Sequence[Example],
    *,
    test_share: float = DEFAULT_TEST_SHARE,
) -> LearnedWeights:
    """Fit weights on the earlier outcomes, compare with ``default_weights`` on the later.

    ``default_weights`` are the effective weights (objective weight included) of
    ``factor_ids`` that the engine uses today. NotEnoughOutcomes when either side of the
    split is too small or holds a single outcome class.
    """
    if not 0.0 < test_share < 1.0:
        raise ValueError(f"test_share: expected a number in (0, 1), got {test_share!r}")
    ordered = sorted(examples, key=lambda e: e.decided_at_seconds)
    split = len(ordered) - math.ceil(len(ordered) * test_share)
    train, test = ordered[:split], ordered[split:]
    if len(train) < MIN_TRAIN_OUTCOMES or len(test) < MIN_TEST_OUTCOMES:
        raise NotEnoughOutcomes(
            f"{len(ordered)} usable outcomes: need at least {MIN_TRAIN_OUTCOMES} to train and "
            f"{MIN_TEST_OUTCOMES} to evaluate ({test_share:.0%} held out)"
        )
    x_train = np.stack([e.relative() for e in train])
    y_train = np.array([e.success for e in train], dtype=np.float64)
    x_test = np.stack([e.relative() for e in test])
    y_test = np.array([e.success for e in test], dtype=np.float64)
    if len(set(y_train.tolist())) < 2:
        raise NotEnoughOutcomes(
            f"every training outcome is a {'success' if y_train[0] else 'failure'}: "
            "nothing to learn from"
        )
    w0 = np.asarray(default_weights, dtype=np.float64)
    learned, intercept = _fit(x_train, y_train)
    # Two parameters only: practically unregularised, the defaults get their best scale.
    (scale,), default_intercept = _fit((x_train @ w0)[:, None], y_train, c=1e6)
    p_learned = _sigmoid(x_test @ learned + intercept)
    p_default = _sigmoid(scale * (x_test @ w0) + default_intercept)
    learned_metrics = _ranking_metrics(learned, test, p_learned, y_test)
    default_metrics = _ranking_metrics(w0, test, p_default, y_test)
    gain = _bootstrap_gain(_losses(p_default, y_test), _losses(p_learned, y_test))
    beats = learned_metrics.log_loss < default_metrics.log_loss and gain[0] > 0
    mass = float(np.abs(w0).sum()) or 1.0
    learned_mass = float(np.abs(learned).sum())
    rescaled = learned * (mass / learned_mass) if learned_mass > 0 else learned
    verdict = (
        f"learned weights beat the defaults on {len(test)} held-out outcomes: log-loss "
        f"{learned_metrics.log_loss:.4f} vs {default_metrics.log_loss:.4f} (gain 95% CI "
        f"{gain[0]:+.4f}..{gain[1]:+.4f})"
        if beats
        else f"learned weights do not reliably beat the defaults on {len(test)} held-out "
        f"outcomes: log-loss {learned_metrics.log_loss:.4f} vs {default_metrics.log_loss:.4f} "
        f"(gain 95% CI {gain[0]:+.4f}..{gain[1]:+.4f}); keeping the defaults"
    )
    return LearnedWeights(
        factor_ids=tuple(factor_ids),
        default_weights=MappingProxyType(dict(zip(factor_ids, w0.tolist(), strict=True))),
        learned_weights=MappingProxyType(dict(zip(factor_ids, rescaled.tolist(), strict=True))),
        train_outcomes=len(train),
        test_outcomes=len(test),
        train_success_rate=float(y_train.mean()),
        test_success_rate=float(y_test.mean()),
        default_metrics=default_metrics,
        learned_metrics=learned_metrics,
        log_loss_gain_ci=gain,
        beats_default=beats,
        verdict=verdict,
    )


# -------------------------------------------------------------- from the outcome log

# Outcomes that say the host was a poor choice; any of them for a (decision, host) pair
# makes that pair a failure, otherwise (placed, sla_met) it is a success.
FAILURE_OUTCOMES = frozenset({Outcome.FAILED, Outcome.MIGRATED_LATER, Outcome.SLA_VIOLATED})


@dataclass(frozen=True)
class LearningSet:
    factor_ids: tuple[str, ...]
    examples: tuple[Example, ...]
    skipped: int  # outcomes on a host that was not among the decision's stored candidates


def learning_set(
    joined: Sequence[tuple[DecisionRecord, OutcomeRecord]], known_factors: Sequence[str]
) -> LearningSet:
    """Examples from the joined decision/outcome rows (:meth:`OutcomeLog.joined`).

    One example per (decision, host): a failure if any failure outcome was reported for
    it. Factor vectors are aligned on the factors of ``known_factors`` that any decision
    stored; a factor a decision did not weigh is NaN there (neutral 0.5 when used).
    """
    verdicts: dict[tuple[str, str], tuple[DecisionRecord, bool]] = {}
    for decision, outcome in joined:
        key = (decision.request_id, outcome.host)
        failed = outcome.outcome in FAILURE_OUTCOMES
        previous = verdicts.get(key)
        verdicts[key] = (decision, failed or (previous is not None and previous[1]))
    stored = {f for decision, _ in verdicts.values() for f in decision.factor_ids}
    factor_ids = tuple(f for f in known_factors if f in stored)
    column = {f: i for i, f in enumerate(factor_ids)}
    examples: list[Example] = []
    skipped = 0
    for (_, host), (decision, failed) in verdicts.items():
        vectors = {}
        for candidate in decision.candidates:
            vector = np.full(len(factor_ids), np.nan)
            for factor_id, value in zip(decision.factor_ids, candidate["normalized"], strict=True):
                if factor_id in column:
                    vector[column[factor_id]] = float(value)
            vectors[str(candidate["host"])] = vector
        if host not in vectors:
            skipped += 1
            continue
        others = [v for h, v in vectors.items() if h != host]
        examples.append(
            Example(
                decided_at_seconds=decision.decided_at_seconds,
                chosen=vectors[host],
                alternatives=np.array(others).reshape(len(others), len(factor_ids)),
                success=not failed,
            )
        )
    return LearningSet(factor_ids, tuple(examples), skipped)


def learn_from_log(log: OutcomeLog, policy: Policy) -> tuple[LearnedWeights, LearningSet]:
    """Learn and evaluate against the policy's configured weights (NotEnoughOutcomes)."""
    data = learning_set(log.joined(), [f.factor_id for f in policy.factors])
    effective, _ = policy.weights()
    defaults = np.array([effective[policy.factor_index[f]] for f in data.factor_ids])
    return learn_weights(data.factor_ids, defaults, data.examples), data


def config_weights(result: LearnedWeights, policy: Policy) -> dict[str, float]:
    """Learned effective weights as ``[placement] weights`` values: divided by the
    objective weight the configured profile gives each factor (a factor whose objective
    weighs 0 there cannot be expressed and is left out)."""
    scale, _ = policy.weights(None, {f.factor_id: 1.0 for f in policy.factors})
    weights = {}
    for factor_id, value in result.learned_weights.items():
        objective_weight = float(scale[policy.factor_index[factor_id]])
        if objective_weight != 0.0:
            weights[factor_id] = round(value / objective_weight, 6)
    return weights


def weights_toml(weights: Mapping[str, float], result: LearnedWeights) -> str:
    """A ``[placement.weights]`` table (a coordinator config fragment) with the evidence."""
    lines = [
        "# Learned by novacron-coordinator learn-weights.",
        f"# {result.verdict}",
        "[placement.weights]",
    ]
    lines += [f"{factor_id} = {value!r}" for factor_id, value in sorted(weights.items())]
    return "\n".join(lines) + "\n"
