"""The coordinator as agents see it: a real gRPC server on loopback, real SQLite, real processes.

In-process tests run :class:`CoordinatorService` on its own loop in a thread
(``ServerThread``) and talk to it with ``AgentStream`` clients; the crash and shutdown
tests run ``novacron-coordinator run`` as a subprocess and stream from the real agent
spool (``novacron.agent.spool.Spool``) with replay from ``Welcome``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2 as grpc_health_pb2
from grpc_health.v1 import health_pb2_grpc as grpc_health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from novacron.coordinator import pki
from novacron.coordinator.config import TlsSettings
from novacron.coordinator.server import TELEMETRY_SERVICE
from novacron.coordinator.store_sqlite import SqliteStore
from novacron.models.schema import NODE, VM
from novacron.protos import telemetry_pb2
from tests.coordinator.frames import make_frame
from tests.coordinator.ingest_support import (
    AgentStream,
    ServerThread,
    StreamEnded,
    frames_message,
    insecure_config,
    make_hello,
    stored_seqs,
    with_settings,
)
from tests.coordinator.process_support import (
    COORDINATOR,
    CoordinatorProcess,
    SpoolAgent,
    wait_until,
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    with ServerThread(insecure_config(tmp_path / "coordinator.db")) as running:
        yield running


def frames(node_id: str, first: int, last: int) -> list[telemetry_pb2.Frame]:
    """Frames first..last of a node: one realistic frame (10 VMs, scores), renumbered."""
    template = make_frame(node_id, first)
    out = []
    for seq in range(first, last + 1):
        frame = telemetry_pb2.Frame()
        frame.CopyFrom(template)
        frame.seq = seq
        out.append(frame)
    return out


async def stream_frames(
    address: str, node_id: str, first: int, last: int, *, batch: int = 10
) -> list[int]:
    """Send first..last in batches, all at once; the acks, one per batch."""
    async with grpc.aio.insecure_channel(address) as channel:
        stream, _welcome = await AgentStream.connect(channel, node_id)
        batches = [
            frames(node_id, start, min(start + batch - 1, last))
            for start in range(first, last + 1, batch)
        ]
        for chunk in batches:
            await stream.send_frames(chunk)
        acks = [await stream.recv_ack() for _ in batches]
        await stream.close()
        ended = await stream.end()
        assert ended.code == grpc.StatusCode.OK
        return acks


# ---------------------------------------------------------------- ack and exactly once


def test_every_ack_arrives_after_its_frames_are_in_the_database(
    server: ServerThread, tmp_path: Path
) -> None:
    db = tmp_path / "coordinator.db"

    async def main() -> list[tuple[int, list[int]]]:
        seen = []
        async with grpc.aio.insecure_channel(server.address) as channel:
            stream, welcome = await AgentStream.connect(channel, "hv-1")
            assert welcome.highest_durable_seq == 0
            for start in range(1, 200, 10):
                await stream.send_frames(frames("hv-1", start, start + 9))
            for _ in range(20):
                ack = await stream.recv_ack()
                seen.append((ack, stored_seqs(db, "hv-1")))  # a connection of our own
        return seen

    seen = asyncio.run(main())
    assert seen[-1][0] == 200
    for ack, seqs in seen:
        assert seqs[:ack] == list(range(1, ack + 1)), f"Ack({ack}) came before its frames"


def test_replayed_frames_are_stored_once(server: ServerThread, tmp_path: Path) -> None:
    async def main() -> tuple[int, int]:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stream, _ = await AgentStream.connect(channel, "hv-1")
            await stream.send_frames(frames("hv-1", 1, 30))
            assert await stream.recv_ack() == 30
            stream.call.cancel()  # the agent vanishes without a goodbye

            # The agent never saw the ack: it replays everything, plus new frames.
            stream, welcome = await AgentStream.connect(channel, "hv-1")
            await stream.send_frames(frames("hv-1", 1, 20))
            await stream.send_frames(frames("hv-1", 21, 40))
            acks = (await stream.recv_ack(), await stream.recv_ack())
            await stream.close()
            await stream.end()
            return welcome.highest_durable_seq, acks[-1]

    welcome_seq, last_ack = asyncio.run(main())
    assert (welcome_seq, last_ack) == (30, 40)
    assert stored_seqs(tmp_path / "coordinator.db", "hv-1") == list(range(1, 41))


def test_fifty_concurrent_streams_are_all_acknowledged(
    server: ServerThread, tmp_path: Path
) -> None:
    async def main() -> list[list[int]]:
        return list(
            await asyncio.gather(
                *(stream_frames(server.address, f"hv-{n:02d}", 1, 40, batch=8) for n in range(50))
            )
        )

    results = asyncio.run(main())
    assert all(acks[-1] == 40 for acks in results)
    store = SqliteStore.open_readonly(tmp_path / "coordinator.db")
    try:
        summary = store.node_summary()
    finally:
        store.close()
    assert len(summary) == 50
    assert {(s.frames_stored, s.lowest_seq, s.highest_seq, s.gaps) for s in summary} == {
        (40, 1, 40, 0)
    }


# ---------------------------------------------------------------- bad agents


def wrong_schema_frame() -> telemetry_pb2.AgentMessage:
    frame = make_frame("hv-bad", 1)
    frame.node_features.schema_hash = "0" * 64
    return frames_message([frame])


BAD_STREAMS: dict[str, tuple[list[telemetry_pb2.AgentMessage | bytes], str]] = {
    "garbage": ([make_hello("hv-bad"), b"\x12\xff\xff\xff\xff\x0fgarbage"], "INVALID_ARGUMENT"),
    "oversized": ([make_hello("hv-bad"), b"\x22" + b"\x00" * (33 << 20)], "RESOURCE_EXHAUSTED"),
    "hello_schema": (
        [make_hello("hv-bad", feature_schema_hash="ab" * 32)],
        "FAILED_PRECONDITION",
    ),
    "frame_schema": ([make_hello("hv-bad"), wrong_schema_frame()], "FAILED_PRECONDITION"),
    "frames_first": ([frames_message(frames("hv-bad", 1, 1))], "INVALID_ARGUMENT"),
}


@pytest.mark.parametrize("case", sorted(BAD_STREAMS))
def test_a_bad_agent_gets_a_clear_status_and_the_others_carry_on(
    server: ServerThread, tmp_path: Path, case: str
) -> None:
    messages, status = BAD_STREAMS[case]

    async def bad_agent() -> StreamEnded:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stream = AgentStream(channel)
            for message in messages:
                await stream.send(message)
            return await stream.end()

    async def main() -> tuple[StreamEnded, list[list[int]]]:
        good = [stream_frames(server.address, f"hv-good-{n}", 1, 60, batch=6) for n in range(3)]
        bad = asyncio.create_task(bad_agent())
        acks = list(await asyncio.gather(*good))
        return await bad, acks

    ended, acks = asyncio.run(main())
    assert ended.code.name == status, ended
    if status != "RESOURCE_EXHAUSTED":  # over the limit, gRPC itself refuses the message
        assert ended.error is not None and ended.error.message == ended.details
    assert [a[-1] for a in acks] == [60, 60, 60]
    for n in range(3):
        assert stored_seqs(tmp_path / "coordinator.db", f"hv-good-{n}") == list(range(1, 61))
    assert stored_seqs(tmp_path / "coordinator.db", "hv-bad") == []


def fuzz_frame(data: st.DataObject, seq: int) -> telemetry_pb2.Frame:
    frame = make_frame("hv-fuzz", 1, vms=data.draw(st.integers(0, 3)))
    frame.seq = seq
    if data.draw(st.booleans()):  # raw field values: protobuf does not range-check them
        frame.observed_at.seconds = data.draw(st.integers(-(2**63), 2**63 - 1))
        frame.observed_at.nanos = data.draw(st.integers(-(2**31), 2**31 - 1))
    floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
    if data.draw(st.booleans()):
        frame.node_features.schema_hash = data.draw(st.sampled_from([NODE.hash, VM.hash, "", "x"]))
    if data.draw(st.booleans()):
        del frame.node_features.values[data.draw(st.integers(0, 30)) :]
    for prediction in frame.scores.failure_predictions:
        if data.draw(st.booleans()):
            prediction.probability = data.draw(floats)
        prediction.target.id = data.draw(st.text(max_size=8))
    for vm in frame.vm_features:
        vm.name = data.draw(st.text(max_size=12))
        vm.vm_uuid = data.draw(st.text(max_size=40))
        if data.draw(st.booleans()):
            vm.features.schema_version = data.draw(st.integers(0, 3))
    if data.draw(st.booleans()):
        frame.collector_statuses.add(name=data.draw(st.text(max_size=5)), ok=False)
    return frame


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzzed_frame_batches_never_crash_the_server(
    server: ServerThread, tmp_path: Path, data: st.DataObject
) -> None:
    seqs = data.draw(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=6))
    batch = frames_message([fuzz_frame(data, seq) for seq in seqs]).SerializeToString()
    if data.draw(st.booleans()):  # flip random bytes: any wire garbage at all
        raw = bytearray(batch)
        for _ in range(data.draw(st.integers(1, 8))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        batch = bytes(raw)
    good_node = f"hv-ok-{data.draw(st.integers(0, 10**9))}"

    async def main() -> tuple[StreamEnded | int, list[int]]:
        async with grpc.aio.insecure_channel(server.address) as channel:
            fuzzed, _ = await AgentStream.connect(channel, "hv-fuzz")
            await fuzzed.send(batch)
            try:
                outcome: StreamEnded | int = await fuzzed.recv_ack()
            except StreamEnded as ended:
                outcome = ended
            fuzzed.call.cancel()
        return outcome, await stream_frames(server.address, good_node, 1, 5, batch=5)

    outcome, acks = asyncio.run(main())
    if isinstance(outcome, StreamEnded):
        assert outcome.code.name in {"INVALID_ARGUMENT", "FAILED_PRECONDITION"}, outcome
        assert outcome.error is not None  # a StreamError said why
    assert acks == [5]  # the server still serves others


# ---------------------------------------------------------------- store trouble


def test_locked_database_fails_the_stream_retryably_and_replay_recovers(tmp_path: Path) -> None:
    db = tmp_path / "coordinator.db"
    config = insecure_config(db, busy_timeout_seconds=0.2)
    with ServerThread(config) as running:

        async def main() -> None:
            async with grpc.aio.insecure_channel(running.address) as channel:
                stream, _ = await AgentStream.connect(channel, "hv-1")
                await stream.send_frames(frames("hv-1", 1, 5))
                assert await stream.recv_ack() == 5
                blocker = sqlite3.connect(db, isolation_level=None)
                blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
                await stream.send_frames(frames("hv-1", 6, 10))
                ended = await stream.end()
                blocker.execute("ROLLBACK")
                blocker.close()
                assert ended.code == grpc.StatusCode.UNAVAILABLE
                assert ended.error is not None
                assert ended.error.code == telemetry_pb2.ERROR_CODE_INTERNAL
                assert ended.error.retryable

                stream, welcome = await AgentStream.connect(channel, "hv-1")
                assert welcome.highest_durable_seq == 5  # 6..10 were never acknowledged
                await stream.send_frames(frames("hv-1", 6, 10))
                assert await stream.recv_ack() == 10
                await stream.close()
                await stream.end()

        asyncio.run(main())
    assert stored_seqs(db, "hv-1") == list(range(1, 11))


# ---------------------------------------------------------------- mutual TLS


@pytest.fixture(scope="module")
def fleet_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("pki")
    ca = pki.create_ca(base, "test fleet CA")
    pki.issue_server(ca, base, ["localhost", "127.0.0.1"])
    pki.issue_agent(ca, base / "agents", "hv-1")
    other = pki.create_ca(base / "other", "someone else's CA")
    pki.issue_agent(other, base / "other" / "agents", "hv-1")
    return base


def tls_channel(base: Path, address: str, client: Path | None) -> grpc.aio.Channel:
    ca = (base / "ca.crt").read_bytes()
    if client is None:
        credentials = grpc.ssl_channel_credentials(root_certificates=ca)
    else:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=client.with_suffix(".key").read_bytes(),
            certificate_chain=client.read_bytes(),
        )
    return grpc.aio.secure_channel(address, credentials)


@pytest.fixture
def tls_server(fleet_pki: Path, tmp_path: Path) -> Iterator[ServerThread]:
    config = with_settings(insecure_config(tmp_path / "coordinator.db"), insecure=False)
    config = replace(
        config,
        tls=TlsSettings(
            ca_cert=fleet_pki / "ca.crt",
            server_cert=fleet_pki / "server.crt",
            server_key=fleet_pki / "server.key",
        ),
    )
    with ServerThread(config) as running:
        yield running


def test_mutual_tls_binds_the_stream_to_the_certificates_node(
    tls_server: ServerThread, fleet_pki: Path, tmp_path: Path
) -> None:
    agent_cert = fleet_pki / "agents" / "hv-1.crt"

    async def main() -> tuple[int, StreamEnded]:
        async with tls_channel(fleet_pki, tls_server.address, agent_cert) as channel:
            stream, _ = await AgentStream.connect(channel, "hv-1")
            await stream.send_frames(frames("hv-1", 1, 3))
            ack = await stream.recv_ack()
            await stream.close()
            await stream.end()

            impostor = AgentStream(channel)  # hv-1's certificate, claiming hv-2
            await impostor.send(make_hello("hv-2"))
            return ack, await impostor.end()

    ack, denied = asyncio.run(main())
    assert ack == 3
    assert denied.code == grpc.StatusCode.PERMISSION_DENIED
    assert denied.details == "certificate is for node hv-1, Hello claims hv-2"
    assert stored_seqs(tmp_path / "coordinator.db", "hv-1") == [1, 2, 3]
    assert stored_seqs(tmp_path / "coordinator.db", "hv-2") == []


@pytest.mark.parametrize("client", ["none", "other_ca"])
def test_missing_or_foreign_client_certificate_is_rejected(
    tls_server: ServerThread, fleet_pki: Path, client: str
) -> None:
    cert = None if client == "none" else fleet_pki / "other" / "agents" / "hv-1.crt"

    async def main() -> StreamEnded:
        async with tls_channel(fleet_pki, tls_server.address, cert) as channel:
            stream = AgentStream(channel)
            with contextlib.suppress(grpc.aio.AioRpcError):
                await stream.send(make_hello("hv-1"))
            return await stream.end()

    ended = asyncio.run(main())
    assert ended.code == grpc.StatusCode.UNAVAILABLE  # the handshake itself fails
    assert ended.error is None


# ---------------------------------------------------------------- health, reflection, metrics


@pytest.mark.parametrize("workers", [1, 2])
def test_health_reflection_and_metrics_are_served(tmp_path: Path, workers: int) -> None:
    config = insecure_config(tmp_path / "c.db", workers=workers)
    with ServerThread(config, serve_metrics=True) as running:
        asyncio.run(stream_frames(running.address, "hv-1", 1, 10))
        with grpc.insecure_channel(running.address) as channel:
            health = grpc_health_pb2_grpc.HealthStub(channel)
            for service in ("", TELEMETRY_SERVICE):
                reply = health.Check(grpc_health_pb2.HealthCheckRequest(service=service), timeout=5)
                assert reply.status == grpc_health_pb2.HealthCheckResponse.SERVING
            reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            [answer] = list(reflect.ServerReflectionInfo(iter([request]), timeout=5))
            names = {s.name for s in answer.list_services_response.service}
            assert {TELEMETRY_SERVICE, "grpc.health.v1.Health"} <= names
        url = f"http://127.0.0.1:{running.service.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    for name in (
        "novacron_coordinator_frames_received_total",
        "novacron_coordinator_frames_stored_total",
        "novacron_coordinator_duplicate_frames_total",
        "novacron_coordinator_dropped_frames_total",
        "novacron_coordinator_rejected_messages_total",
        "novacron_coordinator_ack_latency_seconds_bucket",
        "novacron_coordinator_store_write_seconds_bucket",
        "novacron_coordinator_store_batch_frames_bucket",
        "novacron_coordinator_connected_agents",
        "novacron_coordinator_nodes",
    ):
        assert name in text, name
    if workers > 1:  # fresh processes: the main process serves the sums of their files
        assert "novacron_coordinator_frames_stored_total 10.0" in text
        assert "novacron_coordinator_frames_received_total 10.0" in text
        assert f"novacron_coordinator_ingest_workers {workers:.1f}" in text


# ---------------------------------------------------------------- the real process


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_mid_stream_then_restart_stores_every_frame_exactly_once(
    tmp_path: Path, workers: int
) -> None:
    coordinator = CoordinatorProcess(tmp_path, workers=workers)
    agents = [SpoolAgent(tmp_path, f"hv-{n}", 800) for n in range(3)]
    coordinator.start()
    for agent in agents:
        agent.start(coordinator.address)
    wait_until(lambda: sum(a.spool.last_acked for a in agents) >= 300)
    coordinator.signal(signal.SIGKILL)
    acked_at_kill = [a.spool.last_acked for a in agents]
    coordinator.wait()
    time.sleep(0.3)  # the agents fail and retry against a dead port
    coordinator.start()
    for agent in agents:
        agent.join()

    assert any(acked < 800 for acked in acked_at_kill), "the kill came after the end"
    coordinator.signal(signal.SIGTERM)
    assert coordinator.wait() == 0
    for agent in agents:
        assert agent.reconnects >= 1
        assert stored_seqs(coordinator.db, agent.node_id) == list(range(1, 801))
        assert agent.spool.depth().frames == 0


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_exits_zero_with_every_acknowledged_frame_stored(
    tmp_path: Path, workers: int
) -> None:
    coordinator = CoordinatorProcess(tmp_path, workers=workers)
    agents = [SpoolAgent(tmp_path, f"hv-{n}", 1200) for n in range(3)]
    coordinator.start()
    for agent in agents:
        agent.start(coordinator.address)
    wait_until(lambda: sum(a.spool.last_acked for a in agents) >= 300)
    coordinator.signal(signal.SIGTERM)
    assert coordinator.wait() == 0
    time.sleep(0.2)
    for agent in agents:
        agent.stop()

    assert '"msg": "coordinator stopped"' in coordinator.log.read_text()
    for agent in agents:
        acked = agent.spool.last_acked
        assert 0 < acked < 1200
        assert stored_seqs(coordinator.db, agent.node_id)[:acked] == list(range(1, acked + 1))
        code, error = agent.endings[0]
        assert code == grpc.StatusCode.UNAVAILABLE
        assert error is not None and error.retryable
        assert error.code == telemetry_pb2.ERROR_CODE_OVERLOADED


def test_run_refuses_a_bad_config_with_status_2(tmp_path: Path) -> None:
    config = tmp_path / "coordinator.toml"
    config.write_text('[coordinator]\nlisten = "127.0.0.1:0"\nbogus = 1\n')
    result = subprocess.run(
        [str(COORDINATOR), "run", "--config", str(config), "--db", str(tmp_path / "c.db")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert str(config) in result.stderr and "coordinator.bogus" in result.stderr

    result = subprocess.run(
        [str(COORDINATOR), "run", "--listen", "nowhere", "--db", str(tmp_path / "c.db")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "--listen" in result.stderr
