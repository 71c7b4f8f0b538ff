"""``python -m novacron.models.training.node_failure``: train and ship the node failure models.

Two models, one per horizon (``node-failure-30m``, ``node-failure-24h``): the calibrated
probability that this node fails within the horizon, from the ``node-v1`` features.

The steps, each for a reason:

1. **Simulate** a training fleet and a separately seeded evaluation fleet
   (:mod:`~novacron.models.training.simulator`; no public data has labelled node failures
   with our signals).
2. **Replay** every trace through :class:`~novacron.models.windows.FeatureWindows`, the
   same code the agent runs, and take a feature row every 10 simulated minutes up to the
   failure (rows after it do not exist on a dead node). NaN stays NaN in the dataset;
   models see the schema's fills, as on the agent.
3. **Split by time**: the later 30 % is held out; training rows whose horizon reaches into
   it are dropped (``gap = horizon``). Within the earlier period a third of the nodes
   (stratified: failing and healthy) is kept aside for calibration and the alert
   threshold; simulated nodes are independent, so this needs no second time gap.
4. **Train** a small gradient-boosted tree ensemble, calibrate it (sigmoid: isotonic
   does not keep ONNX parity), pick the threshold with the best F1 on the calibration
   nodes, and measure everything on the held-out later period and on the evaluation fleet.
5. **Export** to ONNX with its card, check parity and latency, and **register** it into
   ``--out`` only if it beats the model already there on the same held-out rows (PR-AUC).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.frozen import FrozenEstimator

from novacron.models.card import BUNDLED_DIR, CARD_SUFFIX, ModelCard, new_version
from novacron.models.evaluation.failure_metrics import failure_metrics
from novacron.models.evaluation.metrics import average_precision, best_f1_threshold
from novacron.models.runtime import OnnxModel
from novacron.models.schema import DAY, HOUR, MINUTE, NODE
from novacron.models.training import fuse
from novacron.models.training.distill import call_latency_us
from novacron.models.training.export import (
    PARITY_TOLERANCE,
    add_parity_dir_option,
    export,
    max_abs_difference,
    save_parity,
)
from novacron.models.training.pipeline import (
    Dataset,
    DataValidationError,
    Split,
    register,
    time_split,
    validate,
)
from novacron.models.training.simulator import SimConfig, iter_node_samples, simulate_node
from novacron.models.windows import FeatureWindows

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
HORIZONS: dict[str, float] = {"node-failure-30m": 30 * MINUTE, "node-failure-24h": DAY}
ROW_STEP_SECONDS = 10 * MINUTE
WARMUP_SECONDS = HOUR  # the first hour has no 1 h features at all
TEST_FRACTION = 0.3
CALIBRATION_FRACTION = 0.35
# Fine bins near zero, where almost all predictions fall; wider ones above.
CALIBRATION_EDGES = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.85, 1.0)
PARITY_ROWS = 400
OUTPUT = "probabilities"
# Where the parity evidence for shipped models goes in a source checkout.


@dataclass(frozen=True)
class TrainOptions:
    """Everything that decides the trained models (recorded in the card)."""

    nodes: int = 150
    days: float = 4.0
    seed: int = 7
    eval_nodes: int = 50
    failure_fraction: float = 0.3  # enriched: a real fleet loses a few % of nodes a year
    trees: int = 40
    depth: int = 3
    learning_rate: float = 0.1
    min_leaf_rows: int = 20
    # Positives are up-weighted to at least this share of the weight (see fit_calibrated).
    min_positive_share: float = 0.02
    workers: int = 2

    def fleet(self) -> SimConfig:
        return SimConfig(
            nodes=self.nodes,
            days=self.days,
            seed=self.seed,
            failure_fraction=self.failure_fraction,
        )

    def evaluation_fleet(self) -> SimConfig:
        return replace(self.fleet(), nodes=self.eval_nodes, seed=self.seed + 1000)


@dataclass(frozen=True)
class FleetRows:
    """Feature rows of a fleet before labelling (labels depend on the horizon)."""

    x: FloatArray  # (n, features), NaN = no data
    time: FloatArray
    subject: npt.NDArray[np.str_]
    failure_time: FloatArray  # the subject's failure time, NaN if it does not fail

    def labelled(self, horizon_seconds: float) -> Dataset:
        until = self.failure_time - self.time
        y = ((until > 0) & (until <= horizon_seconds)).astype(np.int_)
        return Dataset(NODE, self.x, y, self.time, self.subject)

    def failure_times_of(self, data: Dataset) -> FloatArray:
        lookup = dict(zip(self.subject.tolist(), self.failure_time.tolist(), strict=True))
        return np.array([lookup[s] for s in data.subject.tolist()], dtype=np.float64)


@dataclass(frozen=True)
class TrainResult:
    name: str
    card: ModelCard
    registered: bool
    model: CalibratedClassifierCV
    test: Dataset


# --- dataset ----------------------------------------------------------------------


def node_rows(
    config: SimConfig,
    index: int,
    *,
    step_seconds: float = ROW_STEP_SECONDS,
    warmup_seconds: float = WARMUP_SECONDS,
) -> FleetRows:
    """Replay one simulated node through FeatureWindows; a feature row every ``step``."""
    trace = simulate_node(config, index)
    windows = FeatureWindows(NODE, interval_hint_seconds=config.interval_seconds)
    failure = math.nan if trace.failure_time is None else trace.failure_time
    end = trace.times[-1] + 1 if trace.failure_time is None else trace.failure_time
    next_row = trace.times[0] + warmup_seconds
    rows: list[FloatArray] = []
    times: list[float] = []
    for t, signals in iter_node_samples(trace):
        if t >= end:
            break
        windows.add(t, signals)
        if t >= next_row:
            rows.append(windows.features(t))
            times.append(t)
            next_row += step_seconds
    count = len(rows)
    return FleetRows(
        x=np.array(rows, dtype=np.float64).reshape(count, len(NODE.features)),
        time=np.array(times, dtype=np.float64),
        subject=np.array([trace.node_id] * count, dtype=np.str_),
        failure_time=np.full(count, failure),
    )


def _rows_of(args: tuple[SimConfig, list[int]]) -> FleetRows:
    config, indices = args
    return _concat([node_rows(config, i) for i in indices])


def fleet_rows(config: SimConfig, workers: int = 1) -> FleetRows:
    """Rows of every node of a fleet in (time, node) order, built in ``workers`` processes.

    The order does not depend on the worker count, so neither does the trained model
    (boosting subsamples rows by position).
    """
    if workers <= 1:
        merged = _rows_of((config, list(range(config.nodes))))
    else:
        chunks = [list(range(k, config.nodes, workers)) for k in range(workers)]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            merged = _concat(list(pool.map(_rows_of, [(config, chunk) for chunk in chunks])))
    order = np.lexsort((merged.subject, merged.time))
    return FleetRows(
        merged.x[order], merged.time[order], merged.subject[order], merged.failure_time[order]
    )


def _concat(parts: Sequence[FleetRows]) -> FleetRows:
    return FleetRows(
        x=np.concatenate([p.x for p in parts]).reshape(-1, len(NODE.features)),
        time=np.concatenate([p.time for p in parts]),
        subject=np.concatenate([p.subject for p in parts]).astype(np.str_),
        failure_time=np.concatenate([p.failure_time for p in parts]),
    )


def split_for(rows: FleetRows, horizon_seconds: float) -> Split:
    """The later period held out; training rows whose label looks into it dropped."""
    split = time_split(rows.labelled(horizon_seconds), TEST_FRACTION, gap_seconds=horizon_seconds)
    validate(split)
    return split


def calibration_nodes(train: Dataset, fraction: float, seed: int) -> npt.NDArray[np.bool_]:
    """Rows of the nodes kept aside for calibration: a share of the failing and of the
    healthy nodes each, so both parts see failures."""
    rng = np.random.default_rng(seed)
    chosen: set[str] = set()
    positive = set(train.subject[train.y == 1].tolist())
    for group in (
        sorted(positive),
        sorted(set(train.subject.tolist()) - positive),
    ):
        take = max(1, round(fraction * len(group))) if group else 0
        chosen.update(rng.permutation(np.array(group, dtype=np.str_))[:take].tolist())
    return np.isin(train.subject, list(chosen))


# --- training ---------------------------------------------------------------------


def fit_calibrated(
    fit: Dataset, calibration: Dataset, options: TrainOptions
) -> CalibratedClassifierCV:
    """Trees on the fit nodes, a sigmoid on the calibration nodes, one ONNX-ready model.

    With positives this rare (0.2 % of rows for 30 min) a boosting step on a leaf of a few
    positives and many near-zero probabilities divides by almost nothing: log-odds of
    1e100 that wreck the ranking and the sigmoid fit. Up-weighting positives to
    ``min_positive_share`` of the weight and a minimum leaf size keep the steps finite;
    the calibration, fitted on unweighted rows, gives the probabilities back their scale.
    """
    trees = GradientBoostingClassifier(
        n_estimators=options.trees,
        max_depth=options.depth,
        learning_rate=options.learning_rate,
        min_samples_leaf=options.min_leaf_rows,
        subsample=0.8,
        random_state=options.seed,
    ).fit(fit.filled(), fit.y, sample_weight=positive_weights(fit.y, options.min_positive_share))
    calibrated = CalibratedClassifierCV(FrozenEstimator(trees), method="sigmoid")
    calibrated.fit(calibration.filled(), calibration.y)
    # skl2onnx does not know FrozenEstimator (a pass-through wrapper that only stops
    # refitting): hand it the fitted trees it wraps; predictions are unchanged.
    for member in calibrated.calibrated_classifiers_:
        member.estimator = trees
    calibrated.estimator = trees
    return calibrated


def positive_weights(y: npt.NDArray[np.int_], min_share: float) -> FloatArray:
    """Row weights giving positives at least ``min_share`` of the total weight."""
    positives = int(y.sum())
    negatives = len(y) - positives
    weight = max(1.0, min_share / (1 - min_share) * negatives / max(positives, 1))
    return np.where(y == 1, weight, 1.0)


def probability(model: CalibratedClassifierCV, data: Dataset) -> FloatArray:
    return np.asarray(model.predict_proba(data.filled())[:, 1], dtype=np.float64)


def calibration_bins(p: FloatArray, y: npt.NDArray[np.int_]) -> list[list[float]]:
    bins = []
    for low, high in itertools.pairwise(CALIBRATION_EDGES):
        inside = (p >= low) & ((p < high) | (high == 1.0))
        bins.append([low, high, int(inside.sum()), int(y[inside].sum())])
    return bins


def build_rows(options: TrainOptions) -> tuple[FleetRows, FleetRows]:
    """Feature rows of the training fleet and of the evaluation fleet."""
    started = time.perf_counter()
    rows = fleet_rows(options.fleet(), options.workers)
    evaluation_rows = fleet_rows(options.evaluation_fleet(), options.workers)
    log.info(
        "feature rows: %d training fleet, %d evaluation fleet (%.0f s)",
        len(rows.time),
        len(evaluation_rows.time),
        time.perf_counter() - started,
    )
    return rows, evaluation_rows


def train(
    options: TrainOptions,
    out_dir: Path,
    parity_dir: Path | None = None,
    horizons: dict[str, float] | None = None,
    rows: tuple[FleetRows, FleetRows] | None = None,
    *,
    force: bool = False,
) -> list[TrainResult]:
    """Train, evaluate, export and (if better, or ``force``) register each horizon into
    ``out_dir``; then refresh the fused node model there (:mod:`.fuse`).

    ``rows`` are :func:`build_rows` of ``options`` when given (saves rebuilding them).
    """
    training_rows, evaluation_rows = rows or build_rows(options)
    results = [
        _train_horizon(
            name,
            horizon,
            rows=training_rows,
            evaluation_rows=evaluation_rows,
            options=options,
            out_dir=out_dir,
            parity_dir=parity_dir,
            force=force,
        )
        for name, horizon in (horizons or HORIZONS).items()
    ]
    if any(result.registered for result in results):
        fuse.refresh(out_dir)
    return results


def _train_horizon(
    name: str,
    horizon: float,
    *,
    rows: FleetRows,
    evaluation_rows: FleetRows,
    options: TrainOptions,
    out_dir: Path,
    parity_dir: Path | None,
    force: bool,
) -> TrainResult:
    split = split_for(rows, horizon)
    in_calibration = calibration_nodes(split.train, CALIBRATION_FRACTION, options.seed)
    fit, calibration = split.train.rows(~in_calibration), split.train.rows(in_calibration)
    for part, label in ((fit, "fit"), (calibration, "calibration")):
        if int(part.y.sum()) == 0:
            raise DataValidationError(f"{name}: no positive rows in the {label} nodes")
    model = fit_calibrated(fit, calibration, options)
    p_calibration = probability(model, calibration)
    threshold, _ = best_f1_threshold(calibration.y, p_calibration)
    evaluation = evaluation_rows.labelled(horizon)
    metrics: dict[str, Any] = {
        "held_out_later_period": _metrics(model, split.test, rows, threshold),
        "evaluation_fleet": _metrics(model, evaluation, evaluation_rows, threshold),
        # In-sample for the sigmoid and the threshold: shown, never used to judge.
        "calibration_nodes_in_sample": _metrics(model, calibration, rows, threshold),
    }
    negatives = fit.filled()[fit.y == 0]
    with tempfile.TemporaryDirectory() as staging:
        card = export(
            model,
            name=name,
            version=new_version(),
            kind="failure",
            schema=NODE,
            out_dir=Path(staging),
            outputs={
                OUTPUT: f"(n, 2); column 1 = P(node fails within {horizon / HOUR:g} h)",
            },
            classifier=True,
            horizons_seconds=(horizon,),
            thresholds={"alert": threshold},
            metrics=metrics,
            training_data=_training_data(options, split, fit, calibration, horizon),
            calibration={
                "method": "sigmoid (Platt) on the calibration nodes of the training period",
                "bins": calibration_bins(p_calibration, calibration.y),
            },
            extra={
                "baseline": np.median(negatives, axis=0).astype(float).tolist(),
                "baseline_meaning": "median of the fit period's negative rows (model input)",
                "estimator": {
                    "type": "GradientBoostingClassifier + CalibratedClassifierCV(sigmoid)",
                    "trees": options.trees,
                    "depth": options.depth,
                    "learning_rate": options.learning_rate,
                    "min_leaf_rows": options.min_leaf_rows,
                    "positive_weight": float(
                        positive_weights(fit.y, options.min_positive_share).max()
                    ),
                },
            },
        )
        card = _check_onnx(model, card, Path(staging), split.test)
        score = float(card.metrics["held_out_later_period"]["pr_auc"])
        registered = force or register(
            card, score, out_dir / f"{name}{CARD_SUFFIX}", held_out_scorer(split.test)
        )
        if registered:
            out_dir.mkdir(parents=True, exist_ok=True)
            for file in (card.onnx_file, f"{name}{CARD_SUFFIX}"):
                shutil.copyfile(Path(staging) / file, out_dir / file)
            if parity_dir is not None:
                _write_parity(model, card, split.test, parity_dir)
    log.info("%s trained (%s)", name, "registered" if registered else "not registered")
    return TrainResult(name, card, registered, model, split.test)


def _metrics(
    model: CalibratedClassifierCV, data: Dataset, rows: FleetRows, threshold: float
) -> dict[str, Any]:
    return failure_metrics(
        probability(model, data),
        data.y,
        data.time,
        data.subject,
        rows.failure_times_of(data),
        threshold=threshold,
        row_step_seconds=ROW_STEP_SECONDS,
    )


def _check_onnx(
    model: CalibratedClassifierCV, card: ModelCard, staging: Path, test: Dataset
) -> ModelCard:
    """Parity with scikit-learn on held-out rows, then single-row latency, into the card."""
    onnx = OnnxModel.load(staging / f"{card.name}{CARD_SUFFIX}")
    rows = test.filled()
    difference = max_abs_difference(onnx, model.predict_proba(rows), rows, OUTPUT)
    if difference >= PARITY_TOLERANCE:
        raise RuntimeError(f"{card.name}: ONNX differs from scikit-learn by {difference:g}")
    metrics = dict(card.metrics)
    metrics["onnx_parity_max_abs_diff"] = difference
    # Single-row calls, as the agent pays them (one node row per frame), once the session
    # is warm (the first calls allocate and would dominate the tail).
    call_latency_us(onnx.run, rows, 1, calls=200)
    metrics["onnx_latency_us"] = call_latency_us(onnx.run, rows, 1, calls=2000)
    metrics["onnx_bytes"] = (staging / card.onnx_file).stat().st_size
    # The metrics changed after export: rewrite the card (the .onnx and its sha256 did not).
    card = replace(card, metrics=metrics)
    card.write(staging)
    return card


def held_out_scorer(test: Dataset) -> Callable[[Path], float]:
    """PR-AUC of the model behind a card path on ``test``: how the current model is
    judged against a candidate, on the candidate's own held-out rows."""

    def score_current(card_path: Path) -> float:
        current = OnnxModel.load(card_path)
        p = current.run(test.filled())[OUTPUT][:, 1].astype(np.float64)
        return average_precision(test.y, p)

    return score_current


