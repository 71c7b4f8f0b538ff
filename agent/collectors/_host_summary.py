"""Human-readable lines for the host collector (``novacron-agent collect --once``).

The first collection has no rates yet (they need an interval), so its lines show the
cumulative totals since boot instead of a row of dashes.
"""

from __future__ import annotations

from novacron.agent.collectors._host_model import (
    DiskIO,
    HostReadings,
    MemoryUsage,
    NetIO,
    SwapUsage,
)
from novacron.agent.collectors._units import format_bytes, format_number


def summary_lines(data: HostReadings) -> list[str]:
    """One line for CPU, memory, swap and the system, one per disk and per interface."""
    lines = [_cpu_line(data), _memory_line(data.memory), _swap_line(data.swap)]
    lines += [_disk_line(disk) for disk in data.disks or ()]
    lines += [_net_line(net) for net in data.interfaces or ()]
    lines.append(_system_line(data))
    if data.interval_seconds is None:
        lines.append("rates: none yet (they need a second collection); totals are since boot")
    lines += [
        f"UNAVAILABLE {u.device}: {u.reason} (since {u.unavailable_since:.0f})"
        for u in data.unavailable
    ]
    return lines


def _percent(value: float | None) -> str:
    return format_number(value, 1, "%")


def _cpu_line(data: HostReadings) -> str:
    count = f"{len(data.per_cpu)} CPUs" if data.per_cpu is not None else "CPUs unknown"
    total = data.cpu_total
    if total is None:
        usage = "usage unknown"
    elif total.utilisation_percent is None:
        usage = "usage needs a second collection"
    else:
        usage = (
            f"{_percent(total.utilisation_percent)} busy, iowait {_percent(total.iowait_percent)}"
            f", steal {_percent(total.steal_percent)}"
        )
    load = data.load
    loads = f"load {load.load_1m:.2f} {load.load_5m:.2f} {load.load_15m:.2f}" if load else ""
    return f"cpu          {usage} ({count}); {loads or 'load unknown'}"


def _memory_line(memory: MemoryUsage | None) -> str:
    if memory is None:
        return "memory       unknown"
    return (
        f"memory       {format_bytes(memory.used_bytes)} used of "
        f"{format_bytes(memory.total_bytes)}, {format_bytes(memory.available_bytes)} available"
    )


def _swap_line(swap: SwapUsage | None) -> str:
    if swap is None:
        return "swap         unknown"
    used = f"swap         {format_bytes(swap.used_bytes)} used of {format_bytes(swap.total_bytes)}"
    if swap.swap_in_bytes_per_second is None or swap.swap_out_bytes_per_second is None:
        return (
            f"{used}, swapped in {format_bytes(swap.swapped_in_bytes)}, "
            f"out {format_bytes(swap.swapped_out_bytes)}"
        )
    return (
        f"{used}, in {format_bytes(swap.swap_in_bytes_per_second)}/s, "
        f"out {format_bytes(swap.swap_out_bytes_per_second)}/s"
    )


def _disk_line(disk: DiskIO) -> str:
    name = f"disk {disk.device:<8}"
    if disk.read_ops_per_second is None or disk.write_ops_per_second is None:
        return (
            f"{name}{disk.read_ops} reads {disk.write_ops} writes, "
            f"read {format_bytes(disk.read_bytes)} written {format_bytes(disk.write_bytes)}"
        )
    return (
        f"{name}{disk.read_ops_per_second:.1f} r/s {disk.write_ops_per_second:.1f} w/s, "
        f"read {format_bytes(disk.read_bytes_per_second)}/s "
        f"write {format_bytes(disk.write_bytes_per_second)}/s, "
        f"await {format_number(disk.await_ms, 2, ' ms')}, busy {_percent(disk.busy_percent)}"
    )


def _net_line(net: NetIO) -> str:
    name = f"net {net.interface:<9}"
    if net.received_bytes_per_second is None or net.sent_bytes_per_second is None:
        return (
            f"{name}rx {format_bytes(net.received_bytes)} tx {format_bytes(net.sent_bytes)}, "
            f"errors {net.receive_errors}/{net.transmit_errors}, "
            f"drops {net.receive_drops}/{net.transmit_drops}"
        )
    return (
        f"{name}rx {format_bytes(net.received_bytes_per_second)}/s "
        f"tx {format_bytes(net.sent_bytes_per_second)}/s, "
        f"errors {format_number(net.receive_errors_per_second)}/"
        f"{format_number(net.transmit_errors_per_second)} /s, "
        f"drops {format_number(net.receive_drops_per_second)}/"
        f"{format_number(net.transmit_drops_per_second)} /s"
    )


def _system_line(data: HostReadings) -> str:
    processes = "-" if data.process_count is None else str(data.process_count)
    rates = (
        f"{format_number(data.context_switches_per_second, 0)} context switches/s, "
        f"{format_number(data.interrupts_per_second, 0)} interrupts/s, "
        if data.interval_seconds is not None
        else ""
    )
    return f"system       {processes} processes, {rates}up {_duration(data.uptime_seconds)}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = int(seconds) // 60
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h {minutes}m"


__all__ = ["summary_lines"]
