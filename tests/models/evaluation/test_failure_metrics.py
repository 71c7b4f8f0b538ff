"""Failure-prediction metrics on hand-made rows whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from novacron.models.evaluation.failure_metrics import failure_metrics
from novacron.models.schema import DAY, MINUTE

STEP = 10 * MINUTE


def _rows() -> dict[str, np.ndarray]:
    """Two nodes, 12 rows each (2 h). Node a fails at t=120 min: its rows at 90, 100 and
    110 min are within a 30-min horizon. Node b never fails."""
    time = np.tile(np.arange(12) * STEP, 2).astype(float)
    subject = np.array(["a"] * 12 + ["b"] * 12)
    failure_time = np.array([120 * MINUTE] * 12 + [np.nan] * 12)
    until = failure_time - time
    y = ((until > 0) & (until <= 30 * MINUTE)).astype(np.int_)
    return {"time": time, "subject": subject, "failure_time": failure_time, "y": y}


def _score(alerted: dict[str, list[int]]) -> np.ndarray:
    score = np.zeros(24)
    for node, indices in alerted.items():
        offset = 0 if node == "a" else 12
        score[[offset + k for k in indices]] = 0.9
    return score


def test_counts_false_alarm_episodes_not_rows_and_lead_time_from_first_alert() -> None:
    r = _rows()
    # a: alerts at 20-30 min (false, one episode) and 100-110 min (true, first at 100)
    # b: alerts at 0, 10 (one episode) and 50 (another)
    score = _score({"a": [2, 3, 10, 11], "b": [0, 1, 5]})
    m = failure_metrics(
        score,
        r["y"],
        r["time"],
        r["subject"],
        r["failure_time"],
        threshold=0.5,
        row_step_seconds=STEP,
    )
    assert m["rows"] == 24 and m["positive_rows"] == 3
    assert m["base_rate"] == pytest.approx(3 / 24)
    assert m["precision"] == pytest.approx(2 / 7)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["false_alarms"] == 3
    assert m["node_days"] == pytest.approx(24 * STEP / DAY)
    assert m["false_alarms_per_node_day"] == pytest.approx(3 / (24 * STEP / DAY))
    assert m["failures"] == 1 and m["failures_detected"] == 1
    assert m["lead_time_median_minutes"] == pytest.approx(20.0)
    assert m["lead_time_p10_minutes"] == pytest.approx(20.0)
    low, high = m["failure_recall_95ci"]
    assert low < 1.0 == high


def test_a_missed_failure_has_no_lead_time_and_a_perfect_score_ranks_first() -> None:
    r = _rows()
    score = np.where(r["y"] == 1, 0.3, 0.1)  # perfect ranking, below the threshold
    m = failure_metrics(
        score,
        r["y"],
        r["time"],
        r["subject"],
        r["failure_time"],
        threshold=0.5,
        row_step_seconds=STEP,
    )
    assert m["pr_auc"] == pytest.approx(1.0)
    assert m["failures_detected"] == 0 and m["failure_recall"] == 0.0
    assert m["lead_time_median_minutes"] is None and m["lead_time_p10_minutes"] is None
    assert m["false_alarms"] == 0 and m["precision"] == 0.0


def test_alerts_before_the_horizon_are_false_alarms_not_detections() -> None:
    r = _rows()
    score = _score({"a": [0, 1, 2, 3, 4, 5, 6, 7, 8]})  # stops just before the window
    m = failure_metrics(
        score,
        r["y"],
        r["time"],
        r["subject"],
        r["failure_time"],
        threshold=0.5,
        row_step_seconds=STEP,
    )
    assert m["failures_detected"] == 0
    assert m["false_alarms"] == 1