def _write_parity(
    model: CalibratedClassifierCV, card: ModelCard, test: Dataset, parity_dir: Path
) -> None:
    """Held-out rows and scikit-learn's outputs, so a test can prove the shipped ONNX
    file agrees with the estimator it was converted from (the estimator is not shipped)."""
    rng = np.random.default_rng(0)
    positives = np.flatnonzero(test.y == 1)
    negatives = rng.permutation(np.flatnonzero(test.y == 0))
    pick = np.sort(np.r_[positives[: PARITY_ROWS // 2], negatives][:PARITY_ROWS])
    rows = test.filled()[pick]
    save_parity(parity_dir, card, rows, sklearn_probabilities=model.predict_proba(rows))


def _training_data(
    options: TrainOptions, split: Split, fit: Dataset, calibration: Dataset, horizon: float
) -> dict[str, Any]:
    return {
        "source": "novacron.models.training.simulator (simulated fleet, docs/simulator.md)",
        "command": (
            "python -m novacron.models.training.node_failure "
            f"--nodes {options.nodes} --days {options.days:g} --seed {options.seed} "
            f"--eval-nodes {options.eval_nodes}"
        ),
        "fleet": asdict(options.fleet()),
        "evaluation_fleet": asdict(options.evaluation_fleet()),
        "row_step_seconds": ROW_STEP_SECONDS,
        "warmup_seconds": WARMUP_SECONDS,
        "label": f"node fails within {horizon:g} s after the row time; rows after failure absent",
        "split": {
            "kind": "time-ordered; later period held out",
            "test_fraction": TEST_FRACTION,
            "cutoff_unix": split.cutoff_time,
            "gap_seconds": horizon,
            "calibration": f"{CALIBRATION_FRACTION:.0%} of training-period nodes, stratified",
        },
        "rows": {
            "fit": len(fit),
            "fit_positive": int(fit.y.sum()),
            "calibration": len(calibration),
            "calibration_positive": int(calibration.y.sum()),
            "test": len(split.test),
            "test_positive": int(split.test.y.sum()),
        },
    }


# --- command line -----------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    defaults = TrainOptions()
    parser = argparse.ArgumentParser(
        prog="python -m novacron.models.training.node_failure",
        description="Train the node failure models (30 min, 24 h) on the simulated fleet.",
    )
    parser.add_argument("--out", type=Path, default=BUNDLED_DIR, help="model directory")
    parser.add_argument("--nodes", type=int, default=defaults.nodes)
    parser.add_argument("--days", type=float, default=defaults.days)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--eval-nodes", type=int, default=defaults.eval_nodes)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument(
        "--force",
        action="store_true",
        help="register even if the current model scores as well (e.g. a new export format)",
    )
    add_parity_dir_option(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    options = TrainOptions(
        nodes=args.nodes,
        days=args.days,
        seed=args.seed,
        eval_nodes=args.eval_nodes,
        workers=max(1, args.workers),
    )
    started = time.perf_counter()
    for result in train(options, args.out, args.parity_dir, force=args.force):
        print(_summary(result))
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0


def _summary(result: TrainResult) -> str:
    metrics = result.card.metrics
    lines = [f"{result.name}: {'registered' if result.registered else 'NOT registered'}"]
    for part in ("held_out_later_period", "evaluation_fleet"):
        m = metrics[part]
        lines.append(
            f"  {part}: PR-AUC {m['pr_auc']:.3f} (base {m['base_rate']:.4f}) "
            f"P {m['precision']:.2f} R {m['recall']:.2f} F1 {m['f1']:.2f} "
            f"false alarms/node-day {m['false_alarms_per_node_day']:.3f} "
            f"failures {m['failures_detected']}/{m['failures']} "
            f"lead median {_minutes(m['lead_time_median_minutes'])} "
            f"p10 {_minutes(m['lead_time_p10_minutes'])}"
        )
    latency = metrics["onnx_latency_us"]
    lines.append(
        f"  threshold {result.card.thresholds['alert']:.4f}; ONNX p50 {latency['p50']:.1f} us "
        f"p99 {latency['p99']:.1f} us; parity {metrics['onnx_parity_max_abs_diff']:.1e}"
    )
    return "\n".join(lines)


def _minutes(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} min"


if __name__ == "__main__":
    sys.exit(main())
