"""Pure parsers for the NUMA layout in ``/sys/devices/system/node/node<N>/``.

Placement pins large VMs inside one NUMA node when it can, so the inventory needs each
node's CPUs, memory and distances. The kernel writes them as:

* ``cpulist``: CPU ranges, ``0-3,8-11`` (empty for a memory-only node, e.g. CXL memory);
* ``meminfo``: ``Node 0 MemTotal:       32768000 kB`` among other lines;
* ``distance``: relative access cost to every node in order, ``10 21`` (10 = local).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_MEM_TOTAL = re.compile(r"^Node\s+(\d+)\s+MemTotal:\s+(\d+)\s+kB\s*$", re.MULTILINE)
_KIB = 1024


@dataclass(frozen=True)
class NumaNode:
    """One NUMA node; a field is None when its sysfs file is missing or malformed."""

    node: int
    cpus: tuple[int, ...] | None
    memory_total_bytes: int | None
    distances: tuple[int, ...] | None  # to node 0, 1, ... in order; 10 means local


def parse_cpulist(text: str) -> tuple[int, ...]:
    """``"0-3,8-11"`` -> ``(0, 1, 2, 3, 8, 9, 10, 11)``; ``""`` -> ``()``.

    Raises ValueError for anything that is not a comma-separated list of numbers and
    ascending ``a-b`` ranges.
    """
    cpus: set[int] = set()
    stripped = text.strip()
    if not stripped:
        return ()
    for part in stripped.split(","):
        first, dash, last = part.partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(f"malformed CPU list item {part!r} in {stripped!r}")
        start, end = int(first), int(last) if dash else int(first)
        if end < start:
            raise ValueError(f"descending CPU range {part!r} in {stripped!r}")
        cpus.update(range(start, end + 1))
    return tuple(sorted(cpus))


def format_cpulist(cpus: Iterable[int]) -> str:
    """The inverse of :func:`parse_cpulist`: ``(0, 1, 2, 3, 8)`` -> ``"0-3,8"``."""
    ranges: list[list[int]] = []
    for cpu in sorted(set(cpus)):
        if ranges and cpu == ranges[-1][1] + 1:
            ranges[-1][1] = cpu
        else:
            ranges.append([cpu, cpu])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges)


def parse_node_mem_total(text: str, node: int) -> int:
    """Bytes of ``Node <node> MemTotal`` in a node's ``meminfo``; ValueError if absent."""
    for match in _MEM_TOTAL.finditer(text):
        if int(match.group(1)) == node:
            return int(match.group(2)) * _KIB
    raise ValueError(f"no 'Node {node} MemTotal: <n> kB' line")


def parse_distances(text: str) -> tuple[int, ...]:
    """``"10 21"`` -> ``(10, 21)``; ValueError when empty or not all integers."""
    fields = text.split()
    if not fields:
        raise ValueError("empty distance list")
    return tuple(int(field) for field in fields)


__all__ = ["NumaNode", "format_cpulist", "parse_cpulist", "parse_distances", "parse_node_mem_total"]
