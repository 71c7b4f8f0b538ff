"""Evaluate the shipped series anomaly detector on Numenta Anomaly Benchmark series.

``python -m novacron.models.evaluate nab --data DIR [--json] [--predictions-out FILE]
[--card CARD] [--workers N]``

``DIR`` is laid out like ``../shared/data/nab/``: ``data/<category>/<series>.csv``
(``timestamp,value``) and ``combined_windows.json`` (labelled anomaly windows per
series; only series named there are evaluated). Every point of a series becomes a
``series-v1`` feature row (:mod:`novacron.models.series`, causal: a point sees only
itself and earlier points), is scored by the shipped ONNX model through onnxruntime
(never scikit-learn), and is flagged when its score reaches the card's
``thresholds.warning``.

Definitions (also in ``docs/models.md``, implemented in
:mod:`~novacron.models.evaluation.event_metrics`):

* a labelled window is **detected** if any flag falls inside it (one true positive per
  window); **consecutive flags outside all windows form one false positive**;
  event-level precision = detected / (detected + false positives), recall =
  detected / windows, F1 their harmonic mean. No point adjustment.
* **point level**: every point inside a window is positive; precision/recall/F1 of the
  flags, no adjustment.
* **point-adjusted F1** (printed beside, for comparison with published numbers only):
  every point of a detected window counts as flagged.

Counts are summed over the series of a category (and over all series), then turned
into ratios. Series the model was tuned on (listed in its card) are reported apart from
the held-out ones. The flag-every-point baseline is printed too: under NAB's rule it
scores a high event F1, which is why the point-level figures stand beside it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from novacron.models.card import bundled_card_path
from novacron.models.evaluation.event_metrics import WindowCounts, total, window_counts
from novacron.models.runtime import ModelIntegrityError, OnnxModel
from novacron.models.series import many_model_inputs
from novacron.models.training.datasets import nab

MODEL_NAME = "series-anomaly"
PREDICTION_COLUMNS = ("series_or_serial", "timestamp_or_date", "score", "flag")
DEFINITIONS = {
    "event": "a window is detected if any flag falls inside it; consecutive flags outside "
    "all windows are one false positive; precision = detected/(detected+false positives), "
    "recall = detected/windows; no point adjustment",
    "point": "points inside windows are positive; precision/recall/F1 of the flags",
    "point_adjusted": "as point, but every point of a detected window counts as flagged "
    "(for comparison with published numbers only)",
}

FloatArray = npt.NDArray[np.float64]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="processes computing the per-point features (default: up to 2)",
    )


def score_series(
    model: OnnxModel, series: Sequence[nab.NabSeries], workers: int
) -> list[FloatArray]:
    """One score per point of each series, from onnxruntime."""
    output = next(iter(model.card.outputs))
    inputs = many_model_inputs([(s.times, s.values) for s in series], workers)
    return [np.asarray(model.run(x)[output], dtype=np.float64).reshape(len(x)) for x in inputs]


def _summary(counts: list[WindowCounts]) -> dict[str, Any]:
    return total(counts).summary()


def evaluate(
    data_dir: Path, card_path: Path, workers: int = 1
) -> tuple[dict[str, Any], list[nab.NabSeries], list[FloatArray]]:
    if not data_dir.is_dir():
        raise FileNotFoundError(f"no such directory: {data_dir}")
    model = OnnxModel.load(card_path)
    series = nab.load(data_dir)
    if not series:
        raise ValueError(f"no labelled series under {data_dir}")
    scores = score_series(model, series, workers)
    warning = float(model.card.thresholds["warning"])
    counts = [
        window_counts(s.times, score >= warning, s.windows)
        for s, score in zip(series, scores, strict=True)
    ]
    baseline = [window_counts(s.times, np.ones(len(s.times), bool), s.windows) for s in series]
    tuned_on = set(model.card.training_data.get("tuning_series", []))
    categories = sorted({s.category for s in series})
    report: dict[str, Any] = {
        "dataset": "nab",
        "data": str(data_dir),
        "model": {
            "name": model.card.name,
            "version": model.card.version,
            "sha256": model.card.sha256,
            "detector": model.card.extra.get("detector"),
        },
        "threshold": warning,
        "series": len(series),
        "points": int(sum(len(s.times) for s in series)),
        "categories": {
            c: _summary([n for s, n in zip(series, counts, strict=True) if s.category == c])
            for c in categories
        },
        "overall": _summary(counts),
        "held_out": _summary(
            [n for s, n in zip(series, counts, strict=True) if s.key not in tuned_on]
        ),
        "tuning": _summary([n for s, n in zip(series, counts, strict=True) if s.key in tuned_on]),
        "flag_every_point_baseline": _summary(baseline),
        "definitions": DEFINITIONS,
    }
    return report, series, scores


def write_predictions(
    path: Path, series: Sequence[nab.NabSeries], scores: Sequence[FloatArray], threshold: float
) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(PREDICTION_COLUMNS)
        for s, score in zip(series, scores, strict=True):
            for stamp, value in zip(s.stamps, score.tolist(), strict=True):
                writer.writerow((s.key, stamp, repr(float(value)), int(value >= threshold)))


def _row(label: str, m: dict[str, Any]) -> str:
    return (
        f"{label:<28}{m['subjects']:>4} {m['windows']:>4} {m['detected_windows']:>4} "
        f"{m['false_positive_runs']:>5}   {m['event_precision']:.3f} {m['event_recall']:.3f} "
        f"{m['event_f1']:.3f}   {m['point_precision']:.3f} {m['point_recall']:.3f} "
        f"{m['point_f1']:.3f}   {m['point_adjusted_f1']:.3f}"
    )


def render(report: dict[str, Any]) -> str:
    model = report["model"]
    lines = [
        f"model   {model['name']} {model['version']} ({model['detector']}), "
        f"flag = score >= {report['threshold']:.4g}",
        f"data    {report['data']} ({report['series']} series, {report['points']} points)",
        "",
        f"{'':<28}{'ser':>4} {'win':>4} {'det':>4} {'FPrun':>5}   "
        f"{'event P  R     F1':<19}   {'point P  R     F1':<19}   PA-F1",
    ]
    lines += [_row(c, m) for c, m in report["categories"].items()]
    lines.append(_row("all", report["overall"]))
    if report["held_out"]["subjects"]:
        lines.append(_row("held out (not tuned on)", report["held_out"]))
    if report["tuning"]["subjects"]:
        lines.append(_row("tuning series", report["tuning"]))
    lines.append(_row("baseline: flag every point", report["flag_every_point_baseline"]))
    lines += [
        "",
        "event: a window is detected by any flag inside it; consecutive flags outside all "
        "windows = one FP; no point adjustment",
        "PA-F1: point-adjusted F1, for comparison with published numbers only",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    card_path = args.card or bundled_card_path(MODEL_NAME)
    try:
        report, series, scores = evaluate(
            Path(args.data), Path(card_path), max(1, int(getattr(args, "workers", 1)))
        )
    except (FileNotFoundError, ValueError, KeyError, ModelIntegrityError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.predictions_out:
        write_predictions(Path(args.predictions_out), series, scores, report["threshold"])
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0
