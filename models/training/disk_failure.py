"""Disk failure model ``disk-failure-7d``: P(a drive fails within 7 days), on Backblaze data.

``python -m novacron.models.training.disk_failure [--data DIR] [--out models/bundled]``

Data: Backblaze Drive Stats daily rows (see
:mod:`novacron.models.training.datasets.backblaze`), replayed through the agent's own
``FeatureWindows`` so training features equal the agent's. A row is positive when its
drive fails within 7 days (the failure day and the six days before it).

Split (why this one): the shared sample covers only 20 days (2013-04-10 .. 04-29) and its
failures fall on six dates (04-10, 16, 17, 19, 24, 25). The test period starts at the
median day, 2013-04-20 (``TEST_FRACTION = 0.5``); it holds the 15 drives failing on 04-24
and 04-25, each with 4-5 days of rows before its failure. A training row dated ``d`` has
a label that looks at failures on days ``d .. d+6``, so the minimal leak-free gap is
``HORIZON - 1 day = 6 days``: training keeps rows dated up to 04-13, whose labels end on
04-19, before the first test day. A full 7-day gap would drop the 04-13 rows and with them
every positive row of the 12 drives failing on 04-19, for no gain in honesty. That
leaves 941 training rows (69 positive, 27 failing drives) -- enough positives, so drives
are not additionally separated: healthy drives appear in both periods, as in production
where a model trained on a fleet's past scores the same fleet later. Features look back
up to 7 days, so early test rows read SMART history from the training days: that is past
data the agent also has, not label leakage.

Model: a small random forest (30 trees, depth 4, at least 5 rows a leaf) with monotonic
constraints -- more reallocated / pending / uncorrectable sectors never lowers the risk;
age and temperature are unconstrained -- chosen over gradient boosting and unconstrained
forests on validation PR-AUC (drive-grouped cross-validation inside the training period,
never the test split). It is wrapped in sigmoid calibration (``CalibratedClassifierCV``,
``ensemble=False``, drive-grouped folds): isotonic calibration would break ONNX parity.

Threshold and calibration table come from out-of-fold predictions on the training
period (each drive scored by a model that never saw it): the alert threshold maximises
drive-level F1 there, the bins give the agent a Wilson interval per probability.

Held-out evaluation uses the issue's definitions (see ``docs/models.md``): drive-level
precision/recall/F1 (a drive is flagged if any of its rows up to and including its
failure day is flagged), lead time in days, and row-level PR-AUC. The candidate is
registered (copied into ``--out``) only if its held-out PR-AUC beats the current model's
on the same rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GroupKFold

from novacron.models.card import BUNDLED_DIR, CARD_SUFFIX, ModelCard, new_version
from novacron.models.evaluation.disk_backblaze import disk_metrics, score_rows
from novacron.models.evaluation.metrics import (
    average_precision,
    best_f1_threshold,
    per_subject_max,
)
from novacron.models.runtime import OnnxModel
from novacron.models.schema import DAY, DISK
from novacron.models.training import pipeline
from novacron.models.training.datasets import backblaze
from novacron.models.training.export import PARITY_TOLERANCE, export, max_abs_difference

log = logging.getLogger(__name__)

MODEL_NAME = "disk-failure-7d"
HORIZON_SECONDS = 7 * DAY
TEST_FRACTION = 0.5
# A row's label looks at failure days d .. d+6; rows are daily, so 6 days keep every
# training label inside the training period (see the module docstring).
GAP_SECONDS = HORIZON_SECONDS - DAY
FOLDS = 5
SEED = 0
CALIBRATION_EDGES = (0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)
MIN_BIN_ROWS = 20
ERROR_SIGNALS = frozenset(
    {
        "reallocated_sectors",
        "reported_uncorrect",
        "command_timeout",
        "current_pending_sectors",
        "offline_uncorrectable",
        "udma_crc_errors",
    }
)
DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "backblaze"
SOURCE = {
    "source": "Backblaze Drive Stats",
    "url": "https://www.backblaze.com/cloud-storage/resources/hard-drive-test-data",
    "via": "dvarfe/Backblaze_ML_Ops (sample: every row of the drives failing in the "
    "period plus 200 random healthy drives)",
    "licence": 'Backblaze terms: free to use with the source cited as "Backblaze Drive '
    'Stats"; the data may not be sold.',
}

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TrainedModel:
    estimator: CalibratedClassifierCV
    threshold: float
    validation: dict[str, float]
    calibration: dict[str, Any]
    baseline: list[float]


def monotonic_constraints() -> list[int]:
    """+1 for error counters (more errors never lowers risk), 0 for age and temperature."""
    return [1 if f.signal in ERROR_SIGNALS else 0 for f in DISK.features]


def new_estimator(subject: npt.NDArray[np.str_]) -> CalibratedClassifierCV:
    forest = RandomForestClassifier(
        n_estimators=30,
        max_depth=4,
        min_samples_leaf=5,
        monotonic_cst=monotonic_constraints(),
        random_state=SEED,
        n_jobs=1,
    )
    return CalibratedClassifierCV(forest, method="sigmoid", cv=drive_folds(subject), ensemble=False)


def drive_folds(
    subject: npt.NDArray[np.str_], folds: int = FOLDS
) -> list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]:
    """Cross-validation folds that never put one drive on both sides."""
    splitter = GroupKFold(n_splits=min(folds, len(np.unique(subject))))
    return list(splitter.split(np.zeros(len(subject)), groups=subject))


def out_of_fold_scores(train: pipeline.Dataset) -> FloatArray:
    """Every training row scored by a calibrated model fitted without its drive."""
    x = train.filled()
    scores = np.empty(len(train))
    for fit_rows, held_rows in drive_folds(train.subject):
        model = new_estimator(train.subject[fit_rows]).fit(x[fit_rows], train.y[fit_rows])
        scores[held_rows] = model.predict_proba(x[held_rows])[:, 1]
    return scores


def calibration_bins(
    score: FloatArray, y: npt.NDArray[np.int_], edges: Sequence[float] = CALIBRATION_EDGES
) -> list[list[float]]:
    """``[[p_low, p_high, n_rows, n_positive], ...]`` covering [0, 1].

    A bin with fewer than MIN_BIN_ROWS rows is merged into the next (the last into the
    previous), so every bin has enough rows for a Wilson interval.
    """
    bins: list[list[float]] = []
    low = edges[0]
    for i, high in enumerate(edges[1:], start=1):
        last = i == len(edges) - 1
        inside = (score >= low) & ((score <= high) if last else (score < high))
        rows, positives = int(inside.sum()), int(y[inside].sum())
        if bins and bins[-1][2] < MIN_BIN_ROWS:
            bins[-1] = [bins[-1][0], high, bins[-1][2] + rows, bins[-1][3] + positives]
        else:
            bins.append([low, high, rows, positives])
        low = high
    if len(bins) > 1 and bins[-1][2] < MIN_BIN_ROWS:
        tail = bins.pop()
        bins[-1] = [bins[-1][0], tail[1], bins[-1][2] + tail[2], bins[-1][3] + tail[3]]
    return bins


def train(train_rows: pipeline.Dataset) -> TrainedModel:
    """Fit on the training period; threshold, calibration and baseline from it only."""
    oof = out_of_fold_scores(train_rows)
    drive_names, drive_score = per_subject_max(train_rows.subject, oof)
    _, drive_label = per_subject_max(train_rows.subject, train_rows.y)
    threshold, drive_f1 = best_f1_threshold(drive_label, drive_score)
    x = train_rows.filled()
    estimator = new_estimator(train_rows.subject).fit(x, train_rows.y)
    negatives = x[train_rows.y == 0]
    return TrainedModel(
        estimator=estimator,
        threshold=threshold,
        validation={
            "row_pr_auc": average_precision(train_rows.y, oof),
            "drive_pr_auc": average_precision(drive_label, drive_score),
            "drive_f1_at_threshold": drive_f1,
            "drives": float(len(drive_names)),
        },
        calibration={
            "bins": calibration_bins(oof, train_rows.y),
            "source": "out-of-fold predictions on the training period (drive-grouped folds)",
        },
        baseline=[float(v) for v in np.median(negatives, axis=0)],
    )


def split(data: backblaze.BackblazeData) -> pipeline.Split:
    parts = pipeline.time_split(data.dataset, TEST_FRACTION, GAP_SECONDS)
    pipeline.validate(parts)
    return parts


def _day(timestamp: float) -> str:
    return backblaze.timestamp_day(timestamp).isoformat()


def _period(rows: pipeline.Dataset) -> list[str]:
    return [_day(float(rows.time.min())), _day(float(rows.time.max()))]


def training_data(data: backblaze.BackblazeData, parts: pipeline.Split) -> dict[str, Any]:
    ds = data.dataset
    return {
        **SOURCE,
        "files": list(data.files),
        "rows": len(ds),
        "skipped_rows": data.skipped_rows,
        "drives": len(np.unique(ds.subject)),
        "failed_drives": len(data.failure_time),
        "date_range": _period(ds),
        "label": "drive fails within 7 days of the row's date (failure day counts)",
        "sampling": "failing drives are enriched (all of them, only 200 healthy drives), so "
        "probabilities are calibrated to this sample's base rate and overstate risk on a "
        "whole fleet; rank and threshold, do not read them as fleet failure rates",
        "split": {
            "train_period": _period(parts.train),
            "test_period": _period(parts.test),
            "gap_days": GAP_SECONDS / DAY,
            "train_rows": len(parts.train),
            "train_positive_rows": int(parts.train.y.sum()),
            "test_rows": len(parts.test),
            "test_positive_rows": int(parts.test.y.sum()),
        },
    }


def current_pr_auc(card_path: Path, rows: pipeline.Dataset) -> float:
    """The model at ``card_path`` scored through onnxruntime on the same held-out rows."""
    return average_precision(rows.y, score_rows(OnnxModel.load(card_path), rows))


@dataclass(frozen=True)
class TrainingRun:
    card: ModelCard  # the candidate's card (written to out_dir only if registered)
    registered: bool
    estimator: CalibratedClassifierCV  # kept for parity checks against the ONNX file
    split: pipeline.Split


def run(data_dir: Path, out_dir: Path, *, force: bool = False) -> TrainingRun:
    """Train, evaluate on the held-out later period, export; register if better."""
    started = time.perf_counter()
    data = backblaze.load(data_dir, HORIZON_SECONDS)
    parts = split(data)
    model = train(parts.train)
    test_x = parts.test.filled()
    sklearn_probabilities = model.estimator.predict_proba(test_x)
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        card = export(
            model.estimator,
            name=MODEL_NAME,
            version=new_version(),
            kind="failure",
            schema=DISK,
            out_dir=staging,
            outputs={
                "probabilities": "(n, 2) float32; column 1 = P(drive fails within 7 days), "
                "sigmoid-calibrated; flag with thresholds.alert",
            },
            classifier=True,
            horizons_seconds=(HORIZON_SECONDS,),
            thresholds={"alert": model.threshold},
            training_data=training_data(data, parts),
            calibration=model.calibration,
            extra={
                "baseline": model.baseline,
                "baseline_meaning": "training-period medians of negative rows (filled)",
                "estimator": "CalibratedClassifierCV(sigmoid, ensemble=False) over "
                "RandomForestClassifier(30 trees, depth 4, min leaf 5, monotonic +1 on "
                "SMART error counters)",
                "seed": SEED,
            },
        )
        staged = staging / f"{MODEL_NAME}{CARD_SUFFIX}"
        onnx_model = OnnxModel.load(staged)
        parity = max_abs_difference(onnx_model, sklearn_probabilities, test_x, "probabilities")
        if parity >= PARITY_TOLERANCE:
            raise RuntimeError(f"ONNX/scikit-learn parity {parity:.2e} >= {PARITY_TOLERANCE}")
        score = score_rows(onnx_model, parts.test)
        metrics = disk_metrics(parts.test, data.is_failure_row(parts.test), score, model.threshold)
        card = dataclasses.replace(
            card,
            metrics={
                "held_out": metrics,
                "validation": model.validation,
                "onnx_sklearn_max_abs_difference": parity,
                "training_seconds": round(time.perf_counter() - started, 2),
            },
        )
        card.write(staging)
        current = out_dir / f"{MODEL_NAME}{CARD_SUFFIX}"
        candidate_score = float(metrics["row_level"]["pr_auc"])
        registered = force or pipeline.register(
            card,
            candidate_score,
            current,
            lambda path: current_pr_auc(path, parts.test),
        )
        if registered:
            out_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(staging / card.onnx_file, out_dir / card.onnx_file)
            shutil.copyfile(staged, current)
    return TrainingRun(card, registered, model.estimator, parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m novacron.models.training.disk_failure",
        description="Train disk-failure-7d on Backblaze Drive Stats and ship it if better.",
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Backblaze CSV dir")
    parser.add_argument("--out", type=Path, default=BUNDLED_DIR, help="model directory")
    parser.add_argument(
        "--force", action="store_true", help="register even if it does not beat the current"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = run(args.data, args.out, force=args.force)
    except (FileNotFoundError, pipeline.DataValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    card = result.card
    held = card.metrics["held_out"]
    drive = held["drive_level"]
    print(
        f"{card.name} {card.version}: held-out {held['period'][0]}..{held['period'][1]} "
        f"row PR-AUC {held['row_level']['pr_auc']:.3f} "
        f"(base rate {held['row_level']['base_rate']:.3f}); drive precision "
        f"{drive['precision']:.2f} recall {drive['recall']:.2f} F1 {drive['f1']:.2f}; "
        f"alert threshold {card.thresholds['alert']:.3f}; parity "
        f"{card.metrics['onnx_sklearn_max_abs_difference']:.1e}"
    )
    print(
        f"registered in {args.out}" if result.registered else "not registered: current is as good"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
