"""``python -m novacron.models.training.series_anomaly``: the univariate series detector.

Trained and judged on the Numenta Anomaly Benchmark series (``../shared/data/nab``, MIT):
each point becomes a ``series-v1`` feature row (:mod:`novacron.models.series`: how unusual
the value and its change are against the series' own trailing day), then two candidate
detectors are built on the **tuning** series only (:func:`~novacron.models.training.
datasets.nab.split`: every artificial series and every other real series per category):

* **rule**: ``score = max(|value_z_last_15m|, |diff_z_last_15m|)``, the value's and the
  change's distance from the trailing day's mean in standard deviations. Written as a
  five-node ONNX graph so the evaluation loads it like any model.
* **learned**: the node/VM anomaly design (:mod:`~novacron.models.training.distill`: an
  IsolationForest + robust-z teacher on tuning rows outside the labelled windows,
  distilled into small regression trees).

Each candidate's ``warning`` threshold maximises event-level F1 on the tuning series
among thresholds that flag at most :data:`FLAG_BUDGET` of the tuning points outside the
windows. The budget is not decoration: under NAB's rule (consecutive flags outside
windows are one false positive) flagging *every* point scores an event F1 of about 0.5,
better than any honest detector; a detector has to stay quiet most of the time to be of
use, and the flag-everything baseline is reported beside every result. ``critical`` is
the same choice under a 0.1 % budget.

Both candidates are then scored on the **held-out** series; the learned one ships only
if its held-out event F1 beats the rule's (the issue's acceptance rule), otherwise the
rule ships, and the card says which and shows both. The selection looks at held-out
numbers once, between two fixed candidates; nothing else is tuned on them.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper

from novacron.models.card import BUNDLED_DIR, CARD_SUFFIX, ModelCard, new_version
from novacron.models.evaluation.event_metrics import (
    WindowCounts,
    inside_windows,
    total,
    window_counts,
)
from novacron.models.runtime import OnnxModel
from novacron.models.schema import SERIES
from novacron.models.series import many_model_inputs
from novacron.models.training import distill
from novacron.models.training.datasets import nab
from novacron.models.training.export import (
    PARITY_TOLERANCE,
    add_parity_dir_option,
    export,
    max_abs_difference,
    save_parity,
    write_model,
)
from novacron.models.training.pipeline import register

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
Candidate = Literal["rule", "learned"]
MODEL_NAME = "series-anomaly"
RULE_FEATURES = ("value_z_last_15m", "diff_z_last_15m")
RULE_OUTPUT = "score"
LEARNED_OUTPUT = "variable"  # skl2onnx's name for a regressor's output
FLAG_BUDGET = 0.01  # warning: at most 1 % of tuning points outside windows flagged
CRITICAL_FLAG_BUDGET = 0.001
THRESHOLD_TAIL_SHARES = tuple(float(v) for v in np.geomspace(1e-4, 0.2, 80))
ONNX_OPSET = 17
PARITY_ROWS = 400
DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nab"


@dataclass(frozen=True)
class TrainOptions:
    workers: int = 2
    student: distill.StudentOptions = field(
        default_factory=lambda: distill.StudentOptions(max_distil_rows=30000)
    )


@dataclass(frozen=True)
class SeriesRows:
    """One series' points and feature rows (model input, NaN filled)."""

    series: nab.NabSeries
    x: Float32Array

    def counts(self, scores: FloatArray, threshold: float) -> WindowCounts:
        return window_counts(self.series.times, scores >= threshold, self.series.windows)


@dataclass(frozen=True)
class Thresholds:
    warning: float
    critical: float
    tuning_summary: dict[str, Any]  # at warning


# --- features and candidates ------------------------------------------------------


def feature_rows(series: Sequence[nab.NabSeries], workers: int = 1) -> list[SeriesRows]:
    """Feature rows of every series, in ``workers`` processes (same result)."""
    matrices = many_model_inputs([(s.times, s.values) for s in series], workers)
    return [SeriesRows(s, x) for s, x in zip(series, matrices, strict=True)]


def rule_columns() -> list[int]:
    return [SERIES.feature_names.index(name) for name in RULE_FEATURES]


def rule_scores(x: npt.ArrayLike) -> FloatArray:
    """The rule in numpy (the reference its ONNX graph is checked against)."""
    rows = np.asarray(x, dtype=np.float32)
    return np.asarray(np.abs(rows[:, rule_columns()]).max(axis=1), dtype=np.float64)


