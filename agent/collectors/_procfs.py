"""Pure parsers for the procfs files the host collector reads itself, and psutil's root.

psutil reads CPU times and memory from ``psutil.PROCFS_PATH``; these files are parsed
here instead, each for a reason:

* ``loadavg``: psutil's ``getloadavg`` is ``os.getloadavg()``, a syscall that ignores
  ``PROCFS_PATH``, so a fixture root would report the test machine's load.
* ``uptime``: the kernel's own clock, used as the interval between two readings (as
  iostat does), so rates follow the counters even under a fixture root.
* ``diskstats`` and ``net/dev``: psutil fails the whole call on one line it does not
  understand (``ValueError``/``AssertionError``), and its disk totals consult
  ``/sys/block`` directly, which no root can redirect. Here a malformed line is skipped
  and reported, and every other disk and interface keeps its data.

Every parser takes text and returns typed records; it raises ``ValueError`` for a file
it cannot use at all, and lists the lines it skipped otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import psutil

# /proc/diskstats counts sectors of 512 bytes whatever the device's real sector size
# (include/linux/blk_types.h: SECTOR_SHIFT 9).
DISKSTATS_SECTOR_BYTES = 512

RowT = TypeVar("RowT")


def point_psutil_at(procfs_root: Path) -> None:
    """Make psutil read ``procfs_root`` instead of ``/proc``.

    ``psutil.PROCFS_PATH`` is a module global, not a per-call argument, so one process
    has exactly one procfs root: every collector that uses psutil sets it from its
    context before reading, and they all get the same root from the agent config. Two
    collectors with different roots in one process would race each other.
    """
    psutil.PROCFS_PATH = str(procfs_root)


@dataclass(frozen=True)
class SkippedLine:
    """A line of a table file that could not be parsed; the rest of the file still counts."""

    line_number: int  # 1-based, as an editor shows it
    text: str
    reason: str


@dataclass(frozen=True)
class ParsedTable(Generic[RowT]):
    """Rows of a per-device table file by device name, and the lines that were skipped."""

    rows: dict[str, RowT]
    skipped: tuple[SkippedLine, ...]


@dataclass(frozen=True)
class LoadAverage:
    """``/proc/loadavg``: run-queue length averaged over 1, 5 and 15 minutes."""

    load_1m: float
    load_5m: float
    load_15m: float
    runnable_tasks: int  # threads runnable right now
    total_tasks: int  # all threads (kernel scheduling entities)


def parse_loadavg(text: str) -> LoadAverage:
    """Parse ``0.84 0.45 0.23 3/100 8919``."""
    fields = text.split()
    if len(fields) != 5 or "/" not in fields[3]:
        raise ValueError(f"expected '<1m> <5m> <15m> <runnable>/<total> <last pid>', got {text!r}")
    runnable, _, total = fields[3].partition("/")
    return LoadAverage(
        load_1m=float(fields[0]),
        load_5m=float(fields[1]),
        load_15m=float(fields[2]),
        runnable_tasks=int(runnable),
        total_tasks=int(total),
    )


def parse_uptime(text: str) -> float:
    """Seconds since boot from ``/proc/uptime`` (``503.32 785.58``: uptime, idle sum)."""
    fields = text.split()
    if len(fields) != 2:
        raise ValueError(f"expected '<uptime> <idle>', got {text!r}")
    uptime = float(fields[0])
    if uptime < 0:
        raise ValueError(f"negative uptime {uptime}")
    return uptime


@dataclass(frozen=True)
class DiskStats:
    """One ``/proc/diskstats`` line: cumulative counters since the device appeared."""

    device: str
    reads: int
    read_sectors: int
    read_time_ms: int
    writes: int
    write_sectors: int
    write_time_ms: int
    in_flight: int  # I/Os in progress now (a gauge, not a counter)
    io_time_ms: int  # time the device had at least one I/O in flight

    @property
    def read_bytes(self) -> int:
        return self.read_sectors * DISKSTATS_SECTOR_BYTES

    @property
    def write_bytes(self) -> int:
        return self.write_sectors * DISKSTATS_SECTOR_BYTES


# Fields after "major minor name": 11 up to kernel 4.17, 15 since 4.18 (discards),
# 17 since 5.5 (flushes). Only the first 11 are read; all three layouts are accepted.
_DISKSTATS_FIELD_COUNTS = frozenset({11, 15, 17})


def parse_diskstats(text: str) -> ParsedTable[DiskStats]:
    """Parse ``/proc/diskstats``; lines of an unknown shape are skipped and listed.

    Partition lines of 2.6-era kernels (4 counters, no timings) are skipped too: without
    timings they cannot give latency or utilisation.
    """
    rows: dict[str, DiskStats] = {}
    skipped: list[SkippedLine] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 3 or len(fields) - 3 not in _DISKSTATS_FIELD_COUNTS:
            skipped.append(SkippedLine(number, line, f"unexpected field count {len(fields)}"))
            continue
        try:
            counters = [int(value) for value in fields[3:14]]
        except ValueError:
            skipped.append(SkippedLine(number, line, "non-integer counter"))
            continue
        if any(value < 0 for value in counters):
            skipped.append(SkippedLine(number, line, "negative counter"))
            continue
        rows[fields[2]] = DiskStats(
            device=fields[2],
            reads=counters[0],
            read_sectors=counters[2],
            read_time_ms=counters[3],
            writes=counters[4],
            write_sectors=counters[6],
            write_time_ms=counters[7],
            in_flight=counters[8],
            io_time_ms=counters[9],
        )
    return ParsedTable(rows, tuple(skipped))


@dataclass(frozen=True)
class NetDevStats:
    """One ``/proc/net/dev`` interface line: cumulative counters since the device appeared."""

    interface: str
    received_bytes: int
    received_packets: int
    receive_errors: int
    receive_drops: int
    sent_bytes: int
    sent_packets: int
    transmit_errors: int
    transmit_drops: int


_NET_DEV_COUNTERS = 16  # 8 receive + 8 transmit columns


def parse_net_dev(text: str) -> ParsedTable[NetDevStats]:
    """Parse ``/proc/net/dev`` (two header lines, then ``name: 16 counters`` per interface)."""
    rows: dict[str, NetDevStats] = {}
    skipped: list[SkippedLine] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or "|" in line:  # the two header lines
            continue
        name, colon, rest = line.rpartition(":")
        fields = rest.split()
        if not colon or not name.strip():
            skipped.append(SkippedLine(number, line, "no 'interface:' prefix"))
            continue
        if len(fields) != _NET_DEV_COUNTERS:
            skipped.append(SkippedLine(number, line, f"expected 16 counters, got {len(fields)}"))
            continue
        try:
            counters = [int(value) for value in fields]
        except ValueError:
            skipped.append(SkippedLine(number, line, "non-integer counter"))
            continue
        if any(value < 0 for value in counters):
            skipped.append(SkippedLine(number, line, "negative counter"))
            continue
        interface = name.strip()
        rows[interface] = NetDevStats(
            interface=interface,
            received_bytes=counters[0],
            received_packets=counters[1],
            receive_errors=counters[2],
            receive_drops=counters[3],
            sent_bytes=counters[8],
            sent_packets=counters[9],
            transmit_errors=counters[10],
            transmit_drops=counters[11],
        )
    return ParsedTable(rows, tuple(skipped))


__all__ = [
    "DISKSTATS_SECTOR_BYTES",
    "DiskStats",
    "LoadAverage",
    "NetDevStats",
    "ParsedTable",
    "SkippedLine",
    "parse_diskstats",
    "parse_loadavg",
    "parse_net_dev",
    "parse_uptime",
    "point_psutil_at",
]
