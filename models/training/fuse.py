"""Tree models that read the same feature row, fused into one ONNX graph.

Why: the agent scores the node's row with three models every cycle (failure within
30 min and 24 h, node anomaly). onnxruntime costs about 7 µs per ``run`` call before a
single tree is walked, and about a microsecond per operator, which for one row is more
than the trees themselves. One ``TreeEnsembleRegressor`` that holds every member's trees
as its own target, followed by one ``Sigmoid``, serves all members in one call of two
operators (measured in ``docs/models.md``).

The members stay what they are: each keeps its own ``.onnx``, card, sha256, version,
parity rows and update path. The fused model is a derived artefact with its own card
(``kind = "fused"``) that names every member by name, version and sha256 and says
where its score is (``raw`` or ``sigmoid`` output, column). The agent uses it only for
the members it loaded with exactly that sha256 and only after checking that both give
the same scores; a member updated later simply goes back to its own session.

A member is fusable when its graph is one ``TreeEnsembleRegressor`` (sum, no post
transform) reading the input, optionally followed by one ``Sigmoid`` producing its
score output: the anomaly students as skl2onnx writes them and the calibrated failure
classifiers as :func:`~novacron.models.training.export.calibrated_trees_graph` lowers
them. Fusion copies trees and leaf weights; it does no arithmetic on them.

    python -m novacron.models.training.fuse [--models-dir models/bundled]

The training commands of the node models run it on their output directory.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from novacron.models.card import BUNDLED_DIR, CARD_SUFFIX, FUSED_KIND, ModelCard, new_version
from novacron.models.runtime import OnnxModel
from novacron.models.schema import schema_for
from novacron.models.training.distill import call_latency_us
from novacron.models.training.export import (
    INPUT,
    ONNX_IR_VERSION,
    PARITY_TOLERANCE,
    TREE_NODE_ATTRIBUTES,
    opset_imports,
    write_model,
)

log = logging.getLogger(__name__)

RAW = "raw"
SIGMOID = "sigmoid"
FUSED_SUFFIX = "-fused"
FAILURE_OUTPUT = "probabilities"  # (n, 2), column 1 = P(failure within the horizon)
_LEAF_ATTRIBUTES = ("target_ids", "target_nodeids", "target_treeids", "target_weights")


class NotFusable(ValueError):
    """A member graph is not a plain tree ensemble (see the module docstring)."""


@dataclass(frozen=True)
class Member:
    """Where a member's score is in the fused outputs (written into the fused card)."""

    name: str
    version: str
    sha256: str
    output: str  # RAW or SIGMOID
    column: int


@dataclass(frozen=True)
class _Trees:
    card: ModelCard
    attributes: dict[str, Any]
    target: int  # the member's score column = its regressor target
    link: str  # RAW or SIGMOID


def fused_name(schema_name: str) -> str:
    return f"{schema_name}{FUSED_SUFFIX}"


def score_of(card: ModelCard) -> tuple[str, int]:
    """(output, column) of a model's own score: the agent's contract (model_set)."""
    if card.kind == "failure":
        return FAILURE_OUTPUT, 1
    output = next(iter(card.outputs), None)
    if card.kind != "anomaly" or output is None:
        raise NotFusable(f"{card.name}: {card.kind} models have no fusable score")
    return output, 0


def member_trees(card: ModelCard, graph: onnx.GraphProto) -> _Trees:
    """The tree ensemble behind a member's score; raises NotFusable."""
    score_output, column = score_of(card)
    nodes = list(graph.node)
    tree = nodes[0] if nodes else None
    if tree is None or tree.op_type != "TreeEnsembleRegressor" or list(tree.input) != [INPUT]:
        raise NotFusable(f"{card.name}: graph does not start with a tree ensemble on the input")
    attributes = {a.name: helper.get_attribute_value(a) for a in tree.attribute}
    if any(name.endswith("_as_tensor") for name in attributes):
        raise NotFusable(f"{card.name}: tensor-valued tree attributes are not fused")
    if attributes.get("post_transform", b"NONE") != b"NONE":
        raise NotFusable(f"{card.name}: tree ensemble has a post transform")
    if attributes.get("aggregate_function", b"SUM") != b"SUM":
        raise NotFusable(f"{card.name}: tree ensemble does not sum its trees")
    if int(attributes.get("n_targets", 1)) <= column:
        raise NotFusable(f"{card.name}: no target {column}")
    if len(nodes) == 1 and list(tree.output) == [score_output]:
        link = RAW
    elif (
        len(nodes) == 2
        and nodes[1].op_type == "Sigmoid"
        and list(nodes[1].input) == list(tree.output)
        and list(nodes[1].output) == [score_output]
    ):
        link = SIGMOID
    else:
        raise NotFusable(f"{card.name}: more than a tree ensemble and a sigmoid")
    return _Trees(card, attributes, column, link)


