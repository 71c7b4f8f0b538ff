"""``novacron-coordinator run``: the gRPC service agents stream telemetry to.

A ``grpc.aio`` server with a thin servicer: each ``TelemetryService.Stream`` call
becomes an :class:`~novacron.coordinator.ingest.StreamSession`, which does the work;
this module only wires transport, identity and process life around it.

* **TLS by default** with client certificates required and verified against the fleet
  CA (``[tls]``); the stream is bound to the node named in the certificate
  (``docs/security.md``). ``insecure = true`` / ``--insecure`` serves plaintext and
  trusts the node id in Hello: tests and demos on loopback only.
* Messages up to 32 MiB are accepted (wire contract); larger ones end the stream with
  ``RESOURCE_EXHAUSTED`` before the servicer sees them.
* The standard ``grpc.health.v1.Health`` service (SERVING while up, NOT_SERVING while
  stopping) and server reflection, so ``grpcurl`` works.
* The request deserializer is the identity: the ingest parses the bytes itself, so a
  garbage message becomes a precise ``StreamError`` rather than gRPC's generic failure.
* Graceful stop (SIGTERM, SIGINT): stop accepting streams, let every stream ack what the
  writer commits of what it queued, end them with a retryable error, drain the writer,
  close the store. Exit status 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health as grpc_health
from grpc_health.v1 import health_pb2 as grpc_health_pb2
from grpc_health.v1 import health_pb2_grpc as grpc_health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from novacron.coordinator.api_server import ApiServer
from novacron.coordinator.config import CoordinatorConfig
from novacron.coordinator.fleet import FleetState
from novacron.coordinator.ingest import Ingest, IngestSettings, LivenessMonitor, StreamClosed
from novacron.coordinator.ingest_checks import MAX_MESSAGE_BYTES
from novacron.coordinator.ingest_workers import (
    IngestSupervisor,
    WorkerStartError,
    resolve_workers,
)
from novacron.coordinator.ingest_writer import BatchWriter, OnCommit
from novacron.coordinator.metrics import MetricsEndpoint
from novacron.coordinator.model_push import ModelSigner, ModelWatcher
from novacron.coordinator.store import Store
from novacron.coordinator.store_sqlite import SqliteStore
from novacron.protos import telemetry_pb2
from novacron.protos.runtime.tls import peer_node_id, server_credentials

log = logging.getLogger(__name__)

TELEMETRY_SERVICE = telemetry_pb2.DESCRIPTOR.services_by_name["TelemetryService"].full_name
GRPC_HEALTH_SERVICE = grpc_health.SERVICE_NAME
DEFAULT_GRACE_SECONDS = 10.0
LIVENESS_TICK_SECONDS = 5.0

# SO_REUSEPORT is off for a single-process coordinator: a second coordinator on the same
# port would otherwise silently share its agents. Ingest workers turn it on, after the
# main process made sure nobody else listens there (ingest_workers.reserve_port).
_SERVER_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # Find dead agents whose TCP connection never closed.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    # Let agents keep their long-lived streams alive with pings of their own.
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
)


class ServiceStartError(Exception):
    """The service cannot start (address in use, ...); the message says why."""


def agent_server_options(*, reuse_port: bool) -> list[tuple[str, int]]:
    """gRPC options of the agent port; ``reuse_port`` for ingest workers sharing it."""
    return [*_SERVER_OPTIONS, ("grpc.so_reuseport", int(reuse_port))]


class IngestServer:
    """One process's share of the agent port: writer, ingest and their gRPC server.

    Serves ``TelemetryService`` and the standard health service (plus reflection, so
    ``grpcurl`` works) and nothing else: the agent port accepts agents' certificates,
    so the scheduler/operator API lives on its own address in the main process. Used
    by :class:`CoordinatorService` itself with ``[ingest] workers = 1``, and by every
    ingest worker process otherwise (``reuse_port``: several processes share the port).

    ``on_commit``: told the newest frame of each node after every commit (the fleet).
    """

    def __init__(
        self,
        config: CoordinatorConfig,
        store: Store,
        *,
        on_commit: OnCommit | None,
        ingest_settings: IngestSettings | None = None,
        clock: Callable[[], float] = time.time,
        reuse_port: bool = False,
    ) -> None:
        self.config = config
        self.store = store
        self._reuse_port = reuse_port
        self.writer = BatchWriter(
            store,
            max_frames=config.store.batch_max_frames,
            max_delay_seconds=config.store.batch_max_delay_seconds,
            on_commit=on_commit,
            clock=clock,
        )
        self.ingest = Ingest(
            self.writer,
            insecure=config.coordinator.insecure,
            settings=ingest_settings,
            clock=clock,
        )
        self.port = 0
        self._health = grpc_health.aio.HealthServicer()
        self._server = grpc.aio.server(options=agent_server_options(reuse_port=reuse_port))

    async def start(self) -> int:
        """Listen on ``[coordinator] listen``; the port. ServiceStartError when it cannot."""
        settings = self.config.coordinator
        credentials = None
        if not settings.insecure:
            tls = self.config.tls
            credentials = server_credentials(tls.ca_cert, tls.server_cert, tls.server_key)
        handler = grpc.stream_stream_rpc_method_handler(
            self._stream,
            request_deserializer=None,  # bytes: the ingest decodes (see module docstring)
            response_serializer=telemetry_pb2.CoordinatorMessage.SerializeToString,
        )
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(TELEMETRY_SERVICE, {"Stream": handler}),)
        )
        grpc_health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            (TELEMETRY_SERVICE, GRPC_HEALTH_SERVICE, reflection.SERVICE_NAME), self._server
        )
        self.writer.start()
        try:
            try:
                if credentials is None:
                    self.port = self._server.add_insecure_port(settings.listen)
                else:
                    self.port = self._server.add_secure_port(settings.listen, credentials)
            except RuntimeError as exc:
                raise ServiceStartError(f"cannot listen on {settings.listen}: {exc}") from None
            await self._server.start()
        except BaseException:
            await self._server.stop(None)
            self.writer.close(DEFAULT_GRACE_SECONDS)
            raise
        for service in ("", TELEMETRY_SERVICE):
            await self._health.set(service, grpc_health_pb2.HealthCheckResponse.SERVING)
        return self.port

    def publish_models(self, updates: Sequence[telemetry_pb2.ModelUpdate]) -> None:
        self.ingest.publish_models(updates)

    def connected_nodes(self) -> list[str]:
        return self.ingest.connected_nodes()

    async def _stream(
        self, messages: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> None:
        cert_node_id = None if self.ingest.insecure else peer_node_id(context)

        async def send(message: telemetry_pb2.CoordinatorMessage) -> None:
            try:
                await context.write(message)
            except Exception as exc:  # the RPC is over (peer gone, deadline, cancelled)
                raise StreamClosed(repr(exc)) from exc

        session = self.ingest.stream(send, peer=context.peer(), cert_node_id=cert_node_id)
        rejected = await session.run(messages)
        if rejected is None:
            return
        error = rejected.stream_error()
        if error is not None:
            with contextlib.suppress(StreamClosed):
                await send(telemetry_pb2.CoordinatorMessage(error=error))
        await context.abort(grpc.StatusCode[rejected.status], rejected.message)

    async def stop(self, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
        """Graceful stop: streams ack what they queued and end, then the writer drains."""
        await self._health.enter_graceful_shutdown()
        # Streams first: each ends with a StreamError after its acks, and new ones are
        # refused the same way. Stopping the gRPC server first would cut them off with a
        # bare INTERNAL status instead.
        self.ingest.begin_shutdown()
        if not await self.ingest.wait_streams_closed(grace_seconds):
            log.warning("some streams did not finish in time; they are cancelled")
        await self._server.stop(1.0)
        drained = await asyncio.to_thread(self.writer.close, grace_seconds)
        if not drained:
            log.error("the store writer did not finish in time; unacknowledged frames are replayed")


class CoordinatorService:
    """The running coordinator: store, fleet, ingest (here or in workers), metrics.

    ``store``: an already open store (tests); by default the SQLite store at
    ``config.coordinator.db_path`` is opened by :meth:`start` and closed by :meth:`stop`.
    Credentials, the signing key and the store are checked in :meth:`start`, which
    raises ``TlsConfigError``, ``ModelSignatureError``, ``StoreError`` or
    :class:`ServiceStartError` before anything listens.

    With ``[ingest] workers`` > 1 the agent port is served by that many worker
    processes (:mod:`~novacron.coordinator.ingest_workers`); this process keeps the
    fleet snapshot current from their updates and serves what only one process may:
    metrics of all of them, liveness, compaction, model distribution. Services of the
    main process are started in :meth:`start` and stopped in reverse order in
    :meth:`stop`; a new one (the scheduler API) is one more step in each.
    """

    def __init__(
        self,
        config: CoordinatorConfig,
        *,
        store: Store | None = None,
        ingest_settings: IngestSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._given_store = store
        self._ingest_settings = ingest_settings
        self._clock = clock
        self.port = 0
        self.metrics_port: int | None = None
        # A store object given by the caller lives in this process: no workers then.
        self.workers = 1 if store is not None else resolve_workers(config.ingest.workers)
        self._metrics: MetricsEndpoint | None = None
        self._ingest: IngestServer | IngestSupervisor | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False

    # ---------------------------------------------------------------- start

    async def start(self, *, serve_metrics: bool = True) -> None:
        settings = self.config.coordinator
        insecure = settings.insecure
        if not insecure:  # fail here, with exit status 2, before any worker starts
            tls = self.config.tls
            server_credentials(tls.ca_cert, tls.server_cert, tls.server_key)
        signing_key = self.config.models.signing_key
        signer = ModelSigner(signing_key) if signing_key is not None else None

        self.store: Store = self._given_store or SqliteStore.open(
            settings.db_path, self.config.store
        )
        self.fleet = FleetState.from_settings(settings, clock=self._clock)
        loaded = self.fleet.load(self.store)
        self.liveness = LivenessMonitor(self.fleet)
        try:
            self.port = await self._start_ingest()
            if serve_metrics:
                self._serve_metrics()
        except BaseException:
            await self._stop_ingest(0.0)
            if self._given_store is None:
                self.store.close()
            raise
        self._spawn(self._liveness_loop(), "liveness")
        self._spawn(self._compaction_loop(), "compaction")
        if signer is not None:
            assert self._ingest is not None
            watcher = ModelWatcher(self.config.models.models_dir, signer, self.publish_models)
            self._spawn(watcher.run(), "model-watcher")
        log.info(
            "coordinator listening",
            extra={
                "listen": settings.listen,
                "port": self.port,
                "tls": not insecure,
                "ingest_workers": self.workers,
                "db_path": str(settings.db_path),
                "metrics_port": self.metrics_port,
                "nodes_loaded": loaded,
                "model_push": signer is not None,
            },
        )
        if insecure:
            log.warning(
                "insecure mode: plaintext gRPC, node ids are not authenticated; loopback only",
                extra={"listen": settings.listen},
            )

    async def _start_ingest(self) -> int:
        if self.workers == 1:
            server = IngestServer(
                self.config,
                self.store,
                on_commit=self.fleet.observe_frames,
                ingest_settings=self._ingest_settings,
                clock=self._clock,
            )
            self._ingest = server
            return await server.start()
        supervisor = IngestSupervisor(self.config, self.workers, self.fleet)
        self._ingest = supervisor
        try:
            return await supervisor.start()
        except WorkerStartError as exc:
            raise ServiceStartError(str(exc)) from None

    def _serve_metrics(self) -> None:
        listen = self.config.coordinator.metrics_listen
        registry = (
            self._ingest.metrics_registry() if isinstance(self._ingest, IngestSupervisor) else None
        )
        try:
            self._metrics = MetricsEndpoint(listen, registry)
        except OSError as exc:
            raise ServiceStartError(
                f"cannot serve metrics on {listen}: {exc.strerror or exc}"
            ) from None
        self.metrics_port = self._metrics.port

    def publish_models(self, updates: Sequence[telemetry_pb2.ModelUpdate]) -> None:
        """Make ``updates`` the current models: every agent lacking one gets it pushed.

        With ingest workers they are forwarded to every worker (and to restarted ones).
        """
        if self._ingest is not None:
            self._ingest.publish_models(updates)

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coroutine, name=name))

    # ---------------------------------------------------------------- background

    async def _liveness_loop(self) -> None:
        settings = self.config.coordinator
        interval = min(LIVENESS_TICK_SECONDS, settings.stale_after_seconds / 4)
        while True:
            try:
                self.liveness.tick()
            except Exception:
                log.exception("liveness tick failed")
            await asyncio.sleep(interval)

    async def _compaction_loop(self) -> None:
        interval = self.config.store.compact_interval_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.store.compact, self._clock())
            except Exception as exc:
                log.error(
                    "store compaction failed; retrying next interval", extra={"error": str(exc)}
                )

    # ---------------------------------------------------------------- stop

    async def stop(self, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
        """Graceful stop (see the module docstring); idempotent."""
        if self._stopped:
            return
        self._stopped = True
        streams = len(self._ingest.connected_nodes()) if self._ingest is not None else 0
        log.info("coordinator stopping", extra={"streams": streams})
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stop_ingest(grace_seconds)
        if self._given_store is None:
            self.store.close()
        if self._metrics is not None:
            self._metrics.close()
        log.info("coordinator stopped")

    async def _stop_ingest(self, grace_seconds: float) -> None:
        if self._ingest is not None:
            await self._ingest.stop(grace_seconds)


async def serve(config: CoordinatorConfig, stop: asyncio.Event) -> None:
    """Run the coordinator until ``stop`` is set, then stop it gracefully."""
    service = CoordinatorService(config)
    await service.start()
    # The scheduler API runs in this (main) process only, next to the fleet state it
    # decides over; agents' ingest may run in worker processes on the agent port.
    api = ApiServer.for_coordinator(config, store=service.store, fleet=service.fleet)
    try:
        await api.start()
        await stop.wait()
    finally:
        await api.stop()
        await service.stop()


def run_coordinator(config: CoordinatorConfig) -> None:
    """Serve until SIGTERM or SIGINT (the ``run`` command); returns after a clean stop.

    Start-up failures raise (see :class:`CoordinatorService`); the caller maps them to
    exit statuses.
    """

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve(config, stop)

    asyncio.run(main())
