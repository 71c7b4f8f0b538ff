"""Find, verify and load the models the agent scores with, once, at start-up.

Every ``<name>.card.json`` in the models directory (the bundled one by default) is a
candidate. :meth:`OnnxModel.load <novacron.models.runtime.OnnxModel.load>` checks the
file's sha256 against its card and the card's schema against ours before onnxruntime
reads a byte; then the card is checked against the output contract (failure models:
``probabilities`` with P(failure within ``horizons_seconds[0]``) in column 1; anomaly
models: the output the card names, higher = more anomalous, warning/critical
thresholds) and the model is run once on a neutral row to prove its output shape.

A model that fails any check is refused with its reason and the others still load; a
role with no model at all (node failure, disk failure, node anomaly, VM anomaly) is
logged once and its scores are ``None``. Nothing here can stop the agent.

A *fused* card (``kind = "fused"``, built by ``novacron.models.training.fuse``) is one
graph holding several models of one schema (the node's failure and anomaly models), so
the node's row costs one onnxruntime call per cycle instead of one per model. It is
verified like any model, then used only for the members it names with exactly the
version and sha256 that were loaded, and only after it gives the same scores as each
member's own session (within the parity tolerance). Members keep their own session for
batches (attributions) and when a member is updated; the fused model never adds or
changes a score.

Roles come from the card (``kind`` and feature schema), not from file names, so a
retrained ``node-failure-2h`` is picked up without code changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from novacron.agent.score_math import CalibrationTable
from novacron.models.card import CARD_SUFFIX, FUSED_KIND
from novacron.models.runtime import OnnxModel

log = logging.getLogger(__name__)

Role = Literal["node-failure", "disk-failure", "node-anomaly", "vm-anomaly"]
ROLES: tuple[Role, ...] = ("node-failure", "disk-failure", "node-anomaly", "vm-anomaly")
_ROLE_BY_CARD: dict[tuple[str, str], Role] = {
    ("failure", "node"): "node-failure",
    ("failure", "disk"): "disk-failure",
    ("anomaly", "node"): "node-anomaly",
    ("anomaly", "vm"): "vm-anomaly",
}
PROBABILITIES = "probabilities"
DEFAULT_FEATURE_Z = 3.5
# Fused and own scores of a member may differ by float32 summation order, no more.
FUSED_TOLERANCE = 1e-5

FloatArray32 = npt.NDArray[np.float32]


class ModelRefused(Exception):
    """A model that loaded but does not keep the scoring contract."""


class SharedRun:
    """A fused session and its last single-row result, shared by the members it serves.

    The members of one fused model score the same row one after the other in a cycle:
    the first call runs the graph, the others find their column in the remembered
    outputs (keyed by the row's bytes, so a different row is never answered from it).
    """

    def __init__(self, model: OnnxModel) -> None:
        self.model = model
        self._last: tuple[bytes, dict[str, FloatArray32]] | None = None

    def outputs(self, row: FloatArray32) -> dict[str, FloatArray32]:
        key = row.tobytes()
        last = self._last  # one read: another thread may replace it meanwhile
        if last is not None and last[0] == key:
            return last[1]
        outputs = self.model.run(row)
        self._last = (key, outputs)
        return outputs


@dataclass(frozen=True)
class FusedScore:
    """Where one member's score is in a fused model's outputs."""

    run: SharedRun
    output: str
    column: int

    def scores(self, row: FloatArray32) -> npt.NDArray[np.float64]:
        return self.run.outputs(row)[self.output][:, self.column].astype(np.float64)


class _Member:
    """What failure and anomaly models share: identity from the card, and single rows
    scored through the fused node model when one serves this model."""

    model: OnnxModel
    fused: FusedScore | None

    @property
    def name(self) -> str:
        return self.model.card.name

    @property
    def version(self) -> str:
        return self.model.card.version

    def _fused_or_own(
        self,
        rows: FloatArray32,
        own: Callable[[FloatArray32], npt.NDArray[np.float64]],
    ) -> npt.NDArray[np.float64]:
        if self.fused is not None and len(rows) == 1:
            return self.fused.scores(rows)
        return own(rows)


@dataclass(frozen=True)
class FailureModel(_Member):
    model: OnnxModel
    horizon_seconds: float
    alert_threshold: float | None
    calibration: CalibrationTable  # no bins: no confidence interval
    baseline: FloatArray32 | None  # None: no contributing factors
    fused: FusedScore | None = None  # single rows go through the fused model

    def probabilities(self, rows: FloatArray32) -> npt.NDArray[np.float64]:
        """P(failure within the horizon) per row."""
        return self._fused_or_own(rows, self.own_probabilities)

    def own_probabilities(self, rows: FloatArray32) -> npt.NDArray[np.float64]:
        return self.model.output(rows, PROBABILITIES)[:, 1].astype(np.float64)


@dataclass(frozen=True)
class AnomalyModel(_Member):
    model: OnnxModel
    output: str
    warning: float
    critical: float
    feature_z: float
    median: npt.NDArray[np.float64] | None  # None: no per-feature z-scores
    mad: npt.NDArray[np.float64] | None
    fused: FusedScore | None = None  # single rows go through the fused model

    def scores(self, rows: FloatArray32) -> npt.NDArray[np.float64]:
        """One anomaly score per row (higher = more anomalous)."""
        return self._fused_or_own(rows, self.own_scores)

    def own_scores(self, rows: FloatArray32) -> npt.NDArray[np.float64]:
        output = self.model.output(rows, self.output)
        return output.reshape(len(rows), -1)[:, 0].astype(np.float64)


@dataclass(frozen=True)
class ModelSet:
    node_failure: tuple[FailureModel, ...] = ()  # by horizon, shortest first
    disk_failure: tuple[FailureModel, ...] = ()
    node_anomaly: AnomalyModel | None = None
    vm_anomaly: AnomalyModel | None = None
    refused: dict[str, str] = field(default_factory=dict)  # card file -> reason
    missing: tuple[Role, ...] = ()
    fused: dict[str, tuple[str, ...]] = field(default_factory=dict)  # fused -> members served

    def loaded(self) -> tuple[FailureModel | AnomalyModel, ...]:
        """Every model in a role (fused models are not: they only serve these)."""
        anomaly = (self.node_anomaly, self.vm_anomaly)
        return (*self.node_failure, *self.disk_failure, *(m for m in anomaly if m is not None))

    def summary(self) -> dict[str, Any]:
        """Loaded model names and versions, for hello messages and the CLI."""
        return {m.name: m.version for m in self.loaded()}


def load_models(directory: Path) -> ModelSet:
    """Every usable model in ``directory`` by role (see the module docstring)."""
    cards = sorted(directory.glob(f"*{CARD_SUFFIX}")) if directory.is_dir() else []
    failure: dict[Role, dict[float, FailureModel]] = {"node-failure": {}, "disk-failure": {}}
    anomaly: dict[Role, AnomalyModel] = {}
    refused: dict[str, str] = {}
    fused: list[tuple[Path, OnnxModel]] = []
    for card_path in cards:
        try:
            model = OnnxModel.load(card_path)
            if model.card.kind == FUSED_KIND:
                fused.append((card_path, model))
                continue
            role = _ROLE_BY_CARD.get((model.card.kind, model.schema.name))
            if role is None:
                log.debug(
                    "model has no role on the agent; not loaded",
                    extra={"model": model.card.name, "kind": model.card.kind},
                )
                continue
            if role in failure:
                loaded = failure_model(model)
                _keep_newest(failure[role], loaded.horizon_seconds, loaded, refused, card_path)
            else:
                candidate = anomaly_model(model)
                kept = anomaly.get(role)
                if kept is None or candidate.version > kept.version:
                    anomaly[role] = candidate
        except Exception as exc:  # integrity, contract, I/O and JSON errors alike
            refused[card_path.name] = f"{type(exc).__name__}: {exc}"
            log.error(
                "model refused; scoring goes on without it",
                extra={"card": str(card_path), "reason": refused[card_path.name]},
            )
    models = ModelSet(
        node_failure=tuple(v for _, v in sorted(failure["node-failure"].items())),
        disk_failure=tuple(v for _, v in sorted(failure["disk-failure"].items())),
        node_anomaly=anomaly.get("node-anomaly"),
        vm_anomaly=anomaly.get("vm-anomaly"),
        refused=refused,
        missing=tuple(r for r in ROLES if not (failure.get(r) or anomaly.get(r))),
    )
    for card_path, model in fused:
        try:
            models = with_fused(models, model)
        except Exception as exc:  # contract and onnxruntime errors alike
            refused[card_path.name] = f"{type(exc).__name__}: {exc}"
            log.error(
                "fused model refused; its members use their own sessions",
                extra={"card": str(card_path), "reason": refused[card_path.name]},
            )
    for role in models.missing:
        log.warning(
            "no model for this role; its scores are null",
            extra={"role": role, "models_dir": str(directory)},
        )
    log.info("models loaded", extra={"models": models.summary(), "models_dir": str(directory)})
    return models


def with_fused(models: ModelSet, fused: OnnxModel) -> ModelSet:
    """``models`` with the members ``fused`` serves routed through it (module docstring).

    Raises ModelRefused when the card's member list is malformed or a member's fused
    score differs from its own; members that were not loaded with exactly the listed
    version and sha256 (e.g. updated since) are left alone, with a log line.
    """
    card = fused.card
    loaded = {m.name: m for m in models.loaded() if m.model.schema.name == fused.schema.name}
    rows = _check_rows(fused, loaded.values())
    outputs = fused.run(rows)
    served: dict[str, FailureModel | AnomalyModel] = {}
    shared = SharedRun(fused)
    for entry in card.extra.get("members") or ():
        try:
            name, version, digest = str(entry["name"]), str(entry["version"]), entry["sha256"]
            output, column = str(entry["output"]), int(entry["column"])
        except (KeyError, TypeError, ValueError):
            raise ModelRefused(f"{card.name}: malformed member entry {entry!r}") from None
        if output not in outputs or not 0 <= column < outputs[output].shape[1]:
            raise ModelRefused(f"{card.name}: member {name}: no column {column} in {output!r}")
        member = loaded.get(name)
        if member is None or member.version != version or member.model.card.sha256 != digest:
            log.info(
                "fused model does not hold the loaded version of a member; it keeps its session",
                extra={"fused": card.name, "member": name, "fused_member_version": version},
            )
            continue
        own = (
            member.own_probabilities(rows)
            if isinstance(member, FailureModel)
            else member.own_scores(rows)
        )
        difference = float(np.max(np.abs(outputs[output][:, column].astype(np.float64) - own)))
        if not difference <= FUSED_TOLERANCE:
            raise ModelRefused(f"{card.name}: member {name} scores differ by {difference:g}")
        served[name] = replace(member, fused=FusedScore(shared, output, column))
    if not served:
        log.warning("fused model serves none of the loaded models", extra={"fused": card.name})
        return models

    def swap(model: Any) -> Any:
        return served.get(model.name, model) if model is not None else None

    return replace(
        models,
        node_failure=tuple(swap(m) for m in models.node_failure),
        disk_failure=tuple(swap(m) for m in models.disk_failure),
        node_anomaly=swap(models.node_anomaly),
        vm_anomaly=swap(models.vm_anomaly),
        fused={**models.fused, card.name: tuple(served)},
    )


def _check_rows(fused: OnnxModel, members: Iterable[FailureModel | AnomalyModel]) -> FloatArray32:
    """The neutral row and every failure member's baseline: where fused and own must agree."""
    rows = [np.asarray(fused.schema.fills(), dtype=np.float32)]
    rows += [m.baseline for m in members if isinstance(m, FailureModel) and m.baseline is not None]
    return np.stack(rows).astype(np.float32)


def failure_model(model: OnnxModel) -> FailureModel:
    """Check a failure card against the contract; raises ModelRefused."""
    card = model.card
    if not card.horizons_seconds or not float(card.horizons_seconds[0]) > 0:
        raise ModelRefused(f"{card.name}: failure card without a positive horizon")
    if PROBABILITIES not in model.output_names:
        raise ModelRefused(f"{card.name}: no {PROBABILITIES!r} output ({model.output_names})")
    neutral = _neutral_row(model)
    shape = model.run(neutral)[PROBABILITIES].shape
    if shape != (1, 2):
        raise ModelRefused(f"{card.name}: probabilities have shape {shape}, expected (n, 2)")
    alert = card.thresholds.get("alert")
    return FailureModel(
        model=model,
        horizon_seconds=float(card.horizons_seconds[0]),
        alert_threshold=float(alert) if isinstance(alert, int | float) else None,
        calibration=_calibration(card.name, card.calibration),
        baseline=_per_feature(card.name, card.extra, "baseline", model, np.float32),
    )


def anomaly_model(model: OnnxModel) -> AnomalyModel:
    """Check an anomaly card against the contract; raises ModelRefused."""
    card = model.card
    output = next(iter(card.outputs), None)
    if output is None or output not in model.output_names:
        raise ModelRefused(f"{card.name}: card output {output!r} not in {model.output_names}")
    try:
        warning, critical = float(card.thresholds["warning"]), float(card.thresholds["critical"])
    except (KeyError, TypeError, ValueError):
        raise ModelRefused(f"{card.name}: thresholds need numeric warning and critical") from None
    size = model.run(_neutral_row(model))[output].size
    if size != 1:
        raise ModelRefused(f"{card.name}: {size} scores for one row, expected 1")
    median = _per_feature(card.name, card.extra, "median", model, np.float64)
    mad = _per_feature(card.name, card.extra, "mad", model, np.float64)
    return AnomalyModel(
        model=model,
        output=output,
        warning=warning,
        critical=critical,
        feature_z=float(card.thresholds.get("feature_z", DEFAULT_FEATURE_Z)),
        median=median if mad is not None else None,
        mad=mad if median is not None else None,
    )


def _keep_newest(
    by_horizon: dict[float, FailureModel],
    horizon: float,
    candidate: FailureModel,
    refused: dict[str, str],
    card_path: Path,
) -> None:
    """Two models for one role and horizon: the newer version wins, the other is refused."""
    kept = by_horizon.get(horizon)
    if kept is None or candidate.version > kept.version:
        by_horizon[horizon] = candidate
        loser = kept
    else:
        loser = candidate
    if loser is not None:
        refused[card_path.name] = f"{loser.name} {loser.version}: superseded for this horizon"


def _neutral_row(model: OnnxModel) -> FloatArray32:
    return np.asarray([model.schema.fills()], dtype=np.float32)


def _calibration(name: str, calibration: dict[str, Any]) -> CalibrationTable:
    try:
        table = CalibrationTable.from_bins(calibration.get("bins") or ())
    except (TypeError, ValueError, IndexError):
        table = CalibrationTable()
    if not table.bins:
        log.warning(
            "model has no usable calibration bins; its predictions have no confidence interval",
            extra={"model": name},
        )
    return table


def _per_feature(
    name: str,
    extra: dict[str, Any],
    key: str,
    model: OnnxModel,
    dtype: type[np.float32] | type[np.float64],
) -> npt.NDArray[Any] | None:
    """``card.extra[key]`` as one number per feature, or None (logged) when unusable."""
    values = extra.get(key)
    try:
        array = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError):
        array = np.empty(0, dtype=dtype)
    if array.shape != (len(model.schema.features),) or not np.all(np.isfinite(array)):
        log.warning(
            "model card lacks a usable per-feature list; the scores that need it are skipped",
            extra={"model": name, "key": key},
        )
        return None
    return array
