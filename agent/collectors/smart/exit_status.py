"""Decode the bit masks smartctl reports: its exit status and NVMe critical warnings.

Exit status (smartctl(8), "RETURN VALUES"):

A non-zero status does not mean "no data": bits 0x08..0x80 report what smartctl found
on a disk it read completely (a failing verdict, attributes below threshold, logged
errors). Only 0x01 (bad command line) and 0x02 (device open failed) mean there is
nothing to parse; 0x04 (a command failed) may leave some fields missing.
"""

from __future__ import annotations

from novacron.agent.collectors.smart.model import ExitStatus

# bit -> (ExitStatus field, smartctl(8) wording); the order is the bit order.
EXIT_BITS: tuple[tuple[int, str, str], ...] = (
    (0x01, "command_line_error", "command line did not parse"),
    (0x02, "device_open_failed", "device open failed"),
    (0x04, "command_failed", "a command to the disk failed"),
    (0x08, "smart_failing", "SMART status says DISK FAILING"),
    (0x10, "prefail_below_threshold", "pre-fail attribute at or below threshold"),
    (0x20, "attribute_below_threshold_in_past", "attribute was at or below threshold"),
    (0x40, "error_log_has_errors", "device error log has entries"),
    (0x80, "self_test_log_has_errors", "self-test log has errors"),
)


def decode_exit_status(value: int) -> ExitStatus:
    """``decode_exit_status(0x48)`` -> smart_failing and error_log_has_errors set.

    Only the low 8 bits are smartctl's; a negative value (killed by a signal, as
    ``subprocess`` reports it) is not an exit status and raises ValueError.
    """
    if not 0 <= value <= 0xFF:
        raise ValueError(f"not a smartctl exit status: {value}")
    flags = {field: bool(value & bit) for bit, field, _ in EXIT_BITS}
    return ExitStatus(value=value, **flags)


def describe_exit_status(status: ExitStatus) -> list[str]:
    """The smartctl(8) wording of every set bit, in bit order."""
    return [text for bit, _, text in EXIT_BITS if status.value & bit]


# NVMe SMART/Health log byte 0 (NVMe base spec, "Critical Warning"); the names are the
# keys smartctl --json uses under smart_status.nvme.
NVME_CRITICAL_WARNING_BITS: tuple[tuple[int, str], ...] = (
    (0x01, "spare_below_threshold"),
    (0x02, "temperature_above_or_below_threshold"),
    (0x04, "reliability_degraded"),
    (0x08, "media_read_only"),
    (0x10, "volatile_memory_backup_failed"),
    (0x20, "persistent_memory_region_unreliable"),
)


def decode_critical_warning(value: int | None) -> tuple[str, ...]:
    """``0x14`` -> ``("reliability_degraded", "volatile_memory_backup_failed")``.

    Reserved bits (0x40, 0x80) appear as ``"other_0x40"`` so no warning is dropped.
    """
    if not value:
        return ()
    names = [name for bit, name in NVME_CRITICAL_WARNING_BITS if value & bit]
    names += [f"other_0x{bit:02x}" for bit in (0x40, 0x80) if value & bit]
    return tuple(names)


__all__ = [
    "EXIT_BITS",
    "NVME_CRITICAL_WARNING_BITS",
    "decode_critical_warning",
    "decode_exit_status",
    "describe_exit_status",
]
