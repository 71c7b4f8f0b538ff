"""Features of one univariate series (``schema.SERIES``), for the series anomaly model.

A model trained on one CPU series must work on bytes per second or request counts, so it
never sees raw values. Each point is first turned into scale-free *signals* measuring how
unusual it is against the series' own trailing day (the current point excluded, so a
spike cannot hide itself by inflating its own baseline):

* ``value_z`` = (x - mean) / std and ``value_robust_z`` = (x - median) / (1.4826 MAD);
  the first is tolerant of heavy-tailed series, the second sensitive on quiet ones;
* ``exceedance``: how far x lies outside the trailing min..max, in units of that range
  (0 inside): only genuinely new extremes count;
* ``diff_z``: the change since the previous point against the trailing changes.

Then :class:`~novacron.models.windows.FeatureWindows` aggregates those signals exactly as
the agent aggregates its own (last, hourly mean/max/min/std), so the series model follows
the same schema discipline as the node and VM models. Everything is causal: a point's
features use only that point and earlier ones, as a live detector would.

Scales are floored at :data:`SCALE_FLOOR_FRACTION` of the series' level or range, so a
constant stretch followed by floating-point noise is not a 10^9-sigma event, and every
signal is clipped to +-:data:`SIGNAL_CLIP` (trees only need to know "extreme").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import numpy.typing as npt

from novacron.models.schema import DAY, SERIES
from novacron.models.windows import FeatureWindows

FloatArray = npt.NDArray[np.float64]

BASELINE_SECONDS = DAY
MIN_BASELINE_POINTS = 12  # fewer earlier points in the trailing day: no signal (NaN)
SIGNAL_CLIP = 50.0
SCALE_FLOOR_FRACTION = 1e-3
MAD_TO_SIGMA = 1.4826  # normal-consistent: 1.4826 * MAD estimates the standard deviation


def derived_signals(times: FloatArray, values: FloatArray) -> dict[str, FloatArray]:
    """The ``SERIES`` signals of every point (NaN where the baseline is too short).

    ``times`` must be non-decreasing (seconds); NaN values are treated as missing points.
    """
    t = np.asarray(times, dtype=np.float64)
    x = np.asarray(values, dtype=np.float64)
    if t.shape != x.shape or t.ndim != 1:
        raise ValueError("times and values must be 1-d arrays of one length")
    if len(t) > 1 and bool(np.any(np.diff(t) < 0)):
        raise ValueError("times must be non-decreasing")
    n = len(x)
    out = {name: np.full(n, np.nan) for name in SERIES.signal_names}
    diffs = np.full(n, np.nan)
    diffs[1:] = x[1:] - x[:-1]
    starts = np.searchsorted(t, t - BASELINE_SECONDS, side="left")
    for i in range(n):
        if math.isnan(x[i]):
            continue
        base = x[starts[i] : i]
        base = base[~np.isnan(base)]
        if base.size < MIN_BASELINE_POINTS:
            continue
        low, high = float(base.min()), float(base.max())
        span = high - low
        mean = float(base.mean())
        floor = SCALE_FLOOR_FRACTION * max(abs(mean), span) + 1e-12
        median = float(np.median(base))
        mad = MAD_TO_SIGMA * float(np.median(np.abs(base - median)))
        out["value_z"][i] = (x[i] - mean) / max(float(base.std()), floor)
        out["value_robust_z"][i] = (x[i] - median) / max(mad, floor)
        out["exceedance"][i] = max(x[i] - high, low - x[i], 0.0) / max(span, floor)
        base_diffs = diffs[starts[i] + 1 : i]
        base_diffs = base_diffs[~np.isnan(base_diffs)]
        if base_diffs.size >= MIN_BASELINE_POINTS - 1 and not math.isnan(diffs[i]):
            spread = max(float(base_diffs.std()), floor)
            out["diff_z"][i] = (diffs[i] - float(base_diffs.mean())) / spread
    for values_of in out.values():
        np.clip(values_of, -SIGNAL_CLIP, SIGNAL_CLIP, out=values_of)
    return out


def series_features(times: FloatArray, values: FloatArray) -> FloatArray:
    """``(n, len(SERIES.features))`` feature rows, one per point (NaN = no data).

    Points sharing a timestamp get the features of the first of them (the windows keep
    one sample per instant).
    """
    t = np.asarray(times, dtype=np.float64)
    signals = derived_signals(t, values)
    columns = [signals[name] for name in SERIES.signal_names]
    steps = np.diff(t)
    steps = steps[steps > 0]
    # The shortest regular step sizes the ring, so a burst of close points still fits.
    interval = float(np.percentile(steps, 1)) if steps.size else 60.0
    windows = FeatureWindows(SERIES, interval_hint_seconds=max(interval, 1.0))
    rows = np.full((len(t), len(SERIES.features)), np.nan)
    for i, now in enumerate(t.tolist()):
        windows.add(
            now,
            {
                name: None if math.isnan(column[i]) else float(column[i])
                for name, column in zip(SERIES.signal_names, columns, strict=True)
            },
        )
        rows[i] = windows.features(now)
    return rows


def model_input(features: FloatArray) -> npt.NDArray[np.float32]:
    """Feature rows with NaN replaced by the schema's fills, as float32 (what ONNX sees)."""
    fills = np.asarray(SERIES.fills())
    return np.where(np.isnan(features), fills, features).astype(np.float32)


def _model_input_of(series: tuple[FloatArray, FloatArray]) -> npt.NDArray[np.float32]:
    return model_input(series_features(*series))


def many_model_inputs(
    series: Sequence[tuple[FloatArray, FloatArray]], workers: int = 1
) -> list[npt.NDArray[np.float32]]:
    """:func:`model_input` of many ``(times, values)`` series, in ``workers`` processes
    (the per-point replay is plain Python; the result does not depend on ``workers``)."""
    if workers <= 1 or len(series) <= 1:
        return [_model_input_of(s) for s in series]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_model_input_of, series))
