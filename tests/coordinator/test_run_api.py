"""``novacron-coordinator run`` serves the scheduler API on ``--api-listen``, beside ingest."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2 as grpc_health_pb2
from grpc_health.v1 import health_pb2_grpc as grpc_health_pb2_grpc

from novacron.protos import placement_pb2, placement_pb2_grpc
from tests.fixtures.processes import console_script, free_port

COORDINATOR = console_script("novacron-coordinator")


def _wait_serving(address: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    with grpc.insecure_channel(address) as channel:
        health = grpc_health_pb2_grpc.HealthStub(channel)
        while True:
            assert process.poll() is None, "coordinator exited during start-up"
            try:
                health.Check(grpc_health_pb2.HealthCheckRequest(), timeout=1)
                return
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[tuple[str, str]]:
    agents, api = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    with (tmp_path / "log").open("wb") as log:
        process = subprocess.Popen(
            [
                COORDINATOR,
                "run",
                "--insecure",
                "--listen",
                agents,
                "--api-listen",
                api,
                "--db",
                str(tmp_path / "c.db"),
                "--metrics-listen",
                "127.0.0.1:0",
                "--ingest-workers",
                "1",
            ],
            stderr=log,
        )
    try:
        _wait_serving(api, process)
        yield agents, api
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0


def test_the_api_port_serves_placement_and_an_empty_fleet_is_an_answer(
    coordinator: tuple[str, str],
) -> None:
    _, api = coordinator
    with grpc.insecure_channel(api) as channel:
        stub = placement_pb2_grpc.PlacementServiceStub(channel)
        factors = stub.ListFactors(placement_pb2.ListFactorsRequest(), timeout=5)
        assert len(factors.factors) >= 100
        response = stub.SelectHosts(
            placement_pb2.SelectHostsRequest(spec=placement_pb2.VmSpec(vcpus=2, memory_mib=2048)),
            timeout=5,
        )
    assert response.no_valid_host and not response.hosts
    assert response.hosts_considered == 0


def test_place_cli_talks_to_the_running_coordinator(coordinator: tuple[str, str]) -> None:
    _, api = coordinator
    command = [COORDINATOR, "place", "--api", api, "--insecure", "--json"]
    result = subprocess.run(
        [*command, "--vcpus", "2", "--memory-mib", "2048"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["no_valid_host"] is True


def test_the_agent_port_does_not_serve_the_scheduler_api(coordinator: tuple[str, str]) -> None:
    agents, _ = coordinator
    with grpc.insecure_channel(agents) as channel:
        stub = placement_pb2_grpc.PlacementServiceStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            stub.ListFactors(placement_pb2.ListFactorsRequest(), timeout=5)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
