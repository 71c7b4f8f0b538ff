"""ONNX runtime wrapper: the only way the agent runs a model.

Loading verifies the file against its card (sha256) and the feature schema (version tag
and hash) *before* onnxruntime parses a byte of it, so a corrupted, swapped or
mismatched model is refused with a clear error instead of producing scores on
misaligned columns. Sessions use one thread: the agent shares the hypervisor with
tenants, and per-frame inputs are a handful of rows where threading only adds latency.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from novacron.models.card import BUNDLED_DIR, CARD_SUFFIX, ModelCard
from novacron.models.schema import Schema, schema_for


class ModelIntegrityError(Exception):
    """The model file does not match its card, or the card does not match the schema."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def session_options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


@dataclass
class OnnxModel:
    card: ModelCard
    schema: Schema
    session: ort.InferenceSession
    input_name: str
    output_names: tuple[str, ...]

    @classmethod
    def from_bytes(cls, card: ModelCard, onnx_bytes: bytes) -> OnnxModel:
        digest = sha256_hex(onnx_bytes)
        if digest != card.sha256:
            raise ModelIntegrityError(
                f"model {card.name} {card.version}: sha256 {digest[:16]}... does not match "
                f"its card ({card.sha256[:16]}...); refusing to load"
            )
        schema = schema_for(card.schema)
        try:
            schema.check(card.schema, card.schema_hash)
        except ValueError as exc:
            raise ModelIntegrityError(f"model {card.name} {card.version}: {exc}") from None
        if tuple(card.features) != schema.feature_names:
            raise ModelIntegrityError(f"model {card.name}: card features differ from schema")
        try:
            session = ort.InferenceSession(
                onnx_bytes, sess_options=session_options(), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelIntegrityError(f"model {card.name} {card.version}: {exc}") from None
        inputs = session.get_inputs()
        if len(inputs) != 1 or inputs[0].shape[-1] not in (len(schema.features), None, "None"):
            raise ModelIntegrityError(f"model {card.name}: unexpected input signature")
        outputs = tuple(o.name for o in session.get_outputs())
        return cls(card, schema, session, inputs[0].name, outputs)

    @classmethod
    def load(cls, card_path: Path) -> OnnxModel:
        card = ModelCard.read(card_path)
        return cls.from_bytes(card, (card_path.parent / card.onnx_file).read_bytes())

    def run(self, rows: npt.NDArray[np.float32]) -> dict[str, npt.NDArray[np.float32]]:
        """Score a (n, features) float32 matrix; returns every output by name."""
        results = self.session.run(None, {self.input_name: rows})
        return {
            name: np.asarray(value) for name, value in zip(self.output_names, results, strict=True)
        }

    def output(self, rows: npt.NDArray[np.float32], name: str) -> npt.NDArray[np.float32]:
        """One output of :meth:`run`, without building the others' dict (per-frame path)."""
        return np.asarray(self.session.run([name], {self.input_name: rows})[0])


def bundled_models() -> dict[str, Path]:
    """Card paths of the models shipped in the package, by model name."""
    return {p.name[: -len(CARD_SUFFIX)]: p for p in sorted(BUNDLED_DIR.glob(f"*{CARD_SUFFIX}"))}
