"""Ingest worker processes: several processes serve the agent port, one supervises them.

Why: one Python process ingests at most what one core decodes, converts and writes
(the GIL), far below what the machine and SQLite can take. With ``[ingest] workers``
= N > 1, N worker processes each run a complete
:class:`~novacron.coordinator.server.IngestServer` -- gRPC server, stream sessions,
batching writer, SQLite connection -- on the same agent port (``SO_REUSEPORT``: the
kernel spreads new connections over them). The main process keeps what exists once:
the fleet snapshot the decision engines read, liveness, compaction, model
distribution, ``/metrics`` for all processes (and, later, the scheduler API).

Guarantees, per worker exactly as in one process:

* **Ack after commit.** A worker acknowledges only what its own transaction
  committed. The workers' transactions are serialised by SQLite (WAL, ``BEGIN
  IMMEDIATE``, ``busy_timeout``), and the ack watermark and ``INSERT OR IGNORE`` are
  decided inside each transaction, so a node's frames are stored exactly once even
  when two of its streams (a reconnect landing on another worker while the old
  connection lingers) write at the same time.
* **Identity.** Each worker verifies client certificates itself (same ``[tls]``).
* A stream of a node replaces an older one of the same node only inside one worker;
  an old stream on another worker ends when its connection does (keepalive).

The fleet: after every commit a worker sends the newest frame of each node it wrote,
reduced to what :class:`~novacron.coordinator.fleet.FleetState` keeps (a
:data:`FleetRow`), over its pipe; the main process applies them as they arrive (well
within a second of the commit).

Supervision (:class:`IngestSupervisor`): workers are started with the ``spawn``
method (no fork of a process running gRPC threads) and report ``ready`` once they
listen. A worker that dies is restarted (1 s back-off, doubling while it keeps dying
young). ``stop`` asks every worker to stop gracefully (its streams ack what they
queued), then terminates stragglers. Workers stop by themselves when the main process
goes away (their pipe closes), so none outlives it, even after a SIGKILL; they ignore
SIGINT (a terminal's Ctrl-C reaches the whole process group; the main process stops
them in order) and stop gracefully on SIGTERM.

Metrics: workers write their metrics into a shared directory (prometheus_client
multiprocess mode); the main process serves them summed, with its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Metric
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from novacron.coordinator import metrics
from novacron.coordinator.config import (
    CoordinatorConfig,
    CoordinatorSettings,
    StoreSettings,
    TlsSettings,
    parse_host_port,
)
from novacron.coordinator.fleet import FleetState
from novacron.coordinator.store import FEATURE_DTYPE, StoredFrame
from novacron.protos import telemetry_pb2
from novacron.protos.runtime.jsonlog import configure_logging

log = logging.getLogger(__name__)

#: ``[ingest] workers = 0`` (auto): one per CPU this process may use, at most this many.
#: Beyond four, SQLite's single writer lock, not the CPUs, bounds the ingest.
AUTO_WORKERS_MAX = 4
#: How long a worker may take from spawn to listening.
WORKER_START_TIMEOUT_SECONDS = 60.0
#: A worker that dies is restarted after this, doubled while it dies within
#: :data:`WORKER_STABLE_SECONDS` of its start, up to :data:`RESTART_BACKOFF_MAX_SECONDS`.
RESTART_BACKOFF_SECONDS = 1.0
RESTART_BACKOFF_MAX_SECONDS = 30.0
WORKER_STABLE_SECONDS = 30.0
MONITOR_INTERVAL_SECONDS = 0.5
#: A worker told to stop by SIGTERM (not by the main process) gives its streams this long.
WORKER_SIGTERM_GRACE_SECONDS = 10.0
#: A worker whose main process died stops this fast: a restarted coordinator needs the port.
ORPHAN_GRACE_SECONDS = 1.0
#: A port still held by the previous coordinator's workers (draining after it died) is
#: retried this long before start-up fails with "address in use".
RESERVE_RETRY_SECONDS = 15.0
#: After a graceful stop's grace: how long a worker may still take before SIGTERM/SIGKILL.
STOP_MARGIN_SECONDS = 5.0

_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_ENV_LOCK = threading.Lock()

#: One node's newest committed frame, as the fleet snapshot keeps it: node id, seq,
#: received at (coordinator clock), schema version, float32 feature bytes, highest
#: failure probability, highest anomaly score (NaN: none).
FleetRow = tuple[str, int, float, int, bytes, float, float]


class WorkerStartError(Exception):
    """An ingest worker could not start listening; the message says why."""


def resolve_workers(configured: int) -> int:
    """The number of ingest processes: ``configured``, or for 0 (auto) the CPU count."""
    if configured > 0:
        return configured
    return max(1, min(AUTO_WORKERS_MAX, len(os.sched_getaffinity(0))))


def reserve_port(listen: str) -> socket.socket:
    """Hold ``listen``'s port for the workers; OSError (EADDRINUSE) if someone listens there.

    Workers must set ``SO_REUSEPORT`` to share the port, and so could a second
    coordinator's workers: so first a connection attempt checks that nobody accepts
    connections there (a second coordinator is refused, not silently joined). The
    returned socket is bound like the workers' listeners (``SO_REUSEADDR``,
    ``SO_REUSEPORT``) and never listens: it receives no connections, and keeps the port
    from programs without ``SO_REUSEPORT`` while workers start and restart. Port 0:
    a free port, which the workers then use.
    """
    host, port = parse_host_port(listen)
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    if port == 0:
        with socket.socket(family, kind, proto) as probe:
            probe.bind(address)
            port = probe.getsockname()[1]
    elif _accepts_connections(family, host, port):
        raise OSError(errno.EADDRINUSE, f"another process listens on port {port}")
    keep = socket.socket(family, kind, proto)
    try:
        keep.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
        keep.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        keep.bind((address[0], port, *address[2:]))
    except OSError:
        keep.close()
        raise
    return keep


def _accepts_connections(family: socket.AddressFamily, host: str, port: int) -> bool:
    wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 - addresses to probe
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            probe.connect((wildcard.get(host, host), port))
    except OSError:
        return False
    return True


def fleet_rows(frames: Sequence[StoredFrame], received_at_seconds: float) -> list[FleetRow]:
    """What the main process's fleet needs of committed frames (one per node)."""
    return [
        (
            f.node_id,
            f.seq,
            received_at_seconds,
            f.schema_version,
            f.features,
            f.failure_probability(),
            f.anomaly_score(),
        )
        for f in frames
    ]


