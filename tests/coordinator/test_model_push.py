"""What the coordinator pushes from its models directory: never a fused model."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from novacron.coordinator.model_push import ModelSigner, ModelWatcher, NotPushed, read_model
from novacron.coordinator.pki import generate_signing_key
from novacron.models.card import FUSED_KIND, ModelCard
from novacron.models.training.fuse import refresh
from tests.coordinator.ingest_support import copy_bundled


def test_fused_model_is_not_pushed_but_its_members_are(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    generate_signing_key(tmp_path / "signing.key")
    signer = ModelSigner(tmp_path / "signing.key")
    models = tmp_path / "models"
    members = [copy_bundled(models, name) for name in ("node-failure-30m", "node-anomaly")]
    [fused] = refresh(models)  # what a training command leaves in its output directory
    assert fused.kind == FUSED_KIND and (models / fused.onnx_file).is_file()

    with pytest.raises(NotPushed, match="fused model"):
        read_model(models / f"{fused.name}.card.json", signer)
    watcher = ModelWatcher(models, signer, lambda _updates: None)
    with caplog.at_level(logging.INFO):
        updates = watcher.poll()
    assert updates is not None
    assert sorted(u.model_name for u in updates) == sorted(m.name for m in members)
    skipped = [r for r in caplog.records if r.getMessage() == "model not pushed"]
    assert [r.levelno for r in skipped] == [logging.INFO]  # expected, not a problem
    assert fused.name in skipped[0].reason  # type: ignore[attr-defined]


def test_card_kind_decides_not_the_file_name(tmp_path: Path) -> None:
    # A non-fused model whose name merely looks fused is still pushed.
    generate_signing_key(tmp_path / "signing.key")
    models = tmp_path / "models"
    card = copy_bundled(models, "node-anomaly")
    renamed = ModelCard.from_json(card.to_json().replace('"node-anomaly"', '"node-fused"'))
    (models / "node-anomaly.card.json").unlink()
    renamed.write(models)
    update = read_model(models / "node-fused.card.json", ModelSigner(tmp_path / "signing.key"))
    assert (update.model_name, update.sha256) == ("node-fused", card.sha256)
