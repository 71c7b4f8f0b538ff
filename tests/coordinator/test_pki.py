"""The fleet PKI: what lands on disk, what the certificates say, and the ``pki`` commands.

Chains are checked with cryptography's own X.509 path validation (RFC 5280 / CA/B
profile), independent of the code that issued them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from novacron.coordinator import pki
from novacron.coordinator.pki_cli import add_pki_commands, run_pki
from novacron.models.signing import key_id, load_private_key

NOW = dt.datetime.now(dt.UTC)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture()
def ca(tmp_path: Path) -> pki.CaFiles:
    return pki.create_ca(tmp_path / "pki", "test CA")


def verifier_store(ca: pki.CaFiles) -> PolicyBuilder:
    return PolicyBuilder().store(Store([cert(ca.cert)])).time(NOW + dt.timedelta(minutes=1))


def test_ca_is_a_p256_ca_with_a_private_key_file(ca: pki.CaFiles) -> None:
    ca_cert = cert(ca.cert)
    assert ca.cert.parent.name == "pki"
    assert ca.cert.name == "ca.crt" and ca.key.name == "ca.key"
    assert mode_of(ca.key) == 0o600
    assert mode_of(ca.cert) == 0o644
    assert mode_of(ca.cert.parent) == 0o700
    constraints = ca_cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = ca_cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    assert ca_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "test CA"
    ca_cert.verify_directly_issued_by(ca_cert)
    key = load_pem_private_key(ca.key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    lifetime = ca_cert.not_valid_after_utc - ca_cert.not_valid_before_utc
    assert lifetime == dt.timedelta(days=pki.CA_DAYS)


def test_agent_certificate_carries_the_node_id_and_client_auth_only(
    ca: pki.CaFiles, tmp_path: Path
) -> None:
    files = pki.issue_agent(ca, tmp_path / "agents", "cmp-0042")
    assert files.cert == tmp_path / "agents" / "cmp-0042.crt"
    assert files.key == tmp_path / "agents" / "cmp-0042.key"
    assert mode_of(files.key) == 0o600
    assert mode_of(files.cert) == 0o644
    leaf = cert(files.cert)
    leaf.verify_directly_issued_by(cert(ca.cert))
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://novacron/node/cmp-0042"
    ]
    assert san.get_values_for_type(x509.DNSName) == []
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "cmp-0042"
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime == dt.timedelta(days=pki.LEAF_DAYS)
    assert leaf.not_valid_before_utc < NOW  # backdated for clock skew

    verified = verifier_store(ca).build_client_verifier().verify(leaf, [])
    assert verified.subjects == [x509.UniformResourceIdentifier("spiffe://novacron/node/cmp-0042")]
    with pytest.raises(VerificationError):
        verifier_store(ca).build_server_verifier(x509.DNSName("cmp-0042")).verify(leaf, [])


def test_server_certificate_names_dns_and_ip_hosts(ca: pki.CaFiles, tmp_path: Path) -> None:
    files = pki.issue_server(ca, tmp_path, ["coord.example", "localhost", "127.0.0.1", "::1"])
    assert (files.cert.name, files.key.name) == ("server.crt", "server.key")
    assert mode_of(files.key) == 0o600
    leaf = cert(files.cert)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["coord.example", "localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == []
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]

    for name in (x509.DNSName("coord.example"), x509.DNSName("localhost")):
        verifier_store(ca).build_server_verifier(name).verify(leaf, [])
    with pytest.raises(VerificationError):
        verifier_store(ca).build_server_verifier(x509.DNSName("other.example")).verify(leaf, [])


def test_certificate_validity_can_be_placed_in_the_past(ca: pki.CaFiles, tmp_path: Path) -> None:
    start = NOW - dt.timedelta(days=10)
    leaf = cert(pki.issue_agent(ca, tmp_path, "old", not_before=start, days=2).cert)
    assert leaf.not_valid_before_utc == start.replace(microsecond=0)
    assert leaf.not_valid_after_utc == start.replace(microsecond=0) + dt.timedelta(days=2)
    with pytest.raises(VerificationError):
        verifier_store(ca).build_client_verifier().verify(leaf, [])


def test_leaf_never_outlives_its_ca(tmp_path: Path) -> None:
    short_ca = pki.create_ca(tmp_path, "short", days=30)
    leaf = cert(pki.issue_agent(short_ca, tmp_path, "n1", days=400).cert)
    assert leaf.not_valid_after_utc == cert(short_ca.cert).not_valid_after_utc


def test_existing_files_are_never_silently_replaced(ca: pki.CaFiles, tmp_path: Path) -> None:
    first = pki.issue_agent(ca, tmp_path, "n1")
    original_key = first.key.read_bytes()
    with pytest.raises(pki.PkiError, match="already exists"):
        pki.issue_agent(ca, tmp_path, "n1")
    assert first.key.read_bytes() == original_key
    with pytest.raises(pki.PkiError, match="already exists"):
        pki.create_ca(ca.cert.parent, "again")
    again = pki.issue_agent(ca, tmp_path, "n1", overwrite=True)
    assert again.key.read_bytes() != original_key
    assert mode_of(again.key) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n1.crt", "n1.key", "pki"]


def test_bad_inputs_write_nothing(ca: pki.CaFiles, tmp_path: Path) -> None:
    out = tmp_path / "out"
    for bad in ["../escape", "has space", "", "x" * 65]:
        with pytest.raises(pki.PkiError, match="node id"):
            pki.issue_agent(ca, out, bad)
    with pytest.raises(pki.PkiError, match="at least one host"):
        pki.issue_server(ca, out, [])
    with pytest.raises(pki.PkiError, match="DNS name or an IP"):
        pki.issue_server(ca, out, ["bad host"])
    with pytest.raises(pki.PkiError, match="at least 1"):
        pki.issue_agent(ca, out, "n1", days=0)
    assert not out.exists()


def test_a_broken_ca_is_named(ca: pki.CaFiles, tmp_path: Path) -> None:
    other = pki.create_ca(tmp_path / "other", "other")
    mixed = pki.CaFiles(cert=ca.cert, key=other.key)
    with pytest.raises(pki.PkiError, match="does not belong to the CA certificate"):
        pki.issue_agent(mixed, tmp_path, "n1")
    with pytest.raises(pki.PkiError, match="no CA here"):
        pki.ca_in(tmp_path / "empty")
    garbage = pki.CaFiles(cert=tmp_path / "garbage.crt", key=ca.key)
    garbage.cert.write_text("not pem")
    with pytest.raises(pki.PkiError, match="not a PEM certificate"):
        pki.issue_agent(garbage, tmp_path, "n1")


def test_signing_key_pair(tmp_path: Path) -> None:
    public = pki.generate_signing_key(tmp_path / "keys" / "model-signing.key")
    private = tmp_path / "keys" / "model-signing.key"
    assert public == tmp_path / "keys" / "model-signing.pub"
    assert mode_of(private) == 0o600
    assert mode_of(public) == 0o644
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    signer = load_private_key(private)
    assert isinstance(signer, ed25519.Ed25519PrivateKey)
    assert key_id(public) == key_id(signer.public_key())
    with pytest.raises(pki.PkiError, match="already exists"):
        pki.generate_signing_key(private)
    with pytest.raises(pki.PkiError, match=r"must not end in \.pub"):
        pki.generate_signing_key(tmp_path / "x.pub")


def test_init_pki_checks_every_target_before_writing(tmp_path: Path) -> None:
    (tmp_path / "server.key").write_text("precious")
    with pytest.raises(pki.PkiError, match=r"server\.key: already exists"):
        pki.init_pki(tmp_path, ["localhost"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["server.key"]
    layout = pki.init_pki(tmp_path, ["localhost"], overwrite=True)
    assert layout.server.key.read_text() != "precious"
    assert layout.signing_public_key == tmp_path / "model-signing.pub"


# --- the ``pki`` command ------------------------------------------------------------


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="novacron-coordinator")
    add_pki_commands(parser.add_subparsers(dest="command", required=True))
    return run_pki(parser.parse_args(list(argv)))


def test_cli_init_then_issue_agent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "pki"
    assert run_cli("pki", "init", "--dir", str(directory), "--hosts", "coord.lan,10.0.0.5") == 0
    out = capsys.readouterr().out
    names = sorted(p.name for p in directory.iterdir())
    assert names == [
        "ca.crt",
        "ca.key",
        "model-signing.key",
        "model-signing.pub",
        "server.crt",
        "server.key",
    ]
    assert str(directory / "ca.key") in out
    assert f"model key id        {key_id(directory / 'model-signing.pub')}\n" in out
    san = cert(directory / "server.crt").extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert san.value.get_values_for_type(x509.DNSName) == ["coord.lan"]

    assert run_cli("pki", "issue-agent", "--dir", str(directory), "--node-id", "hv-9") == 0
    assert str(directory / "agents" / "hv-9.crt") in capsys.readouterr().out
    leaf = cert(directory / "agents" / "hv-9.crt")
    leaf.verify_directly_issued_by(cert(directory / "ca.crt"))
    assert mode_of(directory / "agents") == 0o700

    assert run_cli("pki", "issue-agent", "--dir", str(directory), "--node-id", "hv-9") == 1
    assert "hv-9.crt: already exists; not replacing it (pass --force to replace)" in (
        capsys.readouterr().err
    )
    assert (
        run_cli("pki", "issue-agent", "--dir", str(directory), "--node-id", "hv-9", "--force") == 0
    )
    assert run_cli("pki", "init", "--dir", str(directory)) == 1
    assert "ca.crt: already exists" in capsys.readouterr().err

    assert (
        run_cli("pki", "issue-server", "--dir", str(directory), "--hosts", "new.lan", "--force")
        == 0
    )
    new_san = cert(directory / "server.crt").extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert new_san.value.get_values_for_type(x509.DNSName) == ["new.lan"]


def test_cli_errors_are_one_line_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli("pki", "issue-agent", "--dir", str(tmp_path), "--node-id", "n1") == 1
    err = capsys.readouterr().err
    assert err.startswith("novacron-coordinator pki: ")
    assert "no CA here" in err and err.count("\n") == 1
    pki.create_ca(tmp_path, "ca")
    assert run_cli("pki", "issue-agent", "--dir", str(tmp_path), "--node-id", "a/b") == 1
    assert "node id 'a/b'" in capsys.readouterr().err
    assert run_cli("pki", "issue-server", "--dir", str(tmp_path), "--hosts", " , ") == 1
    assert "--hosts" in capsys.readouterr().err
