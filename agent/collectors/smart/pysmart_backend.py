"""pySMART backend: smartctl builds without ``--json`` (before 7.0), any disk type.

``backend = "auto"`` uses it when ``smartctl --version`` is older than 7.0;
``backend = "pysmart"`` forces it, e.g. for RAID-attached disks (``-d megaraid,N``,
``-d sat+megaraid,N``) on a host where a wrapper hides smartctl's JSON. Both backends
pass the ``-d`` type from the scan through unchanged.

pySMART parses smartctl's human-readable text. How pySMART 1.4.3 runs smartctl (read
from its source, ``pySMART/smartctl.py`` and ``device.py``):

* Every call goes through ``Smartctl.generic_call(params, pass_options)``, which builds
  an argument list and hands it to ``_exec``: ``subprocess.Popen(cmd, stdout=PIPE,
  stderr=PIPE)`` then ``communicate()``. No shell, but **no timeout**: one hung disk
  blocks the caller forever.
* ``Device(name, interface=TYPE)`` runs ``smartctl -d TYPE --all DEVICE``; for the
  generic ``scsi``/``ata`` types it then probes ``-l sataphy``, ``-l sasphy``, a second
  ``--all`` and possibly ``-l background``, so one disk can cost several calls.
* Importing pySMART sets ``LANG=C`` in our environment and installs its logger class
  for every logger created afterwards; both are undone right after the import.

How the timeout is enforced: each disk gets its own :class:`_BoundedSmartctl`, a
pySMART ``Smartctl`` whose ``generic_call`` (the public hook every call passes through)
runs smartctl with :func:`~.smartctl.run_smartctl` and only the time left until one
deadline for the whole disk. On timeout smartctl is killed, so no process or thread is
left behind. Rejected: a wrapper script around smartctl (one more file to install,
and a per-call rather than per-disk limit); running pySMART in a thread and no longer
waiting for it (the thread and the hung smartctl would stay, piling up every cycle).
It also records the exit status of the ``--all`` call, which pySMART discards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from typing import Any, ClassVar

from novacron.agent.collectors.smart.backend import DiskUnavailable, no_data_reason
from novacron.agent.collectors.smart.discovery import (
    DeviceRef,
    ScanError,
    merge_refs,
    parse_scan_text,
)
from novacron.agent.collectors.smart.exit_status import (
    decode_critical_warning,
    decode_exit_status,
)
from novacron.agent.collectors.smart.model import (
    FAILURE_ATTRIBUTE_IDS,
    AtaAttribute,
    BackendName,
    DiskHealth,
    NvmeHealth,
    ScsiHealth,
    WhenFailed,
)
from novacron.agent.collectors.smart.smartctl import (
    JSON_MIN_VERSION,
    SmartctlError,
    SmartctlResult,
    SmartctlTimeout,
    output_excerpt,
    run_smartctl,
)


def _import_pysmart() -> Any:
    """Import pySMART, undoing its process-wide side effects (see the module docstring)."""
    logger_class = logging.getLoggerClass()
    lang = os.environ.get("LANG")
    import pySMART
    import pySMART.interface
    import pySMART.smartctl

    logging.setLoggerClass(logger_class)
    if lang is None:
        os.environ.pop("LANG", None)
    else:
        os.environ["LANG"] = lang
    return pySMART


_pysmart: Any = _import_pysmart()

_ATA_TYPES = frozenset({"ata", "sat", "sata", "csmi", "atacam"})
_WHEN_FAILED: dict[str, WhenFailed] = {"FAILING_NOW": "now", "In_the_past": "past"}
_LEADING_INT_RE = re.compile(r"^\s*(\d+)")


class _BoundedSmartctl(_pysmart.smartctl.Smartctl):  # type: ignore[misc]
    """pySMART's smartctl wrapper with a per-disk deadline (see the module docstring)."""

    def __init__(self, smartctl_path: str, timeout_seconds: float) -> None:
        super().__init__(smartctl_path=smartctl_path)
        self._timeout_seconds = timeout_seconds
        self._deadline = time.monotonic() + timeout_seconds
        self.timed_out = False
        self.all_result: SmartctlResult | None = None  # the `--all` call, for its exit status

    def generic_call(self, params: list[str], pass_options: bool = False) -> tuple[list[str], int]:
        args = [*self.options, *params] if pass_options else list(params)
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            self.timed_out = True
            raise SmartctlTimeout(args, self._timeout_seconds)
        try:
            result = run_smartctl(self.smartctl_path, args, remaining)
        except SmartctlTimeout:
            self.timed_out = True  # try_generic_call swallows exceptions: remember it
            raise SmartctlTimeout(args, self._timeout_seconds) from None
        if "--all" in params and self.all_result is None:
            self.all_result = result
        return result.text.splitlines(), result.returncode


