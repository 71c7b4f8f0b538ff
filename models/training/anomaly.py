"""``python -m novacron.models.training.anomaly``: train and ship node-anomaly and vm-anomaly.

Two models with one design (:mod:`~novacron.models.training.distill`): a teacher (an
IsolationForest plus robust per-feature z-scores) on clean feature rows, distilled into a
few dozen shallow regression trees that cost what a small classifier costs in
onnxruntime. ``node-anomaly`` scores a node's
``node-v1`` row, ``vm-anomaly`` each VM's ``vm-v1`` row (CPU, memory, disk and network
behaviour: floods and noisy neighbours show in packet and byte rates). The card also
carries per-feature medians and MADs, so the agent reports *which* features are unusual
(robust z-scores, ``thresholds.feature_z``), and ``warning``/``critical`` thresholds.

The steps, each for a reason:

1. **Simulate** a fleet (:mod:`~novacron.models.training.simulator`): it writes down
   every anomaly it injects (VM floods, runaways, leaks, noisy neighbours; node
   precursors, hot aisles, ECC bursts, sensor glitches ...) as ground-truth events.
2. **Replay** each node and each VM through :class:`~novacron.models.windows.FeatureWindows`
   (the agent's code) and take a row every 10 (node) or 20 (VM) simulated minutes, up to
   a node's death.
3. **Split by time**: the later 30 % of the run is held out. The model is unsupervised:
   it is fitted on training-period rows outside every event (clean-ish; a steady
   condition or a collector outage is left out too). Thresholds are chosen on the
   training period only: ``warning`` maximises event-level F1 there, ``critical`` is
   the stricter of that and the 99.99th percentile of clean training scores.
4. **Evaluate** on the held-out period against the events: event-level precision,
   recall and F1 and point-level F1 without point adjustment, point-adjusted F1 beside
   them (definitions in :mod:`~novacron.models.evaluation.event_metrics`); plus the
   student's fidelity to the teacher and its onnxruntime latency (and the forest's).
5. **Export** with skl2onnx, check parity with scikit-learn on held-out rows, and
   **register** into ``--out`` only if the held-out event F1 beats the shipped model's.

Which events a row is judged against (:func:`label_events`): for a node, events of the
node and its disks (precursors, failures, confounders, a disk going silent), each
extended by :data:`TOLERANCE_SECONDS` because trailing windows keep showing an event for
a while after it ends; VM anomalies on its VMs and collector outages are ignored (they
move host signals, so a flag there is neither right nor wrong for a *node* model). For a
VM, its own anomaly events; libvirt outages are ignored.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from novacron.models.card import BUNDLED_DIR, CARD_SUFFIX, ModelCard, new_version
from novacron.models.evaluation.event_metrics import Window, WindowCounts, total, window_counts
from novacron.models.runtime import OnnxModel
from novacron.models.schema import HOUR, MINUTE, NODE, VM, Schema
from novacron.models.training import distill, fuse
from novacron.models.training.export import (
    PARITY_TOLERANCE,
    add_parity_dir_option,
    export,
    max_abs_difference,
    save_parity,
)
from novacron.models.training.pipeline import register
from novacron.models.training.simulator import (
    Event,
    NodeTrace,
    SimConfig,
    iter_samples,
    simulate_node,
)
from novacron.models.windows import FeatureWindows

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
Scope = Literal["node", "vm"]
SCHEMAS: dict[Scope, Schema] = {"node": NODE, "vm": VM}
MODEL_NAMES: dict[Scope, str] = {"node": "node-anomaly", "vm": "vm-anomaly"}
ROW_STEP_SECONDS: dict[Scope, float] = {"node": 10 * MINUTE, "vm": 20 * MINUTE}
WARMUP_SECONDS: dict[Scope, float] = {"node": HOUR, "vm": 15 * MINUTE}
# Trailing windows keep an event visible after it ends (node: up to the hourly windows).
TOLERANCE_SECONDS: dict[Scope, float] = {"node": HOUR, "vm": 15 * MINUTE}
TEST_FRACTION = 0.3
WARNING_QUANTILES = (0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.997, 0.999)
CRITICAL_QUANTILE = 0.9999
FEATURE_Z_QUANTILE = 0.999
FEATURE_Z_MIN = 3.5
PARITY_ROWS = 400
OUTPUT = "variable"  # skl2onnx's name for a regressor's output


@dataclass(frozen=True)
class TrainOptions:
    """Everything that decides the trained models (recorded in the card)."""

    nodes: int = 30
    days: float = 3.0
    seed: int = 11
    # Enriched: more VM anomalies and confounders per node-day than a real fleet sees,
    # so the held-out period has enough events to measure detection on.
    anomaly_rate_per_node_day: float = 2.0
    confounder_rate_per_node_day: float = 1.2
    workers: int = 2
    measure_forest_latency: bool = False
    student: distill.StudentOptions = field(default_factory=distill.StudentOptions)
    # The VM model scores every VM every cycle (50 rows on a full host), so its cost is
    # trees x depth x VMs: 20 depth-5 trees walk a third of the nodes of 60 depth-4
    # ones. Chosen on label-free fidelity to the teacher and the training period
    # (docs/models.md, "Inference cost"), not on the held-out labels.
    vm_student: distill.StudentOptions = field(
        default_factory=lambda: distill.StudentOptions(trees=20, depth=5, learning_rate=0.3)
    )

    # Scopes registered even if they only match the current model (a new model size).
    force: tuple[Scope, ...] = ()

    def student_for(self, scope: Scope) -> distill.StudentOptions:
        return self.vm_student if scope == "vm" else self.student

    def fleet(self) -> SimConfig:
        return SimConfig(
            nodes=self.nodes,
            days=self.days,
            seed=self.seed,
            anomaly_rate_per_node_day=self.anomaly_rate_per_node_day,
            confounder_rate_per_node_day=self.confounder_rate_per_node_day,
        )


@dataclass(frozen=True)
class Labels:
    """A subject's ground truth: windows to detect and windows that count neither way."""

    windows: tuple[Window, ...]
    ignore: tuple[Window, ...]


