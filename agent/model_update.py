"""Install the models the coordinator pushes: verify, load, swap, persist.

A ``ModelUpdate`` carries the ONNX bytes, their sha256 and an Ed25519 signature over
name, version, feature schema version and sha256 (:mod:`novacron.models.signing`). It
carries no model card, so the card comes from the model it replaces: the loaded model of
the same name, else the bundled card of that name, with the new version and sha256. An
update therefore retrains a model the agent already knows (same role, schema, outputs,
thresholds and calibration); a new kind of model ships with a new agent.

Checks, in order, each refusing the update with a one-line reason and leaving the
loaded model in place (:class:`ModelUpdateRefused`):

1. the name is one a file may be named after, and scoring is on;
2. ``sha256(onnx) == update.sha256``;
3. a trusted key (``[coordinator] trusted_model_keys``) verifies the signature;
4. the model is known (loaded or bundled) and the update's feature schema version is the
   one that model's schema has on this agent;
5. the version is not older than the loaded one (the signature binds the version, so a
   replayed old model is recognised; roll back by publishing the old bytes under a new
   version); the same version with the same bytes is "already installed";
6. :meth:`OnnxModel.from_bytes` verifies the bytes against the card and the schema, and
   the scoring contract (:func:`~novacron.agent.model_set.failure_model` /
   :func:`~novacron.agent.model_set.anomaly_model`) runs it once.

Only then is a new :class:`~novacron.agent.scoring.Scorer` built with the model swapped
in and assigned to ``NodeIntelligence.scorer`` in one reference assignment: a cycle
scores entirely with the old models or entirely with the new ones (a fresh scorer also
drops the old model's cached attributions).

The accepted model is written to ``<state_dir>/models/`` (``<name>-<sha16>.onnx`` then
``<name>.update.json`` with the card and the signature, each atomically), so it survives
a restart: :meth:`ModelInstaller.load_persisted` re-verifies the file against its card
and the signature against the trusted keys, and prefers it to the bundled model unless
the bundled one is newer (an agent upgrade that ships a newer model wins).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from prometheus_client import Counter

from novacron.agent.intelligence import NodeIntelligence
from novacron.agent.model_set import (
    ROLES,
    AnomalyModel,
    FailureModel,
    ModelSet,
    Role,
    anomaly_model,
    failure_model,
)
from novacron.agent.scoring import Scorer
from novacron.models.card import ModelCard, bundled_card_path
from novacron.models.runtime import OnnxModel, sha256_hex
from novacron.models.schema import schema_for
from novacron.models.signing import (
    ModelSignatureError,
    TrustedKeys,
    key_id,
    load_public_key,
)
from novacron.protos import telemetry_pb2

log = logging.getLogger(__name__)

MODELS_SUBDIR = "models"
UPDATE_SUFFIX = ".update.json"
_UPDATE_FORMAT = 1
# Model names become file names: nothing that could leave the models directory.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ROLE_BY_SCHEMA_AND_KIND: dict[tuple[str, str], Role] = {
    (role.split("-")[0], role.split("-")[1]): role for role in ROLES
}

MODEL_UPDATES = Counter(
    "novacron_agent_model_updates",
    "Model updates received from the coordinator, by result (installed, unchanged, refused).",
    ["result"],
)


class ModelUpdateRefused(Exception):
    """A model update the agent will not run; the loaded model stays. One-line reason."""


@dataclass(frozen=True)
class InstalledModel:
    name: str
    version: str
    sha256: str
    persisted: bool  # written to the state directory (survives a restart)


@dataclass(frozen=True)
class _Signed:
    """The signed facts of an update, as received and as persisted."""

    signing_key_id: str
    signature: bytes
    schema_version: int


def load_trusted_keys(paths: Iterable[Path]) -> TrustedKeys:
    """The trusted model keys that can be read; each unusable file is logged and skipped.

    A bad key file must not stop the agent: it only means updates signed with that key
    are refused.
    """
    keys = {}
    for path in paths:
        try:
            key = load_public_key(path)
        except ModelSignatureError as exc:
            log.error("trusted model key unusable; skipped", extra={"error": str(exc)})
            continue
        keys[key_id(key)] = key
    if not keys:
        log.info("no trusted model keys configured: model updates will be refused")
    return TrustedKeys(keys)


class ModelInstaller:
    """Verifies model updates and swaps them into ``intelligence``'s scorer."""

    def __init__(
        self,
        intelligence: NodeIntelligence,
        trusted_keys: TrustedKeys,
        state_dir: Path | None,
        *,
        on_change: Callable[[ModelSet], None] | None = None,
    ) -> None:
        """``state_dir`` None: accepted models live in memory only.

        ``on_change`` is called with the new model set after every swap (health report).
        """
        self.intelligence = intelligence
        self.trusted_keys = trusted_keys
        self.directory = state_dir / MODELS_SUBDIR if state_dir is not None else None
        self._on_change = on_change
        self._lock = threading.Lock()

    def handle(self, update: telemetry_pb2.ModelUpdate) -> InstalledModel | None:
        """Install ``update`` or log why not; never raises. None: refused."""
        try:
            installed = self.install(update)
        except ModelUpdateRefused as exc:
            MODEL_UPDATES.labels("refused").inc()
            log.error(
                "model update refused; the loaded model stays",
                extra={
                    "model": update.model_name,
                    "version": update.version,
                    "reason": str(exc),
                },
            )
            return None
        except Exception:  # a bug here must not take the stream down
            MODEL_UPDATES.labels("refused").inc()
            log.exception(
                "model update failed; the loaded model stays",
                extra={"model": update.model_name, "version": update.version},
            )
            return None
        return installed

    def install(self, update: telemetry_pb2.ModelUpdate) -> InstalledModel:
        """Verify and swap in ``update``; raises ModelUpdateRefused (see module doc)."""
        name, version = update.model_name, update.version
        if not _MODEL_NAME.fullmatch(name):
            raise ModelUpdateRefused(f"model name {name!r} is not a valid model name")
        digest = sha256_hex(update.onnx)
        if digest != update.sha256:
            raise ModelUpdateRefused(
                f"sha256 of the ONNX bytes is {digest[:16]}..., the update says "
                f"{update.sha256[:16]}..."
            )
        signed = _Signed(
            update.signing_key_id, update.ed25519_signature, update.feature_schema_version
        )
        self._verify_signature(name, version, digest, signed)
        with self._lock:
            scorer = self._scorer()
            template = self._template(scorer.models, name)
            schema = schema_for(template.schema)
            if update.feature_schema_version != schema.version:
                raise ModelUpdateRefused(
                    f"feature schema version {update.feature_schema_version} is not the "
                    f"{schema.name} schema this agent has (v{schema.version})"
                )
            loaded = _loaded_card(scorer.models, name)
            if loaded is not None:
                if loaded.version == version and loaded.sha256 == digest:
                    MODEL_UPDATES.labels("unchanged").inc()
                    log.info("model update already installed", extra={"model": name})
                    return InstalledModel(name, version, digest, persisted=False)
                if version <= loaded.version:
                    raise ModelUpdateRefused(
                        f"version {version} is not newer than the loaded {loaded.version}"
                    )
            card = replace(
                template, version=version, sha256=digest, onnx_file=_onnx_file(name, digest)
            )
            self._swap(scorer, card, update.onnx)
            persisted = self._persist(card, update.onnx, signed)
        MODEL_UPDATES.labels("installed").inc()
        log.info(
            "model update installed",
            extra={
                "model": name,
                "version": version,
                "previous_version": loaded.version if loaded else None,
                "sha256": digest,
                "persisted": persisted,
            },
        )
        return InstalledModel(name, version, digest, persisted)

    def load_persisted(self) -> list[InstalledModel]:
        """Swap in the models accepted before a restart (see module doc); never raises."""
        if self.directory is None or not self.directory.is_dir():
            return []
        out = []
        for path in sorted(self.directory.glob(f"*{UPDATE_SUFFIX}")):
            try:
                installed = self._load_one(path)
            except Exception as exc:  # unusable file: the bundled model stays
                log.error(
                    "persisted model refused; using the bundled one",
                    extra={"file": str(path), "reason": f"{type(exc).__name__}: {exc}"},
                )
                continue
            if installed is not None:
                out.append(installed)
        return out

    # -- pieces ----------------------------------------------------------------------

    def _load_one(self, path: Path) -> InstalledModel | None:
        document = json.loads(path.read_text())
        if not isinstance(document, dict) or document.get("format") != _UPDATE_FORMAT:
            raise ModelUpdateRefused("unknown file format")
        card = ModelCard.from_json(json.dumps(document["card"]))
        signed = _Signed(
            str(document["signing_key_id"]),
            bytes.fromhex(str(document["signature"])),
            int(document["feature_schema_version"]),
        )
        if not _MODEL_NAME.fullmatch(card.name) or card.onnx_file != _onnx_file(
            card.name, card.sha256
        ):
            raise ModelUpdateRefused("card names an unexpected model file")
        self._verify_signature(card.name, card.version, card.sha256, signed)
        if schema_for(card.schema).version != signed.schema_version:
            raise ModelUpdateRefused("signed schema version differs from the card's schema")
        assert self.directory is not None
        onnx = (self.directory / card.onnx_file).read_bytes()
        with self._lock:
            scorer = self._scorer()
            loaded = _loaded_card(scorer.models, card.name)
            if loaded is not None and loaded.version > card.version:
                log.info(
                    "persisted model is older than the bundled one; keeping the bundled",
                    extra={
                        "model": card.name,
                        "persisted_version": card.version,
                        "bundled_version": loaded.version,
                    },
                )
                return None
            self._swap(scorer, card, onnx)
        log.info(
            "persisted model loaded",
            extra={"model": card.name, "version": card.version, "sha256": card.sha256},
        )
        return InstalledModel(card.name, card.version, card.sha256, persisted=True)

    def _scorer(self) -> Scorer:
        scorer = self.intelligence.scorer
        if scorer is None:
            raise ModelUpdateRefused("scoring is off on this agent ([scoring] enabled = false)")
        return scorer

    def _verify_signature(self, name: str, version: str, digest: str, signed: _Signed) -> None:
        try:
            self.trusted_keys.verify(
                signed.signing_key_id,
                name=name,
                version=version,
                schema_version=signed.schema_version,
                sha256=digest,
                signature=signed.signature,
            )
        except ModelSignatureError as exc:
            raise ModelUpdateRefused(str(exc)) from None

    def _template(self, models: ModelSet, name: str) -> ModelCard:
        """The card an update of ``name`` inherits: the loaded model's, else the bundled."""
        loaded = _loaded_card(models, name)
        if loaded is not None:
            return loaded
        path = bundled_card_path(name)
        if not path.is_file():
            raise ModelUpdateRefused(f"no model named {name!r} is loaded or bundled")
        return ModelCard.read(path)

    def _swap(self, scorer: Scorer, card: ModelCard, onnx: bytes) -> None:
        """Load ``onnx`` under ``card`` and replace the scorer (one assignment)."""
        try:
            model = OnnxModel.from_bytes(card, onnx)
            role = _ROLE_BY_SCHEMA_AND_KIND.get((model.schema.name, card.kind))
            if role is None:
                raise ModelUpdateRefused(
                    f"a {card.kind} model for the {model.schema.name} schema has no role "
                    "on the agent"
                )
            wrapped = failure_model(model) if card.kind == "failure" else anomaly_model(model)
        except ModelUpdateRefused:
            raise
        except Exception as exc:  # integrity, onnxruntime and contract errors alike
            raise ModelUpdateRefused(f"{type(exc).__name__}: {exc}") from None
        models = with_model(scorer.models, role, wrapped)
        self.intelligence.scorer = Scorer(
            models, attribution_floor=scorer.attribution_floor, top_factors=scorer.top_factors
        )
        if self._on_change is not None:
            self._on_change(models)

    def _persist(self, card: ModelCard, onnx: bytes, signed: _Signed) -> bool:
        """Write the model and its card + signature; False (logged) if the disk refuses."""
        if self.directory is None:
            return False
        document = {
            "format": _UPDATE_FORMAT,
            "card": asdict(card),
            "signing_key_id": signed.signing_key_id,
            "signature": signed.signature.hex(),
            "feature_schema_version": signed.schema_version,
        }
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            _write_atomic(self.directory / card.onnx_file, onnx)
            _write_atomic(
                self.directory / f"{card.name}{UPDATE_SUFFIX}",
                (json.dumps(document, indent=2, sort_keys=True) + "\n").encode(),
            )
            for old in self.directory.glob(f"{card.name}-*.onnx"):
                if old.name != card.onnx_file:
                    old.unlink(missing_ok=True)
        except OSError as exc:
            log.error(
                "cannot persist the model update; it is in use until the agent restarts",
                extra={"model": card.name, "directory": str(self.directory), "error": str(exc)},
            )
            return False
        return True


