"""One short line per disk for ``novacron-agent collect --once`` (the JSON has everything)."""

from __future__ import annotations

import time

from novacron.agent.collectors.smart.exit_status import describe_exit_status
from novacron.agent.collectors.smart.model import DiskHealth, SmartReadings

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def summarize_readings(data: SmartReadings) -> list[str]:
    version = data.smartctl_version or "?"
    head = f"smartctl {version}, {data.backend or 'no'} backend, {len(data.disks)} disk(s)"
    if data.backend is None and not data.disks and not data.unavailable:
        return ["no data: smartctl not available"]
    lines = [head]
    lines += [disk_line(disk) for disk in data.disks]
    for gone in data.unavailable:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(gone.unavailable_since))
        lines.append(f"{gone.device:<12} UNAVAILABLE since {since} UTC: {gone.reason}")
    return lines


def disk_line(disk: DiskHealth) -> str:
    verdict = {True: "PASSED", False: "FAILED", None: "-"}[disk.smart_passed]
    parts = [
        f"{disk.device:<12}",
        f"{disk.protocol or '?':<4}",
        disk.model or "?",
        format_capacity(disk.capacity_bytes),
        verdict,
        f"{disk.temperature_celsius} C" if disk.temperature_celsius is not None else "- C",
        f"{disk.power_on_hours} h" if disk.power_on_hours is not None else "- h",
        *_protocol_details(disk),
    ]
    if disk.exit_status is not None and disk.exit_status.value:
        flags = "; ".join(describe_exit_status(disk.exit_status))
        parts.append(f"[exit 0x{disk.exit_status.value:02x}: {flags}]")
    return "  ".join(parts)


def _protocol_details(disk: DiskHealth) -> list[str]:
    if disk.nvme is not None:
        nvme = disk.nvme
        details = [
            f"media errors {_n(nvme.media_errors)}",
            f"spare {_n(nvme.available_spare_percent)}%",
            f"used {_n(nvme.percentage_used_percent)}%",
        ]
        if nvme.critical_warnings:
            details.append("warnings: " + ",".join(nvme.critical_warnings))
        return details
    if disk.scsi is not None:
        scsi = disk.scsi
        return [
            f"grown defects {_n(scsi.grown_defect_list)}",
            "uncorrected r/w/v "
            f"{_n(scsi.read_uncorrected_errors)}/{_n(scsi.write_uncorrected_errors)}"
            f"/{_n(scsi.verify_uncorrected_errors)}",
        ]
    details = []
    for attribute_id, label in ((5, "realloc"), (197, "pending"), (198, "uncorrectable")):
        attribute = disk.attribute(attribute_id)
        details.append(f"{label} {_n(attribute.raw_value if attribute else None)}")
    failing = [a.name for a in disk.ata_attributes if a.when_failed == "now"]
    if failing:
        details.append("FAILING_NOW: " + ",".join(failing))
    return details


def format_capacity(value: int | None) -> str:
    """Decimal units as disk vendors and smartctl print them: ``2000398934016`` -> ``2.00 TB``."""
    if value is None:
        return "-"
    size = float(value)
    for unit in _DECIMAL_UNITS[:-1]:
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.2f} {unit}"
        size /= 1000
    return f"{size:.2f} {_DECIMAL_UNITS[-1]}"


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)


__all__ = ["disk_line", "format_capacity", "summarize_readings"]
