"""The ingest without gRPC: message checks, the batch writer, stream sessions, liveness, models.

Sessions run on asyncio with a fake transport (an async iterator of raw bytes in, a list
of sent messages out) against a real SQLite store in tmp_path; "durable" is checked
through a separate SQLite connection at the moment each Ack is sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import sqlite3
from collections.abc import AsyncIterator, Collection, Iterator, Sequence
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from novacron.coordinator.config import StoreSettings
from novacron.coordinator.fleet import FleetState, Liveness
from novacron.coordinator.ingest import Ingest, IngestSettings, LivenessMonitor, StreamSession
from novacron.coordinator.ingest_checks import (
    KnownSchemas,
    StreamRejected,
    check_frame,
    check_hello,
    decode_message,
)
from novacron.coordinator.ingest_writer import BatchWriter
from novacron.coordinator.model_push import ModelSigner, ModelWatcher, read_model
from novacron.coordinator.pki import generate_signing_key
from novacron.coordinator.store import StoredFrame, StoreUnavailable
from novacron.coordinator.store_sqlite import SqliteStore
from novacron.models.schema import NODE, VM
from novacron.models.signing import load_public_key, verify_model
from novacron.protos import telemetry_pb2
from tests.coordinator.frames import make_frame, stored_range
from tests.coordinator.ingest_support import copy_bundled, frames_message, make_hello, stored_seqs

SCHEMAS = KnownSchemas.current()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# ---------------------------------------------------------------- message checks


def rejected(call: object, *args: object, **kwargs: object) -> StreamRejected:
    with pytest.raises(StreamRejected) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    return info.value


def test_garbage_bytes_are_a_protocol_violation() -> None:
    error = rejected(decode_message, b"\xff\xff\xff\xff not protobuf")
    assert error.reason == "undecodable"
    assert error.status == "INVALID_ARGUMENT"
    stream_error = error.stream_error()
    assert stream_error is not None
    assert stream_error.code == telemetry_pb2.ERROR_CODE_PROTOCOL_VIOLATION
    assert "not a valid AgentMessage" in stream_error.message


def test_empty_and_unknown_messages_are_refused() -> None:
    assert rejected(decode_message, b"").reason == "empty_message"
    # Field 15, a varint: valid wire format, but no body this contract knows.
    assert rejected(decode_message, b"\x78\x01").reason == "empty_message"


def test_oversized_message_is_refused_before_parsing() -> None:
    error = rejected(decode_message, b"\x00" * 101, 100)
    assert error.reason == "oversized"
    assert error.status == "RESOURCE_EXHAUSTED"
    assert "101 bytes exceeds the limit of 100" in error.message


def hello(node_id: str = "hv-1", **fields: object) -> telemetry_pb2.Hello:
    message = make_hello(node_id)
    for name, value in fields.items():
        setattr(message.hello, name, value)
    return message.hello


def test_hello_binds_the_node_and_checks_contract_and_schema() -> None:
    assert check_hello(hello(), cert_node_id=None, schemas=SCHEMAS) == "hv-1"
    assert check_hello(hello(), cert_node_id="hv-1", schemas=SCHEMAS) == "hv-1"

    denied = rejected(check_hello, hello("hv-2"), cert_node_id="hv-1", schemas=SCHEMAS)
    assert denied.status == "PERMISSION_DENIED"
    assert denied.message == "certificate is for node hv-1, Hello claims hv-2"
    assert denied.stream_error() is None  # an abort, not a retryable StreamError

    contract = rejected(
        check_hello, hello(contract_minor_version=0), cert_node_id=None, schemas=SCHEMAS
    )
    assert contract.code == telemetry_pb2.ERROR_CODE_UNSUPPORTED_CONTRACT
    assert not contract.retryable

    schema = rejected(
        check_hello, hello(feature_schema_hash="ab" * 32), cert_node_id=None, schemas=SCHEMAS
    )
    assert schema.code == telemetry_pb2.ERROR_CODE_UNKNOWN_FEATURE_SCHEMA
    assert schema.status == "FAILED_PRECONDITION"
    assert f"knows node-v1 ({NODE.hash[:12]})" in schema.message

    bad_id = rejected(check_hello, hello("../etc"), cert_node_id=None, schemas=SCHEMAS)
    assert bad_id.reason == "bad_node_id"


def test_frames_must_follow_the_known_schemas() -> None:
    check_frame(make_frame("hv-1", 1), SCHEMAS)  # the realistic frame passes

    wrong_node = make_frame("hv-1", 1)
    wrong_node.node_features.schema_hash = VM.hash
    error = rejected(check_frame, wrong_node, SCHEMAS)
    assert error.code == telemetry_pb2.ERROR_CODE_UNKNOWN_FEATURE_SCHEMA
    assert "frame 1 node_features" in error.message

    wrong_vm = make_frame("hv-1", 2)
    wrong_vm.vm_features[3].features.schema_version = 9
    assert (
        "VM '00000000-0000-4000-8000-000000000003'"
        in rejected(check_frame, wrong_vm, SCHEMAS).message
    )

    short = make_frame("hv-1", 3, features=[1.0, 2.0])
    error = rejected(check_frame, short, SCHEMAS)
    assert error.reason == "bad_frame"
    assert f"2 values, schema node-v1 has {len(NODE.features)}" in error.message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("probability", math.nan),
        ("probability", 1.5),
        ("ci_low", -0.1),
        ("horizon_seconds", math.inf),
    ],
)
def test_frames_with_numbers_the_store_cannot_keep_are_refused(field: str, value: float) -> None:
    frame = make_frame("hv-1", 4)
    setattr(frame.scores.failure_predictions[0], field, value)
    error = rejected(check_frame, frame, SCHEMAS)
    assert error.reason == "bad_frame"
    assert field in error.message
    assert error.retryable


def test_nan_features_are_data_not_errors() -> None:
    check_frame(make_frame("hv-1", 5, features=[math.nan] * len(NODE.features)), SCHEMAS)


# ---------------------------------------------------------------- batch writer


class CountingStore(SqliteStore):
    """The real store, counting transactions; can fail them like a full disk would."""

    batches: list[int]
    unavailable: bool
    poison_node: str | None

    def write_batch(
        self,
        frames: Sequence[StoredFrame],
        *,
        resumed: Collection[str] = (),
        now: float | None = None,
    ) -> dict[str, int]:
        self.batches.append(len(frames))
        if self.unavailable:
            raise StoreUnavailable("disk full (test)")
        if self.poison_node is not None and any(f.node_id == self.poison_node for f in frames):
            raise sqlite3.IntegrityError("NOT NULL constraint failed (test)")
        return super().write_batch(frames, resumed=resumed, now=now)


def counting_store(path: Path, **settings: object) -> CountingStore:
    store = CountingStore.open(path, StoreSettings(**settings))  # type: ignore[arg-type]
    assert isinstance(store, CountingStore)
    store.batches, store.unavailable, store.poison_node = [], False, None
    return store


def test_writer_puts_frames_of_many_streams_in_one_transaction(tmp_path: Path) -> None:
    store = counting_store(tmp_path / "c.db")
    fleet = FleetState(clock=lambda: 1000.0)
    writer = BatchWriter(
        store,
        max_frames=1000,
        max_delay_seconds=0.2,
        on_commit=fleet.observe_frames,
        clock=lambda: 1000.0,
    )
    writer.start()

    frames = {f"hv-{n}": stored_range(f"hv-{n}", 1, 5) for n in range(20)}

    async def main() -> list[int]:
        futures = [writer.submit(batch, node_id=node) for node, batch in frames.items()]
        return list(await asyncio.gather(*futures))

    try:
        assert asyncio.run(main()) == [5] * 20
    finally:
        assert writer.close(5)
    assert store.batches == [100]  # 20 streams x 5 frames, one commit
    snapshot = fleet.snapshot(1000.0)
    assert len(snapshot) == 20
    assert snapshot.last_seq.tolist() == [5] * 20
    assert stored_seqs(tmp_path / "c.db", "hv-7") == [1, 2, 3, 4, 5]
    store.close()


def test_writer_respects_the_batch_size(tmp_path: Path) -> None:
    store = counting_store(tmp_path / "c.db")
    writer = BatchWriter(store, max_frames=10, max_delay_seconds=0.2)
    writer.start()

    frames = {f"hv-{n}": stored_range(f"hv-{n}", 1, 4) for n in range(5)}

    async def main() -> list[int]:
        futures = [writer.submit(batch, node_id=node) for node, batch in frames.items()]
        return list(await asyncio.gather(*futures))

    try:
        assert asyncio.run(main()) == [4] * 5
    finally:
        writer.close(5)
    assert store.batches == [8, 8, 4]  # whole jobs, never more than 10 frames
    store.close()


def test_store_failure_fails_the_batch_and_the_writer_carries_on(tmp_path: Path) -> None:
    store = counting_store(tmp_path / "c.db")
    writer = BatchWriter(store, max_frames=100, max_delay_seconds=0.01)
    writer.start()
    dropped = metric("novacron_coordinator_dropped_frames_total")

    async def main() -> int:
        store.unavailable = True
        with pytest.raises(StoreUnavailable, match="disk full"):
            await writer.submit(stored_range("hv-1", 1, 3), node_id="hv-1")
        store.unavailable = False
        return await writer.submit(stored_range("hv-1", 1, 3), node_id="hv-1")

    try:
        assert asyncio.run(main()) == 3
    finally:
        writer.close(5)
    assert metric("novacron_coordinator_dropped_frames_total") == dropped + 3
    assert stored_seqs(tmp_path / "c.db", "hv-1") == [1, 2, 3]
    store.close()


def test_one_poisoned_job_does_not_fail_other_streams(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = counting_store(tmp_path / "c.db")
    store.poison_node = "bad"
    writer = BatchWriter(store, max_frames=100, max_delay_seconds=0.2)
    writer.start()

    frames = {node: stored_range(node, 1, 2) for node in ("good-1", "bad", "good-2")}

    async def main() -> list[int | BaseException]:
        futures = [writer.submit(batch, node_id=node) for node, batch in frames.items()]
        return list(await asyncio.gather(*futures, return_exceptions=True))

    try:
        with caplog.at_level(logging.WARNING):
            good_1, bad, good_2 = asyncio.run(main())
    finally:
        writer.close(5)
    assert (good_1, good_2) == (2, 2)
    assert isinstance(bad, sqlite3.IntegrityError)
    assert store.batches == [6, 2, 2, 2]  # shared batch failed, then one job at a time
    assert "retrying each stream's frames alone" in caplog.text
    store.close()


def test_writer_runs_store_calls_in_order_and_refuses_work_after_close(tmp_path: Path) -> None:
    store = counting_store(tmp_path / "c.db")
    writer = BatchWriter(store, max_frames=100, max_delay_seconds=0.01)
    writer.start()

    async def main() -> None:
        ack = await writer.submit(stored_range("hv-1", 1, 4), node_id="hv-1")
        assert await writer.call(lambda s: s.highest_durable_seq("hv-1")) == ack == 4
        writer.close(5)
        with pytest.raises(StoreUnavailable, match="shutting down"):
            await writer.submit(stored_range("hv-1", 5, 5), node_id="hv-1")

    asyncio.run(main())
    store.close()


# ---------------------------------------------------------------- sessions


class FakeTransport:
    """Raw messages in, CoordinatorMessages out, with the store checked at every Ack."""

    def __init__(self, db_path: Path | None = None, node_id: str = "hv-1") -> None:
        self.incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.sent: asyncio.Queue[telemetry_pb2.CoordinatorMessage] = asyncio.Queue()
        self.db_path = db_path
        self.node_id = node_id
        self.durable_at_ack: list[tuple[int, list[int]]] = []

    async def messages(self) -> AsyncIterator[bytes]:
        while True:
            raw = await self.incoming.get()
            if raw is None:
                return
            yield raw

    async def send(self, message: telemetry_pb2.CoordinatorMessage) -> None:
        if message.WhichOneof("body") == "ack" and self.db_path is not None:
            self.durable_at_ack.append(
                (message.ack.highest_durable_seq, stored_seqs(self.db_path, self.node_id))
            )
        await self.sent.put(message)

    def put(self, message: telemetry_pb2.AgentMessage | bytes | None) -> None:
        """Queue a message for the session; None half-closes the stream."""
        if isinstance(message, telemetry_pb2.AgentMessage):
            message = message.SerializeToString()
        self.incoming.put_nowait(message)

    async def next(self, kind: str | None = None) -> telemetry_pb2.CoordinatorMessage:
        message = await asyncio.wait_for(self.sent.get(), 10)
        if kind is not None:
            assert message.WhichOneof("body") == kind, message
        return message


class Harness:
    def __init__(self, tmp_path: Path, *, insecure: bool = True, **settings: object) -> None:
        self.db_path = tmp_path / "coordinator.db"
        self.store = counting_store(self.db_path)
        self.fleet = FleetState()
        self.writer = BatchWriter(
            self.store, max_frames=500, max_delay_seconds=0.005, on_commit=self.fleet.observe_frames
        )
        self.writer.start()
        self.ingest = Ingest(
            self.writer,
            insecure=insecure,
            settings=IngestSettings(**settings),  # type: ignore[arg-type]
        )

    def open(
        self, node_id: str = "hv-1", cert_node_id: str | None = None
    ) -> tuple[FakeTransport, StreamSession, asyncio.Task[StreamRejected | None]]:
        transport = FakeTransport(self.db_path, node_id)
        session = self.ingest.stream(transport.send, peer="test", cert_node_id=cert_node_id)
        task = asyncio.create_task(session.run(transport.messages()))
        return transport, session, task

    def close(self) -> None:
        self.writer.close(5)
        self.store.close()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.close()


def test_session_acks_only_what_is_durable_and_ignores_replays(harness: Harness) -> None:
    duplicates = metric("novacron_coordinator_duplicate_frames_total")

    async def main() -> None:
        transport, _session, task = harness.open()
        transport.put(make_hello("hv-1"))
        welcome = (await transport.next("welcome")).welcome
        assert welcome.highest_durable_seq == 0
        assert welcome.coordinator_version.startswith("novacron-coordinator/")
        for first in (1, 6, 11):
            transport.put(frames_message([make_frame("hv-1", s) for s in range(first, first + 5)]))
        acks = [(await transport.next("ack")).ack.highest_durable_seq for _ in range(3)]
        # One ack per batch, each covering at least its batch (batches may share a commit).
        assert acks == sorted(acks) and acks[-1] == 15
        assert all(ack >= 5 * (i + 1) for i, ack in enumerate(acks))
        transport.put(None)
        assert await task is None

        # A reconnect that replays from its own (older) view: the overlap is ignored.
        transport, _session, task = harness.open()
        transport.put(make_hello("hv-1", last_acked_seq=8))
        assert (await transport.next("welcome")).welcome.highest_durable_seq == 15
        transport.put(frames_message([make_frame("hv-1", s) for s in range(9, 16)]))
        assert (await transport.next("ack")).ack.highest_durable_seq == 15  # all duplicates
        transport.put(frames_message([make_frame("hv-1", s) for s in range(16, 19)]))
        assert (await transport.next("ack")).ack.highest_durable_seq == 18
        transport.put(None)
        assert await task is None

    asyncio.run(main())
    assert stored_seqs(harness.db_path, "hv-1") == list(range(1, 19))
    assert metric("novacron_coordinator_duplicate_frames_total") == duplicates + 7


def test_every_ack_is_already_in_the_database(harness: Harness) -> None:
    async def main() -> FakeTransport:
        transport, _session, task = harness.open()
        transport.put(make_hello("hv-1"))
        await transport.next("welcome")
        for first in range(1, 200, 10):
            transport.put(frames_message([make_frame("hv-1", s) for s in range(first, first + 10)]))
        transport.put(None)
        assert await task is None
        return transport

    transport = asyncio.run(main())
    assert [ack for ack, _ in transport.durable_at_ack][-1] == 200
    for ack, seqs in transport.durable_at_ack:
        assert seqs[:ack] == list(range(1, ack + 1)), f"ack {ack} before its frames were stored"


def test_a_stream_starting_past_a_gap_the_agent_made_is_acknowledged(harness: Harness) -> None:
    """The agent's bounded spool dropped 1..4: its replay starts at 5 and must not stall."""

    async def main() -> int:
        transport, _session, task = harness.open()
        transport.put(make_hello("hv-1"))
        await transport.next("welcome")
        transport.put(frames_message([make_frame("hv-1", s) for s in range(5, 9)]))
        ack = (await transport.next("ack")).ack.highest_durable_seq
        transport.put(None)
        await task
        return ack

    assert asyncio.run(main()) == 8
    [node] = harness.store.node_summary()
    assert (node.lowest_seq, node.highest_seq, node.acked_seq) == (5, 8, 8)


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        ([frames_message([make_frame("hv-1", 1)])], "not_hello_first"),
        ([make_hello("hv-1"), make_hello("hv-1")], "hello_repeated"),
        (
            [make_hello("hv-1"), frames_message([make_frame("hv-1", 3), make_frame("hv-1", 2)])],
            "seq_not_increasing",
        ),
        ([make_hello("hv-1"), b"\x12\x05garbage"], "undecodable"),
    ],
)
def test_protocol_violations_close_only_that_stream(
    harness: Harness, messages: list[telemetry_pb2.AgentMessage | bytes], reason: str
) -> None:
    before = metric("novacron_coordinator_rejected_messages_total", reason=reason)

    async def main() -> StreamRejected | None:
        good, _s, good_task = harness.open("hv-good")
        good.put(make_hello("hv-good"))
        await good.next("welcome")
        bad, _s, bad_task = harness.open("hv-1")
        for message in messages:
            bad.put(message)
        result = await bad_task
        good.put(frames_message([make_frame("hv-good", 1)]))
        assert (await good.next("ack")).ack.highest_durable_seq == 1
        good.put(None)
        assert await good_task is None
        return result

    result = asyncio.run(main())
    assert result is not None
    assert result.reason == reason
    assert metric("novacron_coordinator_rejected_messages_total", reason=reason) == before + 1


