"""Backblaze Drive Stats CSVs -> DISK feature rows, computed exactly as the agent does.

Backblaze publishes one CSV row per drive and day (``date, serial_number, model,
capacity_bytes, failure, smart_<id>_raw ...``; ``failure=1`` on the drive's last day). The
agent maps its own SMART readings of each disk onto the :data:`~novacron.models.schema.DISK`
signals and feeds them through :class:`~novacron.models.windows.FeatureWindows`; here each
drive's daily rows are mapped onto the same signals (:data:`COLUMN_TO_SIGNAL`) and replayed
through the same class, so the model is trained on the very features it is scored on.

Label: a row is positive when its drive fails within ``horizon_seconds`` of the row's
date. Rows are stamped at midnight UTC and the failure happens some time during the
failure day, so with the 7-day horizon the failure day itself and the six days before it
are positive (``0 <= failure_day - row_day < 7 days``); seven days before is negative.

Reading (I/O) is separate from parsing: :func:`parse_rows` takes CSV text lines and
returns typed :class:`DriveDay` records. A malformed row (bad date, empty serial, a
failure flag other than 0/1, a non-numeric SMART value, a wrong field count) is logged
with file and line and skipped; an empty SMART field is simply "not reported" (NaN).
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from novacron.models.schema import DAY, DISK
from novacron.models.training.pipeline import Dataset
from novacron.models.windows import FeatureWindows

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

# Backblaze column -> DISK signal (the agent maps its SMART readings the same way).
COLUMN_TO_SIGNAL: Mapping[str, str] = {
    "smart_5_raw": "reallocated_sectors",
    "smart_187_raw": "reported_uncorrect",
    "smart_188_raw": "command_timeout",
    "smart_197_raw": "current_pending_sectors",
    "smart_198_raw": "offline_uncorrectable",
    "smart_199_raw": "udma_crc_errors",
    "smart_9_raw": "power_on_hours",
    "smart_194_raw": "temperature_celsius",
}
REQUIRED_COLUMNS = ("date", "serial_number", "failure")
DEFAULT_HORIZON_SECONDS = 7 * DAY
# Individual skip messages per file before only the per-file total is logged.
MAX_LOGGED_SKIPS = 20


class MalformedRow(ValueError):
    """A CSV row that cannot be read as a drive-day (the message says why)."""


@dataclass(frozen=True)
class DriveDay:
    """One drive's SMART snapshot of one day, as DISK signal values (None = not reported)."""

    serial: str
    model: str
    day: dt.date
    failure: bool
    signals: Mapping[str, float | None]


@dataclass(frozen=True)
class BackblazeData:
    """Feature rows of every drive-day, sorted by serial then date."""

    dataset: Dataset  # x: DISK features, y: fails within the horizon, time, subject=serial
    failure_time: Mapping[str, float]  # serial -> unix time of its (first) failure day
    horizon_seconds: float
    files: tuple[str, ...]
    skipped_rows: int

    def is_failure_row(self, dataset: Dataset | None = None) -> npt.NDArray[np.bool_]:
        """Per row of ``dataset`` (default: all rows): is this the drive's failure day?"""
        data = self.dataset if dataset is None else dataset
        failure = np.array([self.failure_time.get(str(s), math.nan) for s in data.subject])
        return np.asarray(failure == data.time, dtype=bool)


def day_timestamp(day: dt.date) -> float:
    """Unix time of the day's midnight UTC: the time a Backblaze row is stamped with."""
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()


def timestamp_day(timestamp: float) -> dt.date:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).date()


# -- parsing (no I/O) ----------------------------------------------------------------


def parse_row(row: Mapping[str | None, object]) -> DriveDay:
    """One ``csv.DictReader`` row -> DriveDay; raises MalformedRow with the reason."""
    if None in row or any(value is None for value in row.values()):
        raise MalformedRow("wrong number of fields")
    serial = str(row["serial_number"]).strip()
    if not serial:
        raise MalformedRow("empty serial_number")
    try:
        day = dt.date.fromisoformat(str(row["date"]).strip())
    except ValueError:
        raise MalformedRow(f"bad date {row['date']!r}") from None
    failure = str(row["failure"]).strip()
    if failure not in ("0", "1"):
        raise MalformedRow(f"failure must be 0 or 1, got {failure!r}")
    signals: dict[str, float | None] = {}
    for column, signal in COLUMN_TO_SIGNAL.items():
        signals[signal] = _smart_value(column, row.get(column))
    model = str(row.get("model") or "").strip()
    return DriveDay(serial, model, day, failure == "1", signals)


def _smart_value(column: str, text: object) -> float | None:
    if text is None or str(text).strip() == "":
        return None
    try:
        value = float(str(text))
    except ValueError:
        raise MalformedRow(f"{column}: not a number: {text!r}") from None
    if not math.isfinite(value):
        raise MalformedRow(f"{column}: not finite: {text!r}")
    return value


