"""FeatureWindows: exact aggregates, reset-aware counters, gaps, bounds, persistence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from novacron.models.schema import DAY, HOUR, MINUTE, Feature, Schema, SchemaMismatch, Signal
from novacron.models.windows import FeatureWindows

SIGNALS = (
    Signal("g", "u", "gauge", "test", ""),
    Signal("c", "u", "counter", "test", ""),
)


def feature(name: str, signal: str, aggregation: str, window: float) -> Feature:
    return Feature(name, signal, aggregation, window, "u", 0.0, "")  # type: ignore[arg-type]


SCHEMA = Schema(
    "test",
    1,
    SIGNALS,
    (
        feature("g_mean", "g", "mean", 15 * MINUTE),
        feature("g_std", "g", "std", 15 * MINUTE),
        feature("g_p95", "g", "p95", 15 * MINUTE),
        feature("g_min", "g", "min", 15 * MINUTE),
        feature("g_max", "g", "max", 15 * MINUTE),
        feature("g_last", "g", "last", 15 * MINUTE),
        feature("g_trend", "g", "trend", 30 * MINUTE),
        feature("c_last", "c", "last", HOUR),
        feature("c_inc_1h", "c", "increase", HOUR),
        feature("c_inc_24h", "c", "increase", DAY),
        feature("c_rate_1h", "c", "rate_per_hour", HOUR),
    ),
)
T0 = 1_700_000_000.0


def values(w: FeatureWindows, now: float | None = None) -> dict[str, float]:
    return dict(zip(SCHEMA.feature_names, w.features(now).tolist(), strict=True))


def test_gauge_aggregates_over_the_window_only() -> None:
    w = FeatureWindows(SCHEMA, interval_hint_seconds=60)
    for i, v in enumerate([100.0, 1.0, 2.0, 3.0, 4.0]):
        # the first sample is 20 minutes before the last: outside the 15-minute window
        w.add(T0 + (i and 16 * MINUTE) + i * MINUTE, {"g": v})
    f = values(w)
    assert f["g_mean"] == pytest.approx(2.5)
    assert f["g_std"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert f["g_p95"] == pytest.approx(np.percentile([1, 2, 3, 4], 95))
    assert (f["g_min"], f["g_max"], f["g_last"]) == (1.0, 4.0, 4.0)


def test_trend_is_the_least_squares_slope_per_minute() -> None:
    w = FeatureWindows(SCHEMA, interval_hint_seconds=60)
    for i in range(10):
        w.add(T0 + i * MINUTE, {"g": 40.0 + 0.5 * i})
    assert values(w)["g_trend"] == pytest.approx(0.5)


def test_counter_increase_survives_a_reset() -> None:
    w = FeatureWindows(SCHEMA, interval_hint_seconds=60)
    for i, v in enumerate([10.0, 12.0, 15.0, 2.0, 5.0]):  # reset after 15: +2 since
        w.add(T0 + i * MINUTE, {"c": v})
    f = values(w)
    assert f["c_inc_1h"] == pytest.approx((12 - 10) + (15 - 12) + 2 + (5 - 2))
    assert f["c_last"] == 5.0
    assert f["c_rate_1h"] == pytest.approx(f["c_inc_1h"] / (4 * MINUTE / HOUR))


def test_missing_values_and_gaps_mean_fewer_samples_not_zeros() -> None:
    w = FeatureWindows(SCHEMA, interval_hint_seconds=60)
    w.add(T0, {"g": 10.0, "c": 1.0})
    w.add(T0 + MINUTE, {"g": None})  # collector failed this cycle
    w.add(T0 + 40 * MINUTE, {"g": 20.0, "c": 4.0})  # a 39-minute gap
    f = values(w)
    assert f["g_mean"] == 20.0  # only the sample inside 15 minutes
    assert f["c_inc_1h"] == 3.0  # counter carried over the missing cycle


def test_too_little_data_is_nan_and_model_input_uses_fills() -> None:
    w = FeatureWindows(SCHEMA, interval_hint_seconds=60)
    w.add(T0, {"g": 5.0})
    f = values(w)
    assert math.isnan(f["g_std"]) and math.isnan(f["g_trend"]) and math.isnan(f["c_inc_1h"])
    assert not np.isnan(w.model_input()).any()


def test_day_windows_use_the_coarse_ring_and_memory_stays_bounded() -> None:
    w = FeatureWindows(SCHEMA, interval_hint_seconds=10)
    sizes = None
    for i in range(3 * 8640):  # three days at 10 s
        w.add(T0 + i * 10.0, {"c": float(i // 360)})  # +1 every hour
        if i == 2 * 8640:  # the coarse ring (a day + 2 buckets) is full by now
            sizes = {k: v.nbytes for k, v in w.state().items()}
    f = values(w)
    assert f["c_inc_24h"] == pytest.approx(24.0, abs=1.0)
    assert f["c_inc_1h"] == pytest.approx(1.0, abs=1.0)
    assert sizes == {k: v.nbytes for k, v in w.state().items()}  # no growth once full


def test_out_of_order_samples_are_ignored_and_unknown_signals_refused() -> None:
    w = FeatureWindows(SCHEMA)
    assert w.add(T0, {"g": 1.0})
    assert not w.add(T0, {"g": 2.0})
    assert not w.add(T0 - 1, {"g": 3.0})
    with pytest.raises(SchemaMismatch, match="not in test-v1"):
        w.add(T0 + 1, {"nope": 1.0})


def test_state_round_trip_and_schema_check() -> None:
    w = FeatureWindows(SCHEMA, interval_hint_seconds=60)
    for i in range(30):
        w.add(T0 + i * MINUTE, {"g": float(i), "c": float(i * 2)})
    restored = FeatureWindows(SCHEMA, interval_hint_seconds=60)
    restored.restore(w.state())
    np.testing.assert_array_equal(restored.features(), w.features())
    restored.add(T0 + 31 * MINUTE, {"c": 100.0})
    assert values(restored)["c_inc_1h"] == pytest.approx(58 + (100 - 58))
    other = Schema("test", 2, SIGNALS, SCHEMA.features[:1])
    with pytest.raises(SchemaMismatch):
        FeatureWindows(other).restore(w.state())
