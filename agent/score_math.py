"""The arithmetic behind the scores, as pure functions over plain numbers.

* **Confidence interval**: a failure model's card carries a calibration table from its
  validation data (``[p_low, p_high, rows, positives]`` per probability bin). The
  interval for a prediction is the Wilson score interval of the observed failure rate in
  the bin the prediction falls in: it says how sure the validation data lets us be,
  and stays inside [0, 1] even for bins with no or only positive rows.
* **Time to failure**: with a constant hazard λ, P(fail within h) = 1 - exp(-λh), so
  λ = -ln(1 - p) / h and the expected time to failure is 1/λ = h / -ln(1 - p).
  The same λ converts predictions made for different horizons (30 min, 24 h, 7 days)
  into one currency, which is how the node's risk compares node and disk models.
* **Anomaly**: robust z-scores ``(x - median) / MAD`` per feature, and a severity from
  the card's warning/critical thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Severity = Literal["none", "warning", "critical"]

WILSON_Z_95 = 1.959963984540054
# Below this a failure probability is "nothing expected": no time-to-failure estimate.
NEGLIGIBLE_PROBABILITY = 1e-3
# A z-score for a deviation from a feature that never varied in training (MAD = 0).
Z_CAP = 1000.0


def wilson_interval(
    positives: float, rows: float, z: float = WILSON_Z_95
) -> tuple[float, float] | None:
    """Wilson score interval for ``positives`` out of ``rows``; None without rows."""
    if rows <= 0 or positives < 0 or positives > rows:
        return None
    phat = positives / rows
    denominator = 1.0 + z * z / rows
    centre = (phat + z * z / (2.0 * rows)) / denominator
    half = z * math.sqrt(phat * (1.0 - phat) / rows + z * z / (4.0 * rows * rows)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def calibration_interval(
    probability: float, bins: Sequence[Sequence[float]]
) -> tuple[float, float] | None:
    """Wilson interval of the calibration bin holding ``probability`` (None: no bin).

    Bins are ``[p_low, p_high, rows, positives]``, half-open ``[p_low, p_high)`` except
    the last, which also holds ``p_high`` (a probability of exactly 1).
    """
    for index, row in enumerate(bins):
        low, high, rows, positives = (float(v) for v in row[:4])
        last = index == len(bins) - 1
        if low <= probability < high or (last and probability == high):
            return wilson_interval(positives, rows)
    return None


@dataclass(frozen=True)
class CalibrationTable:
    """A card's calibration bins with their Wilson intervals worked out once."""

    bins: tuple[tuple[float, float, float, float], ...] = ()
    intervals: tuple[tuple[float, float] | None, ...] = ()

    @classmethod
    def from_bins(cls, bins: Sequence[Sequence[float]]) -> CalibrationTable:
        rows = tuple((float(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in bins)
        return cls(rows, tuple(wilson_interval(positives, n) for _, _, n, positives in rows))

    def interval(self, probability: float) -> tuple[float, float] | None:
        """As :func:`calibration_interval`, without recomputing the intervals."""
        last = len(self.bins) - 1
        for index, (low, high, _, _) in enumerate(self.bins):
            if low <= probability < high or (index == last and probability == high):
                return self.intervals[index]
        return None


def hazard_per_second(probability: float, horizon_seconds: float) -> float:
    """Constant failure rate λ that gives ``probability`` within ``horizon_seconds``.

    Infinite for a certain failure (p = 1, which float32 model outputs can reach).
    """
    if probability >= 1.0:
        return math.inf
    return -math.log1p(-max(probability, 0.0)) / horizon_seconds


def time_to_failure_seconds(probability: float, horizon_seconds: float) -> float | None:
    """Expected time to failure 1/λ; None when failure is not expected at all."""
    if probability < NEGLIGIBLE_PROBABILITY:
        return None
    return 1.0 / hazard_per_second(probability, horizon_seconds)  # 1/inf = 0: imminent


def probability_within(hazard: float, horizon_seconds: float) -> float:
    """P(failure within ``horizon_seconds``) at constant hazard ``hazard``."""
    return -math.expm1(-hazard * horizon_seconds)


def robust_z(
    values: npt.NDArray[np.float64],
    median: npt.NDArray[np.float64],
    mad: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """``(x - median) / mad`` per feature; where ``mad`` is 0, 0 at the median else ±Z_CAP.

    A feature that never varied in training (say GPU XID errors: always 0) has no
    spread to scale by; any deviation from it is as unusual as training can tell.
    """
    deviation = values - median
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(mad > 0, deviation / np.where(mad > 0, mad, 1.0), np.sign(deviation) * Z_CAP)
    return np.asarray(np.clip(z, -Z_CAP, Z_CAP), dtype=np.float64)


def severity(score: float, warning: float, critical: float) -> Severity:
    if score >= critical:
        return "critical"
    if score >= warning:
        return "warning"
    return "none"
