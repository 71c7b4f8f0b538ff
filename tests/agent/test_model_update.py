"""Model updates: signed with a real Ed25519 key, the bundled disk model's real bytes.

The scorer loads only the bundled ``disk-failure-7d`` (copied to tmp_path with its card),
so each test starts from a known model and version.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from novacron.agent.config import ScoringSettings, parse_config
from novacron.agent.intelligence import NodeIntelligence
from novacron.agent.model_set import ModelSet
from novacron.agent.model_update import (
    MODELS_SUBDIR,
    UPDATE_SUFFIX,
    ModelInstaller,
    ModelUpdateRefused,
    load_trusted_keys,
)
from novacron.agent.spool import Spool
from novacron.agent.stream import StreamClient, StreamSettings
from novacron.coordinator.pki import generate_signing_key
from novacron.models.card import BUNDLED_DIR, ModelCard
from novacron.models.runtime import sha256_hex
from novacron.models.schema import DISK
from novacron.models.signing import key_id, load_private_key, sign_model
from novacron.protos import common_pb2, telemetry_pb2
from tests.agent.fake_coordinator import FakeCoordinator, FakeServer

NAME = "disk-failure-7d"
NEW_VERSION = "2099.01.01.1"
BUNDLED_ONNX = (BUNDLED_DIR / f"{NAME}.onnx").read_bytes()
BUNDLED_VERSION = ModelCard.read(BUNDLED_DIR / f"{NAME}.card.json").version


@dataclass
class Setup:
    intelligence: NodeIntelligence
    installer: ModelInstaller
    state_dir: Path
    signing_key: Path
    changes: list[ModelSet]


def make_update(
    signing_key: Path,
    *,
    version: str = NEW_VERSION,
    onnx: bytes = BUNDLED_ONNX,
    schema_version: int = DISK.version,
    name: str = NAME,
) -> telemetry_pb2.ModelUpdate:
    digest = sha256_hex(onnx)
    return telemetry_pb2.ModelUpdate(
        model_name=name,
        version=version,
        onnx=onnx,
        sha256=digest,
        ed25519_signature=sign_model(
            signing_key, name=name, version=version, schema_version=schema_version, sha256=digest
        ),
        signing_key_id=key_id(load_private_key(signing_key).public_key()),
        feature_schema_version=schema_version,
    )


def build(tmp_path: Path, signing_key: Path) -> Setup:
    models_dir = tmp_path / "models-in-use"
    if not models_dir.exists():
        models_dir.mkdir()
        for suffix in (".card.json", ".onnx"):
            shutil.copy(BUNDLED_DIR / f"{NAME}{suffix}", models_dir)
    config = replace(
        parse_config({"agent": {"node_id": "hv-1"}}, "test"),
        scoring=ScoringSettings(models_dir=models_dir),
    )
    state_dir = tmp_path / "state"
    intelligence = NodeIntelligence(config, state_dir=state_dir)
    changes: list[ModelSet] = []
    installer = ModelInstaller(
        intelligence,
        load_trusted_keys([signing_key.with_suffix(".pub")]),
        state_dir,
        on_change=changes.append,
    )
    return Setup(intelligence, installer, state_dir, signing_key, changes)


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    key = tmp_path / "keys" / "model-signing.key"
    key.parent.mkdir()
    generate_signing_key(key)
    return build(tmp_path, key)


def disk_version(setup: Setup) -> str:
    scorer = setup.intelligence.scorer
    assert scorer is not None
    (model,) = scorer.models.disk_failure
    return model.version


def test_signed_update_is_swapped_in_and_persisted(setup: Setup, tmp_path: Path) -> None:
    before = setup.intelligence.scorer
    assert disk_version(setup) == BUNDLED_VERSION
    installed = setup.installer.install(make_update(setup.signing_key))
    assert installed.version == NEW_VERSION and installed.persisted
    assert setup.intelligence.scorer is not before  # one new scorer, not a mutated one
    assert disk_version(setup) == NEW_VERSION
    assert [m.summary()[NAME] for m in setup.changes] == [NEW_VERSION]
    saved = json.loads((setup.state_dir / MODELS_SUBDIR / f"{NAME}{UPDATE_SUFFIX}").read_text())
    assert saved["card"]["version"] == NEW_VERSION
    assert (setup.state_dir / MODELS_SUBDIR / saved["card"]["onnx_file"]).read_bytes() == (
        BUNDLED_ONNX
    )
    # A restarted agent loads the bundled model, then prefers the accepted one.
    restarted = build(tmp_path, setup.signing_key)
    assert disk_version(restarted) == BUNDLED_VERSION
    loaded = restarted.installer.load_persisted()
    assert [(m.name, m.version) for m in loaded] == [(NAME, NEW_VERSION)]
    assert disk_version(restarted) == NEW_VERSION


def test_same_update_twice_is_unchanged(setup: Setup) -> None:
    update = make_update(setup.signing_key)
    setup.installer.install(update)
    scorer = setup.intelligence.scorer
    assert not setup.installer.install(update).persisted
    assert setup.intelligence.scorer is scorer


def tampered_sha(setup: Setup) -> telemetry_pb2.ModelUpdate:
    update = make_update(setup.signing_key)
    update.onnx = update.onnx + b"\0"
    return update


def bad_signature(setup: Setup) -> telemetry_pb2.ModelUpdate:
    update = make_update(setup.signing_key)
    update.ed25519_signature = (
        bytes([update.ed25519_signature[0] ^ 1]) + (update.ed25519_signature[1:])
    )
    return update


def unknown_key(setup: Setup) -> telemetry_pb2.ModelUpdate:
    other = setup.signing_key.with_name("other.key")
    generate_signing_key(other)
    return make_update(other)


def garbage_onnx(setup: Setup) -> telemetry_pb2.ModelUpdate:
    return make_update(setup.signing_key, onnx=b"not an onnx model at all")


def wrong_schema(setup: Setup) -> telemetry_pb2.ModelUpdate:
    return make_update(setup.signing_key, schema_version=DISK.version + 1)


def older_version(setup: Setup) -> telemetry_pb2.ModelUpdate:
    return make_update(setup.signing_key, version="2000.01.01")


def unknown_model(setup: Setup) -> telemetry_pb2.ModelUpdate:
    return make_update(setup.signing_key, name="gpu-failure-1d")


def path_name(setup: Setup) -> telemetry_pb2.ModelUpdate:
    return make_update(setup.signing_key, name="../../etc/evil")


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (tampered_sha, "sha256 of the ONNX bytes"),
        (bad_signature, "does not verify"),
        (unknown_key, "is not trusted"),
        (garbage_onnx, "ModelIntegrityError"),
        (wrong_schema, "feature schema version"),
        (older_version, "not newer than the loaded"),
        (unknown_model, "no model named"),
        (path_name, "not a valid model name"),
    ],
)
def test_refused_update_keeps_the_old_model(
    setup: Setup, tamper: object, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    update = tamper(setup)  # type: ignore[operator]
    scorer = setup.intelligence.scorer
    with pytest.raises(ModelUpdateRefused, match=reason):
        setup.installer.install(update)
    assert setup.intelligence.scorer is scorer
    assert disk_version(setup) == BUNDLED_VERSION
    assert not (setup.state_dir / MODELS_SUBDIR).exists()
    assert setup.changes == []
    # handle() is what the stream calls: it logs and never raises.
    with caplog.at_level(logging.ERROR):
        assert setup.installer.handle(update) is None
    refusals = [r for r in caplog.records if r.getMessage().startswith("model update refused")]
    assert len(refusals) == 1
    assert reason in getattr(refusals[0], "reason", "")


def test_no_trusted_keys_refuses_everything(setup: Setup) -> None:
    setup.installer.trusted_keys = load_trusted_keys([])
    with pytest.raises(ModelUpdateRefused, match="none configured"):
        setup.installer.install(make_update(setup.signing_key))


def test_unusable_trusted_key_file_is_skipped(
    tmp_path: Path, setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    junk = tmp_path / "junk.pub"
    junk.write_text("not a key")
    with caplog.at_level(logging.ERROR):
        keys = load_trusted_keys([junk, setup.signing_key.with_suffix(".pub")])
    assert len(keys.keys) == 1
    assert "trusted model key unusable" in caplog.text


def test_tampered_persisted_model_falls_back_to_the_bundled(
    setup: Setup, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    setup.installer.install(make_update(setup.signing_key))
    (onnx,) = (setup.state_dir / MODELS_SUBDIR).glob("*.onnx")
    data = onnx.read_bytes()
    onnx.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    restarted = build(tmp_path, setup.signing_key)
    with caplog.at_level(logging.ERROR):
        assert restarted.installer.load_persisted() == []
    assert disk_version(restarted) == BUNDLED_VERSION
    assert "persisted model refused" in caplog.text


def test_persisted_model_needs_a_still_trusted_key(setup: Setup, tmp_path: Path) -> None:
    setup.installer.install(make_update(setup.signing_key))
    restarted = build(tmp_path, setup.signing_key)
    restarted.installer.trusted_keys = load_trusted_keys([])  # the key was rotated out
    assert restarted.installer.load_persisted() == []
    assert disk_version(restarted) == BUNDLED_VERSION


def test_newer_bundled_model_wins_over_an_older_persisted_one(setup: Setup, tmp_path: Path) -> None:
    setup.installer.install(make_update(setup.signing_key, version=BUNDLED_VERSION + ".1"))
    # An agent upgrade ships a newer bundled model than the one accepted before.
    card_path = tmp_path / "models-in-use" / f"{NAME}.card.json"
    card = ModelCard.read(card_path)
    card_path.write_text(replace(card, version="2100.01.01").to_json())
    restarted = build(tmp_path, setup.signing_key)
    assert restarted.installer.load_persisted() == []
    assert disk_version(restarted) == "2100.01.01"


def test_scoring_off_refuses_updates(tmp_path: Path, setup: Setup) -> None:
    setup.intelligence.scorer = None
    with pytest.raises(ModelUpdateRefused, match="scoring is off"):
        setup.installer.install(make_update(setup.signing_key))


def test_update_over_the_stream_is_installed(setup: Setup, tmp_path: Path) -> None:
    """The whole path: coordinator -> stream -> installer -> scorer."""
    fake = FakeCoordinator()
    server = FakeServer(fake)
    try:
        with Spool(tmp_path / "spool.sqlite") as spool:
            client = StreamClient(
                StreamSettings(address=server.address, insecure=True),
                spool,
                lambda: telemetry_pb2.Hello(node=common_pb2.NodeId(host="hv-1")),
                on_model_update=setup.installer.handle,
            )
            client.start()
            try:
                assert client.wait_connected(5)
                fake.send(
                    "hv-1", telemetry_pb2.CoordinatorMessage(model_update=bad_signature(setup))
                )
                fake.send(
                    "hv-1",
                    telemetry_pb2.CoordinatorMessage(model_update=make_update(setup.signing_key)),
                )
                assert fake.wait_for(lambda: disk_version(setup) == NEW_VERSION, 10)
                assert client.connected  # a refused update does not end the stream
                assert len(fake.hellos) == 1
            finally:
                client.stop()
    finally:
        server.stop()
