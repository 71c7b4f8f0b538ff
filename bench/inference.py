"""Per-frame inference cost: the same models in onnxruntime and in scikit-learn, one run.

Each model is fitted here with the project's own training functions and default
hyper-parameters (the shipped ones' sizes: 40-tree calibrated boosting per node-failure
horizon, the 30-tree calibrated forest for disks, the distilled anomaly regressors:
60 depth-4 trees for the node, 20 depth-5 for VMs)
on a small simulated fleet and the Backblaze sample, exported with our exporter (and
the node models fused into one graph by ``training.fuse``, as shipped), then both forms
score the same frames: a frame is one node row for every node model, 24 disk rows and
50 VM rows (one batched call each). Prints median and p99 microseconds per frame per
model, for the fused node graph, and for all models together, timed as whole frames:
once with one call per model and once as the agent runs them (fused node graph, disk,
VMs); the sklearn/onnx ratio; the agent's whole scoring step (bundled models, Python
around the calls included) and agent RSS with the bundled models loaded.

    .venv/bin/python -m bench.inference [--frames 2000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from novacron.models.runtime import OnnxModel
from novacron.models.schema import DISK, NODE, VM, Schema
from novacron.models.training import anomaly, disk_failure, distill, fuse, node_failure
from novacron.models.training.datasets import backblaze
from novacron.models.training.export import export
from novacron.models.training.simulator import SimConfig

DISKS_PER_FRAME = 24
VMS_PER_FRAME = 50


@dataclass
class Candidate:
    name: str
    schema: Schema
    estimator: Any
    classifier: bool
    rows_per_frame: int
    rows: np.ndarray  # pool of real feature rows to draw frames from


def fit_candidates(seed: int) -> list[Candidate]:
    options = node_failure.TrainOptions(seed=seed)
    fleet = node_failure.fleet_rows(
        SimConfig(nodes=24, days=2.0, seed=seed, failure_fraction=0.5), workers=2
    )
    out = []
    for name, horizon in (("node-failure-30m", 1800.0), ("node-failure-24h", 86400.0)):
        data = fleet.labelled(horizon)
        cal = node_failure.calibration_nodes(data, 0.3, seed)
        est = node_failure.fit_calibrated(data.rows(~cal), data.rows(cal), options)
        out.append(Candidate(name, NODE, est, True, 1, data.filled()))
    disk_data = backblaze.load(disk_failure.DEFAULT_DATA, disk_failure.HORIZON_SECONDS)
    parts = disk_failure.split(disk_data)
    disk = disk_failure.train(parts.train)
    out.append(
        Candidate(
            "disk-failure-7d", DISK, disk.estimator, True, DISKS_PER_FRAME, parts.test.filled()
        )
    )
    scopes = anomaly.fleet_rows(SimConfig(nodes=8, days=1.5, seed=seed), workers=2)
    anomaly_scopes: tuple[tuple[anomaly.Scope, Schema, int], ...] = (
        ("node", NODE, 1),
        ("vm", VM, VMS_PER_FRAME),
    )
    for scope, schema, per_frame in anomaly_scopes:
        rows = scopes[scope]
        filled = rows.filled()
        sizes = anomaly.TrainOptions().student_for(scope)  # the shipped sizes
        student = distill.fit(filled[rows.clean()], filled, sizes).student
        out.append(
            Candidate(
                f"{scope}-anomaly", schema, student, False, per_frame, filled.astype(np.float32)
            )
        )
    return out


def percentiles(samples_us: list[float]) -> tuple[float, float]:
    arr = np.asarray(samples_us)
    return float(np.median(arr)), float(np.percentile(arr, 99))


def time_call(fn: Callable[[], Any]) -> float:
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / 1000.0


def agent_rss_mib(with_models: bool) -> float:
    """VmRSS of a fresh interpreter after importing the agent scorer (and loading models)."""
    code = (
        "import novacron.agent.scoring as s\n"
        "from novacron.models.card import BUNDLED_DIR\n"
        + ("sc = s.Scorer.load(BUNDLED_DIR)\n" if with_models else "")
        + "print([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    return int(out.strip().splitlines()[-1]) / 1024


def scorer_cost(frames: int) -> tuple[float, float]:
    """Whole scoring step of the agent on a fixture node's real snapshot, bundled models."""
    from novacron.agent.features.store import NodeFeatures
    from novacron.agent.scoring import Scorer
    from novacron.models.card import BUNDLED_DIR
    from tests.agent.node_cycles import collect_cycles

    with tempfile.TemporaryDirectory() as tmp:
        samples = collect_cycles(
            Path(tmp),
            cycles=2,
            domains=VMS_PER_FRAME,
            disks=DISKS_PER_FRAME,
            failing_disks=1,
            gpus=2,
        )
    features = NodeFeatures(samples[0].node_id, interval_hint_seconds=10.0)
    for sample in samples:
        features.update(sample)
    snapshot = features.snapshot()
    scorer = Scorer.load(BUNDLED_DIR)
    for _ in range(50):
        scorer.score(snapshot)
    return percentiles([time_call(lambda: scorer.score(snapshot)) for _ in range(frames)])


@dataclass
class Exported:
    candidate: Candidate
    model: OnnxModel
    output: str  # the output the agent reads (its contract)
    sklearn: Callable[[np.ndarray], Any]
    frames: list[np.ndarray]


