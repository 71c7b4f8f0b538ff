"""Fused node models: one graph, every member's own scores, rebuilt only when members change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor
from sklearn.frozen import FrozenEstimator

from novacron.models.card import BUNDLED_DIR, CARD_SUFFIX, ModelCard
from novacron.models.runtime import OnnxModel
from novacron.models.schema import NODE, VM, Schema
from novacron.models.training import fuse
from novacron.models.training.export import export


def _rows(schema: Schema, n: int, seed: int) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    fills = np.asarray(schema.fills())
    return np.asarray(fills + rng.normal(size=(n, len(fills))) * 3.0, dtype=np.float32)


def _write_failure(directory: Path, name: str, seed: int) -> None:
    x = _rows(NODE, 1200, seed)
    y = (x[:, 0] + x[:, 3] + np.random.default_rng(seed).normal(size=len(x)) > 2).astype(int)
    trees = GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=seed)
    model = CalibratedClassifierCV(FrozenEstimator(trees.fit(x[:600], y[:600])), method="sigmoid")
    model.fit(x[600:], y[600:])
    export(
        model,
        name=name,
        version="2026.01.01.1",
        kind="failure",
        schema=NODE,
        out_dir=directory,
        outputs={"probabilities": "(n, 2)"},
        classifier=True,
        horizons_seconds=(1800.0,),
        extra={"baseline": list(NODE.fills())},
    )


def _write_anomaly(directory: Path, name: str, schema: Schema, seed: int) -> None:
    x = _rows(schema, 600, seed)
    model = GradientBoostingRegressor(n_estimators=10, max_depth=3, random_state=seed)
    export(
        model.fit(x, np.abs(x[:, 1])),
        name=name,
        version="2026.01.01.1",
        kind="anomaly",
        schema=schema,
        out_dir=directory,
        outputs={"variable": "score"},
        classifier=False,
    )


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "models"
    _write_failure(directory, "node-failure-30m", 1)
    _write_failure(directory, "node-failure-24h", 2)
    _write_anomaly(directory, "node-anomaly", NODE, 3)
    _write_anomaly(directory, "vm-anomaly", VM, 4)  # alone in its schema: not fused
    return directory


def _own_scores(directory: Path, name: str, rows: npt.NDArray[np.float32]) -> np.ndarray:
    model = OnnxModel.load(directory / f"{name}{CARD_SUFFIX}")
    output, column = fuse.score_of(model.card)
    return model.run(rows)[output].reshape(len(rows), -1)[:, column]


def test_one_graph_gives_every_member_its_own_scores(models_dir: Path) -> None:
    (card,) = fuse.refresh(models_dir)
    assert card.name == "node-fused" and card.kind == "fused"
    fused = OnnxModel.load(models_dir / f"{card.name}{CARD_SUFFIX}")
    assert [n.op_type for n in onnx.load(models_dir / card.onnx_file).graph.node] == [
        "TreeEnsembleRegressor",
        "Sigmoid",
    ]
    rows = _rows(NODE, 300, seed=9)
    outputs = fused.run(rows)
    members = card.extra["members"]
    assert [m["name"] for m in members] == ["node-anomaly", "node-failure-24h", "node-failure-30m"]
    for member in members:
        member_card = ModelCard.read(models_dir / f"{member['name']}{CARD_SUFFIX}")
        assert (member["version"], member["sha256"]) == (member_card.version, member_card.sha256)
        ours = outputs[member["output"]][:, member["column"]]
        assert np.abs(ours - _own_scores(models_dir, member["name"], rows)).max() < 1e-5
    assert {m["output"] for m in members if m["name"].startswith("node-failure")} == {"sigmoid"}
    assert card.metrics["max_abs_diff_vs_members"] < 1e-5


def test_refresh_rebuilds_only_when_members_change(models_dir: Path) -> None:
    (first,) = fuse.refresh(models_dir)
    assert fuse.refresh(models_dir) == []  # same members: the fused model is kept
    _write_failure(models_dir, "node-failure-24h", 5)  # a retrained member
    (second,) = fuse.refresh(models_dir)
    new_sha = ModelCard.read(models_dir / f"node-failure-24h{CARD_SUFFIX}").sha256
    assert new_sha in {m["sha256"] for m in second.extra["members"]}
    assert second.sha256 != first.sha256
    for name in ("node-failure-24h", "node-failure-30m"):
        (models_dir / f"{name}{CARD_SUFFIX}").unlink()
    assert fuse.refresh(models_dir) == []
    assert not (models_dir / f"node-fused{CARD_SUFFIX}").exists()  # one member left
    assert not (models_dir / "node-fused.onnx").exists()


def test_graphs_that_are_not_plain_tree_ensembles_are_not_fused(tmp_path: Path) -> None:
    card_path = BUNDLED_DIR / f"series-anomaly{CARD_SUFFIX}"
    card = ModelCard.read(card_path)
    with pytest.raises(fuse.NotFusable):
        fuse.member_trees(card, onnx.load(BUNDLED_DIR / card.onnx_file).graph)
    with pytest.raises(fuse.NotFusable, match="two or more"):
        fuse.fuse([BUNDLED_DIR / f"node-anomaly{CARD_SUFFIX}"], tmp_path)


def test_the_shipped_fused_model_holds_the_shipped_members() -> None:
    """Retraining a node model refreshes it; if this fails, run
    python -m novacron.models.training.fuse (or retrain the member)."""
    card = ModelCard.read(BUNDLED_DIR / f"node-fused{CARD_SUFFIX}")
    rows = np.stack([np.asarray(NODE.fills(), dtype=np.float32), *_rows(NODE, 200, seed=4)]).astype(
        np.float32
    )
    fused = OnnxModel.load(BUNDLED_DIR / f"node-fused{CARD_SUFFIX}").run(rows)
    names = set()
    for member in card.extra["members"]:
        shipped = ModelCard.read(BUNDLED_DIR / f"{member['name']}{CARD_SUFFIX}")
        assert (member["version"], member["sha256"]) == (shipped.version, shipped.sha256)
        ours = fused[member["output"]][:, member["column"]]
        assert np.abs(ours - _own_scores(BUNDLED_DIR, member["name"], rows)).max() < 1e-5
        names.add(member["name"])
    assert names == {"node-failure-30m", "node-failure-24h", "node-anomaly"}
