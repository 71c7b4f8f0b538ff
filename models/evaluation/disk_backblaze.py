"""Evaluate the shipped disk failure model on Backblaze Drive Stats CSVs.

``python -m novacron.models.evaluate disk-backblaze --data DIR [--json]
[--predictions-out FILE] [--card CARD]``

``DIR`` is laid out like ``../shared/data/backblaze/`` (every ``*.csv`` in it, Backblaze
columns). Each drive's rows are replayed through the agent's ``FeatureWindows`` and
scored by the shipped ONNX model through onnxruntime (never scikit-learn); a row is
flagged when its probability reaches the card's ``thresholds.alert``.

Definitions (also in ``docs/models.md``): a row is positive when its drive fails within
the model's horizon (7 days; the failure day counts). A drive is positive when its
failure day is among the rows; it is flagged when any of its rows up to and including
its failure day is flagged (a healthy drive: any row). Drive-level precision, recall and
F1 count drives; lead time is failure day minus first flagged day, in days, over the
detected failing drives. Row-level PR-AUC is the step-wise average precision of the
scores against the row labels.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from novacron.models.card import bundled_card_path
from novacron.models.evaluation.metrics import (
    average_precision,
    subject_detection,
    wilson_interval,
)
from novacron.models.runtime import ModelIntegrityError, OnnxModel
from novacron.models.schema import DAY
from novacron.models.training.datasets import backblaze
from novacron.models.training.pipeline import Dataset

log = logging.getLogger(__name__)

MODEL_NAME = "disk-failure-7d"
PREDICTION_COLUMNS = ("series_or_serial", "timestamp_or_date", "score", "flag")

FloatArray = npt.NDArray[np.float64]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options beyond the dispatcher's (--data, --json, --predictions-out, --card)."""


def score_rows(model: OnnxModel, rows: Dataset) -> FloatArray:
    """P(failure within the horizon) per row, from onnxruntime."""
    if len(rows) == 0:
        return np.empty(0)
    probabilities = model.run(rows.filled())["probabilities"]
    return np.asarray(probabilities[:, 1], dtype=np.float64)


def _lead_days(seconds: tuple[float, ...]) -> dict[str, float | None]:
    days = np.asarray(seconds) / DAY
    if days.size == 0:
        return {"median": None, "mean": None, "min": None, "max": None}
    return {
        "median": float(np.median(days)),
        "mean": float(days.mean()),
        "min": float(days.min()),
        "max": float(days.max()),
    }


def disk_metrics(
    rows: Dataset, failure_row: npt.NDArray[np.bool_], score: FloatArray, threshold: float
) -> dict[str, Any]:
    """Drive-level and row-level metrics of ``score`` over ``rows`` (module definitions)."""
    flag = score >= threshold
    drives = subject_detection(rows.subject, rows.time, flag, failure_row)
    pr_auc = average_precision(rows.y, score)
    return {
        "period": [
            backblaze.timestamp_day(float(rows.time.min())).isoformat(),
            backblaze.timestamp_day(float(rows.time.max())).isoformat(),
        ],
        "threshold": threshold,
        "drive_level": {
            "drives": drives.subjects,
            "positive_drives": drives.positive,
            "flagged_drives": drives.flagged,
            "tp": drives.tp,
            "fp": drives.fp,
            "fn": drives.fn,
            "tn": drives.tn,
            "precision": drives.precision,
            "recall": drives.recall,
            "f1": drives.f1,
            "precision_ci95": wilson_interval(drives.tp, drives.tp + drives.fp),
            "recall_ci95": wilson_interval(drives.tp, drives.tp + drives.fn),
            "lead_time_days": _lead_days(drives.lead_times_seconds),
        },
        "row_level": {
            "rows": len(rows),
            "positive_rows": int(rows.y.sum()),
            "flagged_rows": int(flag.sum()),
            "base_rate": float(rows.y.mean()),
            "pr_auc": None if np.isnan(pr_auc) else pr_auc,
        },
    }


def write_predictions(path: Path, rows: Dataset, score: FloatArray, threshold: float) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(PREDICTION_COLUMNS)
        for serial, timestamp, value in zip(rows.subject, rows.time, score, strict=True):
            day = backblaze.timestamp_day(float(timestamp)).isoformat()
            writer.writerow((serial, day, repr(float(value)), int(value >= threshold)))


def _interval(bounds: list[float] | tuple[float, float] | None) -> str:
    return "" if bounds is None else f"[{bounds[0]:.2f}, {bounds[1]:.2f}]"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def render(report: dict[str, Any]) -> str:
    drive, row = report["drive_level"], report["row_level"]
    lead = drive["lead_time_days"]
    lead_text = (
        "no detected failures"
        if lead["median"] is None
        else f"median {lead['median']:.1f}, mean {lead['mean']:.2f} "
        f"(min {lead['min']:.0f}, max {lead['max']:.0f})"
    )
    pr_auc = "n/a (no positive rows)" if row["pr_auc"] is None else f"{row['pr_auc']:.3f}"
    return "\n".join(
        [
            f"model      {report['model']['name']} {report['model']['version']}, alert "
            f"threshold {report['threshold']:.4f}, horizon {report['horizon_days']:g} days",
            f"data       {report['data']} ({_count(len(report['files']), 'file')}, "
            f"{row['rows']} rows, "
            f"{report['skipped_rows']} skipped, {report['period'][0]}..{report['period'][1]})",
            f"drives     {drive['drives']} ({drive['positive_drives']} failing), flagged "
            f"{drive['flagged_drives']}: tp {drive['tp']} fp {drive['fp']} fn {drive['fn']} "
            f"tn {drive['tn']}",
            f"drive      precision {drive['precision']:.3f} {_interval(drive['precision_ci95'])}  "
            f"recall {drive['recall']:.3f} {_interval(drive['recall_ci95'])}  "
            f"F1 {drive['f1']:.3f}",
            f"lead time  days: {lead_text}",
            f"rows       PR-AUC {pr_auc} (base rate {row['base_rate']:.4f}, "
            f"{row['positive_rows']} positive, {row['flagged_rows']} flagged)",
        ]
    )


def evaluate(data_dir: Path, card_path: Path) -> tuple[dict[str, Any], Dataset, FloatArray]:
    model = OnnxModel.load(card_path)
    horizon = model.card.horizons_seconds[0]
    data = backblaze.load(data_dir, horizon)
    rows = data.dataset
    if len(rows) == 0:
        raise ValueError(f"no readable rows in {data_dir}")
    score = score_rows(model, rows)
    threshold = float(model.card.thresholds["alert"])
    report = {
        "dataset": "disk-backblaze",
        "data": str(data_dir),
        "files": list(data.files),
        "skipped_rows": data.skipped_rows,
        "model": {
            "name": model.card.name,
            "version": model.card.version,
            "sha256": model.card.sha256,
        },
        "horizon_days": horizon / DAY,
        **disk_metrics(rows, data.is_failure_row(), score, threshold),
    }
    return report, rows, score


def run(args: argparse.Namespace) -> int:
    card_path = args.card or bundled_card_path(MODEL_NAME)
    try:
        report, rows, score = evaluate(Path(args.data), Path(card_path))
    except (FileNotFoundError, ValueError, ModelIntegrityError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.predictions_out:
        write_predictions(Path(args.predictions_out), rows, score, report["threshold"])
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0
