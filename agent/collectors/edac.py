"""DRAM ECC errors from Linux EDAC, per memory controller and per DIMM, plus rasdaemon.

Corrected memory errors (CE) that keep coming on one DIMM are the best published
predictor of a later uncorrected error (UE), which crashes the host or its VMs. EDAC
exposes cumulative counters under ``<sysfs>/devices/system/edac/mc/mc<N>/``:

* per controller: ``mc_name``, ``size_mb``, ``seconds_since_reset``, ``ce_count``,
  ``ue_count``, ``ce_noinfo_count``, ``ue_noinfo_count``;
* per DIMM on newer kernels: ``dimm<M>/`` or ``rank<M>/`` with ``dimm_label``,
  ``dimm_location``, ``size``, ``dimm_mem_type``, ``dimm_edac_mode``,
  ``dimm_ce_count``, ``dimm_ue_count``;
* per chip-select row on older kernels: ``csrow<K>/`` with ``ce_count``, ``ue_count``
  and per channel ``ch<C>_ce_count``, ``ch<C>_dimm_label``. Kernels that have both
  (``CONFIG_EDAC_LEGACY_SYSFS``) are read through the DIMM directories.

The collector keeps the previous reading and reports deltas since the last collection;
a counter (or ``seconds_since_reset``) that goes down is a reset, and the delta is then
the new value with ``counter_reset`` set. No EDAC directory is "no data"; a controller
seen before that disappears is reported in ``unavailable``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from novacron.agent.collectors._counters import counter_delta, went_down
from novacron.agent.collectors._rasdaemon import (
    EventCounts,
    MemoryErrorEvent,
    RasdaemonReader,
    RasdaemonReadings,
)
from novacron.agent.collectors._sysfs import (
    ReadBytes,
    SysfsReader,
    Unreadable,
    list_names,
    numbered_entries,
    read_bytes,
)
from novacron.agent.collectors.base import (
    AvailabilityTracker,
    Collector,
    CollectorContext,
    CollectorSettings,
    UnavailableDevice,
    register,
)
from novacron.protos.runtime.jsonlog import LogOnce
from novacron.protos.runtime.tomlconfig import positive

log = logging.getLogger(__name__)

Layout = Literal["dimm", "rank", "csrow"]
_CSROW_CHANNEL = re.compile(r"ch(\d+)_ce_count")
_CONTROLLER_COUNTERS = ("ce_count", "ue_count", "ce_noinfo_count", "ue_noinfo_count")


@dataclass(frozen=True)
class EdacSettings(CollectorSettings):
    rasdaemon_db: Path = Path("/var/lib/rasdaemon/ras-mc_event.db")
    # How long to wait for rasdaemon's write lock before skipping this cycle.
    rasdaemon_timeout_seconds: float = 2.0
    rasdaemon_latest_events: int = 5

    def __post_init__(self) -> None:
        positive("rasdaemon_timeout_seconds", self.rasdaemon_timeout_seconds)
        if not 0 <= self.rasdaemon_latest_events <= 1000:
            raise ValueError(
                f"rasdaemon_latest_events: must be 0..1000, got {self.rasdaemon_latest_events}"
            )


@dataclass(frozen=True)
class DimmErrors:
    key: str  # "mc0/dimm3", "mc0/rank2", or "mc0/csrow1/ch0" in the csrow layout
    label: str | None  # e.g. "CPU_SrcID#0_MC#0_Chan#1_DIMM#0"
    location: str | None  # e.g. "channel 1 slot 0"
    size_mib: int | None
    mem_type: str | None  # e.g. "Registered-DDR4"
    edac_mode: str | None  # e.g. "S4ECD4ED"
    ce_count: int | None
    ue_count: int | None  # None in the csrow layout: UEs are counted per csrow there
    ce_delta: int | None  # None on first sight or when a reading is missing
    ue_delta: int | None
    counter_reset: bool


@dataclass(frozen=True)
class MemoryController:
    key: str  # "mc0"
    mc_name: str | None  # e.g. "Skylake Socket#0 IMC#0"
    layout: Layout | None  # which per-DIMM directories were read; None if there are none
    size_mib: int | None
    seconds_since_reset: int | None
    ce_count: int
    ue_count: int
    ce_noinfo_count: int | None  # errors the driver could not attribute to a DIMM
    ue_noinfo_count: int | None
    ce_delta: int | None
    ue_delta: int | None
    counter_reset: bool
    dimms: tuple[DimmErrors, ...]


@dataclass(frozen=True)
class EdacReadings:
    controllers: tuple[MemoryController, ...]
    ce_count_total: int
    ue_count_total: int
    ce_delta_total: int | None  # over controllers with a known delta; None if none
    ue_delta_total: int | None
    rasdaemon: RasdaemonReadings | None  # None: no database, or unreadable this cycle
    unavailable: tuple[UnavailableDevice, ...]


def with_deltas(current: MemoryController, previous: MemoryController | None) -> MemoryController:
    """``current`` with deltas and reset flags against the previous reading.

    The controller was reset when its name changed (another driver), its uptime
    counter went down, or any of its counters went down; every DIMM counter then
    restarted too, even one that happens not to have gone down.
    """
    if previous is None:
        return current
    reset = (
        current.mc_name != previous.mc_name
        or went_down(previous.seconds_since_reset, current.seconds_since_reset)
        or any(went_down(getattr(previous, c), getattr(current, c)) for c in _CONTROLLER_COUNTERS)
    )
    ce = counter_delta(previous.ce_count, current.ce_count, reset=reset)
    ue = counter_delta(previous.ue_count, current.ue_count, reset=reset)
    before = {d.key: d for d in previous.dimms}
    dimms = tuple(_dimm_with_deltas(d, before.get(d.key), reset) for d in current.dimms)
    return dataclasses.replace(
        current,
        ce_delta=ce.delta,
        ue_delta=ue.delta,
        counter_reset=reset or ce.reset or ue.reset,
        dimms=dimms,
    )


def _dimm_with_deltas(current: DimmErrors, previous: DimmErrors | None, reset: bool) -> DimmErrors:
    if previous is None:
        return current
    ce = counter_delta(previous.ce_count, current.ce_count, reset=reset)
    ue = counter_delta(previous.ue_count, current.ue_count, reset=reset)
    return dataclasses.replace(
        current, ce_delta=ce.delta, ue_delta=ue.delta, counter_reset=ce.reset or ue.reset
    )


def csrow_channels(names: Iterable[str]) -> list[int]:
    """Channel numbers C of a csrow directory, from its ``ch<C>_ce_count`` files."""
    return sorted(int(match.group(1)) for match in map(_CSROW_CHANNEL.fullmatch, names) if match)


def _sum_known(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


@register("edac", EdacSettings, default_enabled=True)
class EdacCollector(Collector[EdacSettings]):
    """DRAM ECC corrected/uncorrected errors per memory controller and DIMM (EDAC)."""

    def __init__(
        self,
        context: CollectorContext,
        settings: EdacSettings,
        *,
        read: ReadBytes = read_bytes,
    ) -> None:
        super().__init__(context, settings)
        self._sysfs = SysfsReader(log, read)
        self._log = LogOnce(log)
        self._tracker = AvailabilityTracker("edac")
        self._previous: dict[str, MemoryController] = {}
        self._rasdaemon = RasdaemonReader(
            settings.rasdaemon_db,
            settings.rasdaemon_timeout_seconds,
            settings.rasdaemon_latest_events,
            log,
        )

    @property
    def edac_dir(self) -> Path:
        return self.context.sysfs_root / "devices" / "system" / "edac" / "mc"

    def collect(self, now: float) -> EdacReadings:
        failed: dict[str, str] = {}
        controllers = []
        for key, path in self._discover():
            raw = self._read_controller(key, path, failed)
            if raw is None:
                continue
            controller = with_deltas(raw, self._previous.get(key))
            self._previous[key] = controller
            controllers.append(controller)
        return EdacReadings(
            controllers=tuple(controllers),
            ce_count_total=sum(c.ce_count for c in controllers),
            ue_count_total=sum(c.ue_count for c in controllers),
            ce_delta_total=_sum_known([c.ce_delta for c in controllers]),
            ue_delta_total=_sum_known([c.ue_delta for c in controllers]),
            rasdaemon=self._rasdaemon.read(),
            unavailable=self._tracker.update([c.key for c in controllers], failed, now),
        )

    def _discover(self) -> list[tuple[str, Path]]:
        names = list_names(self.edac_dir)
        if names is None:
            self._log.problem(
                "no-edac", logging.DEBUG, "no EDAC memory controllers", path=str(self.edac_dir)
            )
            return []
        self._log.recovered("no-edac", "EDAC memory controllers appeared")
        return [(entry, self.edac_dir / entry) for _, entry in numbered_entries(names, "mc")]

    def _read_controller(
        self, key: str, path: Path, failed: dict[str, str]
    ) -> MemoryController | None:
        """The controller's counters, or None (and a reason in ``failed``) if unreadable."""
        counts: dict[str, int | None] = {}
        for counter in _CONTROLLER_COUNTERS:
            value = self._sysfs.integer(path / counter)
            if isinstance(value, Unreadable) and counter in ("ce_count", "ue_count"):
                failed[key] = f"{counter}: {value.reason}"
                return None
            counts[counter] = None if isinstance(value, Unreadable) else value
        ce, ue = counts["ce_count"], counts["ue_count"]
        if ce is None or ue is None:
            failed[key] = "no ce_count/ue_count"
            return None
        layout, dimms = self._read_dimms(key, path)
        return MemoryController(
            key=key,
            mc_name=self._sysfs.optional_text(path / "mc_name") or None,
            layout=layout,
            size_mib=self._sysfs.optional_int(path / "size_mb"),
            seconds_since_reset=self._sysfs.optional_int(path / "seconds_since_reset"),
            ce_count=ce,
            ue_count=ue,
            ce_noinfo_count=counts["ce_noinfo_count"],
            ue_noinfo_count=counts["ue_noinfo_count"],
            ce_delta=None,
            ue_delta=None,
            counter_reset=False,
            dimms=dimms,
        )

    def _read_dimms(self, key: str, path: Path) -> tuple[Layout | None, tuple[DimmErrors, ...]]:
        names = list_names(path) or []
        for layout in ("dimm", "rank"):
            entries = numbered_entries(names, layout)
            if entries:
                return layout, tuple(self._read_dimm(key, path / e, e) for _, e in entries)
        rows = numbered_entries(names, "csrow")
        if rows:
            return "csrow", tuple(d for _, e in rows for d in self._read_csrow(key, path / e, e))
        return None, ()

    def _read_dimm(self, mc_key: str, path: Path, entry: str) -> DimmErrors:
        text, number = self._sysfs.optional_text, self._sysfs.optional_int
        return DimmErrors(
            key=f"{mc_key}/{entry}",
            label=text(path / "dimm_label") or None,
            location=text(path / "dimm_location") or None,
            size_mib=number(path / "size"),
            mem_type=text(path / "dimm_mem_type") or None,
            edac_mode=text(path / "dimm_edac_mode") or None,
            ce_count=number(path / "dimm_ce_count"),
            ue_count=number(path / "dimm_ue_count"),
            ce_delta=None,
            ue_delta=None,
            counter_reset=False,
        )

    def _read_csrow(self, mc_key: str, path: Path, entry: str) -> list[DimmErrors]:
        """One entry per channel (the DIMM slot) of a chip-select row."""
        text, number = self._sysfs.optional_text, self._sysfs.optional_int
        mem_type = text(path / "mem_type") or None
        edac_mode = text(path / "edac_mode") or None
        return [
            DimmErrors(
                key=f"{mc_key}/{entry}/ch{channel}",
                label=text(path / f"ch{channel}_dimm_label") or None,
                location=f"{entry} channel {channel}",
                size_mib=None,
                mem_type=mem_type,
                edac_mode=edac_mode,
                ce_count=number(path / f"ch{channel}_ce_count"),
                ue_count=None,
                ce_delta=None,
                ue_delta=None,
                counter_reset=False,
            )
            for channel in csrow_channels(list_names(path) or [])
        ]

    @classmethod
    def summarize(cls, data: Any) -> list[str]:
        readings: EdacReadings = data
        lines = []
        for mc in readings.controllers:
            size = f" {mc.size_mib} MiB" if mc.size_mib is not None else ""
            reset = " COUNTER RESET" if mc.counter_reset else ""
            lines.append(
                f"{mc.key} ({mc.mc_name or '?'}{size}): CE {mc.ce_count}{_plus(mc.ce_delta)}"
                f" UE {mc.ue_count}{_plus(mc.ue_delta)}{reset}"
            )
            lines.extend(
                f"  {d.key} {d.label or '?'}: CE {d.ce_count}{_plus(d.ce_delta)}"
                f" UE {d.ue_count if d.ue_count is not None else '-'}{_plus(d.ue_delta)}"
                for d in mc.dimms
                if d.ce_count or d.ue_count
            )
        if readings.rasdaemon is not None:
            lines.append(_rasdaemon_line(readings.rasdaemon))
        lines.extend(
            f"{u.device}: UNAVAILABLE ({u.reason}) since {u.unavailable_since:.0f}"
            for u in readings.unavailable
        )
        return lines or ["no EDAC memory controllers"]


def _plus(delta: int | None) -> str:
    return f" (+{delta})" if delta is not None else ""


def _rasdaemon_line(ras: RasdaemonReadings) -> str:
    new = (
        f", new CE {ras.new.corrected_events} UE {ras.new.uncorrected_events}"
        if ras.new is not None
        else ""
    )
    last = ras.latest_events[0] if ras.latest_events else None
    latest = f", latest {last.err_type} on {last.label or '?'} at {last.timestamp}" if last else ""
    return (
        f"rasdaemon: {ras.total.corrected_events} CE / {ras.total.uncorrected_events} UE "
        f"events{new}{latest}"
    )


__all__ = [
    "DimmErrors",
    "EdacCollector",
    "EdacReadings",
    "EdacSettings",
    "EventCounts",
    "MemoryController",
    "MemoryErrorEvent",
    "RasdaemonReadings",
    "csrow_channels",
    "with_deltas",
]