class PySmartBackend:
    """Reads disks through pySMART's text parser (any smartctl version)."""

    name: ClassVar[BackendName] = "pysmart"

    def __init__(
        self, smartctl_path: str, timeout_seconds: float, version: tuple[int, int] | None
    ) -> None:
        self.smartctl_path = smartctl_path
        self.timeout_seconds = timeout_seconds
        self.version = version

    def discover(self) -> tuple[DeviceRef, ...]:
        """``--scan-open``, and before 7.0 also ``--scan-open -d nvme``.

        smartmontools 6.x scans NVMe disks only when asked with ``-d nvme`` unless it was
        built with ``--with-nvme-devicescan`` (NEWS for 6.5); scanning both and merging
        by key finds them either way.
        """
        refs = [self._scan(["--scan-open"])]
        if self.version is not None and self.version < JSON_MIN_VERSION:
            # A build without NVMe support rejects "-d nvme": it has no NVMe disks then.
            with contextlib.suppress(ScanError):
                refs.append(self._scan(["--scan-open", "-d", "nvme"]))
        return merge_refs(*refs)

    def _scan(self, args: list[str]) -> tuple[DeviceRef, ...]:
        result = run_smartctl(self.smartctl_path, args, self.timeout_seconds)
        if result.returncode != 0 and not parse_scan_text(result.text):
            raise ScanError(
                f"smartctl {' '.join(args)} failed (exit status {result.returncode}): "
                f"{output_excerpt(result.stdout)!r}"
            )
        return parse_scan_text(result.text)

    def read(self, ref: DeviceRef) -> DiskHealth:
        smartctl = _BoundedSmartctl(self.smartctl_path, self.timeout_seconds)
        try:
            device = _pysmart.Device(ref.name, interface=ref.type, smartctl=smartctl)
        except SmartctlError as exc:
            raise DiskUnavailable(str(exc)) from None
        except Exception as exc:  # pySMART's parser meeting text it does not expect
            if smartctl.timed_out:
                raise DiskUnavailable(f"timed out after {self.timeout_seconds:g} s") from None
            raise DiskUnavailable(
                f"unparseable smartctl output: pySMART raised {type(exc).__name__}: {exc}"
            ) from None
        if smartctl.timed_out:
            raise DiskUnavailable(f"timed out after {self.timeout_seconds:g} s")
        result = smartctl.all_result
        if result is None:
            raise DiskUnavailable("pySMART could not identify the device")
        reason = no_data_reason(result, _last_line(result.text))
        if reason:
            raise DiskUnavailable(reason)
        if device.model is None and device.serial is None and device.assessment is None:
            raise DiskUnavailable(
                f"unparseable smartctl output (exit status {result.returncode}): neither "
                f"identity nor health in it; output: {output_excerpt(result.stdout)!r}"
            )
        return disk_from_pysmart(device, ref, result.returncode)