def rule_onnx_bytes() -> bytes:
    """``max(|x[:, value_z_last]|, |x[:, diff_z_last]|)`` as an ONNX graph, (n, 1) out."""
    width = len(SERIES.features)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["input", "columns"], ["picked"], axis=1),
            helper.make_node("Abs", ["picked"], ["magnitude"]),
            helper.make_node("ReduceMax", ["magnitude"], [RULE_OUTPUT], axes=[1], keepdims=1),
        ],
        "series_anomaly_rule",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info(RULE_OUTPUT, TensorProto.FLOAT, [None, 1])],
        initializer=[
            helper.make_tensor("columns", TensorProto.INT64, [len(RULE_FEATURES)], rule_columns())
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def fit_learned(tuning: Sequence[SeriesRows], options: distill.StudentOptions) -> Any:
    """The distilled detector, fitted on tuning points outside the labelled windows."""
    x = np.vstack([r.x for r in tuning]).astype(np.float64)
    outside = np.concatenate([~inside_windows(r.series.times, r.series.windows) for r in tuning])
    return distill.fit(x[outside], x, options)


# --- thresholds and evaluation ------------------------------------------------------


def evaluate(
    rows: Sequence[SeriesRows], scores: Sequence[FloatArray], threshold: float
) -> WindowCounts:
    return total([r.counts(s, threshold) for r, s in zip(rows, scores, strict=True)])


def choose_thresholds(rows: Sequence[SeriesRows], scores: Sequence[FloatArray]) -> Thresholds:
    """Warning/critical on the tuning series (see the module doc)."""
    pooled = np.concatenate(scores)
    candidates = np.unique(np.quantile(pooled, [1.0 - share for share in THRESHOLD_TAIL_SHARES]))
    best: dict[float, tuple[float, dict[str, Any]]] = {}
    for threshold in candidates.tolist():
        summary = evaluate(rows, scores, threshold).summary()
        for budget in (FLAG_BUDGET, CRITICAL_FLAG_BUDGET):
            if summary["flagged_share_outside_windows"] > budget:
                continue
            if budget not in best or summary["event_f1"] > best[budget][1]["event_f1"]:
                best[budget] = (threshold, summary)
    top = float(pooled.max()) + 1.0  # nothing qualifies: flag nothing
    warning, summary = best.get(FLAG_BUDGET, (top, evaluate(rows, scores, top).summary()))
    critical = max(warning, best.get(CRITICAL_FLAG_BUDGET, (top, {}))[0])
    return Thresholds(warning, critical, summary)


def per_category(
    rows: Sequence[SeriesRows], scores: Sequence[FloatArray], threshold: float
) -> dict[str, dict[str, Any]]:
    categories = sorted({r.series.category for r in rows})
    out = {}
    for category in categories:
        mine = [(r, s) for r, s in zip(rows, scores, strict=True) if r.series.category == category]
        out[category] = evaluate([r for r, _ in mine], [s for _, s in mine], threshold).summary()
    return out


@dataclass(frozen=True)
class CandidateResult:
    name: Candidate
    scorer: Callable[[Float32Array], FloatArray]
    thresholds: Thresholds
    held_out: dict[str, Any]
    held_out_critical: dict[str, Any]
    held_out_by_category: dict[str, dict[str, Any]]

    @property
    def held_out_f1(self) -> float:
        return float(self.held_out["event_f1"])


def judge(
    name: Candidate,
    scorer: Callable[[Float32Array], FloatArray],
    tuning: Sequence[SeriesRows],
    held_out: Sequence[SeriesRows],
) -> CandidateResult:
    thresholds = choose_thresholds(tuning, [scorer(r.x) for r in tuning])
    held_scores = [scorer(r.x) for r in held_out]
    return CandidateResult(
        name,
        scorer,
        thresholds,
        evaluate(held_out, held_scores, thresholds.warning).summary(),
        evaluate(held_out, held_scores, thresholds.critical).summary(),
        per_category(held_out, held_scores, thresholds.warning),
    )


# --- training -----------------------------------------------------------------------


@dataclass(frozen=True)
class TrainResult:
    card: ModelCard
    registered: bool
    shipped: CandidateResult
    other: CandidateResult


def train(
    data_dir: Path, options: TrainOptions, out_dir: Path, parity_dir: Path | None = None
) -> TrainResult:
    started = time.perf_counter()
    series = nab.load(data_dir)
    tuning_series, held_series = nab.split(series)
    if not tuning_series or not held_series:
        raise ValueError(f"{data_dir}: need tuning and held-out series, got {len(series)}")
    tuning = feature_rows(tuning_series, options.workers)
    held_out = feature_rows(held_series, options.workers)
    log.info("features of %d series in %.0f s", len(series), time.perf_counter() - started)
    learned = fit_learned(tuning, options.student)
    rule = judge("rule", rule_scores, tuning, held_out)
    student = judge("learned", learned.score, tuning, held_out)
    shipped, other = (student, rule) if student.held_out_f1 > rule.held_out_f1 else (rule, student)
    flag_all = evaluate(held_out, [np.ones(len(r.x)) for r in held_out], 0.5).summary()
    metrics: dict[str, Any] = {
        "held_out": shipped.held_out,
        "held_out_critical": shipped.held_out_critical,
        "held_out_by_category": shipped.held_out_by_category,
        "tuning_at_warning": shipped.thresholds.tuning_summary,
        "held_out_flag_every_point_baseline": flag_all,
        "candidates": {
            c.name: {
                "held_out": c.held_out,
                "tuning_at_warning": c.thresholds.tuning_summary,
                "warning": c.thresholds.warning,
            }
            for c in (rule, student)
        },
        "shipped": shipped.name,
        "learned_fidelity_held_out": distill.fidelity(
            learned, np.vstack([r.x for r in held_out]).astype(np.float64)
        ),
    }
    common: dict[str, Any] = {
        "name": MODEL_NAME,
        "version": new_version(),
        "kind": "anomaly",
        "schema": SERIES,
        "thresholds": {
            "warning": shipped.thresholds.warning,
            "critical": shipped.thresholds.critical,
        },
        "metrics": metrics,
        "training_data": _training_data(data_dir, tuning, held_out),
        "extra": _extra(shipped.name, tuning, options),
    }
    held_x = np.vstack([r.x for r in held_out])
    with tempfile.TemporaryDirectory() as staging_dir:
        staging = Path(staging_dir)
        if shipped.name == "rule":
            card = write_model(
                rule_onnx_bytes(),
                out_dir=staging,
                outputs={
                    RULE_OUTPUT: "(n, 1) max(|value_z_last_15m|, |diff_z_last_15m|): standard "
                    "deviations from the trailing day; higher = more anomalous"
                },
                **common,
            )
        else:
            card = export(
                learned.student,
                out_dir=staging,
                outputs={LEARNED_OUTPUT: "(n, 1) distilled anomaly score, higher = more anomalous"},
                classifier=False,
                **common,
            )
        card = _check_onnx(card, staging, shipped.scorer, held_x)
        current = out_dir / f"{MODEL_NAME}{CARD_SUFFIX}"
        registered = register(card, shipped.held_out_f1, current, _scorer(held_out))
        if registered:
            out_dir.mkdir(parents=True, exist_ok=True)
            for file in (card.onnx_file, f"{MODEL_NAME}{CARD_SUFFIX}"):
                shutil.copyfile(staging / file, out_dir / file)
            if parity_dir is not None:
                write_parity(card, shipped.scorer, held_x, parity_dir)
    return TrainResult(card, registered, shipped, other)


def _check_onnx(
    card: ModelCard,
    staging: Path,
    scorer: Callable[[Float32Array], FloatArray],
    rows: Float32Array,
) -> ModelCard:
    model = OnnxModel.load(staging / f"{card.name}{CARD_SUFFIX}")
    output = next(iter(card.outputs))
    difference = max_abs_difference(model, scorer(rows).reshape(-1, 1), rows, output)
    if difference >= PARITY_TOLERANCE:
        raise RuntimeError(f"{card.name}: ONNX differs from its reference by {difference:g}")
    metrics = dict(card.metrics)
    metrics["onnx_parity_max_abs_diff"] = difference
    metrics["onnx_latency_us"] = {"1_row": distill.call_latency_us(model.run, rows, 1)}
    metrics["onnx_bytes"] = (staging / card.onnx_file).stat().st_size
    card = replace(card, metrics=metrics)
    card.write(staging)
    return card


def _scorer(held_out: Sequence[SeriesRows]) -> Callable[[Path], float]:
    def score_current(card_path: Path) -> float:
        current = OnnxModel.load(card_path)
        output = next(iter(current.card.outputs))
        scores = [current.run(r.x)[output].reshape(-1).astype(np.float64) for r in held_out]
        return evaluate(held_out, scores, float(current.card.thresholds["warning"])).event_prf()[2]

    return score_current


def write_parity(
    card: ModelCard,
    scorer: Callable[[Float32Array], FloatArray],
    rows: Float32Array,
    parity_dir: Path,
) -> Path:
    """Held-out rows (the highest-scoring among them) and the reference scores."""
    scores = scorer(rows)
    top = np.argsort(-scores, kind="stable")[: PARITY_ROWS // 4]
    rest = np.random.default_rng(0).permutation(len(rows))[:PARITY_ROWS]
    picked = rows[np.unique(np.r_[top, rest])[:PARITY_ROWS]]
    return save_parity(parity_dir, card, picked, reference_scores=scorer(picked))


def _training_data(
    data_dir: Path, tuning: Sequence[SeriesRows], held_out: Sequence[SeriesRows]
) -> dict[str, Any]:
    return {
        "source": "Numenta Anomaly Benchmark (numenta/NAB, MIT licence), series and "
        "combined_windows.json as in ../shared/data/nab",
        "command": "python -m novacron.models.training.series_anomaly",
        "data_dir_name": data_dir.name,
        "split": "by file: every artificial* series and every other real series of each "
        "category (sorted by name) tune; the rest are held out",
        "tuning_series": [r.series.key for r in tuning],
        "held_out_series": [r.series.key for r in held_out],
        "tuning_points": int(sum(len(r.x) for r in tuning)),
        "held_out_points": int(sum(len(r.x) for r in held_out)),
        "tuning_windows": int(sum(len(r.series.windows) for r in tuning)),
        "held_out_windows": int(sum(len(r.series.windows) for r in held_out)),
    }


def _extra(
    shipped: Candidate, tuning: Sequence[SeriesRows], options: TrainOptions
) -> dict[str, Any]:
    x = np.vstack([r.x for r in tuning]).astype(np.float64)
    outside = np.concatenate([~inside_windows(r.series.times, r.series.windows) for r in tuning])
    scale = distill.RobustScale.fit(x[outside])
    detector: dict[str, Any] = (
        {"rule": "max(|value_z_last_15m|, |diff_z_last_15m|)", "features": list(RULE_FEATURES)}
        if shipped == "rule"
        else {
            "estimator": "distilled IsolationForest + robust-z teacher",
            **asdict(options.student),
        }
    )
    return {
        "detector": shipped,
        **detector,
        "flag_budget_outside_windows": {"warning": FLAG_BUDGET, "critical": CRITICAL_FLAG_BUDGET},
        "median": scale.median.tolist(),
        "mad": scale.mad.tolist(),
        "mad_meaning": "1.4826 x MAD of the tuning points outside the windows",
    }


# --- command line -----------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m novacron.models.training.series_anomaly",
        description="Build the univariate series anomaly detector on NAB series.",
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="NAB-like directory")
    parser.add_argument("--out", type=Path, default=BUNDLED_DIR, help="model directory")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    add_parity_dir_option(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    result = train(args.data, TrainOptions(workers=max(1, args.workers)), args.out, args.parity_dir)
    print(summary_text(result))
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0


def summary_text(result: TrainResult) -> str:
    metrics = result.card.metrics
    lines = [
        f"{MODEL_NAME}: ships the {result.shipped.name} "
        f"({'registered' if result.registered else 'NOT registered'})"
    ]
    for candidate in (result.shipped, result.other):
        lines.append(f"  {candidate.name}: warning {candidate.thresholds.warning:.4g}")
        lines.append("    tuning   " + _line(candidate.thresholds.tuning_summary))
        lines.append("    held-out " + _line(candidate.held_out))
    lines.append(
        "  held-out flag-every-point baseline: "
        + _line(metrics["held_out_flag_every_point_baseline"])
    )
    lines.append(f"  parity {metrics['onnx_parity_max_abs_diff']:.1e}")
    return "\n".join(lines)


def _line(m: dict[str, Any]) -> str:
    return (
        f"event P {m['event_precision']:.2f} R {m['event_recall']:.2f} F1 {m['event_f1']:.3f} "
        f"({m['detected_windows']}/{m['windows']} windows, {m['false_positive_runs']} FP runs) "
        f"| point F1 {m['point_f1']:.3f} | point-adjusted F1 {m['point_adjusted_f1']:.3f}"
    )


if __name__ == "__main__":
    sys.exit(main())
