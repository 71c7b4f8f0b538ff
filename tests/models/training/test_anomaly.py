"""node-anomaly and vm-anomaly: ground truth, features, distillation, training, shipped models."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest

from novacron.agent.model_set import anomaly_model
from novacron.models.card import bundled_card_path
from novacron.models.runtime import OnnxModel
from novacron.models.schema import HOUR, MINUTE, NODE, VM
from novacron.models.training import anomaly, distill
from novacron.models.training.simulator import (
    Event,
    NodeTrace,
    SimConfig,
    iter_samples,
    simulate_node,
)
from novacron.models.windows import FeatureWindows

REPO = Path(__file__).resolve().parents[3]
PARITY_DIR = REPO / "tests" / "fixtures" / "models"
SHIPPED = ("node-anomaly", "vm-anomaly")
TINY_STUDENT = distill.StudentOptions(forest_trees=20, trees=15, depth=3)


def hand_trace(events: tuple[Event, ...]) -> NodeTrace:
    times = np.arange(0.0, 10 * HOUR, MINUTE)
    return NodeTrace(
        node_id="n1",
        times=times,
        signals={},
        failure_time=None,
        failure_mode=None,
        vms={"vm-a": {}, "vm-b": {}},
        disks={"disk-1": {}},
        disk_failure_times={},
        events=events,
    )


# -- ground truth --------------------------------------------------------------------


def test_events_become_node_and_vm_windows_or_are_ignored() -> None:
    end = 10 * HOUR - MINUTE
    trace = hand_trace(
        (
            Event("confounder:busy_node", 0.0, end, "n1"),  # normal: neither
            Event("confounder:flaky_nic", 0.0, end, "n1"),  # whole run: ignored
            Event("precursor:dram", 3600.0, 7200.0, "n1"),
            Event("confounder:benign_reallocation", 100.0, 100.0, "disk-1"),
            Event("reset:edac_reload", 500.0, 500.0, "n1"),  # counters cope: neither
            Event("missing:libvirt", 900.0, 1200.0, "n1"),
            Event("anomaly:vm_network_flood", 2000.0, 3000.0, "vm-a"),
        )
    )
    labels = anomaly.label_events(trace)
    node = labels["node"]["n1"]
    tol = anomaly.TOLERANCE_SECONDS
    assert node.windows == ((3600.0, 7200.0 + tol["node"]), (100.0, 100.0 + tol["node"]))
    assert node.ignore == ((0.0, end), (900.0, 1200.0), (2000.0, 3000.0))
    assert labels["vm"]["vm-a"].windows == ((2000.0, 3000.0 + tol["vm"]),)
    assert labels["vm"]["vm-b"].windows == ()
    assert labels["vm"]["vm-b"].ignore == ((900.0, 1200.0),)


def test_clean_rows_and_detection_counts_per_subject() -> None:
    labels = {
        "a": anomaly.Labels(windows=((20.0, 30.0),), ignore=()),
        "b": anomaly.Labels(windows=(), ignore=((0.0, 10.0),)),
    }
    time = np.array([0.0, 10.0, 20.0, 30.0, 40.0] * 2)
    subject = np.array(["a"] * 5 + ["b"] * 5)
    rows = anomaly.ScopeRows(VM, np.zeros((10, len(VM.features))), time, subject, labels)
    clean_a = [True, True, False, False, True]
    clean_b = [False, False, True, True, True]
    assert rows.clean().tolist() == [*clean_a, *clean_b]
    scores = np.array([0, 0, 0, 5, 0, 5, 0, 5, 5, 0], dtype=float)
    counts = anomaly.detection_counts(rows, scores, threshold=1.0)
    # a: its window detected, no false alarm. b: the flag at t=0 is ignored, the run
    # t=20..30 is one false positive.
    assert (counts.windows, counts.detected_windows, counts.false_positive_runs) == (1, 1, 1)
    assert counts.rows == 8


# -- features ------------------------------------------------------------------------


def test_training_rows_are_the_agents_feature_windows() -> None:
    config = SimConfig(nodes=2, days=0.25, seed=3)
    rows = anomaly.trace_rows(config, 1)
    trace = simulate_node(config, 1)
    node_windows = FeatureWindows(NODE, interval_hint_seconds=config.interval_seconds)
    vm = rows["vm"].subject[len(rows["vm"].subject) // 2]
    vm_windows = FeatureWindows(VM, interval_hint_seconds=config.interval_seconds)
    checks = 0
    for t, node_signals, vm_signals, _ in iter_samples(trace):
        node_windows.add(t, node_signals)
        vm_windows.add(t, vm_signals[vm])
        node_row = np.flatnonzero(rows["node"].time == t)
        if node_row.size:
            np.testing.assert_array_equal(rows["node"].x[node_row[0]], node_windows.features(t))
            checks += 1
        vm_row = np.flatnonzero((rows["vm"].time == t) & (rows["vm"].subject == vm))
        if vm_row.size:
            np.testing.assert_array_equal(rows["vm"].x[vm_row[0]], vm_windows.features(t))
            checks += 1
    assert checks > 20
    steps = np.diff(rows["node"].time)
    assert steps.min() >= anomaly.ROW_STEP_SECONDS["node"]
    assert rows["node"].time[0] >= trace.times[0] + anomaly.WARMUP_SECONDS["node"]


# -- the distilled model ---------------------------------------------------------------


def test_teacher_ranks_extreme_rows_above_normal_ones_and_student_follows() -> None:
    rng = np.random.default_rng(0)
    clean = rng.normal(size=(3000, 6))
    odd = np.zeros((3, 6))
    odd[0, 4] = 1000.0  # one feature wildly out (a counter jump, a packet flood)
    odd[1, 2:5] = 8.0  # several features far out together (a noisy neighbour)
    odd[2, 4] = 12.0  # one feature moderately out among calm ones: diluted by design
    model = distill.fit(clean, np.vstack([clean, odd]), TINY_STUDENT)
    teacher = model.teacher_score(np.vstack([clean, odd]))
    normal_999 = np.quantile(teacher[:-3], 0.999)
    assert teacher[-3] > normal_999 and teacher[-2] > normal_999
    assert teacher[-1] < teacher[-3]
    # Normalised: 0 = the median clean row, 1 = its 99th percentile (each half).
    assert np.median(model.teacher_score(clean)) == pytest.approx(0.0, abs=0.05)
    assert np.quantile(model.teacher_score(clean), 0.99) == pytest.approx(1.0, abs=0.2)
    fidelity = distill.fidelity(model, rng.normal(size=(500, 6)))
    assert fidelity["spearman"] > 0.8


def test_feature_spread_keeps_zero_only_for_features_that_never_varied() -> None:
    x = np.zeros((100, 3))
    x[:, 0] = np.arange(100.0)
    x[:3, 1] = 5.0  # varies, but MAD is 0
    scale = distill.RobustScale.fit(x)
    spread = anomaly.feature_spread(scale)
    assert spread[0] == pytest.approx(1.4826 * 25)
    assert spread[1] == pytest.approx(1.2533 * 0.15)
    assert spread[2] == 0.0


# -- training on a tiny fleet, in seconds ------------------------------------------------


def test_tiny_training_exports_a_card_the_agent_accepts(tmp_path: Path) -> None:
    options = anomaly.TrainOptions(nodes=3, days=1.0, seed=5, workers=1, student=TINY_STUDENT)
    rows = anomaly.fleet_rows(options.fleet(), workers=1)
    cutoff = anomaly.time_cutoff(rows["node"])
    parity_dir = tmp_path / "parity"
    result = anomaly.train_scope(
        "vm", rows["vm"], cutoff, options, out_dir=tmp_path, parity_dir=parity_dir
    )
    card = result.card
    assert result.registered and (tmp_path / "vm-anomaly.onnx").exists()
    assert card.kind == "anomaly" and card.schema == VM.version_tag
    t = card.thresholds
    assert t["warning"] <= t["critical"] and t["feature_z"] >= anomaly.FEATURE_Z_MIN
    assert len(card.extra["median"]) == len(card.extra["mad"]) == len(VM.features)
    held = card.metrics["held_out_later_period"]
    for key in ("event_f1", "point_f1", "point_adjusted_f1", "false_positive_runs"):
        assert key in held["warning"]
    assert card.metrics["onnx_parity_max_abs_diff"] < 1e-5
    assert card.training_data["rows"]["test"] == len(result.test.time)
    assert result.test.time.min() >= cutoff
    loaded = anomaly_model(OnnxModel.load(tmp_path / "vm-anomaly.card.json"))
    assert loaded.warning == t["warning"] and loaded.median is not None
    parity = np.load(parity_dir / "vm-anomaly.parity.npz")
    assert str(parity["model_sha256"]) == card.sha256
    # A retrain that is not better than the model now in place is not registered.
    again = anomaly.train_scope(
        "vm", rows["vm"], cutoff, options, out_dir=tmp_path, parity_dir=None
    )
    assert not again.registered


def test_too_little_data_is_refused() -> None:
    options = anomaly.TrainOptions(student=TINY_STUDENT)
    rows = anomaly.ScopeRows(
        NODE, np.zeros((20, len(NODE.features))), np.arange(20.0), np.array(["n"] * 20), {}
    )
    with pytest.raises(ValueError, match="too few rows"):
        anomaly.train_scope("node", rows, 10.0, options, out_dir=Path("unused"), parity_dir=None)


# -- the shipped models --------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_matches_scikit_learn_on_held_out_rows(name: str) -> None:
    model = OnnxModel.load(bundled_card_path(name))
    parity = np.load(PARITY_DIR / f"{name}.parity.npz")
    assert str(parity["model_sha256"]) == model.card.sha256, "parity rows are stale: retrain"
    rows = parity["rows"]
    assert len(rows) >= 200
    onnx_scores = model.run(rows)[anomaly.OUTPUT].astype(np.float64).ravel()
    assert np.max(np.abs(onnx_scores - parity["reference_scores"])) < 1e-5
    # The rows include the alert range, not only the quiet bulk.
    assert parity["reference_scores"].max() >= model.card.thresholds["warning"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_is_a_small_tree_ensemble(name: str) -> None:
    """Latency sanity without timing: one tree-ensemble node, a few dozen shallow trees."""
    path = bundled_card_path(name)
    graph = onnx.load(str(path.parent / f"{name}.onnx")).graph
    assert [n.op_type for n in graph.node] == ["TreeEnsembleRegressor"]
    attributes = {a.name: a for a in graph.node[0].attribute}
    tree_ids = list(attributes["nodes_treeids"].ints)
    assert len(set(tree_ids)) <= 100
    assert max(np.bincount(tree_ids)) <= 2**6 - 1  # depth <= 5
    assert (path.parent / f"{name}.onnx").stat().st_size < 200_000


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_card_keeps_the_anomaly_contract(name: str) -> None:
    model = OnnxModel.load(bundled_card_path(name))
    card = model.card
    loaded = anomaly_model(model)
    assert loaded.output == anomaly.OUTPUT
    assert loaded.median is not None and loaded.mad is not None
    assert np.all(loaded.mad >= 0)
    assert 0 < card.thresholds["warning"] <= card.thresholds["critical"]
    held = card.metrics["held_out_later_period"]
    assert {"warning", "critical", "flag_every_row_baseline"} <= set(held)
    assert card.metrics["fidelity_held_out"]["spearman"] > 0.9
    assert card.metrics["onnx_latency_us"]["student_1_row"]["p50"] > 0
    neutral = np.asarray([model.schema.fills()], dtype=np.float32)
    assert model.run(neutral)[anomaly.OUTPUT].shape == (1, 1)


def test_shipped_models_flag_an_obvious_vm_flood() -> None:
    model = anomaly_model(OnnxModel.load(bundled_card_path("vm-anomaly")))
    assert model.median is not None
    typical = model.median.astype(np.float32)[None, :]
    flood = typical.copy()
    names = list(VM.feature_names)
    for feature, value in (
        ("vm_net_packets_per_second_mean_15m", 3e5),
        ("vm_net_packets_per_second_p95_15m", 3.5e5),
        ("vm_net_rx_bytes_per_second_mean_15m", 3e7),
        ("vm_net_errors_drops_per_second_mean_15m", 2e3),
    ):
        flood[0, names.index(feature)] = value
    assert model.scores(typical)[0] < model.warning <= model.scores(flood)[0]


def test_train_options_record_an_enriched_fleet() -> None:
    fleet = anomaly.TrainOptions().fleet()
    assert fleet.anomaly_rate_per_node_day > SimConfig().anomaly_rate_per_node_day
    assert replace(anomaly.TrainOptions(), nodes=2).fleet().nodes == 2