@dataclass(frozen=True)
class ScopeRows:
    """Feature rows of one scope (all nodes, or all VMs) of a fleet, with ground truth."""

    schema: Schema
    x: FloatArray  # (n, features), NaN = no data
    time: FloatArray
    subject: npt.NDArray[np.str_]
    labels: dict[str, Labels]

    def filled(self) -> FloatArray:
        fills = np.asarray(self.schema.fills())
        return np.where(np.isnan(self.x), fills, self.x)

    def take(self, mask: npt.NDArray[np.bool_]) -> ScopeRows:
        return ScopeRows(
            self.schema, self.x[mask], self.time[mask], self.subject[mask], self.labels
        )

    def clean(self) -> npt.NDArray[np.bool_]:
        """Rows outside every labelled and every ignored window of their subject."""
        out = np.ones(len(self.time), dtype=bool)
        for subject, labels in self.labels.items():
            rows = self.subject == subject
            for start, end in (*labels.windows, *labels.ignore):
                out[rows & (self.time >= start) & (self.time <= end)] = False
        return out


@dataclass(frozen=True)
class ScopeResult:
    scope: Scope
    card: ModelCard
    registered: bool
    model: distill.DistilledAnomaly
    test: ScopeRows


# --- ground truth -----------------------------------------------------------------


def label_events(trace: NodeTrace) -> dict[Scope, dict[str, Labels]]:
    """Per scope and subject, the windows to detect and to ignore (see the module doc)."""
    first, last = float(trace.times[0]), float(trace.times[-1])
    own = {trace.node_id, *trace.disks}
    node_windows: list[Window] = []
    node_ignore: list[Window] = []
    vm_windows: dict[str, list[Window]] = {vm: [] for vm in trace.vms}
    vm_ignore: list[Window] = []
    for event in trace.events:
        if event.kind.startswith("missing:"):
            node_ignore.append((event.start, event.end))
            if event.kind == "missing:libvirt":
                vm_ignore.append((event.start, event.end))
        elif event.subject in trace.vms:
            node_ignore.append((event.start, event.end))
            if event.kind.startswith("anomaly:"):
                end = event.end + TOLERANCE_SECONDS["vm"]
                vm_windows[event.subject].append((event.start, end))
        elif event.subject in own and _is_node_anomaly(event, first, last):
            node_windows.append((event.start, event.end + TOLERANCE_SECONDS["node"]))
        elif event.subject in own and _is_steady_condition(event, first, last):
            node_ignore.append((event.start, event.end))
    return {
        "node": {trace.node_id: Labels(tuple(node_windows), tuple(node_ignore))},
        "vm": {vm: Labels(tuple(w), tuple(vm_ignore)) for vm, w in vm_windows.items()},
    }


