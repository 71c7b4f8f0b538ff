"""scikit-learn -> ONNX export with a model card, and the parity check against sklearn.

Classifiers are exported with ``zipmap: False`` so the output is a plain probability
matrix. IsolationForest would need ``target_opset={'': 17, 'ai.onnx.ml': 3}`` and costs
about 1 ms per row in onnxruntime, which is why our anomaly models are not shipped as
raw IsolationForest graphs (see the anomaly model card).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType

from novacron.models.card import ModelCard, ModelKind
from novacron.models.runtime import OnnxModel, sha256_hex
from novacron.models.schema import Schema

TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
# Where registered models' parity rows go in a source checkout (tests/fixtures/models).
SOURCE_PARITY_DIR = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "models"
PARITY_TOLERANCE = 1e-5


def to_onnx_bytes(estimator: Any, n_features: int, *, classifier: bool) -> bytes:
    options = {id(estimator): {"zipmap": False}} if classifier else None
    onx = convert_sklearn(
        estimator,
        initial_types=[("input", FloatTensorType([None, n_features]))],
        options=options,
        target_opset=TARGET_OPSET,
        # skl2onnx names the graph with a random id otherwise: the same model would get
        # a new sha256 on every export and look like a new model to every agent.
        name=type(estimator).__name__,
    )
    return bytes(onx.SerializeToString())


def export(
    estimator: Any,
    *,
    name: str,
    version: str,
    kind: ModelKind,
    schema: Schema,
    out_dir: Path,
    outputs: dict[str, str],
    classifier: bool,
    horizons_seconds: tuple[float, ...] = (),
    thresholds: dict[str, float] | None = None,
    metrics: dict[str, Any] | None = None,
    training_data: dict[str, Any] | None = None,
    calibration: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> ModelCard:
    """Write ``<name>.onnx`` and ``<name>.card.json`` into ``out_dir``; return the card."""
    onnx_bytes = to_onnx_bytes(estimator, len(schema.features), classifier=classifier)
    return write_model(
        onnx_bytes,
        name=name,
        version=version,
        kind=kind,
        schema=schema,
        out_dir=out_dir,
        outputs=outputs,
        horizons_seconds=horizons_seconds,
        thresholds=thresholds,
        metrics=metrics,
        training_data=training_data,
        calibration=calibration,
        extra=extra,
    )


def write_model(
    onnx_bytes: bytes,
    *,
    name: str,
    version: str,
    kind: ModelKind,
    schema: Schema,
    out_dir: Path,
    outputs: dict[str, str],
    horizons_seconds: tuple[float, ...] = (),
    thresholds: dict[str, float] | None = None,
    metrics: dict[str, Any] | None = None,
    training_data: dict[str, Any] | None = None,
    calibration: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> ModelCard:
    """Write an already serialised ONNX graph and its card (models not built by skl2onnx,
    e.g. a rule written as a graph); :func:`export` ends here too."""
    card = ModelCard(
        name=name,
        version=version,
        kind=kind,
        schema=schema.version_tag,
        schema_hash=schema.hash,
        onnx_file=f"{name}.onnx",
        sha256=sha256_hex(onnx_bytes),
        created_unix=time.time(),
        features=schema.feature_names,
        outputs=outputs,
        horizons_seconds=horizons_seconds,
        thresholds=thresholds or {},
        metrics=metrics or {},
        training_data=training_data or {},
        calibration=calibration or {},
        extra=extra or {},
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / card.onnx_file).write_bytes(onnx_bytes)
    card.write(out_dir)
    return card


def max_abs_difference(
    model: OnnxModel,
    sklearn_output: npt.NDArray[np.float64],
    rows: npt.NDArray[np.float32],
    output: str,
) -> float:
    """Largest |onnx - sklearn| over ``rows`` for one output (the parity check)."""
    onnx_output = model.run(rows)[output].astype(np.float64)
    return float(np.max(np.abs(onnx_output.reshape(sklearn_output.shape) - sklearn_output)))


def add_parity_dir_option(parser: argparse.ArgumentParser) -> None:
    """``--parity-dir`` for a training command (default: the source checkout's fixtures)."""
    parser.add_argument(
        "--parity-dir",
        type=Path,
        default=SOURCE_PARITY_DIR if SOURCE_PARITY_DIR.parent.is_dir() else None,
        help="where registered models' parity rows go (default: tests/fixtures/models "
        "in a source checkout)",
    )


def save_parity(
    parity_dir: Path, card: ModelCard, rows: npt.NDArray[np.float32], **reference: Any
) -> Path:
    """Held-out rows and the estimator's outputs on them, tied to the shipped file's
    sha256, so a test can prove the ONNX file agrees with the estimator it was converted
    from (the estimator itself is not shipped)."""
    parity_dir.mkdir(parents=True, exist_ok=True)
    path = parity_dir / f"{card.name}.parity.npz"
    np.savez_compressed(path, rows=rows, model_sha256=np.array(card.sha256), **reference)
    return path
