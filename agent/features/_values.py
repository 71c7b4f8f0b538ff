"""Aggregating readings where ``None`` means "not available", never zero."""

from __future__ import annotations

from collections.abc import Iterable

Number = int | float


def as_float(value: Number | None) -> float | None:
    return None if value is None else float(value)


def sum_known(values: Iterable[Number | None]) -> float | None:
    """Sum of the known values; None when none is known."""
    known = [float(v) for v in values if v is not None]
    return sum(known) if known else None


def max_known(values: Iterable[Number | None]) -> float | None:
    known = [float(v) for v in values if v is not None]
    return max(known) if known else None


def min_known(values: Iterable[Number | None]) -> float | None:
    known = [float(v) for v in values if v is not None]
    return min(known) if known else None


def ratio_percent(part: Number | None, whole: Number | None) -> float | None:
    """``part`` as a percentage of ``whole``; None when either is unknown or whole <= 0."""
    if part is None or whole is None or whole <= 0:
        return None
    return float(part) / float(whole) * 100.0
