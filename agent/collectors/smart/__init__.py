"""Disk health from smartctl: every ATA, NVMe and SCSI disk the node can see.

Each cycle: ask ``smartctl --version`` once (cached) to pick a backend, find the disks
(``--scan-open``, or the configured ``devices``), then read them in parallel, at most
:data:`MAX_PARALLEL_DEVICES` at a time and each with its own timeout, so 24 disks with
one hung among them still finish in about one timeout. smartctl 7.0+ is read through
its JSON output (:class:`~.backend.JsonBackend`); older builds through pySMART's text
parser (:class:`~.pysmart_backend.PySmartBackend`); ``backend`` in the settings forces
either.

A disk that times out, returns garbage, fails to open or vanishes from the scan is
listed in ``unavailable`` with the reason: a failing disk that stops answering is
itself one of the strongest failure signals. No smartctl on the node is "no data".
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from novacron.agent.collectors.base import (
    AvailabilityTracker,
    Collector,
    CollectorContext,
    CollectorSettings,
    register,
)
from novacron.agent.collectors.smart.backend import DiskUnavailable, JsonBackend, SmartBackend
from novacron.agent.collectors.smart.discovery import (
    DeviceRef,
    ScanError,
    parse_device_setting,
)
from novacron.agent.collectors.smart.model import DiskHealth, SmartReadings
from novacron.agent.collectors.smart.smartctl import (
    JSON_MIN_VERSION,
    SmartctlError,
    SmartctlNotFound,
    probe_version,
)
from novacron.agent.collectors.smart.summary import summarize_readings
from novacron.protos.runtime.jsonlog import LogOnce
from novacron.protos.runtime.tomlconfig import positive

log = logging.getLogger(__name__)

# Disks read at the same time. Enough that one hung disk (or a few) does not delay the
# rest by a whole timeout; few enough not to flood one HBA with SMART commands. A plain
# thread pool is safe here although its threads are joined at interpreter exit: every
# smartctl call is killed at its deadline, so no read outlives timeout_seconds + 1 s.
MAX_PARALLEL_DEVICES = 16


@dataclass(frozen=True)
class SmartSettings(CollectorSettings):
    # SMART attributes change over hours, and each poll runs smartctl once per disk (a
    # sick disk can take seconds to answer): poll once a minute, as smartctl_exporter's
    # default --smartctl.interval does, not every agent cycle.
    interval_seconds: float | None = 60.0
    smartctl_path: str = "smartctl"  # looked up on PATH unless absolute
    backend: Literal["auto", "json", "pysmart"] = "auto"  # auto: json from smartctl 7.0
    timeout_seconds: float = 20.0  # per smartctl call, and per disk for pySMART
    devices: tuple[str, ...] = ()  # "/dev/sda" or "/dev/bus/0 -d megaraid,4"; empty: scan

    def __post_init__(self) -> None:
        positive("timeout_seconds", self.timeout_seconds)
        if not self.smartctl_path.strip():
            raise ValueError("smartctl_path: must not be empty")
        for entry in self.devices:
            try:
                parse_device_setting(entry)
            except ValueError as exc:
                raise ValueError(f"devices: {exc}") from None


@register("smart", SmartSettings, default_enabled=True)
class SmartCollector(Collector[SmartSettings]):
    """Disk health (SMART) from smartctl: ATA, NVMe and SCSI disks."""

    def __init__(self, context: CollectorContext, settings: SmartSettings) -> None:
        super().__init__(context, settings)
        self._configured = tuple(parse_device_setting(d) for d in settings.devices)
        self._tracker = AvailabilityTracker("smart")
        self._log = LogOnce(log)
        self._backend: SmartBackend | None = None
        self._version: tuple[int, int] | None = None
        self._last_refs: tuple[DeviceRef, ...] = self._configured

    def collect(self, now: float) -> SmartReadings:
        try:
            backend = self._get_backend()
        except SmartctlNotFound as exc:
            self._log.problem("smartctl", logging.DEBUG, "smartctl not available", error=str(exc))
            return self._readings(now, (), self._all_failed(f"smartctl not available: {exc}"))
        except SmartctlError as exc:
            self._log.problem(
                "smartctl", logging.WARNING, "smartctl --version failed", error=str(exc)
            )
            return self._readings(now, (), self._all_failed(f"smartctl --version: {exc}"))
        self._log.recovered("smartctl", "smartctl answers again", path=self.settings.smartctl_path)
        refs, failed = self._discover(backend)
        readable = [ref for ref in refs if ref.open_error is None]
        disks: list[DiskHealth] = []
        if readable:
            workers = min(MAX_PARALLEL_DEVICES, len(readable))
            with ThreadPoolExecutor(workers, thread_name_prefix="smart") as pool:
                results = list(pool.map(lambda ref: self._read(backend, ref), readable))
            for ref, result in zip(readable, results, strict=True):
                if isinstance(result, DiskHealth):
                    disks.append(result)
                else:
                    failed[ref.key] = result
        return self._readings(now, tuple(disks), failed)

    def _get_backend(self) -> SmartBackend:
        """Probe the version once, then keep the backend (smartctl is not swapped live)."""
        if self._backend is not None:
            return self._backend
        path, timeout = self.settings.smartctl_path, self.settings.timeout_seconds
        self._version = probe_version(path, timeout)
        choice = self.settings.backend
        if choice == "auto":
            if self._version is None:
                self._log.problem(
                    "version",
                    logging.WARNING,
                    "cannot tell the smartctl version; assuming 7.0 or later (JSON)",
                    path=path,
                )
            too_old = self._version is not None and self._version < JSON_MIN_VERSION
            choice = "pysmart" if too_old else "json"
        if choice == "pysmart":
            from novacron.agent.collectors.smart.pysmart_backend import PySmartBackend

            self._backend = PySmartBackend(path, timeout, self._version)
        else:
            self._backend = JsonBackend(path, timeout)
        log.debug(
            "smart backend chosen",
            extra={"backend": choice, "smartctl_version": self._version_text()},
        )
        return self._backend

    def _discover(self, backend: SmartBackend) -> tuple[tuple[DeviceRef, ...], dict[str, str]]:
        """The disks to read now, and the ones already known to give nothing."""
        if self._configured:
            return self._configured, {}
        try:
            refs = backend.discover()
        except (SmartctlError, ScanError) as exc:
            self._log.problem("scan", logging.WARNING, "smartctl scan failed", error=str(exc))
            return (), self._all_failed(f"smartctl scan failed: {exc}")
        self._log.recovered("scan", "smartctl scan works again")
        self._last_refs = refs
        failed = {r.key: f"device open failed: {r.open_error}" for r in refs if r.open_error}
        return refs, failed

    def _read(self, backend: SmartBackend, ref: DeviceRef) -> DiskHealth | str:
        """One disk's health, or the reason it has none; never raises."""
        try:
            return backend.read(ref)
        except DiskUnavailable as exc:
            return exc.reason
        except Exception as exc:  # a parser bug must cost this disk, not the whole cycle
            self._log.problem(
                f"bug:{ref.key}",
                logging.ERROR,
                "reading a disk failed unexpectedly",
                device=ref.key,
                error=f"{type(exc).__name__}: {exc}",
            )
            return f"internal error: {type(exc).__name__}: {exc}"

    def _all_failed(self, reason: str) -> dict[str, str]:
        return {ref.key: reason for ref in self._last_refs}

    def _readings(
        self, now: float, disks: tuple[DiskHealth, ...], failed: dict[str, str]
    ) -> SmartReadings:
        unavailable = self._tracker.update((d.device for d in disks), failed, now)
        return SmartReadings(
            smartctl_version=self._version_text(),
            backend=self._backend.name if self._backend else None,
            disks=tuple(sorted(disks, key=lambda d: d.device)),
            unavailable=unavailable,
        )

    def _version_text(self) -> str | None:
        return f"{self._version[0]}.{self._version[1]}" if self._version else None

    @classmethod
    def summarize(cls, data: SmartReadings) -> list[str]:
        return summarize_readings(data)


__all__ = ["MAX_PARALLEL_DEVICES", "SmartCollector", "SmartSettings"]
