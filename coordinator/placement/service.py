"""``PlacementService`` over gRPC (grpc.aio): a thin servicer around the engine.

Each call converts the request (:mod:`.convert`; a malformed spec, an unknown
objective or factor id is INVALID_ARGUMENT naming the field), gets the current host
table from a provider (the live coordinator's is :class:`LiveHostTables`), and runs the
engine in a worker thread so the event loop keeps serving. "No valid host" is an
ordinary response (``no_valid_host`` with reasons), never an error status.

* **Deadlines.** Every call is bounded by the caller's deadline, or by
  :data:`MAX_CALL_SECONDS` when the caller sent none (a client bug per the contract).
  A decision still running when the deadline passes is answered DEADLINE_EXCEEDED; if
  it was claiming, the claim stands until its TTL (the caller retries with the same
  ``request_id`` and gets the same claim back).
* **Claims** are made under :class:`.claims.ClaimBook`'s lock together with the table
  build and the decision, so concurrent calls never double-book.
* **Learning data.** Every SelectHosts decision and every ReportOutcome is written to
  :class:`.outcomes.OutcomeLog`; decisions are written after the response is on its
  way (off the latency path).
* **Errors.** UNKNOWN host in ExplainHost: NOT_FOUND; the store cannot be read:
  UNAVAILABLE; anything else unexpected: INTERNAL (logged with the request id).
* **Authorization** is the caller's: ``authorize(context)`` returns a refusal or None
  (the API server requires a scheduler client certificate, so agents' certificates are
  refused; see :mod:`novacron.coordinator.api_server`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import grpc

from novacron.coordinator.fleet import FleetState
from novacron.coordinator.placement import convert
from novacron.coordinator.placement.claims import (
    Claim,
    ClaimBook,
    TableBuilder,
    reserve_checked,
    select_and_claim,
)
from novacron.coordinator.placement.engine import Policy, UnknownHost, explain, select
from novacron.coordinator.placement.hosts import Allocation, HostTable
from novacron.coordinator.placement.hosts_build import AgentInventoryCache, build_host_table
from novacron.coordinator.placement.inventory_file import InventoryFile
from novacron.coordinator.placement.outcomes import OutcomeLog
from novacron.coordinator.placement.settings import PlacementSettings
from novacron.coordinator.store import Store, StoreUnavailable
from novacron.protos import placement_pb2

log = logging.getLogger(__name__)

PLACEMENT_SERVICE = placement_pb2.DESCRIPTOR.services_by_name["PlacementService"].full_name
#: Longest a call may take when the caller set no deadline (the contract requires one).
MAX_CALL_SECONDS = 10.0

T = TypeVar("T")
Authorize = Callable[[grpc.aio.ServicerContext], str | None]


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class PlacementServicer:
    """The six RPCs; register with :meth:`handler` on a ``grpc.aio`` server."""

    def __init__(
        self,
        *,
        policy: Policy,
        tables: TableBuilder,
        claims: ClaimBook | None = None,
        outcomes: OutcomeLog | None = None,
        authorize: Authorize | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self.tables = tables
        self.claims = claims or ClaimBook(clock)
        self.outcomes = outcomes
        self.authorize = authorize  # None: every peer may call (the API server sets it)
        self._clock = clock
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def settings(self) -> PlacementSettings:
        return self.policy.settings

    def handler(self) -> grpc.GenericRpcHandler:
        """The generic handler serving :data:`PLACEMENT_SERVICE` on a server."""
        pb = placement_pb2
        methods: Mapping[str, tuple[Callable[..., Awaitable[Any]], Any, Any]] = {
            "SelectHosts": (self.SelectHosts, pb.SelectHostsRequest, pb.SelectHostsResponse),
            "ExplainHost": (self.ExplainHost, pb.ExplainHostRequest, pb.ExplainHostResponse),
            "ListFactors": (self.ListFactors, pb.ListFactorsRequest, pb.ListFactorsResponse),
            "Reserve": (self.Reserve, pb.ReserveRequest, pb.ReserveResponse),
            "Release": (self.Release, pb.ReleaseRequest, pb.ReleaseResponse),
            "ReportOutcome": (
                self.ReportOutcome,
                pb.ReportOutcomeRequest,
                pb.ReportOutcomeResponse,
            ),
        }
        return grpc.method_handlers_generic_handler(
            PLACEMENT_SERVICE,
            {
                name: grpc.unary_unary_rpc_method_handler(
                    method,
                    request_deserializer=request.FromString,
                    response_serializer=response.SerializeToString,
                )
                for name, (method, request, response) in methods.items()
            },
        )

    async def close(self) -> None:
        """Wait for decision records still being written."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    # ---------------------------------------------------------------- rpcs

    async def SelectHosts(
        self, request: placement_pb2.SelectHostsRequest, context: grpc.aio.ServicerContext
    ) -> placement_pb2.SelectHostsResponse:
        request_id = request.header.request_id or str(uuid.uuid4())

        def work() -> tuple[placement_pb2.SelectHostsResponse, Callable[[], None] | None]:
            spec = convert.request_from_spec(request.spec)
            options = convert.select_options(
                request,
                default_max_results=self.settings.default_max_results,
                max_claim_ttl_seconds=self.settings.max_claim_ttl_seconds,
            )
            claim: Claim | None = None
            if options.claim_ttl_seconds is not None:
                result = select_and_claim(
                    self.claims,
                    self.tables,
                    spec,
                    self.policy,
                    ttl_seconds=options.claim_ttl_seconds,
                    request_id=options.claim_request_id,
                    objectives=options.objectives,
                    weight_overrides=options.weight_overrides,
                    max_results=options.max_results,
                    want_pareto=options.want_pareto,
                )
                decision, claim = result.decision, result.claim
            else:
                hosts = self.tables(self.claims.active())
                decision = select(
                    hosts,
                    spec,
                    self.policy,
                    objectives=options.objectives,
                    weight_overrides=options.weight_overrides,
                    max_results=options.max_results,
                    want_pareto=options.want_pareto,
                )
            response = convert.decision_to_proto(decision, request_id=request_id, claim=claim)
            outcomes = self.outcomes
            if outcomes is None:
                return response, None

            def record() -> None:
                outcomes.record_decision(
                    request_id,
                    spec,
                    decision,
                    decided_at_seconds=self._clock(),
                    overrides=options.weight_overrides,
                    claim_id=claim.claim_id if claim else None,
                )

            return response, record

        response, record = await self._run(context, request_id, work)
        if record is not None:
            self._record_later(record)
        return response

    async def ExplainHost(
        self, request: placement_pb2.ExplainHostRequest, context: grpc.aio.ServicerContext
    ) -> placement_pb2.ExplainHostResponse:
        request_id = request.header.request_id or str(uuid.uuid4())

        def work() -> placement_pb2.ExplainHostResponse:
            if not request.host.host:
                raise ValueError("host.host: required")
            spec = convert.request_from_spec(request.request.spec, "request.spec")
            options = convert.select_options(
                request.request,
                default_max_results=self.settings.default_max_results,
                max_claim_ttl_seconds=self.settings.max_claim_ttl_seconds,
            )
            hosts = self.tables(self.claims.active())
            explanation = explain(
                hosts,
                spec,
                self.policy,
                request.host.host,
                objectives=options.objectives,
                weight_overrides=options.weight_overrides,
            )
            return convert.explanation_to_proto(explanation, request_id=request_id)

        return await self._run(context, request_id, work)

    async def ListFactors(
        self, request: placement_pb2.ListFactorsRequest, context: grpc.aio.ServicerContext
    ) -> placement_pb2.ListFactorsResponse:
        request_id = request.header.request_id

        def work() -> placement_pb2.ListFactorsResponse:
            wanted = set(request.categories)
            return placement_pb2.ListFactorsResponse(
                header=convert.response_header(request_id),
                factors=[
                    factor
                    for factor in map(convert.factor_to_proto, self.policy.factors)
                    if not wanted or factor.category in wanted
                ],
            )

        return await self._run(context, request_id, work)

    async def Reserve(
        self, request: placement_pb2.ReserveRequest, context: grpc.aio.ServicerContext
    ) -> placement_pb2.ReserveResponse:
        request_id = request.request_id or request.header.request_id

        def work() -> placement_pb2.ReserveResponse:
            if not request.host.host:
                raise ValueError("host.host: required")
            spec = convert.request_from_spec(request.spec)
            ttl = float(request.ttl_seconds)
            if not 1 <= ttl <= self.settings.max_claim_ttl_seconds:
                raise ValueError(
                    f"ttl_seconds: expected 1..{self.settings.max_claim_ttl_seconds:g}, "
                    f"got {request.ttl_seconds}"
                )
            reservation = reserve_checked(
                self.claims,
                self.tables,
                request.host.host,
                spec,
                self.policy,
                ttl_seconds=ttl,
                request_id=request_id,
            )
            response = placement_pb2.ReserveResponse(
                header=convert.response_header(request.header.request_id),
                refusal=reservation.refusal,
            )
            if reservation.claim is not None:
                response.claim.CopyFrom(convert.claim_to_proto(reservation.claim))
            return response

        return await self._run(context, request.header.request_id, work)

    async def Release(
        self, request: placement_pb2.ReleaseRequest, context: grpc.aio.ServicerContext
    ) -> placement_pb2.ReleaseResponse:
        def work() -> placement_pb2.ReleaseResponse:
            if not request.claim_id:
                raise ValueError("claim_id: required")
            return placement_pb2.ReleaseResponse(
                header=convert.response_header(request.header.request_id),
                released=self.claims.release(request.claim_id),
            )

        return await self._run(context, request.header.request_id, work)

    async def ReportOutcome(
        self, request: placement_pb2.ReportOutcomeRequest, context: grpc.aio.ServicerContext
    ) -> placement_pb2.ReportOutcomeResponse:
        outcomes = self.outcomes

        def work() -> placement_pb2.ReportOutcomeResponse:
            if outcomes is None:
                raise _Abort(grpc.StatusCode.UNIMPLEMENTED, "outcomes are not stored here")
            if not request.request_id:
                raise ValueError("request_id: required")
            if not request.host.host:
                raise ValueError("host.host: required")
            outcome = convert.outcome_from_proto(request.outcome)
            now = self._clock()
            occurred = (
                request.occurred_at.ToNanoseconds() / 1e9
                if request.HasField("occurred_at")
                else now
            )
            recorded = outcomes.record_outcome(
                request.request_id,
                request.host.host,
                outcome,
                details=request.details,
                occurred_at_seconds=occurred,
                vm_uuid=request.vm_uuid,
                recorded_at_seconds=now,
            )
            return placement_pb2.ReportOutcomeResponse(
                header=convert.response_header(request.header.request_id), recorded=recorded
            )

        return await self._run(context, request.header.request_id, work)

    # ---------------------------------------------------------------- plumbing

    async def _run(
        self, context: grpc.aio.ServicerContext, request_id: str, work: Callable[[], T]
    ) -> T:
        if self.authorize is not None:
            refusal = self.authorize(context)
            if refusal is not None:
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, refusal)
        remaining = context.time_remaining()
        budget = MAX_CALL_SECONDS if remaining is None else min(remaining, MAX_CALL_SECONDS)
        try:
            return await asyncio.wait_for(asyncio.to_thread(work), timeout=max(budget, 0.0))
        except TimeoutError:
            code, message = grpc.StatusCode.DEADLINE_EXCEEDED, "the decision took too long"
        except _Abort as exc:
            code, message = exc.code, exc.message
        except ValueError as exc:
            code, message = grpc.StatusCode.INVALID_ARGUMENT, str(exc)
        except UnknownHost as exc:
            code, message = grpc.StatusCode.NOT_FOUND, str(exc)
        except StoreUnavailable as exc:
            code, message = grpc.StatusCode.UNAVAILABLE, f"fleet data unavailable: {exc}"
        except Exception:
            log.exception("placement call failed", extra={"request_id": request_id})
            code, message = grpc.StatusCode.INTERNAL, f"internal error (request {request_id})"
        await context.abort(code, message)
        raise AssertionError("context.abort returns only by raising")  # pragma: no cover

    def _record_later(self, record: Callable[[], None]) -> None:
        """Run ``record`` in a thread after this call; errors are logged, never raised."""

        async def run() -> None:
            try:
                await asyncio.to_thread(record)
            except Exception:
                log.exception("could not store a placement decision")

        task = asyncio.get_running_loop().create_task(run())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)