def disk_from_pysmart(device: Any, ref: DeviceRef, exit_status: int) -> DiskHealth:
    """Map a populated ``pySMART.Device`` to :class:`DiskHealth` (no I/O)."""
    interface = _pysmart.interface
    attributes = device.if_attributes
    ata = _ata_attributes(attributes) if isinstance(attributes, interface.AtaAttributes) else ()
    nvme = _nvme_health(attributes) if isinstance(attributes, interface.NvmeAttributes) else None
    # pySMART falls back to SCSIAttributes for any text it cannot place, also for an ATA
    # disk whose attribute table is missing; only a SCSI-type device is really SCSI.
    is_scsi = (ref.type or _text(device.interface) or "").split("+")[0] not in _ATA_TYPES
    scsi = (
        _scsi_health(attributes)
        if isinstance(attributes, interface.SCSIAttributes) and is_scsi
        else None
    )
    protocol = "ATA" if ata else "NVMe" if nvme else "SCSI" if scsi else None
    hours_attribute = next((a for a in ata if a.id == 9), None)
    power_on_hours = (
        _leading_int(hours_attribute.raw_string)
        if hours_attribute
        else nvme.power_on_hours
        if nvme
        else _int(attributes.diagnostics.Power_On_Hours)
        if scsi
        else None
    )
    return DiskHealth(
        device=ref.key,
        device_type=ref.type or _text(device.interface),
        protocol=protocol,
        model=_text(device.model),
        serial=_text(device.serial),
        firmware=_text(device.firmware),
        capacity_bytes=_capacity_bytes(device),
        smart_passed={"PASS": True, "WARN": True, "FAIL": False}.get(device.assessment),
        temperature_celsius=_int(device.temperature),
        power_on_hours=power_on_hours,
        exit_status=decode_exit_status(exit_status),
        ata_attributes=ata,
        nvme=nvme,
        scsi=scsi,
        messages=tuple(f"warning: {m}" for m in device.messages),
        backend="pysmart",
    )


def _ata_attributes(attributes: Any) -> tuple[AtaAttribute, ...]:
    rows = []
    for attr in attributes.legacyAttributes:
        if attr is None:
            continue
        when_failed = _WHEN_FAILED.get(attr.when_failed)
        if attr.num not in FAILURE_ATTRIBUTE_IDS and when_failed is None:
            continue
        raw = str(attr.raw).strip()
        rows.append(
            AtaAttribute(
                id=attr.num,
                name=attr.name,
                value=_leading_int(attr.value_str),
                worst=_leading_int(attr._worst),
                thresh=_leading_int(attr._thresh),
                when_failed=when_failed,
                prefailure=attr.type == "Pre-fail",
                # Text output shows only the decoded raw string; it is the 48-bit raw
                # value exactly when it is a plain number.
                raw_value=int(raw) if raw.isdigit() else None,
                raw_string=raw or None,
            )
        )
    return tuple(sorted(rows, key=lambda a: a.id))


def _nvme_health(attributes: Any) -> NvmeHealth:
    warning = _int(attributes.criticalWarning)
    return NvmeHealth(
        critical_warning=warning,
        critical_warnings=decode_critical_warning(warning),
        media_errors=_int(attributes.integrityErrors),
        available_spare_percent=_int(attributes.availableSpare),
        available_spare_threshold_percent=_int(attributes.availableSpareThreshold),
        percentage_used_percent=_int(attributes.percentageUsed),
        temperature_celsius=_int(attributes.temperature),
        power_on_hours=_int(attributes.powerOnHours),
        unsafe_shutdowns=_int(attributes.unsafeShutdowns),
        error_log_entries=_int(attributes.errorEntries),
        data_units_read=_int(attributes.dataUnitsRead),
        data_units_written=_int(attributes.dataUnitsWritten),
    )


def _scsi_health(attributes: Any) -> ScsiHealth:
    diagnostics = attributes.diagnostics
    return ScsiHealth(
        grown_defect_list=_int(diagnostics.Reallocated_Sector_Ct),
        read_uncorrected_errors=_int(getattr(diagnostics, "_Uncorrected_Reads", None)),
        write_uncorrected_errors=_int(getattr(diagnostics, "_Uncorrected_Writes", None)),
        verify_uncorrected_errors=_int(getattr(diagnostics, "_Uncorrected_Verifies", None)),
    )


def _capacity_bytes(device: Any) -> int | None:
    try:
        size = device.size  # parses "[2.00 TB]" when the exact byte count is missing
    except Exception:  # humanfriendly.InvalidSize derives from Exception only
        return None
    return _int(size) or None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _leading_int(text: Any) -> int | None:
    match = _LEADING_INT_RE.match(text) if isinstance(text, str) else None
    return int(match.group(1)) if match else None


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _last_line(text: str) -> str | None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else None


__all__ = ["PySmartBackend", "disk_from_pysmart"]
