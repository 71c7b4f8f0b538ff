"""Ed25519 signatures on model updates: the agent runs only models the operator signed.

TLS proves the coordinator is ours; the signature proves the *model* is, even if the
coordinator or its store is compromised, because the signing key can live offline. The
signed message is fixed by ``ModelUpdate`` in ``protos/telemetry.proto``: the UTF-8 text

    model_name + "\\n" + version + "\\n" + feature_schema_version (decimal) + "\\n" + sha256

with ``sha256`` the lower-case hex digest of the ONNX bytes. The digest binds the bytes;
name, version and schema bind what the bytes claim to be, so a validly signed model
cannot be replayed under another name, an older version or another schema. A name or
version containing a newline is refused: it would make two different updates sign the
same text.

Keys are PEM files (PKCS#8 private, SubjectPublicKeyInfo public) as written by
``novacron-coordinator pki init``. A key id is the first 16 hex characters of the
SHA-256 of the raw 32-byte public key; ``ModelUpdate.signing_key_id`` carries it so the
agent knows which trusted key to try.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_RAW_PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
KEY_ID_HEX_CHARS = 16

#: A public key as callers hold it: a PEM file, PEM or raw bytes, or a loaded key.
PublicKeySource = Path | bytes | ed25519.Ed25519PublicKey


class ModelSignatureError(Exception):
    """A model update whose signature, key or signed fields cannot be trusted."""


def signing_message(*, name: str, version: str, schema_version: int, sha256: str) -> bytes:
    """The exact bytes an update's signature covers (see the module docstring)."""
    for field, value in (("model name", name), ("version", version)):
        if not value or "\n" in value or "\r" in value:
            raise ModelSignatureError(f"{field} {value!r}: must be non-empty, on one line")
    if isinstance(schema_version, bool) or not isinstance(schema_version, int):
        raise ModelSignatureError(f"feature schema version {schema_version!r}: not an integer")
    if schema_version < 0:
        raise ModelSignatureError(f"feature schema version {schema_version}: negative")
    if not _SHA256_HEX.fullmatch(sha256):
        raise ModelSignatureError(f"sha256 {sha256!r}: expected 64 lower-case hex characters")
    return f"{name}\n{version}\n{schema_version}\n{sha256}".encode()


def sign_model(
    private_key_path: Path, *, name: str, version: str, schema_version: int, sha256: str
) -> bytes:
    """The 64-byte Ed25519 signature of an update, made with the key at ``private_key_path``."""
    message = signing_message(
        name=name, version=version, schema_version=schema_version, sha256=sha256
    )
    return load_private_key(private_key_path).sign(message)


def verify_model(
    public_key: PublicKeySource,
    *,
    name: str,
    version: str,
    schema_version: int,
    sha256: str,
    signature: bytes,
) -> None:
    """Return if ``signature`` by ``public_key`` covers these fields; else ModelSignatureError.

    ``public_key`` is a PEM file path, PEM bytes, the raw 32 bytes, or a loaded key.
    """
    key = _public_key(public_key)
    message = signing_message(
        name=name, version=version, schema_version=schema_version, sha256=sha256
    )
    if len(signature) != SIGNATURE_BYTES:
        raise ModelSignatureError(
            f"model {name} {version}: signature has {len(signature)} bytes, "
            f"expected {SIGNATURE_BYTES}"
        )
    try:
        key.verify(signature, message)
    except InvalidSignature:
        raise ModelSignatureError(
            f"model {name} {version}: signature does not verify with key {key_id(key)}"
        ) from None


def key_id(public_key: PublicKeySource) -> str:
    """First 16 hex characters of SHA-256 over the raw 32-byte public key."""
    raw = _public_key(public_key).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return hashlib.sha256(raw).hexdigest()[:KEY_ID_HEX_CHARS]


def load_public_key(source: Path | bytes) -> ed25519.Ed25519PublicKey:
    """An Ed25519 public key from a PEM file, PEM bytes or the raw 32 bytes.

    A private key is refused: it has no business on a machine that only verifies (the
    signing side gets its key id with ``key_id(load_private_key(path).public_key())``).
    """
    where = str(source) if isinstance(source, Path) else "public key bytes"
    data = _read(source) if isinstance(source, Path) else source
    if len(data) == _RAW_PUBLIC_KEY_BYTES and not data.startswith(b"-----"):
        try:
            return ed25519.Ed25519PublicKey.from_public_bytes(data)
        except ValueError:
            raise ModelSignatureError(f"{where}: not a valid raw Ed25519 public key") from None
    if b"PRIVATE KEY" in data:
        raise ModelSignatureError(
            f"{where}: is a private key; give the public key (.pub) to verifiers"
        )
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise ModelSignatureError(f"{where}: not a PEM public key") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ModelSignatureError(f"{where}: expected an Ed25519 key, got {type(key).__name__}")
    return key


def load_private_key(path: Path) -> ed25519.Ed25519PrivateKey:
    """The Ed25519 signing key in the PEM file at ``path``."""
    return _parse_private(str(path), _read(path))


@dataclass(frozen=True)
class TrustedKeys:
    """The public keys an agent accepts model signatures from, by key id."""

    keys: Mapping[str, ed25519.Ed25519PublicKey]

    @classmethod
    def load(cls, paths: Iterable[Path]) -> TrustedKeys:
        keys = {}
        for path in paths:
            key = load_public_key(path)
            keys[key_id(key)] = key
        return cls(keys)

    def verify(
        self,
        signing_key_id: str,
        *,
        name: str,
        version: str,
        schema_version: int,
        sha256: str,
        signature: bytes,
    ) -> None:
        """Verify with the trusted key named ``signing_key_id``; ModelSignatureError if none."""
        key = self.keys.get(signing_key_id)
        if key is None:
            known = ", ".join(sorted(self.keys)) or "none configured"
            raise ModelSignatureError(
                f"model {name} {version}: signing key {signing_key_id!r} is not trusted "
                f"(trusted: {known})"
            )
        verify_model(
            key,
            name=name,
            version=version,
            schema_version=schema_version,
            sha256=sha256,
            signature=signature,
        )


def _public_key(source: PublicKeySource) -> ed25519.Ed25519PublicKey:
    if isinstance(source, ed25519.Ed25519PublicKey):
        return source
    return load_public_key(source)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelSignatureError(f"{path}: key file not found") from None
    except OSError as exc:
        raise ModelSignatureError(f"{path}: cannot read key file: {exc.strerror}") from None


def _parse_private(where: str, data: bytes) -> ed25519.Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ModelSignatureError(f"{where}: private key is encrypted") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ModelSignatureError(f"{where}: not a PEM private key") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ModelSignatureError(f"{where}: expected an Ed25519 key, got {type(key).__name__}")
    return key
