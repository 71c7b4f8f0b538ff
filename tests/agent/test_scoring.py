"""Local scoring with ONNX models: tiny scikit-learn models trained and exported here.

The models are trained in the test on synthetic rows (a few dozen shallow trees), exported
with the project's own ``export`` into a temporary models directory, and the scorer's
answers are checked against scikit-learn on the same rows: probabilities, occlusion
contributions, anomaly scores. The agent itself never imports scikit-learn.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from novacron.agent.features.store import FeatureMatrix, FeatureSnapshot, NodeFeatures
from novacron.agent.model_set import ModelSet, failure_model, load_models
from novacron.agent.model_update import with_model
from novacron.agent.score_math import (
    calibration_interval,
    probability_within,
    robust_z,
    time_to_failure_seconds,
    wilson_interval,
)
from novacron.agent.scoring import MIN_CONTRIBUTION, FailurePrediction, Scorer
from novacron.models.card import CARD_SUFFIX, ModelCard
from novacron.models.runtime import OnnxModel, bundled_models
from novacron.models.schema import DAY, DISK, HOUR, MINUTE, NODE, VM, Schema
from tests.agent.node_cycles import collect_cycles
from tests.agent.tiny_models import NODE_BINS, TinyModels, column, write_tiny_models


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return write_tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture
def scorer(tiny: TinyModels) -> Scorer:
    return Scorer.load(tiny.directory)


def _matrix(
    schema: Schema, rows: dict[str, dict[str, float]], labels: dict[str, str] | None = None
) -> FeatureMatrix:
    features = np.full((len(rows), len(schema.features)), np.nan)
    for i, values in enumerate(rows.values()):
        for name, value in values.items():
            features[i, column(schema, name)] = value
    keys = tuple(rows)
    return FeatureMatrix(schema, keys, tuple((labels or {}).get(k, k) for k in keys), features)


HEALTHY_NODE = {"cpu_util_percent_mean_15m": 30.0, "temp_max_celsius_last_15m": 45.0}
SICK_NODE = {
    "cpu_util_percent_mean_15m": 30.0,
    "temp_max_celsius_last_15m": 97.0,
    "smart_reallocated_sectors_increase_24h": 35.0,
}  # both drivers of the tiny node models high
FAILING_DISK = {
    "reallocated_sectors_last_24h": 2144.0,
    "current_pending_sectors_last_24h": 72.0,
    "power_on_hours_last_24h": 44668.0,
    "temperature_celsius_last_24h": 33.0,
}
HEALTHY_DISK = {"reallocated_sectors_last_24h": 0.0, "power_on_hours_last_24h": 20000.0}


def _snapshot(
    node: dict[str, float] | None = None,
    disks: dict[str, dict[str, float]] | None = None,
    vms: dict[str, dict[str, float]] | None = None,
) -> FeatureSnapshot:
    return FeatureSnapshot(
        1_800_000_000.0,
        _matrix(NODE, {"hv-1": node or HEALTHY_NODE}),
        _matrix(VM, vms or {}, {k: f"name-{k}" for k in vms or {}}),
        _matrix(DISK, disks or {}, {k: f"/dev/{k}" for k in disks or {}}),
    )


def _sklearn_p(model: Any, rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    return np.asarray(model.predict_proba(rows)[:, 1], dtype=np.float64)


# --- failure predictions ---------------------------------------------------------------


def test_loads_every_role(scorer: Scorer) -> None:
    models = scorer.models
    assert [m.horizon_seconds for m in models.node_failure] == [30 * MINUTE, DAY]
    assert [m.name for m in models.disk_failure] == ["disk-failure-7d"]
    assert models.node_anomaly is not None and models.vm_anomaly is not None
    assert models.missing == () and models.refused == {}


def test_failure_probabilities_match_scikit_learn(scorer: Scorer, tiny: TinyModels) -> None:
    snapshot = _snapshot(SICK_NODE, {"sda": FAILING_DISK, "sdb": HEALTHY_DISK})
    scores = scorer.score(snapshot)
    by_model = {(p.model, p.subject): p for p in scores.failure_predictions}
    assert set(by_model) == {
        ("node-failure-30m", "hv-1"),
        ("node-failure-24h", "hv-1"),
        ("disk-failure-7d", "sda"),
        ("disk-failure-7d", "sdb"),
    }
    node_rows = snapshot.node.model_input()
    for name in ("node-failure-30m", "node-failure-24h"):
        expected = _sklearn_p(tiny.estimators[name], node_rows)[0]
        assert by_model[(name, "hv-1")].probability == pytest.approx(expected, abs=1e-5)
    disk_p = _sklearn_p(tiny.estimators["disk-failure-7d"], snapshot.disks.model_input())
    assert by_model[("disk-failure-7d", "sda")].probability == pytest.approx(disk_p[0], abs=1e-5)
    assert by_model[("disk-failure-7d", "sdb")].probability == pytest.approx(disk_p[1], abs=1e-5)
    # the failing disk is the riskiest, and the model knows it
    assert disk_p[0] > 0.8 > 0.2 > disk_p[1]
    sda = by_model[("disk-failure-7d", "sda")]
    assert sda.label == "/dev/sda" and sda.scope == "disk" and sda.alert is True
    assert sda.model_version == "2026.01.01.1" and sda.horizon_seconds == 7 * DAY


def test_confidence_interval_is_the_wilson_interval_of_the_calibration_bin(
    scorer: Scorer,
) -> None:
    scores = scorer.score(_snapshot(SICK_NODE))
    for p in scores.failure_predictions:
        (row,) = [b for b in NODE_BINS if b[0] <= p.probability < b[1] or p.probability == 1.0]
        expected = wilson_interval(row[3], row[2])
        assert expected is not None
        assert (p.ci_low, p.ci_high) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("positives", "rows", "expected"),
    [
        (10, 100, (0.0552, 0.1744)),  # textbook values (Newcombe 1998 method 3)
        (15, 20, (0.5313, 0.8881)),
        (0, 50, (0.0, 0.0714)),
        (50, 50, (0.9286, 1.0)),
    ],
)
def test_wilson_interval_known_values(
    positives: int, rows: int, expected: tuple[float, float]
) -> None:
    interval = wilson_interval(positives, rows)
    assert interval == pytest.approx(expected, abs=1e-4)


def test_calibration_bins_edges() -> None:
    bins = [[0.0, 0.5, 10, 1], [0.5, 1.0, 10, 9]]
    assert calibration_interval(0.5, bins) == wilson_interval(9, 10)
    assert calibration_interval(1.0, bins) == wilson_interval(9, 10)
    assert calibration_interval(0.0, bins) == wilson_interval(1, 10)
    assert calibration_interval(0.3, []) is None
    assert calibration_interval(0.3, [[0.0, 1.0, 0, 0]]) is None  # an empty bin says nothing


def test_time_to_failure_is_the_constant_hazard_estimate(scorer: Scorer) -> None:
    assert time_to_failure_seconds(0.5, HOUR) == pytest.approx(HOUR / math.log(2))
    assert time_to_failure_seconds(1e-6, HOUR) is None  # nothing expected
    assert time_to_failure_seconds(1.0, HOUR) == 0.0  # certain: imminent
    assert probability_within(math.log(2) / HOUR, HOUR) == pytest.approx(0.5)
    scores = scorer.score(_snapshot(SICK_NODE, {"sda": FAILING_DISK}))
    for p in scores.failure_predictions:
        expected = p.horizon_seconds / -math.log1p(-p.probability)
        assert p.estimated_time_to_failure_seconds == pytest.approx(expected)


def test_node_risk_takes_the_most_urgent_subject_and_says_which(
    tiny: TinyModels, tmp_path: Path
) -> None:
    # Without the 30-minute node model, the failing disk's 7-day outlook is the most urgent
    directory = _copy_models(tiny, tmp_path / "models")
    for name in ("node-failure-30m.onnx", f"node-failure-30m{CARD_SUFFIX}"):
        (directory / name).unlink()
    scorer = Scorer.load(directory)
    scores = scorer.score(_snapshot(HEALTHY_NODE, {"sda": FAILING_DISK, "sdb": HEALTHY_DISK}))
    risk = scores.node_risk
    assert risk is not None and scores.riskiest_disk is not None
    assert (risk.scope, risk.subject, risk.label, risk.model) == (
        "disk",
        "sda",
        "/dev/sda",
        "disk-failure-7d",
    )
    assert scores.riskiest_disk == risk
    (sda,) = [p for p in scores.failure_predictions if p.subject == "sda"]
    hazard = -math.log1p(-sda.probability) / (7 * DAY)
    assert risk.probability == sda.probability
    assert risk.probability_24h == pytest.approx(-math.expm1(-hazard * DAY))
    assert risk.estimated_time_to_failure_seconds == pytest.approx(1 / hazard)


def test_node_risk_compares_horizons_by_their_hazard(scorer: Scorer) -> None:
    scores = scorer.score(_snapshot(SICK_NODE, {"sda": FAILING_DISK, "sdb": HEALTHY_DISK}))
    hazards = {
        (p.scope, p.subject, p.horizon_seconds): -math.log1p(-p.probability) / p.horizon_seconds
        for p in scores.failure_predictions
    }
    winner = max(hazards, key=lambda k: hazards[k])
    risk = scores.node_risk
    assert risk is not None
    assert (risk.scope, risk.subject, risk.horizon_seconds) == winner
    assert winner == ("node", "hv-1", 30 * MINUTE)  # the most urgent of the node's horizons
    disk = scores.riskiest_disk
    assert disk is not None and disk.subject == "sda"
    assert disk.probability_24h < risk.probability_24h


# --- contributing factors ----------------------------------------------------------------


def test_contributions_are_occlusion_against_the_baseline(scorer: Scorer, tiny: TinyModels) -> None:
    snapshot = _snapshot(SICK_NODE, {"sda": FAILING_DISK})
    scores = scorer.score(snapshot)
    checked = 0
    for p in scores.failure_predictions:
        model = tiny.estimators[p.model]
        matrix = snapshot.node if p.scope == "node" else snapshot.disks
        schema = matrix.schema
        x = matrix.model_input()[[matrix.subjects.index(p.subject)]]
        baseline = np.asarray(schema.fills(), dtype=np.float32)
        assert 0 < len(p.contributing_factors) <= 5
        contributions = [f.contribution for f in p.contributing_factors]
        assert contributions == sorted(contributions, reverse=True)
        for factor in p.contributing_factors:
            j = column(schema, factor.feature)
            occluded = x.copy()
            occluded[0, j] = baseline[j]
            expected = _sklearn_p(model, x)[0] - _sklearn_p(model, occluded)[0]
            assert factor.contribution == pytest.approx(expected, abs=1e-5)
            assert factor.contribution >= MIN_CONTRIBUTION
            assert factor.value == pytest.approx(float(x[0, j]))
            assert factor.baseline == pytest.approx(float(baseline[j]))
            checked += 1
    assert checked >= 3
    (sda,) = [p for p in scores.failure_predictions if p.subject == "sda"]
    top = sda.contributing_factors[0].feature
    assert top in {"reallocated_sectors_last_24h", "current_pending_sectors_last_24h"}


def test_no_factors_below_the_attribution_floor(tiny: TinyModels) -> None:
    scorer = Scorer(load_models(tiny.directory), attribution_floor=1.1)
    scores = scorer.score(_snapshot(SICK_NODE, {"sda": FAILING_DISK}))
    assert all(p.contributing_factors == () for p in scores.failure_predictions)


def _count_runs(monkeypatch: pytest.MonkeyPatch, model: Any) -> list[int]:
    """Wrap an OnnxModel's ``run`` and ``output`` (one output of a run); the list gets
    each call's row count."""
    calls: list[int] = []
    for method in ("run", "output"):
        original: Callable[..., Any] = getattr(model, method)

        def counting(rows: npt.NDArray[np.float32], *args: Any, _call: Any = original) -> Any:
            calls.append(len(rows))
            return _call(rows, *args)

        monkeypatch.setattr(model, method, counting)
    return calls