def test_tls_session_without_node_certificate_is_unauthenticated(tmp_path: Path) -> None:
    harness = Harness(tmp_path, insecure=False)

    async def main() -> StreamRejected | None:
        _transport, _s, task = harness.open("hv-1", cert_node_id=None)
        return await task

    try:
        result = asyncio.run(main())
    finally:
        harness.close()
    assert result is not None
    assert result.status == "UNAUTHENTICATED"


def test_hello_timeout(tmp_path: Path) -> None:
    harness = Harness(tmp_path, hello_timeout_seconds=0.1)

    async def main() -> StreamRejected | None:
        _transport, _s, task = harness.open()
        return await task

    try:
        result = asyncio.run(main())
    finally:
        harness.close()
    assert result is not None
    assert result.reason == "hello_timeout"


def test_store_failure_closes_the_stream_unacked_and_a_replay_recovers(harness: Harness) -> None:
    async def main() -> None:
        transport, _s, task = harness.open()
        transport.put(make_hello("hv-1"))
        await transport.next("welcome")
        transport.put(frames_message([make_frame("hv-1", s) for s in range(1, 4)]))
        assert (await transport.next("ack")).ack.highest_durable_seq == 3
        harness.store.unavailable = True
        transport.put(frames_message([make_frame("hv-1", s) for s in range(4, 7)]))
        result = await task
        assert result is not None
        assert result.reason == "store_unavailable"
        error = result.stream_error()
        assert error is not None and error.retryable and error.retry_after.seconds == 5
        assert transport.sent.empty()  # no Ack for frames 4..6

        harness.store.unavailable = False
        transport, _s, task = harness.open()
        transport.put(make_hello("hv-1", last_acked_seq=3))
        assert (await transport.next("welcome")).welcome.highest_durable_seq == 3
        transport.put(frames_message([make_frame("hv-1", s) for s in range(4, 7)]))
        assert (await transport.next("ack")).ack.highest_durable_seq == 6
        transport.put(None)
        await task

    asyncio.run(main())
    assert stored_seqs(harness.db_path, "hv-1") == [1, 2, 3, 4, 5, 6]


