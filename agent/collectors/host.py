"""Host collector: CPU, load, memory, swap, disk I/O and network of the hypervisor itself.

The node-level load signals placement and anomaly models need: how busy the CPUs were
over the last interval (and how much of it was I/O wait or steal), memory headroom,
swap activity, and per-disk and per-interface throughput, latency and errors.

Sources: psutil for CPU times, context switches, memory, swap and the process count,
pointed at ``context.procfs_root`` through ``psutil.PROCFS_PATH`` (see
:func:`~._procfs.point_psutil_at`: one process has one procfs root). ``loadavg``,
``uptime``, ``diskstats`` and ``net/dev`` are parsed by :mod:`._procfs`, which says why
psutil is not used for them.

This module does the I/O; :mod:`._host_model` turns two snapshots into readings with
rates (pure), :mod:`._host_summary` renders them. A source that cannot be read gives a
``None`` section and one log line; a disk or interface that disappears is reported in
``unavailable``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psutil

from novacron.agent.collectors._cpu_times import CpuTimes, CpuUsage
from novacron.agent.collectors._host_model import (
    DiskIO,
    HostReadings,
    HostSnapshot,
    KernelEventCounts,
    MemoryUsage,
    NetIO,
    SwapUsage,
    derive_readings,
)
from novacron.agent.collectors._host_summary import summary_lines
from novacron.agent.collectors._procfs import (
    LoadAverage,
    ParsedTable,
    parse_diskstats,
    parse_loadavg,
    parse_net_dev,
    parse_uptime,
    point_psutil_at,
)
from novacron.agent.collectors.base import (
    AvailabilityTracker,
    Collector,
    CollectorContext,
    CollectorSettings,
    register,
)
from novacron.protos.runtime.jsonlog import LogOnce

log = logging.getLogger(__name__)

T = TypeVar("T")
RowT = TypeVar("RowT")

# node_exporter's default: RAM disks, loop devices, floppies and partitions. A
# partition's I/O is already counted in its disk, and loop/ram devices are not hardware.
NODE_EXPORTER_DISK_EXCLUDE = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$"


def _check_pattern(name: str, pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{name}: not a valid regular expression: {exc}") from None


def _compile(pattern: str) -> re.Pattern[str] | None:
    return re.compile(pattern) if pattern else None


@dataclass(frozen=True)
class HostSettings(CollectorSettings):
    # Devices whose name matches (re.search) are left out; "" keeps every device.
    disk_exclude_pattern: str = NODE_EXPORTER_DISK_EXCLUDE
    # Loopback traffic says nothing about the host's network health.
    interface_exclude_pattern: str = r"^lo$"

    def __post_init__(self) -> None:
        _check_pattern("disk_exclude_pattern", self.disk_exclude_pattern)
        _check_pattern("interface_exclude_pattern", self.interface_exclude_pattern)


def _read_memory() -> MemoryUsage:
    memory = psutil.virtual_memory()
    return MemoryUsage(
        total_bytes=memory.total,
        available_bytes=memory.available,
        used_bytes=memory.used,
        free_bytes=memory.free,
        cached_bytes=memory.cached,
        buffers_bytes=memory.buffers,
    )


def _read_kernel_events() -> KernelEventCounts:
    stats = psutil.cpu_stats()
    if stats.ctx_switches is None or stats.interrupts is None:
        raise ValueError("no 'ctxt' or 'intr' line")
    return KernelEventCounts(context_switches=stats.ctx_switches, interrupts=stats.interrupts)


@register("host", HostSettings, default_enabled=True)
class HostCollector(Collector[HostSettings]):
    """Host CPU, load, memory, swap, disk I/O and network (psutil and procfs)."""

    def __init__(self, context: CollectorContext, settings: HostSettings) -> None:
        super().__init__(context, settings)
        self._log = LogOnce(log)
        self._availability = AvailabilityTracker("host")
        self._previous: HostSnapshot | None = None
        self._disk_exclude = _compile(settings.disk_exclude_pattern)
        self._interface_exclude = _compile(settings.interface_exclude_pattern)
        self._seen: dict[str, set[str]] = {"disk": set(), "net": set()}

    def collect(self, now: float) -> HostReadings:
        point_psutil_at(self.context.procfs_root)
        current = self.snapshot()
        unavailable = self._availability.update(self._present(current), self._failed(current), now)
        readings = derive_readings(self._previous, current, unavailable)
        self._previous = current
        return readings

    def snapshot(self) -> HostSnapshot:
        """Read every source once; a source that fails gives None for its section only."""
        root = self.context.procfs_root
        return HostSnapshot(
            uptime_seconds=self._section(
                "uptime", "uptime", lambda: parse_uptime(_text(root, "uptime"))
            ),
            cpu_total=self._section(
                "cpu", "stat", lambda: CpuTimes.from_psutil(psutil.cpu_times())
            ),
            per_cpu=self._section(
                "per_cpu",
                "stat",
                lambda: tuple(CpuTimes.from_psutil(t) for t in psutil.cpu_times(percpu=True)),
            ),
            kernel_events=self._section("kernel_events", "stat", _read_kernel_events),
            load=self._section("load", "loadavg", lambda: parse_loadavg(_text(root, "loadavg"))),
            process_count=self._section("process_count", ".", lambda: len(psutil.pids())),
            memory=self._section("memory", "meminfo", _read_memory),
            swap=self._section("swap", "meminfo", self._read_swap),
            disks=self._section(
                "disks",
                "diskstats",
                lambda: self._table("diskstats", parse_diskstats, self._disk_exclude),
            ),
            interfaces=self._section(
                "interfaces",
                "net/dev",
                lambda: self._table("net/dev", parse_net_dev, self._interface_exclude),
            ),
        )

    def _section(self, section: str, source: str, read: Callable[[], T]) -> T | None:
        """Run one reader; log a failure once (and its recovery) and give None."""
        path = str(self.context.procfs_root / source)
        try:
            value = read()
        except FileNotFoundError:
            # /proc always has these files on Linux: a missing one means procfs_root
            # points somewhere wrong, which the operator needs to see.
            self._log.problem(
                section, logging.WARNING, "host source missing", section=section, path=path
            )
            return None
        except Exception as exc:  # one broken source must not cost the other sections
            self._log.problem(
                section,
                logging.WARNING,
                "host source unreadable or malformed",
                section=section,
                path=path,
                error=f"{type(exc).__name__}: {exc}",
            )
            return None
        self._log.recovered(section, "host source readable again", section=section, path=path)
        return value

    def _read_swap(self) -> SwapUsage:
        swap = psutil.swap_memory()
        # Without vmstat psutil reports sin/sout as 0, which would read as "no swapping".
        has_vmstat = (self.context.procfs_root / "vmstat").is_file()
        if not has_vmstat:
            self._log.problem(
                "vmstat",
                logging.WARNING,
                "host source missing",
                section="swap",
                path=str(self.context.procfs_root / "vmstat"),
            )
        else:
            self._log.recovered("vmstat", "host source readable again", section="swap")
        return SwapUsage(
            total_bytes=swap.total,
            used_bytes=swap.used,
            swapped_in_bytes=swap.sin if has_vmstat else None,
            swapped_out_bytes=swap.sout if has_vmstat else None,
            swap_in_bytes_per_second=None,
            swap_out_bytes_per_second=None,
        )

    def _table(
        self,
        source: str,
        parse: Callable[[str], ParsedTable[RowT]],
        exclude: re.Pattern[str] | None,
    ) -> dict[str, RowT]:
        """Parse a per-device table file, log its skipped lines once, drop excluded devices."""
        path = self.context.procfs_root / source
        table = parse(_text(self.context.procfs_root, source))
        key = f"{source}:malformed"
        if table.skipped:
            self._log.problem(
                key,
                logging.WARNING,
                "malformed lines skipped",
                path=str(path),
                lines=[f"{s.line_number}: {s.text.strip()} ({s.reason})" for s in table.skipped],
            )
        else:
            self._log.recovered(key, "no malformed lines any more", path=str(path))
        return {
            name: row
            for name, row in table.rows.items()
            if exclude is None or not exclude.search(name)
        }

    def _present(self, snapshot: HostSnapshot) -> set[str]:
        present = {f"disk:{name}" for name in snapshot.disks or {}}
        present |= {f"net:{name}" for name in snapshot.interfaces or {}}
        self._seen["disk"] |= {k for k in present if k.startswith("disk:")}
        self._seen["net"] |= {k for k in present if k.startswith("net:")}
        return present

    def _failed(self, snapshot: HostSnapshot) -> dict[str, str]:
        failed: dict[str, str] = {}
        if snapshot.disks is None:
            failed.update(dict.fromkeys(self._seen["disk"], "diskstats unreadable"))
        if snapshot.interfaces is None:
            failed.update(dict.fromkeys(self._seen["net"], "net/dev unreadable"))
        return failed

    @classmethod
    def summarize(cls, data: HostReadings) -> list[str]:
        return summary_lines(data)


def _text(root: Path, name: str) -> str:
    return (root / name).read_text(encoding="utf-8", errors="replace")


__all__ = [
    "NODE_EXPORTER_DISK_EXCLUDE",
    "CpuUsage",
    "DiskIO",
    "HostCollector",
    "HostReadings",
    "HostSettings",
    "LoadAverage",
    "MemoryUsage",
    "NetIO",
    "SwapUsage",
]
