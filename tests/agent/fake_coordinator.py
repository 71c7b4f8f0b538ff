"""A small coordinator for agent tests: a real gRPC server on 127.0.0.1 that stores frames.

It speaks ``TelemetryService.Stream`` as ``telemetry.proto`` says (Hello -> Welcome with
the highest stored seq -> frames -> Ack after "storing"), keeps what it stored by
``(node, seq)`` across server restarts (the store outlives the server, as a database
would), and lets a test script the awkward parts: no acks, no Welcome, a StreamError
instead of a Welcome, a message pushed into a node's live stream.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc

from novacron.protos import telemetry_pb2, telemetry_pb2_grpc

SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 1000),
]


@dataclass
class _Peer:
    node: str
    outbox: queue.Queue[telemetry_pb2.CoordinatorMessage | None] = field(
        default_factory=queue.Queue
    )
    done: bool = False


class FakeCoordinator(telemetry_pb2_grpc.TelemetryServiceServicer):
    def __init__(self, *, auto_ack: bool = True, storing: bool = True) -> None:
        """``storing`` False: frames are received but never stored (a stuck store)."""
        self.auto_ack = auto_ack
        self.storing = storing
        self.cond = threading.Condition()
        self.stored: dict[tuple[str, int], bytes] = {}
        self.received: list[tuple[str, int]] = []  # every frame as it arrived, replays too
        self.batch_sizes: list[int] = []
        self.hellos: list[telemetry_pb2.Hello] = []
        self.hello_times: list[float] = []
        self.heartbeats: list[telemetry_pb2.Heartbeat] = []
        self.command_results: list[telemetry_pb2.CommandResult] = []
        # Answers to the next Hellos instead of a Welcome (a StreamError, or None: say
        # nothing at all), consumed one per stream.
        self.instead_of_welcome: list[telemetry_pb2.CoordinatorMessage | None] = []
        self._peers: list[_Peer] = []

    # -- what tests look at ------------------------------------------------------------

    def seqs(self, node: str) -> list[int]:
        with self.cond:
            return sorted(seq for n, seq in self.stored if n == node)

    def received_seqs(self, node: str) -> list[int]:
        with self.cond:
            return [seq for n, seq in self.received if n == node]

    def highest(self, node: str) -> int:
        return max(self.seqs(node), default=0)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(min(remaining, 0.05))
            return True

    def send(self, node: str, message: telemetry_pb2.CoordinatorMessage) -> None:
        """Push ``message`` into ``node``'s live stream(s)."""
        with self.cond:
            peers = [p for p in self._peers if p.node == node and not p.done]
        assert peers, f"no live stream for {node}"
        for peer in peers:
            peer.outbox.put(message)

    def ack(self, node: str, seq: int) -> None:
        self.send(
            node, telemetry_pb2.CoordinatorMessage(ack=telemetry_pb2.Ack(highest_durable_seq=seq))
        )

    def live_streams(self, node: str) -> int:
        with self.cond:
            return sum(1 for p in self._peers if p.node == node and not p.done)

    # -- the servicer ------------------------------------------------------------------

    def Stream(
        self, request_iterator: Iterator[telemetry_pb2.AgentMessage], context: Any
    ) -> Iterator[telemetry_pb2.CoordinatorMessage]:
        first = next(request_iterator)
        assert first.WhichOneof("body") == "hello", first
        hello = first.hello
        peer = _Peer(hello.node.host)
        with self.cond:
            self.hellos.append(hello)
            self.hello_times.append(time.monotonic())
            scripted = bool(self.instead_of_welcome)
            answer = self.instead_of_welcome.pop(0) if scripted else None
            self._peers.append(peer)
            self.cond.notify_all()
        try:
            if scripted:
                if answer is not None:
                    yield answer
                    return
                while context.is_active():  # say nothing: the agent must give up
                    time.sleep(0.02)
                return
            yield telemetry_pb2.CoordinatorMessage(
                welcome=telemetry_pb2.Welcome(
                    contract_minor_version=1,
                    coordinator_version="fake-coordinator/0",
                    highest_durable_seq=self.highest(peer.node),
                )
            )
            reader = threading.Thread(target=self._read, args=(request_iterator, peer), daemon=True)
            reader.start()
            while context.is_active():
                try:
                    message = peer.outbox.get(timeout=0.02)
                except queue.Empty:
                    continue
                if message is None:
                    return
                yield message
                if message.WhichOneof("body") == "error":
                    return
        finally:
            with self.cond:
                peer.done = True
                self.cond.notify_all()

    def _read(self, request_iterator: Iterator[telemetry_pb2.AgentMessage], peer: _Peer) -> None:
        try:
            for message in request_iterator:
                kind = message.WhichOneof("body")
                seqs: list[int] = []
                with self.cond:
                    if kind == "frames":
                        for frame in message.frames.frames:
                            self.received.append((peer.node, frame.seq))
                            if self.storing:
                                self.stored.setdefault(
                                    (peer.node, frame.seq), frame.SerializeToString()
                                )
                            seqs.append(frame.seq)
                        self.batch_sizes.append(len(seqs))
                    elif kind == "heartbeat":
                        self.heartbeats.append(message.heartbeat)
                    elif kind == "command_result":
                        self.command_results.append(message.command_result)
                    self.cond.notify_all()
                if kind == "frames" and self.auto_ack and seqs:
                    peer.outbox.put(
                        telemetry_pb2.CoordinatorMessage(
                            ack=telemetry_pb2.Ack(highest_durable_seq=max(seqs))
                        )
                    )
        except grpc.RpcError:
            pass  # the stream ended under us (cancelled, server stopping)
        finally:
            with self.cond:
                peer.done = True
                self.cond.notify_all()
            peer.outbox.put(None)


class FakeServer:
    """A real gRPC server on 127.0.0.1 serving ``coordinator``; restartable on its port."""

    def __init__(
        self,
        coordinator: FakeCoordinator,
        port: int = 0,
        *,
        credentials: Any = None,
    ) -> None:
        self.coordinator = coordinator
        self._credentials = credentials
        self.server: Any = None
        self.port = port
        self.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        server = grpc.server(ThreadPoolExecutor(max_workers=32), options=SERVER_OPTIONS)
        telemetry_pb2_grpc.add_TelemetryServiceServicer_to_server(self.coordinator, server)
        target = f"127.0.0.1:{self.port}"
        if self._credentials is None:
            port = server.add_insecure_port(target)
        else:
            port = server.add_secure_port(target, self._credentials)
        assert port, f"cannot bind {target}"
        self.port = port
        server.start()
        self.server = server

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(0).wait(5)
            self.server = None
