"""Mutual TLS for the agent ↔ coordinator link, and the node identity it carries.

Both ends authenticate: the coordinator proves its host name with a server certificate,
and every agent proves *which node it is* with a client certificate issued by the same
private CA. The node id lives in exactly one canonical place, a URI subject alternative
name ``spiffe://novacron/node/<node-id>`` (the subject CN repeats it for humans, but is
never trusted). The coordinator reads it with :func:`peer_node_id` and binds the stream
to it, so one agent's certificate cannot write another node's data.

Files are checked when credentials are built, not at the first handshake: a missing,
unreadable, malformed, expired or mismatched file is a :class:`TlsConfigError` naming the
file, instead of an opaque ``UNAVAILABLE`` minutes later. This module uses only the
standard library, grpc and cryptography, so agent and coordinator share it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

#: The canonical home of the node id: a URI SAN with this prefix, e.g.
#: ``spiffe://novacron/node/hv-017``.
NODE_ID_URI_PREFIX = "spiffe://novacron/node/"

# Host-name-like: safe in a URI path, a file name and a log line without escaping.
_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class TlsConfigError(Exception):
    """A TLS file the program cannot use; the message names the file and the problem."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path, self.problem = path, problem
        super().__init__(f"{path}: {problem}")


def validate_node_id(node_id: str) -> str:
    """Return ``node_id`` if it can live in a certificate; raise ValueError otherwise."""
    if not _NODE_ID.fullmatch(node_id):
        raise ValueError(
            f"node id {node_id!r}: expected 1-64 characters of letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    return node_id


def node_id_uri(node_id: str) -> str:
    """The URI SAN that names ``node_id`` in an agent certificate."""
    return NODE_ID_URI_PREFIX + validate_node_id(node_id)


#: The identity of an API client (the NovaCron scheduler, an operator's CLI) in its
#: certificate: a URI SAN ``spiffe://novacron/client/<name>``. Agents' certificates carry
#: node URIs instead, so the scheduler API can refuse them.
CLIENT_ID_URI_PREFIX = "spiffe://novacron/client/"


def client_id_uri(name: str) -> str:
    """The URI SAN that names API client ``name`` (same character rules as node ids)."""
    return CLIENT_ID_URI_PREFIX + validate_node_id(name)


def peer_client_name(context: _AuthContextSource) -> str | None:
    """The API client name of the authenticated peer, or None (same trust rules as
    :func:`peer_node_id`: only meaningful on a server that verifies client certificates)."""
    pems = list(context.auth_context().get("x509_pem_cert", ()))
    if len(pems) != 1:
        return None
    try:
        certificate = x509.load_pem_x509_certificate(pems[0])
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (ValueError, x509.ExtensionNotFound):
        return None
    names = [
        uri.removeprefix(CLIENT_ID_URI_PREFIX)
        for uri in san.value.get_values_for_type(x509.UniformResourceIdentifier)
        if uri.startswith(CLIENT_ID_URI_PREFIX)
        and _NODE_ID.fullmatch(uri.removeprefix(CLIENT_ID_URI_PREFIX))
    ]
    return names[0] if len(names) == 1 else None


def server_credentials(ca_cert: Path, cert: Path, key: Path) -> grpc.ServerCredentials:
    """Credentials for a server that requires and verifies client certificates.

    ``ca_cert`` holds the CA(s) whose client certificates are accepted; ``cert`` and
    ``key`` are the server's own certificate (chain) and private key.
    """
    ca_pem, cert_pem, key_pem = _load_set(ca_cert, cert, key)
    return grpc.ssl_server_credentials(
        [(key_pem, cert_pem)], root_certificates=ca_pem, require_client_auth=True
    )


def channel_credentials(ca_cert: Path, cert: Path, key: Path) -> grpc.ChannelCredentials:
    """Credentials for a client that verifies the server against ``ca_cert`` only.

    The server's certificate must name the host of the channel target (DNS or IP SAN);
    ``cert`` and ``key`` are the client's own certificate and key.
    """
    ca_pem, cert_pem, key_pem = _load_set(ca_cert, cert, key)
    return grpc.ssl_channel_credentials(
        root_certificates=ca_pem, private_key=key_pem, certificate_chain=cert_pem
    )


class _AuthContextSource(Protocol):
    """What :func:`peer_node_id` needs: both grpc and grpc.aio servicer contexts fit."""

    def auth_context(self) -> Mapping[str, Iterable[bytes]]: ...


def peer_node_id(context: _AuthContextSource) -> str | None:
    """The node id of the authenticated peer, or None.

    None means the peer did not present a verified certificate (plaintext channel), or its
    certificate carries no node URI, or more than one (ambiguous, so trusted for nothing).
    With :func:`server_credentials` (client certificates required *and* verified) a
    handshake only completes with a certificate that chains to the configured CA, so the
    URI read here is as trustworthy as that CA. On a server that merely requests client
    certificates without verifying them, it would not be: do not use it there.
    """
    pems = list(context.auth_context().get("x509_pem_cert", ()))
    if len(pems) != 1:
        return None
    try:
        certificate = x509.load_pem_x509_certificate(pems[0])
    except ValueError:
        return None
    node_ids = node_ids_in(certificate)
    return node_ids[0] if len(node_ids) == 1 else None


def node_ids_in(certificate: x509.Certificate) -> list[str]:
    """Every well-formed node id in ``certificate``'s URI SANs (normally exactly one)."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    found = []
    for uri in san.value.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith(NODE_ID_URI_PREFIX):
            candidate = uri.removeprefix(NODE_ID_URI_PREFIX)
            if _NODE_ID.fullmatch(candidate):
                found.append(candidate)
    return found


def _load_set(ca_cert: Path, cert: Path, key: Path) -> tuple[bytes, bytes, bytes]:
    """Read and check the three files; the leaf must match the key and be in date."""
    ca_pem = _read(ca_cert)
    for authority in _certificates(ca_cert, ca_pem):
        _check_dates(ca_cert, authority)
    cert_pem = _read(cert)
    leaf = _certificates(cert, cert_pem)[0]
    _check_dates(cert, leaf)
    key_pem = _read(key)
    private_key = _private_key(key, key_pem)
    if _public_der(private_key.public_key()) != _public_der(leaf.public_key()):
        raise TlsConfigError(key, f"private key does not belong to the certificate in {cert}")
    return ca_pem, cert_pem, key_pem


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TlsConfigError(path, "file not found") from None
    except OSError as exc:
        raise TlsConfigError(path, f"cannot read: {exc.strerror or exc}") from None


def _certificates(path: Path, pem: bytes) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        certificates = []
    if not certificates:
        raise TlsConfigError(path, "no PEM certificate in file")
    return certificates


def _check_dates(path: Path, certificate: x509.Certificate) -> None:
    now = dt.datetime.now(dt.UTC)
    subject = certificate.subject.rfc4514_string() or "(empty subject)"
    if certificate.not_valid_after_utc < now:
        raise TlsConfigError(
            path, f"certificate {subject} expired on {certificate.not_valid_after_utc:%Y-%m-%d}"
        )
    if certificate.not_valid_before_utc > now:
        raise TlsConfigError(
            path,
            f"certificate {subject} is not valid before "
            f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC (check the clock)",
        )


def _private_key(path: Path, pem: bytes) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise TlsConfigError(
            path, "private key is encrypted; a plain PEM key is expected"
        ) from None
    except ValueError:
        raise TlsConfigError(path, "not a PEM private key") from None
    except UnsupportedAlgorithm as exc:
        raise TlsConfigError(path, f"unsupported private key: {exc}") from None


def _public_der(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
