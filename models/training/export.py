"""scikit-learn -> ONNX export with a model card, and the parity check against sklearn.

Classifiers are exported with ``zipmap: False`` so the output is a plain probability
matrix. IsolationForest would need ``target_opset={'': 17, 'ai.onnx.ml': 3}`` and costs
about 1 ms per row in onnxruntime, which is why our anomaly models are not shipped as
raw IsolationForest graphs (see the anomaly model card).

A sigmoid-calibrated binary tree ensemble (our failure models) is lowered to two
operators instead of skl2onnx's fifteen: the calibration ``p = expit(-(a*s + b))`` is
affine in the trees' score ``s = sum(leaf weights) + base``, so ``-a`` is folded into
every leaf weight and ``-(a*base + b)`` into the base value, and one
``TreeEnsembleRegressor`` with the targets ``(-z, z)`` followed by ``Sigmoid`` gives
``(1 - p, p)``. onnxruntime pays about a microsecond per operator per call, which was
more than the trees themselves for one node row (see ``docs/models.md``). The result
is checked against scikit-learn like every export (the parity check below).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from novacron.models.card import ModelCard, ModelKind
from novacron.models.runtime import OnnxModel, sha256_hex
from novacron.models.schema import Schema

TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
# Where registered models' parity rows go in a source checkout (tests/fixtures/models).
SOURCE_PARITY_DIR = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "models"
PARITY_TOLERANCE = 1e-5
INPUT = "input"
# IR version of the graphs we build ourselves: one every onnxruntime >= 1.17 reads.
ONNX_IR_VERSION = 8
# The tree attributes a TreeEnsembleRegressor shares with a TreeEnsembleClassifier.
TREE_NODE_ATTRIBUTES = (
    "nodes_falsenodeids",
    "nodes_featureids",
    "nodes_hitrates",
    "nodes_missing_value_tracks_true",
    "nodes_modes",
    "nodes_nodeids",
    "nodes_treeids",
    "nodes_truenodeids",
    "nodes_values",
)


def to_onnx_bytes(estimator: Any, n_features: int, *, classifier: bool) -> bytes:
    if classifier and isinstance(estimator, CalibratedClassifierCV):
        lowered = calibrated_trees_graph(estimator, n_features)
        if lowered is not None:
            return bytes(lowered.SerializeToString())
    return bytes(_skl2onnx(estimator, n_features, classifier=classifier).SerializeToString())


def _skl2onnx(estimator: Any, n_features: int, *, classifier: bool) -> onnx.ModelProto:
    options = {id(estimator): {"zipmap": False}} if classifier else None
    model: onnx.ModelProto = convert_sklearn(
        estimator,
        initial_types=[(INPUT, FloatTensorType([None, n_features]))],
        options=options,
        target_opset=TARGET_OPSET,
        # skl2onnx names the graph with a random id otherwise: the same model would get
        # a new sha256 on every export and look like a new model to every agent.
        name=type(estimator).__name__,
    )
    return model


def calibrated_trees_graph(
    estimator: CalibratedClassifierCV, n_features: int
) -> onnx.ModelProto | None:
    """The two-operator graph of a sigmoid-calibrated binary tree ensemble (module
    docstring), or None for any other calibrated model (skl2onnx converts those).

    The trees come from skl2onnx's conversion of the uncalibrated estimator, so split
    semantics (float32 thresholds, ``<=``) are exactly skl2onnx's; only the leaf weights
    and the base value change. skl2onnx writes a binary ensemble as one score per leaf
    for class id 0 that onnxruntime reports as column 1, i.e. ``s``: the raw margin of
    boosting (what the calibrator saw via ``decision_function``) or the averaged
    positive-class probability of a forest (via ``predict_proba``).
    """
    members: list[Any] = list(getattr(estimator, "calibrated_classifiers_", ()))
    if estimator.method != "sigmoid" or len(members) != 1:
        return None
    if [int(c) for c in estimator.classes_] != [0, 1]:
        return None
    member = members[0]
    base = member.estimator
    if isinstance(base, FrozenEstimator):
        base = base.estimator
    trees = [
        node
        for node in _skl2onnx(base, n_features, classifier=True).graph.node
        if node.op_type == "TreeEnsembleClassifier"
    ]
    if len(trees) != 1:
        return None
    attributes = {a.name: helper.get_attribute_value(a) for a in trees[0].attribute}
    if set(attributes["class_ids"]) != {0} or list(attributes["classlabels_int64s"]) != [0, 1]:
        return None
    a = float(member.calibrators[0].a_)
    b = float(member.calibrators[0].b_)
    weights = -a * np.asarray(attributes["class_weights"], dtype=np.float64)
    base_value = -(a * float((attributes.get("base_values") or [0.0])[0]) + b)
    leaves = len(weights)
    regressor = helper.make_node(
        "TreeEnsembleRegressor",
        [INPUT],
        ["margin"],
        domain="ai.onnx.ml",
        n_targets=2,
        aggregate_function="SUM",
        post_transform="NONE",
        base_values=[-base_value, base_value],
        target_ids=[0] * leaves + [1] * leaves,
        target_nodeids=list(attributes["class_nodeids"]) * 2,
        target_treeids=list(attributes["class_treeids"]) * 2,
        target_weights=[*(-weights).tolist(), *weights.tolist()],
        **{key: attributes[key] for key in TREE_NODE_ATTRIBUTES},
    )
    sigmoid = helper.make_node("Sigmoid", ["margin"], ["probabilities"])
    graph = helper.make_graph(
        [regressor, sigmoid],
        type(estimator).__name__,
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
    )
    return helper.make_model(
        graph,
        opset_imports=opset_imports(),
        ir_version=ONNX_IR_VERSION,
        producer_name="novacron.models.training.export",
    )


def opset_imports() -> list[onnx.OperatorSetIdProto]:
    """TARGET_OPSET for graphs we build ourselves (lowered and fused models)."""
    return [helper.make_opsetid(domain, version) for domain, version in TARGET_OPSET.items()]


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