def test_all_disks_in_one_call_and_all_attributions_in_one_more(
    scorer: Scorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk_model = scorer.models.disk_failure[0].model
    vm_model = scorer.models.vm_anomaly.model  # type: ignore[union-attr]
    disk_calls = _count_runs(monkeypatch, disk_model)
    vm_calls = _count_runs(monkeypatch, vm_model)
    disks = {f"d{i}": FAILING_DISK if i % 4 == 0 else HEALTHY_DISK for i in range(24)}
    vms = {f"vm{i}": {"vm_cpu_util_percent_mean_15m": float(i)} for i in range(50)}
    scores = scorer.score(_snapshot(HEALTHY_NODE, disks, vms))
    explained = [
        p for p in scores.failure_predictions if p.scope == "disk" and p.contributing_factors
    ]
    assert len(explained) >= 6  # the six failing disks at least
    assert disk_calls[0] == 24 and len(disk_calls) == 2  # scores, then every occlusion row
    assert disk_calls[1] == sum(
        int(np.count_nonzero(row != np.asarray(DISK.fills(), dtype=np.float32)))
        for row, p in zip(
            _snapshot(HEALTHY_NODE, disks).disks.model_input(),
            [p for p in scores.failure_predictions if p.scope == "disk"],
            strict=True,
        )
        if p.probability >= scorer.attribution_floor
    )
    assert vm_calls == [50]
    assert scorer.last_scoring_seconds is not None and scorer.last_scoring_seconds > 0


def test_attributions_of_unchanged_rows_are_reused(
    scorer: Scorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SMART changes once a minute: a disk row equal to last cycle's keeps its factors."""
    disks = {"sda": FAILING_DISK, "sdb": HEALTHY_DISK}
    first = scorer.score(_snapshot(SICK_NODE, disks))
    calls = _count_runs(monkeypatch, scorer.models.disk_failure[0].model)
    again = scorer.score(_snapshot(SICK_NODE, disks))
    assert calls == [2]  # the scores only: no occlusion rows to run
    assert again.failure_predictions == first.failure_predictions
    worse = dict(FAILING_DISK, reallocated_sectors_last_24h=3000.0)
    changed = scorer.score(_snapshot(SICK_NODE, {"sda": worse, "sdb": HEALTHY_DISK}))
    changed_features = int(
        np.count_nonzero(
            _snapshot(disks={"sda": worse}).disks.model_input()[0]
            != np.asarray(DISK.fills(), dtype=np.float32)
        )
    )
    assert calls == [2, 2, changed_features]  # only the changed row is explained again
    fresh = Scorer(scorer.models).score(_snapshot(SICK_NODE, {"sda": worse, "sdb": HEALTHY_DISK}))
    assert changed.failure_predictions == fresh.failure_predictions


# --- anomalies -----------------------------------------------------------------------------


def test_anomaly_scores_severity_and_anomalous_features(scorer: Scorer, tiny: TinyModels) -> None:
    vm_median, vm_mad = tiny.median["vm-anomaly"], tiny.mad["vm-anomaly"]
    packets = column(VM, "vm_net_packets_per_second_p95_15m")
    flood = {
        "vm_net_packets_per_second_p95_15m": float(vm_median[packets] + 40 * vm_mad[packets]),
        "vm_cpu_util_percent_mean_15m": float(vm_median[0]),
    }
    calm = {"vm_net_packets_per_second_p95_15m": float(vm_median[packets])}
    snapshot = _snapshot(HEALTHY_NODE, vms={"u-flood": flood, "u-calm": calm})
    scores = scorer.score(snapshot)
    by_subject = {a.subject: a for a in scores.anomalies if a.scope == "vm"}
    expected = tiny.estimators["vm-anomaly"].predict(snapshot.vms.model_input())
    assert by_subject["u-flood"].score == pytest.approx(expected[0], abs=1e-4)
    assert by_subject["u-calm"].score == pytest.approx(expected[1], abs=1e-4)
    assert by_subject["u-flood"].severity == "critical"  # tree learnt |z| of this feature
    assert by_subject["u-calm"].severity == "none"
    assert by_subject["u-flood"].label == "name-u-flood"
    flagged = {f.feature: f for f in by_subject["u-flood"].anomalous_features}
    assert "vm_net_packets_per_second_p95_15m" in flagged
    assert flagged["vm_net_packets_per_second_p95_15m"].z == pytest.approx(40.0, rel=1e-4)
    (node,) = [a for a in scores.anomalies if a.scope == "node"]
    assert node.subject == "hv-1" and node.model == "node-anomaly"


def test_features_without_data_are_never_anomalous(tiny: TinyModels, tmp_path: Path) -> None:
    """A feature with no data is filled for the model; its fill must not be flagged."""
    directory = _copy_models(tiny, tmp_path / "models")
    cpu = column(VM, "vm_cpu_util_percent_p95_15m")
    median = tiny.median["vm-anomaly"].copy()
    median[cpu] = 50.0  # the fill (0) is now far out for this feature

    def shift(card: dict[str, Any]) -> None:
        card["extra"]["median"] = median.tolist()

    _edit_card(directory, "vm-anomaly", shift)
    scorer = Scorer.load(directory)
    vms = {"no-data": {}, "idle": {"vm_cpu_util_percent_p95_15m": 0.0}}
    scores = scorer.score(_snapshot(HEALTHY_NODE, vms=vms))
    flagged = {
        a.subject: [f.feature for f in a.anomalous_features]
        for a in scores.anomalies
        if a.scope == "vm"
    }
    assert "vm_cpu_util_percent_p95_15m" in flagged["idle"]
    assert "vm_cpu_util_percent_p95_15m" not in flagged["no-data"]


def test_robust_z_with_zero_spread() -> None:
    z = robust_z(np.array([[0.0, 1.0, 5.0]]), np.array([0.0, 0.0, 4.0]), np.array([0.0, 0.0, 2.0]))
    assert z.tolist() == [[0.0, 1000.0, 0.5]]


# --- missing and refused models -----------------------------------------------------------


def test_missing_models_give_no_scores_and_are_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        scorer = Scorer.load(tmp_path / "empty")
    missing = [r.role for r in caplog.records if "no model for this role" in r.message]  # type: ignore[attr-defined]
    assert missing == ["node-failure", "disk-failure", "node-anomaly", "vm-anomaly"]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            scores = scorer.score(_snapshot(SICK_NODE, {"sda": FAILING_DISK}, {"u": {}}))
    assert caplog.records == []
    assert scores.failure_predictions == () and scores.anomalies == ()
    assert scores.node_risk is None and scores.riskiest_disk is None
    assert scores.missing_models == ("node-failure", "disk-failure", "node-anomaly", "vm-anomaly")


def _copy_models(tiny: TinyModels, directory: Path) -> Path:
    directory.mkdir()
    for path in tiny.directory.iterdir():
        (directory / path.name).write_bytes(path.read_bytes())
    return directory


def _edit_card(directory: Path, name: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = directory / f"{name}{CARD_SUFFIX}"
    card = json.loads(path.read_text())
    change(card)
    path.write_text(json.dumps(card))


def test_a_tampered_model_is_refused_and_the_others_still_load(
    tiny: TinyModels, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = _copy_models(tiny, tmp_path / "models")
    onnx = directory / "disk-failure-7d.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-1] + b"\x00")
    _edit_card(directory, "vm-anomaly", lambda c: c.update(schema_hash="0" * 64))
    with caplog.at_level(logging.ERROR):
        models = load_models(directory)
    assert set(models.refused) == {"disk-failure-7d.card.json", "vm-anomaly.card.json"}
    assert "does not match its card" in models.refused["disk-failure-7d.card.json"]
    assert "feature schema mismatch" in models.refused["vm-anomaly.card.json"]
    refusals = [r for r in caplog.records if "model refused" in r.message]
    assert sorted(Path(r.card).name for r in refusals) == sorted(models.refused)  # type: ignore[attr-defined]
    assert models.missing == ("disk-failure", "vm-anomaly")
    assert len(models.node_failure) == 2 and models.node_anomaly is not None
    scores = Scorer(models).score(_snapshot(SICK_NODE, {"sda": FAILING_DISK}))
    assert {p.model for p in scores.failure_predictions} == {"node-failure-30m", "node-failure-24h"}


@pytest.mark.parametrize(
    ("name", "change", "reason"),
    [
        ("node-failure-30m", lambda c: c.update(horizons_seconds=[]), "without a positive horizon"),
        ("node-anomaly", lambda c: c.update(thresholds={"warning": 1.0}), "warning and critical"),
        ("node-anomaly", lambda c: c.update(outputs={"score": "?"}), "not in"),
        ("node-failure-24h", lambda c: c.update(onnx_file="absent.onnx"), "FileNotFoundError"),
    ],
)
def test_cards_breaking_the_contract_are_refused(
    tiny: TinyModels,
    tmp_path: Path,
    name: str,
    change: Callable[[dict[str, Any]], None],
    reason: str,
) -> None:
    directory = _copy_models(tiny, tmp_path / "models")
    _edit_card(directory, name, change)
    models = load_models(directory)
    assert list(models.refused) == [f"{name}{CARD_SUFFIX}"]
    assert reason in models.refused[f"{name}{CARD_SUFFIX}"]


def test_a_card_without_baseline_or_bins_still_scores(
    tiny: TinyModels, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = _copy_models(tiny, tmp_path / "models")
    _edit_card(directory, "disk-failure-7d", lambda c: c.update(extra={}, calibration={}))
    with caplog.at_level(logging.WARNING):
        scorer = Scorer.load(directory)
    assert "no usable calibration bins" in caplog.text
    assert "lacks a usable per-feature list" in caplog.text
    (sda,) = [
        p
        for p in scorer.score(_snapshot(SICK_NODE, {"sda": FAILING_DISK})).failure_predictions
        if p.subject == "sda"
    ]
    assert sda.probability > 0.8
    assert (sda.ci_low, sda.ci_high, sda.contributing_factors) == (None, None, ())


def test_the_newer_of_two_models_for_one_horizon_wins(tiny: TinyModels, tmp_path: Path) -> None:
    directory = _copy_models(tiny, tmp_path / "models")
    card = ModelCard.read(directory / f"disk-failure-7d{CARD_SUFFIX}")
    newer = ModelCard(**{**card.__dict__, "name": "disk-failure-7d-b", "version": "2026.02.01.1"})
    newer.write(directory)
    models = load_models(directory)
    assert [m.version for m in models.disk_failure] == ["2026.02.01.1"]
    assert "superseded" in models.refused[f"disk-failure-7d{CARD_SUFFIX}"]


# --- end to end on the fixture node --------------------------------------------------------


def _fixture_scores(root: Path, models_dir: Path) -> tuple[list[FailurePrediction], Scorer]:
    samples = collect_cycles(root, cycles=2, disks=6, failing_disks=1)
    features = NodeFeatures(samples[0].node_id)
    for sample in samples:
        features.update(sample)
    scorer = Scorer.load(models_dir)
    scores = scorer.score(features.snapshot())
    assert scores.riskiest_disk is not None
    assert scores.riskiest_disk.label == "/dev/sda"  # the injected failing disk
    return list(scores.failure_predictions), scorer


def test_the_failing_fixture_disk_ranks_riskiest(tiny: TinyModels, tmp_path: Path) -> None:
    predictions, _ = _fixture_scores(tmp_path / "node", tiny.directory)
    disks = sorted((p for p in predictions if p.scope == "disk"), key=lambda p: -p.probability)
    assert disks[0].label == "/dev/sda"
    assert len(disks) == 6


@pytest.mark.skipif("disk-failure-7d" not in bundled_models(), reason="no bundled disk model yet")
def test_the_bundled_disk_model_ranks_the_failing_fixture_disk_riskiest(tmp_path: Path) -> None:
    _, scorer = _fixture_scores(tmp_path / "node", Path(bundled_models()["disk-failure-7d"]).parent)
    assert scorer.models.refused == {}


# --- fused node models ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def fused(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return write_tiny_models(tmp_path_factory.mktemp("fused"), fused=True)


def _unfused(tiny: TinyModels, directory: Path) -> Path:
    directory = _copy_models(tiny, directory)
    for file in ("node-fused.onnx", f"node-fused{CARD_SUFFIX}"):
        (directory / file).unlink()
    return directory


def _fused_members(models: ModelSet) -> set[str]:
    return {m.name for m in models.loaded() if m.fused is not None}


NODE_MEMBERS = {"node-failure-30m", "node-failure-24h", "node-anomaly"}


def test_node_models_are_scored_by_one_fused_call_with_their_own_scores(
    fused: TinyModels, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scorer = Scorer.load(fused.directory)
    assert scorer.models.fused == {"node-fused": tuple(sorted(NODE_MEMBERS))}
    assert _fused_members(scorer.models) == NODE_MEMBERS and scorer.models.refused == {}
    fused_session = scorer.models.node_failure[0].fused
    assert fused_session is not None
    fused_calls = _count_runs(monkeypatch, fused_session.run.model)
    own_calls = {m.name: _count_runs(monkeypatch, m.model) for m in scorer.models.loaded()}
    snapshot = _snapshot(HEALTHY_NODE, {"sda": HEALTHY_DISK}, {"u": {}})
    scores = scorer.score(snapshot)
    assert fused_calls == [1]  # one row, three models
    # Own sessions of node models: occlusion batches only, never the frame's row.
    assert all(n > 1 for name in NODE_MEMBERS for n in own_calls[name])
    assert own_calls["vm-anomaly"] == [1] and own_calls["disk-failure-7d"][0] == 1
    reference = Scorer.load(_unfused(fused, tmp_path / "own")).score(snapshot)
    assert _fused_members(Scorer.load(tmp_path / "own").models) == set()
    for ours, theirs in zip(scores.failure_predictions, reference.failure_predictions, strict=True):
        assert ours.probability == pytest.approx(theirs.probability, abs=1e-6)
    assert [a.score for a in scores.anomalies] == pytest.approx(
        [a.score for a in reference.anomalies], abs=1e-6
    )
    node_rows = snapshot.node.model_input()
    for name in ("node-failure-30m", "node-failure-24h"):
        (p,) = [x for x in scores.failure_predictions if x.model == name]
        assert p.probability == pytest.approx(
            _sklearn_p(fused.estimators[name], node_rows)[0], abs=1e-5
        )


def test_a_sick_node_is_explained_with_the_members_own_sessions(fused: TinyModels) -> None:
    """Occlusion batches go to each member's own graph; single rows to the fused one."""
    scorer = Scorer.load(fused.directory)
    scores = scorer.score(_snapshot(SICK_NODE))
    explained = [p for p in scores.failure_predictions if p.contributing_factors]
    assert {p.model for p in explained} == {"node-failure-30m", "node-failure-24h"}
    reference = Scorer(
        replace(
            scorer.models,
            node_failure=tuple(replace(m, fused=None) for m in scorer.models.node_failure),
        )
    ).score(_snapshot(SICK_NODE))
    assert [p.contributing_factors for p in scores.failure_predictions] == [
        p.contributing_factors for p in reference.failure_predictions
    ]


def test_a_member_loaded_in_another_version_keeps_its_own_session(
    fused: TinyModels, tmp_path: Path
) -> None:
    directory = _copy_models(fused, tmp_path / "models")
    _edit_card(directory, "node-failure-30m", lambda c: c.update(version="2026.02.01.1"))
    models = load_models(directory)
    assert _fused_members(models) == NODE_MEMBERS - {"node-failure-30m"}
    assert models.refused == {}


def test_a_fused_model_that_disagrees_with_a_member_is_refused(
    fused: TinyModels, tmp_path: Path
) -> None:
    directory = _copy_models(fused, tmp_path / "models")

    def swap_columns(card: dict[str, Any]) -> None:
        a, b = card["extra"]["members"][1:3]  # the two failure models
        a["column"], b["column"] = b["column"], a["column"]

    _edit_card(directory, "node-fused", swap_columns)
    models = load_models(directory)
    assert "scores differ" in models.refused[f"node-fused{CARD_SUFFIX}"]
    assert _fused_members(models) == set() and models.missing == ()


def test_a_tampered_fused_model_is_refused_and_the_members_still_score(
    fused: TinyModels, tmp_path: Path
) -> None:
    directory = _copy_models(fused, tmp_path / "models")
    onnx = directory / "node-fused.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-1] + b"\x00")
    models = load_models(directory)
    assert "does not match its card" in models.refused[f"node-fused{CARD_SUFFIX}"]
    assert _fused_members(models) == set() and len(models.node_failure) == 2


def test_an_updated_member_leaves_the_others_fused(fused: TinyModels) -> None:
    models = load_models(fused.directory)
    update = failure_model(OnnxModel.load(fused.directory / f"node-failure-24h{CARD_SUFFIX}"))
    swapped = with_model(models, "node-failure", update)
    assert _fused_members(swapped) == NODE_MEMBERS - {"node-failure-24h"}