def _is_node_anomaly(event: Event, first: float, last: float) -> bool:
    if event.kind.startswith("reset:") or event.kind == "confounder:busy_node":
        return False  # counter resets are handled by the windows; busy is normal
    return not _is_steady_condition(event, first, last)


def _is_steady_condition(event: Event, first: float, last: float) -> bool:
    """A condition present for the whole run (a flaky NIC, a weak DIMM cell): unusual for
    the fleet but not an event in time, so neither detected nor a false alarm."""
    whole_run = event.start <= first and event.end >= last
    return whole_run and event.kind != "confounder:busy_node"


# --- dataset ----------------------------------------------------------------------


def trace_rows(config: SimConfig, index: int) -> dict[Scope, ScopeRows]:
    """Replay node ``index`` of the fleet: a node row every 10 simulated minutes and a row
    per running VM every 20 (VM events last 20 min or more)."""
    trace = simulate_node(config, index)
    labels = label_events(trace)
    node_windows = FeatureWindows(NODE, interval_hint_seconds=config.interval_seconds)
    vm_windows = {
        vm: FeatureWindows(VM, interval_hint_seconds=config.interval_seconds) for vm in trace.vms
    }
    end = math.inf if trace.failure_time is None else trace.failure_time
    start = float(trace.times[0])
    next_row = {"node": start + WARMUP_SECONDS["node"], "vm": start + WARMUP_SECONDS["vm"]}
    rows: dict[Scope, list[FloatArray]] = {"node": [], "vm": []}
    times: dict[Scope, list[float]] = {"node": [], "vm": []}
    subjects: dict[Scope, list[str]] = {"node": [], "vm": []}
    for t, node_signals, vm_signals, _ in iter_samples(trace):
        if t >= end:
            break
        node_windows.add(t, node_signals)
        for vm, signals in vm_signals.items():
            vm_windows[vm].add(t, signals)
        if t >= next_row["node"]:
            rows["node"].append(node_windows.features(t))
            times["node"].append(t)
            subjects["node"].append(trace.node_id)
            next_row["node"] += ROW_STEP_SECONDS["node"]
        if t >= next_row["vm"]:
            for vm, windows in vm_windows.items():
                features = windows.features(t)
                if not np.all(np.isnan(features)):  # a stopped VM is not scored
                    rows["vm"].append(features)
                    times["vm"].append(t)
                    subjects["vm"].append(vm)
            next_row["vm"] += ROW_STEP_SECONDS["vm"]
    return {
        scope: ScopeRows(
            SCHEMAS[scope],
            np.array(rows[scope], dtype=np.float64).reshape(-1, len(SCHEMAS[scope].features)),
            np.array(times[scope], dtype=np.float64),
            np.array(subjects[scope], dtype=np.str_),
            labels[scope],
        )
        for scope in SCHEMAS
    }


def _rows_of(args: tuple[SimConfig, list[int]]) -> dict[Scope, ScopeRows]:
    config, indices = args
    return _concat([trace_rows(config, i) for i in indices])


def fleet_rows(config: SimConfig, workers: int = 1) -> dict[Scope, ScopeRows]:
    """Rows of every node and VM of a fleet, in ``workers`` processes (same result)."""
    if workers <= 1:
        return _rows_of((config, list(range(config.nodes))))
    chunks = [list(range(k, config.nodes, workers)) for k in range(workers)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(_rows_of, [(config, chunk) for chunk in chunks]))
    merged = _concat(parts)
    out = {}
    for scope, rows in merged.items():
        order = np.lexsort((rows.subject, rows.time))  # independent of the worker count
        out[scope] = rows.take(order)  # type: ignore[arg-type]
    return out


def _concat(parts: Sequence[dict[Scope, ScopeRows]]) -> dict[Scope, ScopeRows]:
    out = {}
    for scope, schema in SCHEMAS.items():
        labels: dict[str, Labels] = {}
        for part in parts:
            labels.update(part[scope].labels)
        out[scope] = ScopeRows(
            schema,
            np.concatenate([p[scope].x for p in parts]).reshape(-1, len(schema.features)),
            np.concatenate([p[scope].time for p in parts]),
            np.concatenate([p[scope].subject for p in parts]).astype(np.str_),
            labels,
        )
    return out


# --- evaluation -------------------------------------------------------------------


