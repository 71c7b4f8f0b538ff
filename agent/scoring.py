"""Score one cycle's features with the local ONNX models: failure risk and anomalies.

Per cycle, every model is called as few times as possible (onnxruntime's per-call
overhead dominates for small trees): the node failure models on the node's row, each
disk failure model on all disks at once, the VM anomaly model on all VMs at once. The
contributing factors of the predictions worth explaining (probability at least
``attribution_floor``) come from one more batched call per model: occlusion against the
card's ``extra.baseline``, i.e. ``contribution_i = p(x) - p(x with feature i at its
baseline)`` -- an honest, model-agnostic attribution, computed only for the features
that differ from their baseline, and reused while a subject's input row is unchanged.

The node's risk compares predictions made for different horizons (a node model for
30 min and 24 h, a disk model for 7 days) through their constant-hazard rate (see
:mod:`.score_math`) and names the subject and model it comes from. A role without a
model gives no scores for it (``missing_models`` says which), never an error.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from novacron.agent.features.store import FeatureMatrix, FeatureSnapshot
from novacron.agent.model_set import AnomalyModel, FailureModel, ModelSet, load_models
from novacron.agent.score_math import (
    Severity,
    hazard_per_second,
    probability_within,
    robust_z,
    severity,
    time_to_failure_seconds,
)
from novacron.models.schema import DAY

log = logging.getLogger(__name__)

DEFAULT_ATTRIBUTION_FLOOR = 0.01
DEFAULT_TOP_FACTORS = 5
# A feature whose occlusion moves the probability by less than this explains nothing.
MIN_CONTRIBUTION = 1e-3
MAX_ANOMALOUS_FEATURES = 10
RISK_REFERENCE_HORIZON_SECONDS = DAY

FailureScope = Literal["node", "disk"]
_Factors = tuple["ContributingFactor", ...]
AnomalyScope = Literal["node", "vm"]


@dataclass(frozen=True)
class ContributingFactor:
    feature: str
    value: float  # what the model saw (no-data features at their neutral fill)
    baseline: float
    contribution: float  # p(x) - p(x with this feature at its baseline); > 0 raises risk


@dataclass(frozen=True)
class FailurePrediction:
    scope: FailureScope
    subject: str  # node id or disk key (serial)
    label: str  # node id or device
    model: str
    model_version: str
    horizon_seconds: float
    probability: float  # P(failure within horizon_seconds), calibrated
    ci_low: float | None  # 95 % Wilson interval of the calibration bin; None: no table
    ci_high: float | None
    alert: bool | None  # probability >= the card's alert threshold; None: no threshold
    estimated_time_to_failure_seconds: float | None  # None: failure not expected
    # Up to top_factors features raising the probability by at least MIN_CONTRIBUTION,
    # largest first; empty below the attribution floor or without a card baseline.
    contributing_factors: tuple[ContributingFactor, ...]


@dataclass(frozen=True)
class SubjectRisk:
    """A subject's most urgent prediction over its horizons, in one currency."""

    scope: FailureScope
    subject: str
    label: str
    model: str
    model_version: str
    horizon_seconds: float  # of the prediction it comes from
    probability: float  # that prediction's own probability
    probability_24h: float  # the same hazard over 24 h, comparable across horizons
    estimated_time_to_failure_seconds: float | None


@dataclass(frozen=True)
class AnomalousFeature:
    feature: str
    value: float
    z: float  # robust z-score (x - median) / MAD from the card


@dataclass(frozen=True)
class Anomaly:
    scope: AnomalyScope
    subject: str  # node id or VM UUID
    label: str  # node id or VM name
    model: str
    model_version: str
    score: float  # higher = more anomalous
    severity: Severity
    anomalous_features: tuple[AnomalousFeature, ...]  # |z| >= the card's feature_z


@dataclass(frozen=True)
class NodeScores:
    timestamp_seconds: float
    failure_predictions: tuple[FailurePrediction, ...]
    anomalies: tuple[Anomaly, ...]
    node_risk: SubjectRisk | None  # riskiest of the node and its disks; None: no model
    riskiest_disk: SubjectRisk | None
    missing_models: tuple[str, ...]  # roles without a model (their scores are absent)
    scoring_seconds: float


