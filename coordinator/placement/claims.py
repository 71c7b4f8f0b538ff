"""Claims: capacity held on a host for a while, so concurrent requests never double-book.

A scheduler that asks ``SelectHosts`` and then spends a second creating the VM would,
without claims, see the same free capacity as the next request and both would pick the
same last slot. A claim (``Reserve``, or ``SelectHosts`` with ``claim``) charges the
VM's resources to the host in every host table built while it is active: the table
builder folds :meth:`ClaimBook.active` into the ``*_used`` columns
(:func:`~.hosts_build.build_host_table`'s ``claims``).

Correctness under concurrency comes from one lock: :func:`select_and_claim` and
:func:`reserve_checked` hold :attr:`ClaimBook.lock` across *build the table (with the
active claims) -> decide -> record the claim*, so the next request's table already
carries this claim. Claims expire lazily (any call past ``expires_at`` drops them) on
the book's clock; ``release`` gives one back early. ``request_id`` makes a retry
idempotent: a second claim with the same id while the first is active returns the
first. Claims live in memory: a restarted coordinator starts with none, which errs on
the side of free capacity for at most one TTL.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from novacron.coordinator.placement.engine import Decision, Policy, filter_rejections, select
from novacron.coordinator.placement.hosts import HostTable
from novacron.coordinator.placement.request import PlacementRequest


@dataclass(frozen=True)
class Claim:
    """Resources held on ``host_id`` until ``expires_at_seconds`` (the book's clock).

    Satisfies :class:`~.hosts_build.ClaimedResources`, so the table builder folds it.
    """

    claim_id: str
    request_id: str
    host_id: str
    vcpus: int
    memory_mib: int
    disk_gib: int
    gpus: int
    created_at_seconds: float
    expires_at_seconds: float
    group_id: str = ""  # the request's server group, if any


#: Builds the host table with the given active claims folded into its used capacity.
TableBuilder = Callable[[Sequence[Claim]], HostTable]


class ClaimBook:
    """Active claims, thread-safe; ``lock`` is reentrant so callers can span a decision."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.RLock()
        self._clock = clock
        self._claims: dict[str, Claim] = {}
        self._by_request: dict[str, str] = {}

    def now(self) -> float:
        return self._clock()

    def _expire(self) -> None:
        now = self._clock()
        for claim in [c for c in self._claims.values() if c.expires_at_seconds <= now]:
            self._drop(claim)

    def _drop(self, claim: Claim) -> None:
        del self._claims[claim.claim_id]
        if claim.request_id and self._by_request.get(claim.request_id) == claim.claim_id:
            del self._by_request[claim.request_id]

    def active(self, *, excluding_request: str = "") -> tuple[Claim, ...]:
        """Every unexpired claim, oldest first (optionally without one request's)."""
        with self.lock:
            self._expire()
            return tuple(
                c
                for c in self._claims.values()
                if not (excluding_request and c.request_id == excluding_request)
            )

    def for_request(self, request_id: str) -> Claim | None:
        """The active claim made under ``request_id``, if any."""
        if not request_id:
            return None
        with self.lock:
            self._expire()
            claim_id = self._by_request.get(request_id)
            return self._claims.get(claim_id) if claim_id else None

    def reserve(
        self, host_id: str, request: PlacementRequest, ttl_seconds: float, request_id: str = ""
    ) -> Claim:
        """Record a claim (no capacity check: see :func:`reserve_checked`); idempotent by id."""
        if not ttl_seconds > 0:
            raise ValueError(f"ttl_seconds: must be > 0, got {ttl_seconds}")
        with self.lock:
            existing = self.for_request(request_id)
            if existing is not None:
                return existing
            now = self._clock()
            claim = Claim(
                claim_id=str(uuid.uuid4()),
                request_id=request_id,
                host_id=host_id,
                vcpus=request.vcpus,
                memory_mib=request.memory_mib,
                disk_gib=request.disk_gib,
                gpus=request.gpus,
                created_at_seconds=now,
                expires_at_seconds=now + ttl_seconds,
                group_id=request.server_group.group_id if request.server_group else "",
            )
            self._claims[claim.claim_id] = claim
            if request_id:
                self._by_request[request_id] = claim.claim_id
            return claim

    def release(self, claim_id: str) -> bool:
        """Give a claim back; False when it was unknown or had expired (still fine)."""
        with self.lock:
            self._expire()
            claim = self._claims.get(claim_id)
            if claim is None:
                return False
            self._drop(claim)
            return True


@dataclass(frozen=True)
class ClaimedDecision:
    decision: Decision
    claim: Claim | None  # None when no host passed


def select_and_claim(
    book: ClaimBook,
    build: TableBuilder,
    request: PlacementRequest,
    policy: Policy,
    *,
    ttl_seconds: float,
    request_id: str = "",
    objectives: Mapping[str, float] | None = None,
    weight_overrides: Mapping[str, float] | None = None,
    max_results: int = 10,
    want_pareto: bool = False,
) -> ClaimedDecision:
    """Select and claim the best host in one step under the book's lock.

    A retry with the same ``request_id`` while its claim is active gets that claim back
    (not a second one); its ranking is computed without counting the claim against its
    own host.
    """
    with book.lock:
        existing = book.for_request(request_id)
        hosts = build(book.active(excluding_request=request_id))
        decision = select(
            hosts,
            request,
            policy,
            objectives=objectives,
            weight_overrides=weight_overrides,
            max_results=max_results,
            want_pareto=want_pareto,
        )
        if existing is not None:
            return ClaimedDecision(decision, existing)
        if decision.no_valid_host:
            return ClaimedDecision(decision, None)
        claim = book.reserve(decision.hosts[0].host_id, request, ttl_seconds, request_id)
        return ClaimedDecision(decision, claim)


@dataclass(frozen=True)
class Reservation:
    claim: Claim | None
    refusal: str  # "" when the claim was made


def reserve_checked(
    book: ClaimBook,
    build: TableBuilder,
    host_id: str,
    request: PlacementRequest,
    policy: Policy,
    *,
    ttl_seconds: float,
    request_id: str = "",
) -> Reservation:
    """Claim ``host_id`` if every filter accepts it now (with the other active claims).

    The refusal names the filters that reject the host, or says it is unknown.
    """
    with book.lock:
        existing = book.for_request(request_id)
        if existing is not None:
            return Reservation(existing, "")
        hosts = build(book.active())
        row = hosts.index.get(host_id)
        if row is None:
            return Reservation(None, f"host {host_id!r} is not in the fleet snapshot")
        rejections = filter_rejections(hosts, request, policy, row)
        if rejections:
            reasons = "; ".join(f"{r.filter}: {r.reason}" for r in rejections)
            return Reservation(None, f"host {host_id} cannot take the VM now ({reasons})")
        return Reservation(book.reserve(host_id, request, ttl_seconds, request_id), "")
