"""disk-failure-7d training: leak-free time split, end to end on real data, parity."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from novacron.models.card import ModelCard, bundled_card_path
from novacron.models.runtime import OnnxModel
from novacron.models.schema import DAY, DISK
from novacron.models.training import disk_failure, pipeline
from novacron.models.training.datasets import backblaze
from novacron.models.training.export import max_abs_difference
from tests.fixtures.backblaze import REAL_FILE, SHARED_BACKBLAZE_DIR

CARD_FILE = f"{disk_failure.MODEL_NAME}.card.json"


@pytest.fixture(scope="module")
def real() -> backblaze.BackblazeData:
    return backblaze.load(SHARED_BACKBLAZE_DIR)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[disk_failure.TrainingRun, Path]:
    out = tmp_path_factory.mktemp("bundled")
    return disk_failure.run(SHARED_BACKBLAZE_DIR, out), out


def test_time_split_has_no_label_leakage(real: backblaze.BackblazeData) -> None:
    parts = disk_failure.split(real)
    train, test = parts.train, parts.test
    test_start = test.time.min()
    assert backblaze.timestamp_day(test_start).isoformat() == "2013-04-20"
    # Every training label looks at failure days d .. d+6, all before the test period.
    assert (train.time + disk_failure.HORIZON_SECONDS - DAY < test_start).all()
    positive_serials = set(train.subject[train.y == 1])
    assert all(real.failure_time[s] < test_start for s in positive_serials)
    # Pure time split: no row of the test period trains, no training row is tested.
    assert train.time.max() < test_start and (test.time >= parts.cutoff_time).all()
    assert len(train) == 941 and int(train.y.sum()) == 69
    assert len(test) == 2070 and int(real.is_failure_row(test).sum()) == 15


def test_calibration_bins_merge_thin_bins_and_cover_zero_to_one() -> None:
    score = np.repeat([0.01, 0.07, 0.15, 0.9], [50, 5, 30, 3])
    y = np.r_[np.repeat([0, 1], [49, 1]), [1, 1, 0, 0, 0], np.repeat([1, 0], [6, 24]), [1, 1, 0]]
    # [0.02, 0.05) is empty and [0.05, 0.1) has 5 rows: both merge forward into
    # [0.1, 0.2); the 3 rows in [0.75, 1] are too few for a last bin of their own.
    assert disk_failure.calibration_bins(score, y) == [
        [0.0, 0.02, 50, 1],
        [0.02, 1.0, 38, 10],
    ]


def test_monotonic_constraints_only_on_error_counters() -> None:
    constraints = dict(zip(DISK.feature_names, disk_failure.monotonic_constraints(), strict=True))
    assert constraints["reallocated_sectors_increase_168h"] == 1
    assert constraints["current_pending_sectors_max_168h"] == 1
    assert constraints["power_on_hours_last_24h"] == 0
    assert constraints["temperature_celsius_last_24h"] == 0


def test_training_end_to_end_on_real_data(
    trained: tuple[disk_failure.TrainingRun, Path],
) -> None:
    result, out = trained
    assert result.registered  # nothing in the empty directory to beat
    card = ModelCard.read(out / CARD_FILE)
    assert card.to_json() == result.card.to_json()
    assert (out / card.onnx_file).is_file()
    assert card.name == "disk-failure-7d" and card.kind == "failure"
    assert card.schema == DISK.version_tag and card.features == DISK.feature_names
    assert card.horizons_seconds == (7 * 86400,)
    assert card.metrics["training_seconds"] < 30
    held = card.metrics["held_out"]
    assert held["period"] == ["2013-04-20", "2013-04-29"]
    assert held["row_level"]["rows"] == 2070 and held["row_level"]["positive_rows"] == 76
    assert held["row_level"]["pr_auc"] > 2 * held["row_level"]["base_rate"]
    drive = held["drive_level"]
    assert drive["positive_drives"] == 15 and drive["tp"] + drive["fn"] == 15
    assert drive["recall"] > 0.5 and drive["precision"] > 0.3
    # Threshold, calibration and baseline come from the training period only.
    assert 0.0 < card.thresholds["alert"] < 1.0
    bins = card.calibration["bins"]
    assert bins[0][0] == 0.0 and bins[-1][1] == 1.0
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bins))
    assert sum(b[2] for b in bins) == 941 and sum(b[3] for b in bins) == 69
    assert len(card.extra["baseline"]) == len(DISK.features)
    data = card.training_data
    assert data["source"] == "Backblaze Drive Stats" and "not be sold" in data["licence"]
    assert data["rows"] == 4403 and data["date_range"] == ["2013-04-10", "2013-04-29"]
    assert data["files"] == [REAL_FILE.name]
    assert data["split"]["train_period"] == ["2013-04-10", "2013-04-13"]


def test_onnx_matches_sklearn_on_held_out_rows(
    trained: tuple[disk_failure.TrainingRun, Path],
) -> None:
    result, out = trained
    rows = result.split.test.filled()
    model = OnnxModel.load(out / CARD_FILE)
    expected = result.estimator.predict_proba(rows)
    assert max_abs_difference(model, expected, rows, "probabilities") < 1e-5
    assert result.card.metrics["onnx_sklearn_max_abs_difference"] < 1e-5


def test_shipped_model_is_what_the_command_produces(
    trained: tuple[disk_failure.TrainingRun, Path],
) -> None:
    """Parity of the *shipped* ONNX with scikit-learn: retraining (fixed seeds) rebuilds it."""
    result, _ = trained
    rows = result.split.test.filled()
    shipped = OnnxModel.load(bundled_card_path(disk_failure.MODEL_NAME))
    difference = max_abs_difference(
        shipped, result.estimator.predict_proba(rows), rows, "probabilities"
    )
    assert difference < 1e-5, "models/bundled is stale: retrain with --force"
    assert shipped.card.thresholds == result.card.thresholds


def test_not_registered_when_it_does_not_beat_the_current_model(
    trained: tuple[disk_failure.TrainingRun, Path],
) -> None:
    """The shipped model scores the same held-out rows as well: no replacement."""
    result, _ = trained
    shipped = bundled_card_path(disk_failure.MODEL_NAME)
    candidate = result.card.metrics["held_out"]["row_level"]["pr_auc"]
    current = disk_failure.current_pr_auc(shipped, result.split.test)
    assert current == pytest.approx(candidate, abs=1e-9)

    def score(path: Path) -> float:
        return disk_failure.current_pr_auc(path, result.split.test)

    assert not pipeline.register(result.card, candidate, shipped, score)
    assert pipeline.register(result.card, candidate + 0.01, shipped, score)


def test_command_reports_missing_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert disk_failure.main(["--data", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "not a directory" in capsys.readouterr().err
