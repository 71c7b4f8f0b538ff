"""series-anomaly: the SERIES features, the rule graph, thresholds, training, shipped model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from novacron.models.card import bundled_card_path
from novacron.models.runtime import OnnxModel
from novacron.models.schema import DAY, HOUR, MINUTE, SERIES
from novacron.models.series import (
    BASELINE_SECONDS,
    MIN_BASELINE_POINTS,
    SIGNAL_CLIP,
    derived_signals,
    many_model_inputs,
    model_input,
    series_features,
)
from novacron.models.training import distill, series_anomaly
from novacron.models.training.datasets import nab
from novacron.models.windows import FeatureWindows

REPO = Path(__file__).resolve().parents[3]
FIXTURE = REPO / "tests" / "fixtures" / "nab"
PARITY = REPO / "tests" / "fixtures" / "models" / "series-anomaly.parity.npz"


def sine_day(
    days: float = 2.0, step: float = 5 * MINUTE, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(0.0, days * DAY, step)
    rng = np.random.default_rng(seed)
    return t, 50 + 10 * np.sin(2 * np.pi * t / DAY) + rng.normal(0, 1, len(t))


# -- features ------------------------------------------------------------------------


def test_signals_are_deviations_from_the_trailing_day_excluding_the_point() -> None:
    t, x = sine_day()
    x[400] += 60.0  # a spike
    signals = derived_signals(t, x)
    assert math.isnan(signals["value_z"][MIN_BASELINE_POINTS - 1])  # baseline too short
    assert not math.isnan(signals["value_z"][MIN_BASELINE_POINTS])
    base = x[np.searchsorted(t, t[400] - BASELINE_SECONDS) : 400]
    assert signals["value_z"][400] == pytest.approx((x[400] - base.mean()) / base.std())
    assert signals["exceedance"][400] == pytest.approx(
        (x[400] - base.max()) / (base.max() - base.min())
    )
    assert signals["diff_z"][400] > 10 and signals["diff_z"][401] < -10
    typical = np.abs(signals["value_z"][300:390])
    assert typical.max() < 3 and np.all(signals["exceedance"][300:390] < 0.2)


def test_signals_are_causal_scale_free_and_bounded() -> None:
    t, x = sine_day()
    before = derived_signals(t, x)
    changed = x.copy()
    changed[500:] += 1e6  # the future must not change the past
    after = derived_signals(t, changed)
    for name in SERIES.signal_names:
        np.testing.assert_array_equal(before[name][:500], after[name][:500])
        assert np.nanmax(np.abs(after[name])) <= SIGNAL_CLIP
    scaled = derived_signals(t, 1000.0 * x + 5.0)
    for name in SERIES.signal_names:
        np.testing.assert_allclose(scaled[name], before[name], rtol=1e-6, atol=1e-6)


def test_a_constant_series_is_quiet_not_a_division_by_zero() -> None:
    t = np.arange(0.0, DAY, 5 * MINUTE)
    signals = derived_signals(t, np.full(len(t), 7.0))
    for name in SERIES.signal_names:
        values = signals[name][MIN_BASELINE_POINTS:]
        assert np.all(values == 0.0), name


def test_features_are_feature_windows_over_the_signals() -> None:
    t, x = sine_day(days=1.5)
    rows = series_features(t, x)
    assert rows.shape == (len(t), len(SERIES.features))
    signals = derived_signals(t, x)
    windows = FeatureWindows(SERIES, interval_hint_seconds=5 * MINUTE)
    for i in range(len(t)):
        windows.add(t[i], {n: None if math.isnan(v[i]) else v[i] for n, v in signals.items()})
    np.testing.assert_array_equal(rows[-1], windows.features(t[-1]))
    filled = model_input(rows)
    assert filled.dtype == np.float32 and not np.isnan(filled).any()
    assert np.all(filled[0] == 0.0)  # no history yet: neutral fills
    parallel = many_model_inputs([(t, x), (t, x + 1)], workers=2)
    np.testing.assert_array_equal(parallel[0], filled)


def test_features_refuse_unordered_times() -> None:
    with pytest.raises(ValueError, match="non-decreasing"):
        derived_signals(np.array([0.0, 2.0, 1.0]), np.zeros(3))


# -- the rule and thresholds -------------------------------------------------------------


def test_rule_graph_equals_the_numpy_rule() -> None:
    rng = np.random.default_rng(1)
    rows = rng.normal(0, 20, size=(500, len(SERIES.features))).astype(np.float32)
    model = OnnxModel.load(bundled_card_path("series-anomaly"))
    if model.card.extra["detector"] != "rule":
        pytest.skip("the shipped detector is the learned one")
    onnx_scores = model.run(rows)[series_anomaly.RULE_OUTPUT].ravel()
    np.testing.assert_allclose(onnx_scores, series_anomaly.rule_scores(rows), rtol=0, atol=1e-6)
    names = SERIES.feature_names
    expected = np.maximum(
        np.abs(rows[:, names.index("value_z_last_15m")]),
        np.abs(rows[:, names.index("diff_z_last_15m")]),
    )
    np.testing.assert_array_equal(series_anomaly.rule_scores(rows), expected)


def synthetic_rows(n_series: int = 3) -> list[series_anomaly.SeriesRows]:
    """Series whose score is 10 inside their window, 3 at a few outside points, else 0."""
    out = []
    for k in range(n_series):
        t = np.arange(100.0) * HOUR
        x = np.zeros((100, len(SERIES.features)), dtype=np.float32)
        x[40:45, SERIES.feature_names.index("value_z_last_15m")] = 10.0
        x[[10 + k, 70, 71, 90], SERIES.feature_names.index("diff_z_last_15m")] = 3.0
        s = nab.NabSeries(f"c/s{k}.csv", ("",) * 100, t, np.zeros(100), ((t[38], t[46]),))
        out.append(series_anomaly.SeriesRows(s, x))
    return out


def test_thresholds_respect_the_flag_budget_outside_windows() -> None:
    rows = synthetic_rows()
    scores = [series_anomaly.rule_scores(r.x) for r in rows]
    chosen = series_anomaly.choose_thresholds(rows, scores)
    # Flagging the score-3 points would flag 4 of 91 points outside windows (> 1 %).
    assert 3.0 < chosen.warning <= 10.0 and chosen.critical >= chosen.warning
    summary = chosen.tuning_summary
    assert summary["event_recall"] == 1.0 and summary["false_positive_runs"] == 0
    assert summary["flagged_share_outside_windows"] <= series_anomaly.FLAG_BUDGET


# -- training on the small NAB copy, in seconds -------------------------------------------


def test_training_on_a_small_nab_copy(tmp_path: Path) -> None:
    options = series_anomaly.TrainOptions(
        workers=2, student=distill.StudentOptions(forest_trees=20, trees=10, depth=3)
    )
    result = series_anomaly.train(FIXTURE, options, tmp_path, parity_dir=tmp_path)
    card = result.card
    assert result.registered and card.name == "series-anomaly" and card.kind == "anomaly"
    assert card.schema == SERIES.version_tag
    assert card.training_data["held_out_series"] == ["realTraffic/speed_7578.csv"]
    assert len(card.training_data["tuning_series"]) == 3
    assert set(card.metrics["candidates"]) == {"rule", "learned"}
    shipped, other = result.shipped, result.other
    assert shipped.held_out_f1 >= other.held_out_f1  # the better one ships (a tie: the rule)
    assert card.metrics["shipped"] == card.extra["detector"] == shipped.name
    assert card.metrics["onnx_parity_max_abs_diff"] < 1e-5
    for key in ("event_f1", "point_f1", "point_adjusted_f1"):
        assert key in card.metrics["held_out"]
    assert card.metrics["held_out_flag_every_point_baseline"]["event_recall"] == 1.0
    assert len(card.extra["median"]) == len(SERIES.features)
    model = OnnxModel.load(tmp_path / "series-anomaly.card.json")
    parity = np.load(tmp_path / "series-anomaly.parity.npz")
    output = next(iter(card.outputs))
    got = model.run(parity["rows"])[output].ravel().astype(np.float64)
    assert np.max(np.abs(got - parity["reference_scores"])) < 1e-5


def test_training_needs_held_out_series(tmp_path: Path) -> None:
    only = tmp_path / "nab"
    key = "artificialNoAnomaly/art_noisy.csv"
    (only / "data" / "artificialNoAnomaly").mkdir(parents=True)
    (only / "data" / key).write_bytes((FIXTURE / "data" / key).read_bytes())
    (only / "combined_windows.json").write_text('{"' + key + '": []}')
    with pytest.raises(ValueError, match="held-out"):
        series_anomaly.train(only, series_anomaly.TrainOptions(workers=1), tmp_path / "out")


# -- the shipped model ---------------------------------------------------------------------


def test_shipped_series_model_matches_its_reference_on_held_out_rows() -> None:
    model = OnnxModel.load(bundled_card_path("series-anomaly"))
    parity = np.load(PARITY)
    assert str(parity["model_sha256"]) == model.card.sha256, "parity rows are stale: retrain"
    output = next(iter(model.card.outputs))
    got = model.run(parity["rows"])[output].ravel().astype(np.float64)
    assert np.max(np.abs(got - parity["reference_scores"])) < 1e-5
    assert parity["reference_scores"].max() >= model.card.thresholds["warning"]


def test_shipped_series_card_reports_held_out_numbers_beside_the_baseline() -> None:
    card = OnnxModel.load(bundled_card_path("series-anomaly")).card
    held_out = set(card.training_data["held_out_series"])
    assert held_out and not held_out & set(card.training_data["tuning_series"])
    assert not any(k.startswith("artificial") for k in held_out)
    metrics = card.metrics
    assert metrics["shipped"] in ("rule", "learned")
    rule, learned = metrics["candidates"]["rule"], metrics["candidates"]["learned"]
    if metrics["shipped"] == "rule":
        assert learned["held_out"]["event_f1"] <= rule["held_out"]["event_f1"]
    assert metrics["held_out"]["windows"] == card.training_data["held_out_windows"]
    assert 0 < card.thresholds["warning"] <= card.thresholds["critical"]
