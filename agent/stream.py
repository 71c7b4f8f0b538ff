"""The agent's telemetry stream: spooled frames to the coordinator, acks back.

One long-lived ``TelemetryService.Stream`` call (synchronous gRPC, in its own thread),
reopened for ever with backoff. The conversation (``protos/telemetry.proto``):

1. **Hello**: node id, agent version, capabilities, inventory, models, feature schema,
   and where the spool stands (last acknowledged and last produced seq).
2. **Welcome** (``highest_durable_seq``): the coordinator already stores every frame up
   to there, so the spool acknowledges them and replay starts after it.
3. **Frames**: whatever the spool holds after the highest seq sent, in ``FrameBatch``
   messages of up to :attr:`StreamSettings.max_batch_frames` frames and about
   :attr:`StreamSettings.max_batch_bytes` bytes (many per message while catching up,
   one per cycle once caught up). New frames go out when the daemon calls
   :meth:`StreamClient.notify` (a condition variable, no polling); a **Heartbeat** goes
   out when nothing was sent for one interval.
4. **Ack**: every frame up to ``highest_durable_seq`` is stored; only now does it leave
   the spool (:meth:`Spool.ack <novacron.agent.spool.Spool.ack>`). Frames sent but not
   acknowledged are simply sent again on the next stream: delivery is at-least-once and
   the coordinator ignores a seq it has stored.

Also on the stream: **ModelUpdate** goes to the model installer
(:mod:`novacron.agent.model_update`, verify then swap; a refusal keeps the old model);
**Command** is answered with a ``CommandResult`` REJECTED ("not supported": remediation
is not implemented on the agent yet); **StreamError** ends the stream and is retried
after its ``retry_after`` if ``retryable``, after :attr:`StreamSettings.refused_retry_seconds`
otherwise. Nothing a coordinator sends can stop the thread.

Bounds, so a slow or stuck coordinator costs disk (the spool), never memory:

* at most ``max_in_flight_frames`` / ``max_in_flight_bytes`` sent and not acknowledged;
  the sender waits for acks beyond that;
* no Welcome within ``handshake_timeout_seconds``, or no Ack within
  ``ack_timeout_seconds`` of sending a frame: the stream is cancelled and reopened;
* gRPC keepalive pings notice a dead peer or link (``keepalive_*``), and every call has
  a deadline (``stream_lifetime_seconds``, after which the stream is simply reopened).

Reconnects wait :func:`full_jitter_delay` (exponential, base 0.5 s, cap 30 s, uniformly
random below it, so a coordinator restart is not met by the whole fleet at once); the
exponent resets after a stream that stayed up ``stable_after_seconds``.

Frames are sent as the spool stores them (serialized ``Frame`` bytes), wrapped into an
``AgentMessage`` on the wire format (:func:`encode_frame_batch`) without parsing them
again: replaying a large spool costs a copy, not a decode and re-encode per frame.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import Counter, Gauge, Histogram

from novacron.agent.health_report import HealthState
from novacron.agent.spool import Spool, SpoolUnavailable
from novacron.protos import common_pb2, telemetry_pb2
from novacron.protos.runtime.jsonlog import LogOnce
from novacron.protos.runtime.tls import channel_credentials

log = logging.getLogger(__name__)

STREAM_METHOD = "/novacron.v1.TelemetryService/Stream"
# ModelUpdate carries up to 32 MiB of ONNX (telemetry.proto); room for the envelope.
MAX_MESSAGE_BYTES = 40 * 1024 * 1024
MAX_BACKOFF_EXPONENT = 32
# Codes that reconnecting with the same Hello and certificate cannot cure.
_REFUSED_CODES = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED"})
COMMAND_NOT_SUPPORTED = "not supported: this agent does not execute commands yet"

STREAM_CONNECTED = Gauge(
    "novacron_agent_stream_connected",
    "1 while the telemetry stream is open and welcomed by the coordinator, else 0.",
)
STREAM_CONNECTS = Counter(
    "novacron_agent_stream_connects", "Telemetry streams the coordinator welcomed."
)
STREAM_FAILURES = Counter(
    "novacron_agent_stream_failures",
    "Telemetry streams that failed or ended, by reason (grpc status code in lower case, "
    "stream_error, handshake_timeout, ack_timeout, spool, closed).",
    ["reason"],
)
FRAMES_SENT = Counter(
    "novacron_agent_stream_frames_sent", "Frames sent to the coordinator (replays included)."
)
FRAMES_ACKED = Counter(
    "novacron_agent_stream_frames_acked",
    "Frames the coordinator acknowledged as stored (removed from the spool).",
)
IN_FLIGHT_FRAMES = Gauge(
    "novacron_agent_stream_in_flight_frames", "Frames sent on the current stream, not yet acked."
)
ACK_LATENCY = Histogram(
    "novacron_agent_stream_ack_latency_seconds",
    "Time from sending a frame to its acknowledgement.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)


@dataclass(frozen=True)
class StreamSettings:
    """How the stream client connects and paces itself (see the module docstring)."""

    address: str  # HOST:PORT
    insecure: bool = False  # plaintext; tests and loopback demos only
    ca_cert: Path | None = None  # required unless insecure
    client_cert: Path | None = None
    client_key: Path | None = None
    heartbeat_interval_seconds: float = 10.0  # normally the collection interval
    stream_lifetime_seconds: float = 3600.0
    handshake_timeout_seconds: float = 10.0
    ack_timeout_seconds: float = 60.0
    max_batch_frames: int = 500
    max_batch_bytes: int = 1024 * 1024
    max_in_flight_frames: int = 10_000
    max_in_flight_bytes: int = 32 * 1024 * 1024
    backoff_base_seconds: float = 0.5
    backoff_cap_seconds: float = 30.0
    stable_after_seconds: float = 10.0
    refused_retry_seconds: float = 300.0
    keepalive_time_seconds: float = 20.0
    keepalive_timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        for name in (
            "heartbeat_interval_seconds",
            "stream_lifetime_seconds",
            "handshake_timeout_seconds",
            "ack_timeout_seconds",
            "max_batch_frames",
            "max_batch_bytes",
            "max_in_flight_frames",
            "max_in_flight_bytes",
            "backoff_base_seconds",
            "backoff_cap_seconds",
            "keepalive_time_seconds",
            "keepalive_timeout_seconds",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")
        if not self.insecure and None in (self.ca_cert, self.client_cert, self.client_key):
            raise ValueError("ca_cert, client_cert and client_key are required unless insecure")

    def channel_options(self) -> list[tuple[str, int]]:
        """Keepalive (notice a dead coordinator), message sizes (32 MiB models)."""
        return [
            ("grpc.keepalive_time_ms", round(self.keepalive_time_seconds * 1000)),
            ("grpc.keepalive_timeout_ms", round(self.keepalive_timeout_seconds * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            # Our own backoff decides when to reconnect; each attempt gets a new channel.
            ("grpc.enable_retries", 0),
        ]


def load_credentials(settings: StreamSettings) -> Any:
    """The mTLS channel credentials (None when insecure); TlsConfigError names a bad file.

    Read once at start-up, so a missing or expired certificate stops the agent with a
    clear message instead of failing every handshake later.
    """
    if settings.insecure:
        return None
    assert settings.ca_cert and settings.client_cert and settings.client_key
    return channel_credentials(settings.ca_cert, settings.client_cert, settings.client_key)


# -- backoff ---------------------------------------------------------------------------


def full_jitter_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """ "Full jitter" backoff: uniform in ``[0, min(cap, base * 2**attempt)]``.

    ``attempt`` counts failures since the last stable stream, from 0. Spreading the
    whole interval (not just a fraction of it) is what keeps a fleet that lost its
    coordinator from reconnecting in synchronized waves.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    ceiling = min(cap, base * 2.0 ** min(attempt, MAX_BACKOFF_EXPONENT))
    return rng.uniform(0.0, ceiling)


