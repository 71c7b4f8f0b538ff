"""Event/point metric definitions, the NAB loader and ``python -m novacron.models.evaluate nab``."""

from __future__ import annotations

import csv
import json
import logging
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from novacron.models.card import bundled_card_path
from novacron.models.evaluation import nab as nab_eval
from novacron.models.evaluation.event_metrics import (
    WindowCounts,
    count_runs,
    total,
    window_counts,
)
from novacron.models.runtime import OnnxModel
from novacron.models.series import many_model_inputs
from novacron.models.training.datasets import nab

REPO = Path(__file__).resolve().parents[3]
FIXTURE = REPO / "tests" / "fixtures" / "nab"


def evaluate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "novacron.models.evaluate", "nab", "--workers", "1", *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
        check=False,
    )


# -- definitions on hand-made examples ----------------------------------------------


def flags_at(n: int, *rows: int) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[list(rows)] = True
    return out


def test_event_point_and_adjusted_metrics_on_a_hand_made_series() -> None:
    times = np.arange(20.0)
    # Window rows 5..9. Flags: 2,3 (one run outside -> ONE false positive), 7 (inside:
    # the window is detected), 12 and 14 (two separate runs -> two false positives).
    counts = window_counts(times, flags_at(20, 2, 3, 7, 12, 14), [(5.0, 9.0)])
    assert (counts.windows, counts.detected_windows, counts.false_positive_runs) == (1, 1, 3)
    assert (counts.positive_rows, counts.flagged_rows, counts.true_positive_rows) == (5, 5, 1)
    event, point, adjusted = counts.event_prf(), counts.point_prf(), counts.adjusted_point_prf()
    assert event == pytest.approx((1 / 4, 1.0, 0.4))  # 1 TP window, 3 FP runs
    assert point == pytest.approx((1 / 5, 1 / 5, 1 / 5))  # 1 of 5 flags inside, 1 of 5 rows
    # Point adjustment: the detected window's 5 rows all count: tp 5, fp 4, fn 0.
    assert adjusted == pytest.approx((5 / 9, 1.0, 2 * (5 / 9) / (5 / 9 + 1)))
    assert counts.summary()["flagged_share_outside_windows"] == pytest.approx(4 / 15)


def test_many_flags_inside_one_window_are_one_detection() -> None:
    counts = window_counts(np.arange(10.0), flags_at(10, 3, 4, 5, 6), [(2.0, 7.0)])
    assert (counts.detected_windows, counts.false_positive_runs) == (1, 0)
    assert counts.event_prf() == (1.0, 1.0, 1.0)
    assert counts.point_prf()[0] == 1.0 and counts.point_prf()[1] == pytest.approx(4 / 6)


def test_a_run_reaching_into_a_window_detects_it_and_its_outside_part_is_one_fp() -> None:
    counts = window_counts(np.arange(12.0), flags_at(12, 3, 4, 5, 6), [(5.0, 9.0)])
    assert (counts.detected_windows, counts.false_positive_runs) == (1, 1)


def test_missed_windows_and_silence() -> None:
    quiet = window_counts(np.arange(10.0), np.zeros(10, bool), [(1.0, 2.0), (6.0, 7.0)])
    assert (quiet.windows, quiet.detected_windows, quiet.false_positive_runs) == (2, 0, 0)
    assert quiet.event_prf() == (0.0, 0.0, 0.0)  # no division by zero
    assert quiet.adjusted_point_prf() == (0.0, 0.0, 0.0)
    no_windows = window_counts(np.arange(6.0), flags_at(6, 0, 1, 4), [])
    assert (no_windows.windows, no_windows.false_positive_runs) == (0, 2)
    assert no_windows.event_prf() == (0.0, 0.0, 0.0)


def test_windows_without_rows_are_not_counted_and_ignored_rows_count_neither_way() -> None:
    times = np.array([0.0, 10.0, 20.0, 30.0, 40.0])
    # The window (12, 15) holds no row: no detector could see it.
    counts = window_counts(times, flags_at(5, 4), [(12.0, 15.0), (38.0, 45.0)])
    assert (counts.windows, counts.detected_windows) == (1, 1)
    ignored = window_counts(times, flags_at(5, 1, 2), [(38.0, 45.0)], ignore=[(5.0, 25.0)])
    assert (ignored.rows, ignored.false_positive_runs, ignored.windows) == (3, 0, 1)


