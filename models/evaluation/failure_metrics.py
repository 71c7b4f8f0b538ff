"""Metrics for failure prediction on time-ordered rows, numpy only.

Row level: precision, recall and F1 at the alert threshold, and PR-AUC
(:func:`~novacron.models.evaluation.metrics.average_precision`). Rows are rare-positive,
so ROC-AUC would flatter a model; PR-AUC is compared with the base rate (the PR-AUC of a
random score).

Operator level, which is what an on-call engineer feels:

* **false alarms per node-day**: a maximal run of consecutive alerted *negative* rows of
  one subject is *one* false alarm (the alert stays up, the page is sent once), divided
  by the node-days the rows cover (rows x row step);
* **failures detected / lead time**: a failure is detected when any of its positive
  rows (those within the horizon before it) is alerted; its lead time is the failure
  time minus the first such alert. We report the median and the 10th percentile (90 %
  of detected failures had at least that much warning). Failures are few, so the
  failure recall comes with its Wilson 95 % interval.

A subject (node) is assumed to fail at most once in the rows: after a failure it has no
rows (a dead node reports nothing).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from novacron.models.evaluation.metrics import (
    average_precision,
    precision_recall_f1,
    wilson_interval,
)
from novacron.models.schema import DAY, MINUTE

FloatArray = npt.NDArray[np.float64]


def failure_metrics(
    score: FloatArray,
    y: npt.NDArray[np.int_],
    time: FloatArray,
    subject: npt.NDArray[np.str_],
    failure_time: FloatArray,
    *,
    threshold: float,
    row_step_seconds: float,
) -> dict[str, Any]:
    """Every figure we publish for one failure model on one evaluation set.

    ``failure_time`` is per row (NaN when the subject does not fail in the data).
    """
    alert = score >= threshold
    tp = int(np.sum(alert & (y == 1)))
    fp = int(np.sum(alert & (y == 0)))
    fn = int(np.sum(~alert & (y == 1)))
    precision, recall, f1 = precision_recall_f1(tp, fp, fn)
    node_days = len(y) * row_step_seconds / DAY
    false_alarms = _false_alarm_episodes(alert & (y == 0), time, subject)
    leads = _lead_times(alert, y, time, subject, failure_time)
    failures = len(np.unique(subject[y == 1]))
    return {
        "rows": len(y),
        "positive_rows": int(np.sum(y)),
        "base_rate": float(np.mean(y)) if len(y) else math.nan,
        "pr_auc": average_precision(y, score),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "threshold": threshold,
        "node_days": node_days,
        "false_alarms": false_alarms,
        "false_alarms_per_node_day": false_alarms / node_days if node_days else math.nan,
        "failures": failures,
        "failures_detected": len(leads),
        "failure_recall": len(leads) / failures if failures else math.nan,
        "failure_recall_95ci": wilson_interval(len(leads), failures),
        "lead_time_median_minutes": float(np.median(leads)) / MINUTE if leads else None,
        "lead_time_p10_minutes": float(np.percentile(leads, 10)) / MINUTE if leads else None,
    }


def _false_alarm_episodes(
    false_alert: npt.NDArray[np.bool_], time: FloatArray, subject: npt.NDArray[np.str_]
) -> int:
    episodes = 0
    for name in np.unique(subject):
        rows = subject == name
        flags = false_alert[rows][np.argsort(time[rows], kind="mergesort")]
        episodes += int(np.sum(flags & ~np.r_[False, flags[:-1]]))
    return episodes


def _lead_times(
    alert: npt.NDArray[np.bool_],
    y: npt.NDArray[np.int_],
    time: FloatArray,
    subject: npt.NDArray[np.str_],
    failure_time: FloatArray,
) -> list[float]:
    leads = []
    for name in np.unique(subject[y == 1]):
        rows = (subject == name) & (y == 1) & alert
        if rows.any():
            leads.append(float(np.max(failure_time[rows] - time[rows])))
    return leads