class Scorer:
    def __init__(
        self,
        models: ModelSet,
        *,
        attribution_floor: float = DEFAULT_ATTRIBUTION_FLOOR,
        top_factors: int = DEFAULT_TOP_FACTORS,
    ) -> None:
        self.models = models
        self.attribution_floor = attribution_floor
        self.top_factors = top_factors
        self.last_scoring_seconds: float | None = None
        # Attributions by (model, subject): the model input row they were computed for
        # and the result. Disk rows change only when SMART is polled (once a minute), so
        # most cycles reuse them; same input, same answer.
        self._factor_cache: dict[tuple[str, str], tuple[bytes, _Factors]] = {}

    @classmethod
    def load(cls, models_dir: Path) -> Scorer:
        """Load (and verify) every model in ``models_dir`` once."""
        return cls(load_models(models_dir))

    def score(self, snapshot: FeatureSnapshot) -> NodeScores:
        began = time.perf_counter()
        predictions: list[FailurePrediction] = []
        for model in self.models.node_failure:
            predictions += self._failure(model, "node", snapshot.node)
        for model in self.models.disk_failure:
            predictions += self._failure(model, "disk", snapshot.disks)
        anomalies: list[Anomaly] = []
        if self.models.node_anomaly is not None:
            anomalies += _anomalies(self.models.node_anomaly, "node", snapshot.node)
        if self.models.vm_anomaly is not None:
            anomalies += _anomalies(self.models.vm_anomaly, "vm", snapshot.vms)
        node_risk = riskiest(predictions)
        disk_risk = riskiest([p for p in predictions if p.scope == "disk"])
        elapsed = time.perf_counter() - began
        self.last_scoring_seconds = elapsed
        log.debug(
            "scored one cycle",
            extra={
                "scoring_seconds": elapsed,
                "disks": len(snapshot.disks),
                "vms": len(snapshot.vms),
            },
        )
        return NodeScores(
            timestamp_seconds=snapshot.timestamp_seconds,
            failure_predictions=tuple(predictions),
            anomalies=tuple(anomalies),
            node_risk=node_risk,
            riskiest_disk=disk_risk,
            missing_models=self.models.missing,
            scoring_seconds=elapsed,
        )

    def _failure(
        self, model: FailureModel, scope: FailureScope, matrix: FeatureMatrix
    ) -> list[FailurePrediction]:
        if not len(matrix):
            return []
        rows = matrix.model_input()
        probabilities = model.probabilities(rows)
        factors = self._cached_factors(model, matrix.subjects, rows, probabilities)
        out = []
        for i, p in enumerate(probabilities.tolist()):
            interval = model.calibration.interval(p)
            out.append(
                FailurePrediction(
                    scope=scope,
                    subject=matrix.subjects[i],
                    label=matrix.labels[i],
                    model=model.name,
                    model_version=model.version,
                    horizon_seconds=model.horizon_seconds,
                    probability=p,
                    ci_low=interval[0] if interval else None,
                    ci_high=interval[1] if interval else None,
                    alert=None if model.alert_threshold is None else p >= model.alert_threshold,
                    estimated_time_to_failure_seconds=time_to_failure_seconds(
                        p, model.horizon_seconds
                    ),
                    contributing_factors=factors[i],
                )
            )
        return out

    def _cached_factors(
        self,
        model: FailureModel,
        subjects: tuple[str, ...],
        rows: npt.NDArray[np.float32],
        probabilities: npt.NDArray[np.float64],
    ) -> list[_Factors]:
        """Attributions, reusing those of rows identical to the last cycle's."""
        keys = [(model.name, subject) for subject in subjects]
        row_bytes = [row.tobytes() for row in rows]
        out: list[_Factors | None] = []
        for key, data in zip(keys, row_bytes, strict=True):
            cached = self._factor_cache.get(key)
            out.append(cached[1] if cached is not None and cached[0] == data else None)
        stale = np.array([factors is None for factors in out], dtype=bool)
        if stale.any():
            fresh = self._factors(model, rows[stale], probabilities[stale])
            for i, factors in zip(np.flatnonzero(stale).tolist(), fresh, strict=True):
                out[i] = factors
        for key in [k for k in self._factor_cache if k[0] == model.name]:
            del self._factor_cache[key]  # only the subjects of this cycle stay cached
        done = [factors or () for factors in out]
        self._factor_cache.update(
            (key, (data, factors)) for key, data, factors in zip(keys, row_bytes, done, strict=True)
        )
        return done

    def _factors(
        self,
        model: FailureModel,
        rows: npt.NDArray[np.float32],
        probabilities: npt.NDArray[np.float64],
    ) -> list[_Factors]:
        """Occlusion attribution for every row worth explaining, in one model call.

        One occluded row per (explained row, feature differing from its baseline); the
        contributions land in a (rows, features) matrix so the top features of every
        row come out of one argsort.
        """
        out: list[_Factors] = [() for _ in range(len(rows))]
        baseline = model.baseline
        explain = np.flatnonzero(probabilities >= self.attribution_floor)
        if baseline is None or not explain.size:
            return out
        explained = rows[explain]
        row_index, feature_index = np.nonzero(explained != baseline)
        if not row_index.size:
            return out
        batch = explained[row_index]
        batch[np.arange(len(batch)), feature_index] = baseline[feature_index]
        occluded = model.probabilities(batch)
        contributions = np.full(explained.shape, -np.inf)
        contributions[row_index, feature_index] = probabilities[explain][row_index] - occluded
        top = np.argsort(-contributions, axis=1, kind="stable")[:, : self.top_factors]
        top_values = np.take_along_axis(contributions, top, axis=1)
        names = model.model.card.features
        for r, i in enumerate(explain.tolist()):
            out[i] = tuple(
                ContributingFactor(
                    feature=names[j],
                    value=float(explained[r, j]),
                    baseline=float(baseline[j]),
                    contribution=c,
                )
                for j, c in zip(top[r].tolist(), top_values[r].tolist(), strict=True)
                if c >= MIN_CONTRIBUTION
            )
        return out


