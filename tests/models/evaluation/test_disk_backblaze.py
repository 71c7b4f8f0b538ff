"""``python -m novacron.models.evaluate disk-backblaze`` and the metric definitions."""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from novacron.models.card import bundled_card_path
from novacron.models.evaluation import disk_backblaze
from novacron.models.evaluation.metrics import (
    average_precision,
    best_f1_threshold,
    precision_recall_f1,
    subject_detection,
    wilson_interval,
)
from novacron.models.schema import DAY, DISK
from novacron.models.training.pipeline import Dataset
from tests.fixtures.backblaze import (
    REAL_FILE,
    SHARED_BACKBLAZE_DIR,
    drive_rows,
    write_backblaze_csv,
)

REPO = Path(__file__).resolve().parents[3]


def evaluate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "novacron.models.evaluate", "disk-backblaze", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )


# -- definitions on hand-made examples ----------------------------------------------

# (drive, day, flagged, failure day?) -- answers worked out by hand in the test below.
HAND_ROWS = [
    ("A", 1, 0, 0), ("A", 2, 1, 0), ("A", 3, 1, 0), ("A", 4, 0, 0), ("A", 5, 0, 1),
    ("B", 1, 0, 0), ("B", 2, 0, 0), ("B", 3, 0, 1), ("B", 4, 1, 0),
    ("C", 1, 1, 0), ("C", 2, 0, 0), ("C", 3, 0, 0),
    ("D", 1, 0, 0), ("D", 2, 0, 0), ("D", 3, 0, 0),
    ("E", 1, 0, 0), ("E", 2, 1, 1),
]  # fmt: skip


def hand_columns() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    subject, day, flag, event = zip(*HAND_ROWS, strict=True)
    return np.array(subject), np.array(day) * DAY, np.array(flag, bool), np.array(event, bool)


def test_drive_level_definitions_on_a_hand_made_example() -> None:
    result = subject_detection(*hand_columns())
    # A: flagged on day 2, fails day 5 -> detected, lead 3 days.
    # B: only flagged the day after its failure -> missed (fn), no false alarm either.
    # C: healthy, flagged -> false positive.  D: healthy, quiet -> true negative.
    # E: flagged on its failure day -> detected, lead 0.
    assert (result.tp, result.fp, result.fn, result.tn) == (2, 1, 1, 1)
    assert (result.subjects, result.positive, result.flagged) == (5, 3, 3)
    assert result.precision == pytest.approx(2 / 3) and result.recall == pytest.approx(2 / 3)
    assert result.f1 == pytest.approx(2 / 3)
    assert sorted(result.lead_times_seconds) == [0.0, 3 * DAY]


