"""Numenta Anomaly Benchmark series: ``data/<category>/<name>.csv`` + ``combined_windows.json``.

Layout (as in ``../shared/data/nab/`` and NAB itself): each series is a CSV with a
``timestamp,value`` header and naive timestamps (``2014-04-01 00:05:00``, read as UTC);
``combined_windows.json`` maps ``<category>/<name>.csv`` to its labelled anomaly windows,
``[[start, end], ...]`` (inclusive; ``[]`` = a series without anomalies). Only series named
in the windows file are loaded: a series without labels cannot be scored.

Reading is separate from parsing (:func:`parse_series`, :func:`parse_windows` take text).
A malformed CSV row is logged with file and line and skipped; a series file that is
missing or has no usable row is logged and left out; the rest still load.

:func:`split` is the fixed tuning / held-out split of the series model: every
``artificial*`` series and every other real series of each category (sorted by name,
the 1st, 3rd, ...) tune; the rest are held out. Training records the tuning keys in the
model card, so an evaluation of any copy of the data knows which series are held out.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
WINDOWS_FILE = "combined_windows.json"
DATA_DIR = "data"
MAX_LOGGED_SKIPS = 20


@dataclass(frozen=True, eq=False)
class NabSeries:
    key: str  # "<category>/<name>.csv", as in combined_windows.json
    stamps: tuple[str, ...]  # the CSV's timestamps, verbatim (for predictions files)
    times: FloatArray  # unix seconds, UTC
    values: FloatArray
    windows: tuple[tuple[float, float], ...]  # labelled anomaly windows, inclusive

    @property
    def category(self) -> str:
        return self.key.split("/", 1)[0]


def parse_time(text: str) -> float:
    """NAB's naive ``YYYY-MM-DD HH:MM:SS[.ffffff]`` as UTC unix seconds."""
    stamp = dt.datetime.fromisoformat(text.strip())
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def parse_windows(
    text: str, source: str = WINDOWS_FILE
) -> dict[str, tuple[tuple[float, float], ...]]:
    """``combined_windows.json`` text -> windows per series key; raises ValueError if the
    file is not a mapping of lists of ``[start, end]`` pairs."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected an object of series -> windows")
    out: dict[str, tuple[tuple[float, float], ...]] = {}
    for key, windows in data.items():
        if not isinstance(windows, list):
            raise ValueError(f"{source}: {key}: windows must be a list")
        parsed = []
        for window in windows:
            if not (isinstance(window, list) and len(window) == 2):
                raise ValueError(f"{source}: {key}: a window must be [start, end]")
            start, end = parse_time(str(window[0])), parse_time(str(window[1]))
            if end < start:
                raise ValueError(f"{source}: {key}: window ends before it starts")
            parsed.append((start, end))
        out[str(key)] = tuple(sorted(parsed))
    return out


def parse_series(text: str, source: str) -> tuple[tuple[str, ...], FloatArray, FloatArray]:
    """CSV text -> (verbatim timestamps, unix times, values), time-ordered.

    Malformed rows (wrong field count, bad timestamp, non-numeric or non-finite value)
    are logged with their line number and skipped.
    """
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or [h.strip() for h in header[:2]] != ["timestamp", "value"]:
        raise ValueError(f"{source}: expected a 'timestamp,value' header, got {header}")
    stamps: list[str] = []
    times: list[float] = []
    values: list[float] = []
    skipped = 0
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            if len(row) != 2:
                raise ValueError(f"{len(row)} fields")
            when = parse_time(row[0])
            value = float(row[1])
            if not math.isfinite(value):
                raise ValueError("value is not finite")
        except ValueError as exc:
            skipped += 1
            if skipped <= MAX_LOGGED_SKIPS:
                log.warning("malformed NAB row skipped: %s:%d: %s", source, line, exc)
            continue
        stamps.append(row[0].strip())
        times.append(when)
        values.append(value)
    if skipped > MAX_LOGGED_SKIPS:
        log.warning("%s: %d malformed rows skipped in all", source, skipped)
    order = np.argsort(np.asarray(times, dtype=np.float64), kind="stable")
    return (
        tuple(stamps[k] for k in order.tolist()),
        np.asarray(times, dtype=np.float64)[order],
        np.asarray(values, dtype=np.float64)[order],
    )


def load(directory: Path) -> list[NabSeries]:
    """Every labelled series under ``directory`` (sorted by key); see the module doc."""
    windows_path = directory / WINDOWS_FILE
    windows = parse_windows(windows_path.read_text(), str(windows_path))
    out = []
    for key in sorted(windows):
        path = directory / DATA_DIR / key
        try:
            stamps, times, values = parse_series(path.read_text(), str(path))
        except (OSError, ValueError) as exc:
            log.warning("NAB series left out: %s: %s", key, exc)
            continue
        if not len(times):
            log.warning("NAB series left out: %s: no usable row", key)
            continue
        out.append(NabSeries(key, stamps, times, values, windows[key]))
    return out


def is_tuning(key: str, all_keys: Sequence[str]) -> bool:
    """Whether ``key`` belongs to the tuning part of :func:`split` (see the module doc)."""
    category = key.split("/", 1)[0]
    if category.startswith("artificial"):
        return True
    siblings = sorted(k for k in all_keys if k.split("/", 1)[0] == category)
    return siblings.index(key) % 2 == 0


def split(series: Sequence[NabSeries]) -> tuple[list[NabSeries], list[NabSeries]]:
    """(tuning, held out) by file name; see the module doc."""
    keys = [s.key for s in series]
    tuning = [s for s in series if is_tuning(s.key, keys)]
    held_out = [s for s in series if not is_tuning(s.key, keys)]
    return tuning, held_out