def test_counts_add_over_subjects_before_ratios() -> None:
    a = window_counts(np.arange(5.0), flags_at(5, 1), [(0.0, 2.0)])  # 1/1, no FP
    b = window_counts(np.arange(5.0), flags_at(5, 4), [(0.0, 2.0)])  # 0/1, 1 FP
    both = total([a, b])
    assert isinstance(both, WindowCounts)
    assert (both.subjects, both.windows, both.detected_windows) == (2, 2, 1)
    assert both.event_prf() == pytest.approx((0.5, 0.5, 0.5))
    assert count_runs(np.array([1, 1, 0, 1, 0, 0, 1], bool)) == 3


# -- NAB files -----------------------------------------------------------------------


def test_parse_series_skips_malformed_rows_with_a_log_line(caplog) -> None:
    text = (
        "timestamp,value\n2014-04-01 00:05:00,2.5\n2014-04-01 00:00:00,1.5\n"
        "not a time,3\n2014-04-01 00:10:00,abc\n2014-04-01 00:15:00,inf\n"
        "2014-04-01 00:20:00,1,2\n"
    )
    with caplog.at_level(logging.WARNING):
        stamps, times, values = nab.parse_series(text, "x.csv")
    assert stamps == ("2014-04-01 00:00:00", "2014-04-01 00:05:00")  # time-ordered
    assert values.tolist() == [1.5, 2.5]
    assert times[1] - times[0] == 300.0
    assert times[0] == 1396310400.0  # naive NAB timestamps are UTC
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4 and all("x.csv" in m for m in messages)
    assert any("x.csv:4" in m for m in messages) and any("x.csv:7" in m for m in messages)
    with pytest.raises(ValueError, match="header"):
        nab.parse_series("time,val\n", "y.csv")


def test_parse_windows_and_its_errors() -> None:
    windows = nab.parse_windows(
        '{"a/b.csv": [["2014-04-10 07:15:00.000000", "2014-04-11 16:45:00.000000"]], "a/c.csv": []}'
    )
    assert windows["a/c.csv"] == ()
    ((start, end),) = windows["a/b.csv"]
    assert end - start == pytest.approx(33.5 * 3600)
    with pytest.raises(ValueError, match="ends before"):
        nab.parse_windows('{"a": [["2014-04-11 00:00:00", "2014-04-10 00:00:00"]]}')
    with pytest.raises(ValueError, match="object"):
        nab.parse_windows("[]")


def test_load_leaves_out_a_missing_series_with_a_log_line(tmp_path: Path, caplog) -> None:
    shutil.copytree(FIXTURE, tmp_path / "nab")
    (tmp_path / "nab" / "data" / "realTraffic" / "speed_7578.csv").unlink()
    with caplog.at_level(logging.WARNING):
        series = nab.load(tmp_path / "nab")
    assert [s.key for s in series] == [
        "artificialNoAnomaly/art_noisy.csv",
        "realAdExchange/exchange-2_cpc_results.csv",
        "realTraffic/TravelTime_451.csv",
    ]
    assert "realTraffic/speed_7578.csv" in caplog.text
    tuning, held_out = nab.split(nab.load(FIXTURE))
    assert [s.key for s in held_out] == ["realTraffic/speed_7578.csv"]
    assert len(tuning) == 3


# -- the command, as a real subprocess ------------------------------------------------