def detection_counts(rows: ScopeRows, scores: FloatArray, threshold: float) -> WindowCounts:
    """Event and point counts of ``score >= threshold`` over every subject of ``rows``."""
    counts = []
    for subject in np.unique(rows.subject).tolist():
        mine = rows.subject == subject
        labels = rows.labels.get(subject, Labels((), ()))
        counts.append(
            window_counts(rows.time[mine], scores[mine] >= threshold, labels.windows, labels.ignore)
        )
    return total(counts)


def choose_thresholds(
    train: ScopeRows, scores: FloatArray, clean: npt.NDArray[np.bool_]
) -> tuple[float, float, dict[str, Any]]:
    """(warning, critical, the training-period summary at warning); see the module doc."""
    best: tuple[float, dict[str, Any]] | None = None
    for q in WARNING_QUANTILES:
        threshold = float(np.quantile(scores[clean], q))
        summary = detection_counts(train, scores, threshold).summary()
        if best is None or summary["event_f1"] > best[1]["event_f1"]:
            best = (threshold, {**summary, "clean_score_quantile": q})
    assert best is not None
    warning = best[0]
    critical = max(warning, float(np.quantile(scores[clean], CRITICAL_QUANTILE)))
    return warning, critical, best[1]


def feature_spread(scale: distill.RobustScale) -> FloatArray:
    """The per-feature ``mad`` the agent divides by: 1.4826 x MAD; where that is 0 but the
    feature did vary (a GPU temperature on the few GPU nodes), 1.2533 x the mean absolute
    deviation; 0 only where the feature never varied (any deviation is then unprecedented
    and the agent reports it at its z cap)."""
    varied = scale.fallback != 1.0  # RobustScale uses 1.0 where the mean deviation is 0
    return np.where(scale.mad > 0, scale.mad, np.where(varied, scale.fallback, 0.0))


def feature_z_threshold(spread: FloatArray, median: FloatArray, clean: FloatArray) -> float:
    """The |z| that only 0.1 % of clean training values exceed (features that vary): the
    fleet's features are heavy-tailed (one VM moves 100x the bytes of another), so the
    textbook 3.5 would name a feature on most normal rows."""
    varying = spread > 0
    if not varying.any():
        return FEATURE_Z_MIN
    z = (clean[:, varying] - median[varying]) / spread[varying]
    return max(FEATURE_Z_MIN, round(float(np.quantile(np.abs(z), FEATURE_Z_QUANTILE)), 1))


# --- training ---------------------------------------------------------------------


def time_cutoff(rows: ScopeRows, test_fraction: float = TEST_FRACTION) -> float:
    first, last = float(rows.time.min()), float(rows.time.max())
    return first + (last - first) * (1.0 - test_fraction)


def train(
    options: TrainOptions, out_dir: Path, parity_dir: Path | None = None
) -> list[ScopeResult]:
    started = time.perf_counter()
    rows = fleet_rows(options.fleet(), options.workers)
    log.info(
        "rows built: node %d, vm %d in %.0f s",
        len(rows["node"].time),
        len(rows["vm"].time),
        time.perf_counter() - started,
    )
    cutoff = time_cutoff(rows["node"])
    results = [
        train_scope(scope, rows[scope], cutoff, options, out_dir=out_dir, parity_dir=parity_dir)
        for scope in ("node", "vm")
    ]
    if any(result.registered for result in results):
        fuse.refresh(out_dir)  # the node anomaly model is part of the fused node graph
    return results


