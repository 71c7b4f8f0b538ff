"""The scheduler/operator API server: ``PlacementService`` on ``[api] listen``.

Its own gRPC server in the coordinator's main process, apart from the agents'
telemetry port: agents' certificates must never reach the scheduler API, and ingest
may scale out to other processes while placement needs the one fleet state and claim
book. Like the agent port it uses mutual TLS against the fleet CA (``[tls]``), but it
accepts only API client certificates (``novacron-coordinator pki issue-client``,
URI ``spiffe://novacron/client/<name>``) and refuses agent ones with
PERMISSION_DENIED. ``[api] insecure`` (default: ``[coordinator] insecure``) serves
plaintext, for tests and demos on loopback only. The standard health service and
server reflection are served too, so ``grpcurl`` works.

Use::

    api = ApiServer.for_coordinator(config, store=store, fleet=fleet)
    await api.start()      # binds; api.port is the bound port
    ...
    await api.stop()
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health as grpc_health
from grpc_health.v1 import health_pb2 as grpc_health_pb2
from grpc_health.v1 import health_pb2_grpc as grpc_health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from novacron.coordinator.config import CoordinatorConfig
from novacron.coordinator.fleet import FleetState
from novacron.coordinator.placement.claims import ClaimBook
from novacron.coordinator.placement.engine import Policy
from novacron.coordinator.placement.inventory_file import load_inventory_file
from novacron.coordinator.placement.outcomes import OutcomeLog
from novacron.coordinator.placement.service import (
    PLACEMENT_SERVICE,
    LiveHostTables,
    PlacementServicer,
)
from novacron.coordinator.store import Store
from novacron.protos.runtime.tls import peer_client_name, server_credentials

log = logging.getLogger(__name__)

DEFAULT_GRACE_SECONDS = 5.0
_SERVER_OPTIONS = (
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
)


class ApiStartError(Exception):
    """The API server cannot start (address in use, ...); the message says why."""


def require_client_certificate(context: grpc.aio.ServicerContext) -> str | None:
    """Refuse peers without an API client certificate (agents' certificates included)."""
    if peer_client_name(context) is None:
        return (
            "this API accepts only API client certificates "
            "(novacron-coordinator pki issue-client); agent certificates are refused"
        )
    return None


class ApiService(Protocol):
    """A servicer served beside placement (optimisation, remediation)."""

    authorize: Callable[[grpc.aio.ServicerContext], str | None] | None

    def handler(self) -> grpc.GenericRpcHandler: ...


class ApiServer:
    """A grpc.aio server for the scheduler API; ``start``/``stop`` from the coordinator.

    ``services`` maps further service names to servicers; ``background`` are coroutines
    run while the server serves (cancelled at stop), e.g. the recommendation refresh.
    """

    def __init__(
        self,
        config: CoordinatorConfig,
        servicer: PlacementServicer,
        *,
        services: Mapping[str, ApiService] | None = None,
        background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
    ) -> None:
        self.config = config
        self.servicer = servicer
        self.services: dict[str, ApiService] = dict(services or {})
        self._background = tuple(background)
        self._background_tasks: list[asyncio.Task[None]] = []
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self._health = grpc_health.aio.HealthServicer()
        self._outcomes: OutcomeLog | None = None
        self._live_tables: LiveHostTables | None = None
        self._refresh_task: asyncio.Task[None] | None = None

    @classmethod
    def for_coordinator(
        cls,
        config: CoordinatorConfig,
        *,
        store: Store,
        fleet: FleetState,
        clock: Callable[[], float] = time.time,
    ) -> ApiServer:
        """The server over the live coordinator: its store, fleet state and database.

        Raises ConfigError for a bad inventory file, ValueError for a placement policy
        naming unknown plugins or factors (both caught at config load normally).
        """
        policy = Policy.from_settings(config.placement)
        path = config.api.inventory_file
        inventory = load_inventory_file(path) if path is not None else None
        outcomes = OutcomeLog(
            config.coordinator.db_path, busy_timeout_seconds=config.store.busy_timeout_seconds
        )
        tables = LiveHostTables(store, fleet, config.placement, inventory_file=inventory)
        servicer = PlacementServicer(
            policy=policy,
            tables=tables,
            claims=ClaimBook(clock),
            outcomes=outcomes,
            authorize=None if config.api_insecure else require_client_certificate,
            clock=clock,
        )
        server = cls(config, servicer)
        server._outcomes = outcomes
        server._live_tables = tables
        return server

    async def start(self) -> None:
        """Bind and serve; TlsConfigError or ApiStartError before anything listens."""
        settings = self.config.api
        credentials = None
        if not self.config.api_insecure:
            tls = self.config.tls
            credentials = server_credentials(tls.ca_cert, tls.server_cert, tls.server_key)
        servicers: dict[str, ApiService] = {PLACEMENT_SERVICE: self.servicer, **self.services}
        for servicer in servicers.values():
            if not self.config.api_insecure and servicer.authorize is None:
                servicer.authorize = require_client_certificate
        server = grpc.aio.server(options=list(_SERVER_OPTIONS))
        server.add_generic_rpc_handlers(tuple(s.handler() for s in servicers.values()))
        grpc_health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (*servicers, grpc_health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        try:
            if credentials is None:
                self.port = server.add_insecure_port(settings.listen)
            else:
                self.port = server.add_secure_port(settings.listen, credentials)
        except RuntimeError as exc:
            raise ApiStartError(f"cannot listen on {settings.listen}: {exc}") from None
        await server.start()
        self._server = server
        if self._live_tables is not None:
            self._live_tables.warm()  # the first SelectHosts need not wait for a full build
            self._refresh_task = asyncio.create_task(
                self._refresh_loop(self._live_tables), name="placement-table-refresh"
            )
        self._background_tasks = [
            asyncio.create_task(run(), name=f"api-background-{i}")
            for i, run in enumerate(self._background)
        ]
        for service in ("", *servicers):
            await self._health.set(service, grpc_health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "scheduler API listening",
            extra={"listen": settings.listen, "port": self.port, "tls": credentials is not None},
        )
        if credentials is None:
            log.warning(
                "insecure scheduler API: plaintext, no client authentication; loopback only",
                extra={"listen": settings.listen},
            )

    @staticmethod
    async def _refresh_loop(tables: LiveHostTables) -> None:
        """Keep the live host table fresh even when no SelectHosts arrives."""
        while True:
            await asyncio.sleep(tables.refresh_seconds)
            tables.refresh_if_due()

    async def stop(self, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
        """Stop serving (calls in flight get ``grace_seconds``); idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        await self._health.enter_graceful_shutdown()
        if self._refresh_task is not None:
            self._refresh_task.cancel()
            self._refresh_task = None
        for task in self._background_tasks:
            task.cancel()
        await asyncio.gather(*self._background_tasks, return_exceptions=True)
        self._background_tasks = []
        await server.stop(grace_seconds)
        await self.servicer.close()
        refresher = self._live_tables.refreshing() if self._live_tables is not None else None
        if refresher is not None:  # let a build finish before the store it reads closes
            await asyncio.to_thread(refresher.join, grace_seconds)
        if self._outcomes is not None:
            self._outcomes.close()
        log.info("scheduler API stopped")