def test_evaluate_nab_on_real_series_matches_its_own_predictions(tmp_path: Path) -> None:
    predictions = tmp_path / "predictions.csv"
    result = evaluate(
        "--data", str(FIXTURE), "--json", "--predictions-out", str(predictions), "--workers", "2"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    card = OnnxModel.load(bundled_card_path("series-anomaly")).card
    assert report["model"]["name"] == "series-anomaly"
    assert report["model"]["sha256"] == card.sha256
    assert report["threshold"] == card.thresholds["warning"]
    assert (report["series"], report["points"]) == (4, 4032 + 1624 + 2162 + 1127)

    # Every row is in the predictions file with flag = score >= threshold ...
    with predictions.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["series_or_serial", "timestamp_or_date", "score", "flag"]
    assert len(rows) == report["points"]
    by_series: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        assert int(row["flag"]) == int(float(row["score"]) >= report["threshold"])
        by_series[row["series_or_serial"]].append(row)

    # ... its scores are the shipped model's on the features of the raw series ...
    series = {s.key: s for s in nab.load(FIXTURE)}
    model = OnnxModel.load(bundled_card_path("series-anomaly"))
    output = next(iter(card.outputs))
    inputs = many_model_inputs([(s.times, s.values) for s in series.values()], workers=2)
    counts = {}
    for (key, s), x in zip(series.items(), inputs, strict=True):
        expected = model.run(x)[output].ravel()
        got = np.array([float(r["score"]) for r in by_series[key]])
        assert [r["timestamp_or_date"] for r in by_series[key]] == list(s.stamps)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
        flags = np.array([r["flag"] == "1" for r in by_series[key]])
        counts[key] = window_counts(s.times, flags, s.windows)

    # ... and the printed metrics are exactly the definitions applied to those flags.
    assert report["overall"] == total(list(counts.values())).summary()
    assert (
        report["categories"]["realTraffic"]
        == total(
            [counts["realTraffic/TravelTime_451.csv"], counts["realTraffic/speed_7578.csv"]]
        ).summary()
    )
    # Held out = not in the card's tuning list (made on the full NAB set): both traffic series.
    assert set(card.training_data["tuning_series"]) & set(series) == {
        "artificialNoAnomaly/art_noisy.csv",
        "realAdExchange/exchange-2_cpc_results.csv",
    }
    assert report["held_out"] == report["categories"]["realTraffic"]
    assert report["overall"]["windows"] == 6
    baseline = report["flag_every_point_baseline"]
    assert (
        baseline
        == total(
            [
                window_counts(s.times, np.ones(len(s.times), bool), s.windows)
                for s in series.values()
            ]
        ).summary()
    )
    assert baseline["event_recall"] == 1.0


def test_evaluate_nab_prints_a_table(tmp_path: Path) -> None:
    small = tmp_path / "nab"
    (small / "data" / "realTraffic").mkdir(parents=True)
    key = "realTraffic/speed_7578.csv"
    shutil.copy(FIXTURE / "data" / key, small / "data" / key)
    windows = json.loads((FIXTURE / "combined_windows.json").read_text())
    (small / "combined_windows.json").write_text(json.dumps({key: windows[key]}))
    result = evaluate("--data", str(small))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("model   series-anomaly ")
    assert "(1 series, 1127 points)" in out
    for label in ("realTraffic", "all", "held out (not tuned on)", "baseline: flag every point"):
        assert f"\n{label}" in out
    assert "\ntuning series" not in out  # none of these series was tuned on
    assert "consecutive flags outside all windows = one FP" in out


def test_evaluate_nab_fails_cleanly(tmp_path: Path) -> None:
    missing = evaluate("--data", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no such directory" in missing.stderr
    (tmp_path / "empty").mkdir()
    no_windows = evaluate("--data", str(tmp_path / "empty"))
    assert no_windows.returncode == 2 and "combined_windows.json" in no_windows.stderr
    models = tmp_path / "models"
    shutil.copytree(bundled_card_path("series-anomaly").parent, models)
    onnx_file = models / "series-anomaly.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes() + b"tampered")
    tampered = evaluate("--data", str(FIXTURE), "--card", str(models / "series-anomaly.card.json"))
    assert tampered.returncode == 2 and "sha256" in tampered.stderr


def test_run_is_the_module_behind_the_dispatcher() -> None:
    from novacron.models import evaluate as dispatcher

    assert dispatcher.DATASETS["nab"][0] == nab_eval.__name__
    assert callable(nab_eval.add_arguments) and callable(nab_eval.run)
