"""What one collection cycle produced, and its JSON form.

``NodeSample`` holds one :class:`CollectorReport` per enabled collector. The JSON form
(``novacron-agent collect --once --json``, documented in ``docs/telemetry.md``) is one
object: ``node_id``, ``timestamp_seconds`` and one key per collector, each
``{"ok", "duration_seconds", "error", "data"}``; ``data`` is the collector's typed
readings with units in the field names and ``null`` where a value is not available.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CollectorReport:
    collector: str
    ok: bool
    duration_seconds: float | None  # None when the collector did not finish this cycle
    error: str | None
    data: Any | None
    # Cycle time the data was read in: older than the sample's own time when the
    # collector polls less often than every cycle (its interval_seconds).
    collected_at_seconds: float | None = None


@dataclass(frozen=True)
class NodeSample:
    node_id: str
    timestamp_seconds: float
    reports: dict[str, CollectorReport]

    def to_json_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"node_id": self.node_id, "timestamp_seconds": self.timestamp_seconds}
        for name, report in self.reports.items():
            out[name] = {
                "ok": report.ok,
                "duration_seconds": report.duration_seconds,
                "error": report.error,
                "collected_at_seconds": report.collected_at_seconds,
                "data": to_jsonable(report.data),
            }
        return out


def to_jsonable(value: Any) -> Any:
    """Turn readings (dataclasses, tuples, enums, paths) into JSON-ready values.

    NaN and infinities become ``None``: JSON has no such numbers, and they only ever
    mean "no meaningful value" in our readings.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    names = _field_names(type(value))
    if names is not None:
        return {name: to_jsonable(getattr(value, name)) for name in names}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}


def _field_names(cls: type) -> tuple[str, ...] | None:
    """Field names of a dataclass type, None for other types (cached: a sample holds
    thousands of small records of a few dozen types)."""
    if cls not in _FIELD_NAMES:
        is_dataclass = dataclasses.is_dataclass(cls)
        _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls)) if is_dataclass else None
    return _FIELD_NAMES[cls]
