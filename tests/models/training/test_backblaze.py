"""Backblaze loader: exact CSV format, labels at the 7-day boundary, agent-equal features."""

from __future__ import annotations

import csv
import datetime as dt
import logging
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from novacron.models.schema import DAY, DISK
from novacron.models.training.datasets import backblaze
from novacron.models.windows import FeatureWindows
from tests.fixtures.backblaze import (
    REAL_FILE,
    SHARED_BACKBLAZE_DIR,
    drive_rows,
    write_backblaze_csv,
)

NAN = math.nan
START = dt.date(2013, 4, 1)
# The column -> signal mapping, written out independently of the loader's table.
SPEC = {
    "reallocated_sectors": "smart_5_raw",
    "reported_uncorrect": "smart_187_raw",
    "command_timeout": "smart_188_raw",
    "current_pending_sectors": "smart_197_raw",
    "offline_uncorrectable": "smart_198_raw",
    "udma_crc_errors": "smart_199_raw",
    "power_on_hours": "smart_9_raw",
    "temperature_celsius": "smart_194_raw",
}
# A failing drive, 10 days, failure on 2013-04-10: reallocated counter with a reset
# (10 -> 2 on day 7), pending sectors coming and going, one unreported value.
HAND_REALLOCATED = [0, 0, 4, 4, 10, 10, 10, 2, 3, 3]
HAND_PENDING: list[float | None] = [0, 0, 0, 8, 8, 0, 0, 0, 5, None]
HAND_TEMPERATURE = [30] * 9 + [41]


def column(name: str) -> int:
    return DISK.feature_names.index(name)


def hand_drive() -> list[dict[str, object]]:
    return drive_rows(
        "HAND1",
        START,
        10,
        fails=True,
        smart={
            "smart_5_raw": HAND_REALLOCATED,
            "smart_197_raw": HAND_PENDING,
            "smart_194_raw": HAND_TEMPERATURE,
        },
    )


@pytest.fixture
def hand_data(tmp_path: Path) -> backblaze.BackblazeData:
    rows = hand_drive() + drive_rows("HEALTHY1", START, 10)
    write_backblaze_csv(tmp_path / "2013-04.csv", rows)
    return backblaze.load(tmp_path)


def drive(data: backblaze.BackblazeData, serial: str) -> tuple[np.ndarray, np.ndarray]:
    rows = data.dataset.subject == serial
    return data.dataset.x[rows], data.dataset.y[rows]


def test_synthetic_file_matches_the_real_format(tmp_path: Path) -> None:
    path = write_backblaze_csv(tmp_path / "a.csv", drive_rows("X", START, 1))
    assert path.read_bytes().split(b"\r\n")[0] == REAL_FILE.read_bytes().split(b"\r\n")[0]


def test_hand_computed_features(hand_data: backblaze.BackblazeData) -> None:
    x, _ = drive(hand_data, "HAND1")
    assert x.shape == (10, len(DISK.features))
    np.testing.assert_array_equal(x[:, column("reallocated_sectors_last_24h")], HAND_REALLOCATED)
    # Cumulative increase (a drop is a reset: +2 on day 7) over rows d-6 .. d.
    np.testing.assert_array_equal(
        x[:, column("reallocated_sectors_increase_168h")],
        [NAN, 0, 4, 4, 10, 10, 10, 12, 9, 9],
    )
    np.testing.assert_array_equal(
        x[:, column("current_pending_sectors_last_24h")], [0, 0, 0, 8, 8, 0, 0, 0, 5, NAN]
    )
    np.testing.assert_array_equal(
        x[:, column("current_pending_sectors_max_168h")], [0, 0, 0, 8, 8, 8, 8, 8, 8, 8]
    )
    np.testing.assert_array_equal(
        x[:, column("power_on_hours_last_24h")], [10000 + 24 * i for i in range(10)]
    )
    np.testing.assert_array_equal(x[:, column("temperature_celsius_last_24h")], HAND_TEMPERATURE)
    for name in ("reported_uncorrect_last_24h", "offline_uncorrectable_increase_168h"):
        assert np.isnan(x[:, column(name)]).all()  # empty in the CSV = not reported


