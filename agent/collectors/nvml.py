"""NVIDIA GPU health from NVML: temperature, power, utilisation, memory, ECC, XID errors.

The GPU failure signals that matter in fleet studies are memory errors (ECC counts,
retired pages on Volta and earlier, remapped rows on Ampere and later, including a
pending or failed remap), PCIe link trouble (the replay counter), thermal and power
throttling, and XID errors (driver-reported faults such as 48 "double-bit ECC", 79 "fell
off the bus"). XIDs are events, not counters: an event set registered once per device
is drained (never waiting) each cycle, and each GPU reports the XID codes seen since the
previous collection.

``pynvml`` (nvidia-ml-py) is imported lazily. On a host without an NVIDIA driver
``nvmlInit`` fails with ``LibraryNotFound`` / ``DriverNotLoaded``: that is "no data",
logged once at debug, and initialisation is retried every ``init_retry_seconds`` in case
the driver is loaded later. A GPU that stops answering (``GPU_IS_LOST``) or disappears
from enumeration is listed in ``unavailable`` under its UUID.
"""

from __future__ import annotations

import ctypes
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from novacron.agent.collectors._nvml_device import read_gpu
from novacron.agent.collectors._nvml_model import GpuReading, NvmlReadings, as_text
from novacron.agent.collectors._units import format_bytes, format_number
from novacron.agent.collectors.base import (
    AvailabilityTracker,
    Collector,
    CollectorContext,
    CollectorSettings,
    register,
)
from novacron.protos.runtime.jsonlog import LogOnce
from novacron.protos.runtime.tomlconfig import positive

log = logging.getLogger(__name__)

# Drain at most this many events per cycle: a GPU in an XID storm must not stall us.
_MAX_EVENTS_PER_CYCLE = 1000

__all__ = ["NvmlCollector", "NvmlSettings"]


@dataclass(frozen=True)
class NvmlSettings(CollectorSettings):
    # How often to try nvmlInit again while there is no NVIDIA driver (or it failed).
    init_retry_seconds: float = 300.0

    def __post_init__(self) -> None:
        positive("init_retry_seconds", self.init_retry_seconds)


@dataclass(frozen=True)
class _Device:
    index: int
    uuid: str
    handle: Any


@dataclass(frozen=True)
class _Unopened:
    key: str  # the UUID this index had before, if known
    error: str


