"""Tiny scikit-learn models exported with the project's own ``export``, for agent tests.

A few dozen shallow trees trained in well under a second on synthetic rows around each
feature's neutral fill, with the failure drivers and anomaly features the tests poke:
node failure (30 min and 24 h), disk failure (7 days), node and VM anomaly. Cards carry
what the agent's scorer needs (calibration bins, alert threshold, baseline, median/MAD).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.tree import DecisionTreeRegressor

from novacron.models.schema import DAY, DISK, MINUTE, NODE, VM, Schema
from novacron.models.training.export import export
from novacron.models.training.fuse import refresh

NODE_BINS = [[0.0, 0.1, 400, 8], [0.1, 0.5, 60, 15], [0.5, 1.0, 20, 15]]
FAILURE_OUTPUTS = {"probabilities": "(n, 2); column 1 = P(failure within the horizon)"}
ANOMALY_OUTPUTS = {"variable": "(n, 1) anomaly score, higher = more anomalous"}


@dataclass(frozen=True)
class TinyModels:
    directory: Path
    estimators: dict[str, Any]  # model name -> the scikit-learn estimator
    median: dict[str, npt.NDArray[np.float64]]  # anomaly model name -> card median
    mad: dict[str, npt.NDArray[np.float64]]


def column(schema: Schema, feature: str) -> int:
    return schema.feature_names.index(feature)


def _rows(schema: Schema, n: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """Synthetic rows around each feature's neutral fill."""
    fills = np.asarray(schema.fills())
    spread = np.maximum(np.abs(fills) * 0.2, 1.0)
    return np.asarray(fills + rng.normal(size=(n, len(fills))) * spread, dtype=np.float32)


def _failure_rows(
    schema: Schema, drivers: dict[str, float], base_rate: float, rng: np.random.Generator
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int_]]:
    """Each driver feature high adds to the failure odds (additive, so occluding one
    driver lowers the probability and attribution has something to find)."""
    x = _rows(schema, 800, rng)
    on = np.zeros(len(x))
    for feature, high in drivers.items():
        hot = rng.random(len(x)) < 0.3
        x[hot, column(schema, feature)] = high * rng.uniform(0.5, 2.0, hot.sum())
        on += hot
    y = (rng.random(len(x)) < np.minimum(base_rate + 0.45 * on, 0.95)).astype(int)
    return x, y


def _train_failure(
    schema: Schema,
    drivers: dict[str, float],
    base_rate: float,
    rng: np.random.Generator,
    *,
    calibrated: bool = False,
) -> Any:
    """Boosted trees; ``calibrated``: frozen and sigmoid-calibrated on fresh rows, as the
    shipped node models are (and so lowered and fusable by the exporter)."""
    trees = GradientBoostingClassifier(
        n_estimators=30, max_depth=2, learning_rate=0.3, random_state=0
    ).fit(*_failure_rows(schema, drivers, base_rate, rng))
    if not calibrated:
        return trees
    calibration = _failure_rows(schema, drivers, base_rate, rng)
    return CalibratedClassifierCV(FrozenEstimator(trees), method="sigmoid").fit(*calibration)


def _train_anomaly(
    schema: Schema, driver: str, rng: np.random.Generator
) -> tuple[DecisionTreeRegressor, npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    x = _rows(schema, 400, rng)
    j = column(schema, driver)
    median = np.median(x, axis=0).astype(np.float64)
    mad = np.median(np.abs(x - median), axis=0).astype(np.float64)
    score = np.abs(x[:, j] - median[j]) / mad[j]
    model = DecisionTreeRegressor(max_depth=4, random_state=0).fit(x, score)
    return model, median, mad


def write_tiny_models(directory: Path, seed: int = 7, *, fused: bool = False) -> TinyModels:
    """``fused``: calibrated node failure models and the fused node model beside them."""
    rng = np.random.default_rng(seed)
    estimators: dict[str, Any] = {}
    median: dict[str, npt.NDArray[np.float64]] = {}
    mad: dict[str, npt.NDArray[np.float64]] = {}
    node_drivers = {
        "smart_reallocated_sectors_increase_24h": 20.0,
        "temp_max_celsius_last_15m": 95.0,
    }
    for name, horizon in (("node-failure-30m", 30 * MINUTE), ("node-failure-24h", DAY)):
        model = _train_failure(NODE, node_drivers, 0.002, rng, calibrated=fused)
        export(
            model,
            name=name,
            version="2026.01.01.1",
            kind="failure",
            schema=NODE,
            out_dir=directory,
            outputs=FAILURE_OUTPUTS,
            classifier=True,
            horizons_seconds=(horizon,),
            thresholds={"alert": 0.5},
            calibration={"bins": NODE_BINS},
            extra={"baseline": list(NODE.fills())},
        )
        estimators[name] = model
    disk_drivers = {"reallocated_sectors_last_24h": 400.0, "current_pending_sectors_last_24h": 40.0}
    model = _train_failure(DISK, disk_drivers, 0.02, rng)
    export(
        model,
        name="disk-failure-7d",
        version="2026.01.01.1",
        kind="failure",
        schema=DISK,
        out_dir=directory,
        outputs=FAILURE_OUTPUTS,
        classifier=True,
        horizons_seconds=(7 * DAY,),
        thresholds={"alert": 0.3},
        calibration={"bins": [[0.0, 0.5, 500, 10], [0.5, 1.0, 40, 30]]},
        extra={"baseline": list(DISK.fills())},
    )
    estimators["disk-failure-7d"] = model
    for name, schema, driver in (
        ("node-anomaly", NODE, "cpu_util_percent_mean_15m"),
        ("vm-anomaly", VM, "vm_net_packets_per_second_p95_15m"),
    ):
        regressor, median[name], mad[name] = _train_anomaly(schema, driver, rng)
        export(
            regressor,
            name=name,
            version="2026.01.01.1",
            kind="anomaly",
            schema=schema,
            out_dir=directory,
            outputs=ANOMALY_OUTPUTS,
            classifier=False,
            thresholds={"warning": 2.0, "critical": 3.0, "feature_z": 3.5},
            extra={"median": median[name].tolist(), "mad": mad[name].tolist()},
        )
        estimators[name] = regressor
    if fused:
        refresh(directory)
    return TinyModels(directory, estimators, median, mad)
