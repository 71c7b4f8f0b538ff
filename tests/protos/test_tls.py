"""Mutual TLS with real gRPC servers on 127.0.0.1: who gets in, and who they are.

Certificates come from the real PKI code (novacron.coordinator.pki); the handshakes run
through grpcio's BoringSSL exactly as agent and coordinator will use it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from novacron.coordinator import pki
from novacron.protos import health_pb2, health_pb2_grpc
from novacron.protos.runtime.tls import (
    NODE_ID_URI_PREFIX,
    TlsConfigError,
    channel_credentials,
    node_id_uri,
    node_ids_in,
    peer_node_id,
    server_credentials,
    validate_node_id,
)

NODE = "hv-017"
LONG_AGO = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)


@dataclass(frozen=True)
class Pki:
    ca: pki.CaFiles
    server: pki.CertFiles
    agent: pki.CertFiles
    expired_agent: pki.CertFiles
    expired_server: pki.CertFiles
    wrong_host_server: pki.CertFiles
    other_ca: pki.CaFiles
    other_ca_agent: pki.CertFiles


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    ca = pki.create_ca(root, "test fleet CA")
    other_root = root / "other"
    other_ca = pki.create_ca(other_root, "someone else's CA")
    return Pki(
        ca=ca,
        server=pki.issue_server(ca, root, ["localhost", "127.0.0.1"]),
        agent=pki.issue_agent(ca, root / "agents", NODE),
        expired_agent=pki.issue_agent(ca, root / "expired", NODE, not_before=LONG_AGO, days=1),
        expired_server=pki.issue_server(
            ca, root / "expired", ["127.0.0.1"], not_before=LONG_AGO, days=1
        ),
        wrong_host_server=pki.issue_server(ca, root / "wrong-host", ["coordinator.example"]),
        other_ca=other_ca,
        other_ca_agent=pki.issue_agent(other_ca, other_root, NODE),
    )


class RecordingHealth(health_pb2_grpc.HealthServiceServicer):
    """Answers every call and remembers which node the TLS layer said was calling."""

    def __init__(self) -> None:
        self.callers: list[str | None] = []

    def GetNodeHealth(
        self, request: health_pb2.GetNodeHealthRequest, context: grpc.ServicerContext
    ) -> health_pb2.GetNodeHealthResponse:
        self.callers.append(peer_node_id(context))
        return health_pb2.GetNodeHealthResponse(next_page_token="ok")


@contextmanager
def serving(credentials: Any | None) -> Iterator[tuple[int, RecordingHealth]]:
    """A real gRPC server on 127.0.0.1:<free port>; plaintext when credentials is None."""
    servicer = RecordingHealth()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServiceServicer_to_server(servicer, server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield port, servicer
    finally:
        server.stop(grace=None)


def call(
    port: int, credentials: Any, options: list[tuple[str, str]] | None = None
) -> health_pb2.GetNodeHealthResponse:
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials, options=options or []) as ch:
        stub = health_pb2_grpc.HealthServiceStub(ch)
        return stub.GetNodeHealth(health_pb2.GetNodeHealthRequest(), timeout=5)


def assert_rejected(port: int, credentials: Any) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call(port, credentials)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def raw_server_credentials(ca: Path, files: pki.CertFiles) -> Any:
    """Credentials built straight from the files, skipping our own pre-flight checks."""
    return grpc.ssl_server_credentials(
        [(files.key.read_bytes(), files.cert.read_bytes())],
        root_certificates=ca.read_bytes(),
        require_client_auth=True,
    )


def raw_channel_credentials(ca: Path, files: pki.CertFiles) -> Any:
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=files.key.read_bytes(),
        certificate_chain=files.cert.read_bytes(),
    )


def mtls_server(certs: Pki) -> Any:
    return server_credentials(certs.ca.cert, certs.server.cert, certs.server.key)


# --- handshakes ---------------------------------------------------------------------


def test_agent_certificate_is_accepted_and_names_its_node(certs: Pki) -> None:
    with serving(mtls_server(certs)) as (port, servicer):
        reply = call(port, channel_credentials(certs.ca.cert, certs.agent.cert, certs.agent.key))
    assert reply.next_page_token == "ok"
    assert servicer.callers == [NODE]


def test_client_without_certificate_is_rejected(certs: Pki) -> None:
    with serving(mtls_server(certs)) as (port, servicer):
        assert_rejected(port, grpc.ssl_channel_credentials(certs.ca.cert.read_bytes()))
    assert servicer.callers == []


def test_client_certificate_from_another_ca_is_rejected(certs: Pki) -> None:
    # Signed by a CA the coordinator does not trust; the client itself trusts our CA.
    credentials = channel_credentials(
        certs.ca.cert, certs.other_ca_agent.cert, certs.other_ca_agent.key
    )
    with serving(mtls_server(certs)) as (port, servicer):
        assert_rejected(port, credentials)
    assert servicer.callers == []


def test_server_certificate_is_not_accepted_as_a_client_certificate(certs: Pki) -> None:
    # Same CA, but serverAuth only: whoever holds the coordinator's key is not an agent.
    credentials = raw_channel_credentials(certs.ca.cert, certs.server)
    with serving(mtls_server(certs)) as (port, servicer):
        assert_rejected(port, credentials)
    assert servicer.callers == []


def test_client_rejects_a_server_certificate_for_another_host(certs: Pki) -> None:
    server = server_credentials(
        certs.ca.cert, certs.wrong_host_server.cert, certs.wrong_host_server.key
    )
    agent = channel_credentials(certs.ca.cert, certs.agent.cert, certs.agent.key)
    with serving(server) as (port, servicer):
        assert_rejected(port, agent)
        assert servicer.callers == []
        # Control: the same certificate passes when the client expects that name, so
        # the rejection above was the host check and nothing else.
        call(port, agent, options=[("grpc.ssl_target_name_override", "coordinator.example")])
    assert servicer.callers == [NODE]


def test_client_rejects_a_server_certificate_from_another_ca(certs: Pki) -> None:
    agent = channel_credentials(
        certs.other_ca.cert, certs.other_ca_agent.cert, certs.other_ca_agent.key
    )
    with serving(mtls_server(certs)) as (port, servicer):
        assert_rejected(port, agent)
    assert servicer.callers == []


def test_server_rejects_an_expired_client_certificate(certs: Pki) -> None:
    credentials = raw_channel_credentials(certs.ca.cert, certs.expired_agent)
    with serving(mtls_server(certs)) as (port, servicer):
        assert_rejected(port, credentials)
    assert servicer.callers == []


def test_client_rejects_an_expired_server_certificate(certs: Pki) -> None:
    server = raw_server_credentials(certs.ca.cert, certs.expired_server)
    with serving(server) as (port, servicer):
        assert_rejected(port, channel_credentials(certs.ca.cert, certs.agent.cert, certs.agent.key))
    assert servicer.callers == []


def test_a_ca_bundle_accepts_both_cas_during_rotation(certs: Pki, tmp_path: Path) -> None:
    bundle = tmp_path / "ca-bundle.crt"
    bundle.write_bytes(certs.ca.cert.read_bytes() + certs.other_ca.cert.read_bytes())
    server = server_credentials(bundle, certs.server.cert, certs.server.key)
    with serving(server) as (port, servicer):
        call(port, channel_credentials(certs.ca.cert, certs.agent.cert, certs.agent.key))
        call(
            port,
            channel_credentials(certs.ca.cert, certs.other_ca_agent.cert, certs.other_ca_agent.key),
        )
    assert servicer.callers == [NODE, NODE]


def test_plaintext_peer_has_no_node_id() -> None:
    with serving(None) as (port, servicer), grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        health_pb2_grpc.HealthServiceStub(ch).GetNodeHealth(
            health_pb2.GetNodeHealthRequest(), timeout=5
        )
    assert servicer.callers == [None]


def test_peer_node_id_works_in_a_grpc_aio_servicer(certs: Pki) -> None:
    seen: list[str | None] = []

    class AioHealth(health_pb2_grpc.HealthServiceServicer):
        async def GetNodeHealth(  # type: ignore[override]
            self, request: health_pb2.GetNodeHealthRequest, context: Any
        ) -> health_pb2.GetNodeHealthResponse:
            seen.append(peer_node_id(context))
            return health_pb2.GetNodeHealthResponse()

    async def scenario() -> None:
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServiceServicer_to_server(AioHealth(), server)
        port = server.add_secure_port("127.0.0.1:0", mtls_server(certs))
        await server.start()
        try:
            credentials = channel_credentials(certs.ca.cert, certs.agent.cert, certs.agent.key)
            async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
                stub: Any = health_pb2_grpc.HealthServiceStub(channel)
                await stub.GetNodeHealth(health_pb2.GetNodeHealthRequest(), timeout=5)
        finally:
            await server.stop(grace=None)

    asyncio.run(scenario())
    assert seen == [NODE]


# --- peer_node_id on hand-made auth contexts ---------------------------------------


class FakeContext:
    def __init__(self, auth: dict[str, list[bytes]]) -> None:
        self.auth = auth

    def auth_context(self) -> dict[str, list[bytes]]:
        return self.auth


def pem_of(path: Path) -> bytes:
    return path.read_bytes()


def test_peer_node_id_reads_the_uri_not_the_common_name(certs: Pki) -> None:
    # The servicer must not trust x509_common_name: only the verified certificate.
    context = FakeContext(
        {"x509_common_name": [b"someone-else"], "x509_pem_cert": [pem_of(certs.agent.cert)]}
    )
    assert peer_node_id(context) == NODE


def test_peer_node_id_is_none_without_a_node_uri(certs: Pki) -> None:
    assert peer_node_id(FakeContext({"x509_pem_cert": [pem_of(certs.server.cert)]})) is None
    assert peer_node_id(FakeContext({"transport_security_type": [b"insecure"]})) is None
    assert peer_node_id(FakeContext({"x509_pem_cert": [b"not a certificate"]})) is None


def certificate_with_uris(*uris: str) -> x509.Certificate:
    """A throw-away self-signed certificate carrying exactly these URI SANs."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )


