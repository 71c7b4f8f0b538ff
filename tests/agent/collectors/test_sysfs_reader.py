"""The shared sysfs attribute reader and the counter-delta rule (used by edac and hwmon)."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from novacron.agent.collectors._counters import CounterDelta, counter_delta, went_down
from novacron.agent.collectors._sysfs import (
    SysfsReader,
    Unreadable,
    list_names,
    numbered_entries,
    os_error_reason,
    parse_int,
)

LOGGER = logging.getLogger("novacron.agent.collectors.test")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42\n", 42),
        ("0\n", 0),
        ("-273150\n", -273150),
        ("  65261850 \n", 65261850),
        ("18287500", 18287500),
    ],
)
def test_parse_int_reads_decimal_sysfs_values(text: str, expected: int) -> None:
    assert parse_int(text) == expected


@pytest.mark.parametrize(
    "text", ["abc\n", "", "\n", "1.5\n", "0x10\n", "12 34\n", "1_000\n", "\u0663\n"]
)
def test_parse_int_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        parse_int(text)


@pytest.mark.parametrize(
    ("names", "prefix", "expected"),
    [
        (["mc10", "mc2", "mc0", "power", "uevent"], "mc", [(0, "mc0"), (2, "mc2"), (10, "mc10")]),
        (["hwmon1", "hwmon", "hwmonX", "hwmon0"], "hwmon", [(0, "hwmon0"), (1, "hwmon1")]),
        (
            ["thermal_zone1", "cooling_device0", "thermal_zone0"],
            "thermal_zone",
            [(0, "thermal_zone0"), (1, "thermal_zone1")],
        ),
        (["dimm0", "rank0"], "csrow", []),
    ],
)
def test_numbered_entries_sorts_by_number(
    names: list[str], prefix: str, expected: list[tuple[int, str]]
) -> None:
    assert numbered_entries(names, prefix) == expected


def test_os_error_reason_names_the_errno() -> None:
    assert os_error_reason(OSError(errno.EIO, "Input/output error")) == "EIO: Input/output error"
    assert os_error_reason(OSError(errno.ENODATA, "No data available")).startswith("ENODATA")


def test_list_names_of_a_missing_directory_is_none(tmp_path: Path) -> None:
    assert list_names(tmp_path / "nope") is None
    (tmp_path / "a").write_text("1\n")
    assert list_names(tmp_path) == ["a"]


def _failing_reader(failures: dict[str, int]) -> SysfsReader:
    def read(path: Path) -> bytes:
        if path.name in failures:
            code = failures[path.name]
            raise OSError(code, os.strerror(code))
        return path.read_bytes()

    return SysfsReader(LOGGER, read)


def test_reader_distinguishes_missing_unreadable_and_values(tmp_path: Path) -> None:
    (tmp_path / "temp1_input").write_text("45000\n")
    (tmp_path / "temp2_input").write_text("46000\n")
    (tmp_path / "temp3_input").write_text("47000\n")
    (tmp_path / "temp1_label").write_text("Package id 0\n")
    reader = _failing_reader({"temp2_input": errno.EIO, "temp3_input": errno.ENODATA})

    assert reader.integer(tmp_path / "temp1_input") == 45000
    assert reader.text(tmp_path / "temp1_label") == "Package id 0"
    assert reader.integer(tmp_path / "temp9_input") is None
    assert reader.integer(tmp_path / "temp2_input") == Unreadable("EIO: Input/output error")
    assert reader.integer(tmp_path / "temp3_input") == Unreadable("ENODATA: No data available")
    assert reader.optional_int(tmp_path / "temp2_input") is None
    assert reader.optional_text(tmp_path / "temp3_input") is None


@pytest.mark.parametrize("content", ["abc\n", "", "\n"])
def test_malformed_value_is_logged_once_then_recovery_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    path = tmp_path / "fan1_input"
    path.write_text(content)
    reader = SysfsReader(LOGGER)
    with caplog.at_level(logging.DEBUG, logger=LOGGER.name):
        first = reader.integer(path)
        second = reader.integer(path)
    assert isinstance(first, Unreadable) and first.reason.startswith("malformed value")
    assert second == first
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].getMessage() == "malformed sysfs value, skipped"
    assert warnings[0].path == str(path)  # type: ignore[attr-defined]

    path.write_text("1150\n")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=LOGGER.name):
        assert reader.integer(path) == 1150
    assert [r.getMessage() for r in caplog.records] == ["sysfs value well-formed again"]


@pytest.mark.parametrize(
    ("previous", "current", "reset", "expected"),
    [
        (None, 5, False, CounterDelta(None, False)),  # first sight
        (5, None, False, CounterDelta(None, False)),  # unreadable now
        (3, 5, False, CounterDelta(2, False)),
        (5, 5, False, CounterDelta(0, False)),
        (7, 2, False, CounterDelta(2, True)),  # went down: errors since the reset
        (7, 0, False, CounterDelta(0, True)),
        (3, 5, True, CounterDelta(5, True)),  # reset known from elsewhere
        (None, 5, True, CounterDelta(None, True)),
    ],
)
def test_counter_delta(
    previous: int | None, current: int | None, reset: bool, expected: CounterDelta
) -> None:
    result = counter_delta(previous, current, reset=reset)
    assert result == expected
    assert result.delta is None or result.delta >= 0


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [(None, 1, False), (1, None, False), (1, 1, False), (2, 1, True), (1, 2, False)],
)
def test_went_down(previous: int | None, current: int | None, expected: bool) -> None:
    assert went_down(previous, current) is expected