def fused_graph(members: Sequence[_Trees], n_features: int, name: str) -> onnx.ModelProto:
    """One regressor, target j = member j's score target; ``raw`` and ``sigmoid`` out."""
    merged: dict[str, list[Any]] = {key: [] for key in (*TREE_NODE_ATTRIBUTES, *_LEAF_ATTRIBUTES)}
    base_values: list[float] = []
    tree_offset = 0
    for j, member in enumerate(members):
        a = member.attributes
        for key in TREE_NODE_ATTRIBUTES:
            values = list(a[key])
            merged[key] += [v + tree_offset for v in values] if key == "nodes_treeids" else values
        keep = [i for i, target in enumerate(a["target_ids"]) if target == member.target]
        merged["target_ids"] += [j] * len(keep)
        merged["target_nodeids"] += [a["target_nodeids"][i] for i in keep]
        merged["target_treeids"] += [a["target_treeids"][i] + tree_offset for i in keep]
        merged["target_weights"] += [a["target_weights"][i] for i in keep]
        base = list(a.get("base_values") or [])
        base_values.append(float(base[member.target]) if base else 0.0)
        tree_offset += max(a["nodes_treeids"]) + 1
    attributes: dict[str, Any] = {
        **merged,
        "n_targets": len(members),
        "aggregate_function": "SUM",
        "post_transform": "NONE",
        "base_values": base_values,
    }
    regressor = helper.make_node(
        "TreeEnsembleRegressor", [INPUT], [RAW], domain="ai.onnx.ml", **attributes
    )
    graph = helper.make_graph(
        [regressor, helper.make_node("Sigmoid", [RAW], [SIGMOID])],
        name,
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [None, n_features])],
        [
            helper.make_tensor_value_info(output, TensorProto.FLOAT, [None, len(members)])
            for output in (RAW, SIGMOID)
        ],
    )
    return helper.make_model(
        graph,
        opset_imports=opset_imports(),
        ir_version=ONNX_IR_VERSION,
        producer_name="novacron.models.training.fuse",
    )