class LiveHostTables:
    """Host tables of the live coordinator: fleet snapshot + store + inventory file + claims.

    A build from the store costs about half a second at 10k hosts, so a decision never
    waits for one in the steady state:

    * The **base table** (store inventories and current VMs, a fresh fleet snapshot,
      the inventory file; no claims) is rebuilt in a background thread once it is older
      than ``refresh_seconds``; calls meanwhile use the previous one
      (stale-while-revalidate). One rebuild runs at a time.
    * The first base table is built in the background by :meth:`warm` when the API
      server starts. Only a call finding no base (no warm-up, or it failed; a call
      during the warm-up waits for it) or one older than ``max_age_seconds`` (nobody
      asked for that long, or the background rebuilds keep failing) builds in line:
      a decision is never made on older data than that. A failing in-line build
      raises (``StoreUnavailable``: the RPC answers UNAVAILABLE); a failing background
      one is logged and retried on a later call.
    * The **active claims** are folded on top per call with
      :meth:`HostTable.allocate_many` (a few numpy passes), exactly as the builder would
      charge them, each claim also counting as a member of its server group so that
      concurrent anti-affine requests avoid each other's claimed hosts. The folded table
      is kept while neither the base nor the claims change, and claims added since the
      last call are folded onto it incrementally.
    """

    def __init__(
        self,
        store: Store,
        fleet: FleetState,
        settings: PlacementSettings,
        *,
        inventory_file: InventoryFile | None = None,
        refresh_seconds: float = 5.0,
        max_age_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < refresh_seconds <= max_age_seconds:
            raise ValueError(
                f"expected 0 < refresh_seconds <= max_age_seconds, got {refresh_seconds} "
                f"and {max_age_seconds}"
            )
        self._store = store
        self._fleet = fleet
        self._settings = settings
        self._inventory_file = inventory_file
        self._refresh_seconds = refresh_seconds
        self._max_age_seconds = max_age_seconds
        self._clock = clock
        self._inventory_cache = AgentInventoryCache()  # used under _build_lock only
        self._build_lock = threading.Lock()  # one build at a time
        self._lock = threading.Lock()  # guards the fields below; never held over a build
        self._base: HostTable | None = None
        self._base_read_at = -float("inf")  # clock when the base's data was read
        self._refresher: threading.Thread | None = None
        self._folded: tuple[HostTable, tuple[Claim, ...], HostTable] | None = None

    def __call__(self, claims: Sequence[Claim]) -> HostTable:
        return self._fold(self._current_base(), tuple(claims))

    @property
    def base_read_at_seconds(self) -> float:
        """Clock reading when the current base table's data was read (-inf: none yet)."""
        with self._lock:
            return self._base_read_at

    def refreshing(self) -> threading.Thread | None:
        """The background rebuild running now, if any (tests and shutdown join it)."""
        with self._lock:
            return self._refresher

    def warm(self) -> threading.Thread | None:
        """Start building the first base table in the background; returns the build thread.

        The API server calls this as it starts, so the first ``SelectHosts`` finds a table
        (or joins the build under way) instead of paying for a whole build from the store,
        while start-up itself never waits for the store. No-op once a base table exists.
        """
        with self._lock:
            if self._base is not None:
                return self._refresher
            return self._start_refresh()

    @property
    def refresh_seconds(self) -> float:
        return self._refresh_seconds

    def refresh_if_due(self) -> threading.Thread | None:
        """Start a background rebuild when the base table is older than ``refresh_seconds``.

        The API server calls this on a timer, so a scheduler that asks rarely still gets a
        table at most about ``refresh_seconds`` old instead of the one from its last call
        (refreshing only on calls would hand the first call after a quiet spell a table
        from before the quiet spell).
        """
        with self._lock:
            if self._clock() - self._base_read_at < self._refresh_seconds:
                return self._refresher
            return self._start_refresh()

    def _start_refresh(self) -> threading.Thread:
        """The background rebuild, started unless one runs already (holds _lock)."""
        if self._refresher is None:
            self._refresher = threading.Thread(
                target=self._refresh, name="placement-table-refresh", daemon=True
            )
            self._refresher.start()
        return self._refresher

    def _current_base(self) -> HostTable:
        with self._lock:
            base = self._base
            age = self._clock() - self._base_read_at
            if base is not None and age < self._max_age_seconds:
                if age >= self._refresh_seconds:
                    self._start_refresh()
                return base
        with self._build_lock:
            with self._lock:  # built by another caller while this one waited?
                if (
                    self._base is not None
                    and self._clock() - self._base_read_at < self._max_age_seconds
                ):
                    return self._base
            return self._rebuild()

    def _rebuild(self) -> HostTable:
        """Read the store and the fleet and build the base table (holds _build_lock)."""
        read_at = self._clock()
        inventories = self._store.inventories()
        vms = self._store.current_vms()
        table = build_host_table(
            self._fleet.snapshot(),
            inventories,
            vms,
            settings=self._settings,
            inventory_file=self._inventory_file,
            cache=self._inventory_cache,
        )
        with self._lock:
            if read_at >= self._base_read_at:
                self._base, self._base_read_at = table, read_at
        return table

    def _refresh(self) -> None:
        try:
            with self._build_lock:
                if self._clock() - self.base_read_at_seconds >= self._refresh_seconds:
                    self._rebuild()
        except StoreUnavailable as exc:
            log.warning("placement host table not refreshed: %s", exc)
        except Exception:
            log.exception("placement host table refresh failed")
        finally:
            with self._lock:
                self._refresher = None

    def _fold(self, base: HostTable, claims: tuple[Claim, ...]) -> HostTable:
        with self._lock:
            last = self._folded
        if last is not None and last[0] is base:
            _, folded_claims, folded = last
            if claims == folded_claims:
                return folded
            if claims[: len(folded_claims)] == folded_claims:  # only new claims since
                table = _with_claims(folded, claims[len(folded_claims) :])
            else:
                table = _with_claims(base, claims)
        else:
            table = _with_claims(base, claims)
        with self._lock:
            self._folded = (base, claims, table)
        return table


def _with_claims(table: HostTable, claims: Sequence[Claim]) -> HostTable:
    """``table`` with ``claims`` charged to their hosts (claims on unknown hosts: none)."""
    return table.allocate_many(
        [
            Allocation(
                row, claim.vcpus, claim.memory_mib, claim.disk_gib, claim.gpus, 1, claim.group_id
            )
            for claim in claims
            if (row := table.index.get(claim.host_id)) is not None
        ]
    )