class Backoff:
    """Successive :func:`full_jitter_delay` delays; :meth:`reset` after a stable stream."""

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        self.base, self.cap = base, cap
        self.attempt = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def next_delay(self) -> float:
        delay = full_jitter_delay(self.attempt, base=self.base, cap=self.cap, rng=self._rng)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


# -- wire helpers ----------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


# Field 2 (AgentMessage.frames) and field 1 (FrameBatch.frames), wire type 2 (length).
_AGENT_MESSAGE_FRAMES_TAG = bytes([(2 << 3) | 2])
_FRAME_BATCH_FRAMES_TAG = bytes([(1 << 3) | 2])


def encode_frame_batch(frames: Sequence[bytes]) -> bytes:
    """The serialized ``AgentMessage{frames: FrameBatch{frames: [...]}}`` of serialized
    ``Frame`` messages, byte for byte what protobuf would write, without parsing them."""
    batch = b"".join(_FRAME_BATCH_FRAMES_TAG + _varint(len(f)) + f for f in frames)
    return _AGENT_MESSAGE_FRAMES_TAG + _varint(len(batch)) + batch


def _now_timestamp() -> Timestamp:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return stamp


# -- one stream ------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamOutcome:
    """How one stream ended, for the reconnect decision."""

    welcomed: bool
    up_seconds: float  # since the Welcome; 0 when never welcomed
    reason: str  # metric label
    error: str  # one line for logs and the health report
    refused: bool = False  # reconnecting as-is would fail again
    retry_after_seconds: float | None = None


