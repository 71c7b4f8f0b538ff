"""Pure parsers for loadavg, uptime, diskstats and net/dev (no I/O)."""

from __future__ import annotations

import pytest

from novacron.agent.collectors._procfs import (
    parse_diskstats,
    parse_loadavg,
    parse_net_dev,
    parse_uptime,
)
from tests.fixtures.procfs import NET_DEV_HEADER

# Real lines from three kernel generations (4.17-, 4.18+, 5.5+).
DISK_14 = "   8       0 sda 100 2 800 30 50 1 400 70 0 90 100"
DISK_18 = "   8       0 sda 100 2 800 30 50 1 400 70 0 90 100 4 0 64 5"
DISK_20 = " 259       0 nvme0n1 100 2 800 30 50 1 400 70 1 90 100 4 0 64 5 7 8"


def test_loadavg() -> None:
    load = parse_loadavg("0.84 0.45 0.23 3/100 8919\n")
    assert (load.load_1m, load.load_5m, load.load_15m) == (0.84, 0.45, 0.23)
    assert (load.runnable_tasks, load.total_tasks) == (3, 100)


@pytest.mark.parametrize("text", ["", "0.84 0.45", "0.84 0.45 0.23 3-100 8919", "a b c 1/2 3"])
def test_loadavg_malformed(text: str) -> None:
    with pytest.raises(ValueError):
        parse_loadavg(text)


def test_uptime() -> None:
    assert parse_uptime("503.32 785.58\n") == 503.32


@pytest.mark.parametrize("text", ["", "503.32", "-1.0 2.0", "x y"])
def test_uptime_malformed(text: str) -> None:
    with pytest.raises(ValueError):
        parse_uptime(text)


@pytest.mark.parametrize("line", [DISK_14, DISK_18, DISK_20])
def test_diskstats_every_kernel_layout(line: str) -> None:
    table = parse_diskstats(line + "\n")
    assert table.skipped == ()
    (disk,) = table.rows.values()
    assert (disk.reads, disk.read_sectors, disk.read_time_ms) == (100, 800, 30)
    assert (disk.writes, disk.write_sectors, disk.write_time_ms) == (50, 400, 70)
    assert disk.io_time_ms == 90
    assert disk.read_bytes == 800 * 512
    assert disk.write_bytes == 400 * 512


def test_diskstats_in_flight() -> None:
    assert parse_diskstats(DISK_20).rows["nvme0n1"].in_flight == 1


def test_diskstats_skips_malformed_lines_and_keeps_the_rest() -> None:
    text = "\n".join(
        [
            DISK_20,
            "   8      16 sdb 1 2 3",  # truncated
            "   8      32 sdc 1 2 3 4 5 6 7 8 9 ten 11 12 13 14 15 16 17",  # garbage
            "   7       0 loop0 1 0 -2 0 0 0 0 0 0 0 0 0 0 0 0 0 0",  # negative
            "   3       1 hda1 8 8 8 8",  # 2.6-era partition: no timings
            "",
            DISK_14.replace("sda", "sdd"),
        ]
    )
    table = parse_diskstats(text)
    assert sorted(table.rows) == ["nvme0n1", "sdd"]
    assert [(s.line_number, s.reason) for s in table.skipped] == [
        (2, "unexpected field count 6"),
        (3, "non-integer counter"),
        (4, "negative counter"),
        (5, "unexpected field count 7"),
    ]
    assert "sdb" in table.skipped[0].text


def test_net_dev() -> None:
    text = NET_DEV_HEADER + (
        "  eno1: 1000 10 1 2 0 0 0 5 2000 20 3 4 0 0 0 0\n"
        "    lo:    3245      30    0    0    0     0          0         0"
        "     3245      30    0    0    0     0       0          0\n"
    )
    table = parse_net_dev(text)
    assert table.skipped == ()
    eno1 = table.rows["eno1"]
    assert eno1.interface == "eno1"
    assert (eno1.received_bytes, eno1.received_packets) == (1000, 10)
    assert (eno1.receive_errors, eno1.receive_drops) == (1, 2)
    assert (eno1.sent_bytes, eno1.sent_packets) == (2000, 20)
    assert (eno1.transmit_errors, eno1.transmit_drops) == (3, 4)
    assert table.rows["lo"].sent_bytes == 3245


def test_net_dev_old_kernel_without_space_after_colon() -> None:
    table = parse_net_dev(NET_DEV_HEADER + "eth0:1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n")
    assert table.rows["eth0"].received_bytes == 1000


def test_net_dev_skips_malformed_lines_and_keeps_the_rest() -> None:
    text = NET_DEV_HEADER + (
        "  eno1: 1000 10 1 2 0 0 0 5 2000 20 3 4 0 0 0 0\n"
        "  eno2: 1000 10 1\n"
        "  eno3: 1000 10 1 2 0 0 0 5 2000 20 3 4 0 0 0 x\n"
        "garbage without a colon\n"
        "  eno4: 1 1 1 1 0 0 0 0 -1 1 1 1 0 0 0 0\n"
    )
    table = parse_net_dev(text)
    assert list(table.rows) == ["eno1"]
    assert [(s.line_number, s.reason) for s in table.skipped] == [
        (4, "expected 16 counters, got 3"),
        (5, "non-integer counter"),
        (6, "no 'interface:' prefix"),
        (7, "negative counter"),
    ]