def test_node_ids_in_ignores_malformed_and_foreign_uris(certs: Pki) -> None:
    agent = x509.load_pem_x509_certificate(pem_of(certs.agent.cert))
    assert node_ids_in(agent) == [NODE]
    server = x509.load_pem_x509_certificate(pem_of(certs.server.cert))
    assert node_ids_in(server) == []
    odd = certificate_with_uris(
        "spiffe://novacron/node/../etc",
        "spiffe://novacron/node/",
        "spiffe://elsewhere/node/hv-1",
        "https://novacron/node/hv-2",
        "spiffe://novacron/node/hv-3",
    )
    assert node_ids_in(odd) == ["hv-3"]


def test_two_node_uris_identify_nobody() -> None:
    both = certificate_with_uris("spiffe://novacron/node/a", "spiffe://novacron/node/b")
    assert node_ids_in(both) == ["a", "b"]
    pem = both.public_bytes(serialization.Encoding.PEM)
    assert peer_node_id(FakeContext({"x509_pem_cert": [pem]})) is None


def test_node_id_validation() -> None:
    assert node_id_uri("cmp-0042.dc1") == f"{NODE_ID_URI_PREFIX}cmp-0042.dc1"
    assert validate_node_id("a" * 64) == "a" * 64
    for bad in ["", "../etc", "a b", "-lead", "x/y", "a" * 65, "nöde", "a\n"]:
        with pytest.raises(ValueError, match="node id"):
            validate_node_id(bad)


