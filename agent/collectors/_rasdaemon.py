"""Per-event memory error history from rasdaemon's SQLite database.

EDAC sysfs only has counters; rasdaemon records every ``ras:mc_event`` trace event
(time, error type and count, DIMM label, controller and layer location, address) in
``/var/lib/rasdaemon/ras-mc_event.db``. The history tells a burst from a slow trickle
and names the DIMM even where the sysfs counters are reset by a driver reload.

The database belongs to rasdaemon, which writes it while we read: it is opened
read-only with a lock timeout, a fresh connection per collection (so a rotated or
recreated file is picked up), and a locked or corrupt file is logged once and skipped.
Events are counted once: the reader remembers the highest ``id`` seen and reports
only events above it; the first read sets that baseline.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from novacron.protos.runtime.jsonlog import LogOnce

# rasdaemon's mc_event_error_type(): "Corrected", "Uncorrected", "Fatal", "Info".
_CORRECTED = frozenset({"corrected"})
_UNCORRECTED = frozenset({"uncorrected", "fatal"})
# Tables rasdaemon creates when built with MCE / AER support; counted when present.
_OTHER_TABLES = ("mce_record", "aer_event")
_EVENT_COLUMNS = (
    "id, timestamp, err_count, err_type, err_msg, label, mc, "
    "top_layer, middle_layer, lower_layer, address"
)


@dataclass(frozen=True)
class EventCounts:
    corrected_events: int  # rows with err_type "Corrected"
    corrected_errors: int  # sum of their err_count
    uncorrected_events: int  # "Uncorrected" and "Fatal"
    uncorrected_errors: int
    other_events: int  # "Info" and anything unknown


@dataclass(frozen=True)
class MemoryErrorEvent:
    id: int
    timestamp: str | None  # rasdaemon's text, e.g. "2024-03-01 10:00:00 +0000"
    err_type: str | None
    err_count: int | None
    err_msg: str | None
    label: str | None  # DIMM label, e.g. "CPU_SrcID#0_MC#0_Chan#1_DIMM#0"
    mc: int | None
    top_layer: int | None
    middle_layer: int | None
    lower_layer: int | None
    address: int | None


@dataclass(frozen=True)
class RasdaemonReadings:
    db_path: str
    last_event_id: int | None  # highest mc_event id in the database (None: no events)
    total: EventCounts  # every event in the database
    new: EventCounts | None  # events since the previous collection; None on the first
    db_reset: bool  # ids went backwards: the database was recreated, all events are new
    latest_events: tuple[MemoryErrorEvent, ...]  # newest first
    mce_record_rows: int | None  # None when the table does not exist
    aer_event_rows: int | None


def event_counts(rows: Iterable[Sequence[Any]]) -> EventCounts:
    """Fold ``(err_type, events, errors)`` rows (a GROUP BY err_type) into counts."""
    counts = {"ce": 0, "ce_err": 0, "ue": 0, "ue_err": 0, "other": 0}
    for err_type, events, errors in rows:
        kind = str(err_type or "").strip().lower()
        n, e = _int(events) or 0, _int(errors) or 0
        if kind in _CORRECTED:
            counts["ce"] += n
            counts["ce_err"] += e
        elif kind in _UNCORRECTED:
            counts["ue"] += n
            counts["ue_err"] += e
        else:
            counts["other"] += n
    return EventCounts(
        counts["ce"], counts["ce_err"], counts["ue"], counts["ue_err"], counts["other"]
    )


def parse_event(row: Sequence[Any]) -> MemoryErrorEvent:
    """One mc_event row, in ``_EVENT_COLUMNS`` order, as a typed event."""
    (id_, timestamp, err_count, err_type, err_msg, label, mc, top, middle, lower, address) = row
    return MemoryErrorEvent(
        id=int(id_),
        timestamp=_text(timestamp),
        err_type=_text(err_type),
        err_count=_int(err_count),
        err_msg=_text(err_msg),
        label=_text(label),
        mc=_int(mc),
        top_layer=_int(top),
        middle_layer=_int(middle),
        lower_layer=_int(lower),
        address=_int(address),
    )


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text.strip() or None


class RasdaemonReader:
    """Reads rasdaemon's database once per collection, remembering the last event id."""

    def __init__(
        self, db_path: Path, timeout_seconds: float, latest_events: int, logger: logging.Logger
    ) -> None:
        self.db_path = db_path
        self._timeout = timeout_seconds
        self._latest = latest_events
        self._log = LogOnce(logger)
        self._last_id: int | None = None

    def read(self) -> RasdaemonReadings | None:
        """The database's readings, or None when it is absent, locked or corrupt."""
        if not self.db_path.is_file():
            self._log.problem(
                "absent", logging.DEBUG, "no rasdaemon database", path=str(self.db_path)
            )
            return None
        self._log.recovered("absent", "rasdaemon database appeared", path=str(self.db_path))
        try:
            readings = self._query()
        except sqlite3.Error as exc:
            self._log.problem(
                "unreadable",
                logging.WARNING,
                "rasdaemon database unreadable, skipped",
                path=str(self.db_path),
                error=f"{type(exc).__name__}: {exc}",
            )
            return None
        if readings is None:
            self._log.problem(
                "no-table",
                logging.WARNING,
                "rasdaemon database has no mc_event table, skipped",
                path=str(self.db_path),
            )
            return None
        self._log.recovered("unreadable", "rasdaemon database readable again")
        self._log.recovered("no-table", "rasdaemon database has an mc_event table again")
        return readings

    def _query(self) -> RasdaemonReadings | None:
        uri = self.db_path.absolute().as_uri() + "?mode=ro"
        con = sqlite3.connect(uri, uri=True, timeout=self._timeout)
        try:
            tables = {
                r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if "mc_event" not in tables:
                return None
            # Bound every query by the max id read first, so an event rasdaemon
            # inserts meanwhile is counted next time, exactly once.
            max_id = _int(con.execute("SELECT max(id) FROM mc_event").fetchone()[0])
            upper = max_id if max_id is not None else 0
            db_reset = self._last_id is not None and upper < self._last_id
            since = 0 if db_reset else self._last_id
            by_type = (
                "SELECT err_type, count(*), coalesce(sum(err_count), 0) FROM mc_event "
                "WHERE id > ? AND id <= ? GROUP BY err_type"
            )
            total = event_counts(con.execute(by_type, (0, upper)))
            new = None if since is None else event_counts(con.execute(by_type, (since, upper)))
            latest = tuple(
                parse_event(row)
                for row in con.execute(
                    f"SELECT {_EVENT_COLUMNS} FROM mc_event WHERE id <= ? "  # noqa: S608 - constant
                    "ORDER BY id DESC LIMIT ?",
                    (upper, self._latest),
                )
            )
            rows = {
                table: int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
                for table in _OTHER_TABLES
                if table in tables
            }
        finally:
            con.close()
        self._last_id = upper
        return RasdaemonReadings(
            db_path=str(self.db_path),
            last_event_id=max_id,
            total=total,
            new=new,
            db_reset=db_reset,
            latest_events=latest,
            mce_record_rows=rows.get("mce_record"),
            aer_event_rows=rows.get("aer_event"),
        )


__all__ = [
    "EventCounts",
    "MemoryErrorEvent",
    "RasdaemonReader",
    "RasdaemonReadings",
    "event_counts",
    "parse_event",
]
