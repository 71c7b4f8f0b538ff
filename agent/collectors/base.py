"""The collector contract: one class per telemetry source, registered by name.

Modelled on node_exporter: every source lives in its own module, registers a name, a
default on/off switch and a settings dataclass, and is switched in the agent config
(``[collectors.<name>] enabled = false``). A collector returns a typed, immutable
dataclass of readings with fixed units in the field names and ``None`` for "not
available on this machine". It never raises for a missing source: no GPU, no EDAC
driver or no libvirtd is "no data". It raises only for its own breakage, and the runner
turns that into a failed :class:`CollectorReport` while the other collectors go on.

Raw reading (files, subprocesses, libraries) and parsing are kept apart: parsers take
text/bytes/dicts and are tested without I/O; collectors do the I/O.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from novacron.protos.runtime.jsonlog import LogOnce

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CollectorSettings:
    """Settings every collector has; subclasses add their own fields (with defaults)."""

    enabled: bool = True
    # Poll at most this often; between polls the runner reports the last reading with
    # its own collection time. None: every cycle. Slow-changing, costly sources (SMART:
    # one subprocess per disk) set a default of their own.
    interval_seconds: float | None = None


SettingsT = TypeVar("SettingsT", bound=CollectorSettings)


@dataclass(frozen=True)
class CollectorContext:
    """What a collector may know about the node: injectable roots, so tests use fixtures."""

    sysfs_root: Path = Path("/sys")
    procfs_root: Path = Path("/proc")


@dataclass(frozen=True)
class UnavailableDevice:
    """A device that was seen before and now gives no data.

    Silence is data: a disk that stops answering SMART is itself a failure signal, so
    it stays in the sample, explicitly marked, instead of silently shortening a list.
    """

    device: str
    unavailable_since: float  # unix seconds of the first collection that missed it
    reason: str


class AvailabilityTracker:
    """Remember every device a collector has seen and report the ones now missing.

    ``update`` takes the keys that gave data this cycle and the keys that failed (with
    a reason); a key seen earlier that is in neither list vanished from discovery.
    The first miss sets ``unavailable_since``; data again clears it (and logs once).
    """

    def __init__(self, collector: str) -> None:
        self._collector = collector
        self._known: set[str] = set()
        self._since: dict[str, float] = {}
        self._log = LogOnce(logging.getLogger(f"novacron.agent.collectors.{collector}"))

    def update(
        self, present: Iterable[str], failed: dict[str, str], now: float
    ) -> tuple[UnavailableDevice, ...]:
        present = set(present)
        self._known |= present | set(failed)
        out: list[UnavailableDevice] = []
        for key in sorted(self._known):
            if key in present:
                if self._since.pop(key, None) is not None:
                    self._log.recovered(
                        key, "device gives data again", collector=self._collector, device=key
                    )
                continue
            reason = failed.get(key, "no longer discovered")
            since = self._since.setdefault(key, now)
            self._log.problem(
                key,
                logging.WARNING,
                "device unavailable",
                collector=self._collector,
                device=key,
                reason=reason,
            )
            out.append(UnavailableDevice(device=key, unavailable_since=since, reason=reason))
        return tuple(out)

    def forget(self, keys: Iterable[str]) -> None:
        """Stop tracking ``keys``: their absence is expected, not silence.

        For sources where leaving is normal and observable (a VM undefined or migrated
        away is no longer listed by libvirt at all), so the list of known devices does
        not grow for ever on a busy hypervisor.
        """
        for key in keys:
            self._known.discard(key)
            self._since.pop(key, None)


class Collector(ABC, Generic[SettingsT]):
    """One telemetry source. Subclasses set ``name`` and implement :meth:`collect`."""

    name: ClassVar[str]

    def __init__(self, context: CollectorContext, settings: SettingsT) -> None:
        self.context = context
        self.settings = settings

    @abstractmethod
    def collect(self, now: float) -> Any:
        """Read the source once and return this collector's frozen readings dataclass.

        ``now`` is the cycle's unix time, used for "unavailable since" bookkeeping.
        """

    def close(self) -> None:
        """Release connections or libraries (called on shutdown)."""

    @classmethod
    def summarize(cls, data: Any) -> list[str]:
        """Human-readable lines for ``novacron-agent collect --once`` (one per device)."""
        return [repr(data)]


@dataclass(frozen=True)
class CollectorInfo:
    name: str
    factory: Callable[[CollectorContext, Any], Collector[Any]]
    settings_type: type[CollectorSettings]
    default_enabled: bool
    description: str


_REGISTRY: dict[str, CollectorInfo] = {}

CollectorT = TypeVar("CollectorT", bound=type[Collector[Any]])


def register(
    name: str,
    settings_type: type[CollectorSettings] = CollectorSettings,
    default_enabled: bool = True,
) -> Callable[[CollectorT], CollectorT]:
    """Class decorator: make a collector known under ``name``."""

    def decorate(cls: CollectorT) -> CollectorT:
        if name in _REGISTRY and _REGISTRY[name].factory is not cls:
            raise RuntimeError(f"collector {name!r} registered twice")
        cls.name = name
        doc = (cls.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = CollectorInfo(
            name, cls, settings_type, default_enabled, doc[0] if doc else ""
        )
        return cls

    return decorate


def registry() -> dict[str, CollectorInfo]:
    """All registered collectors, after importing every collector module."""
    from novacron.agent import collectors  # noqa: F401 - imports register everything

    return dict(_REGISTRY)


def default_settings(info: CollectorInfo) -> CollectorSettings:
    return info.settings_type(enabled=info.default_enabled)


__all__ = [
    "AvailabilityTracker",
    "Collector",
    "CollectorContext",
    "CollectorInfo",
    "CollectorSettings",
    "UnavailableDevice",
    "default_settings",
    "register",
    "registry",
]