def test_newer_stream_of_a_node_replaces_the_older(harness: Harness) -> None:
    async def main() -> StreamRejected | None:
        old, _s, old_task = harness.open()
        old.put(make_hello("hv-1"))
        await old.next("welcome")
        new, _s, new_task = harness.open()
        new.put(make_hello("hv-1"))
        await new.next("welcome")
        result = await old_task
        assert harness.ingest.connected_nodes() == ["hv-1"]
        new.put(None)
        await new_task
        assert harness.ingest.connected_nodes() == []
        return result

    result = asyncio.run(main())
    assert result is not None
    assert result.code == telemetry_pb2.ERROR_CODE_NODE_ID_CONFLICT
    assert result.retryable


def test_shutdown_acks_queued_frames_then_closes(harness: Harness) -> None:
    async def main() -> tuple[StreamRejected | None, list[int]]:
        transport, _s, task = harness.open()
        transport.put(make_hello("hv-1"))
        await transport.next("welcome")
        for first in range(1, 50, 5):
            transport.put(frames_message([make_frame("hv-1", s) for s in range(first, first + 5)]))
        await transport.next("ack")
        harness.ingest.begin_shutdown()
        assert await harness.ingest.wait_streams_closed(5)
        result = await task
        acks = []
        while not transport.sent.empty():
            acks.append(transport.sent.get_nowait().ack.highest_durable_seq)
        return result, acks

    result, acks = asyncio.run(main())
    assert result is not None and result.reason == "shutdown"
    last_ack = acks[-1] if acks else 5
    assert stored_seqs(harness.db_path, "hv-1")[:last_ack] == list(range(1, last_ack + 1))


