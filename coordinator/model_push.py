"""Model distribution: a model dropped into ``models_dir`` is signed and pushed to agents.

An operator (or the training pipeline) places ``<name>.card.json`` and the ``.onnx`` it
names in ``[models] models_dir``. :class:`ModelWatcher` polls the directory every few
seconds (a stat of each file; nothing is read unless something changed), checks each
card's digest against its ONNX bytes, signs the update with the Ed25519 key from
``[models] signing_key`` (``novacron.models.signing``) and hands the set to
:meth:`~novacron.coordinator.ingest.Ingest.publish_models`, which sends each connected
agent the models it does not have yet, and every agent that connects later too.

A card that cannot be used (unreadable, digest mismatch, unknown schema, too large for
one message) is skipped and logged once until its files change: a half-copied model is
simply picked up at the next poll after the copy completes.

A fused model (``kind = "fused"``, :mod:`novacron.models.training.fuse`; the training
commands write one next to the node models) is never pushed: an agent has no role to
install it in and refuses it. It needs none: the agent uses its bundled fused graph only
for members it loaded with exactly the sha256 the fused card names, and a pushed member
simply runs in its own session. Pushing the members is enough.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from novacron.coordinator.ingest_checks import MAX_MESSAGE_BYTES
from novacron.models.card import CARD_SUFFIX, FUSED_KIND, ModelCard
from novacron.models.schema import schema_for
from novacron.models.signing import key_id, load_private_key, sign_model
from novacron.protos import telemetry_pb2
from novacron.protos.runtime.jsonlog import LogOnce

log = logging.getLogger(__name__)
_once = LogOnce(log)

DEFAULT_POLL_SECONDS = 5.0
# Room for the other ModelUpdate fields inside the 32 MiB message limit.
MAX_MODEL_BYTES = MAX_MESSAGE_BYTES - 64 * 1024

Fingerprint = tuple[tuple[str, int, int], ...]


class ModelPushError(Exception):
    """A model in the models directory that cannot be pushed; the message says why."""


class NotPushed(ModelPushError):
    """A usable model that is deliberately not pushed (a fused model: module doc)."""


class ModelSigner:
    """Signs model updates with one Ed25519 private key (ModelSignatureError if unusable)."""

    def __init__(self, private_key_path: Path) -> None:
        self.path = private_key_path
        self.key_id = key_id(load_private_key(private_key_path).public_key())

    def update(self, card: ModelCard, onnx: bytes) -> telemetry_pb2.ModelUpdate:
        """The signed ``ModelUpdate`` for ``card`` and its ONNX bytes."""
        digest = hashlib.sha256(onnx).hexdigest()
        if digest != card.sha256:
            raise ModelPushError(
                f"model {card.name} {card.version}: ONNX sha256 {digest[:16]}... does not "
                f"match the card's {card.sha256[:16]}... (still being copied?)"
            )
        if len(onnx) > MAX_MODEL_BYTES:
            raise ModelPushError(
                f"model {card.name} {card.version}: {len(onnx)} bytes do not fit in one "
                f"message (at most {MAX_MODEL_BYTES})"
            )
        try:
            schema_version = schema_for(card.schema).version
        except ValueError as exc:
            raise ModelPushError(f"model {card.name} {card.version}: {exc}") from None
        signature = sign_model(
            self.path,
            name=card.name,
            version=card.version,
            schema_version=schema_version,
            sha256=digest,
        )
        return telemetry_pb2.ModelUpdate(
            model_name=card.name,
            version=card.version,
            onnx=onnx,
            sha256=digest,
            ed25519_signature=signature,
            signing_key_id=self.key_id,
            feature_schema_version=schema_version,
        )


def read_model(card_path: Path, signer: ModelSigner) -> telemetry_pb2.ModelUpdate:
    """The signed update of one card in a models directory (ModelPushError if unusable,
    NotPushed if it is not to be pushed)."""
    try:
        card = ModelCard.read(card_path)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ModelPushError(f"{card_path}: unreadable model card: {exc}") from None
    if Path(card.onnx_file).name != card.onnx_file:
        raise ModelPushError(f"{card_path}: onnx_file {card.onnx_file!r} must be a plain file name")
    if card.kind == FUSED_KIND:
        raise NotPushed(
            f"{card_path}: {card.name} is a fused model; agents use their bundled one with "
            "the members they verified and need only the members pushed"
        )
    onnx_path = card_path.parent / card.onnx_file
    try:
        onnx = onnx_path.read_bytes()
    except OSError as exc:
        raise ModelPushError(f"{onnx_path}: cannot read: {exc.strerror or exc}") from None
    return signer.update(card, onnx)


def fingerprint(models_dir: Path) -> Fingerprint:
    """Name, mtime and size of every file in ``models_dir`` (empty if it does not exist)."""
    try:
        entries = list(models_dir.iterdir())
    except OSError:
        return ()
    found = []
    for entry in entries:
        try:
            stat = entry.stat()
        except OSError:
            continue
        found.append((entry.name, stat.st_mtime_ns, stat.st_size))
    return tuple(sorted(found))


class ModelWatcher:
    """Polls ``models_dir``; publishes the full set of signed updates whenever it changes."""

    def __init__(
        self,
        models_dir: Path,
        signer: ModelSigner,
        publish: Callable[[Sequence[telemetry_pb2.ModelUpdate]], None],
        *,
        interval_seconds: float = DEFAULT_POLL_SECONDS,
    ) -> None:
        self.models_dir = models_dir
        self.signer = signer
        self.publish = publish
        self.interval_seconds = interval_seconds
        self._seen: Fingerprint | None = None

    def poll(self) -> list[telemetry_pb2.ModelUpdate] | None:
        """The current updates if the directory changed since the last poll, else None."""
        current = fingerprint(self.models_dir)
        if current == self._seen:
            return None
        self._seen = current
        updates = []
        for card_path in sorted(self.models_dir.glob(f"*{CARD_SUFFIX}")):
            key = str(card_path)
            try:
                update = read_model(card_path, self.signer)
            except NotPushed as exc:
                _once.problem(key, logging.INFO, "model not pushed", reason=str(exc))
                continue
            except ModelPushError as exc:
                _once.problem(key, logging.WARNING, "model not pushed", error=str(exc))
                continue
            _once.recovered(key, "model ready to push", card=key)
            updates.append(update)
        log.info(
            "models directory read",
            extra={
                "models_dir": str(self.models_dir),
                "models": [f"{u.model_name} {u.version}" for u in updates],
                "signing_key_id": self.signer.key_id,
            },
        )
        return updates

    async def run(self) -> None:
        """Poll forever (cancel to stop); file reads and signing run off the event loop."""
        while True:
            try:
                updates = await asyncio.to_thread(self.poll)
            except Exception:  # a broken directory must not stop the coordinator
                log.exception("reading the models directory failed")
                updates = None
            if updates is not None:
                self.publish(updates)
            await asyncio.sleep(self.interval_seconds)