def reconnect_delay(outcome: StreamOutcome, backoff: Backoff, settings: StreamSettings) -> float:
    """How long to wait before the next stream after ``outcome``.

    A stream that stayed up ``stable_after_seconds`` resets the backoff (a coordinator
    restart after a day of uptime starts again from base). A refusal (non-retryable
    StreamError, UNAUTHENTICATED, PERMISSION_DENIED) waits ``refused_retry_seconds``; a
    ``retry_after`` is a lower bound.
    """
    if outcome.welcomed and outcome.up_seconds >= settings.stable_after_seconds:
        backoff.reset()
    if outcome.refused:
        return max(settings.refused_retry_seconds, outcome.retry_after_seconds or 0.0)
    delay = backoff.next_delay()
    if outcome.retry_after_seconds is not None:
        delay = max(delay, outcome.retry_after_seconds)
    return delay


@dataclass
class _Sent:
    seq: int
    size: int
    at: float  # monotonic


class _Session:
    """State of one stream, shared by the sender (the request iterator, run by gRPC's
    thread) and the reader (the client's thread), guarded by the client's condition."""

    def __init__(self, client: StreamClient, hello: bytes) -> None:
        self.client = client
        self.cond = client._cond
        self.hello = hello
        self.call: Any = None
        self.welcomed_at: float | None = None
        self.closed = False
        self.failure: tuple[str, str] | None = None  # (reason, error)
        self.sent_seq = 0
        self.acked_seq = 0
        self.in_flight: deque[_Sent] = deque()
        self.in_flight_bytes = 0
        self.outbox: deque[bytes] = deque()
        self.last_send = time.monotonic()

    def fail(self, reason: str, error: str) -> None:
        """End the stream for ``reason`` (cancels the call; call without the lock)."""
        with self.cond:
            if self.failure is None:
                self.failure = (reason, error)
            self.closed = True
            self.cond.notify_all()
            call = self.call
        if call is not None:
            call.cancel()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def send(self, message: bytes) -> None:
        with self.cond:
            self.outbox.append(message)
            self.cond.notify_all()

    def has_room(self) -> bool:
        settings = self.client.settings
        return (
            len(self.in_flight) < settings.max_in_flight_frames
            and self.in_flight_bytes < settings.max_in_flight_bytes
        )

    def requests(self) -> Iterator[bytes]:
        """What the agent sends: Hello, then (once welcomed) frames, control messages
        and heartbeats. Runs in gRPC's request thread; ends when the session closes."""
        yield self.hello
        with self.cond:
            self.cond.wait_for(lambda: self.welcomed_at is not None or self.closed)
        while True:
            try:
                message = self._next_message()
            except SpoolUnavailable as exc:
                self.fail("spool", f"cannot read the spool: {exc.reason}")
                return
            if message is None:
                return
            yield message

    def _next_message(self) -> bytes | None:
        """Block until there is something to send (None: the session is over)."""
        while True:
            error = ""
            with self.cond:
                action = self._wait_for_work()
                if action == "outbox":
                    self.last_send = time.monotonic()
                    return self.outbox.popleft()
                if action == "ack_timeout":
                    oldest = self.in_flight[0]
                    waited = time.monotonic() - oldest.at
                    error = f"no acknowledgement for frame {oldest.seq} after {waited:.1f} s"
                if action == "heartbeat":
                    self.last_send = time.monotonic()
            if action == "end":
                return None
            if action == "ack_timeout":
                self.fail("ack_timeout", error)
                return None
            if action == "heartbeat":
                return self._heartbeat()
            batch = self._next_batch()
            if batch is not None:
                return batch

    def _heartbeat(self) -> bytes:
        spool = self.client.spool
        return telemetry_pb2.AgentMessage(
            heartbeat=telemetry_pb2.Heartbeat(
                sent_at=_now_timestamp(),
                last_produced_seq=spool.last_seq,
                spool_depth_frames=spool.depth().frames,
            )
        ).SerializeToString()

    def _next_batch(self) -> bytes | None:
        """The next frames after the highest sent, within the batch and in-flight
        bounds; None when the spool has none left (acknowledged or dropped since)."""
        settings = self.client.settings
        spool = self.client.spool
        with self.cond:
            after = self.sent_seq
            target = spool.last_seq
            limit = min(
                settings.max_batch_frames, settings.max_in_flight_frames - len(self.in_flight)
            )
            budget = min(
                settings.max_batch_bytes, settings.max_in_flight_bytes - self.in_flight_bytes
            )
        # Outside the lock: a slow read must not hold up the acks.
        frames = spool.pending(after, limit=max(1, limit), max_bytes=max(1, budget))
        with self.cond:
            if not frames:
                self.sent_seq = max(self.sent_seq, target)
                return None
            now = time.monotonic()
            for seq, body in frames:
                self.in_flight.append(_Sent(seq, len(body), now))
                self.in_flight_bytes += len(body)
            self.sent_seq = max(self.sent_seq, frames[-1][0])
            self.last_send = now
            IN_FLIGHT_FRAMES.set(len(self.in_flight))
        FRAMES_SENT.inc(len(frames))
        return encode_frame_batch([body for _, body in frames])

    def _wait_for_work(self) -> Literal["end", "outbox", "frames", "heartbeat", "ack_timeout"]:
        """Under the lock: wait for the next thing to send."""
        settings = self.client.settings
        while True:
            if self.closed:
                return "end"
            if self.outbox:
                return "outbox"
            now = time.monotonic()
            if self.in_flight and now - self.in_flight[0].at > settings.ack_timeout_seconds:
                return "ack_timeout"
            if self.has_room() and self.client.spool.last_seq > self.sent_seq:
                return "frames"
            heartbeat_due = self.last_send + settings.heartbeat_interval_seconds
            if now >= heartbeat_due:
                return "heartbeat"
            timeout = heartbeat_due - now
            if self.in_flight:
                timeout = min(
                    timeout, self.in_flight[0].at + settings.ack_timeout_seconds - now + 0.01
                )
            self.cond.wait(timeout)

    # reader side (the client's thread)

    def on_welcome(self, highest: int) -> None:
        with self.cond:
            self.sent_seq = highest
            self.acked_seq = highest
            self.welcomed_at = time.monotonic()
            self.last_send = self.welcomed_at
            self.cond.notify_all()

    def on_ack(self, seq: int) -> None:
        now = time.monotonic()
        with self.cond:
            while self.in_flight and self.in_flight[0].seq <= seq:
                sent = self.in_flight.popleft()
                self.in_flight_bytes -= sent.size
                ACK_LATENCY.observe(now - sent.at)
            self.acked_seq = max(self.acked_seq, seq)
            self.sent_seq = max(self.sent_seq, seq)
            IN_FLIGHT_FRAMES.set(len(self.in_flight))
            self.cond.notify_all()


