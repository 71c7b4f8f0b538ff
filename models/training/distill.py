"""A fast anomaly model: a two-part *teacher* distilled into a small tree *student*.

Why: IsolationForest is a good unsupervised multivariate scorer, but its ONNX graph
(``target_opset {'': 17, 'ai.onnx.ml': 3}``, a hundred deep trees) costs milliseconds per
call in onnxruntime, and the agent scores a node and up to 50 VMs every cycle within
200 µs for all models together. A few dozen depth-4 regression trees cost what a small
classifier costs. So:

1. **Scale** each feature robustly (median and normal-consistent MAD of the clean
   training rows; the mean absolute deviation where the MAD is 0) and compress the
   tails with ``arcsinh``, so one huge counter value does not flatten every other.
2. **Teacher** = the mean of two normalised scores: an IsolationForest on the scaled
   clean rows (multivariate: unusual *combinations*) and the mean of the three largest
   scaled |z| of the row (per feature: a few features far out). Each part is normalised so
   that 0 is the median clean training row and 1 its 99th percentile. Measured on the
   simulated fleet's training period (``docs/models.md``): the forest alone is the
   weakest of the three (it splits on one random feature at a time, so one extreme
   column among 11-45 isolates a row only when it is picked); the z part alone and the
   mean are within a window or two of each other. The mean keeps a multivariate view
   at no cost on the agent, because only the student ships.
3. **Student**: a GradientBoostingRegressor fitted to the teacher's score on
   training-period rows (clean and eventful; labels are never used), so it learns the
   tail where alerts happen, not only the normal bulk. Trees are invariant to monotone
   per-feature transforms, so the student reads the raw model input and the ONNX graph
   needs no scaling step.
4. **Fidelity** is measured, not assumed: rank correlation with the teacher on held-out
   rows and how many of the teacher's top 1 % the student also ranks in its top 1 %.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import GradientBoostingRegressor, IsolationForest

from novacron.models.runtime import session_options
from novacron.models.training.export import TARGET_OPSET

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
MAD_TO_SIGMA = 1.4826
MEAN_AD_TO_SIGMA = 1.2533  # normal-consistent mean absolute deviation, when the MAD is 0
TOP_SHARE = 0.01


@dataclass(frozen=True)
class StudentOptions:
    forest_trees: int = 100
    forest_samples: int = 256
    top_features: int = 3
    trees: int = 60
    depth: int = 4
    learning_rate: float = 0.1
    max_distil_rows: int = 20000
    seed: int = 0


@dataclass(frozen=True)
class RobustScale:
    """Per-feature median and normal-consistent MAD (0 where the feature never varied)."""

    median: FloatArray
    mad: FloatArray
    fallback: FloatArray  # normal-consistent mean absolute deviation (1 if that is 0 too)

    @classmethod
    def fit(cls, x: FloatArray) -> RobustScale:
        median = np.median(x, axis=0)
        mad = MAD_TO_SIGMA * np.median(np.abs(x - median), axis=0)
        mean_ad = MEAN_AD_TO_SIGMA * np.mean(np.abs(x - median), axis=0)
        fallback = np.where(mean_ad > 0, mean_ad, 1.0)
        return cls(median.astype(np.float64), mad.astype(np.float64), fallback)

    def compressed_z(self, x: FloatArray) -> FloatArray:
        scale = np.where(self.mad > 0, self.mad, self.fallback)
        return np.asarray(np.arcsinh((np.asarray(x, np.float64) - self.median) / scale))


@dataclass(frozen=True)
class Normaliser:
    """0 at the median clean training score, 1 at its 99th percentile."""

    low: float
    high: float

    @classmethod
    def fit(cls, scores: FloatArray) -> Normaliser:
        low, high = (float(v) for v in np.quantile(scores, [0.5, 0.99]))
        return cls(low, high if high > low else low + 1.0)

    def __call__(self, scores: FloatArray) -> FloatArray:
        return (scores - self.low) / (self.high - self.low)


@dataclass(frozen=True)
class Teacher:
    scale: RobustScale
    forest: IsolationForest
    top_features: int
    forest_norm: Normaliser
    z_norm: Normaliser

    def forest_score(self, x: FloatArray) -> FloatArray:
        return np.asarray(-self.forest.score_samples(self.scale.compressed_z(x)), np.float64)

    def z_score(self, x: FloatArray) -> FloatArray:
        z = np.abs(self.scale.compressed_z(x))
        k = min(self.top_features, z.shape[1])
        return np.asarray(np.sort(z, axis=1)[:, -k:].mean(axis=1), np.float64)

    def score(self, x: FloatArray) -> FloatArray:
        return 0.5 * (self.forest_norm(self.forest_score(x)) + self.z_norm(self.z_score(x)))


@dataclass(frozen=True)
class DistilledAnomaly:
    teacher: Teacher
    student: GradientBoostingRegressor

    @property
    def scale(self) -> RobustScale:
        return self.teacher.scale

    def teacher_score(self, x: FloatArray) -> FloatArray:
        return self.teacher.score(x)

    def score(self, x: npt.ArrayLike) -> FloatArray:
        """The student's score (what the shipped ONNX computes), higher = more anomalous."""
        return np.asarray(self.student.predict(np.asarray(x, dtype=np.float32)), np.float64)