def apply_fleet_rows(fleet: FleetState, rows: Sequence[FleetRow]) -> None:
    """Record :func:`fleet_rows` from a worker in the main process's fleet."""
    for node_id, seq, received, schema_version, features, failure, anomaly in rows:
        fleet.observe_values(
            node_id,
            seq=seq,
            received_at_seconds=received,
            schema_version=schema_version,
            features=np.frombuffer(features, dtype=FEATURE_DTYPE),
            failure_probability=failure,
            anomaly_score=anomaly,
        )


# ---------------------------------------------------------------------- worker side


class _Link:
    """The worker's end of its pipe; sends from any thread, never raises."""

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> None:
        try:
            with self._lock:
                self.conn.send(message)
        except (OSError, ValueError):  # the main process is gone; the reader stops us
            log.debug("ingest worker: the main process is gone; %s not sent", message[0])


def worker_main(
    sections: tuple[CoordinatorSettings, TlsSettings, StoreSettings, str],
    index: int,
    conn: multiprocessing.connection.Connection,
) -> None:
    """Entry point of an ingest worker process (see the module docstring).

    ``sections``: the parts of the configuration an ingest worker uses (the whole
    config holds sections that do not pickle, and a worker needs none of them).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    coordinator, tls, store, source = sections
    config = CoordinatorConfig(coordinator=coordinator, tls=tls, store=store, source=source)
    configure_logging(config.coordinator.log_level)
    try:
        asyncio.run(_serve_worker(config, index, _Link(conn)))
    except Exception:
        log.exception("ingest worker failed", extra={"worker": index})
        raise SystemExit(1) from None


async def _serve_worker(config: CoordinatorConfig, index: int, link: _Link) -> None:
    # Imported here: the server module imports this one for the supervisor.
    from novacron.coordinator.server import IngestServer
    from novacron.coordinator.store_sqlite import SqliteStore

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    grace = [WORKER_SIGTERM_GRACE_SECONDS]
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        store = SqliteStore.open(config.coordinator.db_path, config.store)
    except Exception as exc:
        link.send(("failed", f"cannot open the store: {exc}"))
        return

    def committed(frames: list[StoredFrame], now: float) -> None:
        link.send(("fleet", fleet_rows(frames, now)))

    server = IngestServer(config, store, on_commit=committed, reuse_port=True)
    try:
        port = await server.start()
    except Exception as exc:
        link.send(("failed", str(exc)))
        store.close()
        return

    def listen() -> None:  # a thread: blocking reads of the pipe
        while True:
            try:
                message = link.conn.recv()
            except (EOFError, OSError):
                log.warning("ingest worker: the main process went away; stopping")
                grace[0] = ORPHAN_GRACE_SECONDS  # free the port for its successor soon
                break
            if message[0] == "models":
                updates = [telemetry_pb2.ModelUpdate.FromString(b) for b in message[1]]
                loop.call_soon_threadsafe(server.publish_models, updates)
            elif message[0] == "stop":
                grace[0] = float(message[1])
                break
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=listen, name="supervisor-link", daemon=True).start()
    link.send(("ready", port))
    log.info("ingest worker serving", extra={"worker": index, "port": port, "pid": os.getpid()})
    await stop.wait()
    await server.stop(grace[0])
    store.close()
    log.info("ingest worker stopped", extra={"worker": index})


# ---------------------------------------------------------------------- main side


class _Slot:
    """One worker position: the current process and its pipe."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: multiprocessing.process.BaseProcess | None = None
        self.conn: multiprocessing.connection.Connection | None = None
        self.reader: threading.Thread | None = None
        self.ready: asyncio.Future[int] | None = None
        self.started_at = 0.0
        self.backoff_seconds = RESTART_BACKOFF_SECONDS
        self.restart_at: float | None = None


