"""A small private PKI for the fleet: one CA, a coordinator server cert, agent certs.

Why our own CA: the coordinator must know *which node* is on the other end of a
stream, and a public CA cannot vouch for that. Every agent gets a client certificate
whose URI SAN ``spiffe://novacron/node/<node-id>`` names its node (see
:mod:`novacron.protos.runtime.tls`, which reads it back); the coordinator trusts only
this CA for client certificates.

TLS keys are ECDSA P-256: every TLS stack (gRPC's BoringSSL included) accepts it for
server and client certificates, unlike Ed25519 certificates. Model signing uses Ed25519
(:func:`generate_signing_key`), where no TLS stack is involved.

Private keys are written with mode 0600 (directories this module creates with 0700),
atomically (temporary file, then rename), and never overwritten unless asked: losing
a CA key by a repeated command invalidates every issued certificate.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from novacron.protos.runtime.tls import client_id_uri, node_id_uri, validate_node_id

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"
AGENTS_DIR = "agents"
CLIENTS_DIR = "clients"  # API clients: the scheduler, operators' `place` CLI
SIGNING_KEY = "model-signing.key"
SIGNING_PUBLIC_SUFFIX = ".pub"

CA_DAYS = 3650
# One year and a bit: the longest lifetime public CAs still issue; rotate yearly.
LEAF_DAYS = 397
# Certificates start slightly in the past so a peer whose clock lags a little accepts them.
CLOCK_SKEW = dt.timedelta(minutes=5)

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644
PRIVATE_DIR_MODE = 0o700


class PkiError(Exception):
    """A PKI operation that cannot be done; the message names the file."""


class PkiFileExists(PkiError):
    """A target file exists and replacing it was not asked for."""


@dataclass(frozen=True)
class CaFiles:
    """Where a CA's certificate and private key live."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class CertFiles:
    """Where a leaf certificate and its private key live."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class PkiLayout:
    """Everything :func:`init_pki` writes into one directory."""

    ca: CaFiles
    server: CertFiles
    signing_key: Path
    signing_public_key: Path


def init_pki(
    directory: Path,
    hosts: Sequence[str],
    *,
    ca_name: str = "NovaCron fleet CA",
    ca_days: int = CA_DAYS,
    days: int = LEAF_DAYS,
    overwrite: bool = False,
) -> PkiLayout:
    """CA, server certificate for ``hosts`` and model-signing key, in ``directory``.

    Every target is checked before anything is written, so a refused run leaves no
    half-made PKI behind.
    """
    signing_key = directory / SIGNING_KEY
    _refuse_existing(
        [directory / name for name in (CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY, SIGNING_KEY)]
        + [signing_key.with_suffix(SIGNING_PUBLIC_SUFFIX)],
        overwrite,
    )
    ca = create_ca(directory, ca_name, days=ca_days, overwrite=overwrite)
    server = issue_server(ca, directory, hosts, days=days, overwrite=overwrite)
    public = generate_signing_key(signing_key, overwrite=overwrite)
    return PkiLayout(ca, server, signing_key, public)


def ca_in(directory: Path) -> CaFiles:
    """The CA files of a PKI directory laid out by :func:`create_ca` (existence checked)."""
    files = CaFiles(directory / CA_CERT, directory / CA_KEY)
    for path in (files.cert, files.key):
        if not path.is_file():
            raise PkiError(f"{path}: no CA here (run `novacron-coordinator pki init` first)")
    return files


def create_ca(
    directory: Path, name: str, *, days: int = CA_DAYS, overwrite: bool = False
) -> CaFiles:
    """Create a self-signed CA (``ca.crt``, ``ca.key``) in ``directory``."""
    files = CaFiles(directory / CA_CERT, directory / CA_KEY)
    _refuse_existing((files.cert, files.key), overwrite)
    _check_days(days)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "NovaCron AIOps"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    not_before = _now() - CLOCK_SKEW
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    certificate = builder.sign(key, hashes.SHA256())
    _write_key(files.key, key)
    _write_cert(files.cert, certificate)
    return files


def issue_server(
    ca: CaFiles,
    directory: Path,
    hosts: Sequence[str],
    *,
    days: int = LEAF_DAYS,
    not_before: dt.datetime | None = None,
    overwrite: bool = False,
) -> CertFiles:
    """Issue the coordinator's server certificate (``server.crt``/``.key``) for ``hosts``.

    Each host becomes an IP SAN if it parses as an address, else a DNS SAN; clients
    check the name they dialled against these.
    """
    if not hosts:
        raise PkiError("a server certificate needs at least one host name or address")
    names = [_host_name(host) for host in hosts]
    files = CertFiles(directory / SERVER_CERT, directory / SERVER_KEY)
    return _issue(
        ca,
        files,
        common_name=hosts[0],
        alternative_names=names,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        days=days,
        not_before=not_before,
        overwrite=overwrite,
    )


def issue_agent(
    ca: CaFiles,
    directory: Path,
    node_id: str,
    *,
    days: int = LEAF_DAYS,
    not_before: dt.datetime | None = None,
    overwrite: bool = False,
) -> CertFiles:
    """Issue an agent's client certificate (``<node-id>.crt``/``.key``) in ``directory``.

    The node id goes into the URI SAN (the identity the coordinator trusts) and the CN
    (for people reading ``openssl x509 -text``).
    """
    try:
        uri = node_id_uri(node_id)
    except ValueError as exc:
        raise PkiError(str(exc)) from None
    files = CertFiles(directory / f"{node_id}.crt", directory / f"{node_id}.key")
    return _issue(
        ca,
        files,
        common_name=validate_node_id(node_id),
        alternative_names=[x509.UniformResourceIdentifier(uri)],
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        days=days,
        not_before=not_before,
        overwrite=overwrite,
    )


def issue_client(
    ca: CaFiles,
    directory: Path,
    name: str,
    *,
    days: int = LEAF_DAYS,
    not_before: dt.datetime | None = None,
    overwrite: bool = False,
) -> CertFiles:
    """Issue an API client certificate (``<name>.crt``/``.key``) in ``directory``.

    For the scheduler API (``[api] listen``): the URI SAN ``spiffe://novacron/client/<name>``
    is what that server accepts; an agent certificate (a node URI) is refused there, and
    a client certificate carries no node id, so the telemetry port does not take it as
    any node.
    """
    try:
        uri = client_id_uri(name)
    except ValueError as exc:
        raise PkiError(str(exc).replace("node id", "client name")) from None
    files = CertFiles(directory / f"{name}.crt", directory / f"{name}.key")
    return _issue(
        ca,
        files,
        common_name=name,
        alternative_names=[x509.UniformResourceIdentifier(uri)],
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        days=days,
        not_before=not_before,
        overwrite=overwrite,
    )


def generate_signing_key(path: Path, *, overwrite: bool = False) -> Path:
    """Write a new Ed25519 model-signing key to ``path`` and its public key next to it.

    Returns the public key's path (``path`` with suffix ``.pub``, PEM
    SubjectPublicKeyInfo): the file agents list as a trusted model key.
    """
    public_path = path.with_suffix(SIGNING_PUBLIC_SUFFIX)
    if public_path == path:
        raise PkiError(f"{path}: the private key must not end in {SIGNING_PUBLIC_SUFFIX}")
    _refuse_existing((path, public_path), overwrite)
    key = ed25519.Ed25519PrivateKey.generate()
    _write_key(path, key)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_file(public_path, public_pem, PUBLIC_MODE)
    return public_path


def _issue(
    ca: CaFiles,
    files: CertFiles,
    *,
    common_name: str,
    alternative_names: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
    days: int,
    not_before: dt.datetime | None,
    overwrite: bool,
) -> CertFiles:
    _refuse_existing((files.cert, files.key), overwrite)
    _check_days(days)
    ca_cert, ca_key = _load_ca(ca)
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before if not_before is not None else _now() - CLOCK_SKEW
    # A certificate outliving its CA would only fail later and more confusingly.
    end = min(start + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    certificate = builder.sign(ca_key, hashes.SHA256())
    _write_key(files.key, key)
    _write_cert(files.cert, certificate)
    return files


def _load_ca(ca: CaFiles) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        certificate = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    except OSError as exc:
        raise PkiError(f"{ca.cert}: cannot read CA certificate: {exc.strerror}") from None
    except ValueError:
        raise PkiError(f"{ca.cert}: not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    except OSError as exc:
        raise PkiError(f"{ca.key}: cannot read CA key: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise PkiError(f"{ca.key}: not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{ca.key}: expected an ECDSA CA key, got {type(key).__name__}")
    if _spki(key.public_key()) != _spki(certificate.public_key()):
        raise PkiError(f"{ca.key}: does not belong to the CA certificate {ca.cert}")
    if certificate.not_valid_after_utc <= _now():
        raise PkiError(f"{ca.cert}: CA expired on {certificate.not_valid_after_utc:%Y-%m-%d}")
    return certificate, key


def _host_name(host: str) -> x509.GeneralName:
    host = host.strip()
    if not host or any(c.isspace() for c in host):
        raise PkiError(f"host {host!r}: expected a DNS name or an IP address")
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _key_usage(
    *, digital_signature: bool, key_cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _spki(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_days(days: int) -> None:
    if days < 1:
        raise PkiError(f"a lifetime of {days} days: must be at least 1")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _refuse_existing(paths: Sequence[Path], overwrite: bool) -> None:
    if overwrite:
        return
    for path in paths:
        if path.exists():
            raise PkiFileExists(f"{path}: already exists; not replacing it")


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_file(path, pem, PRIVATE_MODE)


def _write_cert(path: Path, certificate: x509.Certificate) -> None:
    _write_file(path, certificate.public_bytes(serialization.Encoding.PEM), PUBLIC_MODE)


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """Write atomically with ``mode`` from the first byte (no window where a key is 0644)."""
    if not path.parent.is_dir():
        try:
            path.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True)
        except OSError as exc:
            raise PkiError(f"{path.parent}: cannot create directory: {exc.strerror}") from None
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(fd, mode)  # the umask may have narrowed it
            handle.write(data)
            handle.flush()
            os.fsync(fd)
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise PkiError(f"{path}: cannot write: {exc.strerror or exc}") from None