def parse_rows(lines: Iterable[str], source: str) -> tuple[list[DriveDay], int]:
    """Parse one CSV's lines; returns (drive-days, number of skipped malformed rows).

    A file without the required columns yields nothing (one error line); a file
    lacking some SMART column reads that signal as not reported.
    """
    reader = csv.DictReader(lines)
    header = tuple(reader.fieldnames or ())
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        log.error(
            "backblaze: %s lacks required columns %s; skipping the file",
            source,
            missing,
            extra={"file": source, "missing": missing},
        )
        return [], 0
    absent = [c for c in COLUMN_TO_SIGNAL if c not in header]
    if absent:
        log.info(
            "backblaze: SMART columns absent, read as not reported",
            extra={"file": source, "columns": absent},
        )
    days: list[DriveDay] = []
    skipped = 0
    for row in reader:
        try:
            days.append(parse_row(row))
        except MalformedRow as exc:
            skipped += 1
            if skipped <= MAX_LOGGED_SKIPS:
                log.warning(
                    "backblaze: %s:%d: skipping malformed row: %s",
                    source,
                    reader.line_num,
                    exc,
                    extra={"file": source, "line": reader.line_num},
                )
    if skipped > MAX_LOGGED_SKIPS:
        log.warning(
            "backblaze: %s: skipped %d malformed rows in total (first %d logged)",
            source,
            skipped,
            MAX_LOGGED_SKIPS,
            extra={"file": source},
        )
    return days, skipped


def group_by_drive(days: Iterable[DriveDay]) -> tuple[dict[str, list[DriveDay]], int]:
    """Per serial, its days in date order; a repeated (serial, date) keeps the first row."""
    drives: dict[str, dict[dt.date, DriveDay]] = defaultdict(dict)
    duplicates = 0
    for day in days:
        seen = drives[day.serial]
        if day.day in seen:
            duplicates += 1
            log.warning(
                "backblaze: duplicate row for drive %s on %s; keeping the first",
                day.serial,
                day.day.isoformat(),
                extra={"serial": day.serial, "date": day.day.isoformat()},
            )
            continue
        seen[day.day] = day
    ordered = {serial: [by_day[d] for d in sorted(by_day)] for serial, by_day in drives.items()}
    return ordered, duplicates


# -- features and labels -------------------------------------------------------------


def drive_features(days: Sequence[DriveDay]) -> FloatArray:
    """Replay one drive's days (date order) through FeatureWindows; one row per day."""
    windows = FeatureWindows(DISK, interval_hint_seconds=DAY)
    out = np.empty((len(days), len(DISK.features)))
    for i, day in enumerate(days):
        timestamp = day_timestamp(day.day)
        windows.add(timestamp, day.signals)
        out[i] = windows.features(timestamp)
    return out


def fails_within(
    time: FloatArray, failure_time: float | None, horizon_seconds: float
) -> npt.NDArray[np.int_]:
    """1 where the failure day is at most ``horizon`` after the row (failure day counts)."""
    if failure_time is None:
        return np.zeros(len(time), dtype=int)
    ahead = failure_time - time
    return ((ahead >= 0) & (ahead < horizon_seconds)).astype(int)


def build(
    drives: Mapping[str, Sequence[DriveDay]], horizon_seconds: float = DEFAULT_HORIZON_SECONDS
) -> tuple[Dataset, dict[str, float]]:
    """Feature rows and labels of every drive (serial order, then date order)."""
    blocks: list[FloatArray] = []
    labels: list[npt.NDArray[np.int_]] = []
    times: list[FloatArray] = []
    subjects: list[str] = []
    failure_time: dict[str, float] = {}
    for serial in sorted(drives):
        days = drives[serial]
        time = np.array([day_timestamp(d.day) for d in days])
        failed = [t for t, d in zip(time, days, strict=True) if d.failure]
        if failed:
            failure_time[serial] = float(failed[0])
        blocks.append(drive_features(days))
        labels.append(fails_within(time, failure_time.get(serial), horizon_seconds))
        times.append(time)
        subjects.extend([serial] * len(days))
    width = len(DISK.features)
    dataset = Dataset(
        DISK,
        np.concatenate(blocks) if blocks else np.empty((0, width)),
        np.concatenate(labels) if labels else np.empty(0, dtype=int),
        np.concatenate(times) if times else np.empty(0),
        np.array(subjects, dtype=str),
    )
    return dataset, failure_time


# -- reading (I/O) -------------------------------------------------------------------


def load(directory: Path, horizon_seconds: float = DEFAULT_HORIZON_SECONDS) -> BackblazeData:
    """Every ``*.csv`` of a directory laid out like ``../shared/data/backblaze/``."""
    if not directory.is_dir():
        raise FileNotFoundError(f"not a directory: {directory}")
    files = sorted(directory.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no *.csv files in {directory}")
    days: list[DriveDay] = []
    skipped = 0
    for path in files:
        with path.open(newline="", encoding="utf-8", errors="replace") as handle:
            parsed, bad = parse_rows(handle, str(path))
        days.extend(parsed)
        skipped += bad
    drives, duplicates = group_by_drive(days)
    dataset, failure_time = build(drives, horizon_seconds)
    return BackblazeData(
        dataset,
        failure_time,
        horizon_seconds,
        tuple(p.name for p in files),
        skipped + duplicates,
    )