# --- pre-flight file checks ---------------------------------------------------------


def test_missing_file_is_named(certs: Pki, tmp_path: Path) -> None:
    missing = tmp_path / "nope.crt"
    with pytest.raises(TlsConfigError, match=r"nope\.crt: file not found") as caught:
        server_credentials(certs.ca.cert, missing, certs.server.key)
    assert caught.value.path == missing


def test_unreadable_file_is_named(certs: Pki, tmp_path: Path) -> None:
    # A directory where a file belongs: unreadable even for root (chmod is not).
    with pytest.raises(TlsConfigError, match="cannot read") as caught:
        channel_credentials(tmp_path, certs.agent.cert, certs.agent.key)
    assert caught.value.path == tmp_path


def test_garbage_certificate_and_key_are_named(certs: Pki, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello\n")
    with pytest.raises(TlsConfigError, match=r"garbage\.pem: no PEM certificate"):
        channel_credentials(garbage, certs.agent.cert, certs.agent.key)
    with pytest.raises(TlsConfigError, match=r"garbage\.pem: not a PEM private key"):
        channel_credentials(certs.ca.cert, certs.agent.cert, garbage)


def test_key_of_another_certificate_is_refused(certs: Pki) -> None:
    with pytest.raises(TlsConfigError, match="does not belong to the certificate") as caught:
        channel_credentials(certs.ca.cert, certs.agent.cert, certs.server.key)
    assert caught.value.path == certs.server.key


def test_expired_certificate_is_refused_before_any_handshake(certs: Pki) -> None:
    with pytest.raises(TlsConfigError, match="expired on") as caught:
        channel_credentials(certs.ca.cert, certs.expired_agent.cert, certs.expired_agent.key)
    assert caught.value.path == certs.expired_agent.cert


def test_not_yet_valid_certificate_is_refused(certs: Pki, tmp_path: Path) -> None:
    future = pki.issue_agent(
        certs.ca, tmp_path, "later", not_before=dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    )
    with pytest.raises(TlsConfigError, match=r"not valid before .*check the clock"):
        channel_credentials(certs.ca.cert, future.cert, future.key)
