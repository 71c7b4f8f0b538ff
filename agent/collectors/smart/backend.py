"""The interface both backends implement, and the default one: ``smartctl --json``.

A backend finds disks (:meth:`SmartBackend.discover`) and reads one disk
(:meth:`SmartBackend.read`). ``read`` either returns a full :class:`DiskHealth` or
raises :class:`DiskUnavailable` with a reason a person can act on (timed out, device
open failed, unparseable output); the collector turns that into an explicit
unavailable entry, because a disk that stops answering is itself a failure signal.

The JSON backend makes exactly the calls an operator would make with smartctl 7.x:
``smartctl --scan-open --json`` and ``smartctl --json --xall [-d TYPE] DEVICE``, the
type being the one the scan chose.
"""

from __future__ import annotations

import json
from typing import ClassVar, Protocol

from novacron.agent.collectors.smart.discovery import DeviceRef, ScanError, parse_scan_json
from novacron.agent.collectors.smart.exit_status import decode_exit_status, describe_exit_status
from novacron.agent.collectors.smart.model import BackendName, DiskHealth
from novacron.agent.collectors.smart.parse_json import SmartOutputError, parse_disk_json
from novacron.agent.collectors.smart.smartctl import (
    SmartctlError,
    SmartctlResult,
    output_excerpt,
    run_smartctl,
)


class DiskUnavailable(Exception):
    """This disk gave no usable data this cycle; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class SmartBackend(Protocol):
    name: ClassVar[BackendName]

    def discover(self) -> tuple[DeviceRef, ...]:
        """Disks smartctl can see; raises SmartctlError or ScanError when it cannot say."""

    def read(self, ref: DeviceRef) -> DiskHealth:
        """One disk's health; raises DiskUnavailable when there is no usable data."""


def no_data_reason(result: SmartctlResult, detail: str | None) -> str | None:
    """Why a smartctl run gave nothing to parse (bits 0x01/0x02, killed), else None."""
    if not 0 <= result.returncode <= 0xFF:
        return f"smartctl was killed by signal {-result.returncode}"
    status = decode_exit_status(result.returncode)
    if not status.no_data:
        return None
    what = "; ".join(describe_exit_status(status)[:2])
    return f"{what} (exit status {result.returncode})" + (f": {detail}" if detail else "")


class JsonBackend:
    """Reads disks with ``smartctl --json`` (smartmontools 7.0 and later)."""

    name: ClassVar[BackendName] = "json"

    def __init__(self, smartctl_path: str, timeout_seconds: float) -> None:
        self.smartctl_path = smartctl_path
        self.timeout_seconds = timeout_seconds

    def discover(self) -> tuple[DeviceRef, ...]:
        result = run_smartctl(self.smartctl_path, ["--scan-open", "--json"], self.timeout_seconds)
        try:
            doc = json.loads(result.stdout)
        except ValueError as exc:
            raise ScanError(
                f"--scan-open --json gave no JSON (exit status {result.returncode}): {exc}; "
                f"output: {output_excerpt(result.stdout)!r}"
            ) from None
        return parse_scan_json(doc)

    def read(self, ref: DeviceRef) -> DiskHealth:
        args = ["--json", "--xall", *ref.smartctl_args()]
        try:
            result = run_smartctl(self.smartctl_path, args, self.timeout_seconds)
        except SmartctlError as exc:
            raise DiskUnavailable(str(exc)) from None
        try:
            doc = json.loads(result.stdout)
        except ValueError as exc:
            reason = no_data_reason(result, None)
            raise DiskUnavailable(
                reason
                or f"unparseable smartctl output (exit status {result.returncode}): {exc}; "
                f"output: {output_excerpt(result.stdout)!r}"
            ) from None
        reason = no_data_reason(result, _first_message(doc))
        if reason:
            raise DiskUnavailable(reason)
        try:
            return parse_disk_json(doc, ref.key)
        except SmartOutputError as exc:
            raise DiskUnavailable(
                f"unparseable smartctl output (exit status {result.returncode}): {exc}"
            ) from None


def _first_message(doc: object) -> str | None:
    """smartctl's first message, e.g. "Smartctl open device: /dev/sdz failed: No such device"."""
    smartctl = doc.get("smartctl") if isinstance(doc, dict) else None
    messages = smartctl.get("messages") if isinstance(smartctl, dict) else None
    first = messages[0] if isinstance(messages, list) and messages else None
    text = first.get("string") if isinstance(first, dict) else None
    return text if isinstance(text, str) else None


__all__ = ["DiskUnavailable", "JsonBackend", "SmartBackend", "no_data_reason"]
