"""Model cards: what a shipped model is, what it was trained on, how good it is.

A card is a JSON file next to its ``.onnx`` (``<name>.card.json``). The agent reads it to
verify the model file (sha256) and the feature schema (version tag + hash) before
loading, and to interpret outputs (horizons, thresholds, calibration table). Operators
read it to see the data, metrics and thresholds behind a score.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

ModelKind = Literal["failure", "anomaly", "fused"]  # fused: see training/fuse.py
FUSED_KIND: ModelKind = "fused"
CARD_SUFFIX = ".card.json"
# UTC date and time to the second, fixed width: sorts as a string in time order.
VERSION_FORMAT = "%Y.%m.%d.%H%M%S"


def new_version(unix_seconds: float | None = None) -> str:
    """The version of a model artefact made at ``unix_seconds`` (default: now).

    Every training or export run stamps its artefacts with this, so two different
    artefacts of one model never share a version: the agent refuses an update whose
    version is not newer than the loaded one (plain string comparison) and the audit
    log names a model by its version. A per-day counter such as ``%Y.%m.%d.1`` gave a
    retrained model the version of the one it replaced.
    """
    return time.strftime(
        VERSION_FORMAT, time.gmtime(time.time() if unix_seconds is None else unix_seconds)
    )


@dataclass(frozen=True)
class ModelCard:
    name: str  # "disk-failure", "node-failure", "node-anomaly", "vm-anomaly", "series-anomaly"
    version: str  # new_version(): sortable, e.g. "2026.11.23.171511"
    kind: ModelKind
    schema: str  # feature schema version tag, e.g. "disk-v1"
    schema_hash: str
    onnx_file: str  # file name, next to the card
    sha256: str  # of the .onnx bytes
    created_unix: float
    features: tuple[str, ...]
    # name -> meaning of every ONNX output (e.g. {"probabilities": "P(fail within h)"})
    outputs: dict[str, str]
    horizons_seconds: tuple[float, ...] = ()  # failure models: one output column each
    thresholds: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)  # held-out evaluation
    training_data: dict[str, Any] = field(default_factory=dict)  # sources, rows, spans, licences
    calibration: dict[str, Any] = field(default_factory=dict)  # e.g. reliability table for CIs
    extra: dict[str, Any] = field(default_factory=dict)  # model-specific parameters

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"model card has unknown keys: {sorted(unknown)}")
        data["features"] = tuple(data["features"])
        data["horizons_seconds"] = tuple(data.get("horizons_seconds", ()))
        return cls(**data)

    def write(self, directory: Path) -> Path:
        path = directory / f"{self.name}{CARD_SUFFIX}"
        path.write_text(self.to_json())
        return path

    @classmethod
    def read(cls, path: Path) -> ModelCard:
        return cls.from_json(path.read_text())


BUNDLED_DIR = Path(__file__).parent / "bundled"


def bundled_card_path(name: str) -> Path:
    return BUNDLED_DIR / f"{name}{CARD_SUFFIX}"
