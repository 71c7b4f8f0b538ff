"""Which disks to read: ``smartctl --scan-open`` (JSON or text) or the configured list.

Each disk is addressed as smartctl addresses it, a device name plus the ``-d`` type
the scan chose (``/dev/sda -d sat``). Disks behind a RAID controller share one device
name and differ only in the type (``/dev/bus/0 -d megaraid,4``), so their key carries
the type as well; a plain disk's key is its device name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# "/dev/sda -d sat # /dev/sda [SAT], ATA device"
# "# /dev/sdc -d scsi # /dev/sdc, SCSI device open failed: Permission denied"
_SCAN_LINE_RE = re.compile(r"^(?P<failed>#\s*)?(?P<name>\S+)\s+-d\s+(?P<type>\S+)(?P<rest>.*)$")
_OPEN_FAILED_RE = re.compile(r"device open failed:\s*(?P<error>.*)$")


class ScanError(ValueError):
    """The scan output was not what smartctl prints."""


@dataclass(frozen=True)
class DeviceRef:
    name: str  # "/dev/sda", "/dev/nvme0", "/dev/bus/0"
    type: str | None  # smartctl -d type; None lets smartctl choose
    open_error: str | None = None  # the scan could not open it (permission, gone)

    @property
    def key(self) -> str:
        """Stable identity: the name, plus the type for RAID ports (types with a comma)."""
        if self.type and "," in self.type:
            return f"{self.name} -d {self.type}"
        return self.name

    def smartctl_args(self) -> list[str]:
        """``["-d", "sat", "/dev/sda"]``: the device part of a smartctl command line."""
        return [*(["-d", self.type] if self.type else []), self.name]


def parse_device_setting(entry: str) -> DeviceRef:
    """A configured device, ``"/dev/sda"`` or as ``smartctl --scan`` prints it,
    ``"/dev/bus/0 -d megaraid,4"`` (a trailing ``# comment`` is ignored)."""
    text = entry.split("#", 1)[0].strip()
    parts = text.split()
    if len(parts) == 1:
        return DeviceRef(parts[0], None)
    if len(parts) == 3 and parts[1] == "-d":
        return DeviceRef(parts[0], parts[2])
    raise ValueError(f"expected 'DEVICE' or 'DEVICE -d TYPE', got {entry!r}")


def parse_scan_json(doc: Any) -> tuple[DeviceRef, ...]:
    """Devices from ``smartctl --scan-open --json`` (the ``devices`` array)."""
    if not isinstance(doc, Mapping):
        raise ScanError(f"expected a JSON object, got {type(doc).__name__}")
    devices = doc.get("devices", [])
    if not isinstance(devices, list):
        raise ScanError("'devices' is not a list")
    refs: list[DeviceRef] = []
    for entry in devices:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise ScanError(f"device entry without a name: {entry!r}")
        dev_type = entry.get("type")
        open_error = entry.get("open_error")
        refs.append(
            DeviceRef(
                entry["name"],
                dev_type if isinstance(dev_type, str) else None,
                str(open_error) if open_error is not None else None,
            )
        )
    return tuple(refs)


def parse_scan_text(text: str) -> tuple[DeviceRef, ...]:
    """Devices from plain ``smartctl --scan-open`` (any version, JSON or not)."""
    refs: list[DeviceRef] = []
    for line in text.splitlines():
        match = _SCAN_LINE_RE.match(line.strip())
        if not match:
            continue  # banner, blank lines, "# scan_smart_devices: ..." notes
        failed = _OPEN_FAILED_RE.search(match.group("rest"))
        if match.group("failed") and not failed:
            continue  # a comment that merely looks like a device line
        refs.append(
            DeviceRef(
                match.group("name"),
                match.group("type"),
                failed.group("error").strip() if failed else None,
            )
        )
    return tuple(refs)


def merge_refs(*groups: Iterable[DeviceRef]) -> tuple[DeviceRef, ...]:
    """Concatenate scans, keeping the first entry per key."""
    seen: dict[str, DeviceRef] = {}
    for group in groups:
        for ref in group:
            seen.setdefault(ref.key, ref)
    return tuple(seen.values())


__all__ = [
    "DeviceRef",
    "ScanError",
    "merge_refs",
    "parse_device_setting",
    "parse_scan_json",
    "parse_scan_text",
]