class IngestSupervisor:
    """Starts, watches, restarts and stops the ingest workers (main process)."""

    def __init__(self, config: CoordinatorConfig, workers: int, fleet: FleetState) -> None:
        if workers < 2:
            raise ValueError(f"workers: a supervisor runs 2 or more, got {workers}")
        self.config = config
        self.fleet = fleet
        self.port = 0
        self._slots = [_Slot(i) for i in range(workers)]
        self._context = multiprocessing.get_context("spawn")
        self._reservation: socket.socket | None = None
        self._metrics_dir = ""
        self._models: list[bytes] = []
        self._stopping = False
        self._monitor: asyncio.Task[None] | None = None
        self._announcing: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker_sections = (config.coordinator, config.tls, config.store, config.source)
        self._registry = CollectorRegistry()
        self._restarts = Counter(
            "novacron_coordinator_ingest_worker_restarts",
            "Ingest worker processes restarted after they died.",
            registry=self._registry,
        )
        self._alive = Gauge(
            "novacron_coordinator_ingest_workers",
            "Ingest worker processes serving the agent port.",
            registry=self._registry,
        )

    async def start(self) -> int:
        """Reserve the port, start every worker, wait until all listen; the port."""
        self._loop = asyncio.get_running_loop()
        listen = self.config.coordinator.listen
        deadline = time.monotonic() + RESERVE_RETRY_SECONDS
        while self._reservation is None:
            try:
                self._reservation = reserve_port(listen)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    raise WorkerStartError(
                        f"cannot listen on {listen}: {exc.strerror or exc}"
                    ) from None
                await asyncio.sleep(0.2)
        self.port = self._reservation.getsockname()[1]
        host, _ = parse_host_port(listen)
        shown = f"[{host}]" if ":" in host else host
        self._worker_sections = (
            replace(self.config.coordinator, listen=f"{shown}:{self.port}"),
            self.config.tls,
            self.config.store,
            self.config.source,
        )
        self._metrics_dir = tempfile.mkdtemp(prefix="novacron-coordinator-metrics-")
        self._registry.register(_WorkerMetrics(self._metrics_dir, metrics.INGEST_METRICS))
        for own in metrics.MAIN_PROCESS_METRICS:
            self._registry.register(own)
        try:
            for slot in self._slots:
                self._spawn(slot)
            await asyncio.gather(*(self._wait_ready(slot) for slot in self._slots))
        except BaseException:
            await self.stop(0.0)
            raise
        self._alive.set(len(self._slots))
        self._monitor = asyncio.create_task(self._watch(), name="ingest-supervisor")
        log.info(
            "ingest workers serving",
            extra={
                "workers": len(self._slots),
                "port": self.port,
                "pids": [slot.process.pid for slot in self._slots if slot.process],
            },
        )
        return self.port

    def metrics_registry(self) -> CollectorRegistry:
        """Every worker's metrics (summed) and the main process's own."""
        return self._registry

    def publish_models(self, updates: Sequence[telemetry_pb2.ModelUpdate]) -> None:
        """Send the current models to every worker (and to every worker started later)."""
        self._models = [u.SerializeToString() for u in updates]
        for slot in self._slots:
            self._send(slot, ("models", self._models))

    def connected_nodes(self) -> list[str]:
        """Not known here (the workers hold the streams): the metrics count them."""
        return []

    # ---------------------------------------------------------------- workers

    def _spawn(self, slot: _Slot) -> None:
        assert self._loop is not None
        parent, child = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=worker_main,
            args=(self._worker_sections, slot.index, child),
            name=f"novacron-ingest-{slot.index}",
            daemon=True,
        )
        with _ENV_LOCK:  # the worker's prometheus_client reads it when imported
            before = os.environ.get(_MULTIPROC_ENV)
            os.environ[_MULTIPROC_ENV] = self._metrics_dir
            try:
                process.start()
            finally:
                if before is None:
                    del os.environ[_MULTIPROC_ENV]
                else:
                    os.environ[_MULTIPROC_ENV] = before
        child.close()
        slot.process, slot.conn = process, parent
        slot.ready = self._loop.create_future()
        slot.started_at = time.monotonic()
        slot.restart_at = None
        slot.reader = threading.Thread(
            target=self._read,
            args=(slot, parent, slot.ready),
            name=f"ingest-{slot.index}-link",
            daemon=True,
        )
        slot.reader.start()

    async def _wait_ready(self, slot: _Slot) -> None:
        assert slot.ready is not None
        try:
            await asyncio.wait_for(asyncio.shield(slot.ready), WORKER_START_TIMEOUT_SECONDS)
        except TimeoutError:
            raise WorkerStartError(
                f"ingest worker {slot.index} did not start within "
                f"{WORKER_START_TIMEOUT_SECONDS:g} s"
            ) from None
        if self._models:
            self._send(slot, ("models", self._models))

    def _read(
        self,
        slot: _Slot,
        conn: multiprocessing.connection.Connection,
        ready: asyncio.Future[int],
    ) -> None:
        """A thread per worker: its fleet updates and start-up report."""
        assert self._loop is not None
        loop = self._loop
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "fleet":
                apply_fleet_rows(self.fleet, message[1])
            elif kind == "ready":
                loop.call_soon_threadsafe(_settle, ready, message[1], None)
            elif kind == "failed":
                error = WorkerStartError(f"ingest worker {slot.index}: {message[1]}")
                loop.call_soon_threadsafe(_settle, ready, None, error)
        error = WorkerStartError(f"ingest worker {slot.index} exited during start-up")
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(_settle, ready, None, error)

    def _send(self, slot: _Slot, message: tuple[Any, ...]) -> None:
        if slot.conn is None:
            return
        try:
            slot.conn.send(message)
        except (OSError, ValueError):  # the worker died; the monitor restarts it
            log.debug("ingest worker %d is gone; %s not sent", slot.index, message[0])

    async def _watch(self) -> None:
        """Restart workers that died (with back-off) until :meth:`stop`."""
        while not self._stopping:
            now = time.monotonic()
            for slot in self._slots:
                process = slot.process
                if process is None or self._stopping:
                    continue
                if process.is_alive():
                    if now - slot.started_at > WORKER_STABLE_SECONDS:
                        slot.backoff_seconds = RESTART_BACKOFF_SECONDS
                    continue
                if slot.restart_at is None:
                    self._reap(slot)
                    slot.restart_at = now + slot.backoff_seconds
                    log.error(
                        "ingest worker died; restarting it",
                        extra={
                            "worker": slot.index,
                            "pid": process.pid,
                            "exitcode": process.exitcode,
                            "restart_in_seconds": slot.backoff_seconds,
                        },
                    )
                    young = now - slot.started_at < WORKER_STABLE_SECONDS
                    slot.backoff_seconds = (
                        min(RESTART_BACKOFF_MAX_SECONDS, 2 * slot.backoff_seconds)
                        if young
                        else RESTART_BACKOFF_SECONDS
                    )
                    self._alive.set(self._running())
                elif now >= slot.restart_at:
                    self._spawn(slot)
                    self._restarts.inc()
                    task = asyncio.create_task(
                        self._announce(slot), name=f"ingest-{slot.index}-start"
                    )
                    self._announcing.add(task)
                    task.add_done_callback(self._announcing.discard)
            await asyncio.sleep(MONITOR_INTERVAL_SECONDS)

    async def _announce(self, slot: _Slot) -> None:
        try:
            await self._wait_ready(slot)
        except WorkerStartError as exc:
            log.error("ingest worker failed to start", extra={"error": str(exc)})
            return
        self._alive.set(self._running())
        log.info(
            "ingest worker restarted",
            extra={"worker": slot.index, "pid": slot.process.pid if slot.process else None},
        )

    def _running(self) -> int:
        return sum(1 for s in self._slots if s.process is not None and s.process.is_alive())

    def _reap(self, slot: _Slot) -> None:
        """Forget a dead worker: its pipe, its reader, its live gauges."""
        process = slot.process
        if process is not None:
            process.join(1.0)
            if process.pid is not None and self._metrics_dir:
                prometheus_multiprocess.mark_process_dead(process.pid, self._metrics_dir)  # type: ignore[no-untyped-call]
        if slot.conn is not None:
            slot.conn.close()
            slot.conn = None
        if slot.reader is not None:
            slot.reader.join(5.0)
            slot.reader = None

    # ---------------------------------------------------------------- stop

    async def stop(self, grace_seconds: float) -> None:
        """Stop every worker gracefully (streams ack what they queued); no orphans."""
        self._stopping = True
        tasks = [*self._announcing, *([self._monitor] if self._monitor else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for slot in self._slots:
            self._send(slot, ("stop", grace_seconds))
        await asyncio.gather(
            *(asyncio.to_thread(self._end, slot, grace_seconds) for slot in self._slots)
        )
        for slot in self._slots:
            self._reap(slot)
        self._alive.set(0)
        if self._reservation is not None:
            self._reservation.close()
            self._reservation = None
        if self._metrics_dir:
            shutil.rmtree(self._metrics_dir, ignore_errors=True)

    @staticmethod
    def _end(slot: _Slot, grace_seconds: float) -> None:
        process = slot.process
        if process is None or process.pid is None:
            return
        process.join(grace_seconds + STOP_MARGIN_SECONDS)
        if process.is_alive():
            log.warning(
                "ingest worker did not stop in time; terminating it", extra={"worker": slot.index}
            )
            process.terminate()
            process.join(STOP_MARGIN_SECONDS)
        if process.is_alive():
            process.kill()
            process.join(STOP_MARGIN_SECONDS)


class _WorkerMetrics(Collector):
    """The workers' metrics, summed (prometheus_client multiprocess files).

    A family no worker has a sample of yet (a labelled counter before its first
    increment) is still described, so ``/metrics`` lists the same names with workers
    as without.
    """

    def __init__(self, path: str, declared: Sequence[MetricWrapperBase]) -> None:
        # prometheus_client.multiprocess has no annotations.
        self._files = prometheus_multiprocess.MultiProcessCollector(None, path=path)  # type: ignore[no-untyped-call]
        self._declared = declared

    def collect(self) -> Iterable[Metric]:
        seen = set()
        for family in self._files.collect():  # type: ignore[no-untyped-call]
            seen.add(family.name)
            yield family
        for metric in self._declared:
            for family in metric.describe():
                if family.name not in seen:
                    yield family


def _settle(future: asyncio.Future[int], result: int | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert result is not None
        future.set_result(result)
