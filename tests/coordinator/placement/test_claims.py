"""Claims: TTL, idempotency, release, and no double-booking under concurrent requests."""

from __future__ import annotations

import threading
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from novacron.coordinator.placement.claims import (
    Claim,
    ClaimBook,
    reserve_checked,
    select_and_claim,
)
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.settings import PlacementSettings
from tests.coordinator.placement.engine_support import make_policy
from tests.coordinator.placement.service_support import folding
from tests.coordinator.placement.tables import host_table

VM = PlacementRequest(vcpus=2, memory_mib=4096)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_claims_expire_on_the_clock_and_release_is_idempotent() -> None:
    clock = FakeClock()
    book = ClaimBook(clock)
    claim = book.reserve("h1", VM, 30.0, "req-1")
    assert claim.expires_at_seconds == 1030.0
    assert book.active() == (claim,)
    clock.now = 1029.9
    assert book.active() == (claim,)
    clock.now = 1030.0
    assert book.active() == ()
    assert not book.release(claim.claim_id)  # expired: nothing to give back
    second = book.reserve("h1", VM, 30.0, "req-1")  # the id is free again after expiry
    assert second.claim_id != claim.claim_id
    assert book.release(second.claim_id)
    assert not book.release(second.claim_id)
    assert book.active() == ()


def test_reserve_is_idempotent_by_request_id() -> None:
    book = ClaimBook(FakeClock())
    first = book.reserve("h1", VM, 30.0, "req-1")
    assert book.reserve("h2", VM, 30.0, "req-1") == first
    assert len(book.active()) == 1
    other = book.reserve("h1", VM, 30.0, "")  # no id: never deduplicated
    assert book.reserve("h1", VM, 30.0, "") != other
    with pytest.raises(ValueError, match="ttl_seconds"):
        book.reserve("h1", VM, 0, "x")


def test_select_and_claim_charges_the_next_decision() -> None:
    base = host_table([{"host_id": "a", "vcpus_total": 1}, {"host_id": "b", "vcpus_total": 1}])
    policy = make_policy(PlacementSettings(cpu_allocation_ratio=4.0))  # 4 vCPUs each
    book = ClaimBook(FakeClock())
    build = folding(base)
    chosen = [
        select_and_claim(book, build, VM, policy, ttl_seconds=60, request_id=f"r{i}")
        for i in range(3)
    ]
    hosts = [c.claim.host_id for c in chosen if c.claim]
    assert sorted(hosts) == ["a", "a", "b"] or sorted(hosts) == ["a", "b", "b"]
    # 4 claims of 2 vCPUs fill both hosts; the fifth is "no valid host", not a claim.
    fourth = select_and_claim(book, build, VM, policy, ttl_seconds=60, request_id="r3")
    assert fourth.claim is not None
    fifth = select_and_claim(book, build, VM, policy, ttl_seconds=60, request_id="r4")
    assert fifth.claim is None and fifth.decision.no_valid_host
    # a retry of r0 returns r0's claim, and does not count it against itself
    retry = select_and_claim(book, build, VM, policy, ttl_seconds=60, request_id="r0")
    assert retry.claim == chosen[0].claim
    assert not retry.decision.no_valid_host


def test_reserve_checked_refuses_a_full_or_unknown_host() -> None:
    base = host_table([{"host_id": "a", "vcpus_total": 1}])
    policy = make_policy(PlacementSettings(cpu_allocation_ratio=2.0))
    book = ClaimBook(FakeClock())
    build = folding(base)
    ok = reserve_checked(book, build, "a", VM, policy, ttl_seconds=5, request_id="r1")
    assert ok.claim is not None and ok.refusal == ""
    again = reserve_checked(book, build, "a", VM, policy, ttl_seconds=5, request_id="r1")
    assert again.claim == ok.claim
    full = reserve_checked(book, build, "a", VM, policy, ttl_seconds=5, request_id="r2")
    assert full.claim is None
    assert "TestCapacityFilter: lack 2 free vCPUs" in full.refusal
    missing = reserve_checked(book, build, "zz", VM, policy, ttl_seconds=5)
    assert missing.claim is None and "not in the fleet snapshot" in missing.refusal


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    capacities=st.lists(st.integers(1, 12), min_size=1, max_size=6),
    sizes=st.lists(st.integers(1, 4), min_size=1, max_size=40),
)
def test_concurrent_claims_never_exceed_capacity(capacities: list[int], sizes: list[int]) -> None:
    base = host_table([{"host_id": f"h{i}", "vcpus_total": c} for i, c in enumerate(capacities)])
    policy = make_policy(PlacementSettings(cpu_allocation_ratio=1.0))
    book = ClaimBook()
    build = folding(base)
    start = threading.Barrier(min(len(sizes), 8))
    claims: list[Claim] = []
    guard = threading.Lock()

    def worker(chunk: list[tuple[int, int]]) -> None:
        start.wait()
        for i, size in chunk:
            request = PlacementRequest(vcpus=size, memory_mib=1)
            result = select_and_claim(
                book, build, request, policy, ttl_seconds=600, request_id=f"r{i}"
            )
            if result.claim is not None:
                with guard:
                    claims.append(result.claim)

    indexed = list(enumerate(sizes))
    chunks = [indexed[k :: start.parties] for k in range(start.parties)]
    threads = [threading.Thread(target=worker, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    used: dict[str, int] = defaultdict(int)
    for claim in claims:
        used[claim.host_id] += claim.vcpus
    for i, capacity in enumerate(capacities):
        assert used[f"h{i}"] <= capacity
    # and whatever was refused really did not fit anywhere at the end
    free = {f"h{i}": c - used[f"h{i}"] for i, c in enumerate(capacities)}
    claimed_ids = {c.request_id for c in claims}
    for i, size in enumerate(sizes):
        if f"r{i}" not in claimed_ids:
            assert all(room < size for room in free.values())
