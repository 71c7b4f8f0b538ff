"""Node failure models: dataset, leak-free split, tiny end-to-end training, shipped models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from novacron.agent.model_set import failure_model
from novacron.models.card import BUNDLED_DIR, CARD_SUFFIX, ModelCard
from novacron.models.runtime import OnnxModel
from novacron.models.schema import DAY, MINUTE, NODE
from novacron.models.training.export import (
    PARITY_TOLERANCE,
    SOURCE_PARITY_DIR,
    max_abs_difference,
)
from novacron.models.training.node_failure import (
    CALIBRATION_EDGES,
    HORIZONS,
    OUTPUT,
    ROW_STEP_SECONDS,
    WARMUP_SECONDS,
    FleetRows,
    TrainOptions,
    TrainResult,
    build_rows,
    held_out_scorer,
    node_rows,
    split_for,
    train,
)
from novacron.models.training.pipeline import register
from novacron.models.training.simulator import SimConfig, simulate_node

PARITY_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "models"
# Seconds to build and train; enough failures that each split part has positives.
TINY = TrainOptions(
    nodes=24, days=1.0, seed=3, eval_nodes=6, failure_fraction=0.6, workers=1, trees=20
)
THIRTY_MINUTES = {"node-failure-30m": HORIZONS["node-failure-30m"]}


@pytest.fixture(scope="module")
def tiny_rows() -> tuple[FleetRows, FleetRows]:
    return build_rows(TINY)


@pytest.fixture(scope="module")
def trained(
    tiny_rows: tuple[FleetRows, FleetRows], tmp_path_factory: pytest.TempPathFactory
) -> tuple[TrainResult, Path]:
    out = tmp_path_factory.mktemp("models")
    (result,) = train(TINY, out, out / "parity", THIRTY_MINUTES, rows=tiny_rows)
    return result, out


def test_rows_replay_a_node_up_to_its_failure() -> None:
    config = SimConfig(nodes=8, days=0.5, seed=5, failure_fraction=0.5)
    index = next(i for i in range(8) if simulate_node(config, i).failure_time is not None)
    trace = simulate_node(config, index)
    rows = node_rows(config, index)
    assert trace.failure_time is not None
    assert len(rows.time) > 0
    assert rows.time[0] >= trace.times[0] + WARMUP_SECONDS
    assert np.all(rows.time < trace.failure_time)  # a dead node has no rows
    assert np.allclose(np.diff(rows.time), ROW_STEP_SECONDS)
    assert rows.x.shape == (len(rows.time), len(NODE.features))
    assert np.isnan(rows.x).any()  # "no data" stays NaN in the dataset
    assert set(rows.subject.tolist()) == {trace.node_id}
    assert np.all(rows.failure_time == trace.failure_time)
    labelled = rows.labelled(30 * MINUTE)
    until = trace.failure_time - rows.time
    assert np.array_equal(labelled.y == 1, until <= 30 * MINUTE)


def test_time_split_leaves_a_horizon_gap_before_the_test_period(
    tiny_rows: tuple[FleetRows, FleetRows],
) -> None:
    rows, _ = tiny_rows
    horizon = HORIZONS["node-failure-30m"]
    split = split_for(rows, horizon)
    cutoff = split.cutoff_time
    assert split.train.time.max() < cutoff - horizon
    assert split.test.time.min() >= cutoff
    # Every row of the data in the gap is gone from both parts, so no training label
    # looks at anything that happens in the test period.
    in_gap = (rows.time >= cutoff - horizon) & (rows.time < cutoff)
    assert in_gap.any()
    assert len(split.train) + len(split.test) == len(rows.time) - int(in_gap.sum())
    assert np.all(split.train.time + horizon < cutoff)


def test_tiny_fleet_trains_end_to_end_and_beats_the_base_rate(
    trained: tuple[TrainResult, Path],
) -> None:
    result, out = trained
    assert result.registered
    assert (out / "node-failure-30m.onnx").is_file()
    card = ModelCard.read(out / f"node-failure-30m{CARD_SUFFIX}")
    held_out = card.metrics["held_out_later_period"]
    assert held_out["positive_rows"] > 0
    assert held_out["pr_auc"] > 2 * held_out["base_rate"]
    assert (
        card.metrics["evaluation_fleet"]["pr_auc"] > card.metrics["evaluation_fleet"]["base_rate"]
    )
    model = OnnxModel.load(out / f"node-failure-30m{CARD_SUFFIX}")
    rows = result.test.filled()
    assert max_abs_difference(model, result.model.predict_proba(rows), rows, OUTPUT) < (
        PARITY_TOLERANCE
    )
    _check_card(card, 30 * MINUTE)
    assert (out / "parity" / "node-failure-30m.parity.npz").is_file()


def test_current_model_is_scored_on_the_same_held_out_rows(
    trained: tuple[TrainResult, Path],
) -> None:
    result, out = trained
    path = out / f"node-failure-30m{CARD_SUFFIX}"
    score = held_out_scorer(result.test)(path)
    assert score == pytest.approx(result.card.metrics["held_out_later_period"]["pr_auc"], 1e-4)
    # The same model again does not beat itself: a rerun does not replace the file.
    assert not register(result.card, score, path, held_out_scorer(result.test))


def _check_card(card: ModelCard, horizon: float) -> None:
    """The failure-model contract the agent scores by."""
    assert card.kind == "failure"
    assert card.schema == NODE.version_tag and card.schema_hash == NODE.hash
    assert card.features == NODE.feature_names
    assert card.horizons_seconds == (horizon,)
    assert 0 < card.thresholds["alert"] < 1
    bins = card.calibration["bins"]
    assert [b[0] for b in bins] == list(CALIBRATION_EDGES[:-1])
    assert [b[1] for b in bins] == list(CALIBRATION_EDGES[1:])
    assert sum(b[2] for b in bins) == card.training_data["rows"]["calibration"]
    assert sum(b[3] for b in bins) == card.training_data["rows"]["calibration_positive"]
    baseline = np.asarray(card.extra["baseline"], dtype=float)
    assert baseline.shape == (len(NODE.features),) and np.isfinite(baseline).all()
    for part in ("held_out_later_period", "evaluation_fleet"):
        metrics = card.metrics[part]
        for key in ("precision", "recall", "f1", "pr_auc", "false_alarms_per_node_day"):
            assert key in metrics
        assert "lead_time_median_minutes" in metrics and "lead_time_p10_minutes" in metrics
    assert card.metrics["onnx_parity_max_abs_diff"] < PARITY_TOLERANCE
    assert card.metrics["onnx_latency_us"]["p50"] > 0
    fleet = card.training_data["fleet"]
    assert card.training_data["evaluation_fleet"]["seed"] != fleet["seed"]
    assert card.training_data["split"]["gap_seconds"] == horizon


@pytest.mark.parametrize("name", sorted(HORIZONS))
def test_shipped_card_keeps_the_contract_and_the_node_schema(name: str) -> None:
    card = ModelCard.read(BUNDLED_DIR / f"{name}{CARD_SUFFIX}")
    _check_card(card, HORIZONS[name])
    held_out = card.metrics["held_out_later_period"]
    assert held_out["pr_auc"] > 3 * held_out["base_rate"]
    # The agent's loader accepts it (sha256, schema, output shape, card fields).
    loaded = failure_model(OnnxModel.load(BUNDLED_DIR / f"{name}{CARD_SUFFIX}"))
    assert loaded.horizon_seconds == HORIZONS[name]
    assert loaded.baseline is not None and loaded.calibration.bins


@pytest.mark.parametrize("name", sorted(HORIZONS))
def test_shipped_onnx_matches_scikit_learn_on_held_out_rows(name: str) -> None:
    """The parity rows were written by the training run that shipped the model: held-out
    rows and scikit-learn's probabilities for them (the estimator itself is not shipped)."""
    model = OnnxModel.load(BUNDLED_DIR / f"{name}{CARD_SUFFIX}")
    evidence = np.load(PARITY_DIR / f"{name}.parity.npz")
    assert str(evidence["model_sha256"]) == model.card.sha256, (
        "parity rows belong to another model: retrain with "
        "python -m novacron.models.training.node_failure"
    )
    rows = evidence["rows"]
    assert rows.dtype == np.float32 and rows.shape[1] == len(NODE.features)
    assert len(rows) >= 100
    sklearn = evidence["sklearn_probabilities"]
    assert sklearn[:, 1].max() > 0.1  # the rows include confident positives, not only zeros
    assert max_abs_difference(model, sklearn, rows, OUTPUT) < PARITY_TOLERANCE


def test_parity_rows_live_in_the_source_tree() -> None:
    assert SOURCE_PARITY_DIR == PARITY_DIR


def test_training_options_default_to_a_two_day_plus_horizon() -> None:
    """The default fleet is long enough that the 24 h model has training rows at all:
    (1 - test share) * days must exceed the 24 h gap with room to spare."""
    options = TrainOptions()
    assert 0.7 * options.days * DAY - DAY >= DAY