def train_scope(
    scope: Scope,
    rows: ScopeRows,
    cutoff: float,
    options: TrainOptions,
    *,
    out_dir: Path,
    parity_dir: Path | None,
) -> ScopeResult:
    name = MODEL_NAMES[scope]
    train_rows, test_rows = rows.take(rows.time < cutoff), rows.take(rows.time >= cutoff)
    if len(train_rows.time) < 100 or len(test_rows.time) < 50:
        raise ValueError(
            f"{name}: too few rows (train {len(train_rows.time)}, test {len(test_rows.time)})"
        )
    clean = train_rows.clean()
    x_train = train_rows.filled()
    model = distill.fit(x_train[clean], x_train, options.student_for(scope))
    train_scores = model.score(x_train)
    warning, critical, train_summary = choose_thresholds(train_rows, train_scores, clean)
    x_test = test_rows.filled()
    test_scores = model.score(x_test)
    metrics: dict[str, Any] = {
        "held_out_later_period": {
            "warning": detection_counts(test_rows, test_scores, warning).summary(),
            "critical": detection_counts(test_rows, test_scores, critical).summary(),
            "flag_every_row_baseline": detection_counts(
                test_rows, np.ones(len(test_scores)), 0.5
            ).summary(),
        },
        "training_period_at_warning": train_summary,
        "fidelity_held_out": distill.fidelity(model, x_test),
    }
    spread = feature_spread(model.scale)
    with tempfile.TemporaryDirectory() as staging_dir:
        staging = Path(staging_dir)
        card = export(
            model.student,
            name=name,
            version=new_version(),
            kind="anomaly",
            schema=SCHEMAS[scope],
            out_dir=staging,
            outputs={
                OUTPUT: "(n, 1) anomaly score, higher = more anomalous: 0 = a typical "
                "clean training row, 1 = as unusual as the top 1 % of them"
            },
            classifier=False,
            thresholds={
                "warning": warning,
                "critical": critical,
                "feature_z": feature_z_threshold(spread, model.scale.median, x_train[clean]),
            },
            metrics=metrics,
            training_data=_training_data(
                options,
                scope,
                train_rows=train_rows,
                test_rows=test_rows,
                clean=clean,
                cutoff=cutoff,
            ),
            extra={
                "median": model.scale.median.tolist(),
                "mad": spread.tolist(),
                "mad_meaning": "1.4826 x median absolute deviation of the clean training rows "
                "(model input, NaN filled); where that is 0 but the feature varied, 1.2533 x "
                "mean absolute deviation; 0 = the feature never varied there",
                "estimator": {
                    "type": "GradientBoostingRegressor distilled from a teacher",
                    "teacher": "mean of normalised IsolationForest score and mean of the 3 "
                    "largest arcsinh(|robust z|), both on the clean training rows",
                    **asdict(options.student_for(scope)),
                },
            },
        )
        card = _check_onnx(model, card, staging, x_test, options.measure_forest_latency)
        score = float(metrics["held_out_later_period"]["warning"]["event_f1"])
        current = out_dir / f"{name}{CARD_SUFFIX}"
        registered = scope in options.force or register(card, score, current, _scorer(test_rows))
        if registered:
            out_dir.mkdir(parents=True, exist_ok=True)
            for file in (card.onnx_file, f"{name}{CARD_SUFFIX}"):
                shutil.copyfile(staging / file, out_dir / file)
            if parity_dir is not None:
                write_parity(model, card, x_test, parity_dir)
    return ScopeResult(scope, card, registered, model, test_rows)


def _check_onnx(
    model: distill.DistilledAnomaly,
    card: ModelCard,
    staging: Path,
    x_test: FloatArray,
    measure_forest: bool,
) -> ModelCard:
    """Parity with scikit-learn on held-out rows, then latency (and the forest's)."""
    onnx = OnnxModel.load(staging / f"{card.name}{CARD_SUFFIX}")
    rows = x_test.astype(np.float32)
    difference = max_abs_difference(onnx, model.score(rows), rows, OUTPUT)
    if difference >= PARITY_TOLERANCE:
        raise RuntimeError(f"{card.name}: ONNX differs from scikit-learn by {difference:g}")
    metrics = dict(card.metrics)
    metrics["onnx_parity_max_abs_diff"] = difference
    latency = {
        "student_1_row": distill.call_latency_us(onnx.run, rows, 1),
        "student_50_rows": distill.call_latency_us(onnx.run, rows, 50, calls=300),
    }
    if measure_forest:
        forest = distill.forest_session(model, rows.shape[1])
        latency["isolation_forest_1_row"] = distill.call_latency_us(forest, rows, 1, calls=200)
        latency["isolation_forest_50_rows"] = distill.call_latency_us(forest, rows, 50, calls=50)
    metrics["onnx_latency_us"] = latency
    metrics["onnx_bytes"] = (staging / card.onnx_file).stat().st_size
    metrics["student_trees"] = distill.tree_count(model)
    card = replace(card, metrics=metrics)
    card.write(staging)
    return card


def _scorer(test: ScopeRows) -> Any:
    def score_current(card_path: Path) -> float:
        current = OnnxModel.load(card_path)
        output = next(iter(current.card.outputs))
        scores = current.run(test.filled().astype(np.float32))[output].reshape(-1)
        threshold = float(current.card.thresholds["warning"])
        return detection_counts(test, scores.astype(np.float64), threshold).event_prf()[2]

    return score_current


