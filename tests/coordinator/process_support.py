"""Real coordinator processes and real agent spools, for crash, restart and worker tests.

:class:`CoordinatorProcess` runs ``novacron-coordinator run --insecure`` as a subprocess
on a fixed port (so agents reconnect to the same address after a restart);
:class:`SpoolAgent` is the agent side as the daemon does it, with the real spool.
"""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import psutil
from grpc_health.v1 import health_pb2 as grpc_health_pb2
from grpc_health.v1 import health_pb2_grpc as grpc_health_pb2_grpc

from novacron.agent.spool import Spool
from novacron.protos import telemetry_pb2
from tests.coordinator.frames import make_frame
from tests.coordinator.ingest_support import METHOD, batch_from_bodies, make_hello
from tests.fixtures.processes import console_script, free_port

COORDINATOR = Path(console_script("novacron-coordinator"))


class CoordinatorProcess:
    """``novacron-coordinator run --insecure`` on a fixed port, restartable.

    ``workers``: ``--ingest-workers`` (1: ingest in the main process).
    """

    def __init__(self, tmp_path: Path, *, workers: int = 1) -> None:
        self.ingest_workers = workers
        self.db = tmp_path / "coordinator.db"
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = tmp_path / "coordinator.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(COORDINATOR),
                    "run",
                    "--insecure",
                    "--listen",
                    self.address,
                    "--db",
                    str(self.db),
                    "--metrics-listen",
                    "127.0.0.1:0",
                    "--api-listen",
                    "127.0.0.1:0",
                    "--ingest-workers",
                    str(self.ingest_workers),
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 30
        with grpc.insecure_channel(self.address) as channel:
            health = grpc_health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    health.Check(grpc_health_pb2.HealthCheckRequest(), timeout=1)
                    return
                except grpc.RpcError:
                    assert self.process.poll() is None, self.log.read_text()
                    assert time.monotonic() < deadline, "coordinator did not start"
                    time.sleep(0.1)

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def workers(self) -> list[psutil.Process]:
        """The ingest worker processes (children running the worker entry point)."""
        assert self.process is not None
        workers = []
        for child in psutil.Process(self.process.pid).children():
            try:  # a short-lived child (e.g. one exiting under load) may be gone already
                if "spawn_main" in " ".join(child.cmdline()):
                    workers.append(child)
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
        return workers


class SpoolAgent:
    """The agent side as the daemon does it: the real Spool, a synchronous gRPC stream,
    replay from ``Welcome.highest_durable_seq + 1``, reconnect on any error (a thread)."""

    def __init__(self, tmp_path: Path, node_id: str, count: int) -> None:
        self.node_id = node_id
        self.spool = Spool(tmp_path / f"{node_id}.spool")
        template = make_frame(node_id, 1)

        def body(seq: int) -> bytes:
            template.seq = seq
            return template.SerializeToString()

        for _ in range(count):
            self.spool.append(body, time.time())
        self.count = count
        self.reconnects = 0
        self.endings: list[tuple[grpc.StatusCode, telemetry_pb2.StreamError | None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, address: str) -> None:
        self._thread = threading.Thread(target=self.run, args=(address,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.join()

    def join(self, timeout: float = 60) -> None:
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"{self.node_id} did not finish"

    def run(self, address: str, *, batch: int = 10, window: int = 4) -> None:
        while self.spool.last_acked < self.count and not self._stop.is_set():
            error: list[telemetry_pb2.StreamError] = []
            try:
                self._stream(address, batch, window, error)
            except grpc.RpcError as exc:
                self.endings.append((exc.code(), error[-1] if error else None))
            self.reconnects += 1
            self._stop.wait(0.05)

    def _stream(
        self, address: str, batch: int, window: int, error: list[telemetry_pb2.StreamError]
    ) -> None:
        outbox: queue.Queue[bytes | None] = queue.Queue()

        def requests() -> Iterator[bytes]:
            while (item := outbox.get()) is not None:
                yield item

        hello = make_hello(
            self.node_id,
            last_acked_seq=self.spool.last_acked,
            last_produced_seq=self.spool.last_seq,
        )
        outbox.put(hello.SerializeToString())
        with grpc.insecure_channel(address) as channel:
            method = channel.stream_stream(
                METHOD,
                request_serializer=None,
                response_deserializer=telemetry_pb2.CoordinatorMessage.FromString,
            )
            replies = method(requests(), timeout=60)
            sent = inflight = 0
            try:
                for reply in replies:
                    kind = reply.WhichOneof("body")
                    if kind == "welcome":
                        sent = reply.welcome.highest_durable_seq
                        self.spool.ack(sent)
                    elif kind == "ack":
                        self.spool.ack(reply.ack.highest_durable_seq)
                        inflight -= 1
                    elif kind == "error":
                        error.append(reply.error)
                    if self.spool.last_acked >= self.count or self._stop.is_set():
                        return
                    while kind in ("welcome", "ack") and inflight < window:
                        pending = self.spool.pending(after_seq=sent, limit=batch)
                        if not pending:
                            break
                        outbox.put(batch_from_bodies([b for _, b in pending]).SerializeToString())
                        sent, inflight = pending[-1][0], inflight + 1
            finally:
                outbox.put(None)
                replies.cancel()


def wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)
