"""Test side of the telemetry stream: a small agent client and an in-process coordinator.

:class:`AgentStream` speaks ``TelemetryService.Stream`` with raw bytes out (so tests can
send garbage) and ``CoordinatorMessage`` in. :class:`ServerThread` runs a real
:class:`~novacron.coordinator.server.CoordinatorService` on its own event loop in a
thread, listening on a real loopback port, so sync tests, hypothesis and asyncio
clients all talk to it over real sockets.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
import sqlite3
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import grpc

from novacron.coordinator.config import (
    CoordinatorConfig,
    CoordinatorSettings,
    IngestProcessSettings,
    StoreSettings,
)
from novacron.coordinator.ingest import IngestSettings
from novacron.coordinator.server import CoordinatorService
from novacron.coordinator.store import Store
from novacron.models.card import ModelCard, bundled_card_path
from novacron.models.schema import NODE
from novacron.protos import CONTRACT_MINOR_VERSION, telemetry_pb2

METHOD = "/novacron.v1.TelemetryService/Stream"
T = TypeVar("T")


def make_hello(
    node_id: str, *, last_acked_seq: int = 0, **fields: Any
) -> telemetry_pb2.AgentMessage:
    values: dict[str, Any] = {
        "contract_minor_version": CONTRACT_MINOR_VERSION,
        "agent_version": "0.1.0",
        "feature_schema_version": NODE.version,
        "feature_schema_hash": NODE.hash,
        "last_acked_seq": last_acked_seq,
    }
    hello = telemetry_pb2.Hello(**(values | fields))
    hello.node.host = node_id
    return telemetry_pb2.AgentMessage(hello=hello)


def frames_message(frames: Sequence[telemetry_pb2.Frame]) -> telemetry_pb2.AgentMessage:
    return telemetry_pb2.AgentMessage(frames=telemetry_pb2.FrameBatch(frames=frames))


def batch_from_bodies(bodies: Sequence[bytes]) -> telemetry_pb2.AgentMessage:
    """A FrameBatch message from serialized frames (what a spool holds)."""
    return frames_message([telemetry_pb2.Frame.FromString(body) for body in bodies])


class StreamEnded(Exception):
    """The coordinator ended the stream; ``code``/``details`` say how."""

    def __init__(
        self, code: grpc.StatusCode, details: str, error: telemetry_pb2.StreamError | None
    ):
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details
        self.error = error


class AgentStream:
    """One agent's stream (asyncio). ``send`` takes a message or raw bytes."""

    def __init__(self, channel: grpc.aio.Channel, *, timeout: float = 30.0) -> None:
        method = channel.stream_stream(
            METHOD,
            request_serializer=None,
            response_deserializer=telemetry_pb2.CoordinatorMessage.FromString,
        )
        self.call = method(timeout=timeout)
        self.last_error: telemetry_pb2.StreamError | None = None

    @classmethod
    async def connect(
        cls, channel: grpc.aio.Channel, node_id: str, *, timeout: float = 30.0, **hello: Any
    ) -> tuple[AgentStream, telemetry_pb2.Welcome]:
        """Open a stream (deadline ``timeout`` seconds), send Hello, return the Welcome."""
        stream = cls(channel, timeout=timeout)
        await stream.send(make_hello(node_id, **hello))
        reply = await stream.recv()
        if reply.WhichOneof("body") != "welcome":
            raise AssertionError(f"expected Welcome, got {reply}")
        return stream, reply.welcome

    async def send(self, message: telemetry_pb2.AgentMessage | bytes) -> None:
        data = message if isinstance(message, bytes) else message.SerializeToString()
        await self.call.write(data)

    async def recv(self) -> telemetry_pb2.CoordinatorMessage:
        """The next message; StreamEnded when the stream is over (with its status)."""
        try:
            message = await self.call.read()
        except grpc.aio.AioRpcError as exc:
            raise StreamEnded(exc.code(), exc.details() or "", self.last_error) from None
        if message is grpc.aio.EOF:
            raise StreamEnded(await self.call.code(), await self.call.details(), self.last_error)
        assert isinstance(message, telemetry_pb2.CoordinatorMessage)
        if message.WhichOneof("body") == "error":
            self.last_error = message.error
        return message

    async def recv_ack(self) -> int:
        """The next Ack's seq (skipping other messages)."""
        while True:
            message = await self.recv()
            if message.WhichOneof("body") == "ack":
                return message.ack.highest_durable_seq

    async def send_frames(self, frames: Sequence[telemetry_pb2.Frame]) -> None:
        await self.send(frames_message(frames))

    async def end(self) -> StreamEnded:
        """Read until the stream ends; the ending (status, last StreamError)."""
        while True:
            try:
                await self.recv()
            except StreamEnded as ended:
                return ended

    async def close(self) -> None:
        await self.call.done_writing()


def insecure_config(db_path: Path, *, workers: int = 1, **store: Any) -> CoordinatorConfig:
    """A plaintext coordinator on free loopback ports; ingest in this process by default."""
    return CoordinatorConfig(
        coordinator=CoordinatorSettings(
            listen="127.0.0.1:0", db_path=db_path, insecure=True, metrics_listen="127.0.0.1:0"
        ),
        store=StoreSettings(**store),
        ingest=IngestProcessSettings(workers=workers),
    )


def stored_seqs(db_path: Path, node_id: str) -> list[int]:
    """Seqs of ``node_id`` in the store file, read through a connection of our own."""
    conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute(
            "SELECT seq FROM frames WHERE node_id = ? ORDER BY seq", (node_id,)
        ).fetchall()
    finally:
        conn.close()
    return [int(row[0]) for row in rows]


class ServerThread:
    """A CoordinatorService on a loop of its own, in a daemon thread."""

    def __init__(
        self,
        config: CoordinatorConfig,
        *,
        store: Store | None = None,
        ingest_settings: IngestSettings | None = None,
        serve_metrics: bool = False,
    ) -> None:
        self.config = config
        self.service = CoordinatorService(config, store=store, ingest_settings=ingest_settings)
        self._serve_metrics = serve_metrics
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self.call(self.service.start(serve_metrics=self._serve_metrics))
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.service.port}"

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coroutine`` on the server's loop and wait for its result."""
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(
            coroutine, self._loop
        )
        return future.result(timeout)

    def stop(self, grace_seconds: float = 5.0) -> None:
        if not self._thread.is_alive():
            return
        try:
            self.call(self.service.stop(grace_seconds))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


def with_settings(config: CoordinatorConfig, **coordinator: Any) -> CoordinatorConfig:
    return replace(config, coordinator=replace(config.coordinator, **coordinator))


def copy_bundled(models_dir: Path, name: str) -> ModelCard:
    """Copy a bundled model (card and ONNX file) into ``models_dir``; its card."""
    card_path = bundled_card_path(name)
    card = ModelCard.read(card_path)
    models_dir.mkdir(exist_ok=True)
    shutil.copy(card_path, models_dir / card_path.name)
    shutil.copy(card_path.parent / card.onnx_file, models_dir / card.onnx_file)
    return card
