"""Detection metrics in plain numpy, shared by every evaluation (no scikit-learn).

* :func:`precision_recall_f1` from counts, ``0.0`` where a ratio has no denominator
  (nothing flagged, nothing to find), as scikit-learn's ``zero_division=0``.
* :func:`average_precision` is PR-AUC as the step-wise average precision
  ``sum_n (R_n - R_{n-1}) * P_n`` over distinct score thresholds (scikit-learn's
  definition, no interpolation), so tied scores are one threshold, not an arbitrary order.
* :func:`wilson_interval` gives a proportion's 95 % interval (small counts).
* :func:`subject_detection` scores flags per *subject* (a drive, a node) that may have
  one event (its failure): a subject with an event is positive; it is detected if any of
  its rows up to and including the event is flagged; a subject without an event counts
  as a false positive if any of its rows is flagged. Lead time is the event time minus
  the first flagged row's time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Z95 = 1.959963984540054  # standard normal 97.5 % quantile: two-sided 95 %


def precision_recall_f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (95 % by default); None when n is 0.

    Evaluation sets with a handful of failures give wide intervals; reporting them
    keeps a recall of 11/15 from reading as more certain than it is.
    """
    if n == 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def _curve(
    y_true: npt.ArrayLike, score: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray, int]:
    """Distinct thresholds (descending) with the cumulative tp and fp at each one."""
    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} differ in shape")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1] if len(s) else np.empty(0, int)
    tp = np.cumsum(y)[last_of_tie].astype(np.float64)
    fp = (last_of_tie + 1) - tp
    return s[last_of_tie], tp, fp, int(y.sum())


def average_precision(y_true: npt.ArrayLike, score: npt.ArrayLike) -> float:
    """PR-AUC (step-wise average precision); NaN when there is no positive."""
    _, tp, fp, positives = _curve(y_true, score)
    if positives == 0:
        return float("nan")
    precision = tp / (tp + fp)
    recall = tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def best_f1_threshold(y_true: npt.ArrayLike, score: npt.ArrayLike) -> tuple[float, float]:
    """(threshold, F1) maximising F1 for ``flag = score >= threshold``.

    The threshold sits halfway between the chosen score and the next lower one, so a
    tiny numeric difference (float32 ONNX vs float64 scikit-learn) does not flip flags.
    Ties in F1 keep the higher threshold (fewer alarms).
    """
    thresholds, tp, fp, positives = _curve(y_true, score)
    if positives == 0:
        raise ValueError("no positive labels: no threshold to choose")
    fn = positives - tp
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    best = int(np.argmax(f1))
    below = thresholds[best + 1] if best + 1 < len(thresholds) else 0.0
    return float((thresholds[best] + below) / 2), float(f1[best])


@dataclass(frozen=True)
class SubjectDetection:
    subjects: int
    positive: int  # subjects with an event among the rows
    flagged: int
    tp: int
    fp: int
    fn: int
    tn: int
    precision: float
    recall: float
    f1: float
    lead_times_seconds: tuple[float, ...]  # one per true positive


def subject_detection(
    subject: npt.ArrayLike, time: npt.ArrayLike, flag: npt.ArrayLike, event: npt.ArrayLike
) -> SubjectDetection:
    """Subject-level detection (see the module docstring) from per-row arrays.

    ``event`` marks the row of a subject's event (e.g. its failure day); the first one
    counts. Rows after the event neither detect it nor raise a false alarm.
    """
    subj = np.asarray(subject)
    t = np.asarray(time, dtype=np.float64)
    flags = np.asarray(flag).astype(bool)
    events = np.asarray(event).astype(bool)
    if not subj.shape == t.shape == flags.shape == events.shape:
        raise ValueError("subject, time, flag and event must have one value per row")
    names, index = np.unique(subj, return_inverse=True)
    event_time = np.full(len(names), np.inf)
    np.minimum.at(event_time, index[events], t[events])
    counted = flags & (t <= event_time[index])
    first_flag = np.full(len(names), np.inf)
    np.minimum.at(first_flag, index[counted], t[counted])
    positive = np.isfinite(event_time)
    detected = np.isfinite(first_flag)
    tp = int(np.sum(positive & detected))
    fp = int(np.sum(~positive & detected))
    fn = int(np.sum(positive & ~detected))
    precision, recall, f1 = precision_recall_f1(tp, fp, fn)
    leads = event_time[positive & detected] - first_flag[positive & detected]
    return SubjectDetection(
        subjects=len(names),
        positive=int(positive.sum()),
        flagged=int(detected.sum()),
        tp=tp,
        fp=fp,
        fn=fn,
        tn=int(np.sum(~positive & ~detected)),
        precision=precision,
        recall=recall,
        f1=f1,
        lead_times_seconds=tuple(float(v) for v in leads),
    )


def per_subject_max(
    subject: npt.ArrayLike, values: npt.ArrayLike
) -> tuple[npt.NDArray[np.str_], FloatArray]:
    """Each subject's largest value (e.g. its highest score or its label), sorted by name."""
    subj = np.asarray(subject)
    v = np.asarray(values, dtype=np.float64)
    names, index = np.unique(subj, return_inverse=True)
    out = np.full(len(names), -np.inf)
    np.maximum.at(out, index, v)
    return names, out
