"""One disk's SMART readings as DISK-schema signals (pure).

The disk failure model is trained on Backblaze Drive Stats columns (``smart_<id>_raw``
of ATA disks), so ATA attributes map one to one; NVMe and SCSI disks fill the same
columns with what measures the same thing (documented in ``docs/features.md``):

==========================  ===========================================================
signal                      ATA / NVMe / SCSI
==========================  ===========================================================
reallocated_sectors         5 raw / -- / grown defect list
reported_uncorrect          187 raw / media_errors / read + write uncorrected errors
command_timeout             188 raw / -- / --
current_pending_sectors     197 raw / -- / --
offline_uncorrectable       198 raw / -- / --
udma_crc_errors             199 raw / -- / --
power_on_hours              9 raw (smartctl's decoded hours without it) / power_on_hours
temperature_celsius         smartctl's current temperature (all protocols)
==========================  ===========================================================

Temperature is smartctl's decoded ``temperature.current``, not attribute 194's raw
value: many vendors pack the lifetime min/max into its 48 bits (``81604378657`` for a
disk at 33 C), which would be nonsense as a level. ``None`` means the disk does not
report the value, never zero.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from novacron.agent.collectors.smart.model import DiskHealth
from novacron.agent.features._values import as_float, sum_known

DiskSignalValues = dict[str, float | None]

_ATA_COLUMNS = (
    (5, "reallocated_sectors"),
    (187, "reported_uncorrect"),
    (188, "command_timeout"),
    (197, "current_pending_sectors"),
    (198, "offline_uncorrectable"),
    (199, "udma_crc_errors"),
)
_POWER_ON_HOURS_ATTRIBUTE = 9


def disk_signals(disk: DiskHealth) -> DiskSignalValues:
    """The DISK schema's signals for one disk; None for what it does not report."""
    values: DiskSignalValues = {
        "reallocated_sectors": None,
        "reported_uncorrect": None,
        "command_timeout": None,
        "current_pending_sectors": None,
        "offline_uncorrectable": None,
        "udma_crc_errors": None,
        "power_on_hours": as_float(disk.power_on_hours),
        "temperature_celsius": as_float(disk.temperature_celsius),
    }
    for attribute_id, signal in _ATA_COLUMNS:
        attribute = disk.attribute(attribute_id)
        if attribute is not None:
            values[signal] = as_float(attribute.raw_value)
    hours = disk.attribute(_POWER_ON_HOURS_ATTRIBUTE)
    if hours is not None and hours.raw_value is not None:
        values["power_on_hours"] = float(hours.raw_value)
    if disk.nvme is not None:
        values["reported_uncorrect"] = as_float(disk.nvme.media_errors)
        if disk.nvme.power_on_hours is not None:
            values["power_on_hours"] = float(disk.nvme.power_on_hours)
    if disk.scsi is not None:
        values["reallocated_sectors"] = as_float(disk.scsi.grown_defect_list)
        values["reported_uncorrect"] = sum_known(
            [disk.scsi.read_uncorrected_errors, disk.scsi.write_uncorrected_errors]
        )
    return values


def is_failing(disk: DiskHealth) -> bool:
    """The disk itself says it is failing: overall verdict, exit bits or an attribute.

    A pre-fail attribute at or below its threshold *now* predicts failure by the
    vendor's own definition even when the overall verdict lags behind.
    """
    status = disk.exit_status
    return (
        disk.smart_passed is False
        or (status is not None and (status.smart_failing or status.prefail_below_threshold))
        or any(a.prefailure and a.when_failed == "now" for a in disk.ata_attributes)
    )


def disk_keys(disks: Iterable[DiskHealth]) -> dict[str, DiskHealth]:
    """Stable keys: the serial number, or the device when the serial is unknown.

    A serial follows the disk across device renames (``sdb`` becoming ``sdc`` after a
    reboot) and slot moves, so its windows keep their history. Two disks reporting the
    same serial (RAID bridges and redacted recordings do) get ``serial@device``, so one
    disk's readings never land in another's windows.
    """
    listed = list(disks)
    serials = Counter(d.serial for d in listed if d.serial)
    out: dict[str, DiskHealth] = {}
    for disk in listed:
        if not disk.serial:
            key = disk.device
        elif serials[disk.serial] > 1:
            key = f"{disk.serial}@{disk.device}"
        else:
            key = disk.serial
        out[key] = disk
    return out