def with_model(models: ModelSet, role: Role, model: FailureModel | AnomalyModel) -> ModelSet:
    """``models`` with ``model`` in ``role``: it replaces the model of the same name (and,
    for failure roles, the one of the same horizon, as at start-up)."""
    missing = tuple(r for r in models.missing if r != role)
    if isinstance(model, FailureModel):
        current = models.node_failure if role == "node-failure" else models.disk_failure
        kept = [
            m
            for m in current
            if m.name != model.name and m.horizon_seconds != model.horizon_seconds
        ]
        ordered = tuple(sorted([*kept, model], key=lambda m: m.horizon_seconds))
        if role == "node-failure":
            return replace(models, node_failure=ordered, missing=missing)
        return replace(models, disk_failure=ordered, missing=missing)
    if role == "node-anomaly":
        return replace(models, node_anomaly=model, missing=missing)
    return replace(models, vm_anomaly=model, missing=missing)


def _loaded_card(models: ModelSet, name: str) -> ModelCard | None:
    loaded = [*models.node_failure, *models.disk_failure, models.node_anomaly, models.vm_anomaly]
    for model in loaded:
        if model is not None and model.name == name:
            return model.model.card
    return None


def _onnx_file(name: str, digest: str) -> str:
    """Named by content: the previous file stays valid until the new card replaces it."""
    return f"{name}-{digest[:16]}.onnx"


def _write_atomic(path: Path, data: bytes) -> None:
    """Temporary file, fsync, rename: a crash leaves the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
