"""Trailing feature windows over one subject's signals (a node, a VM or a disk).

Shared by the agent (live, one sample per collection cycle) and the training code
(replayed history), so a model is trained on exactly the features it is scored on.

Storage is two numpy ring buffers, bounded by the schema's windows, never by uptime:

* the **fine** ring keeps every sample of the last ``fine_span_seconds`` (the longest
  window of up to one hour), for means, percentiles and trends;
* the **coarse** ring keeps the latest sample of each ``coarse_step_seconds`` bucket
  over the longest window (24 h, 7 days), for counter increases and levels.

``add`` is O(1): one row written into each ring. Counters are stored twice: the raw
value (for ``last``) and a running *cumulative increase* that treats a drop as a
counter reset (the increase since the reset is the new value), so ``increase`` and
``rate_per_hour`` are right across driver reloads, reboots and gaps. Windows are
selected by timestamp, so missing cycles only mean fewer samples; a feature without
enough samples in its window is NaN. ``state``/``restore`` let the agent persist the
rings, so a restart is not blind for a day.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from novacron.models.schema import HOUR, Feature, Schema, SchemaMismatch

FloatArray = npt.NDArray[np.float64]
FINE_SPAN_LIMIT_SECONDS = HOUR
MIN_TREND_POINTS = 3


class _Ring:
    """Fixed-capacity ring of (timestamp, raw[n], cumulative[n]) rows."""

    def __init__(self, capacity: int, width: int) -> None:
        self.capacity = max(1, capacity)
        self.t = np.full(self.capacity, np.nan)
        self.raw = np.full((self.capacity, width), np.nan)
        self.cum = np.full((self.capacity, width), np.nan)
        self.head = 0  # next write position
        self.count = 0

    def append(self, t: float, raw: FloatArray, cum: FloatArray) -> None:
        self.t[self.head] = t
        self.raw[self.head] = raw
        self.cum[self.head] = cum
        self.head = (self.head + 1) % self.capacity
        self.count = min(self.count + 1, self.capacity)

    def overwrite_last(self, t: float, raw: FloatArray, cum: FloatArray) -> None:
        last = (self.head - 1) % self.capacity
        self.t[last] = t
        self.raw[last] = raw
        self.cum[last] = cum

    def last_t(self) -> float | None:
        return None if self.count == 0 else float(self.t[(self.head - 1) % self.capacity])

    def ordered(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Rows oldest first (a view-free copy; at most a few hundred rows)."""
        if self.count < self.capacity:
            idx = np.arange(self.count)
        else:
            idx = (np.arange(self.capacity) + self.head) % self.capacity
        return self.t[idx], self.raw[idx], self.cum[idx]