def test_disk_metrics_report_on_a_hand_made_example() -> None:
    subject, time, flag, event = hand_columns()
    y = np.array([0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    rows = Dataset(DISK, np.zeros((len(y), len(DISK.features))), y, time, subject)
    report = disk_backblaze.disk_metrics(rows, event, np.where(flag, 0.9, 0.1), 0.5)
    drive = report["drive_level"]
    assert (drive["tp"], drive["fp"], drive["fn"], drive["tn"]) == (2, 1, 1, 1)
    assert drive["lead_time_days"] == {"median": 1.5, "mean": 1.5, "min": 0.0, "max": 3.0}
    # 9 positive rows of 17. Rows at 0.9: 5 flagged, 3 of them positive (A2, A3, E2);
    # every other row at 0.1. PR-AUC = R(0.9) * P(0.9) + (1 - R(0.9)) * P(0.1).
    assert report["row_level"]["flagged_rows"] == 5
    assert report["row_level"]["positive_rows"] == 9
    assert report["row_level"]["pr_auc"] == pytest.approx(3 / 9 * 3 / 5 + 6 / 9 * 9 / 17)
    assert report["period"] == ["1970-01-02", "1970-01-06"]


def test_no_detection_has_no_lead_time() -> None:
    subject, time, _, event = hand_columns()
    result = subject_detection(subject, time, np.zeros(len(time), bool), event)
    assert (result.tp, result.fn, result.flagged, result.precision, result.f1) == (0, 3, 0, 0, 0)
    assert result.lead_times_seconds == ()


def test_average_precision_by_hand_and_against_scikit_learn() -> None:
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(0.5 + 1 / 3)
    # Tied scores are one threshold: (P 1/2, R 1/2) then (P 2/3, R 1).
    assert average_precision([1, 0, 1], [0.5, 0.5, 0.2]) == pytest.approx(0.25 + 1 / 3)
    assert np.isnan(average_precision([0, 0], [0.1, 0.2]))
    rng = np.random.default_rng(4)
    for _ in range(50):
        y = rng.integers(0, 2, 40)
        y[0] = 1
        score = rng.integers(0, 6, 40) / 5
        assert average_precision(y, score) == pytest.approx(average_precision_score(y, score))


def test_best_f1_threshold_by_hand() -> None:
    threshold, f1 = best_f1_threshold([1, 1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6, 0.1])
    assert f1 == pytest.approx(6 / 7)  # flag the top four: tp 3, fp 1, fn 0
    assert threshold == pytest.approx(0.35)  # halfway between 0.6 and the next score


def test_wilson_interval() -> None:
    # Reference values: statsmodels proportion_confint(..., method="wilson").
    assert wilson_interval(11, 15) == pytest.approx((0.480496, 0.891025), abs=1e-6)
    assert wilson_interval(0, 0) is None
    assert wilson_interval(5, 5) == pytest.approx((0.565518, 1.0), abs=1e-6)


def test_precision_recall_f1_without_denominators() -> None:
    assert precision_recall_f1(0, 0, 0) == (0.0, 0.0, 0.0)
    assert precision_recall_f1(1, 1, 3) == pytest.approx((0.5, 0.25, 1 / 3))


# -- the command, as a real subprocess ----------------------------------------------


def real_failure_days() -> dict[str, str]:
    with REAL_FILE.open(newline="") as handle:
        return {
            r["serial_number"]: r["date"] for r in csv.DictReader(handle) if r["failure"] == "1"
        }


def rescore(predictions: list[dict[str, str]], failure_day: dict[str, str]) -> dict[str, int]:
    """Drive-level counts recomputed from the predictions CSV alone, plain Python."""
    flagged_days: dict[str, list[str]] = defaultdict(list)
    for row in predictions:
        failed = failure_day.get(row["series_or_serial"])
        if row["flag"] == "1" and (failed is None or row["timestamp_or_date"] <= failed):
            flagged_days[row["series_or_serial"]].append(row["timestamp_or_date"])
    outcome = {(True, True): "tp", (False, True): "fp", (True, False): "fn", (False, False): "tn"}
    counts = dict.fromkeys(outcome.values(), 0)
    for drive in {row["series_or_serial"] for row in predictions}:
        counts[outcome[(drive in failure_day, bool(flagged_days[drive]))]] += 1
    return counts


def test_evaluate_command_json_and_predictions(tmp_path: Path) -> None:
    predictions_file = tmp_path / "f.csv"
    done = evaluate(
        "--data", str(SHARED_BACKBLAZE_DIR), "--json", "--predictions-out", str(predictions_file)
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report) >= {"model", "threshold", "drive_level", "row_level", "skipped_rows"}
    drive, row = report["drive_level"], report["row_level"]
    assert set(drive) >= {"precision", "recall", "f1", "lead_time_days", "tp", "fp", "fn", "tn"}
    assert set(drive["lead_time_days"]) >= {"median", "mean"}
    assert set(row) >= {"pr_auc", "rows", "positive_rows", "base_rate"}
    assert report["model"]["name"] == "disk-failure-7d" and report["horizon_days"] == 7
    assert (row["rows"], row["positive_rows"], report["skipped_rows"]) == (4403, 287, 0)
    assert (drive["drives"], drive["positive_drives"]) == (243, 43)
    assert report["period"] == ["2013-04-10", "2013-04-29"]
    assert row["pr_auc"] > row["base_rate"]

    with predictions_file.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == disk_backblaze.PREDICTION_COLUMNS
        predictions = list(reader)
    assert len(predictions) == 4403
    scores = np.array([float(p["score"]) for p in predictions])
    flags = np.array([p["flag"] == "1" for p in predictions])
    assert ((scores >= 0) & (scores <= 1)).all()
    np.testing.assert_array_equal(flags, scores >= report["threshold"])
    assert int(flags.sum()) == row["flagged_rows"]
    assert dt.date.fromisoformat(predictions[0]["timestamp_or_date"])
    counts = rescore(predictions, real_failure_days())
    assert counts == {k: drive[k] for k in ("tp", "fp", "fn", "tn")}


def test_evaluate_command_readable_output_and_skipped_rows(tmp_path: Path) -> None:
    rows = drive_rows("OK1", dt.date(2013, 4, 1), 5, fails=True) + drive_rows(
        "OK2", dt.date(2013, 4, 1), 5
    )
    rows[1] = {**rows[1], "smart_5_raw": "garbage"}
    write_backblaze_csv(tmp_path / "day.csv", rows)
    out = tmp_path / "p.csv"
    done = evaluate("--data", str(tmp_path), "--predictions-out", str(out))
    assert done.returncode == 0, done.stderr
    assert "precision" in done.stdout and "PR-AUC" in done.stdout and "lead time" in done.stdout
    assert "9 rows, 1 skipped" in done.stdout
    assert "smart_5_raw: not a number: 'garbage'" in done.stderr
    assert len(out.read_text().splitlines()) == 1 + 9


def test_evaluate_command_errors(tmp_path: Path) -> None:
    done = evaluate("--data", str(tmp_path / "missing"))
    assert done.returncode == 2 and "error: not a directory" in done.stderr
    card = tmp_path / "disk-failure-7d.card.json"
    shutil.copyfile(bundled_card_path("disk-failure-7d"), card)
    onnx = bytearray(
        (bundled_card_path("disk-failure-7d").parent / "disk-failure-7d.onnx").read_bytes()
    )
    onnx[-1] ^= 1
    (tmp_path / "disk-failure-7d.onnx").write_bytes(bytes(onnx))
    done = evaluate("--data", str(SHARED_BACKBLAZE_DIR), "--card", str(card))
    assert done.returncode == 2 and "does not match its card" in done.stderr
