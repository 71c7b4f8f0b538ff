"""Deltas of cumulative hardware counters, with reset handling.

Kernel error counters (EDAC ``ce_count``, PCIe AER counters, NIC errors) count up
from the last reset. A counter that goes *down* means it was reset (driver reload,
``reset_counters`` write, reboot); the errors since the reset are then the new value
itself, never a negative number. Features are built on these deltas, so the rule lives
in one place.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CounterDelta:
    delta: int | None  # None when either reading is unknown (first sight, unreadable)
    reset: bool  # the counter restarted between the two readings


def counter_delta(
    previous: int | None, current: int | None, *, reset: bool = False
) -> CounterDelta:
    """The increase from ``previous`` to ``current``.

    ``reset`` says a reset is already known from elsewhere (e.g. a controller's
    ``seconds_since_reset`` went down), so the counter restarted even if it did not
    go down; the delta is then ``current``.
    """
    if previous is None or current is None:
        return CounterDelta(None, reset)
    if reset or current < previous:
        return CounterDelta(current, True)
    return CounterDelta(current - previous, False)


def went_down(previous: int | None, current: int | None) -> bool:
    """True when both readings are known and the counter decreased."""
    return previous is not None and current is not None and current < previous


__all__ = ["CounterDelta", "counter_delta", "went_down"]
