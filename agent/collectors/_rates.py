"""Per-second rates from cumulative counters sampled at two moments.

Hardware and hypervisor counters (bytes sent, read requests, CPU nanoseconds) only grow
while their source lives. A counter that goes *down* means its source restarted (a VM
rebooted, a NIC was re-plugged, a driver reloaded): that interval has no meaningful rate,
not a negative one. The first sample has nothing to compare with, so its rate is
``None`` too.

A rates dataclass mirrors a counters dataclass field by field (``rx_bytes`` →
``rx_bytes_per_second``), so every collector computes rates the same way.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

RatesT = TypeVar("RatesT", bound="DataclassInstance")

RATE_SUFFIX = "_per_second"


def counter_rate(
    previous: float | None, current: float | None, elapsed_seconds: float
) -> float | None:
    """Growth per second, or ``None`` for a first sample, a gap, or a counter reset."""
    if previous is None or current is None or elapsed_seconds <= 0 or current < previous:
        return None
    return (current - previous) / elapsed_seconds


def rates_between(
    previous: DataclassInstance | None,
    current: DataclassInstance,
    elapsed_seconds: float,
    rates_type: type[RatesT],
) -> RatesT:
    """Fill ``rates_type`` (fields ``<counter>_per_second``) from two counter samples."""
    values: dict[str, float | None] = {}
    for field in dataclasses.fields(current):
        before = getattr(previous, field.name) if previous is not None else None
        values[field.name + RATE_SUFFIX] = counter_rate(
            before, getattr(current, field.name), elapsed_seconds
        )
    return rates_type(**values)
