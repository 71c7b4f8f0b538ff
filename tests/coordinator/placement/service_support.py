"""An ApiServer on a loop of its own in a daemon thread, for sync gRPC clients in tests."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from novacron.coordinator.api_server import ApiServer, ApiService
from novacron.coordinator.config import ApiSettings, CoordinatorConfig, CoordinatorSettings
from novacron.coordinator.placement.claims import Claim, ClaimBook, TableBuilder
from novacron.coordinator.placement.engine import Policy
from novacron.coordinator.placement.hosts import HostTable
from novacron.coordinator.placement.outcomes import OutcomeLog
from novacron.coordinator.placement.service import PlacementServicer

T = TypeVar("T")


def folding(base: HostTable) -> TableBuilder:
    """A table builder that charges each active claim to its host (as hosts_build does)."""

    def build(claims: Sequence[Claim]) -> HostTable:
        table = base
        for claim in claims:
            table = table.allocate(
                table.index[claim.host_id],
                vcpus=claim.vcpus,
                memory_mib=claim.memory_mib,
                disk_gib=claim.disk_gib,
                gpus=claim.gpus,
            )
        return table

    return build


def insecure_api_config(db_path: Path) -> CoordinatorConfig:
    return CoordinatorConfig(
        coordinator=CoordinatorSettings(db_path=db_path, insecure=True),
        api=ApiSettings(listen="127.0.0.1:0"),
    )


class ApiThread:
    """Serve ``servicer`` with :class:`ApiServer` on a real loopback port."""

    def __init__(
        self,
        config: CoordinatorConfig,
        servicer: PlacementServicer,
        *,
        services: Mapping[str, ApiService] | None = None,
    ) -> None:
        self.server = ApiServer(config, servicer, services=services)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> ApiThread:
        self._thread.start()
        self.call(self.server.start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(self.server.stop(1.0))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(
            coroutine, self._loop
        )
        return future.result(timeout)


def servicer(
    policy: Policy, base: HostTable, *, db_path: Path | None = None, book: ClaimBook | None = None
) -> PlacementServicer:
    return PlacementServicer(
        policy=policy,
        tables=folding(base),
        claims=book or ClaimBook(),
        outcomes=OutcomeLog(db_path) if db_path is not None else None,
    )
