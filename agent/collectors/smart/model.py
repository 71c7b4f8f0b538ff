"""Typed disk-health readings, the same for every protocol and for both backends.

Only what predicts or explains a disk failure is kept: identity (model, serial,
firmware, size), the overall SMART verdict, smartctl's exit-status bits, temperature,
power-on hours and, per protocol, the counters published fleet studies tie to
failures. ``None`` means "this disk or this backend does not report it", never zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from novacron.agent.collectors.base import UnavailableDevice

# ATA attributes with a known link to failures (Backblaze, Google's 2007 study):
# 5 Reallocated_Sector_Ct, 9 Power_On_Hours, 187 Reported_Uncorrect, 188 Command_Timeout,
# 194 Temperature_Celsius, 197 Current_Pending_Sector, 198 Offline_Uncorrectable,
# 199 UDMA_CRC_Error_Count. Any other attribute is kept only while it is failing.
FAILURE_ATTRIBUTE_IDS: tuple[int, ...] = (5, 9, 187, 188, 194, 197, 198, 199)

WhenFailed = Literal["now", "past"]
BackendName = Literal["json", "pysmart"]


@dataclass(frozen=True)
class ExitStatus:
    """smartctl's exit status, one field per bit (see ``exit_status.decode_exit_status``)."""

    value: int
    command_line_error: bool  # 0x01: smartctl did not accept the command line
    device_open_failed: bool  # 0x02: device missing, no permission, or not answering
    command_failed: bool  # 0x04: a SMART or other command to the disk failed
    smart_failing: bool  # 0x08: the disk's own SMART verdict is "failing"
    prefail_below_threshold: bool  # 0x10: a pre-fail attribute is at/below threshold now
    attribute_below_threshold_in_past: bool  # 0x20: some attribute was at/below it before
    error_log_has_errors: bool  # 0x40: the device error log has entries
    self_test_log_has_errors: bool  # 0x80: the self-test log records failed tests

    @property
    def no_data(self) -> bool:
        """True when smartctl could not read the disk at all (bits 0x01 or 0x02)."""
        return self.command_line_error or self.device_open_failed


@dataclass(frozen=True)
class AtaAttribute:
    """One row of the ATA SMART attribute table."""

    id: int
    name: str
    value: int | None  # normalized current value (vendor scale, usually 1..253)
    worst: int | None  # lowest normalized value seen
    thresh: int | None  # failure threshold for the normalized value
    when_failed: WhenFailed | None  # None: never at/below the threshold
    prefailure: bool | None  # True: crossing the threshold predicts failure
    # The 48-bit raw value as smartctl reads it. For counters (5, 187, 188, 197, 198,
    # 199) it is the count; some vendors pack extra fields into it (194 packs min/max
    # temperatures), so raw_string carries smartctl's decoded text as well.
    raw_value: int | None
    raw_string: str | None


@dataclass(frozen=True)
class NvmeHealth:
    """NVMe SMART/Health Information log (log page 0x02)."""

    critical_warning: int | None  # bit mask; non-zero means the controller warns
    critical_warnings: tuple[str, ...]  # names of the set bits, e.g. "reliability_degraded"
    media_errors: int | None  # unrecovered data-integrity errors since manufacture
    available_spare_percent: int | None
    available_spare_threshold_percent: int | None
    percentage_used_percent: int | None  # vendor estimate of endurance used; may exceed 100
    temperature_celsius: int | None
    power_on_hours: int | None
    unsafe_shutdowns: int | None
    error_log_entries: int | None  # lifetime count of error-information log entries
    data_units_read: int | None  # in units of 512,000 bytes (NVMe definition)
    data_units_written: int | None


@dataclass(frozen=True)
class ScsiHealth:
    """SCSI/SAS health: grown defects and uncorrected errors from the error counter log."""

    grown_defect_list: int | None  # sectors remapped since manufacture
    read_uncorrected_errors: int | None
    write_uncorrected_errors: int | None
    verify_uncorrected_errors: int | None


@dataclass(frozen=True)
class DiskHealth:
    device: str  # stable key: "/dev/sda"; RAID ports add the type: "/dev/bus/0 -d megaraid,4"
    device_type: str | None  # smartctl -d type used: "sat", "nvme", "scsi", "sat+megaraid,4"
    protocol: str | None  # "ATA", "NVMe" or "SCSI" as smartctl reports it
    model: str | None
    serial: str | None
    firmware: str | None
    capacity_bytes: int | None
    smart_passed: bool | None  # the disk's overall SMART verdict; None: not reported
    temperature_celsius: int | None
    power_on_hours: int | None
    exit_status: ExitStatus | None  # None: the output did not carry one
    ata_attributes: tuple[AtaAttribute, ...]  # failure-relevant rows only; () if not ATA
    nvme: NvmeHealth | None
    scsi: ScsiHealth | None
    messages: tuple[str, ...]  # smartctl's own warnings, "severity: text"
    backend: BackendName

    def attribute(self, attribute_id: int) -> AtaAttribute | None:
        """The ATA attribute with this id, if the disk reported it."""
        return next((a for a in self.ata_attributes if a.id == attribute_id), None)


@dataclass(frozen=True)
class SmartReadings:
    smartctl_version: str | None  # "7.3"; None when smartctl did not answer --version
    backend: BackendName | None  # the backend used this cycle; None without smartctl
    disks: tuple[DiskHealth, ...]  # sorted by device
    unavailable: tuple[UnavailableDevice, ...]  # timed out, garbage, open failed, vanished


__all__ = [
    "FAILURE_ATTRIBUTE_IDS",
    "AtaAttribute",
    "BackendName",
    "DiskHealth",
    "ExitStatus",
    "NvmeHealth",
    "ScsiHealth",
    "SmartReadings",
    "WhenFailed",
]