def export_all(candidates: list[Candidate], out_dir: Path) -> dict[str, Exported]:
    """Each candidate through the project's exporter, as the training commands do."""
    out = {}
    for c in candidates:
        card = export(
            c.estimator,
            name=c.name,
            version="bench",
            kind="failure" if c.classifier else "anomaly",
            schema=c.schema,
            out_dir=out_dir,
            outputs={"probabilities": "P"} if c.classifier else {"variable": "score"},
            classifier=c.classifier,
        )
        model = OnnxModel.load(out_dir / f"{card.name}.card.json")
        output, _ = fuse.score_of(card)
        sk = c.estimator.predict_proba if c.classifier else c.estimator.predict
        out[c.name] = Exported(c, model, output, sk, [])
    return out


def draw_frames(exported: dict[str, Exported], frames: int, rng: np.random.Generator) -> None:
    """Real feature rows per frame; every node model sees the same node row in a frame."""
    node_rows: list[np.ndarray] | None = None
    for e in exported.values():
        c = e.candidate
        if c.schema is NODE and node_rows is not None:
            e.frames = node_rows
            continue
        e.frames = [
            c.rows[rng.integers(0, len(c.rows), c.rows_per_frame)].astype(np.float32)
            for _ in range(frames)
        ]
        if c.schema is NODE:
            node_rows = e.frames


def frame_times(calls: list[Callable[[int], Any]], frames: int) -> list[float]:
    """Microseconds per frame with every call of ``calls`` made for frame i, timed as one."""
    return interleaved_frame_times({"": calls}, frames)[""]


def interleaved_frame_times(
    ways: dict[str, list[Callable[[int], Any]]], frames: int
) -> dict[str, list[float]]:
    """:func:`frame_times` of several ways to score a frame, taking turns frame by frame,
    so that load from other processes falls on every way alike."""
    for i in range(min(frames, 50)):  # warm: first calls allocate
        for calls in ways.values():
            for call in calls:
                call(i)
    out: dict[str, list[float]] = {name: [] for name in ways}
    for i in range(frames):
        for name, calls in ways.items():
            start = time.perf_counter_ns()
            for call in calls:
                call(i)
            out[name].append((time.perf_counter_ns() - start) / 1000.0)
    return out


def onnx_call(e: Exported) -> Callable[[int], Any]:
    return lambda i: e.model.output(e.frames[i], e.output)


def sklearn_call(e: Exported) -> Callable[[int], Any]:
    return lambda i: e.sklearn(e.frames[i])


def row(name: str, rows: str, onnx_us: list[float], sk_us: list[float]) -> str:
    o50, o99 = percentiles(onnx_us)
    s50, s99 = percentiles(sk_us)
    return f"{name:28}{rows:>5}{o50:>10.1f}{o99:>10.1f}{s50:>10.1f}{s99:>10.1f}{s50 / o50:>10.1f}x"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    print("fitting models with the project's training code ...", flush=True)
    candidates = fit_candidates(args.seed)
    header = (
        f"{'model':28}{'rows':>5}{'onnx p50':>10}{'onnx p99':>10}"
        f"{'sk p50':>10}{'sk p99':>10}{'ratio p50':>11}"
    )
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        exported = export_all(candidates, Path(tmp))
        draw_frames(exported, args.frames, rng)
        node = [e for e in exported.values() if e.candidate.schema is NODE]
        fused_card = fuse.fuse(
            [Path(tmp) / f"{e.candidate.name}.card.json" for e in node], Path(tmp)
        )
        fused = OnnxModel.load(Path(tmp) / f"{fused_card.name}.card.json")
        node_frames = node[0].frames
        sk_all = [sklearn_call(e) for e in exported.values()]
        for e in exported.values():
            lines.append(
                row(
                    e.candidate.name,
                    str(e.candidate.rows_per_frame),
                    frame_times([onnx_call(e)], args.frames),
                    frame_times([sklearn_call(e)], args.frames),
                )
            )
        # What the agent runs per frame: the fused node graph once (all node models),
        # then the disk model on all disks and the VM model on all VMs, one call each.
        agent_calls = [lambda i: fused.run(node_frames[i])] + [
            onnx_call(e) for e in exported.values() if e.candidate.schema is not NODE
        ]
        separate_calls = [onnx_call(e) for e in exported.values()]
        lines.append(
            row(
                f"{fused_card.name} ({len(node)} models)",
                "1",
                frame_times(agent_calls[:1], args.frames),
                frame_times([sklearn_call(e) for e in node], args.frames),
            )
        )
        onnx_ways = interleaved_frame_times(
            {"separate": separate_calls, "together": agent_calls}, args.frames
        )
        separate, together = onnx_ways["separate"], onnx_ways["together"]
        sklearn_together = frame_times(sk_all, args.frames)
    o50, o99 = percentiles(together)
    s50, s99 = percentiles(sklearn_together)
    print(f"\nmicroseconds per frame ({args.frames} frames; onnxruntime 1 thread)")
    print(header)
    print("\n".join(lines))
    print(row("all models, one call each", "", separate, sklearn_together))
    print(row("all models (node fused)", "", together, sklearn_together))
    print(
        f"target: all models p99 <= 200 us: {'met' if o99 <= 200 else 'NOT met'} ({o99:.0f} us); "
        f">= 20x faster than scikit-learn: {'met' if s50 / o50 >= 20 else 'NOT met'} "
        f"({s50 / o50:.0f}x at p50, {s99 / o99:.0f}x at p99)"
    )
    a50, a99 = scorer_cost(min(args.frames, 500))
    print(
        f"agent scoring step (bundled models, Python included): p50 {a50:.0f} us, "
        f"p99 {a99:.0f} us per frame"
    )
    bare, loaded = agent_rss_mib(False), agent_rss_mib(True)
    print(
        f"agent RSS: {bare:.1f} MiB without models, {loaded:.1f} MiB with the bundled "
        f"models loaded (+{loaded - bare:.1f} MiB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