def riskiest(predictions: list[FailurePrediction]) -> SubjectRisk | None:
    """The most urgent prediction (highest constant-hazard rate) as a subject's risk.

    Over one subject's horizons that is its most urgent outlook; over the node's and
    its disks' predictions, the node's risk.
    """
    best: FailurePrediction | None = None
    best_hazard = -1.0
    for p in predictions:
        hazard = hazard_per_second(p.probability, p.horizon_seconds)
        if hazard > best_hazard:
            best, best_hazard = p, hazard
    if best is None:
        return None
    return SubjectRisk(
        scope=best.scope,
        subject=best.subject,
        label=best.label,
        model=best.model,
        model_version=best.model_version,
        horizon_seconds=best.horizon_seconds,
        probability=best.probability,
        probability_24h=probability_within(best_hazard, RISK_REFERENCE_HORIZON_SECONDS),
        estimated_time_to_failure_seconds=best.estimated_time_to_failure_seconds,
    )


def _anomalies(model: AnomalyModel, scope: AnomalyScope, matrix: FeatureMatrix) -> list[Anomaly]:
    if not len(matrix):
        return []
    rows = matrix.model_input()
    scores = model.scores(rows).tolist()
    flagged: list[tuple[AnomalousFeature, ...]] = [() for _ in scores]
    if model.median is not None and model.mad is not None:
        z = robust_z(rows.astype(np.float64), model.median, model.mad)
        z[np.isnan(matrix.features)] = 0.0  # no data is not an anomaly
        magnitude = np.where(np.abs(z) >= model.feature_z, np.abs(z), -1.0)
        rows_hit = np.flatnonzero(magnitude.max(axis=1) >= 0)
        if rows_hit.size:
            names = model.model.card.features
            order = np.argsort(-magnitude[rows_hit], axis=1, kind="stable")
            for i, columns in zip(
                rows_hit.tolist(), order[:, :MAX_ANOMALOUS_FEATURES].tolist(), strict=True
            ):
                flagged[i] = tuple(
                    AnomalousFeature(names[j], float(rows[i, j]), float(z[i, j]))
                    for j in columns
                    if magnitude[i, j] >= 0
                )
    return [
        Anomaly(
            scope=scope,
            subject=subject,
            label=label,
            model=model.name,
            model_version=model.version,
            score=score,
            severity=severity(score, model.warning, model.critical),
            anomalous_features=features,
        )
        for subject, label, score, features in zip(
            matrix.subjects, matrix.labels, scores, flagged, strict=True
        )
    ]
