"""The stream client against a fake coordinator: real gRPC on 127.0.0.1, real SQLite spool.

Frames in these tests are minimal ``Frame`` messages (just a seq and a time): the client
never looks inside a frame, and the fake parses each one to store it by (node, seq).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.duration_pb2 import Duration

from novacron.agent.health_report import HealthState
from novacron.agent.spool import Spool
from novacron.agent.stream import (
    COMMAND_NOT_SUPPORTED,
    Backoff,
    StreamClient,
    StreamOutcome,
    StreamSettings,
    encode_frame_batch,
    full_jitter_delay,
    reconnect_delay,
)
from novacron.coordinator.pki import init_pki, issue_agent
from novacron.protos import common_pb2, telemetry_pb2
from novacron.protos.runtime.tls import TlsConfigError, server_credentials
from tests.agent.fake_coordinator import FakeCoordinator, FakeServer

NODE = "hv-test-1"


def frame_bytes(seq: int) -> bytes:
    frame = telemetry_pb2.Frame(seq=seq)
    frame.observed_at.FromSeconds(1_700_000_000 + seq)
    return frame.SerializeToString()


def append(spool: Spool, count: int) -> list[int]:
    return [spool.append(frame_bytes, created=time.time()) for _ in range(count)]


def hello() -> telemetry_pb2.Hello:
    return telemetry_pb2.Hello(
        contract_minor_version=1, node=common_pb2.NodeId(host=NODE), agent_version="test"
    )


def settings(address: str, **overrides: object) -> StreamSettings:
    values: dict[str, object] = {
        "address": address,
        "insecure": True,
        "heartbeat_interval_seconds": 60.0,
        "backoff_base_seconds": 0.05,
        "backoff_cap_seconds": 0.3,
        "handshake_timeout_seconds": 2.0,
        "refused_retry_seconds": 1.0,
    }
    values.update(overrides)
    return StreamSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool(tmp_path / "spool.sqlite") as opened:
        yield opened


@pytest.fixture
def coordinator() -> Iterator[tuple[FakeCoordinator, FakeServer]]:
    fake = FakeCoordinator()
    server = FakeServer(fake)
    yield fake, server
    server.stop()


class Running:
    """A started client that is always stopped, even when the test fails."""

    def __init__(self, client: StreamClient) -> None:
        self.client = client

    def __enter__(self) -> StreamClient:
        self.client.start()
        return self.client

    def __exit__(self, *exc: object) -> None:
        self.client.stop()


def test_hello_then_replay_after_the_welcome_seq(
    spool: Spool, coordinator: tuple[FakeCoordinator, FakeServer]
) -> None:
    fake, server = coordinator
    append(spool, 5)
    # The coordinator already stores 1 and 2 (acks lost before the agent restarted).
    fake.stored[(NODE, 1)] = frame_bytes(1)
    fake.stored[(NODE, 2)] = frame_bytes(2)
    with Running(StreamClient(settings(server.address), spool, hello)) as client:
        assert client.wait_connected(5)
        assert fake.wait_for(lambda: spool.depth().frames == 0)
    first = fake.hellos[0]
    assert first.node.host == NODE
    assert first.last_produced_seq == 5
    assert first.last_acked_seq == 0
    # Nothing at or below the Welcome's seq is sent again; the rest in one batch.
    assert fake.received_seqs(NODE) == [3, 4, 5]
    assert fake.batch_sizes == [3]
    assert fake.seqs(NODE) == [1, 2, 3, 4, 5]
    assert spool.last_acked == 5


def test_frames_leave_the_spool_only_when_acknowledged(spool: Spool) -> None:
    fake = FakeCoordinator(auto_ack=False)
    server = FakeServer(fake)
    try:
        append(spool, 3)
        with Running(StreamClient(settings(server.address), spool, hello)) as client:
            assert client.wait_connected(5)
            assert fake.wait_for(lambda: len(fake.received) == 3)
            time.sleep(0.1)
            assert spool.depth().frames == 3  # sent, not acknowledged: still spooled
            assert fake.batch_sizes == [3]
            fake.ack(NODE, 2)  # part of the batch
            assert fake.wait_for(lambda: spool.depth().frames == 1)
            assert [seq for seq, _ in spool.pending()] == [3]
            assert spool.last_acked == 2
            assert client.in_flight_frames() == 1
            fake.ack(NODE, 3)
            assert fake.wait_for(lambda: spool.depth().frames == 0)
            assert fake.received_seqs(NODE) == [1, 2, 3]  # nothing sent twice
    finally:
        server.stop()


def test_new_frames_go_out_when_notified(
    spool: Spool, coordinator: tuple[FakeCoordinator, FakeServer]
) -> None:
    fake, server = coordinator
    with Running(StreamClient(settings(server.address), spool, hello)) as client:
        assert client.wait_connected(5)
        for expected in range(1, 4):
            began = time.monotonic()
            append(spool, 1)
            client.notify()
            want = list(range(1, expected + 1))
            assert fake.wait_for(lambda: fake.seqs(NODE) == want, 2)  # noqa: B023
            # The heartbeat interval is 60 s: only the notification can have sent it.
            assert time.monotonic() - began < 1.0
        assert fake.wait_for(lambda: spool.depth().frames == 0)
    assert fake.batch_sizes == [1, 1, 1]


def test_reconnect_after_coordinator_restart_replays_in_order(spool: Spool) -> None:
    fake = FakeCoordinator()
    server = FakeServer(fake)
    health = HealthState(NODE)
    client = StreamClient(settings(server.address), spool, hello, health=health)
    with Running(client):
        assert client.wait_connected(5)
        append(spool, 3)
        client.notify()
        assert fake.wait_for(lambda: spool.depth().frames == 0)
        server.stop()
        assert fake.wait_for(lambda: not client.connected, 5)
        produced_while_down = append(spool, 5)
        client.notify()
        time.sleep(0.3)  # a few failed reconnects
        assert spool.depth().frames == 5
        assert health.snapshot().link.state in ("disconnected", "connecting")
        server.start()  # same port, same store
        assert fake.wait_for(lambda: spool.depth().frames == 0, 10)
        assert health.snapshot().link.state == "connected"
    assert produced_while_down == [4, 5, 6, 7, 8]
    assert fake.seqs(NODE) == list(range(1, 9))
    assert fake.received_seqs(NODE) == list(range(1, 9))  # in order, none twice
    assert fake.hellos[-1].last_acked_seq == 3
    assert fake.hellos[-1].last_produced_seq == 8
    for seq in range(1, 9):
        assert fake.stored[(NODE, seq)] == frame_bytes(seq)


def test_retryable_stream_error_waits_retry_after(
    spool: Spool, coordinator: tuple[FakeCoordinator, FakeServer], caplog: pytest.LogCaptureFixture
) -> None:
    fake, server = coordinator
    error = telemetry_pb2.StreamError(
        code=telemetry_pb2.ERROR_CODE_OVERLOADED,
        message="shedding load",
        retryable=True,
        retry_after=Duration(nanos=400_000_000),
    )
    fake.instead_of_welcome.append(telemetry_pb2.CoordinatorMessage(error=error))
    append(spool, 2)
    with (
        caplog.at_level(logging.ERROR),
        Running(StreamClient(settings(server.address), spool, hello)) as client,
    ):
        assert client.wait_connected(5)
        assert fake.wait_for(lambda: spool.depth().frames == 0)
    assert len(fake.hellos) == 2
    assert fake.hello_times[1] - fake.hello_times[0] >= 0.4
    errors = [r for r in caplog.records if r.getMessage().startswith("coordinator ended")]
    assert [getattr(r, "code", None) for r in errors] == ["ERROR_CODE_OVERLOADED"]
    assert getattr(errors[0], "retry_after_seconds", None) == pytest.approx(0.4)


def test_non_retryable_stream_error_waits_the_long_delay(
    spool: Spool, coordinator: tuple[FakeCoordinator, FakeServer]
) -> None:
    fake, server = coordinator
    error = telemetry_pb2.StreamError(
        code=telemetry_pb2.ERROR_CODE_UNKNOWN_FEATURE_SCHEMA, message="no such schema"
    )
    fake.instead_of_welcome.append(telemetry_pb2.CoordinatorMessage(error=error))
    health = HealthState(NODE)
    client = StreamClient(
        settings(server.address, refused_retry_seconds=0.8), spool, hello, health=health
    )
    with Running(client):
        assert fake.wait_for(lambda: health.snapshot().link.last_error != "", 5)
        assert "no such schema" in health.snapshot().link.last_error
        assert client.wait_connected(5)
    assert fake.hello_times[1] - fake.hello_times[0] >= 0.8


def test_stream_error_after_welcome_reconnects(
    spool: Spool, coordinator: tuple[FakeCoordinator, FakeServer]
) -> None:
    fake, server = coordinator
    with Running(StreamClient(settings(server.address), spool, hello)) as client:
        assert client.wait_connected(5)
        fake.send(
            NODE,
            telemetry_pb2.CoordinatorMessage(
                error=telemetry_pb2.StreamError(
                    code=telemetry_pb2.ERROR_CODE_INTERNAL, message="store hiccup", retryable=True
                )
            ),
        )
        assert fake.wait_for(lambda: len(fake.hellos) == 2 and fake.live_streams(NODE) == 1, 5)
        append(spool, 1)
        client.notify()
        assert fake.wait_for(lambda: fake.seqs(NODE) == [1])


def test_no_welcome_is_a_handshake_timeout(spool: Spool) -> None:
    fake = FakeCoordinator()
    fake.instead_of_welcome.append(None)  # the first stream hears nothing back
    server = FakeServer(fake)
    try:
        with Running(
            StreamClient(settings(server.address, handshake_timeout_seconds=0.3), spool, hello)
        ) as client:
            assert client.wait_connected(5)
        assert len(fake.hellos) == 2
        assert fake.hello_times[1] - fake.hello_times[0] >= 0.3
    finally:
        server.stop()


def test_missing_acks_reopen_the_stream_and_resend(spool: Spool) -> None:
    fake = FakeCoordinator(auto_ack=False, storing=False)
    server = FakeServer(fake)
    try:
        append(spool, 2)
        with Running(StreamClient(settings(server.address, ack_timeout_seconds=0.3), spool, hello)):
            assert fake.wait_for(lambda: len(fake.hellos) >= 2, 5)
            assert fake.wait_for(lambda: fake.received_seqs(NODE)[:4] == [1, 2, 1, 2], 5)
        assert spool.depth().frames == 2  # never acknowledged, never dropped
    finally:
        server.stop()


def test_in_flight_frames_are_bounded(spool: Spool) -> None:
    fake = FakeCoordinator(auto_ack=False)
    server = FakeServer(fake)
    try:
        append(spool, 50)
        client = StreamClient(
            settings(server.address, max_in_flight_frames=10, max_batch_frames=4), spool, hello
        )
        with Running(client):
            assert fake.wait_for(lambda: len(fake.received) == 10)
            time.sleep(0.3)
            assert len(fake.received) == 10  # the client waits for acks, not the server
            assert client.in_flight_frames() == 10
            assert fake.batch_sizes == [4, 4, 2]
            fake.ack(NODE, 6)
            assert fake.wait_for(lambda: len(fake.received) == 16)
            time.sleep(0.2)
            assert fake.received_seqs(NODE) == list(range(1, 17))
    finally:
        server.stop()


def test_in_flight_bytes_are_bounded(spool: Spool) -> None:
    fake = FakeCoordinator(auto_ack=False)
    server = FakeServer(fake)
    size = len(frame_bytes(1))
    try:
        append(spool, 20)
        client = StreamClient(settings(server.address, max_in_flight_bytes=5 * size), spool, hello)
        with Running(client):
            assert fake.wait_for(lambda: len(fake.received) == 5)
            time.sleep(0.3)
            assert len(fake.received) == 5
    finally:
        server.stop()


def test_heartbeat_when_idle(spool: Spool, coordinator: tuple[FakeCoordinator, FakeServer]) -> None:
    fake, server = coordinator
    append(spool, 1)
    with Running(
        StreamClient(settings(server.address, heartbeat_interval_seconds=0.15), spool, hello)
    ) as client:
        assert client.wait_connected(5)
        assert fake.wait_for(lambda: len(fake.heartbeats) >= 2, 3)
    assert fake.heartbeats[-1].last_produced_seq == 1
    assert fake.heartbeats[-1].spool_depth_frames == 0


def test_command_is_answered_not_supported(
    spool: Spool, coordinator: tuple[FakeCoordinator, FakeServer]
) -> None:
    fake, server = coordinator
    with Running(StreamClient(settings(server.address), spool, hello)) as client:
        assert client.wait_connected(5)
        fake.send(
            NODE,
            telemetry_pb2.CoordinatorMessage(
                command=telemetry_pb2.Command(
                    command_id="c-1",
                    idempotency_key="k-1",
                    action=telemetry_pb2.COMMAND_ACTION_MIGRATE_VM,
                    parameters={"vm_uuid": "x"},
                )
            ),
        )
        assert fake.wait_for(lambda: len(fake.command_results) == 1)
        append(spool, 1)  # the stream carries on
        client.notify()
        assert fake.wait_for(lambda: fake.seqs(NODE) == [1])
    result = fake.command_results[0]
    assert result.command_id == "c-1"
    assert result.report.idempotency_key == "k-1"
    assert result.report.status == common_pb2.EXECUTION_STATUS_REJECTED
    assert result.report.message == COMMAND_NOT_SUPPORTED


def test_model_update_goes_to_the_handler_and_a_raising_handler_is_survived(
    spool: Spool, coordinator: tuple[FakeCoordinator, FakeServer], caplog: pytest.LogCaptureFixture
) -> None:
    fake, server = coordinator
    seen: list[str] = []

    def handler(update: telemetry_pb2.ModelUpdate) -> None:
        seen.append(update.version)
        raise RuntimeError("handler bug")

    with (
        caplog.at_level(logging.ERROR),
        Running(
            StreamClient(settings(server.address), spool, hello, on_model_update=handler)
        ) as client,
    ):
        assert client.wait_connected(5)
        fake.send(
            NODE,
            telemetry_pb2.CoordinatorMessage(
                model_update=telemetry_pb2.ModelUpdate(model_name="m", version="2")
            ),
        )
        assert fake.wait_for(lambda: seen == ["2"])
        append(spool, 1)
        client.notify()
        assert fake.wait_for(lambda: fake.seqs(NODE) == [1])
        assert len(fake.hellos) == 1  # the same stream
    assert "model update handler failed" in caplog.text


def test_stop_flushes_what_it_can(
    spool: Spool, coordinator: tuple[FakeCoordinator, FakeServer]
) -> None:
    fake, server = coordinator
    client = StreamClient(settings(server.address), spool, hello)
    client.start()
    assert client.wait_connected(5)
    append(spool, 3)
    client.notify()
    client.stop(flush_seconds=3.0)
    assert spool.depth().frames == 0
    assert fake.seqs(NODE) == [1, 2, 3]


def test_stop_does_not_wait_while_disconnected(spool: Spool) -> None:
    client = StreamClient(settings("127.0.0.1:1"), spool, hello)
    client.start()
    append(spool, 1)
    began = time.monotonic()
    client.stop(flush_seconds=5.0)
    assert time.monotonic() - began < 2.0


def test_mutual_tls(tmp_path: Path, spool: Spool) -> None:
    pki = init_pki(tmp_path / "pki", ["127.0.0.1"])
    agent = issue_agent(pki.ca, tmp_path / "pki" / "agents", NODE)
    fake = FakeCoordinator()
    server = FakeServer(
        fake, credentials=server_credentials(pki.ca.cert, pki.server.cert, pki.server.key)
    )
    try:
        tls = settings(
            server.address,
            insecure=False,
            ca_cert=pki.ca.cert,
            client_cert=agent.cert,
            client_key=agent.key,
        )
        append(spool, 2)
        with Running(StreamClient(tls, spool, hello)) as client:
            assert client.wait_connected(5)
            assert fake.wait_for(lambda: spool.depth().frames == 0)
        assert fake.seqs(NODE) == [1, 2]
        with pytest.raises(TlsConfigError, match="file not found"):
            StreamClient(
                settings(
                    server.address,
                    insecure=False,
                    ca_cert=tmp_path / "missing.crt",
                    client_cert=agent.cert,
                    client_key=agent.key,
                ),
                spool,
                hello,
            )
    finally:
        server.stop()


def test_settings_need_certificates_unless_insecure() -> None:
    with pytest.raises(ValueError, match="required unless insecure"):
        StreamSettings(address="127.0.0.1:1")
    with pytest.raises(ValueError, match="max_in_flight_frames"):
        StreamSettings(address="127.0.0.1:1", insecure=True, max_in_flight_frames=0)


def test_encode_frame_batch_is_the_protobuf_encoding() -> None:
    bodies = [frame_bytes(seq) for seq in (1, 2, 300)] + [b"x" * 200]
    bodies[-1] = telemetry_pb2.Frame(
        seq=9, vm_features=[telemetry_pb2.VmFeatures(name="v" * 300)]
    ).SerializeToString()
    expected = telemetry_pb2.AgentMessage(
        frames=telemetry_pb2.FrameBatch(frames=[telemetry_pb2.Frame.FromString(b) for b in bodies])
    ).SerializeToString()
    assert encode_frame_batch(bodies) == expected
    decoded = telemetry_pb2.AgentMessage.FromString(encode_frame_batch(bodies))
    assert [f.seq for f in decoded.frames.frames] == [1, 2, 300, 9]


@pytest.mark.parametrize("attempt", range(8))
def test_full_jitter_delay_bounds(attempt: int) -> None:
    rng = random.Random(attempt)
    ceiling = min(30.0, 0.5 * 2**attempt)
    delays = [full_jitter_delay(attempt, base=0.5, cap=30.0, rng=rng) for _ in range(2000)]
    assert all(0.0 <= d <= ceiling for d in delays)
    # Full jitter spreads over the whole interval, not just near its top.
    assert min(delays) < 0.05 * ceiling
    assert max(delays) > 0.95 * ceiling
    assert 0.45 * ceiling < sum(delays) / len(delays) < 0.55 * ceiling


def test_backoff_grows_to_the_cap_and_resets() -> None:
    backoff = Backoff(0.5, 30.0, rng=random.Random(1))
    for _ in range(100):
        assert 0.0 <= backoff.next_delay() <= 30.0
    assert backoff.attempt == 100
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.next_delay() <= 0.5
    with pytest.raises(ValueError):
        full_jitter_delay(-1, base=0.5, cap=30.0, rng=random.Random())


def test_reconnect_delay_resets_after_a_stable_stream() -> None:
    policy = settings("127.0.0.1:1", backoff_base_seconds=0.5, backoff_cap_seconds=30.0)
    backoff = Backoff(0.5, 30.0, rng=random.Random(3))
    failed = StreamOutcome(False, 0.0, "unavailable", "UNAVAILABLE: refused")
    for _ in range(6):
        reconnect_delay(failed, backoff, policy)
    assert backoff.attempt == 6
    short = StreamOutcome(True, policy.stable_after_seconds / 2, "unavailable", "x")
    reconnect_delay(short, backoff, policy)
    assert backoff.attempt == 7  # up, but not long enough to count as stable
    stable = StreamOutcome(True, policy.stable_after_seconds, "deadline_exceeded", "x")
    assert reconnect_delay(stable, backoff, policy) <= 0.5
    assert backoff.attempt == 1
    refused = StreamOutcome(True, 100.0, "stream_error", "x", refused=True)
    assert reconnect_delay(refused, backoff, policy) == policy.refused_retry_seconds
    later = StreamOutcome(False, 0.0, "stream_error", "x", retry_after_seconds=7.0)
    assert reconnect_delay(later, backoff, policy) >= 7.0
