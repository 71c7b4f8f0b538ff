"""Pure parsers for the NUMA files in /sys/devices/system/node/node<N>/ (no I/O)."""

from __future__ import annotations

import pytest

from novacron.agent.collectors._numa import (
    format_cpulist,
    parse_cpulist,
    parse_distances,
    parse_node_mem_total,
)

# A real node1 meminfo (Linux 6.1, two-socket server), trimmed in the middle.
NODE1_MEMINFO = """\
Node 1 MemTotal:       65943276 kB
Node 1 MemFree:        40012312 kB
Node 1 MemUsed:        25930964 kB
Node 1 SwapCached:            0 kB
Node 1 Active:         12345678 kB
Node 1 KReclaimable:     556240 kB
Node 1 HugePages_Total:     0
Node 1 HugePages_Free:      0
Node 1 HugePages_Surp:      0
"""


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("", ()),
        ("\n", ()),
        ("0", (0,)),
        ("0\n", (0,)),
        ("0-3", (0, 1, 2, 3)),
        ("0-3,8-11\n", (0, 1, 2, 3, 8, 9, 10, 11)),
        ("0,2,4", (0, 2, 4)),
        ("5-5", (5,)),
        ("8-9,0-1", (0, 1, 8, 9)),
        ("0-1,1-2", (0, 1, 2)),
        ("0-63,128-191", (*range(64), *range(128, 192))),
    ],
)
def test_parse_cpulist(text: str, cpus: tuple[int, ...]) -> None:
    assert parse_cpulist(text) == cpus


@pytest.mark.parametrize("text", ["a", "0-", "-3", "3-1", "0,,1", "0-3-5", "0 - 3", "1.5", "0x3"])
def test_parse_cpulist_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="CPU"):
        parse_cpulist(text)


@pytest.mark.parametrize(
    ("cpus", "text"),
    [
        ((), ""),
        ((0,), "0"),
        ((0, 1, 2, 3), "0-3"),
        ((0, 1, 2, 3, 8, 9, 10, 11), "0-3,8-11"),
        ((0, 2, 4), "0,2,4"),
        ((3, 1, 2, 2), "1-3"),
        ((0, 1, 5, 7, 8), "0-1,5,7-8"),
    ],
)
def test_format_cpulist(cpus: tuple[int, ...], text: str) -> None:
    assert format_cpulist(cpus) == text
    assert parse_cpulist(text) == tuple(sorted(set(cpus)))


def test_parse_node_mem_total() -> None:
    assert parse_node_mem_total(NODE1_MEMINFO, 1) == 65_943_276 * 1024


@pytest.mark.parametrize(
    ("text", "node"),
    [
        (NODE1_MEMINFO, 0),  # another node's file
        ("", 1),
        ("Node 1 MemTotal: lots kB\n", 1),
        ("Node 1 MemTotal: 123 MB\n", 1),
    ],
)
def test_parse_node_mem_total_rejects(text: str, node: int) -> None:
    with pytest.raises(ValueError, match="MemTotal"):
        parse_node_mem_total(text, node)


@pytest.mark.parametrize(
    ("text", "distances"),
    [("10\n", (10,)), ("10 21\n", (10, 21)), ("10 16 16 16\n", (10, 16, 16, 16))],
)
def test_parse_distances(text: str, distances: tuple[int, ...]) -> None:
    assert parse_distances(text) == distances


@pytest.mark.parametrize("text", ["", "\n", "10 far"])
def test_parse_distances_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_distances(text)
