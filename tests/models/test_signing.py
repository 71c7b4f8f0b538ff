"""Ed25519 model signatures: the exact signed text, and every way a forgery is caught."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, TypedDict

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from novacron.coordinator.pki import generate_signing_key
from novacron.models.card import BUNDLED_DIR, ModelCard
from novacron.models.schema import schema_for
from novacron.models.signing import (
    ModelSignatureError,
    TrustedKeys,
    key_id,
    load_private_key,
    load_public_key,
    sign_model,
    signing_message,
    verify_model,
)
from novacron.protos import telemetry_pb2

SHA = hashlib.sha256(b"onnx bytes").hexdigest()


class Fields(TypedDict):
    name: str
    version: str
    schema_version: int
    sha256: str


FIELDS: Fields = {
    "name": "disk_failure",
    "version": "2025.11.3",
    "schema_version": 3,
    "sha256": SHA,
}


@pytest.fixture()
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private = tmp_path / "model-signing.key"
    return private, generate_signing_key(private)


def test_signed_message_is_the_text_the_contract_defines() -> None:
    assert signing_message(**FIELDS) == f"disk_failure\n2025.11.3\n3\n{SHA}".encode()


def test_signature_is_plain_ed25519_over_that_text(keys: tuple[Path, Path]) -> None:
    private, public = keys
    signature = sign_model(private, **FIELDS)
    assert len(signature) == 64
    # Checked with cryptography directly, not through our verifier: any Ed25519
    # implementation given the public key and the documented text agrees.
    raw_key = load_public_key(public)
    raw_key.verify(signature, f"disk_failure\n2025.11.3\n3\n{SHA}".encode())
    verify_model(public, **FIELDS, signature=signature)
    verify_model(public.read_bytes(), **FIELDS, signature=signature)
    raw = raw_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    verify_model(raw, **FIELDS, signature=signature)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sha256", hashlib.sha256(b"other bytes").hexdigest()),
        ("version", "2025.11.2"),
        ("name", "node_failure"),
        ("schema_version", 4),
    ],
)
def test_any_tampered_field_is_rejected(keys: tuple[Path, Path], field: str, value: object) -> None:
    private, public = keys
    signature = sign_model(private, **FIELDS)
    tampered: dict[str, Any] = {**FIELDS, field: value}
    with pytest.raises(ModelSignatureError, match="does not verify with key"):
        verify_model(public, **tampered, signature=signature)


def test_tampered_signature_is_rejected(keys: tuple[Path, Path]) -> None:
    private, public = keys
    signature = bytearray(sign_model(private, **FIELDS))
    signature[10] ^= 0x01
    with pytest.raises(ModelSignatureError, match="does not verify"):
        verify_model(public, **FIELDS, signature=bytes(signature))
    with pytest.raises(ModelSignatureError, match="has 63 bytes, expected 64"):
        verify_model(public, **FIELDS, signature=bytes(signature[:63]))


def test_signature_by_another_key_is_rejected(keys: tuple[Path, Path], tmp_path: Path) -> None:
    private, _ = keys
    stranger_public = generate_signing_key(tmp_path / "stranger.key")
    signature = sign_model(private, **FIELDS)
    with pytest.raises(ModelSignatureError, match=f"with key {key_id(stranger_public)}"):
        verify_model(stranger_public, **FIELDS, signature=signature)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("name", "disk\nfailure", "on one line"),
        ("version", "", "non-empty"),
        ("sha256", SHA.upper(), "lower-case hex"),
        ("sha256", SHA[:-1], "lower-case hex"),
        ("schema_version", -1, "negative"),
        ("schema_version", True, "not an integer"),
    ],
)
def test_ambiguous_or_malformed_fields_are_refused_on_both_sides(
    keys: tuple[Path, Path], field: str, value: object, problem: str
) -> None:
    # "a\nb" + "c" and "a" + "b\nc" would sign the same text; neither side allows it.
    private, public = keys
    fields: dict[str, Any] = {**FIELDS, field: value}
    with pytest.raises(ModelSignatureError, match=problem):
        sign_model(private, **fields)
    with pytest.raises(ModelSignatureError, match=problem):
        verify_model(public, **fields, signature=bytes(64))


def test_key_id_is_the_sha256_prefix_of_the_raw_public_key(keys: tuple[Path, Path]) -> None:
    private, public = keys
    raw = (
        load_private_key(private)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    assert len(raw) == 32
    expected = hashlib.sha256(raw).hexdigest()[:16]
    assert key_id(public) == expected
    assert key_id(public.read_bytes()) == expected
    assert key_id(raw) == expected
    assert key_id(load_public_key(public)) == expected


def test_unusable_key_files_are_named(keys: tuple[Path, Path], tmp_path: Path) -> None:
    private, _ = keys
    with pytest.raises(ModelSignatureError, match="is a private key"):
        load_public_key(private)
    with pytest.raises(ModelSignatureError, match=r"missing\.pub: key file not found"):
        load_public_key(tmp_path / "missing.pub")
    ec_public = tmp_path / "ec.pub"
    ec_public.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ModelSignatureError, match="expected an Ed25519 key"):
        load_public_key(ec_public)
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ModelSignatureError, match="not a PEM public key"):
        load_public_key(garbage)
    with pytest.raises(ModelSignatureError, match="not a PEM private key"):
        sign_model(garbage, **FIELDS)


def test_trusted_keys_pick_the_key_named_by_the_update(
    keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, public = keys
    other_public = generate_signing_key(tmp_path / "other.key")
    trusted = TrustedKeys.load([public, other_public])
    assert set(trusted.keys) == {key_id(public), key_id(other_public)}
    signature = sign_model(private, **FIELDS)
    trusted.verify(key_id(public), **FIELDS, signature=signature)
    with pytest.raises(ModelSignatureError, match="does not verify"):
        trusted.verify(key_id(other_public), **FIELDS, signature=signature)
    with pytest.raises(ModelSignatureError, match="'0123456789abcdef' is not trusted"):
        trusted.verify("0123456789abcdef", **FIELDS, signature=signature)
    with pytest.raises(ModelSignatureError, match="none configured"):
        TrustedKeys.load([]).verify(key_id(public), **FIELDS, signature=signature)


def test_a_real_model_update_round_trips_through_the_wire(keys: tuple[Path, Path]) -> None:
    """What the coordinator sends and the agent checks, with the bundled ONNX model."""
    private, public = keys
    card = ModelCard.from_json((BUNDLED_DIR / "disk-failure-7d.card.json").read_text())
    onnx = (BUNDLED_DIR / card.onnx_file).read_bytes()
    fields: Fields = {
        "name": card.name,
        "version": card.version,
        "schema_version": schema_for(card.schema).version,
        "sha256": hashlib.sha256(onnx).hexdigest(),
    }
    signer = load_private_key(private)
    update = telemetry_pb2.ModelUpdate(
        model_name=fields["name"],
        version=fields["version"],
        onnx=onnx,
        sha256=fields["sha256"],
        ed25519_signature=sign_model(private, **fields),
        signing_key_id=key_id(signer.public_key()),
        feature_schema_version=fields["schema_version"],
    )
    received = telemetry_pb2.ModelUpdate.FromString(update.SerializeToString())

    assert hashlib.sha256(received.onnx).hexdigest() == received.sha256 == card.sha256
    TrustedKeys.load([public]).verify(
        received.signing_key_id,
        name=received.model_name,
        version=received.version,
        schema_version=received.feature_schema_version,
        sha256=received.sha256,
        signature=received.ed25519_signature,
    )
    received.version = "0.0.1"  # a replay of the same bytes as another version
    with pytest.raises(ModelSignatureError):
        TrustedKeys.load([public]).verify(
            received.signing_key_id,
            name=received.model_name,
            version=received.version,
            schema_version=received.feature_schema_version,
            sha256=received.sha256,
            signature=received.ed25519_signature,
        )


def test_generated_private_key_is_ed25519(keys: tuple[Path, Path]) -> None:
    assert isinstance(load_private_key(keys[0]), ed25519.Ed25519PrivateKey)