def fit_teacher(clean: FloatArray, options: StudentOptions) -> Teacher:
    if len(clean) < 10:
        raise ValueError(f"only {len(clean)} clean training rows")
    scale = RobustScale.fit(clean)
    forest = IsolationForest(
        n_estimators=options.forest_trees,
        max_samples=min(options.forest_samples, len(clean)),
        random_state=options.seed,
    ).fit(scale.compressed_z(clean))
    unnormalised = Teacher(scale, forest, options.top_features, Normaliser(0, 1), Normaliser(0, 1))
    return replace(
        unnormalised,
        forest_norm=Normaliser.fit(unnormalised.forest_score(clean)),
        z_norm=Normaliser.fit(unnormalised.z_score(clean)),
    )


def fit(clean: FloatArray, distil_rows: FloatArray, options: StudentOptions) -> DistilledAnomaly:
    """Teacher on ``clean`` rows, student on ``distil_rows`` (model input, NaN filled;
    an evenly spaced subset of at most ``max_distil_rows`` keeps training fast)."""
    teacher = fit_teacher(clean, options)
    if len(distil_rows) > options.max_distil_rows:
        pick = np.linspace(0, len(distil_rows) - 1, options.max_distil_rows).astype(int)
        distil_rows = distil_rows[pick]
    student = GradientBoostingRegressor(
        n_estimators=options.trees,
        max_depth=options.depth,
        learning_rate=options.learning_rate,
        subsample=0.8,
        random_state=options.seed,
    ).fit(distil_rows.astype(np.float32), teacher.score(distil_rows))
    return DistilledAnomaly(teacher, student)


def _average_ranks(values: FloatArray) -> FloatArray:
    """Ranks 0..n-1, tied values sharing their mean rank."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=np.float64)
    _, group = np.unique(values, return_inverse=True)
    return np.asarray(np.bincount(group, ranks)[group] / np.bincount(group)[group], np.float64)


def spearman(a: FloatArray, b: FloatArray) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks)."""
    return float(np.corrcoef(_average_ranks(a), _average_ranks(b))[0, 1])


def fidelity(model: DistilledAnomaly, rows: FloatArray) -> dict[str, float]:
    """How faithfully the student ranks held-out rows like the teacher does."""
    teacher, student = model.teacher_score(rows), model.score(rows)
    k = max(1, round(TOP_SHARE * len(rows)))
    top_teacher = set(np.argsort(-teacher, kind="stable")[:k].tolist())
    top_student = set(np.argsort(-student, kind="stable")[:k].tolist())
    return {
        "rows": float(len(rows)),
        "spearman": spearman(teacher, student),
        "top_1pct_overlap": len(top_teacher & top_student) / k,
    }


def forest_session(model: DistilledAnomaly, n_features: int) -> Any:
    """The teacher's IsolationForest as an onnxruntime call, for the latency comparison
    only (never shipped; converting it takes skl2onnx about 15 s per 100 trees)."""
    onx = convert_sklearn(
        model.teacher.forest,
        initial_types=[("input", FloatTensorType([None, n_features]))],
        target_opset=TARGET_OPSET,
    )
    session = ort.InferenceSession(
        onx.SerializeToString(), sess_options=session_options(), providers=["CPUExecutionProvider"]
    )
    return lambda rows: session.run(None, {"input": rows})


def call_latency_us(
    run: Any, rows: Float32Array, batch: int = 1, calls: int = 1000
) -> dict[str, float]:
    """p50/p99 microseconds of one ``run(rows[k:k+batch])`` call, as the agent pays it."""
    samples = np.empty(calls)
    for k in range(calls):
        start_row = (k * batch) % max(1, len(rows) - batch + 1)
        chunk = rows[start_row : start_row + batch]
        start = time.perf_counter()
        run(chunk)
        samples[k] = time.perf_counter() - start
    return {
        "p50": float(np.percentile(samples, 50) * 1e6),
        "p99": float(np.percentile(samples, 99) * 1e6),
    }


def tree_count(model: DistilledAnomaly) -> int:
    return int(model.student.n_estimators_)