def fuse(card_paths: Sequence[Path], out_dir: Path, *, name: str | None = None) -> ModelCard:
    """Write the fused model of ``card_paths`` (same schema) into ``out_dir``.

    Every member's score from the fused graph is compared with the member's own graph
    on its neutral row and on its card's baseline (failure models) before the card is
    written; a difference above the parity tolerance is an error, not a warning.
    """
    loaded = [OnnxModel.load(path) for path in card_paths]
    schemas = {model.card.schema for model in loaded}
    if len(loaded) < 2 or len(schemas) != 1:
        raise NotFusable(f"fusion needs two or more models of one schema, got {sorted(schemas)}")
    schema = schema_for(loaded[0].card.schema)
    trees = [
        member_trees(model.card, onnx.load_from_string(_onnx_bytes(path, model.card)).graph)
        for path, model in zip(card_paths, loaded, strict=True)
    ]
    name = name or fused_name(schema.name)
    members = [
        Member(t.card.name, t.card.version, t.card.sha256, t.link, j) for j, t in enumerate(trees)
    ]
    onnx_bytes = bytes(fused_graph(trees, len(schema.features), name).SerializeToString())
    card_fields: dict[str, Any] = {
        "name": name,
        "version": new_version(),
        "kind": FUSED_KIND,
        "schema": schema,
        "outputs": {
            RAW: "(n, members) summed tree scores; column j = member j's raw score",
            SIGMOID: "(n, members) sigmoid of raw; column j = member j's probability",
        },
        "training_data": {"members": [m.name for m in members]},
        "extra": {"members": [asdict(m) for m in members]},
    }
    with tempfile.TemporaryDirectory() as tmp:
        write_model(onnx_bytes, out_dir=Path(tmp), **card_fields)
        fused = OnnxModel.load(Path(tmp) / f"{name}{CARD_SUFFIX}")
    rows = _check_rows(loaded)
    worst = max(
        _difference(fused, model, member, rows)
        for model, member in zip(loaded, members, strict=True)
    )
    if worst >= PARITY_TOLERANCE:
        raise RuntimeError(f"{name}: fused scores differ from the members' by {worst:g}")
    call_latency_us(fused.run, rows, 1, calls=200)  # warm: first calls allocate
    metrics = {
        "max_abs_diff_vs_members": worst,
        "onnx_latency_us": call_latency_us(fused.run, rows, 1, calls=2000),
        "onnx_bytes": len(onnx_bytes),
        "trees": sum(max(t.attributes["nodes_treeids"]) + 1 for t in trees),
    }
    card = write_model(onnx_bytes, out_dir=out_dir, metrics=metrics, **card_fields)
    log.info("fused model written", extra={"model": name, "members": [m.name for m in members]})
    return card


def refresh(models_dir: Path) -> list[ModelCard]:
    """(Re)build the fused model of every schema with two or more fusable models in
    ``models_dir``; keep one whose members are unchanged; remove one left without."""
    by_schema: dict[str, list[Path]] = {}
    fused_cards: dict[str, ModelCard] = {}
    for path in sorted(models_dir.glob(f"*{CARD_SUFFIX}")):
        card = ModelCard.read(path)
        if card.kind == FUSED_KIND:
            fused_cards[card.name] = card
            continue
        try:
            member_trees(card, onnx.load_from_string(_onnx_bytes(path, card)).graph)
        except NotFusable as exc:
            log.debug("not fused", extra={"model": card.name, "reason": str(exc)})
            continue
        by_schema.setdefault(card.schema, []).append(path)
    written = []
    wanted = set()
    for schema_tag, paths in sorted(by_schema.items()):
        if len(paths) < 2:
            continue
        name = fused_name(schema_for(schema_tag).name)
        wanted.add(name)
        current = fused_cards.get(name)
        members = [ModelCard.read(p) for p in paths]
        if current is not None and _same_members(current, members):
            continue
        written.append(fuse(paths, models_dir, name=name))
    for stale in set(fused_cards) - wanted:
        for file in (fused_cards[stale].onnx_file, f"{stale}{CARD_SUFFIX}"):
            (models_dir / file).unlink(missing_ok=True)
    return written


def _same_members(fused: ModelCard, members: Sequence[ModelCard]) -> bool:
    listed = [(m["name"], m["version"], m["sha256"]) for m in fused.extra.get("members", [])]
    return listed == [(m.name, m.version, m.sha256) for m in members]


def _onnx_bytes(card_path: Path, card: ModelCard) -> bytes:
    return (card_path.parent / card.onnx_file).read_bytes()


def _check_rows(models: Sequence[OnnxModel]) -> np.ndarray:
    """The neutral row and every failure card's baseline row."""
    rows = [np.asarray(models[0].schema.fills(), dtype=np.float32)]
    for model in models:
        baseline = model.card.extra.get("baseline")
        if baseline is not None:
            rows.append(np.asarray(baseline, dtype=np.float32))
    return np.stack(rows)


def _difference(fused: OnnxModel, model: OnnxModel, member: Member, rows: np.ndarray) -> float:
    output, column = score_of(model.card)
    theirs = model.run(rows)[output].reshape(len(rows), -1)[:, column]
    ours = fused.run(rows)[member.output][:, member.column]
    return float(np.max(np.abs(ours.astype(np.float64) - theirs.astype(np.float64))))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=BUNDLED_DIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for card in refresh(args.models_dir):
        print(f"{card.name} {card.version}: {', '.join(card.training_data['members'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