@register("nvml", NvmlSettings, default_enabled=True)
class NvmlCollector(Collector[NvmlSettings]):
    """NVIDIA GPU temperature, power, utilisation, memory, ECC, row remapping and XIDs."""

    def __init__(self, context: CollectorContext, settings: NvmlSettings) -> None:
        super().__init__(context, settings)
        self._nvml: Any = None  # the pynvml module while NVML is initialised
        self._next_init_at = 0.0
        self._driver_version: str | None = None
        self._error: str | None = None
        self._event_set: Any = None
        self._registered: set[str] = set()  # GPU UUIDs registered for XID events
        self._uuid_by_index: dict[int, str] = {}
        self._uuid_by_handle: dict[object, str] = {}  # for events from a lost GPU
        self._tracker = AvailabilityTracker("nvml")
        self._log = LogOnce(log)

    def collect(self, now: float) -> NvmlReadings:
        nvml = self._initialised(now)
        if nvml is None:
            return self._no_data(now, f"NVML not available: {self._error}")
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except nvml.NVMLError as exc:
            # The driver went away under us (unloaded, reset): start over next cycle.
            self._error = f"nvmlDeviceGetCount: {exc}"
            self._log.problem("count", logging.WARNING, "NVML stopped answering", error=str(exc))
            self._shutdown()
            self._next_init_at = now
            return self._no_data(now, f"NVML stopped answering: {exc}")
        self._log.recovered("count", "NVML answers again")
        devices = [self._open_device(nvml, index) for index in range(count)]
        xids = self._drain_xids(nvml)  # after registering every GPU for events
        gpus: list[GpuReading] = []
        failed: dict[str, str] = {}
        for device in devices:
            if isinstance(device, _Unopened):
                failed[device.key] = _with_xids(device.error, xids.get(device.key))
                continue
            reading, calls = read_gpu(
                nvml, device.handle, device.index, device.uuid, tuple(xids.get(device.uuid, ()))
            )
            if calls.lost is not None:
                failed[device.uuid] = _with_xids(
                    f"GPU is lost: {calls.lost}", xids.get(device.uuid)
                )
            elif calls.answered == 0:
                failed[device.uuid] = f"no NVML call answered: {calls.last_error}"
            else:
                gpus.append(reading)
        return NvmlReadings(
            driver_version=self._driver_version,
            error=None,
            gpus=tuple(gpus),
            unavailable=self._tracker.update((g.uuid for g in gpus), failed, now),
        )

    def _open_device(self, nvml: Any, index: int) -> _Device | _Unopened:
        """Handle and UUID of GPU ``index``, registered for XID events."""
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            uuid = as_text(nvml.nvmlDeviceGetUUID(handle))
        except nvml.NVMLError as exc:
            key = self._uuid_by_index.get(index, f"gpu{index}")
            return _Unopened(key, f"{type(exc).__name__}: {exc}")
        self._uuid_by_index[index] = uuid
        self._uuid_by_handle[_handle_key(handle)] = uuid
        self._register_events(nvml, handle, uuid)
        return _Device(index, uuid, handle)

    def _no_data(self, now: float, reason: str) -> NvmlReadings:
        """No NVML: every GPU seen before is unavailable; none seen means plain no data."""
        known = dict.fromkeys(self._uuid_by_index.values(), reason)
        return NvmlReadings(
            driver_version=None,
            error=self._error,
            gpus=(),
            unavailable=self._tracker.update((), known, now),
        )

    # -- initialisation --------------------------------------------------------------

    def _initialised(self, now: float) -> Any:
        if self._nvml is not None:
            return self._nvml
        if now < self._next_init_at:
            return None
        self._next_init_at = now + self.settings.init_retry_seconds
        try:
            import pynvml
        except ImportError as exc:
            self._error = f"pynvml cannot be imported: {exc}"
            self._log.problem("init", logging.DEBUG, "no pynvml; no GPU data", error=str(exc))
            return None
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            self._error = f"nvmlInit: {exc}"
            no_driver = isinstance(
                exc, pynvml.NVMLError_LibraryNotFound | pynvml.NVMLError_DriverNotLoaded
            )
            self._log.problem(
                "init",
                logging.DEBUG if no_driver else logging.WARNING,
                "no NVIDIA driver; no GPU data" if no_driver else "nvmlInit failed",
                error=f"{type(exc).__name__}: {exc}",
                retry_in_seconds=self.settings.init_retry_seconds,
            )
            return None
        self._nvml = pynvml
        self._error = None
        self._driver_version = _driver_version(pynvml)
        self._log.recovered("init", "NVML initialised", driver_version=self._driver_version)
        self._create_event_set(pynvml)
        return pynvml

    def _shutdown(self) -> None:
        nvml, self._nvml = self._nvml, None
        event_set, self._event_set = self._event_set, None
        self._registered.clear()
        self._uuid_by_handle.clear()  # handles die with the NVML session
        self._driver_version = None
        if nvml is None:
            return
        try:
            if event_set is not None:
                nvml.nvmlEventSetFree(event_set)
            nvml.nvmlShutdown()
        except nvml.NVMLError as exc:  # shutting down a broken library may fail too
            log.debug("NVML shutdown failed", extra={"error": str(exc)})

    def close(self) -> None:
        self._shutdown()

    # -- XID events ------------------------------------------------------------------

    def _create_event_set(self, nvml: Any) -> None:
        try:
            self._event_set = nvml.nvmlEventSetCreate()
        except nvml.NVMLError as exc:
            self._log.problem(
                "events", logging.INFO, "NVML events unavailable; no XID data", error=str(exc)
            )

    def _register_events(self, nvml: Any, handle: Any, uuid: str) -> None:
        if self._event_set is None or uuid in self._registered:
            return
        self._registered.add(uuid)  # once per GPU, whether or not it supports events
        try:
            nvml.nvmlDeviceRegisterEvents(
                handle, nvml.nvmlEventTypeXidCriticalError, self._event_set
            )
        except nvml.NVMLError as exc:
            self._log.problem(
                f"events:{uuid}",
                logging.DEBUG,
                "GPU does not report XID events",
                gpu=uuid,
                error=str(exc),
            )

    def _drain_xids(self, nvml: Any) -> dict[str, list[int]]:
        """XID codes per GPU UUID that arrived since the last cycle (never waits)."""
        xids: dict[str, list[int]] = defaultdict(list)
        if self._event_set is None:
            return xids
        for _ in range(_MAX_EVENTS_PER_CYCLE):
            try:
                event = nvml.nvmlEventSetWait_v2(self._event_set, 0)
            except nvml.NVMLError_Timeout:
                break
            except nvml.NVMLError as exc:
                self._log.problem("wait", logging.WARNING, "NVML event wait failed", error=str(exc))
                break
            if not int(event.eventType) & nvml.nvmlEventTypeXidCriticalError:
                continue
            uuid = self._event_gpu(nvml, event.device)
            xids[uuid].append(int(event.eventData))
            log.warning("GPU XID error", extra={"gpu": uuid, "xid": int(event.eventData)})
        return xids

    def _event_gpu(self, nvml: Any, handle: Any) -> str:
        """UUID of an event's GPU; known handles first, since a lost GPU cannot answer."""
        known = self._uuid_by_handle.get(_handle_key(handle))
        if known is not None:
            return known
        try:
            return as_text(nvml.nvmlDeviceGetUUID(handle))
        except nvml.NVMLError:
            return "unknown"

    # -- summary ---------------------------------------------------------------------

    @classmethod
    def summarize(cls, data: Any) -> list[str]:
        readings: NvmlReadings = data
        if not readings.gpus and not readings.unavailable:
            return [f"no NVIDIA GPU data ({readings.error or 'no driver'})"]
        lines = [_gpu_line(g) for g in readings.gpus]
        for u in readings.unavailable:
            since = time.strftime("%H:%M:%S", time.gmtime(u.unavailable_since))
            lines.append(f"{u.device}: UNAVAILABLE since {since} UTC ({u.reason})")
        return lines