def test_features_equal_feature_windows_replay(hand_data: backblaze.BackblazeData) -> None:
    windows = FeatureWindows(DISK, interval_hint_seconds=DAY)
    expected = []
    for i in range(10):
        now = dt.datetime.combine(START + dt.timedelta(days=i), dt.time(), dt.UTC).timestamp()
        windows.add(
            now,
            {
                "reallocated_sectors": HAND_REALLOCATED[i],
                "current_pending_sectors": HAND_PENDING[i],
                "power_on_hours": 10000 + 24 * i,
                "temperature_celsius": HAND_TEMPERATURE[i],
            },
        )
        expected.append(windows.features(now))
    np.testing.assert_array_equal(drive(hand_data, "HAND1")[0], np.array(expected))


def test_label_boundary_is_seven_days_including_the_failure_day(
    hand_data: backblaze.BackblazeData,
) -> None:
    _, y = drive(hand_data, "HAND1")
    # Failure on 04-10: 04-04 (6 days before) .. 04-10 positive, 04-03 (7 days) negative.
    assert y.tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 1, 1]
    assert drive(hand_data, "HEALTHY1")[1].sum() == 0
    failure = hand_data.failure_time["HAND1"]
    assert backblaze.timestamp_day(failure) == dt.date(2013, 4, 10)
    assert hand_data.is_failure_row().sum() == 1


def test_gap_in_a_drives_days_uses_time_not_row_count(tmp_path: Path) -> None:
    rows = drive_rows("GAP1", START, 10, smart={"smart_5_raw": range(0, 100, 10)})
    write_backblaze_csv(tmp_path / "g.csv", [rows[0], rows[1], rows[9]])
    x, _ = drive(backblaze.load(tmp_path), "GAP1")
    # Day 9 sees no other row within 7 days: no increase, only its own level.
    assert x[2, column("reallocated_sectors_last_24h")] == 90
    assert np.isnan(x[2, column("reallocated_sectors_increase_168h")])
    assert x[1, column("reallocated_sectors_increase_168h")] == 10


def test_rows_are_ordered_by_serial_then_date_across_files(tmp_path: Path) -> None:
    rows = drive_rows("B", START, 4) + drive_rows("A", START, 4)
    write_backblaze_csv(tmp_path / "2.csv", rows[2:4] + rows[6:])
    write_backblaze_csv(tmp_path / "1.csv", rows[:2] + rows[4:6])
    data = backblaze.load(tmp_path)
    assert data.files == ("1.csv", "2.csv")
    assert data.dataset.subject.tolist() == ["A"] * 4 + ["B"] * 4
    assert np.all(np.diff(data.dataset.time[:4]) == DAY)


def test_malformed_rows_are_logged_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = drive_rows("GOOD", START, 3)
    bad = [
        {**good[0], "date": "2013-13-01"},
        {**good[0], "serial_number": " "},
        {**good[0], "failure": "2"},
        {**good[0], "smart_5_raw": "abc"},
        {**good[0], "smart_9_raw": "inf"},
        {**good[0], "date": "2013-04-20"},  # fine row, then mangled below
        good[0],  # duplicate of GOOD's first day
    ]
    path = write_backblaze_csv(tmp_path / "m.csv", good + bad)
    lines = path.read_bytes().split(b"\r\n")
    lines[9] = lines[9].rsplit(b",", 3)[0]  # too few fields
    lines.insert(10, lines[1] + b",extra")  # too many fields (and a duplicate)
    path.write_bytes(b"\r\n".join(lines))
    with caplog.at_level(logging.WARNING, logger=backblaze.__name__):
        data = backblaze.load(tmp_path)
    assert len(data.dataset) == 3 and set(data.dataset.subject) == {"GOOD"}
    assert data.skipped_rows == 8
    messages = [(r.getMessage(), getattr(r, "line", None)) for r in caplog.records]
    text = " | ".join(m for m, _ in messages)
    for reason in (
        "bad date '2013-13-01'",
        "empty serial_number",
        "failure must be 0 or 1, got '2'",
        "smart_5_raw: not a number: 'abc'",
        "smart_9_raw: not finite: 'inf'",
        "wrong number of fields",
        "duplicate row",
    ):
        assert reason in text, reason
    assert (f"backblaze: {path}:5: skipping malformed row: bad date '2013-13-01'", 5) in messages