class FeatureWindows:
    def __init__(
        self,
        schema: Schema,
        *,
        interval_hint_seconds: float = 10.0,
        coarse_step_seconds: float | None = None,
    ) -> None:
        self.schema = schema
        self._index = {name: i for i, name in enumerate(schema.signal_names)}
        self._is_counter = np.array([s.kind == "counter" for s in schema.signals])
        width = len(schema.signals)
        windows = [f.window_seconds for f in schema.features]
        fine_windows = [w for w in windows if w <= FINE_SPAN_LIMIT_SECONDS]
        self.fine_span_seconds = max(fine_windows, default=0.0)
        fine_capacity = math.ceil(self.fine_span_seconds / interval_hint_seconds * 1.25) + 8
        longest = max(windows)
        self.coarse_step_seconds = coarse_step_seconds or max(300.0, longest / 288.0)
        coarse_capacity = math.ceil(longest / self.coarse_step_seconds) + 2
        self._fine = _Ring(fine_capacity, width)
        self._coarse = _Ring(coarse_capacity, width)
        self._last_raw = np.full(width, np.nan)  # last known value of each counter
        self._cum = np.zeros(width)
        # Features grouped by window: one time selection serves every feature of a window.
        self._by_window: dict[float, list[tuple[int, Feature, int]]] = {}
        for i, feature in enumerate(schema.features):
            self._by_window.setdefault(feature.window_seconds, []).append(
                (i, feature, self._index[feature.signal])
            )

    # -- writing -------------------------------------------------------------------

    def add(self, timestamp: float, signals: Mapping[str, float | None]) -> bool:
        """Add one cycle's signal values (missing or None = not available this cycle).

        Returns False (and stores nothing) for a sample not newer than the last one.
        Unknown signal names raise SchemaMismatch: a producer on another schema.
        """
        last = self._fine.last_t()
        if last is not None and timestamp <= last:
            return False
        raw = np.full(len(self._index), np.nan)
        for name, value in signals.items():
            try:
                raw[self._index[name]] = np.nan if value is None else float(value)
            except KeyError:
                raise SchemaMismatch(
                    f"signal {name!r} is not in {self.schema.version_tag}"
                ) from None
        self._accumulate(raw)
        cum = np.where(self._is_counter & ~np.isnan(self._last_raw), self._cum, np.nan)
        self._fine.append(timestamp, raw, cum)
        coarse_last = self._coarse.last_t()
        same_bucket = coarse_last is not None and (
            timestamp // self.coarse_step_seconds == coarse_last // self.coarse_step_seconds
        )
        if same_bucket:
            self._coarse.overwrite_last(timestamp, raw, cum)
        else:
            self._coarse.append(timestamp, raw, cum)
        return True

    def _accumulate(self, raw: FloatArray) -> None:
        known = self._is_counter & ~np.isnan(raw)
        had = known & ~np.isnan(self._last_raw)
        step = raw - self._last_raw
        reset = had & (step < 0)
        self._cum[had & ~reset] += step[had & ~reset]
        self._cum[reset] += raw[reset]  # errors since the reset
        self._last_raw[known] = raw[known]

    # -- reading -------------------------------------------------------------------

    def features(self, now: float | None = None) -> FloatArray:
        """The schema's feature vector at ``now`` (default: the latest sample's time)."""
        t_fine, raw_fine, cum_fine = self._fine.ordered()
        t_coarse, raw_coarse, cum_coarse = self._coarse.ordered()
        if now is None:
            now = float(t_fine[-1]) if len(t_fine) else 0.0
        out = np.full(len(self.schema.features), np.nan)
        oldest_fine = float(t_fine[0]) if len(t_fine) else math.inf
        for window, members in self._by_window.items():
            since = now - window
            if since >= oldest_fine or not len(t_coarse):
                mask = (t_fine > since) & (t_fine <= now)
                t, raw, cum = t_fine[mask], raw_fine[mask], cum_fine[mask]
            else:
                older = (t_coarse > since) & (t_coarse < oldest_fine)
                newer = t_fine <= now
                t = np.concatenate([t_coarse[older], t_fine[newer]])
                raw = np.concatenate([raw_coarse[older], raw_fine[newer]])
                cum = np.concatenate([cum_coarse[older], cum_fine[newer]])
            for i, feature, j in members:
                out[i] = _aggregate(feature, t, raw[:, j], cum[:, j])
        return out

    def model_input(self, now: float | None = None) -> FloatArray:
        """Features with NaN replaced by each feature's neutral ``fill``: what models see."""
        values = self.features(now)
        return np.where(np.isnan(values), np.asarray(self.schema.fills()), values)

    # -- persistence ---------------------------------------------------------------

    def state(self) -> dict[str, FloatArray | npt.NDArray[np.str_]]:
        """Everything needed to resume, as plain arrays (``np.savez``-ready)."""
        t_f, raw_f, cum_f = self._fine.ordered()
        t_c, raw_c, cum_c = self._coarse.ordered()
        return {
            "schema_hash": np.array(self.schema.hash),
            "fine_t": t_f,
            "fine_raw": raw_f,
            "fine_cum": cum_f,
            "coarse_t": t_c,
            "coarse_raw": raw_c,
            "coarse_cum": cum_c,
            "last_raw": self._last_raw.copy(),
            "cum": self._cum.copy(),
        }

    def restore(self, state: Mapping[str, npt.NDArray[np.generic]]) -> None:
        """Load a ``state()``; raises SchemaMismatch for another schema's state."""
        if str(state["schema_hash"]) != self.schema.hash:
            raise SchemaMismatch(
                f"saved windows are for another {self.schema.name} schema; starting empty"
            )
        for ring, prefix in ((self._fine, "fine"), (self._coarse, "coarse")):
            t, raw, cum = state[f"{prefix}_t"], state[f"{prefix}_raw"], state[f"{prefix}_cum"]
            for k in range(max(0, len(t) - ring.capacity), len(t)):
                ring.append(float(t[k]), np.asarray(raw[k], float), np.asarray(cum[k], float))
        self._last_raw = np.asarray(state["last_raw"], dtype=float).copy()
        self._cum = np.asarray(state["cum"], dtype=float).copy()


def _aggregate(feature: Feature, t: FloatArray, raw: FloatArray, cum: FloatArray) -> float:
    agg = feature.aggregation
    if agg in ("increase", "rate_per_hour"):
        ok = ~np.isnan(cum)
        if ok.sum() < 2:
            return math.nan
        increase = float(cum[ok][-1] - cum[ok][0])
        if agg == "increase":
            return increase
        span_hours = float(t[ok][-1] - t[ok][0]) / HOUR
        return increase / span_hours if span_hours > 0 else math.nan
    values = raw[~np.isnan(raw)]
    if values.size == 0:
        return math.nan
    if agg == "last":
        return float(values[-1])
    if agg == "mean":
        return float(values.mean())
    if agg == "min":
        return float(values.min())
    if agg == "max":
        return float(values.max())
    if agg == "p95":
        return float(np.percentile(values, 95))
    if agg == "p99":
        return float(np.percentile(values, 99))
    if agg == "std":
        return float(values.std(ddof=1)) if values.size >= 2 else math.nan
    # trend: least-squares slope per minute
    ok = ~np.isnan(raw)
    if ok.sum() < MIN_TREND_POINTS:
        return math.nan
    minutes = (t[ok] - t[ok][0]) / 60.0
    centred = minutes - minutes.mean()
    spread = float(centred @ centred)
    if spread <= 0:
        return math.nan
    return float(centred @ (raw[ok] - raw[ok].mean()) / spread)