def _gpu_line(g: GpuReading) -> str:
    ecc = g.ecc_volatile_uncorrected
    throttle = ",".join(g.clock_throttle_reasons or ()) or "-"
    xid = ",".join(str(x) for x in g.xid_errors) or "-"
    return (
        f"GPU{g.index} {g.name or '?'} {g.pci_bus_id or ''}"
        f"  {format_number(g.temperature_celsius, 0, ' C')}"
        f"  {format_number(g.power_watts, 0, ' W')}/{format_number(g.power_limit_watts, 0, ' W')}"
        f"  util {format_number(g.gpu_utilisation_percent, 0, '%')}"
        f"  mem {format_bytes(g.memory_used_bytes)}/{format_bytes(g.memory_total_bytes)}"
        f"  ecc-ue {format_number(ecc, 0)}  throttle {throttle}  xid {xid}"
    )


def _handle_key(handle: Any) -> object:
    """A hashable identity for a device handle.

    Real pynvml handles are ctypes pointers, which compare by object, not by address:
    an event's ``device`` is a new pointer to the same device, so compare addresses.
    """
    try:
        return ctypes.cast(handle, ctypes.c_void_p).value
    except (ctypes.ArgumentError, TypeError):
        return handle


def _driver_version(nvml: Any) -> str | None:
    try:
        return as_text(nvml.nvmlSystemGetDriverVersion())
    except nvml.NVMLError:
        return None


def _with_xids(reason: str, xids: list[int] | None) -> str:
    """A lost GPU's reason names its last XIDs: 79 there means it fell off the bus."""
    return f"{reason} (XID {', '.join(map(str, xids))})" if xids else reason
