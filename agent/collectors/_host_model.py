"""The host collector's readings, and how two raw snapshots become them (pure).

A :class:`HostSnapshot` is what one collection read: cumulative counters and gauges.
:func:`derive_readings` turns the previous and the current snapshot into
:class:`HostReadings` -- shares and per-second rates over the interval between them --
without any I/O, so every formula is tested on plain values.

The interval is the difference of ``/proc/uptime``, the kernel's own clock (as iostat
does), so rates match the counters they divide and also work under a fixture root. The
first collection, a reboot (uptime went back) or a counter reset give ``None`` rates,
never 0 and never negative.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

from novacron.agent.collectors._cpu_times import CpuTimes, CpuUsage, cpu_usage
from novacron.agent.collectors._procfs import DiskStats, LoadAverage, NetDevStats
from novacron.agent.collectors._rates import counter_rate
from novacron.agent.collectors.base import UnavailableDevice

T = TypeVar("T")
RowT = TypeVar("RowT")

_MS_PER_SECOND = 1000.0


@dataclass(frozen=True)
class MemoryUsage:
    """``/proc/meminfo`` as ``free`` shows it (psutil's ``virtual_memory``)."""

    total_bytes: int
    available_bytes: int  # MemAvailable: what new work can get without swapping
    used_bytes: int  # total - available
    free_bytes: int
    cached_bytes: int  # Cached + SReclaimable, as free(1)
    buffers_bytes: int


@dataclass(frozen=True)
class SwapUsage:
    total_bytes: int
    used_bytes: int
    # Cumulative since boot; None when /proc/vmstat is missing.
    swapped_in_bytes: int | None
    swapped_out_bytes: int | None
    swap_in_bytes_per_second: float | None
    swap_out_bytes_per_second: float | None


@dataclass(frozen=True)
class DiskIO:
    """One block device: cumulative counters, in-flight I/Os and rates over the interval."""

    device: str
    read_ops: int
    write_ops: int
    read_bytes: int
    write_bytes: int
    in_flight_ops: int
    read_ops_per_second: float | None
    write_ops_per_second: float | None
    read_bytes_per_second: float | None
    write_bytes_per_second: float | None
    # Mean time an I/O that completed in the interval took, queueing included
    # (iostat's r_await/w_await combined); None when no I/O completed.
    await_ms: float | None
    # Share of the interval with at least one I/O in flight (iostat's %util).
    busy_percent: float | None


@dataclass(frozen=True)
class NetIO:
    """One network interface: cumulative counters and rates over the interval."""

    interface: str
    received_bytes: int
    sent_bytes: int
    received_packets: int
    sent_packets: int
    receive_errors: int
    transmit_errors: int
    receive_drops: int
    transmit_drops: int
    received_bytes_per_second: float | None
    sent_bytes_per_second: float | None
    received_packets_per_second: float | None
    sent_packets_per_second: float | None
    receive_errors_per_second: float | None
    transmit_errors_per_second: float | None
    receive_drops_per_second: float | None
    transmit_drops_per_second: float | None


@dataclass(frozen=True)
class HostReadings:
    """One collection. A section is None when its source could not be read (logged)."""

    interval_seconds: float | None  # uptime since the previous collection
    uptime_seconds: float | None
    cpu_total: CpuUsage | None  # cpu == "all"
    per_cpu: tuple[CpuUsage, ...] | None
    load: LoadAverage | None
    context_switches_per_second: float | None
    interrupts_per_second: float | None
    process_count: int | None
    memory: MemoryUsage | None
    swap: SwapUsage | None
    disks: tuple[DiskIO, ...] | None
    interfaces: tuple[NetIO, ...] | None
    unavailable: tuple[UnavailableDevice, ...]


@dataclass(frozen=True)
class KernelEventCounts:
    """Cumulative counts since boot from ``/proc/stat`` (``ctxt`` and ``intr`` lines)."""

    context_switches: int
    interrupts: int


@dataclass(frozen=True)
class HostSnapshot:
    """The raw readings of one collection, kept to diff against the next one."""

    uptime_seconds: float | None = None
    cpu_total: CpuTimes | None = None
    per_cpu: tuple[CpuTimes, ...] | None = None
    kernel_events: KernelEventCounts | None = None
    load: LoadAverage | None = None
    process_count: int | None = None
    memory: MemoryUsage | None = None
    swap: SwapUsage | None = None  # rates not filled in yet
    disks: Mapping[str, DiskStats] | None = None
    interfaces: Mapping[str, NetDevStats] | None = None


def interval_between(previous: HostSnapshot | None, current: HostSnapshot) -> float | None:
    """Seconds of uptime between two snapshots; None first, after a reboot, or unknown."""
    if previous is None or previous.uptime_seconds is None or current.uptime_seconds is None:
        return None
    elapsed = current.uptime_seconds - previous.uptime_seconds
    return elapsed if elapsed > 0 else None


def _rate(previous: int | None, current: int, interval: float | None) -> float | None:
    return counter_rate(previous, current, interval or 0.0)


def disk_io(previous: DiskStats | None, current: DiskStats, interval: float | None) -> DiskIO:
    """Counters and rates of one disk; rates None without a previous reading or on reset."""

    def rate(counter: Callable[[DiskStats], int]) -> float | None:
        return _rate(None if previous is None else counter(previous), counter(current), interval)

    ops_rate = rate(lambda d: d.reads + d.writes)
    time_rate = rate(lambda d: d.read_time_ms + d.write_time_ms)
    busy_rate = rate(lambda d: d.io_time_ms)
    return DiskIO(
        device=current.device,
        read_ops=current.reads,
        write_ops=current.writes,
        read_bytes=current.read_bytes,
        write_bytes=current.write_bytes,
        in_flight_ops=current.in_flight,
        read_ops_per_second=rate(lambda d: d.reads),
        write_ops_per_second=rate(lambda d: d.writes),
        read_bytes_per_second=rate(lambda d: d.read_bytes),
        write_bytes_per_second=rate(lambda d: d.write_bytes),
        # delta(time) / delta(ops) == rate(time) / rate(ops): same interval.
        await_ms=time_rate / ops_rate if time_rate is not None and ops_rate else None,
        busy_percent=(
            min(busy_rate / _MS_PER_SECOND * 100.0, 100.0) if busy_rate is not None else None
        ),
    )


def net_io(previous: NetDevStats | None, current: NetDevStats, interval: float | None) -> NetIO:
    """Counters and rates of one interface; rates None without a previous reading or on reset."""

    def rate(counter: Callable[[NetDevStats], int]) -> float | None:
        return _rate(None if previous is None else counter(previous), counter(current), interval)

    return NetIO(
        interface=current.interface,
        received_bytes=current.received_bytes,
        sent_bytes=current.sent_bytes,
        received_packets=current.received_packets,
        sent_packets=current.sent_packets,
        receive_errors=current.receive_errors,
        transmit_errors=current.transmit_errors,
        receive_drops=current.receive_drops,
        transmit_drops=current.transmit_drops,
        received_bytes_per_second=rate(lambda n: n.received_bytes),
        sent_bytes_per_second=rate(lambda n: n.sent_bytes),
        received_packets_per_second=rate(lambda n: n.received_packets),
        sent_packets_per_second=rate(lambda n: n.sent_packets),
        receive_errors_per_second=rate(lambda n: n.receive_errors),
        transmit_errors_per_second=rate(lambda n: n.transmit_errors),
        receive_drops_per_second=rate(lambda n: n.receive_drops),
        transmit_drops_per_second=rate(lambda n: n.transmit_drops),
    )


def _per_cpu_usage(
    previous: tuple[CpuTimes, ...] | None, current: tuple[CpuTimes, ...]
) -> tuple[CpuUsage, ...]:
    # psutil numbers CPUs by their position in /proc/stat, and an offline CPU has no line:
    # when the count changes the positions no longer match, so no shares this time.
    matched = previous if previous is not None and len(previous) == len(current) else None
    return tuple(
        cpu_usage(f"cpu{index}", None if matched is None else matched[index], times)
        for index, times in enumerate(current)
    )


def _swap_usage(
    previous: SwapUsage | None, current: SwapUsage, interval: float | None
) -> SwapUsage:
    def rate(counter: Callable[[SwapUsage], int | None]) -> float | None:
        now = counter(current)
        before = None if previous is None else counter(previous)
        return None if now is None else _rate(before, now, interval)

    return replace(
        current,
        swap_in_bytes_per_second=rate(lambda s: s.swapped_in_bytes),
        swap_out_bytes_per_second=rate(lambda s: s.swapped_out_bytes),
    )


def _devices(
    previous: Mapping[str, RowT] | None,
    current: Mapping[str, RowT] | None,
    derive: Callable[[RowT | None, RowT, float | None], T],
    interval: float | None,
) -> tuple[T, ...] | None:
    if current is None:
        return None
    before = previous or {}
    return tuple(derive(before.get(name), current[name], interval) for name in sorted(current))


def derive_readings(
    previous: HostSnapshot | None,
    current: HostSnapshot,
    unavailable: tuple[UnavailableDevice, ...] = (),
) -> HostReadings:
    """Turn two consecutive snapshots into readings with shares and rates (pure)."""
    interval = interval_between(previous, current)
    before = previous or HostSnapshot()
    events, events_before = current.kernel_events, before.kernel_events

    def event_rate(counter: Callable[[KernelEventCounts], int]) -> float | None:
        if events is None:
            return None
        return _rate(
            None if events_before is None else counter(events_before), counter(events), interval
        )

    return HostReadings(
        interval_seconds=interval,
        uptime_seconds=current.uptime_seconds,
        cpu_total=(
            cpu_usage("all", before.cpu_total, current.cpu_total)
            if current.cpu_total is not None
            else None
        ),
        per_cpu=(
            _per_cpu_usage(before.per_cpu, current.per_cpu) if current.per_cpu is not None else None
        ),
        load=current.load,
        context_switches_per_second=event_rate(lambda e: e.context_switches),
        interrupts_per_second=event_rate(lambda e: e.interrupts),
        process_count=current.process_count,
        memory=current.memory,
        swap=_swap_usage(before.swap, current.swap, interval) if current.swap else None,
        disks=_devices(before.disks, current.disks, disk_io, interval),
        interfaces=_devices(before.interfaces, current.interfaces, net_io, interval),
        unavailable=unavailable,
    )


__all__ = [
    "CpuUsage",
    "DiskIO",
    "HostReadings",
    "HostSnapshot",
    "KernelEventCounts",
    "LoadAverage",
    "MemoryUsage",
    "NetIO",
    "SwapUsage",
    "derive_readings",
    "disk_io",
    "interval_between",
    "net_io",
]
