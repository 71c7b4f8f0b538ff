"""The NVML collector's readings and the pure conversions behind them.

Field units are fixed: NVML's milliwatts become watts, memory is bytes, utilisation is
percent. Every field comes from its own NVML call, and a call the GPU does not support
(``NVMLError_NotSupported``: no ECC on a consumer card, no remapped rows before Ampere,
no retired pages since Ampere) leaves only that field ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

from novacron.agent.collectors.base import UnavailableDevice


@dataclass(frozen=True)
class GpuReading:
    index: int  # NVML enumeration order (may change across reboots; uuid does not)
    uuid: str
    name: str | None
    pci_bus_id: str | None  # e.g. "00000000:3B:00.0"
    temperature_celsius: float | None
    power_watts: float | None
    power_limit_watts: float | None  # enforced limit
    gpu_utilisation_percent: float | None
    memory_utilisation_percent: float | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    ecc_volatile_corrected: int | None  # since the last driver load
    ecc_volatile_uncorrected: int | None
    ecc_aggregate_corrected: int | None  # over the board's lifetime
    ecc_aggregate_uncorrected: int | None
    retired_pages_single_bit: int | None  # pre-Ampere page retirement
    retired_pages_double_bit: int | None
    retired_pages_pending: bool | None  # retirement waits for the next driver reload
    remapped_rows_correctable: int | None  # Ampere and later row remapping
    remapped_rows_uncorrectable: int | None
    remapped_rows_pending: bool | None  # a remap waits for a GPU reset
    remapped_rows_failure: bool | None  # a remap failed: the GPU needs service
    pcie_replay_count: int | None
    clock_throttle_reasons: tuple[str, ...] | None  # decoded bit mask; () = not throttled
    xid_errors: tuple[int, ...]  # XID codes reported since the previous collection


@dataclass(frozen=True)
class NvmlReadings:
    driver_version: str | None  # None: no NVIDIA driver (no data) or NVML not answering
    error: str | None  # why NVML gives no data although a driver seems present
    gpus: tuple[GpuReading, ...]
    unavailable: tuple[UnavailableDevice, ...]  # device = GPU UUID


# nvmlClocksEventReason* / nvmlClocksThrottleReason* bits (NVML ABI).
CLOCK_REASON_BITS: tuple[tuple[int, str], ...] = (
    (0x001, "gpu_idle"),
    (0x002, "applications_clocks_setting"),
    (0x004, "sw_power_cap"),
    (0x008, "hw_slowdown"),
    (0x010, "sync_boost"),
    (0x020, "sw_thermal_slowdown"),
    (0x040, "hw_thermal_slowdown"),
    (0x080, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
    (0x200, "board_limit"),
    (0x400, "reliability"),
)


def decode_clock_reasons(mask: int) -> tuple[str, ...]:
    """Names of the set bits, in bit order; unknown bits as ``unknown_0x...``."""
    names = [name for bit, name in CLOCK_REASON_BITS if mask & bit]
    known = 0
    for bit, _ in CLOCK_REASON_BITS:
        known |= bit
    rest = mask & ~known
    bit = 1
    while rest:
        if rest & bit:
            names.append(f"unknown_{bit:#x}")
            rest &= ~bit
        bit <<= 1
    return tuple(names)


def as_text(value: object) -> str:
    """NVML strings arrive as ``str`` (decorated calls) or ``bytes`` (struct fields)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").rstrip("\x00")
    return str(value)


def milliwatts_to_watts(value: int) -> float:
    return value / 1000.0
