"""The telemetry ingest: one :class:`StreamSession` per agent stream, shared by all.

Transport-free (asyncio, no gRPC): :mod:`novacron.coordinator.server` hands each
stream's raw messages and a ``send`` function to :meth:`Ingest.stream`, and maps the
returned :class:`~novacron.coordinator.ingest_checks.StreamRejected` to a gRPC status.

A stream's life:

1. **Handshake.** On a TLS server the client certificate must name a node; the first
   message must be a ``Hello`` (within ``hello_timeout_seconds``) that passes
   :func:`~novacron.coordinator.ingest_checks.check_hello`. The stream is bound to that
   node for good: frames carry no node id, so nothing later can write another node's
   data. The store records the Hello (on the writer thread) and returns the node's
   durable watermark, which ``Welcome`` carries. A newer stream of the same node
   replaces an older one (a reconnecting agent whose old TCP connection is not dead
   yet); the old stream ends with ``NODE_ID_CONFLICT``, retryable.
2. **Frames.** A reader task decodes and checks every message as it arrives: seqs
   strictly increase within the stream; a seq at or below the durable watermark is a
   replay and ignored (counted, still acknowledged). The new frames go to the
   :class:`~novacron.coordinator.ingest_writer.BatchWriter` at once, so one agent can
   have up to ``max_inflight_batches`` batches in flight (more stops reading, and
   HTTP/2 flow control slows the agent down: backpressure, no unbounded queue).
3. **Acks.** The session answers batches in arrival order, each with ``Ack`` of the
   watermark the store returned after committing them -- never before. A batch of only
   duplicates is answered with the current watermark.
4. **End.** The agent half-closing ends the stream OK after the pending acks. A bad
   message ends it with a ``StreamError`` and status after the acks of the batches
   before it. If the store fails a commit, the stream ends (``UNAVAILABLE``,
   retryable): its unacknowledged frames are still in the agent's spool and come back
   on reconnect, from ``Welcome.highest_durable_seq + 1``. Nothing is ever
   acknowledged that is not committed, so the coordinator never loses a frame the
   agent deleted. At shutdown, sessions stop reading, wait for the writer to commit
   what they queued, send those acks, then end with a retryable ``StreamError``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from novacron.coordinator import metrics
from novacron.coordinator.fleet import FleetState, Liveness
from novacron.coordinator.ingest_checks import (
    MAX_MESSAGE_BYTES,
    FrameChecker,
    KnownSchemas,
    StreamRejected,
    check_hello,
    decode_message,
    internal_error,
    protocol_violation,
    shutting_down,
    store_unavailable,
    superseded,
    unauthenticated,
)
from novacron.coordinator.ingest_writer import BatchWriter
from novacron.coordinator.store import StoredFrame, StoreUnavailable
from novacron.coordinator.store_frames import frame_payloads, node_hello, stored_frame
from novacron.protos import CONTRACT_MINOR_VERSION, __version__, telemetry_pb2

log = logging.getLogger(__name__)

COORDINATOR_VERSION = f"novacron-coordinator/{__version__}"

#: What the transport gives a session to answer with; raises StreamClosed when it can't.
Send = Callable[[telemetry_pb2.CoordinatorMessage], Awaitable[None]]


class StreamClosed(Exception):
    """The transport cannot deliver to the agent any more (it went away)."""


@dataclass(frozen=True)
class IngestSettings:
    """Limits of one stream (the store's batching is configured on the BatchWriter)."""

    max_message_bytes: int = MAX_MESSAGE_BYTES
    # A connection that sends no Hello within this time is closed.
    hello_timeout_seconds: float = 30.0
    # FrameBatches of one stream written but not yet acknowledged; beyond it, reading waits.
    max_inflight_batches: int = 64
    # StreamError.retry_after sent when the store failed, and at shutdown.
    store_retry_after_seconds: float = 5.0
    shutdown_retry_after_seconds: float = 1.0


@dataclass(frozen=True)
class _Batch:
    """One FrameBatch waiting for its ack (``future`` None: nothing new to write)."""

    future: asyncio.Future[int] | None
    received: float  # perf_counter at arrival


@dataclass(frozen=True)
class _Push:
    update: telemetry_pb2.ModelUpdate


class _End:
    """The agent half-closed the stream."""


_END = _End()
_Item = _Batch | _Push | _End | StreamRejected
_stream_ids = itertools.count(1)
_PROCESS_TAG = f"{os.getpid():x}"


class Ingest:
    """Shared state of all streams: the writer, the fleet, the live sessions, the models."""

    def __init__(
        self,
        writer: BatchWriter,
        *,
        insecure: bool,
        schemas: KnownSchemas | None = None,
        settings: IngestSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.writer = writer
        self.insecure = insecure
        self.schemas = schemas or KnownSchemas.current()
        self.checks = FrameChecker(self.schemas)
        self.settings = settings or IngestSettings()
        self.clock = clock
        self._by_node: dict[str, StreamSession] = {}
        self._open: set[StreamSession] = set()
        self._models: dict[str, telemetry_pb2.ModelUpdate] = {}
        self._closing: StreamRejected | None = None
        self._idle: asyncio.Event | None = None

    def stream(self, send: Send, *, peer: str, cert_node_id: str | None) -> StreamSession:
        """A session for one new stream; ``await session.run(messages)`` serves it.

        ``cert_node_id``: the node named by the verified client certificate (None on an
        insecure server, or when the certificate names none: then refused).
        """
        return StreamSession(self, send, peer=peer, cert_node_id=cert_node_id)

    def connected_nodes(self) -> list[str]:
        """Nodes with a stream past the handshake, sorted."""
        return sorted(self._by_node)

    # ---------------------------------------------------------------- models

    def publish_models(self, updates: Sequence[telemetry_pb2.ModelUpdate]) -> None:
        """Make ``updates`` the current models; every connected agent lacking one gets it."""
        self._models = {u.model_name: u for u in updates}
        for session in list(self._by_node.values()):
            for update in updates:
                session.offer(update)

    def models(self) -> list[telemetry_pb2.ModelUpdate]:
        return list(self._models.values())

    # ---------------------------------------------------------------- shutdown

    def begin_shutdown(self) -> None:
        """Refuse new streams; every open one acks what it queued, then ends."""
        if self._closing is not None:
            return
        self._closing = shutting_down(self.settings.shutdown_retry_after_seconds)
        for session in list(self._open):
            session.close(self._closing)

    async def wait_streams_closed(self, timeout: float) -> bool:
        """After :meth:`begin_shutdown`: True once every session has ended."""
        if not self._open:
            return True
        self._idle = asyncio.Event()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # ---------------------------------------------------------------- sessions

    def _opened(self, session: StreamSession) -> None:
        self._open.add(session)
        if self._closing is not None:
            session.close(self._closing)

    def _bind(self, session: StreamSession, node_id: str) -> None:
        previous = self._by_node.get(node_id)
        if previous is not None and previous is not session:
            log.warning(
                "a newer stream replaces the open stream of this node",
                extra={
                    "node_id": node_id,
                    "stream_id": session.stream_id,
                    "peer": session.peer,
                    "replaced_stream_id": previous.stream_id,
                    "replaced_peer": previous.peer,
                },
            )
            previous.close(superseded(node_id, session.peer))
        self._by_node[node_id] = session
        metrics.CONNECTED_AGENTS.set(len(self._by_node))

    def _ended(self, session: StreamSession) -> None:
        self._open.discard(session)
        node_id = session.node_id
        if node_id is not None and self._by_node.get(node_id) is session:
            del self._by_node[node_id]
            metrics.CONNECTED_AGENTS.set(len(self._by_node))
            now = self.clock()
            self.writer.post(
                lambda store: store.record_disconnect(node_id, now=now),
                f"record disconnect of {node_id}",
            )
        if not self._open and self._idle is not None:
            self._idle.set()


class StreamSession:
    """One agent stream (see the module docstring for its life)."""

    def __init__(self, ingest: Ingest, send: Send, *, peer: str, cert_node_id: str | None) -> None:
        self.ingest = ingest
        self.peer = peer
        self.cert_node_id = cert_node_id
        self.stream_id = f"{_PROCESS_TAG}-{next(_stream_ids)}"
        self.node_id: str | None = None
        self._send = send
        self._settings = ingest.settings
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._window = asyncio.Semaphore(self._settings.max_inflight_batches)
        self._reader: asyncio.Task[None] | None = None
        self._stopping: StreamRejected | None = None
        self._stopped = asyncio.Event()
        self._welcomed = False
        self._durable = 0  # the node's watermark as last learnt (Welcome, then acks)
        self._prev_seq = 0  # last frame seq seen on this stream
        self._first_batch = True
        self._models_known: dict[str, str] = {}  # model name -> sha256 the agent has

    def _log(self, **extra: Any) -> dict[str, Any]:
        return {"node_id": self.node_id, "stream_id": self.stream_id, "peer": self.peer, **extra}

    async def run(self, messages: AsyncIterator[bytes]) -> StreamRejected | None:
        """Serve the stream; None when it ended normally, else why it was closed."""
        self.ingest._opened(self)
        try:
            await self._handshake(messages)
            await self._exchange(messages)
            log.info("stream ended by the agent", extra=self._log(acked_seq=self._durable))
            return None
        except StreamRejected as rejected:
            self._report(rejected)
            return rejected
        except StreamClosed:
            log.info("stream closed by the agent", extra=self._log(acked_seq=self._durable))
            return None
        except Exception:
            log.exception("stream failed", extra=self._log())
            return internal_error("the coordinator failed serving this stream; reconnect")
        finally:
            self._finish()

    def close(self, why: StreamRejected) -> None:
        """End the stream after the acks of everything already queued (thread: the loop's)."""
        if self._stopping is not None:
            return
        self._stopping = why
        self._stopped.set()
        # The reader is not cancelled: cancelling a pending gRPC read cancels the whole
        # call, and the agent would get a bare INTERNAL instead of the StreamError. It
        # ignores what still arrives, and ends with the call.
        self._queue.put_nowait(why)

    def offer(self, update: telemetry_pb2.ModelUpdate) -> None:
        """Send ``update`` unless the agent already has that model build."""
        if not self._welcomed or self._models_known.get(update.model_name) == update.sha256:
            return
        self._models_known[update.model_name] = update.sha256
        self._queue.put_nowait(_Push(update))

    # ---------------------------------------------------------------- handshake

    async def _handshake(self, messages: AsyncIterator[bytes]) -> None:
        if not self.ingest.insecure and self.cert_node_id is None:
            raise unauthenticated()
        if self._stopping is not None:
            raise self._stopping
        raw = await self._first_message(messages)
        message = decode_message(raw, self._settings.max_message_bytes)
        kind = message.WhichOneof("body")
        if kind != "hello":
            raise protocol_violation(
                "not_hello_first", f"the first message must be Hello, got {kind}"
            )
        hello = message.hello
        cert = None if self.ingest.insecure else self.cert_node_id
        self.node_id = check_hello(hello, cert_node_id=cert, schemas=self.ingest.schemas)
        if self._stopping is not None:
            raise self._stopping
        self.ingest._bind(self, self.node_id)
        record = node_hello(hello)
        now = self.ingest.clock()
        try:
            durable = await self.ingest.writer.call(
                lambda store: store.record_hello(record, now=now), "record hello"
            )
        except StoreUnavailable as exc:
            raise store_unavailable(str(exc), self._settings.store_retry_after_seconds) from None
        self._durable = durable
        self._models_known = {m.name: m.sha256 for m in hello.models_loaded}
        await self._deliver(
            telemetry_pb2.CoordinatorMessage(
                welcome=telemetry_pb2.Welcome(
                    contract_minor_version=CONTRACT_MINOR_VERSION,
                    coordinator_version=COORDINATOR_VERSION,
                    highest_durable_seq=durable,
                )
            )
        )
        self._welcomed = True
        log.info(
            "stream open",
            extra=self._log(
                authenticated=not self.ingest.insecure,
                agent_version=hello.agent_version,
                highest_durable_seq=durable,
                agent_last_acked_seq=hello.last_acked_seq,
                agent_last_produced_seq=hello.last_produced_seq,
            ),
        )
        if hello.last_acked_seq > durable:
            log.error(
                "the agent was acknowledged frames this store does not hold (store restored "
                "or replaced?); those frames are lost",
                extra=self._log(
                    agent_last_acked_seq=hello.last_acked_seq, highest_durable_seq=durable
                ),
            )
        for update in self.ingest.models():
            self.offer(update)

    async def _first_message(self, messages: AsyncIterator[bytes]) -> bytes:
        """The Hello's bytes; gives up at the Hello timeout or when the session is closed."""
        timeout = self._settings.hello_timeout_seconds
        first = asyncio.ensure_future(_next_or_none(messages))
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait(
                {first, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopped.cancel()
            if not first.done():
                first.cancel()
        if first.cancelled() or not first.done():
            if self._stopping is not None:
                raise self._stopping
            raise protocol_violation("hello_timeout", f"no Hello within {timeout:g} s")
        try:
            raw = first.result()
        except Exception as exc:  # the transport failed before the Hello
            raise StreamClosed(repr(exc)) from exc
        if raw is None:
            raise protocol_violation("no_hello", "the stream ended before a Hello")
        return raw

    # ---------------------------------------------------------------- exchange

    async def _exchange(self, messages: AsyncIterator[bytes]) -> None:
        if self._stopping is None:
            self._reader = asyncio.create_task(self._read(messages), name=f"read-{self.stream_id}")
        while True:
            item = await self._queue.get()
            if isinstance(item, _End):
                return
            if isinstance(item, StreamRejected):
                raise item
            if isinstance(item, _Push):
                await self._deliver(telemetry_pb2.CoordinatorMessage(model_update=item.update))
                metrics.MODEL_UPDATES_SENT.labels(item.update.model_name).inc()
                log.info(
                    "model update sent",
                    extra=self._log(model=item.update.model_name, version=item.update.version),
                )
                continue
            await self._acknowledge(item)

    async def _acknowledge(self, batch: _Batch) -> None:
        try:
            watermark = self._durable if batch.future is None else await batch.future
        except StoreUnavailable as exc:
            raise store_unavailable(str(exc), self._settings.store_retry_after_seconds) from None
        except Exception as exc:
            log.error("frames could not be stored", extra=self._log(error=repr(exc)))
            raise internal_error(f"frames could not be stored: {exc}") from None
        finally:
            self._window.release()
        self._durable = max(self._durable, watermark)
        await self._deliver(
            telemetry_pb2.CoordinatorMessage(
                ack=telemetry_pb2.Ack(highest_durable_seq=self._durable)
            )
        )
        metrics.ACK_LATENCY.observe(time.perf_counter() - batch.received)

    async def _read(self, messages: AsyncIterator[bytes]) -> None:
        """Decode, check and queue every message after the Hello (a task of its own)."""
        try:
            async for raw in messages:
                if self._stopping is not None:
                    continue  # closing: nothing more is accepted (and nothing acked)
                received = time.perf_counter()
                message = decode_message(raw, self._settings.max_message_bytes)
                kind = message.WhichOneof("body")
                if kind == "frames":
                    await self._window.acquire()
                    self._queue.put_nowait(self._accept(message.frames, raw, received))
                elif kind == "heartbeat":
                    log.debug(
                        "heartbeat",
                        extra=self._log(
                            last_produced_seq=message.heartbeat.last_produced_seq,
                            spool_depth_frames=message.heartbeat.spool_depth_frames,
                        ),
                    )
                elif kind == "command_result":
                    log.info(
                        "command result",
                        extra=self._log(command_id=message.command_result.command_id),
                    )
                else:
                    raise protocol_violation(
                        "hello_repeated", "Hello is only allowed once per stream"
                    )
            self._queue.put_nowait(_END)
        except StreamRejected as rejected:
            self._queue.put_nowait(rejected)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the transport failed under us; the session ends
            log.info("reading the stream failed", extra=self._log(error=repr(exc)))
            self._queue.put_nowait(_END)

    def _accept(self, batch: telemetry_pb2.FrameBatch, raw: bytes, received: float) -> _Batch:
        """Check a FrameBatch, drop replays, hand the rest to the writer.

        ``raw``: the message's bytes, from which each frame's payload is sliced (see
        :func:`~novacron.coordinator.store_frames.frame_payloads`).
        """
        node_id = self.node_id
        assert node_id is not None
        checks = self.ingest.checks
        fresh: list[StoredFrame] = []
        duplicates = 0
        first = None
        frames = batch.frames
        sliced = frame_payloads(raw)
        payloads: Sequence[bytes | None] = (
            sliced if sliced is not None and len(sliced) == len(frames) else [None] * len(frames)
        )
        for frame, payload in zip(frames, payloads, strict=True):
            seq = frame.seq
            if seq <= self._prev_seq:
                raise protocol_violation(
                    "seq_not_increasing",
                    f"frame seq {seq} after {self._prev_seq}: seqs must increase within a stream",
                )
            self._prev_seq = seq
            if first is None:
                first = seq
            if seq <= self._durable:
                duplicates += 1
                continue
            fresh.append(stored_frame(node_id, frame, payload, checks=checks))
        metrics.FRAMES_RECEIVED.inc(len(frames))
        if duplicates:
            metrics.DUPLICATE_FRAMES.inc(duplicates)
        resumed = False
        if first is not None and self._first_batch:
            self._first_batch = False
            # The stream starts at the agent's oldest frame: seqs between the watermark
            # and it exist nowhere any more (see the store's ack rule).
            resumed = bool(fresh) and fresh[0].seq == first
        if not fresh:
            return _Batch(None, received)
        return _Batch(self.ingest.writer.submit(fresh, node_id=node_id, resumed=resumed), received)

    # ---------------------------------------------------------------- plumbing

    async def _deliver(self, message: telemetry_pb2.CoordinatorMessage) -> None:
        await self._send(message)

    def _report(self, rejected: StreamRejected) -> None:
        if rejected.agent_fault:
            metrics.REJECTED_MESSAGES.labels(rejected.reason).inc()
            log.warning(
                "stream rejected",
                extra=self._log(
                    reason=rejected.reason, status=rejected.status, error=rejected.message
                ),
            )
        else:
            log.info(
                "stream closed by the coordinator",
                extra=self._log(
                    reason=rejected.reason, status=rejected.status, error=rejected.message
                ),
            )

    def _finish(self) -> None:
        # Answers nobody will read: stop waiting for them (the writer still commits them).
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, _Batch) and item.future is not None:
                item.future.cancel()
        self.ingest._ended(self)


async def _next_or_none(messages: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await anext(messages)
    except StopAsyncIteration:
        return None


class LivenessMonitor:
    """Publishes the fleet's liveness counts and logs every node's status change."""

    def __init__(self, fleet: FleetState) -> None:
        self.fleet = fleet
        self._status: dict[str, Liveness] = {}

    def tick(self, now: float | None = None) -> dict[Liveness, int]:
        """Take a snapshot; update ``novacron_coordinator_nodes{status}``; return the counts."""
        snapshot = self.fleet.snapshot(now)
        counts = dict.fromkeys(Liveness, 0)
        for node_id, code in zip(snapshot.node_ids.tolist(), snapshot.status.tolist(), strict=True):
            status = Liveness(code)
            counts[status] += 1
            before = self._status.get(node_id)
            if before != status:
                self._status[node_id] = status
                if before is not None:
                    log.log(
                        logging.INFO if status is Liveness.LIVE else logging.WARNING,
                        "node liveness changed",
                        extra={"node_id": node_id, "from": before.label, "to": status.label},
                    )
        for status, count in counts.items():
            metrics.NODES.labels(status.label).set(count)
        return counts