# ---------------------------------------------------------------- liveness


def test_liveness_monitor_counts_and_logs_transitions(caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    fleet = FleetState(stale_after_seconds=60, unknown_after_seconds=600, clock=lambda: now[0])
    for node in ("hv-1", "hv-2"):
        fleet.observe(stored_range(node, 1, 1)[0], received_at_seconds=1000.0)
    monitor = LivenessMonitor(fleet)
    assert monitor.tick(1010.0)[Liveness.LIVE] == 2
    fleet.observe(stored_range("hv-2", 2, 2)[0], received_at_seconds=1100.0)
    with caplog.at_level(logging.INFO):
        counts = monitor.tick(1120.0)
    assert counts == {Liveness.LIVE: 1, Liveness.STALE: 1, Liveness.UNKNOWN: 0}
    assert metric("novacron_coordinator_nodes", status="stale") == 1
    assert "node liveness changed" in caplog.text
    assert monitor.tick(2000.0)[Liveness.UNKNOWN] == 2


# ---------------------------------------------------------------- model push


def test_model_watcher_signs_what_lands_in_the_directory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    public = generate_signing_key(tmp_path / "signing.key")
    signer = ModelSigner(tmp_path / "signing.key")
    published: list[list[str]] = []
    models = tmp_path / "models"
    watcher = ModelWatcher(
        models, signer, lambda ups: published.append([u.model_name for u in ups])
    )
    assert watcher.poll() == []  # no directory yet: no models

    card = copy_bundled(models, "node-anomaly")
    updates = watcher.poll()
    assert updates is not None and [u.model_name for u in updates] == [card.name]
    update = updates[0]
    assert update.sha256 == card.sha256 == hashlib.sha256(update.onnx).hexdigest()
    assert update.signing_key_id == signer.key_id
    verify_model(
        load_public_key(public),
        name=update.model_name,
        version=update.version,
        schema_version=update.feature_schema_version,
        sha256=update.sha256,
        signature=update.ed25519_signature,
    )
    assert watcher.poll() is None  # nothing changed: nothing read

    # A half-copied model is skipped (logged once) and picked up once complete.
    other = copy_bundled(models, "vm-anomaly")
    onnx = (models / other.onnx_file).read_bytes()
    (models / other.onnx_file).write_bytes(onnx[: len(onnx) // 2])
    with caplog.at_level(logging.WARNING):
        updates = watcher.poll()
    assert updates is not None and [u.model_name for u in updates] == [card.name]
    [warning] = [r for r in caplog.records if r.getMessage() == "model not pushed"]
    assert "ONNX sha256" in warning.error and "does not match the card" in warning.error  # type: ignore[attr-defined]
    (models / other.onnx_file).write_bytes(onnx)
    updates = watcher.poll()
    assert updates is not None and sorted(u.model_name for u in updates) == sorted(
        [card.name, other.name]
    )


def test_bad_card_is_a_clear_error(tmp_path: Path) -> None:
    generate_signing_key(tmp_path / "k.key")
    (tmp_path / "x.card.json").write_text("{not json")
    with pytest.raises(Exception, match="unreadable model card"):
        read_model(tmp_path / "x.card.json", ModelSigner(tmp_path / "k.key"))


def test_published_models_reach_agents_that_lack_them(harness: Harness, tmp_path: Path) -> None:
    generate_signing_key(tmp_path / "signing.key")
    signer = ModelSigner(tmp_path / "signing.key")
    card = copy_bundled(tmp_path / "models", "node-anomaly")
    update = read_model(tmp_path / "models" / f"{card.name}.card.json", signer)

    async def main() -> None:
        fresh, _s, fresh_task = harness.open("hv-1")
        fresh.put(make_hello("hv-1"))
        await fresh.next("welcome")
        current = make_hello("hv-2")
        current.hello.models_loaded.add(name=card.name, version=card.version, sha256=card.sha256)
        has_it, _s, has_it_task = harness.open("hv-2")
        has_it.put(current)
        await has_it.next("welcome")

        harness.ingest.publish_models([update])
        pushed = (await fresh.next("model_update")).model_update
        assert (pushed.model_name, pushed.sha256) == (card.name, card.sha256)
        has_it.put(frames_message([make_frame("hv-2", 1)]))
        await has_it.next("ack")  # the next message is the ack: no model pushed to hv-2

        late, _s, late_task = harness.open("hv-3")  # connects after the publication
        late.put(make_hello("hv-3"))
        await late.next("welcome")
        assert (await late.next("model_update")).model_update.version == card.version
        for transport, task in ((fresh, fresh_task), (has_it, has_it_task), (late, late_task)):
            transport.put(None)
            assert await task is None
        assert has_it.sent.empty()

    asyncio.run(main())
