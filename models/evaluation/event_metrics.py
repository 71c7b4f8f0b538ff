"""Window (event) level and point level detection metrics for anomaly detectors, in numpy.

A subject (a NAB series, a simulated node or VM) has time-ordered rows, a flag per row
and labelled anomaly windows ``[start, end]`` (inclusive). Definitions (also in
``docs/models.md``):

* **event level** (NAB's rule, no point adjustment): a window is *detected* if at least
  one flag falls inside it (one TP per window, however many flags); flags outside every
  window are false positives, and a run of *consecutive* flagged rows outside windows is
  *one* false positive. precision = detected / (detected + false-positive runs),
  recall = detected / windows.
* **point level** (no adjustment): every row is a sample; a row inside a window is
  positive; precision/recall/F1 of the flags against those labels.
* **point-adjusted** (Xu et al. 2018, shown only beside the others for comparison with
  published numbers): as point level, but every row of a detected window counts as
  flagged. It rewards a single lucky flag in a long window, so it is never the headline.

Windows that contain no row at all cannot be detected by any row-based detector and are
not counted (with NAB's wide windows this never happens). Optional *ignore* windows
(a collector outage, a steady condition that is neither normal nor an event) drop the
rows inside them that are not inside a labelled window: they count neither way.

Counts add up over subjects (:meth:`WindowCounts.__add__`), so a fleet or a benchmark
category is scored by summing its subjects' counts, not by averaging their F1s.
Ratios with an empty denominator are 0 (nothing flagged, nothing to find).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from novacron.models.evaluation.metrics import precision_recall_f1

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Window = tuple[float, float]


@dataclass(frozen=True)
class WindowCounts:
    subjects: int = 0
    windows: int = 0
    detected_windows: int = 0
    false_positive_runs: int = 0
    rows: int = 0
    positive_rows: int = 0  # rows inside a window
    flagged_rows: int = 0
    true_positive_rows: int = 0  # flagged rows inside a window
    adjusted_true_positive_rows: int = 0  # rows of detected windows (point adjustment)

    def __add__(self, other: WindowCounts) -> WindowCounts:
        return WindowCounts(
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(WindowCounts))
        )

    @property
    def false_positive_rows(self) -> int:
        return self.flagged_rows - self.true_positive_rows

    @property
    def negative_rows(self) -> int:
        return self.rows - self.positive_rows

    def event_prf(self) -> tuple[float, float, float]:
        return precision_recall_f1(
            self.detected_windows,
            self.false_positive_runs,
            self.windows - self.detected_windows,
        )

    def point_prf(self) -> tuple[float, float, float]:
        return precision_recall_f1(
            self.true_positive_rows,
            self.false_positive_rows,
            self.positive_rows - self.true_positive_rows,
        )

    def adjusted_point_prf(self) -> tuple[float, float, float]:
        return precision_recall_f1(
            self.adjusted_true_positive_rows,
            self.false_positive_rows,
            self.positive_rows - self.adjusted_true_positive_rows,
        )

    def summary(self) -> dict[str, Any]:
        """Every count and ratio, JSON-ready (model cards, ``--json`` output)."""
        event, point, adjusted = self.event_prf(), self.point_prf(), self.adjusted_point_prf()
        negatives = self.negative_rows
        return {
            "event_precision": event[0],
            "event_recall": event[1],
            "event_f1": event[2],
            "point_precision": point[0],
            "point_recall": point[1],
            "point_f1": point[2],
            "point_adjusted_f1": adjusted[2],
            "flagged_share_outside_windows": (
                self.false_positive_rows / negatives if negatives else 0.0
            ),
            **{f.name: getattr(self, f.name) for f in fields(self)},
        }


def inside_windows(times: FloatArray, windows: Sequence[Window]) -> BoolArray:
    """Which rows fall inside any window (inclusive ends)."""
    t = np.asarray(times, dtype=np.float64)
    inside = np.zeros(t.shape, dtype=bool)
    for start, end in windows:
        inside |= (t >= start) & (t <= end)
    return inside


def count_runs(mask: BoolArray) -> int:
    """Number of runs of consecutive True values."""
    m = np.asarray(mask, dtype=bool)
    if not m.size:
        return 0
    return int(m[0]) + int(np.count_nonzero(m[1:] & ~m[:-1]))


def window_counts(
    times: npt.ArrayLike,
    flags: npt.ArrayLike,
    windows: Sequence[Window],
    ignore: Sequence[Window] = (),
) -> WindowCounts:
    """Counts of one subject: ``times`` ascending, one flag per row (see the module doc)."""
    t = np.asarray(times, dtype=np.float64)
    flagged = np.asarray(flags, dtype=bool)
    if t.shape != flagged.shape or t.ndim != 1:
        raise ValueError("times and flags must be 1-d arrays of one length")
    positive = inside_windows(t, windows)
    if ignore:
        keep = positive | ~inside_windows(t, ignore)
        t, flagged, positive = t[keep], flagged[keep], positive[keep]
    adjusted = flagged.copy()
    counted = detected = 0
    for start, end in windows:
        members = (t >= start) & (t <= end)
        if not bool(np.any(members)):
            continue
        counted += 1
        if bool(np.any(flagged & members)):
            detected += 1
            adjusted |= members
    return WindowCounts(
        subjects=1,
        windows=counted,
        detected_windows=detected,
        false_positive_runs=count_runs(flagged & ~positive),
        rows=len(t),
        positive_rows=int(positive.sum()),
        flagged_rows=int(flagged.sum()),
        true_positive_rows=int(np.sum(flagged & positive)),
        adjusted_true_positive_rows=int(np.sum(adjusted & positive)),
    )


def total(counts: Sequence[WindowCounts]) -> WindowCounts:
    out = WindowCounts()
    for c in counts:
        out = out + c
    return out