def write_parity(
    model: distill.DistilledAnomaly, card: ModelCard, x_test: FloatArray, parity_dir: Path
) -> Path:
    """Held-out rows and scikit-learn's scores, so a test can prove the shipped ONNX file
    agrees with the estimator it was converted from (the estimator is not shipped). The
    highest-scoring rows are included: parity matters most where alerts happen."""
    scores = model.score(x_test)
    rng = np.random.default_rng(0)
    top = np.argsort(-scores, kind="stable")[: PARITY_ROWS // 4]
    rest = rng.permutation(len(x_test))[:PARITY_ROWS]
    pick = np.unique(np.r_[top, rest])[:PARITY_ROWS]
    rows = x_test[pick].astype(np.float32)
    return save_parity(parity_dir, card, rows, reference_scores=model.score(rows))


def _training_data(
    options: TrainOptions,
    scope: Scope,
    *,
    train_rows: ScopeRows,
    test_rows: ScopeRows,
    clean: npt.NDArray[np.bool_],
    cutoff: float,
) -> dict[str, Any]:
    return {
        "source": "novacron.models.training.simulator (simulated fleet, docs/simulator.md)",
        "command": (
            "python -m novacron.models.training.anomaly "
            f"--nodes {options.nodes} --days {options.days:g} --seed {options.seed}"
        ),
        "fleet": asdict(options.fleet()),
        "row_step_seconds": ROW_STEP_SECONDS[scope],
        "warmup_seconds": WARMUP_SECONDS[scope],
        "event_tolerance_seconds": TOLERANCE_SECONDS[scope],
        "ground_truth": (
            "node: events of the node and its disks (precursors, failures, confounders, "
            "disk_unavailable), VM anomalies and collector outages ignored; "
            "vm: its own anomaly events, libvirt outages ignored"
        ),
        "split": {
            "kind": "time-ordered; later period held out",
            "test_fraction": TEST_FRACTION,
            "cutoff_unix": cutoff,
        },
        "rows": {
            "train": len(train_rows.time),
            "train_clean": int(clean.sum()),
            "test": len(test_rows.time),
            "subjects": len(np.unique(np.r_[train_rows.subject, test_rows.subject])),
        },
    }


# --- command line -----------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    defaults = TrainOptions()
    parser = argparse.ArgumentParser(
        prog="python -m novacron.models.training.anomaly",
        description="Train the node and VM anomaly models on the simulated fleet.",
    )
    parser.add_argument("--out", type=Path, default=BUNDLED_DIR, help="model directory")
    parser.add_argument("--nodes", type=int, default=defaults.nodes)
    parser.add_argument("--days", type=float, default=defaults.days)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument(
        "--measure-forest-latency",
        action="store_true",
        help="also convert the teacher's IsolationForest to ONNX and time it (adds ~30 s)",
    )
    parser.add_argument(
        "--force",
        action="append",
        choices=("node", "vm"),
        default=[],
        help="register this scope's model even if it only matches the current one (repeatable)",
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
        workers=max(1, args.workers),
        measure_forest_latency=args.measure_forest_latency,
        force=tuple(args.force),
    )
    started = time.perf_counter()
    for result in train(options, args.out, args.parity_dir):
        print(summary_text(result))
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0


def summary_text(result: ScopeResult) -> str:
    metrics = result.card.metrics
    held = metrics["held_out_later_period"]
    lines = [f"{result.card.name}: {'registered' if result.registered else 'NOT registered'}"]
    for level in ("warning", "critical", "flag_every_row_baseline"):
        m = held[level]
        lines.append(
            f"  held-out {level}: event P {m['event_precision']:.2f} R {m['event_recall']:.2f} "
            f"F1 {m['event_f1']:.3f} ({m['detected_windows']}/{m['windows']} windows, "
            f"{m['false_positive_runs']} false-positive runs) | point F1 {m['point_f1']:.3f} "
            f"| point-adjusted F1 {m['point_adjusted_f1']:.3f}"
        )
    fid = metrics["fidelity_held_out"]
    lat = metrics["onnx_latency_us"]
    lines.append(
        f"  fidelity: spearman {fid['spearman']:.3f}, top-1% overlap "
        f"{fid['top_1pct_overlap']:.2f}; parity {metrics['onnx_parity_max_abs_diff']:.1e}"
    )
    lines.append(
        "  ONNX latency p50/p99 us: "
        + ", ".join(f"{k} {v['p50']:.1f}/{v['p99']:.1f}" for k, v in lat.items())
    )
    t = result.card.thresholds
    lines.append(
        f"  thresholds: warning {t['warning']:.4f} critical {t['critical']:.4f} "
        f"feature_z {t['feature_z']:.1f}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
