"""The committed generated code matches the .proto files, and the check can tell when not."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from novacron.protos import codegen

PROTO_DIR = codegen.PROTO_DIR


def _copy_contract(target: Path) -> Path:
    """A copy of protos/ holding only the .proto files and the committed generated code."""
    target.mkdir()
    for path in PROTO_DIR.iterdir():
        if path.suffix == ".proto" or codegen.is_generated(path.name):
            shutil.copy2(path, target / path.name)
    return target


def _add_field(proto: Path, message: str, field: str) -> None:
    text = proto.read_text()
    opening = f"message {message} {{\n"
    assert opening in text
    proto.write_text(text.replace(opening, opening + f"  {field}\n", 1))


def test_committed_generated_code_is_current() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "novacron.protos.codegen", "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_every_proto_has_its_generated_modules_committed() -> None:
    names = {p.name for p in PROTO_DIR.iterdir()}
    for proto in codegen.proto_files(PROTO_DIR):
        assert f"{proto.stem}_pb2.py" in names
        assert f"{proto.stem}_pb2.pyi" in names
    # Files without services get no grpc module; files with one get a typed stub too.
    assert "common_pb2_grpc.py" not in names
    for service_file in ("telemetry", "placement", "health", "remediation", "optimization"):
        assert f"{service_file}_pb2_grpc.py" in names
        assert f"{service_file}_pb2_grpc.pyi" in names


def test_unmodified_copy_checks_clean(tmp_path: Path) -> None:
    assert codegen.check(_copy_contract(tmp_path / "protos")) == []


def test_edited_proto_is_reported_with_exactly_the_files_it_changes(tmp_path: Path) -> None:
    copy = _copy_contract(tmp_path / "protos")
    _add_field(copy / "health.proto", "NodeHealth", "uint64 uptime_seconds = 99;")

    problems = codegen.check(copy)

    assert problems == ["differs: health_pb2.py", "differs: health_pb2.pyi"]


def test_edited_rpc_comment_is_reported_through_the_typed_stub(tmp_path: Path) -> None:
    copy = _copy_contract(tmp_path / "protos")
    proto = copy / "health.proto"
    proto.write_text(proto.read_text().replace("2 s recommended (5 s", "3 s recommended (5 s"))

    assert codegen.check(copy) == ["differs: health_pb2_grpc.py", "differs: health_pb2_grpc.pyi"]


def test_missing_and_stale_generated_files_are_reported(tmp_path: Path) -> None:
    copy = _copy_contract(tmp_path / "protos")
    (copy / "placement_pb2.pyi").unlink()
    (copy / "retired_pb2.py").write_text("# from a .proto that was deleted\n")

    problems = codegen.check(copy)

    assert problems == [
        "missing: placement_pb2.pyi",
        "stale (no .proto generates it): retired_pb2.py",
    ]


def test_write_regenerates_and_removes_stale_files(tmp_path: Path) -> None:
    copy = _copy_contract(tmp_path / "protos")
    _add_field(copy / "common.proto", "NodeId", "string rack = 3;")
    (copy / "retired_pb2.py").write_text("# stale\n")

    changed = codegen.write(copy)

    assert "wrote common_pb2.py" in changed
    assert "removed retired_pb2.py" in changed
    assert not (copy / "retired_pb2.py").exists()
    assert "rack: str" in (copy / "common_pb2.pyi").read_text()
    assert codegen.check(copy) == []


def test_check_cli_exits_non_zero_and_names_the_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = _copy_contract(tmp_path / "protos")
    _add_field(copy / "telemetry.proto", "Ack", "uint32 window_frames = 2;")

    status = codegen.main(["--check", "--proto-dir", str(copy)])

    err = capsys.readouterr().err
    assert status == 1
    assert "differs: telemetry_pb2.py" in err
    assert "make proto" in err


def test_malformed_proto_is_a_codegen_error_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = _copy_contract(tmp_path / "protos")
    (copy / "broken.proto").write_text('syntax = "proto3";\nmessage Broken { int32 = 1; }\n')

    with pytest.raises(codegen.CodegenError, match="protoc exited with status 1"):
        codegen.check(copy)
    assert codegen.main(["--check", "--proto-dir", str(copy)]) == 2
    assert "codegen: protoc exited" in capsys.readouterr().err


def test_importing_the_contract_never_needs_grpc_tools() -> None:
    # grpcio-tools is a dev dependency; the agent installs without it.
    program = (
        "import sys\n"
        "sys.modules['grpc_tools'] = None\n"
        "import novacron.protos.codegen\n"
        "from novacron.protos import common_pb2, health_pb2_grpc, telemetry_pb2_grpc\n"
        "try:\n"
        "    novacron.protos.codegen.check()\n"
        "except novacron.protos.codegen.CodegenError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "grpcio-tools is not installed" in result.stdout
