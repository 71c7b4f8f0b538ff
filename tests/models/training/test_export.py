"""The calibrated-trees lowering: two operators, scikit-learn's probabilities."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.frozen import FrozenEstimator

from novacron.models.training.export import PARITY_TOLERANCE, to_onnx_bytes

FEATURES = 12


def _data(seed: int = 0) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int_]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3000, FEATURES)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] ** 2 + rng.normal(size=len(x)) > 2.0).astype(int)
    return x, y


def _boosting_prefit(x: npt.NDArray[np.float32], y: npt.NDArray[np.int_]) -> Any:
    """As node_failure fits it: frozen trees, a sigmoid on other rows."""
    trees = GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0)
    trees.fit(x[:1500], y[:1500])
    return CalibratedClassifierCV(FrozenEstimator(trees), method="sigmoid").fit(x[1500:], y[1500:])


def _forest_cv(x: npt.NDArray[np.float32], y: npt.NDArray[np.int_]) -> Any:
    """As disk_failure fits it: out-of-fold sigmoid, one refitted forest."""
    forest = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0)
    return CalibratedClassifierCV(forest, method="sigmoid", cv=3, ensemble=False).fit(x, y)


def _run(onnx_bytes: bytes, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["probabilities"], {"input": x})[0])


@pytest.mark.parametrize("fit", [_boosting_prefit, _forest_cv])
def test_sigmoid_calibrated_trees_are_two_operators_with_sklearn_parity(fit: Any) -> None:
    x, y = _data()
    model = fit(x, y)
    onnx_bytes = to_onnx_bytes(model, FEATURES, classifier=True)
    ops = [node.op_type for node in onnx.load_from_string(onnx_bytes).graph.node]
    assert ops == ["TreeEnsembleRegressor", "Sigmoid"]
    held_out, _ = _data(seed=1)
    difference = np.abs(_run(onnx_bytes, held_out) - model.predict_proba(held_out))
    assert difference.max() < PARITY_TOLERANCE
    # Both columns: (1 - p, p), probabilities that sum to one.
    assert np.allclose(_run(onnx_bytes, held_out).sum(axis=1), 1.0, atol=1e-6)


def test_other_calibrations_are_converted_by_skl2onnx_unchanged() -> None:
    """Isotonic calibration is not affine in the trees' score: skl2onnx's graph as is."""
    x, y = _data()
    trees = GradientBoostingClassifier(n_estimators=10, max_depth=2, random_state=0)
    model = CalibratedClassifierCV(trees, method="isotonic", cv=2, ensemble=False).fit(x, y)
    graph = onnx.load_from_string(to_onnx_bytes(model, FEATURES, classifier=True))
    assert graph.producer_name == "skl2onnx"
    assert graph.graph.node[0].op_type == "TreeEnsembleClassifier" and len(graph.graph.node) > 2
