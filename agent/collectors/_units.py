"""Human-readable numbers for collector summaries (the JSON keeps exact values and units)."""

from __future__ import annotations

_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(value: float | None) -> str:
    """``1536`` -> ``"1.5 KiB"``; ``None`` -> ``"-"`` (binary units, as free(1) and the kernel)."""
    if value is None:
        return "-"
    size = float(value)
    for unit in _BINARY_UNITS[:-1]:
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} {_BINARY_UNITS[-1]}"


def format_number(value: float | None, digits: int = 1, suffix: str = "") -> str:
    """A float with fixed decimals and a unit suffix, or ``"-"`` for None."""
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


__all__ = ["format_bytes", "format_number"]