# -- the client ------------------------------------------------------------------------


ModelUpdateHandler = Callable[[telemetry_pb2.ModelUpdate], object]


class StreamClient:
    """Keeps a telemetry stream open and the spool draining into it (module docstring).

    ``hello`` builds the Hello for each new stream (fresh models and inventory); the
    client fills in the spool's seqs. ``on_model_update`` gets every ModelUpdate (and
    must not raise; a raise is logged). ``health`` gets the connection state.
    """

    def __init__(
        self,
        settings: StreamSettings,
        spool: Spool,
        hello: Callable[[], telemetry_pb2.Hello],
        *,
        health: HealthState | None = None,
        on_model_update: ModelUpdateHandler | None = None,
        credentials: Any = None,
        rng: random.Random | None = None,
    ) -> None:
        """``credentials``: from :func:`load_credentials` (read here when None). Raises
        TlsConfigError (naming the file) when the TLS files are unusable."""
        self.settings = settings
        self.spool = spool
        self._hello = hello
        self._health = health
        self._on_model_update = on_model_update
        self._credentials = credentials if credentials is not None else load_credentials(settings)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._session: _Session | None = None
        self._backoff = Backoff(
            settings.backoff_base_seconds, settings.backoff_cap_seconds, rng=rng
        )
        self._log = LogOnce(log)

    # -- public ----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("stream client already started")
        self._thread = threading.Thread(target=self._run, name="stream-client", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """A new frame is in the spool: wake the sender (cheap; any thread)."""
        with self._cond:
            self._cond.notify_all()

    @property
    def connected(self) -> bool:
        with self._cond:
            session = self._session
            return session is not None and session.welcomed_at is not None and not session.closed

    def wait_connected(self, timeout: float) -> bool:
        """True once a stream is welcomed (tests, start-up checks)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._connected_locked():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def in_flight_frames(self) -> int:
        with self._cond:
            return len(self._session.in_flight) if self._session is not None else 0

    def stop(self, flush_seconds: float = 0.0) -> None:
        """Stop streaming. While connected, first wait up to ``flush_seconds`` for the
        coordinator to acknowledge what the spool holds. Safe to call twice."""
        if flush_seconds > 0:
            deadline = time.monotonic() + flush_seconds
            with self._cond:
                while self._connected_locked() and self.spool.depth().frames > 0:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(min(remaining, 0.1))
        self._stop.set()
        with self._cond:
            session = self._session
        if session is not None:
            session.fail("closed", "agent stopping")
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            if self._thread.is_alive():
                log.warning("stream thread did not stop in time")

    # -- the loop --------------------------------------------------------------------

    def _connected_locked(self) -> bool:
        session = self._session
        return session is not None and session.welcomed_at is not None and not session.closed

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                outcome = self._attempt()
            except Exception as exc:  # a bug must not end streaming for good
                log.exception("stream attempt failed unexpectedly")
                outcome = StreamOutcome(False, 0.0, "internal", f"{type(exc).__name__}: {exc}")
            STREAM_CONNECTED.set(0)
            STREAM_FAILURES.labels(outcome.reason).inc()
            if self._health is not None:
                self._health.record_connection("disconnected", error=outcome.error)
            if self._stop.is_set():
                break
            delay = reconnect_delay(outcome, self._backoff, self.settings)
            self._log.problem(
                "down",
                logging.WARNING,
                "coordinator stream down; retrying",
                coordinator=self.settings.address,
                error=outcome.error,
                retry_in_seconds=round(delay, 2),
            )
            log.debug(
                "stream ended",
                extra={"error": outcome.error, "retry_in_seconds": round(delay, 3)},
            )
            self._stop.wait(delay)

    def _attempt(self) -> StreamOutcome:
        if self._health is not None:
            self._health.record_connection("connecting", address=self.settings.address)
        hello = telemetry_pb2.AgentMessage(hello=self._hello_message())
        session = _Session(self, hello.SerializeToString())
        channel = self._channel()
        timer: threading.Timer | None = None
        try:
            multicallable = channel.stream_stream(
                STREAM_METHOD,
                request_serializer=None,  # the session yields serialized AgentMessages
                response_deserializer=telemetry_pb2.CoordinatorMessage.FromString,
            )
            with self._cond:
                if self._stop.is_set():
                    return StreamOutcome(False, 0.0, "closed", "agent stopping")
                self._session = session
            call = multicallable(session.requests(), timeout=self.settings.stream_lifetime_seconds)
            with self._cond:
                session.call = call
                closed_early = session.closed
            if closed_early:
                call.cancel()
            timer = threading.Timer(
                self.settings.handshake_timeout_seconds,
                self._handshake_expired,
                args=(session,),
            )
            timer.daemon = True
            timer.start()
            return self._read(session, call, timer)
        finally:
            if timer is not None:
                timer.cancel()
            session.close()
            with self._cond:
                if self._session is session:
                    self._session = None
                self._cond.notify_all()
            IN_FLIGHT_FRAMES.set(0)
            channel.close()

    def _handshake_expired(self, session: _Session) -> None:
        if session.welcomed_at is None:
            session.fail(
                "handshake_timeout",
                f"no Welcome within {self.settings.handshake_timeout_seconds:g} s",
            )

    def _read(self, session: _Session, call: Any, timer: threading.Timer) -> StreamOutcome:
        """Handle the coordinator's messages until the stream ends."""
        try:
            for message in call:
                ended = self._handle(session, message, timer)
                if ended is not None:
                    session.fail(ended.reason, ended.error)
                    return ended
        except grpc.RpcError as exc:
            return self._outcome_of_error(session, exc)
        failure = session.failure
        if failure is not None:
            return self._outcome(session, *failure)
        return self._outcome(session, "closed", "the coordinator closed the stream")

    def _outcome(self, session: _Session, reason: str, error: str) -> StreamOutcome:
        welcomed = session.welcomed_at is not None
        up = time.monotonic() - session.welcomed_at if session.welcomed_at is not None else 0.0
        return StreamOutcome(welcomed, up, reason, error)

    def _outcome_of_error(self, session: _Session, exc: grpc.RpcError) -> StreamOutcome:
        if session.failure is not None:  # we cancelled it, for this reason
            return self._outcome(session, *session.failure)
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        name = getattr(code, "name", "UNKNOWN")
        details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
        outcome = self._outcome(session, name.lower(), f"{name}: {details}")
        if name in _REFUSED_CODES:
            log.error(
                "coordinator refused this agent; check its certificate and node id",
                extra={"coordinator": self.settings.address, "error": outcome.error},
            )
            return StreamOutcome(
                outcome.welcomed, outcome.up_seconds, outcome.reason, outcome.error, refused=True
            )
        return outcome

    # -- messages from the coordinator -----------------------------------------------

    def _handle(
        self, session: _Session, message: telemetry_pb2.CoordinatorMessage, timer: threading.Timer
    ) -> StreamOutcome | None:
        """Act on one message; a StreamOutcome ends the stream."""
        kind = message.WhichOneof("body")
        if kind == "error":
            return self._on_error(session, message.error)
        if kind == "welcome":
            if session.welcomed_at is not None:
                log.warning("second Welcome on one stream ignored")
                return None
            timer.cancel()
            return self._on_welcome(session, message.welcome)
        if session.welcomed_at is None:
            return self._outcome(
                session, "protocol", f"coordinator sent {kind or 'an empty message'} before Welcome"
            )
        if kind == "ack":
            return self._on_ack(session, message.ack.highest_durable_seq)
        if kind == "model_update":
            self._model_update(message.model_update)
        elif kind == "command":
            self._command(session, message.command)
        elif kind == "config_hint":
            log.info(
                "coordinator suggests a reporting interval; the agent keeps its configured one",
                extra={"interval_seconds": message.config_hint.interval_seconds},
            )
        else:
            log.debug("unknown coordinator message ignored", extra={"kind": kind})
        return None

    def _on_welcome(
        self, session: _Session, welcome: telemetry_pb2.Welcome
    ) -> StreamOutcome | None:
        highest = welcome.highest_durable_seq
        acked_before = self.spool.last_acked
        try:
            if highest:
                removed = self.spool.ack(highest)
                FRAMES_ACKED.inc(removed)
        except SpoolUnavailable as exc:
            return self._outcome(session, "spool", f"cannot update the spool: {exc.reason}")
        if highest < acked_before:
            log.warning(
                "coordinator holds fewer frames than it acknowledged before; the frames in "
                "between were lost on its side",
                extra={"highest_durable_seq": highest, "acked_before": acked_before},
            )
        session.on_welcome(highest)
        STREAM_CONNECTED.set(1)
        STREAM_CONNECTS.inc()
        self._log.recovered(
            "down", "coordinator stream up again", coordinator=self.settings.address
        )
        log.info(
            "coordinator stream open",
            extra={
                "coordinator": self.settings.address,
                "coordinator_version": welcome.coordinator_version,
                "highest_durable_seq": highest,
                "spool_depth_frames": self.spool.depth().frames,
                "last_produced_seq": self.spool.last_seq,
            },
        )
        if self._health is not None:
            self._health.record_connection("connected", address=self.settings.address)
            self._health.record_spool(
                depth_frames=self.spool.depth().frames, last_acked_seq=self.spool.last_acked
            )
        return None

    def _on_ack(self, session: _Session, seq: int) -> StreamOutcome | None:
        try:
            removed = self.spool.ack(seq)
        except SpoolUnavailable as exc:
            # The frames stay spooled and go again after a reconnect; the next ack
            # (cumulative) removes them if the spool recovers before.
            self._log.problem(
                "ack", logging.ERROR, "cannot remove acknowledged frames", error=exc.reason
            )
            removed = 0
        else:
            self._log.recovered("ack", "spool takes acknowledgements again")
        FRAMES_ACKED.inc(removed)
        session.on_ack(seq)
        if self._health is not None:
            self._health.record_spool(
                depth_frames=self.spool.depth().frames, last_acked_seq=self.spool.last_acked
            )
        return None

    def _on_error(self, session: _Session, error: telemetry_pb2.StreamError) -> StreamOutcome:
        code = telemetry_pb2.ErrorCode.Name(error.code)
        retry_after = (
            error.retry_after.ToTimedelta().total_seconds()
            if error.HasField("retry_after")
            else None
        )
        log.error(
            "coordinator ended the stream with an error",
            extra={
                "coordinator": self.settings.address,
                "code": code,
                "error_message": error.message,
                "retryable": error.retryable,
                "retry_after_seconds": retry_after,
            },
        )
        outcome = self._outcome(session, "stream_error", f"{code}: {error.message}")
        return StreamOutcome(
            outcome.welcomed,
            outcome.up_seconds,
            outcome.reason,
            outcome.error,
            refused=not error.retryable,
            retry_after_seconds=retry_after,
        )

    def _model_update(self, update: telemetry_pb2.ModelUpdate) -> None:
        if self._on_model_update is None:
            log.warning(
                "model update ignored: this agent installs no models",
                extra={"model": update.model_name, "version": update.version},
            )
            return
        try:
            self._on_model_update(update)
        except Exception:
            log.exception("model update handler failed", extra={"model": update.model_name})

    def _command(self, session: _Session, command: telemetry_pb2.Command) -> None:
        log.info(
            "command refused: not supported",
            extra={
                "command_id": command.command_id,
                "action": telemetry_pb2.CommandAction.Name(command.action)
                if command.action in telemetry_pb2.CommandAction.values()
                else command.action,
            },
        )
        now = _now_timestamp()
        result = telemetry_pb2.AgentMessage(
            command_result=telemetry_pb2.CommandResult(
                command_id=command.command_id,
                report=common_pb2.ExecutionReport(
                    idempotency_key=command.idempotency_key,
                    status=common_pb2.EXECUTION_STATUS_REJECTED,
                    message=COMMAND_NOT_SUPPORTED,
                    finished_at=now,
                ),
            )
        )
        session.send(result.SerializeToString())

    # -- plumbing --------------------------------------------------------------------

    def _hello_message(self) -> telemetry_pb2.Hello:
        try:
            hello = self._hello()
        except Exception:  # a broken inventory must not keep the agent offline
            log.exception("building the Hello failed; sending a minimal one")
            hello = telemetry_pb2.Hello()
        hello.last_acked_seq = self.spool.last_acked
        hello.last_produced_seq = self.spool.last_seq
        return hello

    def _channel(self) -> Any:
        options = self.settings.channel_options()
        if self._credentials is None:
            return grpc.insecure_channel(self.settings.address, options=options)
        return grpc.secure_channel(self.settings.address, self._credentials, options=options)
