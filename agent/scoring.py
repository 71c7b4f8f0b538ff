"""Score one cycle's features with the local ONNX models: failure risk and anomalies.

Per cycle, every model is called as few times as possible (onnxruntime's per-call
overhead dominates for small trees): the node failure models on the node's row, each
disk failure model on all disks at once, the VM anomaly model on all VMs at once. The
contributing factors of the predictions worth explaining (probability at least
``attribution_floor``) come from one more batched call per model: occlusion against the
card's ``extra.baseline``, i.e. ``contribution_i = p(x) - p(x with feature i at its
baseline)`` -- an honest, model-agnostic attribution, computed only for the features
that differ from their baseline.

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
    calibration_interval,
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
MAX_ANOMALOUS_FEATURES = 10
RISK_REFERENCE_HORIZON_SECONDS = DAY

FailureScope = Literal["node", "disk"]
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
        risks = subject_risks(predictions)
        disks = [r for r in risks if r.scope == "disk"]
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
            node_risk=_riskiest(risks),
            riskiest_disk=_riskiest(disks),
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
        factors = self._factors(model, rows, probabilities)
        out = []
        for i, subject in enumerate(matrix.subjects):
            p = float(probabilities[i])
            interval = calibration_interval(p, model.calibration_bins)
            out.append(
                FailurePrediction(
                    scope=scope,
                    subject=subject,
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

    def _factors(
        self,
        model: FailureModel,
        rows: npt.NDArray[np.float32],
        probabilities: npt.NDArray[np.float64],
    ) -> list[tuple[ContributingFactor, ...]]:
        """Occlusion attribution for every row worth explaining, in one model call."""
        out: list[tuple[ContributingFactor, ...]] = [() for _ in range(len(rows))]
        baseline = model.baseline
        explain = np.flatnonzero(probabilities >= self.attribution_floor)
        if baseline is None or not explain.size:
            return out
        blocks, plan = [], []
        for row in explain.tolist():
            changed = np.flatnonzero(rows[row] != baseline)
            occluded = np.repeat(rows[row : row + 1], len(changed), axis=0)
            occluded[np.arange(len(changed)), changed] = baseline[changed]
            blocks.append(occluded)
            plan.append((row, changed))
        batch = np.vstack(blocks)
        if not len(batch):
            return out
        occluded_p = model.probabilities(batch)
        names = model.model.card.features
        start = 0
        for i, changed in plan:
            contributions = probabilities[i] - occluded_p[start : start + len(changed)]
            start += len(changed)
            order = np.argsort(-contributions, kind="stable")[: self.top_factors]
            out[i] = tuple(
                ContributingFactor(
                    feature=names[changed[k]],
                    value=float(rows[i, changed[k]]),
                    baseline=float(baseline[changed[k]]),
                    contribution=float(contributions[k]),
                )
                for k in order
                if contributions[k] > 0
            )
        return out


def subject_risks(predictions: list[FailurePrediction]) -> list[SubjectRisk]:
    """Each subject's most urgent prediction (highest hazard over its horizons)."""
    best: dict[tuple[str, str], tuple[float, FailurePrediction]] = {}
    for p in predictions:
        hazard = hazard_per_second(p.probability, p.horizon_seconds)
        key = (p.scope, p.subject)
        if key not in best or hazard > best[key][0]:
            best[key] = (hazard, p)
    return [
        SubjectRisk(
            scope=p.scope,
            subject=p.subject,
            label=p.label,
            model=p.model,
            model_version=p.model_version,
            horizon_seconds=p.horizon_seconds,
            probability=p.probability,
            probability_24h=probability_within(hazard, RISK_REFERENCE_HORIZON_SECONDS),
            estimated_time_to_failure_seconds=p.estimated_time_to_failure_seconds,
        )
        for hazard, p in best.values()
    ]


def _riskiest(risks: list[SubjectRisk]) -> SubjectRisk | None:
    return max(risks, key=lambda r: r.probability_24h, default=None)


def _anomalies(model: AnomalyModel, scope: AnomalyScope, matrix: FeatureMatrix) -> list[Anomaly]:
    if not len(matrix):
        return []
    rows = matrix.model_input()
    scores = model.scores(rows)
    z = None
    if model.median is not None and model.mad is not None:
        z = robust_z(rows.astype(np.float64), model.median, model.mad)
        z[np.isnan(matrix.features)] = 0.0  # no data is not an anomaly
    names = model.model.card.features
    out = []
    for i, subject in enumerate(matrix.subjects):
        flagged: tuple[AnomalousFeature, ...] = ()
        if z is not None:
            hits = np.flatnonzero(np.abs(z[i]) >= model.feature_z)
            hits = hits[np.argsort(-np.abs(z[i, hits]), kind="stable")][:MAX_ANOMALOUS_FEATURES]
            flagged = tuple(
                AnomalousFeature(names[j], float(rows[i, j]), float(z[i, j])) for j in hits
            )
        score = float(scores[i])
        out.append(
            Anomaly(
                scope=scope,
                subject=subject,
                label=matrix.labels[i],
                model=model.name,
                model_version=model.version,
                score=score,
                severity=severity(score, model.warning, model.critical),
                anomalous_features=flagged,
            )
        )
    return out