def test_file_without_required_columns_is_skipped_with_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_backblaze_csv(tmp_path / "ok.csv", drive_rows("OK", START, 2))
    (tmp_path / "other.csv").write_text("when,what\r\n2013-04-01,x\r\n")
    with caplog.at_level(logging.ERROR, logger=backblaze.__name__):
        data = backblaze.load(tmp_path)
    assert data.dataset.subject.tolist() == ["OK", "OK"]
    assert "lacks required columns" in caplog.text
    assert any(
        getattr(r, "missing", None) == ["date", "serial_number", "failure"] for r in caplog.records
    )


def test_absent_smart_column_reads_as_not_reported(tmp_path: Path) -> None:
    (tmp_path / "few.csv").write_text(
        "date,serial_number,failure,smart_5_raw\r\n2013-04-01,S,0,7\r\n2013-04-02,S,1,9\r\n"
    )
    data = backblaze.load(tmp_path)
    x = data.dataset.x
    assert x[:, column("reallocated_sectors_last_24h")].tolist() == [7, 9]
    assert np.isnan(x[:, column("temperature_celsius_last_24h")]).all()
    assert data.dataset.y.tolist() == [1, 1]


def test_missing_or_empty_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no \*\.csv"):
        backblaze.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        backblaze.load(tmp_path / "nope")


# -- the real shared sample ---------------------------------------------------------


@pytest.fixture(scope="module")
def real() -> backblaze.BackblazeData:
    return backblaze.load(SHARED_BACKBLAZE_DIR)


def read_real_rows() -> list[dict[str, str]]:
    with REAL_FILE.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_real_file_counts(real: backblaze.BackblazeData) -> None:
    assert real.files == (REAL_FILE.name,)
    assert len(real.dataset) == 4403 and real.skipped_rows == 0
    assert len(np.unique(real.dataset.subject)) == 243
    assert len(real.failure_time) == 43
    assert real.dataset.x.shape == (4403, len(DISK.features))


def test_real_labels_follow_the_seven_day_definition(real: backblaze.BackblazeData) -> None:
    rows = read_real_rows()
    failure_day = {r["serial_number"]: r["date"] for r in rows if r["failure"] == "1"}
    expected = {}
    for r in rows:
        day = dt.date.fromisoformat(r["date"])
        fails = failure_day.get(r["serial_number"])
        ahead = (dt.date.fromisoformat(fails) - day).days if fails else -1
        expected[(r["serial_number"], r["date"])] = int(0 <= ahead <= 6)
    got = {
        (str(s), backblaze.timestamp_day(float(t)).isoformat()): int(y)
        for s, t, y in zip(real.dataset.subject, real.dataset.time, real.dataset.y, strict=True)
    }
    assert got == expected
    assert sum(expected.values()) == 287


def test_real_drive_features_equal_the_agents_windows(real: backblaze.BackblazeData) -> None:
    serial = "9VS38KDD"  # fails 2013-04-25 with growing errors and missing days
    days: dict[str, dict[str, float | None]] = defaultdict(dict)
    for r in read_real_rows():
        if r["serial_number"] == serial:
            days[r["date"]] = {s: float(r[c]) if r[c] else None for s, c in SPEC.items()}
    windows = FeatureWindows(DISK, interval_hint_seconds=DAY)
    expected = []
    for day in sorted(days):
        now = backblaze.day_timestamp(dt.date.fromisoformat(day))
        windows.add(now, days[day])
        expected.append(windows.features(now))
    got = real.dataset.x[real.dataset.subject == serial]
    assert len(got) == 12
    np.testing.assert_array_equal(got, np.array(expected))
    assert np.nanmax(got[:, column("current_pending_sectors_max_168h")]) == 194
